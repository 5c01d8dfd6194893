//! The figures of `stats` (STA-2, ANS-1..3, DUR-1..3, OUT-6): pure aggregation over the
//! calls and violations a query selected, so every figure can be checked by hand.
//! Definitions (the JSON field names):
//! - `calls`, `inbound`, `outbound`, `internal`: calls in the row (transit calls count in
//!   `calls` only). By extension, a call counts for each of our extensions on it.
//! - `answered`: answered calls of any direction.
//! - `missed`: inbound/internal calls not answered, ended `cancelled`, `busy`, `rejected`,
//!   `no-answer` or `timeout` (ANS-3); by extension, only for the extension called.
//! - `answered_incoming`: answered inbound/internal calls (by extension: those it
//!   received); `within_max_rings` of them were answered within the `max_rings` applied
//!   when the call was judged (ANS-1/2, stored with the call), `within_max_rings_share` =
//!   within / answered_incoming (null when 0);
//!   `rings_before_answer` is their distribution over 0, 1, 2, 3, 4, 5+ rings (ANS-2).
//! - `talk_ms`: mean (rounded), p50, p90 (nearest rank: the smallest value with at least
//!   p% of the values at or below it) and max of the talk time of answered calls.
//! - `effective`: answered calls with talk ≥ the group's `effective_min_talk_s` (STA-1),
//!   as judged when the call ended.
//! - `long_calls`: answered calls whose talk exceeded the limit applied when they ended
//!   (DUR-1..3: internal, personal or business, each with the group's override).
//!
//! Every judgement is read from what was stored with the call (`track::Judged`, migration
//! 0006): editing the config never changes a past figure.
//! - `violations`: count by rule id of the violations selected for the row's key.
//! - `cost_fen`: sum of call charges (by extension: of the calls it made).

use super::query::StatsBy;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// End reasons that make an unanswered inbound/internal call a missed one.
pub const MISSED_REASONS: [&str; 5] = ["cancelled", "busy", "rejected", "no-answer", "timeout"];

/// What `stats` needs of one call, borrowed from the row being read (a month of calls is
/// aggregated as it streams out of SQLite, without a copy of each row's text).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatCall<'a> {
    pub direction: &'a str,
    pub caller_ext: Option<&'a str>,
    pub callee_ext: Option<&'a str>,
    pub group: Option<&'a str>,
    pub day: &'a str,
    pub month: &'a str,
    /// The site the call was stored at (`--by site`); None for a site without a name.
    pub site: Option<&'a str>,
    pub answered: bool,
    pub end_reason: &'a str,
    pub rings: u32,
    pub talk_ms: i64,
    pub cost_fen: Option<i64>,
    /// Stored verdicts: answered within the `max_rings` applied (ANS-1/2) ...
    pub within_max_rings: bool,
    /// ... talk over the limit applied (DUR-1/2/3) ...
    pub long: bool,
    /// ... and effective (STA-1).
    pub effective: bool,
}

/// What `stats` needs of one violation (group: that of its call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatViolation<'a> {
    pub rule: &'a str,
    pub extension: &'a str,
    pub group: Option<&'a str>,
    pub day: &'a str,
    pub month: &'a str,
    pub site: Option<&'a str>,
}

/// Answered incoming calls by rings before answer: 0 (no ringing phase), 1, 2, 3, 4, 5+.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RingsHistogram {
    #[serde(rename = "0")]
    pub r0: u64,
    #[serde(rename = "1")]
    pub r1: u64,
    #[serde(rename = "2")]
    pub r2: u64,
    #[serde(rename = "3")]
    pub r3: u64,
    #[serde(rename = "4")]
    pub r4: u64,
    #[serde(rename = "5+")]
    pub r5_plus: u64,
}

impl RingsHistogram {
    fn add(&mut self, rings: u32) {
        let slot = match rings {
            0 => &mut self.r0,
            1 => &mut self.r1,
            2 => &mut self.r2,
            3 => &mut self.r3,
            4 => &mut self.r4,
            _ => &mut self.r5_plus,
        };
        *slot += 1;
    }

