//! Bodies as llama.cpp answers them, for scripting the fake server: a whole chat completion
//! ([`chat_completion`]) and a chat stream's events ([`chat_stream`]).

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
