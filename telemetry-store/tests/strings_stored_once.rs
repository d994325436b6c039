//! Texts stored once (schema V5): a text met more than once is kept in `telemetry_strings` and
//! the rows hold its id; every row still reads back as written, a file from before V5 is
//! migrated with every record and summary kept, and a batch that rolls back leaves no id
//! behind that points nowhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use rusqlite::Connection;
use serde_json::json;
use telemetry_core::TelemetryRecord;
use telemetry_core::schema::RECORD_COLUMNS;
use telemetry_store::TelemetryStore;

/// A recording's records: the same labels and run metadata on every one, one error message
/// that repeats and one that does not, and a short label that stays in the rows.
fn run_record(i: u64) -> TelemetryRecord {
    let mut r = common::sample("chat-assistant", i);
    r.timestamp = 1_764_300_000.0 + i as f64 * 0.5;
    r.metadata = json!({ "telemetry.run_id": "4b3b6c435aed5e91", "server.port": 8080 }).into();
    if i == 7 {
        r.error_message = "a message met once".to_owned();
    }
    r
}

fn write(path: &Path, records: &[TelemetryRecord]) {
    let store = TelemetryStore::open(path).unwrap();
    for r in records {
        store.record(r).unwrap();
    }
    store.close().unwrap();
}

/// The one integer `sql` selects.
fn number(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// How many cells of `column` hold an id (a blob) rather than a text.
fn ids_in(conn: &Connection, column: &str) -> i64 {
    number(
        conn,
        &format!("SELECT count(*) FROM telemetry WHERE typeof({column}) = 'blob'"),
    )
}

#[test]
fn repeated_texts_are_stored_once_and_every_row_reads_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let records: Vec<TelemetryRecord> = (0..2_000).map(run_record).collect();
    write(&path, &records);

    let conn = common::connect(&path);
    assert_eq!(common::read_all(&conn), records);
    // Each distinct text is met once in a row, then an id on every other row.
    for (column, distinct) in [
        ("model_id", 3),
        ("agent", 1),
        ("metadata", 1),
        ("operation", 2),
    ] {
        assert_eq!(ids_in(&conn, column), 2_000 - distinct, "{column}");
    }
    let unique = number(
        &conn,
        "SELECT count(*) FROM telemetry WHERE error_message = 'a message met once'",
    );
    assert_eq!(unique, 1, "a text met once stays in its row");
    // Shorter than an id could be ("b0".."b19"): never stored once ("vllm", 4 bytes, is).
    assert_eq!(ids_in(&conn, "batch_id"), 0);
    assert_eq!(ids_in(&conn, "engine"), 2_000 - 2);
    let strings = stored_texts(&conn);
    assert!((5..40).contains(&strings), "{strings} texts stored once");
    common::assert_consistent(&conn);
}

#[test]
fn another_run_reuses_the_stored_texts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let records: Vec<TelemetryRecord> = (0..600).map(run_record).collect();
    write(&path, &records[..300]);
    let conn = common::connect(&path);
    let before = stored_texts(&conn);
    write(&path, &records[300..]);
    let after = stored_texts(&conn);
    assert_eq!(before, after, "the same texts are not stored twice");
    assert_eq!(common::read_all(&conn), records);
}

#[test]
fn the_records_view_shows_every_record_column_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    write(&path, &[run_record(1), run_record(2)]);
    let conn = common::connect(&path);
    let stmt = conn.prepare("SELECT * FROM telemetry_records").unwrap();
    let mut want = vec!["id"];
    want.extend(RECORD_COLUMNS);
    want.push("import_key");
    assert_eq!(stmt.column_names().collect::<Vec<_>>(), want);
    let agent: String = conn
        .query_row(
            "SELECT agent FROM telemetry_records WHERE id = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(agent, "chat-assistant");
}

/// The rows of a V5 file turned back into what a version-4 store wrote.
fn back_to_v4(path: &Path) {
    let conn = common::connect(path);
    common::texts_back_into_rows(&conn);
    for c in ["model_id", "agent", "metadata", "operation"] {
        assert_eq!(ids_in(&conn, c), 0);
    }
}

#[test]
fn a_file_from_before_v5_keeps_every_record_and_summary_and_takes_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let records: Vec<TelemetryRecord> = (0..1_500).map(run_record).collect();
    write(&path, &records[..1_000]);
    back_to_v4(&path);
    let summaries = common::read_rollups(&common::connect(&path));

    // Opening migrates it; the old rows keep their texts, the new ones store them once.
    write(&path, &records[1_000..]);
    let conn = common::connect(&path);
    let version = number(&conn, "SELECT MAX(version) FROM refinery_schema_history");
    assert_eq!(version, 5);
    assert_eq!(common::read_all(&conn), records);
    assert_eq!(ids_in(&conn, "model_id"), 500 - 3);
    let now = common::read_rollups(&conn);
    for (key, rollup) in &summaries {
        let kept = &now[key];
        assert!(kept.call_count >= rollup.call_count, "{key:?}");
    }
    common::assert_consistent(&conn);
}

