//! `serve`: the real binary on a free port, scraped over plain TCP. Counters equal the stored
//! calls and follow records written by another process; hostile model names stay one series;
//! unknown paths, other methods and garbage are answered without harm; SIGTERM stops it cleanly;
//! startup errors are one line with a non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::{Running, on_db, record, seed, spawn, stdout_of, telemetry_std, temp_db};
use telemetry_store::TelemetryStore;

/// A running `telemetry serve`, killed when dropped (a failing test leaves nothing behind).
struct Server {
    run: Running,
    addr: SocketAddr,
}

impl Server {
    fn start(home: &Path, db: &Path) -> Server {
        let run = spawn(telemetry_std(home).args([
            "--db",
            db.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ]));
        // "serving http://127.0.0.1:PORT/metrics from DB (Ctrl-C to stop)"
        let addr = run.addr_between("serving http://", "/metrics");
        Server { run, addr }
    }

    fn get(&self, path: &str) -> Response {
        self.send(&format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        ))
    }

    fn send(&self, raw: &str) -> Response {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        Response::parse(&String::from_utf8(bytes).unwrap())
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        self.run.sigterm();
        self.run
            .wait_exit(Duration::from_secs(10), "serve ignored SIGTERM")
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn parse(raw: &str) -> Response {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Response {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The sum of every `inference_calls_total` sample.
fn calls_total(body: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with("inference_calls_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn metrics_count_the_demo_calls_and_follow_new_records() {
    let (dir, db) = temp_db();
    stdout_of(on_db(dir.path(), &db).args(["demo", "--calls", "150", "--gpu", "off", "--stream"]));
    let server = Server::start(dir.path(), &db);
    let r = server.get("/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(calls_total(&r.body), 150.0, "{}", r.body);
    assert!(
        r.body
            .contains("# TYPE inference_latency_seconds histogram")
    );
    let ttft_count: f64 = r
        .body
        .lines()
        .filter(|l| l.starts_with("inference_time_to_first_token_seconds_count{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    // Streamed calls that failed before their first token have no TTFT.
    let with_ttft = stdout_of(on_db(dir.path(), &db).args(["export", "--format", "ndjson"]))
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["ttft"].is_number()
        })
        .count();
    assert!(with_ttft > 100, "{with_ttft}");
    assert_eq!(ttft_count, with_ttft as f64);

    // Another process (here: this one, through the store) writes while serve runs.
    let store = TelemetryStore::open(&db).unwrap();
    for i in 0..7 {
        store.record(&record("late", "vllm", "a", 1.0, i)).unwrap();
    }
    store.close().unwrap();
    let r = server.get("/metrics");
    assert_eq!(calls_total(&r.body), 157.0, "{}", r.body);
    assert!(
        r.body.contains(
            r#"inference_calls_total{model="late",engine="vllm",agent="a",outcome="ok"} 7"#
        ),
        "{}",
        r.body
    );
}

#[test]
fn a_scraper_that_asks_for_openmetrics_gets_it() {
    let (dir, db) = temp_db();
    stdout_of(on_db(dir.path(), &db).args(["demo", "--calls", "40", "--gpu", "off"]));
    let server = Server::start(dir.path(), &db);
    // The Accept header Prometheus 2.x sends.
    let r = server.send(
        "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAccept: \
         application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;\
         q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(r.header("vary"), Some("accept"));
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
    assert!(
        r.body.contains("# TYPE inference_calls counter"),
        "{}",
        r.body
    );
    assert_eq!(calls_total(&r.body), 40.0, "{}", r.body);
    // A client that prefers the classic text format still gets it.
    let r = server.send(
        "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAccept: \
         text/plain;version=0.0.4, application/openmetrics-text;q=0.5\r\n\r\n",
    );
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!r.body.contains("# EOF"));
    assert_eq!(calls_total(&r.body), 40.0, "{}", r.body);
}

#[test]
fn hostile_model_names_stay_one_escaped_series() {
    let (dir, db) = temp_db();
    seed(&db, &[record("q \"x\" \\ y\nz", "vllm", "a", 10.0, 1)]);
    let server = Server::start(dir.path(), &db);
    let r = server.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains(
            r#"inference_calls_total{model="q \"x\" \\ y\nz",engine="vllm",agent="a",outcome="ok"} 1"#
        ),
        "{}",
        r.body
    );
    // Every line is a comment or one sample: the newline never splits a series.
    for line in r.body.lines() {
        assert!(
            line.starts_with('#') || line.starts_with("inference_"),
            "stray line {line:?}"
        );
    }
}

#[test]
fn index_404_405_and_garbage_are_answered_and_serving_goes_on() {
    let (dir, db) = temp_db();
    seed(&db, &[record("m", "vllm", "a", 10.0, 1)]);
    let server = Server::start(dir.path(), &db);

    let index = server.get("/");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        index.body.contains(r#"<a href="/metrics">"#),
        "{}",
        index.body
    );

    assert_eq!(server.get("/nope").status, 404);
    assert_eq!(server.get("/metrics/").status, 404);
    // A query string does not change the route.
    assert_eq!(server.get("/metrics?x=1").status, 200);

    let post = server.send(
        "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let head = server.send("HEAD /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    let garbage = server.send("\x00\x01 not http at all\r\n\r\n");
    assert_eq!(garbage.status, 400);
    // Half a request, then the client leaves.
    drop(
        TcpStream::connect(server.addr)
            .unwrap()
            .write_all(b"GET /met"),
    );

    let r = server.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(calls_total(&r.body), 1.0);
}

#[test]
fn concurrent_scrapes_all_succeed() {
    let (dir, db) = temp_db();
    seed(
        &db,
        &(0..50)
            .map(|i| record("m", "vllm", "a", 10.0 + i as f64, i))
            .collect::<Vec<_>>(),
    );
    let server = Server::start(dir.path(), &db);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| s.spawn(|| server.get("/metrics")))
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(calls_total(&r.body), 50.0);
        }
    });
}

#[test]
fn sigterm_stops_it_cleanly() {
    let (dir, db) = temp_db();
    seed(&db, &[record("m", "vllm", "a", 10.0, 1)]);
    let mut server = Server::start(dir.path(), &db);
    assert_eq!(server.get("/metrics").status, 200);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(server.addr).is_err());
}

