//! Prior approvals stored in the database (migration 0003), registered with `callwarden
//! approve` beside those in the config's `[[approval]]`s (OUT-2). The pipeline loads the
//! ones in force into the policy (`Policy::set_approvals`) when it starts, so an approved
//! long-distance call is not flagged.
//! May use: rusqlite, the store's migrations, core's config and policy types.
//! Invariants: an approval is checked with the policy's own compiler (`ApprovalRule::
//! compile`, in the site's zone) before it is stored, so every stored row can be used;
//! rows are never deleted — a revoked approval keeps its row with `revoked_us` set, so the
//! register of who approved what stays complete for audits; only this module and the
//! `approve` command write the table, each on its own short-lived connection (the store's
//! writer thread never touches it).

use super::migrations;
use super::reader::format_ts;
use anyhow::{bail, Context};
use callwarden_core::config::Approval;
use callwarden_core::policy::groups::{ApprovalRule, Zone};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// One stored approval, as `approve --list --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApprovalRow {
    pub id: i64,
    pub extension: String,
    pub class: String,
    pub from: String,
    pub until: String,
    pub approver: String,
    pub note: String,
    /// When it was registered (wall clock, RFC 3339 in the site's zone).
    pub created_at: String,
    /// When it was revoked; null while in force.
    pub revoked_at: Option<String>,
}

impl ApprovalRow {
    /// The approval as the policy takes it.
    pub fn to_approval(&self) -> Approval {
        Approval {
            extension: self.extension.clone(),
            class: self.class.clone(),
            from: self.from.clone(),
            until: self.until.clone(),
            approver: self.approver.clone(),
        }
    }
}

/// Open the database for writing approvals: created and migrated if needed (like the
/// store), WAL, waiting up to 5 s for the daemon's writer to release its lock.
pub fn open_rw(path: &Path) -> anyhow::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let _mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    migrations::apply(&mut conn)?;
    Ok(conn)
}

