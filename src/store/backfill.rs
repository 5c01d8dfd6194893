//! The one-time backfill of migration 0006: calls stored before the verdicts were stored
//! with them get their verdict columns (`ans_rule`, `max_rings`, `within_max_rings`,
//! `talk_rule`, `talk_limit_s`, `personal`, `long_call`, `effective_min_talk_s`,
//! `effective`) from the config the upgrading writer runs with — the best record there is
//! of what applied when they were stored. After it, stats read only stored facts.
//! May use: rusqlite, core's `Config`. Invariants: runs once (the `verdicts_backfill` mark
//! in `meta` is cleared in the same transaction as the updates); only rows whose verdict
//! columns are all NULL are touched, so a call judged by the engine is never re-judged;
//! it judges the way `stats` did before 0006 (documented in the README):
//! - limits: those of the group stored with the call (`group_name`), each falling back to
//!   `[limits]`; a group unknown to the config, or none, gets `[limits]`;
//! - ANS: answered inbound and internal calls; the rule is ANS-2 when that group sets its
//!   own `max_rings`, else ANS-1; within when rings ≤ max_rings (or max_rings is 0);
//! - DUR: answered calls; DUR-3 for internal calls, DUR-2 when the stored normalised
//!   number starts with a `[numbers].personal` prefix, else DUR-1; over when the limit is
//!   not 0 and talk exceeds it;
//! - STA-1 effective: answered calls with talk ≥ the group's `effective_min_talk_s`.

use callwarden_core::config::Config;
use callwarden_core::policy::groups::AppliedLimits;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// The mark migration 0006 leaves when it found calls to backfill.
const MARK: &str = "verdicts_backfill";

/// Whether the backfill is still to run on this database.
pub fn pending(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [MARK], |r| r.get::<_, String>(0))
        .optional()?
        .is_some_and(|v| v == "pending"))
}

/// Judge the calls stored before 0006 with `cfg`; returns how many were judged (0 when
/// there was nothing pending).
pub fn run(conn: &mut Connection, cfg: &Config) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !pending(&tx)? {
        return Ok(0);
    }
    let personal: Vec<&str> = cfg.numbers.personal.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
    let mut judged = 0u64;
    {
        let mut read = tx.prepare(
            "SELECT rowid, group_name, direction, number, rings, talk_ms FROM calls
             WHERE answered = 1 AND ans_rule IS NULL AND talk_rule IS NULL AND effective IS NULL",
        )?;
        let mut write = tx.prepare(
            "UPDATE calls SET ans_rule = ?2, max_rings = ?3, within_max_rings = ?4, talk_rule = ?5,
                 talk_limit_s = ?6, personal = ?7, long_call = ?8, effective_min_talk_s = ?9, effective = ?10
             WHERE rowid = ?1",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let (rowid, group, direction, number, rings, talk_ms): (i64, Option<String>, String, String, u32, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
            let lim = AppliedLimits::resolve(cfg, group.as_deref());
            let incoming = matches!(direction.as_str(), "inbound" | "internal");
            let answer = incoming.then(|| {
                let rule = if lim.max_rings_own { "ANS-2" } else { "ANS-1" };
                (rule, lim.max_rings, lim.max_rings == 0 || rings <= lim.max_rings)
            });
            let is_personal = personal.iter().any(|p| number.starts_with(p));
            let (rule, limit) = if direction == "internal" {
                ("DUR-3", lim.internal_max_talk_s)
            } else if is_personal {
                ("DUR-2", lim.personal_max_talk_s)
            } else {
                ("DUR-1", lim.max_talk_s)
            };
            let over = limit > 0 && talk_ms > i64::from(limit) * 1000;
            let effective = talk_ms >= i64::from(lim.effective_min_talk_s) * 1000;
            write.execute(params![
                rowid,
                answer.map(|a| a.0),
                answer.map(|a| a.1),
                answer.map(|a| a.2),
                rule,
                limit,
                is_personal,
                over,
                lim.effective_min_talk_s,
                effective,
            ])?;
            judged += 1;
        }
    }
    tx.execute("DELETE FROM meta WHERE key = ?1", [MARK])?;
    tx.commit()?;
    Ok(judged)
}
