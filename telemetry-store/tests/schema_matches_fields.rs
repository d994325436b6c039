//! The migrated `telemetry` table has exactly the columns of core's field table, in its order and
//! with the SQL type and nullability each field's kind asks for: a field added to the struct and
//! the table without a migration (or a migration that disagrees with the table) fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use telemetry_core::RECORD_FIELDS;
use telemetry_store::TelemetryStore;

#[test]
fn migrated_columns_equal_the_field_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    TelemetryStore::open(&path).unwrap().close().unwrap();
    let conn = common::connect(&path);
    let mut stmt = conn
        .prepare("SELECT name, type, \"notnull\" FROM pragma_table_info('telemetry') ORDER BY cid")
        .unwrap();
    let columns: Vec<(String, String, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    // `id` and `import_key` are the table's own, not record fields.
    let record_columns: Vec<(String, String, bool)> = columns
        .into_iter()
        .filter(|(name, _, _)| name != "id" && name != "import_key")
        .collect();
    let want: Vec<(String, String, bool)> = RECORD_FIELDS
        .iter()
        .map(|f| {
            (
                f.name.to_owned(),
                f.kind.sql_type().to_owned(),
                !f.kind.nullable(),
            )
        })
        .collect();
    assert_eq!(record_columns, want);
}