    pub fn as_array(&self) -> [u64; 6] {
        [self.r0, self.r1, self.r2, self.r3, self.r4, self.r5_plus]
    }
}

/// Talk time of answered calls, milliseconds; null when there were none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TalkStats {
    pub mean: Option<i64>,
    pub p50: Option<i64>,
    pub p90: Option<i64>,
    pub max: Option<i64>,
    /// p50 and p90 estimated from the central store's talk histograms (`TalkHist`), not
    /// ranked from every call; mean and max are exact either way. Absent when exact.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

impl TalkStats {
    pub fn of(mut talk: Vec<i64>) -> TalkStats {
        talk.sort_unstable();
        let n = talk.len();
        let mean = mean_of(talk.iter().map(|&t| i128::from(t)).sum(), n as i128);
        TalkStats {
            mean,
            p50: percentile(&talk, 50),
            p90: percentile(&talk, 90),
            max: talk.last().copied(),
            estimated: false,
        }
    }
}

/// Round `sum / n` half away from zero, in integers (no float error on large sums).
fn mean_of(sum: i128, n: i128) -> Option<i64> {
    (n > 0).then(|| {
        let q = (2 * sum + if sum >= 0 { n } else { -n }) / (2 * n);
        i64::try_from(q).unwrap_or(i64::MAX)
    })
}

/// Where the central store's talk histograms split, in milliseconds: bucket 0 holds talk
/// below the first bound, bucket i talk in [bound i-1, bound i), the last bucket talk at or
/// above the last bound. Its migration 0012 holds the same list (a test compares them).
pub const TALK_BOUNDS_MS: [i64; 27] = [
    1_000, 2_000, 3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 90_000, 120_000, 150_000,
    180_000, 240_000, 300_000, 420_000, 600_000, 900_000, 1_200_000, 1_800_000, 2_700_000, 3_600_000, 5_400_000,
    7_200_000, 10_800_000,
];

/// How many talk buckets a histogram has.
pub const TALK_BUCKETS: usize = TALK_BOUNDS_MS.len() + 1;

/// Talk of answered calls as the central store's rollups keep it: count, exact sum and
/// max, and a histogram over `TALK_BOUNDS_MS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TalkHist {
    pub n: u64,
    pub sum: i128,
    pub max: Option<i64>,
    pub buckets: [u64; TALK_BUCKETS],
}

impl TalkHist {
    fn bucket_of(talk_ms: i64) -> usize {
        TALK_BOUNDS_MS.partition_point(|&b| b <= talk_ms)
    }

    fn add_exact(&mut self, talk_ms: i64) {
        self.n += 1;
        self.sum += i128::from(talk_ms);
        self.max = Some(self.max.map_or(talk_ms, |m| m.max(talk_ms)));
        self.buckets[Self::bucket_of(talk_ms)] += 1;
    }

