//! `run`: real HTTP calls (to the fake OpenAI-compatible server) are recorded with the server's
//! tokens, failures are recorded with their kind, and bad prompt files are usage errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;

use common::{exported, on_db, stdout_of, temp_db};
use predicates::prelude::*;
use telemetry_core::Outcome;
use telemetry_openai::fake::{FakeServer, Reply};

const STREAM: &str = concat!(
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Blue\"}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" light\"}}]}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2,\"total_tokens\":13}}\n\n",
    "data: [DONE]\n\n",
);

fn server() -> FakeServer {
    FakeServer::start(|req| match req.path() {
        "/v1/models" => Reply::json(200, r#"{"data":[{"id":"m","owned_by":"llamacpp"}]}"#),
        _ if req.json()["model"] == "missing" => Reply::json(
            404,
            r#"{"error":{"code":404,"message":"model not found","type":"not_found_error"}}"#,
        ),
        _ => Reply::sse_events(STREAM.as_bytes(), Duration::from_millis(5)),
    })
    .unwrap()
}

#[test]
fn run_records_every_call_with_the_servers_tokens() {
    let server = server();
    let (dir, db) = temp_db();
    let prompts = dir.path().join("p.jsonl");
    std::fs::write(&prompts, "\"one\"\n{\"prompt\":\"two\"}\n\n{\"messages\":[{\"role\":\"user\",\"content\":\"three\"}]}\n").unwrap();
    let out = stdout_of(on_db(dir.path(), &db).args([
        "run",
        "--url",
        &server.base_url(),
        "--model",
        "smollm2",
        "--stream",
        "--calls",
        "6",
        "--concurrency",
        "2",
        "--prompts",
        prompts.to_str().unwrap(),
        "--no-cache-prompt",
    ]));
    assert!(out.contains("6 streaming calls"), "{out}");
    assert!(out.contains("(llama.cpp)"), "{out}");
    assert!(out.contains("recorded 6 calls (0 failed)"), "{out}");
    assert!(out.contains("smollm2"), "stats table: {out}");
    let records = exported(dir.path(), &db);
    assert_eq!(records.len(), 6);
    for r in &records {
        assert_eq!((r.prompt_tokens, r.completion_tokens), (11, 2));
        assert!(r.is_streaming && r.ttft.is_some() && r.outcome == Outcome::Ok);
        assert_eq!(
            (r.engine.as_str(), r.agent.as_str()),
            ("llama.cpp", "telemetry-run")
        );
        // `server.base_url()` is http://127.0.0.1:PORT/v1.
        let port: u64 = server.base_url()[17..]
            .trim_end_matches("/v1")
            .parse()
            .unwrap();
        assert_eq!(
            r.metadata["server.address"], "127.0.0.1",
            "{:?}",
            r.metadata
        );
        assert_eq!(r.metadata["server.port"], port, "{:?}", r.metadata);
    }
    let bodies: Vec<_> = server
        .requests()
        .iter()
        .filter(|r| r.path() == "/v1/chat/completions")
        .map(|r| r.json())
        .collect();
    assert_eq!(bodies.len(), 6);
    assert!(bodies.iter().all(|b| b["cache_prompt"] == false));
    let contents: std::collections::BTreeSet<_> = bodies
        .iter()
        .map(|b| b["messages"][0]["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(contents.len(), 3, "{contents:?}");
}

#[test]
fn failed_calls_are_recorded_and_all_failing_is_an_error() {
    let server = server();
    let (dir, db) = temp_db();
    on_db(dir.path(), &db)
        .args(["run", "--url", &server.base_url()])
        .args(["--model", "missing", "--calls", "2", "--engine", "test"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("recorded 2 calls (2 failed)"))
        .stderr(predicate::str::contains("model not found (http_404)"));
    let records = exported(dir.path(), &db);
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.error_kind == "http_404" && r.engine == "test")
    );
}

#[test]
fn bad_prompt_files_are_usage_errors() {
    let (dir, db) = temp_db();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "\"ok\"\n[1]\n").unwrap();
    on_db(dir.path(), &db)
        .args(["run", "--url", "http://127.0.0.1:9/v1"])
        .args(["--model", "m", "--prompts", bad.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.jsonl line 2"));
    on_db(dir.path(), &db)
        .args(["run", "--url", "http://127.0.0.1:9/v1"])
        .args(["--model", "m", "--prompts", "/nonexistent.jsonl"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("prompts file"));
}

#[test]
fn urls_no_call_can_reach_are_usage_errors_and_write_nothing() {
    let (dir, db) = temp_db();
    for url in [
        "notaurl",
        "http://",
        "ftp://x/v1",
        "http://127.0.0.1:99999/v1",
        "http://h:0",
    ] {
        on_db(dir.path(), &db)
            .args(["run", "--url", url, "--model", "m", "--calls", "2"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--url"));
        assert!(!db.exists(), "{url}: nothing is written");
    }
}

#[test]
fn the_table_of_a_run_counts_its_own_calls_not_those_of_the_run_before() {
    let server = server();
    let (dir, db) = temp_db();
    let run = |calls: &str| {
        stdout_of(on_db(dir.path(), &db).args([
            "run",
            "--url",
            &server.base_url(),
            "--model",
            "m",
            "--stream",
            "--calls",
            calls,
        ]))
    };
    let first = run("3");
    let second = run("2");
    // The table's overview line counts the run's calls ("calls 2 ...").
    let calls_line = |out: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with("calls "))
            .unwrap_or_else(|| panic!("no calls line in {out}"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(calls_line(&first), "3", "{first}");
    assert_eq!(calls_line(&second), "2", "{second}");
    let records = exported(dir.path(), &db);
    assert_eq!(records.len(), 5);
    let runs: std::collections::BTreeSet<_> = records
        .iter()
        .map(|r| r.metadata["telemetry.run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(runs.len(), 2, "one run id per run");
}

/// The database deleted while `run` records (slow streams, so the calls outlast the deletion):
/// said on stderr, exit status 1.
#[test]
fn a_database_deleted_during_a_run_fails_it_and_says_so() {
    let server =
        FakeServer::start(|_| Reply::sse_events(STREAM.as_bytes(), Duration::from_millis(300)))
            .unwrap();
    let (dir, db) = temp_db();
    let (status, first, stdout, stderr) = common::delete_db_while_recording(
        common::telemetry_std(dir.path())
            .args([
                "--db",
                db.to_str().unwrap(),
                "run",
                "--url",
                &server.base_url(),
            ])
            .args(["--model", "m", "--stream", "--calls", "2", "--prompt", "hi"]),
        &db,
    );
    assert!(first.starts_with("run: "), "{first}");
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("was deleted"), "{stderr}");
    assert!(!stdout.contains("recorded 2 calls"), "{stdout}");
}

/// A stream that sends its head, then `parts`.
fn streaming_server(
    parts: Vec<telemetry_openai::fake::Part>,
    end: telemetry_openai::fake::End,
) -> FakeServer {
    let reply = Reply {
        parts,
        ..Reply::sse(b"", 1, Duration::ZERO)
    }
    .ending(end);
    FakeServer::start(move |req| match req.path() {
        "/v1/models" => Reply::json(200, r#"{"data":[{"id":"m","owned_by":"llamacpp"}]}"#),
        _ => reply.clone(),
    })
    .unwrap()
}

#[test]
fn a_stream_of_pings_or_silence_ends_at_the_first_token_timeout_under_its_kind() {
    use telemetry_openai::fake::{End, Part};
    let ping = || Part::Bytes(Bytes::from_static(b": ping\n\n"));
    // Pings every 100 ms for 3 s, then a token: today recorded ok with a 3 s TTFT.
    let pings: Vec<Part> = (0..30)
        .flat_map(|_| [Part::Pause(Duration::from_millis(100)), ping()])
        .chain([Part::Bytes(Bytes::from_static(STREAM.as_bytes()))])
        .collect();
    // The head, then nothing for 3 s.
    let silent = Vec::new();
    for (name, parts, end) in [
        ("pings", pings, End::Complete),
        ("silence", silent, End::Stall(Duration::from_secs(3))),
    ] {
        let server = streaming_server(parts, end);
        let (dir, db) = temp_db();
        let started = std::time::Instant::now();
        on_db(dir.path(), &db)
            .args([
                "run",
                "--url",
                &server.base_url(),
                "--model",
                "m",
                "--stream",
            ])
            .args(["--calls", "1", "--timeout", "0.5", "--idle-timeout", "60"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("timeout_first_token"));
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "{name}: took {:?}",
            started.elapsed()
        );
        let records = exported(dir.path(), &db);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(
            (r.outcome, r.error_kind.as_str()),
            (Outcome::Error, "timeout_first_token"),
            "{name}"
        );
        assert!(r.ttft.is_none(), "{name}: no first token: {:?}", r.ttft);
        assert!(r.latency_seconds < 2.0, "{name}: {}", r.latency_seconds);
    }
}

#[test]
fn the_between_chunks_and_total_timeouts_have_their_own_kinds() {
    use telemetry_openai::fake::{End, Part};
    let content = || {
        Part::Bytes(Bytes::from_static(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
        ))
    };
    let ping = || Part::Bytes(Bytes::from_static(b": ping\n\n"));
    let idle: Vec<Part> = std::iter::once(content())
        .chain((0..30).flat_map(|_| [Part::Pause(Duration::from_millis(100)), ping()]))
        .collect();
    let flowing: Vec<Part> = (0..30)
        .flat_map(|_| [Part::Pause(Duration::from_millis(100)), content()])
        .collect();
    for (parts, flags, kind) in [
        (idle, ["--idle-timeout", "0.5"], "timeout_idle"),
        (flowing, ["--total-timeout", "0.8"], "timeout_total"),
    ] {
        let server = streaming_server(parts, End::Complete);
        let (dir, db) = temp_db();
        on_db(dir.path(), &db)
            .args([
                "run",
                "--url",
                &server.base_url(),
                "--model",
                "m",
                "--stream",
            ])
            .args(["--calls", "1"])
            .args(flags)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(kind));
        let records = exported(dir.path(), &db);
        assert_eq!(records[0].error_kind, kind);
        assert!(
            records[0].latency_seconds < 2.0,
            "{kind}: {}",
            records[0].latency_seconds
        );
    }
}

#[test]
fn sigint_stops_sending_records_the_calls_in_flight_as_cancelled_and_prints_the_table() {
    // Each stream takes ~3 s (10 events 300 ms apart): SIGINT lands with 3 calls in flight.
    let server = FakeServer::start(|req| match req.path() {
        "/v1/models" => Reply::json(200, r#"{"data":[{"id":"m","owned_by":"llamacpp"}]}"#),
        _ => Reply::sse_events(STREAM.repeat(3).as_bytes(), Duration::from_millis(300)),
    })
    .unwrap();
    let (dir, db) = temp_db();
    let mut run = common::spawn(
        common::telemetry_std(dir.path())
            .args([
                "--db",
                db.to_str().unwrap(),
                "run",
                "--url",
                &server.base_url(),
            ])
            .args([
                "--model",
                "m",
                "--stream",
                "--calls",
                "1000000",
                "--concurrency",
                "3",
            ])
            .stderr(std::process::Stdio::piped()),
    );
    assert!(run.first_line.starts_with("run: "), "{}", run.first_line);
    std::thread::sleep(Duration::from_millis(1_000));
    let status = std::process::Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = run.wait_exit(Duration::from_secs(10), "run ignored SIGINT");
    let stdout = run.rest_of_stdout();
    assert_eq!(exit.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("interrupted: stopped after 3 calls, 3 in flight recorded as cancelled"),
        "{stdout}"
    );
    assert!(stdout.contains("calls "), "the table of what ran: {stdout}");
    let sent = server
        .requests()
        .iter()
        .filter(|r| r.path() == "/v1/chat/completions")
        .count();
    let records = exported(dir.path(), &db);
    assert_eq!(records.len(), sent, "every call sent is recorded");
    assert_eq!(sent, 3);
    assert!(
        records.iter().all(|r| r.outcome == Outcome::Cancelled),
        "{:?}",
        records.iter().map(|r| r.outcome).collect::<Vec<_>>()
    );
}
