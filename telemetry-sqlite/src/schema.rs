//! The schema version refinery recorded in a database.

use rusqlite::Connection;

/// refinery's table of applied migrations.
pub const MIGRATION_HISTORY: &str = "refinery_schema_history";

/// The highest version in [`MIGRATION_HISTORY`]: `None` when the table is empty; an error when
/// there is no such table (look for it among the schema's tables first where that can be) or
/// SQLite cannot read it.
pub fn applied_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        &format!("SELECT MAX(version) FROM {MIGRATION_HISTORY}"),
        [],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_history_has_no_version_and_a_missing_one_is_an_error() {
        let conn = Connection::open_in_memory().expect("in memory");
        assert!(applied_version(&conn).is_err());
        conn.execute_batch(&format!(
            "CREATE TABLE {MIGRATION_HISTORY} (version INTEGER)"
        ))
        .expect("create");
        assert_eq!(applied_version(&conn).expect("read"), None);
    }
}
