//! `telemetry proxy`: the real binary in front of a fake upstream. Calls are recorded into the
//! database; `/metrics` and `/telemetry/health` are answered on the proxy's port; SIGTERM in the
//! middle of a stream lets it finish and loses no record; bad arguments are one-line errors.
#![cfg(feature = "proxy")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use common::proxy::RunningCli;
use common::{on_db, temp_db};
use telemetry_openai::fake::{FakeServer, Reply, chat_completion, chat_stream};

const CHAT: &str = r#"{"model":"asked","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM: &str = r#"{"model":"asked","messages":[],"stream":true}"#;

fn rows(db: &Path) -> Vec<(String, String, String, String, i64, i64, bool)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT model_id, engine, agent, outcome, prompt_tokens, completion_tokens, is_streaming \
             FROM telemetry_records ORDER BY timestamp",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn sigterm_mid_stream_lets_it_finish_and_loses_no_record() {
    let (dir, db) = temp_db();
    // A 1.3 s stream: 30 words 40 ms apart, with usage.
    let events = chat_stream("served", 30, Some((7, 30)), Duration::from_millis(40));
    let expected_last = events.last().unwrap().1.clone();
    let upstream = FakeServer::start(move |req| {
        if req.body.windows(6).any(|w| w == b"stream") {
            Reply::events(events.clone())
        } else {
            Reply::json(200, chat_completion("served", 11, 4))
        }
    })
    .unwrap();
    let mut proxy = RunningCli::start(dir.path(), &db, &upstream.url(), &[]);

    let blocking = proxy.request("POST", "/v1/chat/completions", CHAT);
    assert!(blocking.starts_with("HTTP/1.1 200"), "{blocking}");

    let mut stream = proxy.connect("POST", "/v1/chat/completions", STREAM);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"content\":\" w0\"") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    proxy.terminate();
    stream.read_to_end(&mut got).unwrap();
    let got = String::from_utf8(got).unwrap();
    assert!(
        got.contains("\"content\":\" w29\""),
        "the stream was cut: {got}"
    );
    assert!(
        got.contains(std::str::from_utf8(&expected_last).unwrap()),
        "no [DONE]"
    );

    let (status, rest) = proxy.wait();
    assert!(status.success(), "exit {status:?}: {rest}");
    assert!(
        rest.contains("2 calls recorded (0 failed, 0 cancelled)"),
        "{rest}"
    );
    assert!(rest.contains("2 records written, 0 dropped"), "{rest}");
    let rows = rows(&db);
    assert_eq!(
        rows,
        [
            (
                "served".into(),
                "fake-llama".into(),
                "cli-test".into(),
                "ok".into(),
                11,
                4,
                false
            ),
            (
                "served".into(),
                "fake-llama".into(),
                "cli-test".into(),
                "ok".into(),
                7,
                30,
                true
            ),
        ]
    );
}

#[test]
fn metrics_and_health_are_answered_on_the_proxy_port() {
    let (dir, db) = temp_db();
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("served", 3, 2))).unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(
        &prices,
        "[models.served]\ninput_per_mtok = 1000000.0\noutput_per_mtok = 2000000.0\n",
    )
    .unwrap();
    let mut proxy = RunningCli::start(
        dir.path(),
        &db,
        &upstream.url(),
        // A collector that is down never fails the recording.
        &[
            "--prices",
            prices.to_str().unwrap(),
            "--otlp",
            "http://127.0.0.1:9",
        ],
    );
    for _ in 0..3 {
        proxy.request("POST", "/v1/chat/completions", CHAT);
    }
    let health = proxy.request("GET", "/telemetry/health", "");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"healthy\":true"), "{health}");
    // Records reach /metrics once the store commits them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = proxy.request("GET", "/metrics", "");
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        if metrics.contains(r#"inference_calls_total{model="served",engine="fake-llama",agent="cli-test",outcome="ok"} 3"#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed 3 calls: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        upstream.request_count(),
        3,
        "/metrics and health are not forwarded"
    );
    proxy.terminate();
    let (status, rest) = proxy.wait();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("3 records written, 0 dropped"), "{rest}");
    assert!(rest.contains("otlp: "), "the OTLP summary line: {rest}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let cost: f64 = conn
        .query_row("SELECT SUM(cost_usd) FROM telemetry", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cost, 3.0 * (3.0 + 2.0 * 2.0), "priced from the TOML file");
}