fn one_line_error(output: &std::process::Output) -> String {
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(output.stdout.is_empty());
    stderr
}

#[test]
fn startup_errors_are_one_line_with_a_non_zero_exit() {
    let (dir, db) = temp_db();
    let run = |db: &Path, listen: &str| {
        on_db(dir.path(), db)
            .args(["serve", "--listen", listen])
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap()
    };

    let missing = run(&db, "127.0.0.1:0");
    assert_eq!(missing.status.code(), Some(2));
    assert!(one_line_error(&missing).contains("no telemetry database at"));
    assert!(!db.exists());

    let not_db = dir.path().join("notes.txt");
    std::fs::write(&not_db, "hello, this is not SQLite at all, just some text").unwrap();
    let bad = run(&not_db, "127.0.0.1:0");
    assert_eq!(bad.status.code(), Some(1));
    assert!(one_line_error(&bad).contains("is not a SQLite database"));

    seed(&db, &[record("m", "vllm", "a", 10.0, 1)]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let in_use = run(&db, &port);
    assert_eq!(in_use.status.code(), Some(1));
    let e = one_line_error(&in_use);
    assert!(e.contains(&format!("cannot listen on {port}")), "{e}");

    let usage = run(&db, "not-an-address");
    assert_eq!(usage.status.code(), Some(2));
}

/// Peak resident memory of process `pid`, in KiB (Linux).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn random_model_names_fold_into_one_overflow_series_and_the_scrape_stays_bounded() {
    const MODELS: u64 = 100_000;
    let (dir, db) = temp_db();
    let records: Vec<_> = (0..MODELS)
        .map(|i| record(&format!("random-{i:06}"), "vllm", "", 60.0, i))
        .collect();
    seed(&db, &records);
    let mut server = Server::start(dir.path(), &db);
    let r = server.get("/metrics");
    assert_eq!(r.status, 200);
    let limit = 2000;
    assert_eq!(calls_total(&r.body), MODELS as f64, "every call is counted");
    let overflow = r
        .body
        .lines()
        .find(|l| {
            l.starts_with(r#"inference_calls_total{otel_metric_overflow="true",outcome="ok"}"#)
        })
        .expect("an overflow series");
    assert!(
        overflow.ends_with(&format!(" {}", MODELS - limit)),
        "{overflow}"
    );
    assert!(
        r.body
            .contains(&format!("\ninference_folded_series {}\n", MODELS - limit)),
        "the folded label sets are reported"
    );
    let series = r
        .body
        .lines()
        .filter(|l| l.starts_with("inference_input_tokens_total{"))
        .count();
    assert_eq!(series, limit as usize + 1);
    // About 3.7 KB per label set (counters and histograms): 2001 of them, 7.5 MB, where all
    // 100 000 made 375 MB.
    assert!(r.body.len() < 16 << 20, "{} bytes", r.body.len());
    if let Some(kib) = peak_rss_kib(server.run.child.id()) {
        // The scrape holds `limit` rollups and the hashes of the folded label sets: 49 MB
        // (debug build), where all 100 000 took 487 MB.
        assert!(kib < 128 * 1024, "serve peaked at {kib} KiB");
        eprintln!("serve peaked at {kib} KiB for {MODELS} model names");
    }
    server.terminate();
}

/// `TELEMETRY_RETAIN=1h serve`: a writer of serve's own deletes what is older than the window
/// while scrapes go on; the exit line says what it deleted, and `check` stays healthy.
#[test]
fn retain_from_the_environment_prunes_while_serving() {
    let (dir, db) = temp_db();
    let mut records: Vec<_> = (0..40)
        .map(|i| record("old", "vllm", "a", 7_200.0 + i as f64, i))
        .collect();
    records.extend((0..10).map(|i| record("new", "vllm", "a", 10.0, i)));
    seed(&db, &records);
    let run = spawn(
        telemetry_std(dir.path())
            .env("TELEMETRY_RETAIN", "1h")
            .args([
                "--db",
                db.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ]),
    );
    let addr = run.addr_between("serving http://", "/metrics");
    let mut server = Server { run, addr };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = server.get("/metrics");
        assert_eq!(r.status, 200);
        if calls_total(&r.body) == 10.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old records still counted: {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.terminate().success());
    let rest = server.run.rest_of_stdout();
    assert!(
        rest.contains("retention 1h: deleted 40 records older than"),
        "{rest}"
    );
    on_db(dir.path(), &db).arg("check").assert().success();
}
