//! What the proxy's usage injection costs per chunk on the way to the client:
//! `IncludeUsageFilter` over a 1 000-chunk stream with `include_usage` set, fed one event per
//! read as llama.cpp writes them, in the llama.cpp shape (content chunks pass untouched, the
//! finish chunk is held, the usage chunk removed and its timings moved back) and in the OpenAI
//! API's (every chunk rewritten without its `"usage":null`), and in 1 KiB reads (events split).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use telemetry_openai::protocol::{Filtered, IncludeUsageFilter};

const CHUNKS: usize = 1000;

/// The events of a stream with `include_usage`, as llama.cpp or the OpenAI API writes them.
fn stream(openai: bool) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    let ev = |json: String| format!("data: {json}\n\n").into_bytes();
    if openai {
        let head = r#""id":"chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012","object":"chat.completion.chunk","created":1764345600,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559""#;
        for i in 0..CHUNKS {
            events.push(ev(format!(
                r#"{{{head},"choices":[{{"index":0,"delta":{{"content":" tok{i}"}},"logprobs":null,"finish_reason":null}}],"usage":null,"obfuscation":"Zx3"}}"#
            )));
        }
        events.push(ev(format!(
            r#"{{{head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"length"}}],"usage":null,"obfuscation":"a"}}"#
        )));
        events.push(ev(format!(
            r#"{{{head},"choices":[],"usage":{{"prompt_tokens":12,"completion_tokens":1000,"total_tokens":1012}},"obfuscation":"q"}}"#
        )));
    } else {
        let tail = r#""created":1764345600,"id":"chatcmpl-4RkgjuKoKb8Ps9vZf2FqZ3sWb1oU7yJw","model":"smollm2-135m","system_fingerprint":"b1-7e4c0a9","object":"chat.completion.chunk""#;
        for i in 0..CHUNKS {
            events.push(ev(format!(
                r#"{{"choices":[{{"finish_reason":null,"index":0,"delta":{{"content":" tok{i}"}}}}],{tail}}}"#
            )));
        }
        events.push(ev(format!(
            r#"{{"choices":[{{"finish_reason":"length","index":0,"delta":{{}}}}],{tail}}}"#
        )));
        events.push(ev(format!(
            r#"{{"choices":[],{tail},"usage":{{"completion_tokens":1000,"prompt_tokens":12,"total_tokens":1012}},"timings":{{"cache_n":0,"prompt_n":12,"prompt_ms":25.1,"predicted_n":1000,"predicted_ms":12000.4}}}}"#
        )));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

fn through(filter: &mut IncludeUsageFilter, reads: &[Vec<u8>]) -> usize {
    let mut out = 0;
    for read in reads {
        out += match filter.feed(read) {
            Filtered::Input(r) => r.len(),
            Filtered::Output(b) => b.len(),
        };
    }
    out + filter.finish().len()
}

fn filter(c: &mut Criterion) {
    let mut group = c.benchmark_group("include_usage_filter");
    group.throughput(Throughput::Elements(CHUNKS as u64 + 3));
    for (name, openai) in [("llama_cpp", false), ("openai", true)] {
        let events = stream(openai);
        let whole: Vec<u8> = events.concat();
        let kib: Vec<Vec<u8>> = whole.chunks(1024).map(<[u8]>::to_vec).collect();
        for (reads_name, reads) in [("event_per_read", &events), ("1KiB_reads", &kib)] {
            group.bench_with_input(BenchmarkId::new(name, reads_name), reads, |b, reads| {
                b.iter(|| {
                    let mut f = IncludeUsageFilter::new();
                    black_box(through(&mut f, reads))
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, filter);
criterion_main!(benches);
