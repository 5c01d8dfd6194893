//! The playback log (REC-3: who listened to which recording, when) as the API writes and
//! lists it: `GET /api/playback-log` (auditor; newest first; filters `recording`, `who`,
//! `from`, `to`; paging by `after` = the last id seen).
//!
//! One playback, one row: a browser's `<audio>` fetches a recording in several range
//! requests (the start, then more as it plays or seeks). The API writes a row
//! (`action = "stream"`, `via = "api"`, `who` = the token's name, `detail` = the Range of
//! the first request, or "full") on the first fetch of a recording by a token, and folds
//! further fetches of the same recording by the same token into it while they keep coming
//! less than `WINDOW` apart (a sliding window). A fetch after a pause of `WINDOW` or more
//! is a new playback and a new row. HEAD requests fetch no audio and are not logged.
//! May use: the store's `log_playback` and `Reader::playback_log` (it owns the window, no
//! SQL), the API's writer connection and clock.
//! Invariant: the row is committed before the first byte is served; when it cannot be
//! written the audio is refused (503), so nothing is heard that the log does not show.

use super::params::{nonempty, Paging};
use super::{now_us, ApiError, AppState};
use crate::store::query;
use crate::store::recordings::{self as rows, PlaybackAction, PlaybackCursor, PlaybackEntry, PlaybackQuery, Via};
use axum::extract::{Query, State};
use axum::Json;
use callwarden_core::Ts;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Fetches of one recording by one token closer than this are one playback.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Past this many remembered (token, recording) pairs, the stale ones are forgotten.
const PRUNE_AT: usize = 10_000;

/// The last fetch of each (token name, recording id).
#[derive(Default)]
pub struct Dedup {
    last: HashMap<(String, String), Instant>,
}

impl Dedup {
    /// Record a fetch at `now`; true when it starts a new playback (to be logged).
    pub fn fetch(&mut self, who: &str, recording: &str, now: Instant) -> bool {
        if self.last.len() >= PRUNE_AT {
            self.last.retain(|_, t| now.saturating_duration_since(*t) < WINDOW);
        }
        let prev = self.last.insert((who.to_string(), recording.to_string()), now);
        prev.is_none_or(|t| now.saturating_duration_since(t) >= WINDOW)
    }

    /// Undo the start of a playback whose log row could not be written.
    pub fn forget(&mut self, who: &str, recording: &str) {
        self.last.remove(&(who.to_string(), recording.to_string()));
    }
}

/// Write one row of the playback log (`via` = "api", `who` = the token's name).
pub async fn log(
    state: &AppState,
    who: &str,
    recording: &str,
    action: PlaybackAction,
    detail: &str,
) -> Result<(), ApiError> {
    let (who, recording_id, detail) = (who.to_string(), recording.to_string(), detail.to_string());
    state
        .with_writer(move |conn| {
            let entry = PlaybackEntry { at: Ts(now_us()), who, recording_id, action, via: Via::Api, detail };
            rows::log_playback(conn, &entry)
                .map_err(|e| ApiError::unavailable(format!("the playback log cannot be written: {e}")))?;
            Ok(())
        })
        .await
}

#[derive(Deserialize, Default)]
pub struct LogFilters {
    recording: Option<String>,
    who: Option<String>,
    from: Option<String>,
    to: Option<String>,
    site: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(f): Query<LogFilters>,
    Query(p): Query<Paging>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cfg = state.config();
    let limit = p.limit()?;
    let from = nonempty(&f.from).map(|s| query::range_start("from", &s, &cfg.tz)).transpose()?;
    let to = nonempty(&f.to).map(|s| query::range_end("to", &s, &cfg.tz)).transpose()?;
    // A site's log pages by its ids, the central one by time and sequence: a cursor of
    // the other kind is not one of this API's.
    let central = state.central_reader().is_some();
    let before = p
        .after()
        .map(|a| match PlaybackCursor::parse("after", a) {
            Ok(c) if matches!(c, PlaybackCursor::Central { .. }) == central => Ok(c),
            _ => Err(ApiError::bad_request(format!("after: {a:?} is not a cursor of this log"))),
        })
        .transpose()?;
    let q = PlaybackQuery {
        from,
        to,
        who: nonempty(&f.who),
        recording: nonempty(&f.recording),
        // One more than asked: whether there is a next page.
        limit: Some(limit + 1),
        newest_first: true,
        before,
        site: nonempty(&f.site),
    };
    let mut rows = state.with_db(move |db, _| db.reader.playback_log(&q).map_err(ApiError::any)).await?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| r.cursor.to_string())
    } else {
        None
    };
    Ok(Json(serde_json::json!({ "rows": rows, "next": next })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_playback_with_a_sliding_window() {
        let mut d = Dedup::default();
        let t0 = Instant::now();
        assert!(d.fetch("audit-1", "r1", t0), "first fetch is logged");
        assert!(!d.fetch("audit-1", "r1", t0 + Duration::from_secs(5)), "a range request of the same playback");
        assert!(!d.fetch("audit-1", "r1", t0 + WINDOW), "the window slides with each fetch");
        assert!(d.fetch("audit-2", "r1", t0 + WINDOW), "another person is another playback");
        assert!(d.fetch("audit-1", "r2", t0 + WINDOW), "another recording too");
        assert!(d.fetch("audit-1", "r1", t0 + WINDOW * 2 + Duration::from_secs(5)), "after a pause: a new playback");
        d.forget("audit-1", "r1");
        assert!(
            d.fetch("audit-1", "r1", t0 + WINDOW * 2 + Duration::from_secs(6)),
            "a forgotten start is logged again"
        );
    }

    #[test]
    fn prunes_stale_pairs() {
        let mut d = Dedup::default();
        let t0 = Instant::now();
        for i in 0..PRUNE_AT {
            d.fetch("a", &i.to_string(), t0);
        }
        d.fetch("a", "new", t0 + WINDOW);
        assert_eq!(d.last.len(), 1);
    }
}
