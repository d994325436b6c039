//! SSE parsing throughput (target ≥ 500 MB/s) and the cost of decoding and observing each chunk,
//! over a llama.cpp-shaped stream of 1 000 chunks fed in 4 KiB and 1 KiB reads.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use telemetry_openai::protocol::{Observed, SseEvent, SseParser, StreamObserver};

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

criterion_group!(benches, parse);
criterion_main!(benches);
