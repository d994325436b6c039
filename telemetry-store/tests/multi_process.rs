//! Four processes writing one file at once: every record is there and no error surfaces.
//!
//! The writers are this test binary re-run with `TELEMETRY_STORE_WRITER` set, executing the
//! `#[ignore]`d `child_writer` test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use telemetry_store::TelemetryStore;

const CHILD_ENV: &str = "TELEMETRY_STORE_WRITER";
const PER_PROCESS: u64 = 5_000;

/// Child mode: writes `PER_PROCESS` records tagged with its name, flushing now and then so that
/// the processes' transactions interleave, then closes. Any error fails (exit status non-zero).
#[test]
#[ignore = "child process of multi_process; runs only when re-executed by it"]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (tag, path) = spec.split_once('|').unwrap();
    let store = TelemetryStore::builder(path)
        .batch_size(500)
        .flush_interval(Duration::from_millis(5))
        .open()
        .unwrap();
    for i in 0..PER_PROCESS {
        store.record(&common::sample(tag, i)).unwrap();
        if i % 1_000 == 999 {
            store.flush().unwrap();
        }
    }
    store.close().unwrap();
    let stats = store.stats();
    assert_eq!(stats.written, PER_PROCESS);
    println!("failed_batches {}", stats.failed_batches);
}

#[test]
fn four_processes_append_to_one_file_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    // The file does not exist yet: the processes also race to create and migrate it.
    let path = dir.path().join("shared.db");
    let children: Vec<_> = (0..4)
        .map(|p| {
            common::child("child_writer")
                .env(CHILD_ENV, format!("proc-{p}|{}", path.display()))
                .output_spawn()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "writer failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let conn = common::connect(&path);
    let rows = common::read_all(&conn);
    assert_eq!(rows.len() as u64, 4 * PER_PROCESS);
    for p in 0..4 {
        let tag = format!("proc-{p}");
        let mine: Vec<_> = rows.iter().filter(|r| r.agent == tag).collect();
        assert_eq!(mine.len() as u64, PER_PROCESS);
        for (i, r) in mine.iter().enumerate() {
            assert_eq!(**r, common::sample(&tag, i as u64));
        }
    }
    common::assert_rollups_eq(&common::read_rollups(&conn), &common::rollups_of(&rows));
}

trait SpawnPiped {
    fn output_spawn(&mut self) -> std::process::Child;
}

impl SpawnPiped for std::process::Command {
    fn output_spawn(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}
