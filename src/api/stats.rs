//! `GET /api/stats?by=ext|group|day|month` with the call filters (and `month=YYYY-MM`):
//! the figures of `callwarden stats` (STA-2, ANS-1..3, DUR-1..3, OUT-6) as
//! `{"by": ..., "rows": [StatsRow]}`, or as CSV (`format=csv`: one column per figure, the
//! rings histogram as `rings_0`..`rings_5_plus`, violations as `violations_<RULE>`).
//! The limits are those of the current config, as the CLI uses them.
//! Answers are cached per question (a config reload clears them) and survive commits
//! that touch none of the calls they count (`Cache`: `PRAGMA data_version` says when to
//! look, the store's change log what changed): the same figures, without aggregating a
//! month of calls again for every page view while the site writes today's.

use super::csv_out::{csv_response, opt};
use super::params::{FilterParams, Paging};
use super::{ApiError, AppState};
use crate::store::{changes, StatsBy, StatsRow};
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

/// Stats answers by question. A commit does not empty it: at each new `data_version` the
/// store's change log (`store::changes`, migration 0013) names the start times of the rows
/// that changed, and only answers whose range holds one of them go; a past day or month
/// keeps its answer while today's calls are written.
#[derive(Default)]
pub struct Cache {
    /// The database version the entries are known to be right for.
    version: Option<i64>,
    /// The last change of the store's log taken into account (none: not looked yet).
    checked: Option<i64>,
    entries: HashMap<String, Entry>,
    tick: u64,
    /// Answers given from the cache, and questions it could not answer (what the tests
    /// observe; not exported).
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

struct Entry {
    used: u64,
    /// The calls' start range the answer covers (µs, `from` included, `to` not).
    range: (Option<i64>, Option<i64>),
    rows: Arc<Vec<StatsRow>>,
}

impl Entry {
    fn covers(&self, start_us: i64) -> bool {
        self.range.0.is_none_or(|f| start_us >= f) && self.range.1.is_none_or(|t| start_us < t)
    }
}

impl Cache {
    /// Whether the entries must be brought up to `version` first (with `catch_up`).
    fn stale(&self, version: i64) -> bool {
        self.version != Some(version)
    }

    /// Bring the entries up to `version`: drop those a change falls in (all of them when
    /// the log cannot say).
    fn catch_up(&mut self, version: i64, since: changes::Since) {
        match since {
            changes::Since::Changes { last, starts } => {
                if !starts.is_empty() {
                    self.entries.retain(|_, e| !starts.iter().any(|&s| e.covers(s)));
                }
                self.checked = Some(last);
            }
            changes::Since::Unknown { last } => {
                self.entries.clear();
                self.checked = last;
            }
        }
        self.version = Some(version);
    }

    fn get(&mut self, key: &str) -> Option<Arc<Vec<StatsRow>>> {
        self.tick += 1;
        let tick = self.tick;
        let hit = self.entries.get_mut(key).map(|e| {
            e.used = tick;
            Arc::clone(&e.rows)
        });
        if hit.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        hit
    }

    /// Keep `rows`, computed after the cache was brought up to `version` (so a commit
    /// during the query makes the next request see another version and test them).
    fn put(&mut self, version: i64, key: String, range: (Option<i64>, Option<i64>), rows: Arc<Vec<StatsRow>>) {
        if self.version != Some(version) {
            return;
        }
        if self.entries.len() >= CACHE_MAX {
            let mut ticks: Vec<u64> = self.entries.values().map(|e| e.used).collect();
            ticks.sort_unstable();
            let cut = ticks.get(ticks.len() / 2).copied().unwrap_or(0);
            self.entries.retain(|_, e| e.used > cut);
        }
        self.tick += 1;
        self.entries.insert(key, Entry { used: self.tick, range, rows });
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
            let range = (q.from.map(|t| t.as_micros()), q.to.map(|t| t.as_micros()));
            {
                let mut c = st.stats_cache().lock().map_err(|_| ApiError::internal("stats cache lock poisoned"))?;
                if c.stale(version) {
                    let since = st.stats_changes(c.checked)?;
                    c.catch_up(version, since);
                }
                if let Some(rows) = c.get(&key) {
                    return Ok(rows);
                }
            }
            let rows = Arc::new(db.reader.stats(by, &q).map_err(ApiError::any)?);
            if let Ok(mut c) = st.stats_cache().lock() {
                c.put(version, key, range, Arc::clone(&rows));
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
    fn a_change_drops_only_the_answers_whose_range_it_falls_in() {
        use changes::Since;
        let mut c = Cache::default();
        let rows = Arc::new(vec![StatsRow { calls: 3, ..StatsRow::default() }]);
        assert!(c.stale(1));
        c.catch_up(1, Since::Unknown { last: Some(10) });
        assert_eq!(c.checked, Some(10));
        let (march, april, all) = ((Some(100), Some(200)), (Some(200), Some(300)), (None, None));
        c.put(1, "march".into(), march, Arc::clone(&rows));
        c.put(1, "april".into(), april, Arc::clone(&rows));
        c.put(1, "all".into(), all, Arc::clone(&rows));
        assert_eq!(c.get("march").map(|r| r[0].calls), Some(3));
        // Computed under version 1, offered after version 2 was seen: not kept.
        c.catch_up(2, Since::Changes { last: 11, starts: vec![] });
        c.put(1, "late".into(), all, Arc::clone(&rows));
        assert!(c.get("late").is_none());
        // A change at 250 (April): March survives, April and the open range go; the
        // range's end is not in it.
        c.catch_up(3, Since::Changes { last: 12, starts: vec![250] });
        assert!(c.get("march").is_some() && c.get("april").is_none() && c.get("all").is_none());
        c.put(3, "april".into(), april, Arc::clone(&rows));
        c.catch_up(4, Since::Changes { last: 13, starts: vec![200] });
        assert!(c.get("march").is_some() && c.get("april").is_none());
        c.catch_up(5, Since::Changes { last: 14, starts: vec![99] });
        assert!(c.get("march").is_some());
        // The log cannot say: everything goes.
        c.catch_up(6, Since::Unknown { last: Some(99) });
        assert!(c.get("march").is_none());
        assert_eq!(c.checked, Some(99));
        for i in 0..200 {
            c.put(6, format!("k{i}"), all, Arc::clone(&rows));
        }
        assert!(c.entries.len() <= CACHE_MAX);
        assert!(c.get("k199").is_some(), "the newest is kept");
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
