//! `stats` from the central store's rollups (migration 0012: `stats_rollup`,
//! `violation_rollup`, kept current by triggers at insert): the sums over millions of
//! calls read from a few thousand rows instead of every call.
//! May use: the central reader's connection pool, the store's query and stats types.
//! Invariants: the rollups answer only what they answer exactly — a selection of whole
//! days in every site's own zone (the rows are keyed by the site's day), with filters
//! that are rollup keys (site, group, class, direction; an extension only by extension);
//! anything else (`--rule`, `--number`, a range cut inside a day, an extension filter on
//! another grouping) returns None and the caller reads the calls. Every count is exact;
//! talk p50/p90 are estimated from histograms and marked `estimated`. Violations are keyed
//! by their call's group and class as the calls reader's join finds them ('' for none).

use super::read::{get, get_int, CentralReader, PgWhere};
use crate::store::query::{Filter, StatsBy};
use crate::store::stats::{Aggregator, RingsHistogram, StatsRow, TalkHist, TALK_BUCKETS};
use anyhow::anyhow;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use postgres::Row;

/// The days a selection covers, as the rollups key them ('YYYY-MM-DD', `to` exclusive).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Days {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// The day `t` starts in `tz`, if `t` is that day's first instant (else the range cuts a
/// day and the rollups cannot answer it).
fn day_starting_at(t_us: i64, tz: &TimeZone) -> Option<String> {
    let z = Timestamp::from_microsecond(t_us).ok()?.to_zoned_datetime(tz.clone());
    let start = z.start_of_day().ok()?;
    (start.timestamp() == z.timestamp()).then(|| z.strftime("%Y-%m-%d").to_string())
}

/// The one day `t` starts in every zone of `zones`; None when a zone disagrees.
fn common_day(t_us: i64, zones: &[TimeZone]) -> Option<String> {
    let mut days = zones.iter().map(|tz| day_starting_at(t_us, tz));
    let first = days.next().unwrap_or(None)?;
    days.all(|d| d.as_deref() == Some(first.as_str())).then_some(first)
}

/// Whether `stats` over `q` grouped `by` can be read from the rollups, and over which
/// days. Needs the zones of the sites the selection covers.
pub fn days_for(by: StatsBy, q: &Filter, zones: &[TimeZone]) -> Option<Days> {
    if q.rule.is_some() || q.number.is_some() || (q.ext.is_some() && by != StatsBy::Ext) {
        return None;
    }
    if zones.is_empty() {
        // No site: nothing to sum, and the rollups say so as well as the calls would.
        return Some(Days::default());
    }
    let from = match q.from {
        Some(t) => Some(common_day(t.as_micros(), zones)?),
        None => None,
    };
    let to = match q.to {
        Some(t) => Some(common_day(t.as_micros(), zones)?),
        None => None,
    };
    Some(Days { from, to })
}

/// The zones of the sites `q` covers (one when it names a site).
pub fn zones(reader: &CentralReader, q: &Filter) -> anyhow::Result<Vec<TimeZone>> {
    let rows = match &q.site {
        Some(s) => reader.query_rows("SELECT DISTINCT timezone FROM sites WHERE name = $1", &[s])?,
        None => reader.query_rows("SELECT DISTINCT timezone FROM sites", &[])?,
    };
    rows.iter()
        .map(|r| {
            let name: String = r.try_get(0).map_err(|e| anyhow!("sites.timezone: {e}"))?;
            TimeZone::get(&name).map_err(|e| anyhow!("site time zone {name:?}: {e}"))
        })
        .collect()
}

/// What both rollups are filtered by: the site, the days, the call's group and class
/// (keyed '' for none, so a filter's name matches as it does on the calls).
fn scope(q: &Filter, days: &Days) -> PgWhere {
    let mut w = PgWhere::default();
    eq(&mut w, "site", &q.site);
    if let Some(f) = &days.from {
        let a = w.arg(f.clone());
        w.add(format!("day >= {a}"));
    }
    if let Some(t) = &days.to {
        let a = w.arg(t.clone());
        w.add(format!("day < {a}"));
    }
    eq(&mut w, "group_key", &q.group);
    eq(&mut w, "class_key", &q.class);
    w
}

