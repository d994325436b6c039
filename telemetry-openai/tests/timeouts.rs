//! The first-token, between-chunks and total timeouts of a stream do what their docs say, in
//! both engines, each under its own error kind: keep-alive comments (`: ping`) move neither the
//! first-token nor the between-chunks deadline, silence before the first token waits for the
//! first-token timeout (not the between-chunks one), and the total bounds the whole call.
//! Times are scaled down (hundreds of milliseconds for seconds).

mod common;

use std::time::{Duration, Instant};

use common::{only, recording_bus};
use futures::StreamExt;
use telemetry_core::Outcome;
use telemetry_openai::fake::{End, FakeServer, Part, Reply};
use telemetry_openai::protocol::OpenAiError;
use telemetry_openai::{AsyncOpenAiEngine, OpenAiConfig, OpenAiEngine, Timeouts};
use telemetry_wrap::{
    AsyncInferenceEngine, GenerateParams, InferenceEngine, InstrumentedEngine, Message,
};

const CONTENT: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
const DONE: &str = "data: [DONE]\n\n";
const PING: &str = ": ping\n\n";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An event stream of `parts`, chunked.
fn stream(parts: Vec<Part>) -> Reply {
    Reply {
        parts,
        ..Reply::sse(b"", 1, Duration::ZERO)
    }
}

fn bytes(s: &str) -> Part {
    Part::Bytes(s.as_bytes().to_vec().into())
}

/// `n` pings `gap` apart.
fn pings(n: usize, gap: Duration) -> Vec<Part> {
    (0..n)
        .flat_map(|_| [Part::Pause(gap), bytes(PING)])
        .collect()
}

fn timeouts(first: u64, idle: u64, total: Option<u64>) -> Timeouts {
    Timeouts {
        connect: Some(Duration::from_secs(5)),
        first_token: Some(ms(first)),
        idle: Some(ms(idle)),
        total: total.map(ms),
    }
}

struct Case {
    name: &'static str,
    reply: Reply,
    timeouts: Timeouts,
    /// `None`: the stream completes.
    kind: Option<&'static str>,
    /// The call ends within this window.
    within: (Duration, Duration),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "pings only: the first-token timeout, not an ok call with a late TTFT",
            reply: stream([pings(20, ms(100)), vec![bytes(CONTENT), bytes(DONE)]].concat()),
            timeouts: timeouts(300, 60_000, None),
            kind: Some("timeout_first_token"),
            within: (ms(300), ms(1_500)),
        },
        Case {
            name: "silence after the head: the first-token timeout, not the idle one",
            reply: stream(vec![]).ending(End::Stall(Duration::from_secs(3))),
            timeouts: timeouts(300, 60_000, None),
            kind: Some("timeout_first_token"),
            within: (ms(300), ms(1_500)),
        },
        Case {
            name: "a prefill longer than the between-chunks timeout is not cut by it",
            reply: stream(vec![
                Part::Pause(ms(600)),
                bytes(CONTENT),
                bytes(CONTENT),
                bytes(DONE),
            ]),
            timeouts: timeouts(3_000, 200, None),
            kind: None,
            within: (ms(600), ms(2_500)),
        },
        Case {
            name: "pings after the first token: the between-chunks timeout",
            reply: stream([vec![bytes(CONTENT)], pings(20, ms(100)), vec![bytes(DONE)]].concat()),
            timeouts: timeouts(3_000, 300, None),
            kind: Some("timeout_idle"),
            within: (ms(300), ms(1_500)),
        },
        Case {
            name: "content flowing past the total timeout: the total timeout",
            reply: stream(
                (0..20)
                    .flat_map(|_| [Part::Pause(ms(100)), bytes(CONTENT)])
                    .chain([bytes(DONE)])
                    .collect(),
            ),
            timeouts: timeouts(3_000, 3_000, Some(500)),
            kind: Some("timeout_total"),
            within: (ms(500), ms(1_700)),
        },
    ]
}

fn config(server: &FakeServer, timeouts: Timeouts) -> OpenAiConfig {
    OpenAiConfig::new(server.base_url())
        .without_api_key()
        .with_engine_id("vllm")
        .with_timeouts(timeouts)
}

fn check(case: &Case, result: Result<(), OpenAiError>, elapsed: Duration, engine: &str) {
    let kind = result.as_ref().err().map(|e| e.error_kind().into_owned());
    assert_eq!(
        kind.as_deref(),
        case.kind,
        "{engine}: {}: {result:?}",
        case.name
    );
    assert!(
        elapsed >= case.within.0 && elapsed <= case.within.1,
        "{engine}: {}: ended after {elapsed:?}",
        case.name
    );
}

#[test]
fn blocking_streams_keep_each_timeout() {
    for case in cases() {
        let reply = case.reply.clone();
        let server = FakeServer::start(move |_| reply.clone()).unwrap();
        let (bus, records) = recording_bus();
        let engine =
            InstrumentedEngine::new(OpenAiEngine::new(config(&server, case.timeouts)), bus);
        let params = GenerateParams::new("m");
        let started = Instant::now();
        let result = engine
            .stream(&[Message::user("hi")], &params)
            .and_then(|mut s| s.try_for_each(|c| c.map(drop)));
        check(&case, result, started.elapsed(), "blocking");
        let r = only(&records);
        match case.kind {
            Some(kind) => assert_eq!((r.outcome, r.error_kind.as_str()), (Outcome::Error, kind)),
            None => assert_eq!(r.outcome, Outcome::Ok),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn async_streams_keep_each_timeout() {
    for case in cases() {
        let reply = case.reply.clone();
        let server = FakeServer::start(move |_| reply.clone()).unwrap();
        let (bus, records) = recording_bus();
        let engine = InstrumentedEngine::new_async(
            AsyncOpenAiEngine::new(config(&server, case.timeouts)).unwrap(),
            bus,
        );
        let params = GenerateParams::new("m");
        let started = Instant::now();
        let result = async {
            let mut stream = std::pin::pin!(engine.stream(&[Message::user("hi")], &params).await?);
            while let Some(chunk) = stream.next().await {
                chunk?;
            }
            Ok(())
        }
        .await;
        check(&case, result, started.elapsed(), "async");
        let r = only(&records);
        match case.kind {
            Some(kind) => assert_eq!((r.outcome, r.error_kind.as_str()), (Outcome::Error, kind)),
            None => assert_eq!(r.outcome, Outcome::Ok),
        }
    }
}
