//! SSE parsing throughput (target ≥ 500 MB/s) and the cost of decoding and observing each chunk,
//! over a llama.cpp-shaped stream of 1 000 chunks fed in 4 KiB and 1 KiB reads; what a
//! recorder pays per event of each API's stream (`api_stream`: `ApiStream`, as the proxy reads
//! them), over llama.cpp-shaped Chat, Responses and Messages streams of 1 000 output events;
//! and per whole answer (`api_body`: `read_body`, 1 000 llama.cpp-shaped answers of each API).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use telemetry_openai::protocol::{
    Api, ApiStream, Observed, SseEvent, SseParser, StreamObserver, read_body,
};

/// A stream as llama.cpp sends it: a role chunk, 1 000 one-token chunks, a finish chunk with
/// timings, a usage chunk and `[DONE]`.
fn llama_stream(tokens: usize) -> Vec<u8> {
    let head = r#"{"id":"chatcmpl-4RkgjuKoKb8Ps9vZf2FqZ3sWb1oU7yJw","object":"chat.completion.chunk","created":1764345600,"model":"smollm2-135m","system_fingerprint":"b1-7e4c0a9","#;
    let mut body = Vec::new();
    body.extend_from_slice(b"data: ");
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(br#""choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#);
    body.extend_from_slice(b"\n\n");
    for i in 0..tokens {
        body.extend_from_slice(b"data: ");
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(
            format!(r#""choices":[{{"index":0,"delta":{{"content":" tok{i}"}},"finish_reason":null}}]}}"#)
                .as_bytes(),
        );
        body.extend_from_slice(b"\n\n");
    }
    body.extend_from_slice(b"data: ");
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(br#""choices":[{"index":0,"delta":{},"finish_reason":"length"}],"timings":{"cache_n":0,"prompt_n":12,"prompt_ms":25.1,"prompt_per_token_ms":2.09,"prompt_per_second":478.1,"predicted_n":1000,"predicted_ms":12000.4,"predicted_per_token_ms":12.0,"predicted_per_second":83.3}}"#);
    body.extend_from_slice(b"\n\ndata: ");
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(br#""choices":[],"usage":{"completion_tokens":1000,"prompt_tokens":12,"total_tokens":1012}}"#);
    body.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    body
}

/// A Responses stream as llama.cpp sends it: created, in progress, `tokens` text deltas, the
/// text done, completed with usage.
fn responses_stream(tokens: usize) -> Vec<u8> {
    let mut body = String::new();
    let mut event = |kind: &str, data: &str| {
        body.push_str(&format!(
            "event: {kind}\ndata: {{\"type\":\"{kind}\",{data}}}\n\n"
        ));
    };
    let response = r#""response":{"id":"resp_VrWBRl9q6ACnqDJThlvc8qyq7DqdzWnQ","object":"response","status":"in_progress"}"#;
    event("response.created", response);
    event("response.in_progress", response);
    for i in 0..tokens {
        event(
            "response.output_text.delta",
            &format!(r#""item_id":"msg_vzPGYn98XxAoYfiRPzTW9Z5QwA87VVyx","delta":" tok{i}""#),
        );
    }
    event(
        "response.output_text.done",
        r#""item_id":"msg_vzPGYn98XxAoYfiRPzTW9Z5QwA87VVyx","text":"..." "#,
    );
    event(
        "response.completed",
        &format!(
            r#""response":{{"id":"resp_VrWBRl9q6ACnqDJThlvc8qyq7DqdzWnQ","object":"response","status":"completed","model":"smollm2-135m","output":[],"usage":{{"input_tokens":33,"output_tokens":{tokens},"total_tokens":1033,"input_tokens_details":{{"cached_tokens":32}}}}}}"#
        ),
    );
    body.into_bytes()
}

/// A Messages stream as llama.cpp sends it: message start with usage, a block of `tokens`
/// text deltas, message delta with usage, message stop.
fn messages_stream(tokens: usize) -> Vec<u8> {
    let mut body = String::new();
    let mut event = |kind: &str, data: &str| {
        body.push_str(&format!(
            "event: {kind}\ndata: {{\"type\":\"{kind}\",{data}}}\n\n"
        ));
    };
    event(
        "message_start",
        r#""message":{"id":"chatcmpl-DSX3fZ53oYfPN9tbWtZfaYBSckqwZJYz","type":"message","role":"assistant","content":[],"model":"smollm2-135m","stop_reason":null,"stop_sequence":null,"usage":{"cache_read_input_tokens":32,"input_tokens":1,"output_tokens":0}}"#,
    );
    event(
        "content_block_start",
        r#""index":0,"content_block":{"type":"text","text":""}"#,
    );
    for i in 0..tokens {
        event(
            "content_block_delta",
            &format!(r#""index":0,"delta":{{"type":"text_delta","text":" tok{i}"}}"#),
        );
    }
    event("content_block_stop", r#""index":0"#);
    event(
        "message_delta",
        &format!(
            r#""delta":{{"stop_reason":"max_tokens","stop_sequence":null}},"usage":{{"output_tokens":{tokens}}}"#
        ),
    );
    event("message_stop", r#""index":0"#);
    body.into_bytes()
}

/// `ApiStream` over each API's stream, per output event.
fn api_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("api_stream");
    group.throughput(Throughput::Elements(1000));
    for (name, api, body) in [
        ("chat", Api::ChatCompletions, llama_stream(1000)),
        ("responses", Api::Responses, responses_stream(1000)),
        ("messages", Api::Messages, messages_stream(1000)),
    ] {
        group.bench_function(name, |b| {
            let mut parser = SseParser::new();
            b.iter(|| {
                parser.reset();
                let mut stream = ApiStream::new(api);
                for part in body.chunks(4096) {
                    parser.feed(part, |e| drop(stream.observe(e))).unwrap();
                }
                assert_eq!(stream.output_chunks(), 1000);
                assert!(stream.end().is_ok() && stream.report().usage.is_some());
                black_box(stream.model().map(str::len))
            });
        });
    }
    group.finish();
}

/// `read_body` over each API's whole answer, per answer (llama.cpp's, as the proxy's bench
/// upstream and the sdk helper's capture have them).
fn api_body(c: &mut Criterion) {
    let chat = br#"{"id":"chatcmpl-fake","object":"chat.completion","created":1764000000,"model":"bench","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello! How can I help you today?"}}],"usage":{"prompt_tokens":9,"completion_tokens":16,"total_tokens":25},"timings":{"prompt_n":9,"prompt_ms":12.5,"predicted_n":16,"predicted_ms":40.0,"cache_n":0}}"#;
    let responses = br#"{"completed_at":1764000001,"created_at":1764000000,"id":"resp_VrWBRl9q6ACnqDJThlvc8qyq7DqdzWnQ","model":"smollm2-135m","object":"response","output":[{"content":[{"type":"output_text","annotations":[],"text":"Hello! How can I help you today?"}],"id":"msg_vzPGYn98XxAoYfiRPzTW9Z5QwA87VVyx","role":"assistant","status":"completed","type":"message"}],"status":"completed","usage":{"input_tokens":33,"output_tokens":5,"total_tokens":38,"input_tokens_details":{"cached_tokens":32}}}"#;
    let messages = br#"{"id":"chatcmpl-DSX3fZ53oYfPN9tbWtZfaYBSckqwZJYz","type":"message","role":"assistant","content":[{"type":"text","text":"Hello! How can I help you today?"}],"model":"smollm2-135m","stop_reason":"max_tokens","stop_sequence":null,"usage":{"cache_read_input_tokens":32,"input_tokens":1,"output_tokens":5}}"#;
    let mut group = c.benchmark_group("api_body");
    group.throughput(Throughput::Elements(1000));
    for (name, api, body) in [
        ("chat", Api::ChatCompletions, &chat[..]),
        ("responses", Api::Responses, &responses[..]),
        ("messages", Api::Messages, &messages[..]),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..1000 {
                    let (report, model) = read_body(api, black_box(body)).unwrap();
                    assert!(report.usage.is_some() && model.is_some());
                    black_box((report, model));
                }
            });
        });
    }
    group.finish();
}

fn parse(c: &mut Criterion) {
    let body = llama_stream(1000);
    let mut group = c.benchmark_group("sse_parse");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for read in [4096usize, 1024] {
        group.bench_with_input(BenchmarkId::new("read_bytes", read), &read, |b, &read| {
            let mut parser = SseParser::new();
            b.iter(|| {
                parser.reset();
                let mut n = 0usize;
                for part in body.chunks(read) {
                    parser
                        .feed(part, |e| {
                            if let SseEvent::Data(d) = e {
                                n += d.len();
                            }
                        })
                        .unwrap();
                }
                black_box(n)
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sse_observe");
    // Per element = per chunk: parse + decode + fold usage/timings.
    group.throughput(Throughput::Elements(1003));
    group.bench_function("chunks_4096_reads", |b| {
        let mut parser = SseParser::new();
        b.iter(|| {
            parser.reset();
            let mut observer = StreamObserver::new();
            let mut chars = 0usize;
            for part in body.chunks(4096) {
                parser
                    .feed(part, |e| {
                        if let Ok(Observed::Chunk(c)) = observer.observe(e) {
                            chars += c.content.len();
                        }
                    })
                    .unwrap();
            }
            assert!(observer.end().is_ok());
            black_box((chars, observer.usage()))
        });
    });
    group.finish();
}

criterion_group!(benches, parse, api_stream, api_body);
criterion_main!(benches);