    fn absorb(&mut self, o: &TalkHist) {
        self.n += o.n;
        self.sum += o.sum;
        self.max = match (self.max, o.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
    }

    /// The nearest-rank percentile's estimate: the rank's bucket found exactly, the value
    /// placed linearly within it (as Prometheus' histogram_quantile does), never above the
    /// exact max.
    fn percentile(&self, p: u64) -> Option<i64> {
        if self.n == 0 {
            return None;
        }
        let rank = (p.min(100) * self.n).div_ceil(100).max(1);
        let mut before = 0u64;
        for (i, &count) in self.buckets.iter().enumerate() {
            if count == 0 || before + count < rank {
                before += count;
                continue;
            }
            let max = self.max.unwrap_or(0);
            let lo = if i == 0 { 0 } else { TALK_BOUNDS_MS[i - 1] };
            let hi = TALK_BOUNDS_MS.get(i).copied().unwrap_or(max).min(max.saturating_add(1)).max(lo);
            let within = (rank - before) as f64 - 0.5;
            let v = lo as f64 + (hi - lo) as f64 * within / count as f64;
            return Some((v.round() as i64).min(max));
        }
        self.max
    }

    fn stats(&self) -> TalkStats {
        TalkStats {
            mean: mean_of(self.sum, i128::from(self.n)),
            p50: self.percentile(50),
            p90: self.percentile(90),
            max: self.max,
            estimated: true,
        }
    }
}

/// Nearest-rank percentile of sorted values: the value at rank ⌈p·n/100⌉ (1-based).
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    let rank = (p.min(100) * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// One row of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatsRow {
    /// The extension, group name, day (YYYY-MM-DD), month (YYYY-MM) or site; null for
    /// calls in no group (or of a site without a name).
    pub key: Option<String>,
    pub calls: u64,
    pub inbound: u64,
    pub outbound: u64,
    pub internal: u64,
    pub answered: u64,
    pub missed: u64,
    pub answered_incoming: u64,
    pub within_max_rings: u64,
    pub within_max_rings_share: Option<f64>,
    pub rings_before_answer: RingsHistogram,
    pub talk_ms: TalkStats,
    pub effective: u64,
    pub long_calls: u64,
    pub violations: BTreeMap<String, u64>,
    pub cost_fen: i64,
    /// OUT-6, `stats --by group --month`: the group's `monthly_budget` in fen. Absent when
    /// it has none, or the rows are not one month by group (so other rows keep their shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_fen: Option<i64>,
    /// By how much `cost_fen` exceeds `budget_fen` (0 within it); absent without a budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_budget_fen: Option<i64>,
}

/// Group calls and violations into rows by `by`, ordered by key. `only_key` keeps one
/// row (by extension with `--ext`: the other party of an internal call is not shown).
pub fn aggregate(
    by: StatsBy,
    calls: &[StatCall<'_>],
    violations: &[StatViolation<'_>],
    only_key: Option<&str>,
) -> Vec<StatsRow> {
    let mut agg = Aggregator::new(by, only_key);
    calls.iter().for_each(|c| agg.add_call(c));
    violations.iter().for_each(|v| agg.add_violation(v));
    agg.finish()
}

/// One row being summed, with the talk times its percentiles are taken from (or, once
/// rollups are summed into it, their histogram).
struct Acc {
    row: StatsRow,
    talk: Vec<i64>,
    hist: Option<Box<TalkHist>>,
}

impl Acc {
    /// Add another row of the same key: every count and sum (the shares and talk figures
    /// are made from them by `finish`).
    fn absorb(&mut self, o: Acc) {
        let (r, o_row) = (&mut self.row, o.row);
        r.calls += o_row.calls;
        r.inbound += o_row.inbound;
        r.outbound += o_row.outbound;
        r.internal += o_row.internal;
        r.answered += o_row.answered;
        r.missed += o_row.missed;
        r.answered_incoming += o_row.answered_incoming;
        r.within_max_rings += o_row.within_max_rings;
        let (h, oh) = (&mut r.rings_before_answer, o_row.rings_before_answer);
        (h.r0, h.r1, h.r2, h.r3, h.r4, h.r5_plus) =
            (h.r0 + oh.r0, h.r1 + oh.r1, h.r2 + oh.r2, h.r3 + oh.r3, h.r4 + oh.r4, h.r5_plus + oh.r5_plus);
        r.effective += o_row.effective;
        r.long_calls += o_row.long_calls;
        for (rule, n) in o_row.violations {
            *r.violations.entry(rule).or_default() += n;
        }
        r.cost_fen = r.cost_fen.saturating_add(o_row.cost_fen);
        self.talk.extend(o.talk);
        if let Some(h) = o.hist {
            match &mut self.hist {
                Some(mine) => mine.absorb(&h),
                None => self.hist = Some(h),
            }
        }
    }

    fn talk_stats(self) -> (StatsRow, TalkStats) {
        match self.hist {
            // Rolled-up and single calls in one row (not made today, but kept right):
            // the calls join the histogram, and the figures are estimated.
            Some(mut h) => {
                self.talk.iter().for_each(|&t| h.add_exact(t));
                (self.row, h.stats())
            }
            None => (self.row, TalkStats::of(self.talk)),
        }
    }
}

/// The rows of `stats`, summed one call and one violation at a time (what [`aggregate`]
/// does over slices). A row's key is allocated once, when the row is made; after that a
/// call only looks it up.
pub struct Aggregator {
    by: StatsBy,
    only_key: Option<String>,
    rows: HashMap<String, Acc>,
    /// The row of calls in no group (by group); kept apart so lookups borrow a `&str`.
    no_key: Option<Acc>,
}

impl Aggregator {
    pub fn new(by: StatsBy, only_key: Option<&str>) -> Self {
        Aggregator { by, only_key: only_key.map(str::to_string), rows: HashMap::new(), no_key: None }
    }

    fn wanted(&self, key: Option<&str>) -> bool {
        self.only_key.as_deref().is_none_or(|o| key == Some(o))
    }

    fn acc(&mut self, key: Option<&str>) -> &mut Acc {
        let new = |key: Option<&str>| Acc {
            row: StatsRow { key: key.map(str::to_string), ..StatsRow::default() },
            talk: vec![],
            hist: None,
        };
        match key {
            None => self.no_key.get_or_insert_with(|| new(None)),
            // Two lookups on a new key (once per row), one on every other call.
            Some(k) => {
                if !self.rows.contains_key(k) {
                    self.rows.insert(k.to_string(), new(Some(k)));
                }
                match self.rows.get_mut(k) {
                    Some(a) => a,
                    None => unreachable!("inserted above"),
                }
            }
        }
    }

    pub fn add_call(&mut self, c: &StatCall<'_>) {
        let incoming = matches!(c.direction, "inbound" | "internal");
        // (key, is the called party, is the paying party); at most two.
        let keys: [Option<(Option<&str>, bool, bool)>; 2] = match self.by {
            StatsBy::Ext => {
                let (caller, callee) = (c.caller_ext, c.callee_ext);
                [
                    caller.map(|e| (Some(e), callee == Some(e), true)),
                    callee.filter(|e| caller != Some(*e)).map(|e| (Some(e), true, false)),
                ]
            }
            StatsBy::Group => [Some((c.group, true, true)), None],
            StatsBy::Day => [Some((Some(c.day), true, true)), None],
            StatsBy::Month => [Some((Some(c.month), true, true)), None],
            StatsBy::Site => [Some((c.site, true, true)), None],
        };
        for (key, called, pays) in keys.into_iter().flatten() {
            if !self.wanted(key) {
                continue;
            }
            let Acc { row, talk, .. } = self.acc(key);
            row.calls += 1;
            match c.direction {
                "inbound" => row.inbound += 1,
                "outbound" => row.outbound += 1,
                "internal" => row.internal += 1,
                _ => {}
            }
            if c.answered {
                row.answered += 1;
                talk.push(c.talk_ms);
                row.effective += u64::from(c.effective);
                row.long_calls += u64::from(c.long);
            }
            if incoming && called {
                if c.answered {
                    row.answered_incoming += 1;
                    row.rings_before_answer.add(c.rings);
                    row.within_max_rings += u64::from(c.within_max_rings);
                } else if MISSED_REASONS.contains(&c.end_reason) {
                    row.missed += 1;
                }
            }
            if pays {
                row.cost_fen = row.cost_fen.saturating_add(c.cost_fen.unwrap_or(0));
            }
        }
    }

    pub fn add_violation(&mut self, v: &StatViolation<'_>) {
        let key = match self.by {
            StatsBy::Ext => Some(v.extension),
            StatsBy::Group => v.group,
            StatsBy::Day => Some(v.day),
            StatsBy::Month => Some(v.month),
            StatsBy::Site => v.site,
        };
        if !self.wanted(key) {
            return;
        }
        let counts = &mut self.acc(key).row.violations;
        match counts.get_mut(v.rule) {
            Some(n) => *n += 1,
            None => {
                counts.insert(v.rule.to_string(), 1);
            }
        }
    }

    /// Add calls already summed by the central store's rollups under `key`: their counts
    /// (a row's figures, as `add_call` would have made them of those calls; by ext, the
    /// rollup row of that extension, whose counts already say where it was called and
    /// where it paid) and their talk histogram.
    pub fn add_rolled(&mut self, key: Option<&str>, counts: StatsRow, talk: TalkHist) {
        if !self.wanted(key) || counts.calls == 0 {
            return;
        }
        self.acc(key).absorb(Acc { row: counts, talk: vec![], hist: Some(Box::new(talk)) });
    }

    /// Add `n` violations of `rule` under `key`, as counted by a rollup.
    pub fn add_violation_count(&mut self, key: Option<&str>, rule: &str, n: u64) {
        if !self.wanted(key) || n == 0 {
            return;
        }
        *self.acc(key).row.violations.entry(rule.to_string()).or_default() += n;
    }

    /// Add the rows summed by `other` (over other calls, with the same grouping and
    /// parameters): the result is as if this one had been given all the calls.
    pub fn merge(&mut self, other: Aggregator) {
        if let Some(acc) = other.no_key {
            match &mut self.no_key {
                Some(mine) => mine.absorb(acc),
                None => self.no_key = Some(acc),
            }
        }
        for (key, acc) in other.rows {
            match self.rows.get_mut(&key) {
                Some(mine) => mine.absorb(acc),
                None => {
                    self.rows.insert(key, acc);
                }
            }
        }
    }

    /// The rows, ordered by key (calls in no group first).
    pub fn finish(self) -> Vec<StatsRow> {
        let mut keyed: Vec<(String, Acc)> = self.rows.into_iter().collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.no_key
            .into_iter()
            .chain(keyed.into_iter().map(|(_, acc)| acc))
            .map(|acc| {
                let (mut row, talk) = acc.talk_stats();
                row.talk_ms = talk;
                row.within_max_rings_share =
                    (row.answered_incoming > 0).then(|| row.within_max_rings as f64 / row.answered_incoming as f64);
                row
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(
        dir: &'a str,
        caller: Option<&'a str>,
        callee: Option<&'a str>,
        answered: bool,
        rings: u32,
        talk_s: i64,
    ) -> StatCall<'a> {
        StatCall {
            direction: dir,
            caller_ext: caller,
            callee_ext: callee,
            group: Some("dispatch"),
            day: "2026-03-02",
            month: "2026-03",
            site: None,
            answered,
            end_reason: if answered { "caller-bye" } else { "cancelled" },
            rings,
            talk_ms: talk_s * 1000,
            cost_fen: None,
            // As policy judges with the defaults (max_rings 3, max_talk 180 s, effective
            // 30 s): the stored verdicts these figures count.
            within_max_rings: rings <= 3,
            long: answered && talk_s > 180,
            effective: answered && talk_s >= 30,
        }
    }

    #[test]
    fn percentiles_by_hand() {
        let ten: Vec<i64> = (1..=10).map(|i| i * 10).collect();
        assert_eq!(percentile(&ten, 50), Some(50));
        assert_eq!(percentile(&ten, 90), Some(90));
        assert_eq!(percentile(&ten, 100), Some(100));
        assert_eq!(percentile(&ten, 0), Some(10));
        assert_eq!(percentile(&[1, 3, 5], 50), Some(3));
        assert_eq!(percentile(&[1, 3, 5], 90), Some(5));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[], 50), None);
        let t = TalkStats::of(vec![5, 1, 3, 2]);
        // sorted 1 2 3 5: mean 11/4 = 2.75 → 3; p50 rank 2 → 2; p90 rank 4 → 5.
        assert_eq!(t, TalkStats { mean: Some(3), p50: Some(2), p90: Some(5), max: Some(5), estimated: false });
        assert_eq!(TalkStats::of(vec![1, 2]).mean, Some(2), "1.5 rounds half up");
        assert_eq!(TalkStats::of(vec![]), TalkStats::default());
    }

    #[test]
    fn histogram_estimates_land_in_the_exact_value_s_bucket() {
        // Talk spread over every bucket, a few thousand calls: p50/p90 estimated from the
        // histogram fall in the bucket of the exact nearest-rank value, never above max;
        // mean and max are exact.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut talk = vec![];
        for n in [1usize, 2, 3, 10, 999, 4000] {
            talk.clear();
            let mut h = TalkHist::default();
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = i64::try_from(x % 4_000_000).unwrap() >> (x % 11);
                talk.push(t);
                h.add_exact(t);
            }
            let exact = TalkStats::of(talk.clone());
            let est = h.stats();
            assert!(est.estimated);
            assert_eq!((est.mean, est.max), (exact.mean, exact.max), "n={n}");
            for (e, x) in [(est.p50, exact.p50), (est.p90, exact.p90)] {
                let (e, x) = (e.unwrap(), x.unwrap());
                assert_eq!(TalkHist::bucket_of(e), TalkHist::bucket_of(x), "n={n}: estimate {e}, exact {x}");
                assert!(e <= exact.max.unwrap());
            }
        }
        assert_eq!(TalkHist::default().stats(), TalkStats { estimated: true, ..TalkStats::default() });
        assert_eq!(TalkHist::bucket_of(999), 0);
        assert_eq!(TalkHist::bucket_of(1000), 1);
        assert_eq!(TalkHist::bucket_of(i64::MAX), TALK_BUCKETS - 1);
    }

    #[test]
    fn rolled_up_calls_sum_as_the_calls_do() {
        // Two rolled-up parts of one key add up as the calls would (counts exactly).
        let mut agg = Aggregator::new(StatsBy::Group, None);
        let mut part =
            StatsRow { calls: 3, inbound: 2, answered: 2, answered_incoming: 1, cost_fen: 40, ..Default::default() };
        part.rings_before_answer.r2 = 1;
        let mut talk = TalkHist::default();
        talk.add_exact(30_000);
        talk.add_exact(90_000);
        agg.add_rolled(Some("dispatch"), part.clone(), talk.clone());
        agg.add_rolled(Some("dispatch"), part, talk);
        agg.add_rolled(None, StatsRow::default(), TalkHist::default());
        agg.add_violation_count(Some("dispatch"), "OUT-1", 2);
        agg.add_violation_count(Some("dispatch"), "OUT-1", 0);
        let rows = agg.finish();
        assert_eq!(rows.len(), 1, "an empty part makes no row: {rows:?}");
        let r = &rows[0];
        assert_eq!((r.calls, r.inbound, r.answered, r.answered_incoming, r.cost_fen), (6, 4, 4, 2, 80));
        assert_eq!(r.rings_before_answer.as_array(), [0, 0, 2, 0, 0, 0]);
        assert_eq!((r.talk_ms.mean, r.talk_ms.max, r.talk_ms.estimated), (Some(60_000), Some(90_000), true));
        assert_eq!(r.violations.get("OUT-1"), Some(&2));
    }

    #[test]
    fn figures_by_hand() {
        let mut calls = vec![
            // 8001 receives: answered after 1, 3, 4 and 7 rings; one cancelled while ringing.
            call("inbound", None, Some("8001"), true, 1, 20),
            call("inbound", None, Some("8001"), true, 3, 40),
            call("inbound", None, Some("8001"), true, 4, 200),
            call("inbound", None, Some("8001"), true, 7, 60),
            call("inbound", None, Some("8001"), false, 2, 0),
            // 8001 calls out (answered without ringing phase: 0 rings) and 8002 internally.
            call("outbound", Some("8001"), None, true, 0, 100),
            call("internal", Some("8001"), Some("8002"), false, 1, 0),
        ];
        calls[5].cost_fen = Some(30);
        calls[6].end_reason = "no-answer";
        let viol = vec![
            StatViolation { rule: "ANS-1", extension: "8001", ..Default::default() },
            StatViolation { rule: "ANS-1", extension: "8001", ..Default::default() },
            StatViolation { rule: "DUR-1", extension: "8001", ..Default::default() },
            StatViolation { rule: "ANS-3", extension: "8002", ..Default::default() },
        ];
        let rows = aggregate(StatsBy::Ext, &calls, &viol, None);
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!(r.key.as_deref(), Some("8001"));
        assert_eq!((r.calls, r.inbound, r.outbound, r.internal), (7, 5, 1, 1));
        assert_eq!(r.answered, 5);
        assert_eq!(r.missed, 1, "the internal no-answer is 8002's miss, not 8001's");
        assert_eq!((r.answered_incoming, r.within_max_rings), (4, 2));
        assert_eq!(r.within_max_rings_share, Some(0.5));
        assert_eq!(r.rings_before_answer.as_array(), [0, 1, 0, 1, 1, 1]);
        // Talk of answered calls: 20 40 200 60 100 s → sorted 20 40 60 100 200.
        assert_eq!(
            r.talk_ms,
            TalkStats {
                mean: Some(84_000),
                p50: Some(60_000),
                p90: Some(200_000),
                max: Some(200_000),
                estimated: false
            }
        );
        assert_eq!(r.effective, 4, "all but the 20 s call");
        assert_eq!(r.long_calls, 1, "the 200 s call");
        assert_eq!(r.violations, BTreeMap::from([("ANS-1".to_string(), 2), ("DUR-1".to_string(), 1)]));
        assert_eq!(r.cost_fen, 30);
        let r = &rows[1];
        assert_eq!(r.key.as_deref(), Some("8002"));
        assert_eq!((r.calls, r.internal, r.missed, r.answered), (1, 1, 1, 0));
        assert_eq!(r.within_max_rings_share, None);
        assert_eq!(r.talk_ms, TalkStats::default());

        // By day: every call once; the internal call is counted once, missed once.
        let rows = aggregate(StatsBy::Day, &calls, &[], None);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].calls, rows[0].missed, rows[0].answered_incoming), (7, 2, 4));

