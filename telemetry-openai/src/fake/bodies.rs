//! Bodies as llama.cpp answers them, for scripting the fake server: a whole chat completion
//! ([`chat_completion`]) and a chat stream's events ([`chat_stream`]); and a chat stream as
//! llama.cpp or the OpenAI API sends it, with and without `include_usage`
//! ([`chat_stream_as`]).

use std::time::Duration;

use bytes::Bytes;

/// A llama.cpp-style blocking chat completion with this usage.
pub fn chat_completion(model: &str, prompt_tokens: u64, completion_tokens: u64) -> Bytes {
    serde_json::json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello! How can I help you today?"}
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        },
        "timings": {"prompt_n": prompt_tokens, "prompt_ms": 12.5, "predicted_n": completion_tokens, "predicted_ms": 40.0, "cache_n": 0}
    })
    .to_string()
    .into()
}

/// A llama.cpp-style chat stream: a role-only first chunk (`content: null`), `words` content
/// chunks, a finish chunk, with `usage` a usage chunk (`choices: []`), then `[DONE]`; each event
/// `gap` after the previous one.
pub fn chat_stream(
    model: &str,
    words: usize,
    usage: Option<(u64, u64)>,
    gap: Duration,
) -> Vec<(Duration, Bytes)> {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        serde_json::json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_764_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        })
    };
    let mut events = vec![chunk(
        serde_json::json!({"role": "assistant", "content": null}),
        None,
    )];
    for i in 0..words {
        events.push(chunk(
            serde_json::json!({"content": format!(" w{i}")}),
            None,
        ));
    }
    events.push(chunk(serde_json::json!({}), Some("stop")));
    if let Some((prompt, completion)) = usage {
        events.push(serde_json::json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_764_000_000,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            "timings": {"prompt_n": prompt, "prompt_ms": 12.5, "predicted_n": completion, "predicted_ms": 40.0, "cache_n": 0}
        }));
    }
    let mut out: Vec<(Duration, Bytes)> = events
        .into_iter()
        .map(|e| (gap, Bytes::from(format!("data: {e}\n\n"))))
        .collect();
    out.push((gap, Bytes::from_static(b"data: [DONE]\n\n")));
    out
}

/// Whose streaming habits [`chat_stream_as`] copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFlavour {
    /// llama.cpp's server (tools/server/server-task.cpp): keys in its order, the finish chunk
    /// carries `timings` — unless usage was asked for, when they move to the usage chunk.
    LlamaCpp,
    /// The OpenAI API: with usage asked for, `"usage":null` in every chunk and a usage chunk.
    OpenAi,
}

/// The body of a chat stream of `words` content chunks as `flavour` sends it, with or without
/// the usage that `include_usage` asks for (the usage is `prompt` + `words` tokens). Answer
/// with [`Reply::sse`](crate::fake::Reply::sse) or
/// [`Reply::sse_events`](crate::fake::Reply::sse_events).
pub fn chat_stream_as(
    flavour: StreamFlavour,
    words: usize,
    prompt: u64,
    include_usage: bool,
) -> Vec<u8> {
    let completion = words as u64;
    let total = prompt + completion;
    let mut events = Vec::new();
    match flavour {
        StreamFlavour::LlamaCpp => {
            let tail = r#""created":1764000000,"id":"chatcmpl-llama","model":"smollm2","system_fingerprint":"b1-7e4c0a9","object":"chat.completion.chunk""#;
            let timings = format!(
                r#"{{"cache_n":0,"prompt_n":{prompt},"prompt_ms":12.5,"prompt_per_token_ms":1.2,"prompt_per_second":800.0,"predicted_n":{completion},"predicted_ms":40.0,"predicted_per_token_ms":2.0,"predicted_per_second":500.0}}"#
            );
            let delta = |d: &str, finish: &str| {
                format!(
                    r#"{{"choices":[{{"finish_reason":{finish},"index":0,"delta":{d}}}],{tail}"#
                )
            };
            events.push(delta(r#"{"role":"assistant","content":null}"#, "null") + "}");
            for i in 0..words {
                events.push(delta(&format!(r#"{{"content":" w{i}"}}"#), "null") + "}");
            }
            let finish = delta("{}", r#""length""#);
            if include_usage {
                events.push(finish + "}");
                events.push(format!(
                    r#"{{"choices":[],{tail},"usage":{{"completion_tokens":{completion},"prompt_tokens":{prompt},"total_tokens":{total}}},"timings":{timings}}}"#
                ));
            } else {
                events.push(format!(r#"{finish},"timings":{timings}}}"#));
            }
        }
        StreamFlavour::OpenAi => {
            let head = r#""id":"chatcmpl-openai","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559""#;
            let usage = if include_usage {
                r#","usage":null"#
            } else {
                ""
            };
            let chunk = |d: &str, finish: &str| {
                format!(
                    r#"{{{head},"choices":[{{"index":0,"delta":{d},"logprobs":null,"finish_reason":{finish}}}]{usage},"obfuscation":"Zx3"}}"#
                )
            };
            events.push(chunk(
                r#"{"role":"assistant","content":"","refusal":null}"#,
                "null",
            ));
            for i in 0..words {
                events.push(chunk(&format!(r#"{{"content":" w{i}"}}"#), "null"));
            }
            events.push(chunk("{}", r#""stop""#));
            if include_usage {
                events.push(format!(
                    r#"{{{head},"choices":[],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{total},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"obfuscation":"q"}}"#
                ));
            }
        }
    }
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(format!("data: {e}\n\n").as_bytes());
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}
