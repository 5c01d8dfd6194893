//! Schema migrations: numbered SQL files applied in order at open, the version kept in
//! `PRAGMA user_version`. Later work adds `0002_*.sql`, `0003_*.sql` (recordings, approvals,
//! playback log) as new files and one line each in `MIGRATIONS`; a file once released is
//! never edited. Invariant: each migration runs in its own transaction together with the
//! version bump, so a database is always at exactly one version, never in between.

use rusqlite::{Connection, TransactionBehavior};

/// (version, name, SQL), in order; versions are 1, 2, 3, ... without gaps.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "0001_init", include_str!("migrations/0001_init.sql")),
    (2, "0002_recordings", include_str!("migrations/0002_recordings.sql")),
    (3, "0003_approvals", include_str!("migrations/0003_approvals.sql")),
    (4, "0004_stats_index", include_str!("migrations/0004_stats_index.sql")),
    (5, "0005_legs", include_str!("migrations/0005_legs.sql")),
    (6, "0006_verdicts", include_str!("migrations/0006_verdicts.sql")),
    (7, "0007_from_tag", include_str!("migrations/0007_from_tag.sql")),
    (8, "0008_replay_open", include_str!("migrations/0008_replay_open.sql")),
    (9, "0009_forward_queue", include_str!("migrations/0009_forward_queue.sql")),
    (10, "0010_central_approvals", include_str!("migrations/0010_central_approvals.sql")),
    (11, "0011_recordings_superseded", include_str!("migrations/0011_recordings_superseded.sql")),
    (12, "0012_central_rollups", include_str!("migrations/0012_central_rollups.sql")),
    (13, "0013_stats_changes", include_str!("migrations/0013_stats_changes.sql")),
];

/// The schema version this build writes and reads.
pub fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// The oldest schema a reader (CLI, `serve`) can answer from: every table it reads exists
/// from version 3 on; 0004 only adds an index, and the columns 0005 adds (a call's legs)
/// are read as a call of one dialog from an older database (`Reader::link_columns`), so
/// an older database is read as it is rather than refused until a writer opens it once.
pub const OLDEST_READABLE: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the database is at schema version {found}, newer than this build knows ({known}): use a newer callwarden"
    )]
    TooNew { found: u32, known: u32 },
    #[error("migration {name} failed: {source}")]
    Failed { name: &'static str, source: rusqlite::Error },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

pub fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Bring the database up to `latest()`; returns the version it was at.
pub fn apply(conn: &mut Connection) -> Result<u32, MigrationError> {
    let found = version(conn)?;
    if found > latest() {
        return Err(MigrationError::TooNew { found, known: latest() });
    }
    for &(v, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            // IMMEDIATE: take the write lock first, so two processes opening a fresh
            // database at once do not both try to create the tables.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Re-read inside the lock: another process may have migrated meanwhile.
            if version(&tx)? >= v {
                return Ok(());
            }
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", v)?;
            tx.commit()
        };
        run(conn).map_err(|source| MigrationError::Failed { name, source })?;
        tracing::info!(version = v, name, "database migrated");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.0 as usize, i + 1, "{}", m.1);
            assert!(m.1.starts_with(&format!("{:04}_", m.0)), "{}", m.1);
        }
    }

    #[test]
    fn upgrade_from_v0_then_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(version(&conn).unwrap(), 0);
        assert_eq!(apply(&mut conn).unwrap(), 0);
        assert_eq!(version(&conn).unwrap(), latest());
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')", []).unwrap();
        drop(conn);
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(apply(&mut conn).unwrap(), latest(), "second open finds it migrated");
        let v: String = conn.query_row("SELECT value FROM meta WHERE key = 'x'", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "y", "data survives a second open");
    }

    /// 0011 rebuilds `recordings` (to drop a UNIQUE): every row and column survives.
    #[test]
    fn recordings_survive_the_0011_rebuild() {
        let mut conn = Connection::open_in_memory().unwrap();
        for &(v, _, sql) in MIGRATIONS.iter().filter(|m| m.0 < 9) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", v).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO recordings (id, call_id, call_started_us, caller, callee, dialled, group_name, path,
                 status, sample_rate, frames, sha256, dtmf, retention_days, day, month)
             VALUES ('aa', 'c1', 7, '8001', '8101', '8101', 'dispatch', '2026/01/01/aa.wav', 'complete', 8000,
                 16000, 'ab', '1', 30, '2026-01-01', '2026-01')",
        )
        .unwrap();
        assert_eq!(apply(&mut conn).unwrap(), 8);
        let row: (String, i64, String, i64, Option<String>, i64) = conn
            .query_row(
                "SELECT call_id, call_started_us, status, frames, superseded_by, channels FROM recordings
                 WHERE id = 'aa'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
        assert_eq!(row, ("c1".into(), 7, "complete".into(), 16000, None, 2));
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'recordings'
                 AND name LIKE 'recordings_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 4);
        // The central store's queue (0009) still sees recordings after the rebuild.
        conn.execute_batch(
            "INSERT INTO meta (key, value) VALUES ('forward', 'on');
             UPDATE recordings SET status = 'repaired' WHERE id = 'aa'",
        )
        .unwrap();
        let queued: i64 =
            conn.query_row("SELECT count(*) FROM forward_queue WHERE tbl = 'recordings'", [], |r| r.get(0)).unwrap();
        assert_eq!(queued, 1, "the forward triggers of recordings survive the rebuild");
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", latest() + 1).unwrap();
        assert!(matches!(apply(&mut conn), Err(MigrationError::TooNew { .. })));
    }

    #[test]
    fn failed_migration_leaves_version_unchanged() {
        let mut conn = Connection::open_in_memory().unwrap();
        // A foreign database that already has a `calls` table: 0001 cannot run.
        conn.execute_batch("CREATE TABLE calls (x INTEGER)").unwrap();
        let err = apply(&mut conn).unwrap_err();
        assert!(err.to_string().contains("0001_init"), "{err}");
        assert_eq!(version(&conn).unwrap(), 0);
        let meta: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'meta'", [], |r| r.get(0)).unwrap();
        assert_eq!(meta, 0, "the partial migration was rolled back");
    }
}