#[cfg(feature = "otlp")]
#[test]
fn otlp_spans_name_the_upstream_that_served_each_call() {
    let (dir, db) = temp_db();
    let a = FakeServer::start(|_| Reply::json(200, chat_completion("a", 1, 1))).unwrap();
    let b = FakeServer::start(|_| Reply::json(200, chat_completion("b", 2, 2))).unwrap();
    let receiver = telemetry_otel::testing::OtlpReceiver::start().unwrap();
    let route = format!("big={}", b.url());
    let mut proxy = RunningCli::start(
        dir.path(),
        &db,
        &a.url(),
        &["--route", &route, "--otlp", &receiver.endpoint()],
    );
    proxy.request("POST", "/v1/chat/completions", r#"{"model":"big"}"#);
    proxy.request("POST", "/v1/chat/completions", r#"{"model":"small"}"#);
    proxy.terminate();
    let (status, rest) = proxy.wait();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("otlp: 2 spans sent"), "{rest}");
    let mut served: Vec<_> = receiver
        .spans()
        .iter()
        .map(|s| {
            let get = |key| {
                telemetry_otel::testing::attribute_text(&s.attributes, key).unwrap_or_default()
            };
            (
                get("gen_ai.response.model"),
                get("server.address"),
                get("server.port"),
            )
        })
        .collect();
    served.sort();
    let at = |model: &str, port: u16| (model.to_owned(), "127.0.0.1".to_owned(), port.to_string());
    assert_eq!(served, [at("a", a.addr().port()), at("b", b.addr().port())]);
}

#[cfg(feature = "otlp")]
#[test]
fn proxy_with_a_gpu_and_otlp_exports_the_gpus_device_series() {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let (dir, db) = temp_db();
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("served", 3, 2))).unwrap();
    let receiver = telemetry_otel::testing::OtlpReceiver::start().unwrap();
    let mut proxy = RunningCli::start(
        dir.path(),
        &db,
        &upstream.url(),
        &["--gpu", "mock", "--otlp", &receiver.endpoint()],
    );
    proxy.request("POST", "/v1/chat/completions", CHAT);
    proxy.terminate();
    let (status, rest) = proxy.wait();
    assert!(status.success(), "{rest}");
    let metrics = receiver.last_metrics();
    for (name, unit) in [("hw.power", "W"), ("hw.energy", "J")] {
        let m = metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name}: {rest}"));
        assert_eq!(m.unit, unit);
        let points = match &m.data {
            Some(Data::Gauge(g)) => &g.data_points,
            Some(Data::Sum(s)) => &s.data_points,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(points.len(), 1, "{name}: one mock GPU");
        let attributes = &points[0].attributes;
        assert_eq!(
            telemetry_otel::testing::attribute_text(attributes, "hw.type").as_deref(),
            Some("gpu")
        );
        assert_eq!(
            telemetry_otel::testing::attribute_text(attributes, "hw.id").as_deref(),
            Some("GPU-mock-0000")
        );
    }
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let (dir, db) = temp_db();
    for (args, says) in [
        (
            vec!["--upstream", "ftp://api.example.com"],
            "the scheme must be http:// or https://",
        ),
        (
            vec![
                "--upstream",
                "https://api.example.com",
                "--upstream-ca",
                "/nonexistent/ca.pem",
            ],
            "--upstream-ca: cannot use /nonexistent/ca.pem",
        ),
        (
            vec!["--upstream", "http://127.0.0.1:1", "--route", "nomodel"],
            "expected MODEL=URL",
        ),
        (
            vec![
                "--upstream",
                "http://127.0.0.1:1",
                "--first-byte-timeout",
                "18446744073709551615",
            ],
            "--first-byte-timeout",
        ),
        (
            vec![
                "--upstream",
                "http://127.0.0.1:1",
                "--prices",
                "/nonexistent/p.toml",
            ],
            "--prices",
        ),
    ] {
        let out = on_db(dir.path(), &db)
            .args(["proxy", "--listen", "127.0.0.1:0", "--gpu", "off"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// `--listen` on every interface: a warning on stderr (the proxy has no authentication: an open
/// relay, its health listing the upstreams); on loopback none.
#[test]
fn a_listen_address_beyond_loopback_is_warned_about() {
    let (dir, db) = temp_db();
    let upstream = FakeServer::start(|_| Reply::json(200, chat_completion("m", 1, 1))).unwrap();
    for (listen, warned) in [("0.0.0.0:0", true), ("127.0.0.1:0", false)] {
        let mut proxy = RunningCli::start_listening_on(dir.path(), &db, &upstream.url(), listen);
        let health = proxy.request("GET", "/telemetry/health", "");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        proxy.terminate();
        let (status, stdout, stderr) = proxy.wait_with_stderr();
        assert!(status.success(), "{stdout}\n{stderr}");
        let warning = stderr.contains("telemetry: warning: --listen")
            && stderr.contains("no authentication")
            && stderr.contains("open relay");
        assert_eq!(warning, warned, "{listen}: {stderr}");
    }
}

/// The proxy's `/metrics` answers OpenMetrics to a scraper that prefers it (what Prometheus
/// sends), the Prometheus text format otherwise, as `serve` does.
#[test]
fn metrics_on_the_proxy_port_honour_an_openmetrics_accept() {
    let (dir, db) = temp_db();
    let upstream = FakeServer::start(|_| Reply::json(200, chat_completion("m", 1, 1))).unwrap();
    let mut proxy = RunningCli::start(dir.path(), &db, &upstream.url(), &[]);
    let prometheus = "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n";
    let open = proxy.request_with_headers("GET", "/metrics", prometheus, "");
    let (head, body) = open.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(head.contains("vary: accept"), "{head}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let plain = proxy.request("GET", "/metrics", "");
    let (head, body) = plain.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!body.contains("# EOF"), "{body}");
    proxy.terminate();
    let (status, rest) = proxy.wait();
    assert!(status.success(), "{rest}");
}

#[test]
fn api_keys_are_forwarded_and_found_nowhere_else() {
    let (dir, db) = temp_db();
    // One secret per run, so nothing else can contain it by chance.
    let secret = format!(
        "sk-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let events = chat_stream("served", 3, Some((5, 3)), Duration::ZERO);
    let upstream = FakeServer::start(move |req| {
        if req.body.windows(6).any(|w| w == b"stream") {
            Reply::events(events.clone())
        } else if req.body.windows(3).any(|w| w == b"bad") {
            // An upstream that echoes the key in its error, as some do: the record keeps the
            // server's message, so the key must be taken out of it.
            let key = req.headers["x-api-key"].to_str().unwrap();
            Reply::json(
                401,
                format!(r#"{{"error":{{"message":"invalid api key {key}","code":401}}}}"#),
            )
        } else {
            Reply::json(200, chat_completion("served", 3, 2))
        }
    })
    .unwrap();
    let mut proxy = RunningCli::start_capturing_stderr(dir.path(), &db, &upstream.url(), &[]);
    let ask = |body: &str| {
        let mut stream = std::net::TcpStream::connect(proxy.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        std::io::Write::write_fmt(
            &mut stream,
            format_args!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
             Authorization: Bearer {secret}\r\nx-api-key: {secret}\r\napi-key: {secret}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    };
    assert!(ask(CHAT).starts_with("HTTP/1.1 200"));
    assert!(ask(STREAM).starts_with("HTTP/1.1 200"));
    assert!(ask(r#"{"model":"bad","messages":[]}"#).starts_with("HTTP/1.1 401"));
    for received in upstream.requests() {
        for header in ["authorization", "x-api-key", "api-key"] {
            let value = received.headers[header].to_str().unwrap();
            assert!(value.contains(&secret), "{header} is forwarded");
        }
    }
    let mut shown = proxy.request("GET", "/telemetry/health", "");
    shown.push_str(&proxy.request("GET", "/metrics", ""));
    // The WAL and shared memory as they are while the proxy runs, then the database after.
    let mut files = Vec::new();
    for suffix in ["-wal", "-shm"] {
        files.push(std::fs::read(format!("{}{suffix}", db.display())).unwrap_or_default());
    }
    proxy.terminate();
    let (status, rest, stderr) = proxy.wait_with_stderr();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("3 records written"), "{rest}");
    shown.push_str(&rest);
    shown.push_str(&proxy.run.first_line);
    shown.push_str(&stderr);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files.push(std::fs::read(&path).unwrap());
        }
    }
    assert!(!shown.contains(&secret), "shown: {shown}");
    for bytes in &files {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a file holds the key"
        );
    }
    assert_eq!(rows(&db).len(), 3);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let message: String = conn
        .query_row(
            "SELECT error_message FROM telemetry_records WHERE outcome = 'error'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        message,
        "HTTP 401 from the server: invalid api key [redacted]"
    );
}

/// `--retain 1h`: records older than an hour go in the background at start, the health
/// endpoint says so, the proxy keeps recording, and the exit line tells what was deleted.
#[test]
fn retain_prunes_old_records_and_health_and_exit_say_so() {
    let (dir, db) = temp_db();
    let old: Vec<_> = (0..50)
        .map(|i| common::record("old", "vllm", "a", 7_200.0 + i as f64, i))
        .collect();
    common::seed(&db, &old);
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("served", 3, 2))).unwrap();
    let mut proxy = RunningCli::start(dir.path(), &db, &upstream.url(), &["--retain", "1h"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        let health = proxy.request("GET", "/telemetry/health", "");
        if health.contains("\"passes\":1") {
            break health;
        }
        assert!(Instant::now() < deadline, "no retention pass: {health}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"window_s\":3600"), "{health}");
    assert!(health.contains("\"pruned\":50"), "{health}");
    proxy.request("POST", "/v1/chat/completions", CHAT);
    proxy.terminate();
    let (status, rest) = proxy.wait();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("1 records written"), "{rest}");
    assert!(
        rest.contains("retention 1h: deleted 50 records older than"),
        "{rest}"
    );
    assert_eq!(rows(&db).len(), 1);
    common::on_db(dir.path(), &db)
        .arg("check")
        .assert()
        .success();
}

#[test]
fn threads_2_serves_one_port_and_the_stop_line_and_health_count_every_worker() {
    const CALLS: usize = 40;
    let (dir, db) = temp_db();
    let events = chat_stream("served", 30, Some((7, 30)), Duration::from_millis(40));
    let upstream = FakeServer::start(move |req| {
        if req.body.windows(6).any(|w| w == b"stream") {
            Reply::events(events.clone())
        } else {
            Reply::json(200, chat_completion("served", 11, 4))
        }
    })
    .unwrap();
    let mut proxy = RunningCli::start(dir.path(), &db, &upstream.url(), &["--threads", "2"]);
    assert!(
        proxy.run.first_line.contains("; 2 worker threads)"),
        "{}",
        proxy.run.first_line
    );
    // Each request on a connection of its own: the kernel spreads them over both workers.
    for _ in 0..CALLS {
        let got = proxy.request("POST", "/v1/chat/completions", CHAT);
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
    for _ in 0..8 {
        let health = proxy.request("GET", "/telemetry/health", "");
        assert!(
            health.contains(&format!("\"calls_recorded\":{CALLS}")),
            "every worker's calls: {health}"
        );
    }
    // A stream in flight at SIGTERM finishes, whichever worker has it.
    let mut stream = proxy.connect("POST", "/v1/chat/completions", STREAM);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"content\":\" w0\"") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    proxy.terminate();
    stream.read_to_end(&mut got).unwrap();
    assert!(
        String::from_utf8(got)
            .unwrap()
            .contains("\"content\":\" w29\"")
    );
    let (status, rest) = proxy.wait();
    assert!(status.success(), "exit {status:?}: {rest}");
    let n = CALLS + 1;
    assert!(
        rest.contains(&format!("{n} calls recorded (0 failed, 0 cancelled)")),
        "{rest}"
    );
    assert!(
        rest.contains(&format!("{n} records written, 0 dropped")),
        "{rest}"
    );
    assert_eq!(rows(&db).len(), n);
}