        // --ext 8002 shows only 8002's row.
        let rows = aggregate(StatsBy::Ext, &calls, &viol, Some("8002"));
        assert_eq!(rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>(), vec![Some("8002".to_string())]);
    }

    /// Summing calls in parts and merging gives what summing them at once gives, for
    /// every grouping and however the calls are cut (what `Reader::stats` relies on when
    /// it reads a month in time slices).
    #[test]
    fn merged_parts_equal_the_whole() {
        let mut calls = vec![
            call("inbound", None, Some("8001"), true, 1, 20),
            call("inbound", None, Some("8001"), true, 4, 200),
            call("inbound", None, Some("8001"), false, 2, 0),
            call("outbound", Some("8001"), None, true, 0, 100),
            call("internal", Some("8001"), Some("8002"), false, 1, 0),
            call("inbound", None, Some("8002"), true, 7, 60),
            call("outbound", Some("8003"), None, true, 0, 31),
        ];
        calls[3].cost_fen = Some(30);
        calls[6].cost_fen = Some(12);
        calls[6].group = None;
        calls[5].day = "2026-03-03";
        let viol = vec![
            StatViolation {
                rule: "ANS-1",
                extension: "8001",
                group: Some("dispatch"),
                day: "2026-03-02",
                month: "2026-03",
                site: None,
            },
            StatViolation {
                rule: "OUT-1",
                extension: "8003",
                group: None,
                day: "2026-03-02",
                month: "2026-03",
                site: None,
            },
        ];
        for by in [StatsBy::Ext, StatsBy::Group, StatsBy::Day, StatsBy::Month] {
            let whole = aggregate(by, &calls, &viol, None);
            for cut in 0..=calls.len() {
                let (a, b) = calls.split_at(cut);
                let mut left = Aggregator::new(by, None);
                a.iter().for_each(|c| left.add_call(c));
                let mut right = Aggregator::new(by, None);
                b.iter().for_each(|c| right.add_call(c));
                // Violations into one part only, as the reader does.
                viol.iter().for_each(|v| right.add_violation(v));
                left.merge(right);
                assert_eq!(left.finish(), whole, "{by:?} cut at {cut}");
            }
        }
    }
}
