//! `GET /api/stats?by=ext|group|day|month` with the call filters (and `month=YYYY-MM`):
//! the figures of `callwarden stats` (STA-2, ANS-1..3, DUR-1..3, OUT-6) as
//! `{"by": ..., "rows": [StatsRow]}`, or as CSV (`format=csv`: one column per figure, the
//! rings histogram as `rings_0`..`rings_5_plus`, violations as `violations_<RULE>`).
//! The limits are those of the current config, as the CLI uses them.
//! Answers are cached per question while the database is unchanged (`PRAGMA
//! data_version`; a config reload clears them): the same figures, without aggregating a
//! month of calls again for every page view.

use super::csv_out::{csv_response, opt};
use super::params::{FilterParams, Paging};
use super::{ApiError, AppState};
use crate::store::{StatsBy, StatsRow};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Deserialize, Default)]
pub struct By {
    by: Option<String>,
}

#[derive(Serialize)]
struct StatsDoc<'a> {
    by: &'static str,
    rows: &'a [StatsRow],
}

/// Answers kept, at most; the oldest half goes when full.
const CACHE_MAX: usize = 64;

/// Stats answers by question, for one `data_version` of the database.
#[derive(Default)]
pub struct Cache {
    version: Option<i64>,
    entries: HashMap<String, (u64, Arc<Vec<StatsRow>>)>,
    tick: u64,
}

impl Cache {
    fn get(&mut self, version: i64, key: &str) -> Option<Arc<Vec<StatsRow>>> {
        if self.version != Some(version) {
            self.entries.clear();
            self.version = Some(version);
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(used, rows)| {
            *used = tick;
            Arc::clone(rows)
        })
    }

    /// Keep `rows`, computed after `version` was read (so a commit during the query makes
    /// the next request see another version and drop them).
    fn put(&mut self, version: i64, key: String, rows: Arc<Vec<StatsRow>>) {
        if self.version != Some(version) {
            return;
        }
        if self.entries.len() >= CACHE_MAX {
            let mut ticks: Vec<u64> = self.entries.values().map(|(t, _)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks.get(ticks.len() / 2).copied().unwrap_or(0);
            self.entries.retain(|_, (t, _)| *t > cut);
        }
        self.tick += 1;
        self.entries.insert(key, (self.tick, rows));
    }
}

pub async fn get_stats(
    State(state): State<AppState>,
    Query(by): Query<By>,
    Query(f): Query<FilterParams>,
    Query(p): Query<Paging>,
) -> Result<Response, ApiError> {
    let by: StatsBy = match by.by.as_deref() {
        None | Some("") => StatsBy::Ext,
        Some(s) => s.parse()?,
    };
    let cfg = state.config();
    let q = f.call_query(&cfg.tz)?;
    let csv = p.csv()?;
    let bom = p.bom();
    let key = format!("{by:?}|{q:?}");
    let st = state.clone();
    let rows = state
        .with_db(move |db, _cfg| {
            let Some(version) = st.data_version()? else {
                return Ok(Arc::new(db.reader.stats(by, &q).map_err(ApiError::any)?));
            };
            if let Some(rows) = st.stats_cache().lock().ok().and_then(|mut c| c.get(version, &key)) {
                return Ok(rows);
            }
            let rows = Arc::new(db.reader.stats(by, &q).map_err(ApiError::any)?);
            if let Ok(mut c) = st.stats_cache().lock() {
                c.put(version, key, Arc::clone(&rows));
            }
            Ok(rows)
        })
        .await?;
    if csv {
        let (mut sink, res) = csv_response(&format!("stats-by-{}.csv", by.as_str()), bom);
        tokio::task::spawn_blocking(move || {
            let (header, lines) = csv_table(&rows);
            if sink.row(&header) {
                for l in &lines {
                    if !sink.row(l) {
                        return;
                    }
                }
                sink.finish();
            }
        });
        return Ok(res);
    }
    Ok(Json(StatsDoc { by: by.as_str(), rows: &rows }).into_response())
}

/// The stats rows as a flat table: fixed columns, then one column per rule seen.
pub fn csv_table(rows: &[StatsRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let rules: BTreeSet<&String> = rows.iter().flat_map(|r| r.violations.keys()).collect();
    let mut header: Vec<String> = [
        "key",
        "calls",
        "inbound",
        "outbound",
        "internal",
        "answered",
        "missed",
        "answered_incoming",
        "within_max_rings",
        "within_max_rings_share",
        "rings_0",
        "rings_1",
        "rings_2",
        "rings_3",
        "rings_4",
        "rings_5_plus",
        "talk_ms_mean",
        "talk_ms_p50",
        "talk_ms_p90",
        "talk_ms_max",
        "effective",
        "long_calls",
        "cost_fen",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(rules.iter().map(|r| format!("violations_{r}")));
    let lines = rows
        .iter()
        .map(|r| {
            let mut l = vec![
                opt(r.key.as_deref()),
                r.calls.to_string(),
                r.inbound.to_string(),
                r.outbound.to_string(),
                r.internal.to_string(),
                r.answered.to_string(),
                r.missed.to_string(),
                r.answered_incoming.to_string(),
                r.within_max_rings.to_string(),
                opt(r.within_max_rings_share.map(|s| format!("{s:.4}"))),
            ];
            l.extend(r.rings_before_answer.as_array().iter().map(u64::to_string));
            l.extend([
                opt(r.talk_ms.mean),
                opt(r.talk_ms.p50),
                opt(r.talk_ms.p90),
                opt(r.talk_ms.max),
                r.effective.to_string(),
                r.long_calls.to_string(),
                r.cost_fen.to_string(),
            ]);
            l.extend(rules.iter().map(|rule| r.violations.get(*rule).copied().unwrap_or(0).to_string()));
            l
        })
        .collect();
    (header, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_per_version_and_bounded() {
        let mut c = Cache::default();
        let rows = Arc::new(vec![StatsRow { calls: 3, ..StatsRow::default() }]);
        assert!(c.get(1, "a").is_none());
        c.put(1, "a".into(), Arc::clone(&rows));
        assert_eq!(c.get(1, "a").map(|r| r[0].calls), Some(3));
        assert!(c.get(1, "b").is_none());
        // Computed under version 1, offered after version 2 was seen: not kept.
        assert!(c.get(2, "a").is_none());
        c.put(1, "a".into(), Arc::clone(&rows));
        assert!(c.get(2, "a").is_none());
        for i in 0..200 {
            c.put(2, format!("k{i}"), Arc::clone(&rows));
        }
        assert!(c.entries.len() <= CACHE_MAX);
        assert!(c.get(2, "k199").is_some(), "the newest is kept");
    }

    #[test]
    fn csv_has_a_column_per_rule_and_aligned_rows() {
        let mut a = StatsRow { key: Some("8001".into()), calls: 3, ..StatsRow::default() };
        a.violations.insert("OUT-1".into(), 2);
        let mut b = StatsRow { key: None, calls: 1, ..StatsRow::default() };
        b.violations.insert("ANS-1".into(), 1);
        let (h, rows) = csv_table(&[a, b]);
        assert_eq!(h.last().map(String::as_str), Some("violations_OUT-1"));
        assert_eq!(h[h.len() - 2], "violations_ANS-1");
        assert!(rows.iter().all(|r| r.len() == h.len()));
        assert_eq!(rows[0][0], "8001");
        assert_eq!(rows[0][h.len() - 1], "2");
        assert_eq!(rows[0][h.len() - 2], "0");
        assert_eq!(rows[1][0], "");
    }
}
