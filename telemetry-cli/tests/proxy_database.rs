//! `telemetry proxy` whose database goes away or fills up while it records: the real binary in
//! front of a fake upstream, under load. A database deleted or replaced is said on stderr at
//! once, `/telemetry/health` turns `degraded`, the exit summary counts what was not written and
//! the exit status is 1; a file moved over the path keeps its own records; on a full disk the
//! records still pending at exit are counted, so written + dropped = calls recorded.
#![cfg(feature = "proxy")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::proxy::RunningCli;
use common::{seed, standard_records, temp_db};
use telemetry_openai::fake::{FakeServer, Reply, chat_completion};
use telemetry_store::testing::Tmpfs;

const CHAT: &str = r#"{"model":"asked","messages":[{"role":"user","content":"hi"}]}"#;

/// Calls through the proxy from a thread until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl Load {
    fn start(proxy: &RunningCli) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let addr = proxy.addr;
        let thread = {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let reply = post(addr, CHAT);
                    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Load { stop, sent, thread }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.sent.load(Ordering::Relaxed)
    }
}

fn post(addr: std::net::SocketAddr, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// `/telemetry/health`: (HTTP status line, JSON body).
fn health(proxy: &RunningCli) -> (String, serde_json::Value) {
    let reply = proxy.request("GET", "/telemetry/health", "");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, serde_json::from_str(body).unwrap())
}

fn store_field(health: &serde_json::Value, field: &str) -> serde_json::Value {
    health["telemetry"]["store"][field].clone()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The numbers of the summary line "proxy stopped: R requests, C calls recorded (...); W
/// records written, D dropped (L of them accepted but never written)": (C, W, D, L).
fn summary_counts(stdout: &str) -> (u64, u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("proxy stopped:"))
        .unwrap_or_else(|| panic!("no summary in {stdout:?}"));
    let number_before = |word: &str| -> u64 {
        let end = line
            .find(word)
            .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
        let digits: String = line[..end]
            .trim_end()
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        digits.parse().unwrap()
    };
    let lost = if line.contains("accepted but never written") {
        number_before(" of them accepted")
    } else {
        0
    };
    (
        number_before(" calls recorded"),
        number_before(" records written"),
        number_before(" dropped"),
        lost,
    )
}

fn count_rows(db: &Path, agent: &str) -> (i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT count(*), count(*) FILTER (WHERE agent = ?1) FROM telemetry_records",
        [agent],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// Starts the proxy on `db` under load until it has written 200 records, does `change` to the
/// file, and waits until health reports the store stopped; then lets the load go on a moment
/// and stops everything. Returns (records written when the file changed, the exit status,
/// stdout, stderr, the health JSON seen after the change).
fn change_under_load(
    home: &Path,
    db: &Path,
    change: impl FnOnce(),
) -> (u64, std::process::ExitStatus, String, String, String) {
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("served", 5, 3))).unwrap();
    let mut proxy = RunningCli::start_capturing_stderr(home, db, &upstream.url(), &[]);
    let load = Load::start(&proxy);
    wait_until("200 records are written", || {
        store_field(&health(&proxy).1, "written").as_u64() >= Some(200)
    });
    let before = health(&proxy).1;
    change();
    let mut seen = (String::new(), serde_json::Value::Null);
    wait_until("health reports the store stopped", || {
        seen = health(&proxy);
        seen.1["status"] == "degraded"
    });
    assert!(seen.0.starts_with("HTTP/1.1 503"), "{}", seen.0);
    let sent = load.sent();
    wait_until("more calls went through", || load.sent() >= sent + 50);
    load.finish();
    proxy.terminate();
    let (status, stdout, stderr) = proxy.wait_with_stderr();
    let written_before = store_field(&before, "written").as_u64().unwrap();
    (written_before, status, stdout, stderr, seen.1.to_string())
}

/// `rm` of the database under load: said on stderr and in health, nothing recorded after it is
/// claimed as written or written into the deleted file (kept reachable by a hard link here),
/// exit status 1.
#[test]
fn a_database_deleted_under_the_proxy_is_reported_and_nothing_more_is_claimed_written() {
    let (dir, db) = temp_db();
    let keep = dir.path().join("keep.db");
    let (written_before, status, stdout, stderr, seen) = change_under_load(dir.path(), &db, || {
        std::fs::hard_link(&db, &keep).unwrap();
        std::fs::remove_file(&db).unwrap();
    });
    assert!(seen.contains("was deleted"), "{seen}");
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("telemetry: error:") && stderr.contains("was deleted"),
        "{stderr}"
    );
    let (calls, written, dropped, _lost) = summary_counts(&stdout);
    assert_eq!(written + dropped, calls, "{stdout}");
    assert!(dropped > 0, "{stdout}");
    let (in_old_file, _) = count_rows(&keep, "cli-test");
    assert!(in_old_file as u64 >= written, "{in_old_file} {stdout}");
    // Each health read took a few calls' time: the batches in flight then are the slack.
    assert!(
        written <= written_before + 200 && in_old_file as u64 <= written_before + 200,
        "records recorded after the file went were written into it: {written_before} written \
         before, {written} claimed, {in_old_file} in the deleted file; {stdout}"
    );
}

/// `mv` of another database over the file under load: the moved-in file keeps its own records
/// (readers of the path see them, not the proxy's), exit status 1.
#[test]
fn a_database_replaced_under_the_proxy_keeps_the_new_files_records() {
    let (dir, db) = temp_db();
    let other = dir.path().join("other.db");
    let records = standard_records();
    seed(&other, &records);
    let (_, status, stdout, stderr, seen) = change_under_load(dir.path(), &db, || {
        std::fs::rename(&other, &db).unwrap();
    });
    assert!(seen.contains("replaced by another file"), "{seen}");
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("replaced by another file"), "{stderr}");
    let (calls, written, dropped, _) = summary_counts(&stdout);
    assert_eq!(written + dropped, calls, "{stdout}");
    assert_eq!(
        count_rows(&db, "cli-test"),
        (records.len() as i64, 0),
        "the moved-in database does not read as itself"
    );
}

/// A full disk (a 512 KiB tmpfs) at shutdown: the records the store still held are counted, so
/// written + dropped = calls recorded, and the exit status is 1.
#[test]
fn records_pending_on_a_full_disk_at_shutdown_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("disk");
    std::fs::create_dir(&mount_point).unwrap();
    let Some(mount) = Tmpfs::mount_or_skip(
        &mount_point,
        "512k",
        "telemetry-store's records_pending_on_a_locked_file_at_close_are_counted_as_lost covers \
         the counting",
    ) else {
        return;
    };
    let db = mount.path().join("t.db");
    let upstream =
        FakeServer::start(|_| Reply::json(200, chat_completion("served", 5, 3))).unwrap();
    let mut proxy = RunningCli::start_capturing_stderr(dir.path(), &db, &upstream.url(), &[]);
    let load = Load::start(&proxy);
    wait_until("the store fails (disk full)", || {
        store_field(&health(&proxy).1, "last_error")
            .as_str()
            .is_some_and(|e| e.contains("full"))
    });
    let sent = load.sent();
    wait_until("more calls went through", || load.sent() >= sent + 20);
    load.finish();
    proxy.terminate();
    let (status, stdout, stderr) = proxy.wait_with_stderr();
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("full"), "{stderr}");
    let (calls, written, dropped, lost) = summary_counts(&stdout);
    assert_eq!(written + dropped, calls, "{stdout}");
    assert!(lost > 0, "nothing was pending at exit? {stdout}");
    drop(proxy);
    drop(mount);
}