/// A trigger refuses one record of a batch whose texts the batch stores once: the batch rolls
/// back (and is committed again without that record), and the ids it had handed out must not be
/// used by the rows written after it.
#[test]
fn a_batch_that_rolls_back_leaves_no_id_pointing_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    TelemetryStore::open(&path).unwrap().close().unwrap();
    common::connect(&path)
        .execute_batch(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON telemetry \
             WHEN NEW.prompt_tokens = 4242 BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
        )
        .unwrap();
    let store = TelemetryStore::builder(&path)
        .batch_size(10_000)
        .open()
        .unwrap();
    let mut records: Vec<TelemetryRecord> = (0..1_000).map(run_record).collect();
    // Texts first met in this batch, on both sides of the poisoned record.
    for (i, r) in records.iter_mut().enumerate() {
        r.agent = format!("agent-of-batch-{}", i % 4);
    }
    records[500].prompt_tokens = 4_242;
    records[500].total_tokens = 4_242 + records[500].completion_tokens;
    for r in &records {
        store.record(r).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(store.stats().rejected, 1, "{:?}", store.stats());
    store.close().unwrap();
    let conn = common::connect(&path);
    let dangling = number(
        &conn,
        "SELECT count(*) FROM telemetry_records WHERE agent IS NULL OR metadata IS NULL",
    );
    assert_eq!(dangling, 0);
    records.remove(500);
    assert_eq!(common::read_all(&conn), records);
}

/// How many texts `telemetry_strings` holds.
fn stored_texts(conn: &Connection) -> i64 {
    number(conn, "SELECT count(*) FROM telemetry_strings")
}

/// The file's size once packed by a plain `VACUUM` (of a copy: the file itself is untouched).
fn vacuumed_size(path: &Path) -> u64 {
    let copy = path.with_extension("copy.db");
    common::connect(path)
        .execute(&format!("VACUUM INTO '{}'", copy.display()), [])
        .unwrap();
    let size = std::fs::metadata(&copy).unwrap().len();
    std::fs::remove_file(&copy).unwrap();
    size
}

/// `compact` gives the rows of a file from before V5 what a V5 store writes: each repeated text
/// once in `telemetry_strings` and its id in the rows. Every record and summary reads back as
/// before, a text met once stays in its row, and the file is smaller than the same rows packed.
#[test]
fn compact_stores_the_repeated_texts_of_rows_from_before_v5_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let records: Vec<TelemetryRecord> = (0..3_000).map(run_record).collect();
    write(&path, &records);
    back_to_v4(&path);
    // Opening migrates it to V5; the old rows keep their texts.
    TelemetryStore::open(&path).unwrap().close().unwrap();
    let conn = common::connect(&path);
    assert_eq!(ids_in(&conn, "model_id"), 0);
    assert_eq!(stored_texts(&conn), 0);
    let summaries = common::read_rollups(&conn);
    drop(conn);
    let packed = vacuumed_size(&path);

    let store = TelemetryStore::open(&path).unwrap();
    let size = store.compact().unwrap();
    store.close().unwrap();

    let conn = common::connect(&path);
    assert_eq!(common::read_all(&conn), records);
    assert_eq!(common::read_rollups(&conn), summaries);
    common::assert_consistent(&conn);
    for column in ["model_id", "agent", "metadata", "operation", "engine"] {
        assert_eq!(ids_in(&conn, column), 3_000, "{column}");
    }
    assert_eq!(ids_in(&conn, "batch_id"), 0, "shorter than an id: kept");
    let unique = number(
        &conn,
        "SELECT count(*) FROM telemetry WHERE error_message = 'a message met once'",
    );
    assert_eq!(unique, 1, "a text met once stays in its row");
    assert!(
        size < packed * 9 / 10,
        "{size} bytes against {packed} packed"
    );
}

/// On a V5 file, `compact` gives each text's first row (which the writer keeps with its text)
/// the id too, and stores no text again; records written after it reuse the same ids.
#[test]
fn compact_on_a_v5_file_gives_first_rows_their_ids_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let records: Vec<TelemetryRecord> = (0..1_200).map(run_record).collect();
    write(&path, &records[..1_000]);
    let conn = common::connect(&path);
    assert_eq!(ids_in(&conn, "model_id"), 1_000 - 3);
    let texts = stored_texts(&conn);

    let store = TelemetryStore::open(&path).unwrap();
    store.compact().unwrap();
    assert_eq!(ids_in(&conn, "model_id"), 1_000);
    for r in &records[1_000..] {
        store.record(r).unwrap();
    }
    store.close().unwrap();
    // A writer keeps the first row of each text it meets with its text (it does not look the
    // table up for a text met once), as any new writer does.
    assert_eq!(ids_in(&conn, "model_id"), 1_200 - 3);
    assert_eq!(stored_texts(&conn), texts);
    assert_eq!(common::read_all(&conn), records);
    common::assert_consistent(&conn);
}

/// The length that decides is in bytes, as the writer's: a 2-character text of 6 bytes is
/// stored once, a 3-byte one is not; texts in other columns or met once are left.
#[test]
fn compact_measures_texts_in_bytes_as_the_writer_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let records: Vec<TelemetryRecord> = (0..40)
        .map(|i| {
            let mut r = run_record(i);
            r.agent = if i % 2 == 0 { "日本" } else { "abc" }.to_owned();
            r.error_message = format!("only once {i}");
            r
        })
        .collect();
    write(&path, &records);
    back_to_v4(&path);
    let store = TelemetryStore::open(&path).unwrap();
    store.compact().unwrap();
    store.close().unwrap();
    let conn = common::connect(&path);
    assert_eq!(ids_in(&conn, "agent"), 20);
    assert_eq!(ids_in(&conn, "error_message"), 0);
    let kept = number(&conn, "SELECT count(*) FROM telemetry WHERE agent = 'abc'");
    assert_eq!(kept, 20);
    assert_eq!(common::read_all(&conn), records);
}
