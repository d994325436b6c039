//! Readers on files they may not write: no `-wal`/`-shm` left behind, read-only files and
//! directories, and a log that cannot be read explained.
//!
//! Caveat: these tests often run as root, and root ignores permission bits, so a `chmod 0555`
//! directory does not stop root from creating files in it: the chmod test here cannot fail on
//! its own for root. The CLI's `tests/read_only.rs` runs the binary as `nobody` (through
//! `setpriv`) for the real thing; here, what is asserted is that no side file is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{DAY0, rec, write_db};
use telemetry_agg::TelemetryAggregator;
use telemetry_core::TimeRange;
use telemetry_store::TelemetryStore;

fn side(path: &Path, suffix: &str) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(suffix);
    os.into()
}

fn side_files(path: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| side(path, s))
        .filter(|p| p.exists())
        .collect()
}

fn records(n: u32) -> Vec<telemetry_core::TelemetryRecord> {
    (0..n)
        .map(|i| rec("m", "e", DAY0 + f64::from(i) * 30.0, 0.5))
        .collect()
}

/// Every read the commands make, on a database whose writer has closed (checkpointed, no log):
/// no `-wal` or `-shm` is left once the reader is gone. It used to leave both behind.
#[test]
fn reads_of_a_checkpointed_database_create_no_side_files() {
    let (_dir, path) = write_db(&records(3_000));
    assert_eq!(
        side_files(&path),
        Vec::<PathBuf>::new(),
        "the store closed cleanly"
    );
    let agg = TelemetryAggregator::open(&path).unwrap();
    let all = TimeRange::all();
    assert_eq!(agg.summary(&all).unwrap().total_calls, 3_000);
    assert!(agg.check_rollups().unwrap().is_consistent());
    assert_eq!(agg.integrity_check().unwrap(), ["ok"]);
    // Large enough for the parallel export, whose workers open their own connections.
    assert_eq!(agg.export_records(&all).unwrap().count(), 3_000);
    drop(agg);
    assert_eq!(side_files(&path), Vec::<PathBuf>::new(), "after close");
}

/// A read-only file in a read-only directory reads, and nothing is left behind (see the root
/// caveat above).
#[cfg(unix)]
#[test]
fn a_read_only_file_in_a_read_only_directory_reads() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = write_db(&records(100));
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    set(&path, 0o444);
    set(dir.path(), 0o555);
    let result = TelemetryAggregator::open(&path).and_then(|agg| {
        let n = agg.record_count(&TimeRange::all())?;
        let lines = agg.integrity_check()?;
        Ok((n, lines))
    });
    let after = side_files(&path);
    set(dir.path(), 0o755);
    set(&path, 0o644);
    let (n, lines) = result.unwrap();
    assert_eq!(n, 100);
    assert_eq!(lines, ["ok"]);
    assert!(after.is_empty(), "{after:?}");
}

/// An empty log (a writer opened the file and wrote nothing, or truncated it) holds nothing
/// the main file lacks: no index is created for it.
#[test]
fn an_empty_log_creates_no_index() {
    let (_dir, path) = write_db(&records(10));
    std::fs::write(side(&path, "-wal"), b"").unwrap();
    let agg = TelemetryAggregator::open(&path).unwrap();
    assert_eq!(agg.record_count(&TimeRange::all()).unwrap(), 10);
    drop(agg);
    assert!(!side(&path, "-shm").exists());
}

/// Commits still in the log of a running writer are read.
#[test]
fn commits_still_in_the_log_are_read() {
    let (_dir, path) = write_db(&records(10));
    let store = TelemetryStore::open(&path).unwrap();
    store.record(&rec("late", "e", DAY0 + 5.0, 0.5)).unwrap();
    store.flush().unwrap();
    assert!(std::fs::metadata(side(&path, "-wal")).unwrap().len() > 0);
    let agg = TelemetryAggregator::open(&path).unwrap();
    assert_eq!(agg.record_count(&TimeRange::all()).unwrap(), 11);
    drop(agg);
    store.close().unwrap();
}

/// A copy of a database and its log without the log's index (taken while a writer held them):
/// the log's commits are read; the index is created next to the log, the one side file a read
/// may create (where the directory is read-only, it cannot, and the CLI test `read_only.rs`
/// shows the error that says so).
#[test]
fn a_log_without_its_index_is_read() {
    let (_dir, path) = write_db(&records(10));
    let store = TelemetryStore::open(&path).unwrap();
    store.record(&rec("late", "e", DAY0 + 5.0, 0.5)).unwrap();
    store.flush().unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::copy(side(&path, "-wal"), side(&copy, "-wal")).unwrap();
    store.close().unwrap();
    let agg = TelemetryAggregator::open(&copy).unwrap();
    assert_eq!(agg.record_count(&TimeRange::all()).unwrap(), 11);
}

/// Paths with characters that URIs reserve still open.
#[test]
fn paths_with_uri_characters_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a?b#c%20d é.db");
    common::write_into(&path, &records(5));
    let agg = TelemetryAggregator::open(&path).unwrap();
    assert_eq!(agg.record_count(&TimeRange::all()).unwrap(), 5);
}
