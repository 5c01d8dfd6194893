//! Calls a `replay` left open when its capture ended (migration 0008), handed from one
//! replay to the next: the next replay into the same database re-reads the files that
//! hold their beginning, from their start, together with its own, so a call cut by the
//! end of one file is completed — its `capture-ended` row replaced by the whole record,
//! same identity — when its rest is in the next (`cli::replay`).
//! May use: rusqlite, the store's migrations. Invariants: only `replay` writes the table,
//! on its own short-lived connection after its store writer has closed (the writer thread
//! never touches it); `hand_over` replaces the consumed rows and adds the new ones in one
//! transaction, so a crash never loses or doubles an open call.

use super::approvals::open_rw;
use anyhow::Context;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};

/// One call still open when a replay's capture ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCall {
    pub call_id: String,
    /// `None`: the INVITE had no From tag.
    pub from_tag: Option<String>,
    pub started_us: i64,
    /// The capture files that hold its packets so far, in time order.
    pub files: Vec<PathBuf>,
    /// The last packet time of the replay that left it open.
    pub capture_end_us: i64,
}

fn read(conn: &Connection) -> anyhow::Result<Vec<OpenCall>> {
    let mut stmt = conn.prepare(
        "SELECT call_id, from_tag, started_us, files, capture_end_us FROM replay_open ORDER BY started_us, call_id",
    )?;
    let rows =
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?, r.get(4)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (call_id, from_tag, started_us, files, capture_end_us) = row?;
        // A row this build cannot read is not resumable: its call stays capture-ended.
        let Ok(files) = serde_json::from_str::<Vec<PathBuf>>(&files) else {
            tracing::warn!(call_id, "replay_open: unreadable file list, not resumed");
            continue;
        };
        out.push(OpenCall { call_id, from_tag, started_us, files, capture_end_us });
    }
    Ok(out)
}

/// The open calls left by earlier replays into the database at `db` (created and migrated
/// if needed).
pub fn load(db: &Path) -> anyhow::Result<Vec<OpenCall>> {
    let conn = open_rw(db).with_context(|| format!("{}: cannot read the open calls", db.display()))?;
    read(&conn)
}

/// Delete the `consumed` rows (resumed by this replay, or too old ever to be) and store
/// `left_open`, the calls this replay leaves open, in one transaction.
pub fn hand_over(db: &Path, consumed: &[OpenCall], left_open: &[OpenCall]) -> anyhow::Result<()> {
    let mut conn = open_rw(db).with_context(|| format!("{}: cannot store the open calls", db.display()))?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for c in consumed {
        tx.execute(
            "DELETE FROM replay_open WHERE call_id = ?1 AND started_us = ?2 AND from_tag IS ?3",
            params![c.call_id, c.started_us, c.from_tag],
        )?;
    }
    for c in left_open {
        // The same call left open again (a replay of the same file): one row.
        tx.execute(
            "DELETE FROM replay_open WHERE call_id = ?1 AND started_us = ?2 AND from_tag IS ?3",
            params![c.call_id, c.started_us, c.from_tag],
        )?;
        tx.execute(
            "INSERT INTO replay_open (call_id, from_tag, started_us, files, capture_end_us)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.call_id, c.from_tag, c.started_us, serde_json::to_string(&c.files)?, c.capture_end_us],
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_over_replaces_consumed_rows_and_keeps_one_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("o.db");
        let a = OpenCall {
            call_id: "a@h".into(),
            from_tag: Some("t".into()),
            started_us: 10,
            files: vec!["/x/1.pcap".into()],
            capture_end_us: 100,
        };
        let b = OpenCall { call_id: "b@h".into(), from_tag: None, started_us: 20, ..a.clone() };
        hand_over(&db, &[], &[a.clone(), b.clone()]).unwrap();
        hand_over(&db, &[], std::slice::from_ref(&b)).unwrap();
        assert_eq!(load(&db).unwrap(), vec![a.clone(), b.clone()]);
        let b2 = OpenCall { files: vec!["/x/1.pcap".into(), "/x/2.pcap".into()], capture_end_us: 200, ..b.clone() };
        hand_over(&db, &[a, b], std::slice::from_ref(&b2)).unwrap();
        assert_eq!(load(&db).unwrap(), vec![b2]);
    }
}
