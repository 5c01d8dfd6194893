//! What changed since a reader last looked, by the start time it counts under: the log
//! migration 0013 keeps (`stats_changes`, filled by triggers on calls and violations). The
//! API's stats cache asks it after each commit it sees, and keeps every answer whose time
//! range no change falls in instead of emptying itself.
//! May use: rusqlite. Invariant: when the log cannot say for sure (an older schema without
//! it, a reader whose last seen change was pruned, more changes than is worth reading),
//! the answer is `Unknown`, and the caller must treat everything as changed.

use rusqlite::{Connection, OptionalExtension};

/// More changes than this since the last look: cheaper to forget every answer than to
/// read and test them all.
pub const MAX_READ: i64 = 50_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Since {
    /// Every change after the one asked for: the start times (µs) they count under, and
    /// the last change's number.
    Changes { last: i64, starts: Vec<i64> },
    /// The log cannot tell: everything may have changed. `last` is where to look from next
    /// time (none without a log).
    Unknown { last: Option<i64> },
}

/// The changes after change number `after` (none: the first look, which knows nothing).
pub fn since(conn: &Connection, after: Option<i64>) -> rusqlite::Result<Since> {
    let has_log = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stats_changes'", [], |_| Ok(()))
        .optional()?
        .is_some();
    if !has_log {
        return Ok(Since::Unknown { last: None });
    }
    // Two queries: SQLite answers a lone min() or max() of the key from the b-tree's edge,
    // but both in one statement scan the table (20 ms at 100,000 changes).
    let edge = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).optional().map(Option::unwrap_or_default);
    let first = edge("SELECT seq FROM stats_changes ORDER BY seq LIMIT 1")?;
    let last = edge("SELECT seq FROM stats_changes ORDER BY seq DESC LIMIT 1")?;
    let Some(after) = after else { return Ok(Since::Unknown { last: Some(last) }) };
    if last == after {
        return Ok(Since::Changes { last, starts: Vec::new() });
    }
    // Numbers never go back (AUTOINCREMENT); a log that did (a database swapped under the
    // reader) or was pruned past `after` cannot say what changed.
    if last < after || (first > after.saturating_add(1)) || last - after > MAX_READ {
        return Ok(Since::Unknown { last: Some(last) });
    }
    let mut stmt = conn.prepare_cached("SELECT seq, started_us FROM stats_changes WHERE seq > ?1 ORDER BY seq")?;
    let mut starts = Vec::new();
    let mut seen = after;
    let mut rows = stmt.query([after])?;
    while let Some(r) = rows.next()? {
        seen = r.get(0)?;
        starts.push(r.get(1)?);
    }
    // Read apart from the max above: a commit in between is in `starts` and in `seen`.
    Ok(Since::Changes { last: seen.max(last), starts })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::testdata;
    use callwarden_core::track::{CallEvent, Direction};
    use callwarden_core::Output;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("x.db")).unwrap();
        crate::store::migrations::apply(&mut conn).unwrap();
        (dir, conn)
    }

    /// Calls stored as the daemon stores them: through the writer, in one commit.
    fn store_calls(dir: &tempfile::TempDir, calls: &[(&str, i64)]) {
        let (mut sink, writer) = crate::store::open(&dir.path().join("x.db"), "Asia/Shanghai").unwrap();
        for (id, start) in calls {
            let c = testdata::call(id, *start, "8001", "13800138000", Direction::Outbound);
            sink.take(&Output::Call(CallEvent::Ended(Box::new(c)))).unwrap();
        }
        writer.close().unwrap();
    }

    #[test]
    fn inserts_updates_and_deletes_of_calls_and_violations_are_logged_by_start() {
        let (d, conn) = db();
        let t0 = testdata::T0;
        let Since::Unknown { last: Some(l0) } = since(&conn, None).unwrap() else { panic!("a fresh log") };
        assert_eq!(since(&conn, Some(l0)).unwrap(), Since::Changes { last: l0, starts: vec![] });
        store_calls(&d, &[("a", t0), ("b", t0 + 5)]);
        // The writer inserts a call, then stores its verdicts: logged once.
        let Since::Changes { last: l1, starts } = since(&conn, Some(l0)).unwrap() else { panic!() };
        assert_eq!(starts, vec![t0, t0 + 5]);
        // An update logs the old start and, when it moved, the new one.
        conn.execute("UPDATE calls SET talk_ms = 7 WHERE call_id = 'a'", []).unwrap();
        conn.execute("UPDATE calls SET started_us = ?1 WHERE call_id = 'b'", [t0 + 99]).unwrap();
        conn.execute("DELETE FROM calls WHERE call_id = 'a'", []).unwrap();
        let Since::Changes { last: l2, starts } = since(&conn, Some(l1)).unwrap() else { panic!() };
        assert_eq!(starts, vec![t0, t0 + 5, t0 + 99, t0]);
        // A violation counts under its call's start, else its own time.
        conn.execute(
            "INSERT INTO violations (natural_key, rule, kind, call_id, extension, number, detected_us, detail,
                                     day, month, call_started_us)
             VALUES ('k1', 'OUT-1', 'premium-rate', 'b', '8001', '16800123', ?1, '', '2026-03-02', '2026-03', ?2)",
            [t0 + 200, t0 + 99],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO violations (natural_key, rule, kind, call_id, extension, number, detected_us, detail,
                                     day, month, call_started_us)
             VALUES ('k2', 'OUT-1', 'premium-rate', 'x', '8001', '16800123', ?1, '', '2026-03-02', '2026-03', NULL)",
            [t0 + 300],
        )
        .unwrap();
        conn.execute("DELETE FROM violations", []).unwrap();
        let Since::Changes { starts, .. } = since(&conn, Some(l2)).unwrap() else { panic!() };
        assert_eq!(starts, vec![t0 + 99, t0 + 300, t0 + 99, t0 + 300]);
    }

    #[test]
    fn a_pruned_or_missing_log_cannot_say() {
        let (_d, conn) = db();
        let Since::Unknown { last: Some(l0) } = since(&conn, None).unwrap() else { panic!() };
        // 100,000 kept: 101,000 changes prune the first ones, and a reader that saw the
        // first change only cannot know what it missed.
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 101000)
             INSERT INTO stats_changes (started_us) SELECT i FROM n",
        )
        .unwrap();
        let kept: i64 = conn.query_row("SELECT count(*) FROM stats_changes", [], |r| r.get(0)).unwrap();
        assert!(kept <= 100_000, "{kept}");
        assert!(matches!(since(&conn, Some(l0 + 1)).unwrap(), Since::Unknown { last: Some(_) }));
        // Too many to be worth reading.
        assert!(matches!(since(&conn, Some(l0 + 50_000)).unwrap(), Since::Unknown { .. }));
        let Since::Changes { starts, .. } = since(&conn, Some(l0 + 100_990)).unwrap() else { panic!() };
        assert_eq!(starts, (100_991..=101_000).collect::<Vec<i64>>());
        conn.execute_batch("DROP TABLE stats_changes").unwrap();
        assert_eq!(since(&conn, Some(1)).unwrap(), Since::Unknown { last: None });
    }
}