/// Check `a` as the policy will read it (extension pattern, class, dates in `tz`, not
/// premium) and store it. Returns its id.
pub fn add(conn: &Connection, a: &Approval, note: &str, tz: &str, now_us: i64) -> anyhow::Result<i64> {
    let zone = Zone::new(tz).map_err(anyhow::Error::msg)?;
    ApprovalRule::compile(a, &zone).map_err(anyhow::Error::msg)?;
    if a.approver.trim().is_empty() {
        bail!("approval for \"{}\": the approver is empty", a.extension);
    }
    conn.execute(
        "INSERT INTO approvals (extension, class, valid_from, valid_until, approver, note, created_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![a.extension.trim(), a.class.trim(), a.from.trim(), a.until.trim(), a.approver.trim(), note, now_us],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Revoke approval `id` at `now_us`. `Ok(false)` when there is no such approval or it was
/// already revoked (the first revocation's time is kept).
pub fn revoke(conn: &Connection, id: i64, now_us: i64) -> anyhow::Result<bool> {
    let n =
        conn.execute("UPDATE approvals SET revoked_us = ?2 WHERE id = ?1 AND revoked_us IS NULL", params![id, now_us])?;
    Ok(n == 1)
}

/// Every stored approval (revoked ones too when `all`), oldest first; times in `tz`.
pub fn list(conn: &Connection, all: bool, tz: &jiff::tz::TimeZone) -> anyhow::Result<Vec<ApprovalRow>> {
    let sql = format!(
        "SELECT id, extension, class, valid_from, valid_until, approver, note, created_us, revoked_us
         FROM approvals {} ORDER BY id",
        if all { "" } else { "WHERE revoked_us IS NULL" }
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| {
        Ok(ApprovalRow {
            id: r.get(0)?,
            extension: r.get(1)?,
            class: r.get(2)?,
            from: r.get(3)?,
            until: r.get(4)?,
            approver: r.get(5)?,
            note: r.get(6)?,
            created_at: format_ts(r.get(7)?, tz),
            revoked_at: r.get::<_, Option<i64>>(8)?.map(|us| format_ts(us, tz)),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One approval by id.
pub fn get(conn: &Connection, id: i64, tz: &jiff::tz::TimeZone) -> anyhow::Result<Option<ApprovalRow>> {
    Ok(list(conn, true, tz)?.into_iter().find(|a| a.id == id))
}

/// The approvals in force (not revoked), for `Policy::set_approvals`. Validity dates are
/// judged by the policy at each call's time, so expired ones may be passed too.
pub fn in_force(path: &Path) -> anyhow::Result<Vec<Approval>> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("{}: cannot open the database for the approvals", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let has_table: Option<i64> = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'approvals'", [], |r| r.get(0))
        .optional()?;
    if has_table.is_none() {
        return Ok(Vec::new());
    }
    Ok(list(&conn, false, &jiff::tz::TimeZone::UTC)?.iter().map(ApprovalRow::to_approval).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(ext: &str, class: &str, from: &str, until: &str) -> Approval {
        Approval {
            extension: ext.into(),
            class: class.into(),
            from: from.into(),
            until: until.into(),
            approver: "manager".into(),
        }
    }

    #[test]
    fn add_list_revoke_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let conn = open_rw(&db).unwrap();
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let a = add(
            &conn,
            &approval("8020", "long-distance", "2026-11-01", "2026-11-30"),
            "Beijing client",
            "Asia/Shanghai",
            1_772_407_800_000_000,
        )
        .unwrap();
        let b = add(
            &conn,
            &approval("8021", "international", "2026-11-01", "2026-11-02"),
            "",
            "Asia/Shanghai",
            1_772_407_800_000_001,
        )
        .unwrap();
        assert_eq!((a, b), (1, 2));
        let rows = list(&conn, false, &tz).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].created_at, "2026-03-02T07:30:00.000000+08:00");
        assert_eq!(rows[0].note, "Beijing client");
        assert_eq!(rows[0].revoked_at, None);
        assert_eq!(in_force(&db).unwrap(), vec![rows[0].to_approval(), rows[1].to_approval()]);

        assert!(revoke(&conn, b, 1_772_407_900_000_000).unwrap());
        assert!(!revoke(&conn, b, 1_772_408_000_000_000).unwrap(), "already revoked");
        assert!(!revoke(&conn, 99, 1_772_408_000_000_000).unwrap(), "no such approval");
        assert_eq!(in_force(&db).unwrap(), vec![rows[0].to_approval()]);
        let all = list(&conn, true, &tz).unwrap();
        assert_eq!(all.len(), 2, "a revoked approval keeps its row");
        assert_eq!(
            all[1].revoked_at.as_deref(),
            Some("2026-03-02T07:31:40.000000+08:00"),
            "the first revocation's time"
        );
        assert_eq!(get(&conn, b, &tz).unwrap().map(|r| r.id), Some(b));
    }

    #[test]
    fn what_the_policy_cannot_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_rw(&dir.path().join("a.db")).unwrap();
        let tz = "Asia/Shanghai";
        for (a, why) in [
            (approval("8020", "longdistance", "2026-11-01", "2026-11-30"), "not a class name"),
            (approval("8020", "premium", "2026-11-01", "2026-11-30"), "OUT-1"),
            (approval("8020", "long-distance", "2026-11-30", "2026-11-01"), "before"),
            (approval("8020", "long-distance", "2026-11-01", "tomorrow"), "until"),
            (approval("80 20", "long-distance", "2026-11-01", "2026-11-30"), "extension"),
            (
                Approval { approver: " ".into(), ..approval("8020", "long-distance", "2026-11-01", "2026-11-30") },
                "approver",
            ),
        ] {
            let e = add(&conn, &a, "", tz, 0).unwrap_err().to_string();
            assert!(e.contains(why), "{a:?}: {e}");
        }
        assert!(list(&conn, true, &jiff::tz::TimeZone::UTC).unwrap().is_empty());
    }

    #[test]
    fn a_database_without_the_table_has_no_approvals() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.db");
        Connection::open(&db).unwrap().execute_batch("CREATE TABLE x (y INTEGER)").unwrap();
        assert!(in_force(&db).unwrap().is_empty());
    }
}
