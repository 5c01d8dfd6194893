//! Reports: what supervisors and auditors are given, made once for the CLI and the
//! HTTP API alike — the long-distance register (`register`, OUT-3), the monthly call-back
//! report (`callbacks`, STA-3) and stats with their budgets (`stats`, OUT-6) — with the
//! formatting they share (money in yuan, times as spreadsheets read them).
//! May use: `store` (its reader and rows), core's config. Used by `cli` and `api`, which
//! never import each other. Invariant: reports read stored facts only; a config value
//! appears in one only as a plan it is set against (a budget, a group's name), never to
//! judge a stored call again.

pub mod callbacks;
pub mod register;
pub mod stats;

use crate::store::QueryError;

/// Why a report could not be made: what was asked (a usage error), or the database.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("{param}: {group:?} is not a [[group]] of the config; one of {names}")]
    Group { param: &'static str, group: String, names: String },
    #[error("class: {class:?} is not in the register; one of {names}")]
    NotInRegister { class: String, names: String },
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

/// Fen as yuan with two decimals ("12.30", "-0.05").
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let f = fen.unsigned_abs();
    format!("{sign}{}.{:02}", f / 100, f % 100)
}

/// A time from the store (RFC 3339 with offset) as tables and spreadsheets show it:
/// "YYYY-MM-DD HH:MM:SS", the site's local time as stored.
pub fn table_time(rfc3339: &str) -> String {
    match rfc3339.get(..19) {
        Some(s) => s.replacen('T', " ", 1),
        None => rfc3339.to_string(),
    }
}