/// Add `col = v` to `w` when there is a `v`.
fn eq(w: &mut PgWhere, col: &str, v: &Option<String>) {
    if let Some(v) = v {
        let a = w.arg(v.clone());
        w.add(format!("{col} = {a}"));
    }
}

/// The rollup column a grouping reads its rows' keys from (`ext`: the extension's).
fn key_column(by: StatsBy, ext: &'static str) -> &'static str {
    match by {
        StatsBy::Ext => ext,
        StatsBy::Group => "group_key",
        StatsBy::Day => "day",
        StatsBy::Month => "month",
        StatsBy::Site => "site",
    }
}

/// A row's key as `stats` shows it: the calls in no group are keyed '' in the rollups and
/// None in the rows (a group is never named '').
fn row_key(by: StatsBy, k: String) -> Option<String> {
    (!(by == StatsBy::Group && k.is_empty())).then_some(k)
}

/// The counters of `stats_rollup` in the order `rolled` reads them.
const SUMS: [&str; 19] = [
    "calls",
    "inbound",
    "outbound",
    "internal",
    "answered",
    "missed",
    "answered_incoming",
    "within_max_rings",
    "r0",
    "r1",
    "r2",
    "r3",
    "r4",
    "r5",
    "effective",
    "long_calls",
    "cost_fen",
    "talk_n",
    "talk_sum",
];

/// Columns 1.. of a summed `stats_rollup` row (column 0 is the key): the row's counts,
/// and its talk.
fn rolled(r: &Row) -> anyhow::Result<(StatsRow, TalkHist)> {
    let c = |i: usize| get_int::<u64>(r, i + 1);
    let mut talk = TalkHist {
        n: c(17)?,
        sum: i128::from(get::<i64>(r, 19)?),
        max: get(r, SUMS.len() + TALK_BUCKETS + 1)?,
        ..TalkHist::default()
    };
    for (i, b) in talk.buckets.iter_mut().enumerate() {
        *b = get_int(r, SUMS.len() + 1 + i)?;
    }
    let counts = StatsRow {
        calls: c(0)?,
        inbound: c(1)?,
        outbound: c(2)?,
        internal: c(3)?,
        answered: c(4)?,
        missed: c(5)?,
        answered_incoming: c(6)?,
        within_max_rings: c(7)?,
        rings_before_answer: RingsHistogram {
            r0: c(8)?,
            r1: c(9)?,
            r2: c(10)?,
            r3: c(11)?,
            r4: c(12)?,
            r5_plus: c(13)?,
        },
        effective: c(14)?,
        long_calls: c(15)?,
        cost_fen: get(r, 17)?,
        ..StatsRow::default()
    };
    Ok((counts, talk))
}

/// Sum the calls `q` selects over `days` into `agg`, from `stats_rollup`.
pub fn sum_calls(
    reader: &CentralReader,
    by: StatsBy,
    q: &Filter,
    days: &Days,
    agg: &mut Aggregator,
) -> anyhow::Result<()> {
    let mut w = scope(q, days);
    eq(&mut w, "direction", &q.direction);
    if by == StatsBy::Ext {
        w.add("ext <> ''".into());
        eq(&mut w, "ext", &q.ext);
    } else {
        w.add("ext = ''".into());
    }
    let key = key_column(by, "ext");
    let sums: Vec<String> = SUMS
        .iter()
        .map(|c| c.to_string())
        .chain((0..TALK_BUCKETS).map(|i| format!("h{i}")))
        .map(|c| format!("sum({c})::bigint"))
        .collect();
    let sql = format!(
        "SELECT {key}, {}, max(talk_max) FROM stats_rollup {} GROUP BY {key} HAVING sum(calls) > 0",
        sums.join(", "),
        w.sql()
    );
    for r in reader.query_rows(&sql, &w.refs())? {
        let (counts, talk) = rolled(&r)?;
        agg.add_rolled(row_key(by, get(&r, 0)?).as_deref(), counts, talk);
    }
    Ok(())
}

/// Count the violations `q` selects over `days` into `agg`, from `violation_rollup` (keyed
/// also by their call's group and class, as the calls reader joins them).
pub fn sum_violations(
    reader: &CentralReader,
    by: StatsBy,
    q: &Filter,
    days: &Days,
    agg: &mut Aggregator,
) -> anyhow::Result<()> {
    let mut w = scope(q, days);
    eq(&mut w, "extension", &q.ext);
    let key = key_column(by, "extension");
    let sql = format!(
        "SELECT {key}, rule, sum(n)::bigint FROM violation_rollup {} GROUP BY {key}, rule HAVING sum(n) > 0",
        w.sql()
    );
    for r in reader.query_rows(&sql, &w.refs())? {
        let rule: String = get(&r, 1)?;
        agg.add_violation_count(row_key(by, get(&r, 0)?).as_deref(), &rule, get_int(&r, 2)?);
    }
    Ok(())
}

/// The rollups' talk bounds as migration 0012 writes them (its `ARRAY[...]`).
#[cfg(test)]
pub(super) fn bounds_in_migration(sql: &str) -> Option<Vec<i64>> {
    let start = sql.find("width_bucket(r.talk_ms, ARRAY[")? + "width_bucket(r.talk_ms, ARRAY[".len();
    let end = start + sql[start..].find(']')?;
    sql[start..end].split(',').map(|s| s.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::stats::TALK_BOUNDS_MS;
    use callwarden_core::time::Ts;

    fn at(s: &str) -> Ts {
        let t: Timestamp = s.parse().unwrap();
        Ts(t.as_microsecond())
    }

    #[test]
    fn migration_splits_talk_where_the_daemon_does() {
        let sql = include_str!("migrations/0012_stats_rollups.sql");
        assert_eq!(bounds_in_migration(sql).unwrap(), TALK_BOUNDS_MS.to_vec());
    }

    #[test]
    fn whole_days_in_every_zone_or_nothing() {
        let sh = TimeZone::get("Asia/Shanghai").unwrap();
        let kol = TimeZone::get("Asia/Kolkata").unwrap();
        let month = Filter {
            from: Some(at("2026-10-31T16:00:00Z")),
            to: Some(at("2026-11-30T16:00:00Z")),
            ..Filter::default()
        };
        let days = days_for(StatsBy::Group, &month, std::slice::from_ref(&sh)).unwrap();
        assert_eq!(days, Days { from: Some("2026-11-01".into()), to: Some("2026-12-01".into()) });
        // The same instants are mid-day in Kolkata: the calls are read instead.
        assert_eq!(days_for(StatsBy::Group, &month, &[sh.clone(), kol]), None);
        let cut = Filter { from: Some(at("2026-11-01T01:00:00Z")), ..Filter::default() };
        assert_eq!(days_for(StatsBy::Day, &cut, std::slice::from_ref(&sh)), None);
        // Filters the rollups are not keyed by.
        let by_rule = Filter { rule: Some("OUT-1".into()), ..Filter::default() };
        assert_eq!(days_for(StatsBy::Day, &by_rule, std::slice::from_ref(&sh)), None);
        let ext = Filter { ext: Some("8001".into()), ..Filter::default() };
        assert_eq!(days_for(StatsBy::Group, &ext, std::slice::from_ref(&sh)), None);
        assert_eq!(days_for(StatsBy::Ext, &ext, std::slice::from_ref(&sh)), Some(Days::default()));
    }
}
