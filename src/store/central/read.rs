//! The central store's read side: `CentralReader`, the `Store` of `serve --store
//! postgres://...` and of the read commands given `--store`, answering every question
//! over all the sites that forward to the company's PostgreSQL (or one, `Filter::site`).
//! The SQL mirrors the SQLite reader's (`store::reader`, `store::recordings`), each join
//! and correlated lookup also keyed by site; the rows come out as the same types with
//! the same JSON, and `stats` feeds the same `stats::Aggregator` one row at a time, so the
//! same rows give the same figures whichever store holds them.
//! With a read replica (`[store] central_read`) the reader's queries go there, and the
//! one write it makes, the central playback log (`write_conn`), to the primary.
//! May use: the postgres client and pool of `central`, the store's row, query and stats
//! types; nothing above the store.
//! Invariants: a reader writes nothing but the central playback log, and never migrates (it checks the schema is one it
//! reads, `check_readable`, and refuses a newer one); lists are ordered as SQLite's with
//! the site as the last tie-breaker, and a cursor of a row names its site; every value is
//! read with a checked conversion (a bad row is an error, not a panic); text compares
//! and orders bytewise (`COLLATE "C"`, as SQLite's BINARY) whatever the database's locale.

use super::{check_readable, pg_error, rollup, Central};
use crate::store::query::{Cursor, Filter, QueryError, StatsBy};
use crate::store::reader::{format_ts, leg_row, CallDetail, CallRow, LegRow, RuleKind, StoredLeg, ViolationRow};
use crate::store::recordings::{parse_pts, split_paths, PlaybackCursor, PlaybackQuery, PlaybackRow, RecordingRow};
use crate::store::stats::{self, StatCall, StatViolation, StatsRow};
use crate::store::Store;
use anyhow::{anyhow, Context};
use jiff::tz::TimeZone;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::Row;
use r2d2_postgres::r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

type Manager = PostgresConnectionManager<MakeRustlsConnect>;

/// Connections the reader keeps (the API asks from a few blocking threads at once).
pub const POOL_SIZE: u32 = 4;
/// Connections to the primary when reads go to a replica (only the playback log writes).
const PRIMARY_POOL_SIZE: u32 = 2;

/// Reads the central store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct CentralReader {
    pool: Pool<Manager>,
    tz: TimeZone,
    shown: String,
    /// The primary's pool and where it is, when `pool` is a read replica's.
    primary: Option<(Pool<Manager>, String)>,
}

/// A parameter of a query.
type Param = Box<dyn ToSql + Sync + Send>;

/// A WHERE clause with numbered parameters ($1, $2, ...).
#[derive(Default)]
pub(super) struct PgWhere {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl PgWhere {
    /// Add a parameter; returns its placeholder.
    pub(super) fn arg(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    pub(super) fn add(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(super) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

/// `%s%` for LIKE, with LIKE's wildcards in `s` taken literally (ESCAPE '\').
fn contains(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn limit_value(limit: Option<usize>) -> Option<i64> {
    // NULL is PostgreSQL's "no limit".
    limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX))
}

/// The call filters of `q` on `calls c` (the same as SQLite's `call_where`, keyed by site;
/// `number` matches ignoring ASCII case, as SQLite's LIKE does).
fn call_where(q: &Filter) -> PgWhere {
    let mut w = PgWhere::default();
    if let Some(t) = q.from {
        let a = w.arg(t.as_micros());
        w.add(format!("c.started_us >= {a}"));
    }
    if let Some(t) = q.to {
        let a = w.arg(t.as_micros());
        w.add(format!("c.started_us < {a}"));
    }
    if let Some(s) = &q.site {
        let a = w.arg(s.clone());
        w.add(format!("c.site = {a}"));
    }
    if let Some(e) = &q.ext {
        let a = w.arg(e.clone());
        w.add(format!("(c.caller_ext = {a} OR c.callee_ext = {a})"));
    }
    if let Some(g) = &q.group {
        let a = w.arg(g.clone());
        w.add(format!("c.group_name = {a}"));
    }
    if let Some(c) = &q.class {
        let a = w.arg(c.clone());
        w.add(format!("c.class = {a}"));
    }
    if let Some(d) = &q.direction {
        let a = w.arg(d.clone());
        w.add(format!("c.direction = {a}"));
    }
    if let Some(r) = &q.rule {
        let a = w.arg(r.clone());
        w.add(format!(
            "EXISTS (SELECT 1 FROM violations v WHERE v.site = c.site AND v.call_id = c.call_id \
             AND v.call_started_us = c.started_us AND (v.rule = {a} OR v.kind = {a}))"
        ));
    }
    if let Some(n) = &q.number {
        let a = w.arg(contains(n));
        w.add(format!("(c.dialled ILIKE {a} ESCAPE '\\' OR c.number ILIKE {a} ESCAPE '\\')"));
    }
    w
}

/// The violation filters of `q` (SQLite's `violation_where`): `c` is the call, joined.
fn violation_where(q: &Filter) -> PgWhere {
    let mut w = PgWhere::default();
    if let Some(t) = q.from {
        let a = w.arg(t.as_micros());
        w.add(format!("coalesce(v.call_started_us, v.detected_us) >= {a}"));
    }
    if let Some(t) = q.to {
        let a = w.arg(t.as_micros());
        w.add(format!("coalesce(v.call_started_us, v.detected_us) < {a}"));
    }
    if let Some(s) = &q.site {
        let a = w.arg(s.clone());
        w.add(format!("v.site = {a}"));
    }
    if let Some(e) = &q.ext {
        let a = w.arg(e.clone());
        w.add(format!("v.extension = {a}"));
    }
    if let Some(g) = &q.group {
        let a = w.arg(g.clone());
        w.add(format!("c.group_name = {a}"));
    }
    if let Some(c) = &q.class {
        let a = w.arg(c.clone());
        w.add(format!("c.class = {a}"));
    }
    if let Some(r) = &q.rule {
        let a = w.arg(r.clone());
        w.add(format!("(v.rule = {a} OR v.kind = {a})"));
    }
    if let Some(n) = &q.number {
        let a = w.arg(contains(n));
        w.add(format!("v.number ILIKE {a} ESCAPE '\\'"));
    }
    w
}

/// Keyset paging after `after` in the order (at, key, site): the site takes part when
/// the cursor names one (a cursor of a SQLite row, without, pages by (at, key) alone).
fn after_clause(w: &mut PgWhere, after: &Cursor, cmp: &str, at: &str, key: &str, key_is_int: bool, site: &str) {
    let a = w.arg(after.at_us);
    let k = if key_is_int {
        // Checked by the caller: a violation's key is its id.
        w.arg(after.key.parse::<i64>().unwrap_or(0))
    } else {
        w.arg(after.key.clone())
    };
    let key_col = if key_is_int { key.to_string() } else { format!("{key} COLLATE \"C\"") };
    match &after.site {
        Some(s) => {
            let sa = w.arg(s.clone());
            w.add(format!("({at}, {key_col}, {site} COLLATE \"C\") {cmp} ({a}, {k}, {sa})"));
        }
        None => w.add(format!("({at}, {key_col}) {cmp} ({a}, {k})")),
    }
}

/// Columns 0–26 of a call row (as `call_row` reads them).
const CALL_COLUMNS: &str = "c.site, c.call_id, c.caller, c.callee, c.dialled, c.number, c.direction, c.class,
     c.group_name, c.started_us, c.ringing_us, c.answered_us, c.ended_us, c.rings, c.ring_ms, c.talk_ms,
     c.answered, c.end_reason, c.sip_status, c.cost_fen,
     (SELECT r.id FROM recordings r WHERE r.site = c.site AND r.call_id = c.call_id
          AND r.call_started_us = c.started_us AND r.status <> 'empty' AND r.superseded_by IS NULL
          ORDER BY r.id LIMIT 1) AS recording,
     c.answered_by, c.transferred_to, c.wait_ms, c.link, c.legs, c.effective";

const VIOLATION_COLUMNS: &str = "v.site, v.id, v.rule, v.kind, v.call_id, v.extension, v.number, v.detected_us,
     v.fine_fen, v.detail, v.call_started_us";
const VIOLATION_FROM: &str = "FROM violations v LEFT JOIN calls c
     ON c.site = v.site AND c.call_id = v.call_id AND c.started_us = v.call_started_us";

const RECORDING_COLUMNS: &str = "r.site, r.id, r.call_id, r.call_started_us, r.caller, r.callee, r.dialled,
     r.group_name, r.status, r.path, r.raw_path, r.undecodable, r.sample_rate, r.channels, r.frames,
     r.duration_ms, r.bytes, r.sha256, r.media_started_us, r.ended_us, r.dtmf, r.counters, r.retention_days, r.day,
     r.superseded_by,
     EXISTS (SELECT 1 FROM calls k WHERE k.site = r.site AND k.call_id = r.call_id AND k.started_us = r.call_started_us)";

/// A column read with a checked conversion; the error names it.
pub(super) fn get<'a, T: postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> anyhow::Result<T> {
    r.try_get(i).map_err(|e| anyhow!("central store: column {i} ({}): {}", column_name(r, i), pg_error(&e)))
}

fn column_name(r: &Row, i: usize) -> &str {
    r.columns().get(i).map_or("?", |c| c.name())
}

/// A BIGINT column as a narrower integer, checked.
pub(super) fn get_int<T: TryFrom<i64>>(r: &Row, i: usize) -> anyhow::Result<T> {
    let v: i64 = get(r, i)?;
    T::try_from(v).map_err(|_| anyhow!("central store: column {} holds {v}, out of range", column_name(r, i)))
}

fn get_opt_int<T: TryFrom<i64>>(r: &Row, i: usize) -> anyhow::Result<Option<T>> {
    let v: Option<i64> = get(r, i)?;
    v.map(|v| {
        T::try_from(v).map_err(|_| anyhow!("central store: column {} holds {v}, out of range", column_name(r, i)))
    })
    .transpose()
}

/// SQLite keeps booleans as 0/1 integers; so do the central copies.
fn get_bool(r: &Row, i: usize) -> anyhow::Result<bool> {
    Ok(get::<i64>(r, i)? != 0)
}

fn get_opt_bool(r: &Row, i: usize) -> anyhow::Result<Option<bool>> {
    Ok(get::<Option<i64>>(r, i)?.map(|v| v != 0))
}

impl CentralReader {
    /// Connect to the central store and check its schema is one this build reads (never
    /// migrating it: the sites own the schema). Times are shown in `tz`.
    pub fn open(central: &Central, tz: &str) -> anyhow::Result<CentralReader> {
        let zone = TimeZone::get(tz).with_context(|| format!("unknown time zone {tz:?}"))?;
        let shown = central.shown();
        let pool = central.pool(POOL_SIZE)?;
        let mut conn = pool.get().map_err(|e| anyhow!("{shown}: {e}"))?;
        check_readable(&mut conn).map_err(|e| anyhow!("{shown}: {e:#}"))?;
        drop(conn);
        Ok(CentralReader { pool, tz: zone, shown, primary: None })
    }

    /// The reader of `--store url` (the CLI's read commands, `serve --store`): `url` itself
    /// (password from PGPASSWORD); or, when `url` is the configured `[store] central`, that
    /// store with its password file and CA, read at its replica `central_read` when one is
    /// set (the playback log still written to `central`).
    pub fn for_store(
        url: &str,
        store: &callwarden_core::config::Store,
        config_dir: &Path,
        tz: &str,
    ) -> anyhow::Result<CentralReader> {
        let given = Central::from_url(url)?;
        let Some(configured) = Central::of(store, config_dir).filter(|c| c.url == given.url) else {
            return CentralReader::open(&given, tz);
        };
        let replica = store.central_read.trim();
        if replica.is_empty() {
            return CentralReader::open(&configured, tz);
        }
        let reader = CentralReader::open(&Central { url: replica.to_string(), ..configured.clone() }, tz)?;
        let shown = configured.shown();
        // No connection until the first write: a primary that is down must not stop reads.
        let primary = Pool::builder()
            .max_size(PRIMARY_POOL_SIZE)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            .build(Manager::new(configured.config()?, configured.tls()?))
            .map_err(|e| anyhow!("{shown}: {e}"))?;
        Ok(CentralReader { primary: Some((primary, shown)), ..reader })
    }

    /// The same store, times shown in `tz` (the config's zone, after a reload).
    pub fn with_timezone(&self, tz: &str) -> anyhow::Result<CentralReader> {
        let tz = TimeZone::get(tz).with_context(|| format!("unknown time zone {tz:?}"))?;
        Ok(CentralReader { tz, ..self.clone() })
    }

    /// Where the store is, as it may be shown (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A connection for reading (of the replica's pool when there is one).
    pub fn conn(&self) -> anyhow::Result<PooledConnection<Manager>> {
        self.pool.get().map_err(|e| anyhow!("{}: {e}", self.shown))
    }

    /// A connection for the central playback log: the primary's (a replica is read only).
    pub fn write_conn(&self) -> anyhow::Result<PooledConnection<Manager>> {
        match &self.primary {
            Some((pool, shown)) => pool.get().map_err(|e| anyhow!("{shown}: {e}")),
            None => self.conn(),
        }
    }

    /// Where the playback log is written, when not where the reads go (a read replica's).
    pub fn primary_shown(&self) -> Option<&str> {
        self.primary.as_ref().map(|(_, shown)| shown.as_str())
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> anyhow::Result<Vec<Row>> {
        let mut conn = self.conn()?;
        conn.query(sql, params).map_err(|e| anyhow!("{}: {}", self.shown, pg_error(&e)))
    }

    /// A query's rows, for the rollups' reader.
    pub(super) fn query_rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> anyhow::Result<Vec<Row>> {
        self.query(sql, params)
    }

    fn call_row(&self, r: &Row) -> anyhow::Result<CallRow> {
        let tz = &self.tz;
        let ts = |i: usize| -> anyhow::Result<String> { Ok(format_ts(get(r, i)?, tz)) };
        let opt_ts =
            |i: usize| -> anyhow::Result<Option<String>> { Ok(get::<Option<i64>>(r, i)?.map(|us| format_ts(us, tz))) };
        Ok(CallRow {
            site: Some(get(r, 0)?),
            call_id: get(r, 1)?,
            caller: get(r, 2)?,
            callee: get(r, 3)?,
            dialled: get(r, 4)?,
            number: get(r, 5)?,
            direction: get(r, 6)?,
            class: get(r, 7)?,
            group: get(r, 8)?,
            started_at: ts(9)?,
            started_us: get(r, 9)?,
            ringing_at: opt_ts(10)?,
            answered_at: opt_ts(11)?,
            ended_at: ts(12)?,
            rings: get_int(r, 13)?,
            ring_ms: get(r, 14)?,
            talk_ms: get(r, 15)?,
            answered: get_bool(r, 16)?,
            end_reason: get(r, 17)?,
            sip_status: get_opt_int(r, 18)?,
            cost_fen: get(r, 19)?,
            recording: get(r, 20)?,
            violations: Vec::new(),
            answered_by: get(r, 21)?,
            transferred_to: get(r, 22)?,
            wait_ms: get(r, 23)?,
            link: get(r, 24)?,
            legs: self.legs(r)?,
            effective: get_opt_bool(r, 26)?,
        })
    }

    /// The stored legs (column 25); a call stored before legs were kept (`[]`) shows its
    /// own dialog as its one leg, as the SQLite reader does.
    fn legs(&self, r: &Row) -> anyhow::Result<Vec<LegRow>> {
        let text: &str = get(r, 25)?;
        let stored: Vec<StoredLeg> =
            serde_json::from_str(text).map_err(|e| anyhow!("central store: a call's legs are not JSON: {e}"))?;
        let tz = &self.tz;
        if stored.is_empty() {
            let answered_us: Option<i64> = get(r, 11)?;
            return Ok(vec![LegRow {
                call_id: get(r, 1)?,
                from: get(r, 2)?,
                to: get(r, 3)?,
                started_at: format_ts(get(r, 9)?, tz),
                answered_at: answered_us.map(|us| format_ts(us, tz)),
                ended_at: format_ts(get(r, 12)?, tz),
                sip_status: get_opt_int(r, 18)?,
                role: "caller-side".into(),
            }]);
        }
        Ok(stored.into_iter().map(|l| leg_row(l, tz)).collect())
    }

    fn violation_row(&self, r: &Row) -> anyhow::Result<ViolationRow> {
        let detected_us: i64 = get(r, 7)?;
        Ok(ViolationRow {
            site: Some(get(r, 0)?),
            id: get(r, 1)?,
            rule: get(r, 2)?,
            kind: get(r, 3)?,
            call_id: get(r, 4)?,
            extension: get(r, 5)?,
            number: get(r, 6)?,
            detected_at: format_ts(detected_us, &self.tz),
            detected_us,
            fine_fen: get(r, 8)?,
            detail: get(r, 9)?,
            call_started_us: get(r, 10)?,
        })
    }

    fn recording_row(&self, r: &Row) -> anyhow::Result<RecordingRow> {
        let tz = &self.tz;
        let started: i64 = get(r, 3)?;
        let opt_ts =
            |i: usize| -> anyhow::Result<Option<String>> { Ok(get::<Option<i64>>(r, i)?.map(|us| format_ts(us, tz))) };
        let counters: Option<String> = get(r, 21)?;
        let counters = match counters {
            None => serde_json::Value::Null,
            Some(s) => serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)),
        };
        Ok(RecordingRow {
            site: Some(get(r, 0)?),
            id: get(r, 1)?,
            call_id: get(r, 2)?,
            call_started_at: format_ts(started, tz),
            call_started_us: started,
            caller: get(r, 4)?,
            callee: get(r, 5)?,
            dialled: get(r, 6)?,
            group: get(r, 7)?,
            status: get(r, 8)?,
            path: get(r, 9)?,
            raw_paths: split_paths(get(r, 10)?),
            undecodable: parse_pts(get(r, 11)?),
            sample_rate: get_opt_int(r, 12)?,
            channels: get_int(r, 13)?,
            frames: get(r, 14)?,
            duration_ms: get(r, 15)?,
            bytes: get(r, 16)?,
            sha256: get(r, 17)?,
            media_started_at: opt_ts(18)?,
            ended_at: opt_ts(19)?,
            dtmf: get(r, 20)?,
            counters,
            retention_days: get_int(r, 22)?,
            day: get(r, 23)?,
            superseded_by: get(r, 24)?,
            call_record: get(r, 25)?,
        })
    }

    /// The rules broken by each of `calls`, in one query (not one per call: a page of
    /// calls over a WAN is one round trip).
    fn attach_rule_kinds(&self, calls: &mut [CallRow]) -> anyhow::Result<()> {
        if calls.is_empty() {
            return Ok(());
        }
        let sites: Vec<String> = calls.iter().map(|c| c.site.clone().unwrap_or_default()).collect();
        let ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();
        let starts: Vec<i64> = calls.iter().map(|c| c.started_us).collect();
        let rows = self.query(
            "SELECT v.site, v.call_id, v.call_started_us, v.rule, v.kind FROM violations v
             JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS k (site, call_id, started_us)
               ON v.site = k.site AND v.call_id = k.call_id AND v.call_started_us = k.started_us
             ORDER BY v.site, v.call_id, v.call_started_us, v.detected_us, v.id",
            &[&sites, &ids, &starts],
        )?;
        let mut by_call: HashMap<(String, String, i64), Vec<RuleKind>> = HashMap::new();
        for r in &rows {
            by_call
                .entry((get(r, 0)?, get(r, 1)?, get(r, 2)?))
                .or_default()
                .push(RuleKind { rule: get(r, 3)?, kind: get(r, 4)? });
        }
        for c in calls {
            let key = (c.site.clone().unwrap_or_default(), c.call_id.clone(), c.started_us);
            c.violations = by_call.remove(&key).unwrap_or_default();
        }
        Ok(())
    }

    /// Sum the calls `q` selects into `agg`, each row as it streams in (columns the
    /// grouping does not use are sent as '').
    fn sum_calls(&self, by: StatsBy, q: &Filter, agg: &mut stats::Aggregator) -> anyhow::Result<()> {
        let w = call_where(q);
        let col = |name: &'static str, used: bool| if used { name } else { "''" };
        let sql = format!(
            "SELECT c.direction, {}, {}, c.group_name, {}, {}, c.answered,
                    c.end_reason, c.rings, c.talk_ms, c.cost_fen,
                    coalesce(c.within_max_rings, 0), coalesce(c.long_call, 0), coalesce(c.effective, 0), c.site
             FROM calls c {}",
            col("c.caller_ext", by == StatsBy::Ext),
            col("c.callee_ext", by == StatsBy::Ext),
            col("c.day", by == StatsBy::Day),
            col("c.month", by == StatsBy::Month),
            w.sql()
        );
        let mut conn = self.conn()?;
        let pg = |e: postgres::Error| anyhow!("{}: {}", self.shown, pg_error(&e));
        let mut rows = conn.query_raw(sql.as_str(), w.refs()).map_err(pg)?;
        while let Some(r) = rows.next().map_err(pg)? {
            agg.add_call(&StatCall {
                direction: get(&r, 0)?,
                caller_ext: get(&r, 1)?,
                callee_ext: get(&r, 2)?,
                group: get(&r, 3)?,
                day: get(&r, 4)?,
                month: get(&r, 5)?,
                answered: get_bool(&r, 6)?,
                end_reason: get(&r, 7)?,
                rings: get_int(&r, 8)?,
                talk_ms: get(&r, 9)?,
                cost_fen: get(&r, 10)?,
                within_max_rings: get_bool(&r, 11)?,
                long: get_bool(&r, 12)?,
                effective: get_bool(&r, 13)?,
                site: Some(get(&r, 14)?),
            });
        }
        Ok(())
    }

    /// Count into `agg` the violations `q` selects (the call joined only when needed).
    fn sum_violations(&self, by: StatsBy, q: &Filter, agg: &mut stats::Aggregator) -> anyhow::Result<()> {
        let vq = q.unpaged();
        let w = violation_where(&vq);
        let join = by == StatsBy::Group || vq.group.is_some() || vq.class.is_some();
        let sql = if join {
            format!("SELECT v.rule, v.extension, c.group_name, v.day, v.month, v.site {VIOLATION_FROM} {}", w.sql())
        } else {
            format!("SELECT v.rule, v.extension, NULL::text, v.day, v.month, v.site FROM violations v {}", w.sql())
        };
        let mut conn = self.conn()?;
        let pg = |e: postgres::Error| anyhow!("{}: {}", self.shown, pg_error(&e));
        let mut rows = conn.query_raw(sql.as_str(), w.refs()).map_err(pg)?;
        while let Some(r) = rows.next().map_err(pg)? {
            agg.add_violation(&StatViolation {
                rule: get(&r, 0)?,
                extension: get(&r, 1)?,
                group: get(&r, 2)?,
                day: get(&r, 3)?,
                month: get(&r, 4)?,
                site: Some(get(&r, 5)?),
            });
        }
        Ok(())
    }

    /// The sites that have forwarded to this store, by name (the page's site selector).
    pub fn sites(&self) -> anyhow::Result<Vec<String>> {
        let rows = self.query("SELECT name FROM sites ORDER BY name COLLATE \"C\"", &[])?;
        rows.iter().map(|r| get(r, 0)).collect()
    }
}

impl Store for CentralReader {
    fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    fn calls(&self, q: &Filter) -> anyhow::Result<Vec<CallRow>> {
        let mut w = call_where(q);
        let (cmp, order) = if q.newest_first { ("<", "DESC") } else { (">", "ASC") };
        if let Some(after) = &q.after {
            after_clause(&mut w, after, cmp, "c.started_us", "c.call_id", false, "c.site");
        }
        let limit = w.arg(limit_value(q.limit));
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls c {}
             ORDER BY c.started_us {order}, c.call_id COLLATE \"C\" {order}, c.site COLLATE \"C\" {order} LIMIT {limit}",
            w.sql()
        );
        let rows = self.query(&sql, &w.refs())?;
        let mut out = rows.iter().map(|r| self.call_row(r)).collect::<anyhow::Result<Vec<_>>>()?;
        self.attach_rule_kinds(&mut out)?;
        Ok(out)
    }

    fn call(&self, call_id: &str, site: Option<&str>) -> anyhow::Result<Option<CallDetail>> {
        let mut w = PgWhere::default();
        let a = w.arg(call_id.to_string());
        w.add(format!("c.call_id = {a}"));
        if let Some(s) = site {
            let a = w.arg(s.to_string());
            w.add(format!("c.site = {a}"));
        }
        let sql = format!(
            "SELECT {CALL_COLUMNS}, c.caller_display, c.dtmf, c.media_caller, c.media_callee, c.ladder
             FROM calls c {} ORDER BY c.started_us DESC, c.site COLLATE \"C\" LIMIT 1",
            w.sql()
        );
        let rows = self.query(&sql, &w.refs())?;
        let Some(r) = rows.first() else { return Ok(None) };
        let mut call = self.call_row(r)?;
        let parse = |what: &str, i: usize| -> anyhow::Result<serde_json::Value> {
            let s: &str = get(r, i)?;
            serde_json::from_str(s).with_context(|| format!("call {call_id}: stored {what} is not JSON"))
        };
        let (caller_display, dtmf) = (get(r, 27)?, get(r, 28)?);
        let (media_caller, media_callee, ladder) =
            (parse("media_caller", 29)?, parse("media_callee", 30)?, parse("ladder", 31)?);
        self.attach_rule_kinds(std::slice::from_mut(&mut call))?;
        let site = call.site.clone().unwrap_or_default();
        let rows = self.query(
            &format!(
                "SELECT {VIOLATION_COLUMNS} FROM violations v WHERE v.site = $1 AND v.call_id = $2
                 AND v.call_started_us = $3 ORDER BY v.detected_us, v.id"
            ),
            &[&site, &call.call_id, &call.started_us],
        )?;
        let violation_details = rows.iter().map(|r| self.violation_row(r)).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(CallDetail { call, caller_display, dtmf, media_caller, media_callee, ladder, violation_details }))
    }

    fn violations(&self, q: &Filter) -> anyhow::Result<Vec<ViolationRow>> {
        let mut w = violation_where(q);
        if let Some(a) = &q.after {
            a.key.parse::<i64>().map_err(|_| QueryError::Cursor { param: "after", value: a.to_string() })?;
            after_clause(&mut w, a, ">", "v.detected_us", "v.id", true, "v.site");
        }
        let limit = w.arg(limit_value(q.limit));
        let sql = format!(
            "SELECT {VIOLATION_COLUMNS} {VIOLATION_FROM} {}
             ORDER BY v.detected_us, v.id, v.site COLLATE \"C\" LIMIT {limit}",
            w.sql()
        );
        let rows = self.query(&sql, &w.refs())?;
        rows.iter().map(|r| self.violation_row(r)).collect()
    }

    fn stats(&self, by: StatsBy, q: &Filter) -> anyhow::Result<Vec<StatsRow>> {
        let only = if by == StatsBy::Ext { q.ext.as_deref() } else { None };
        // Whole days with rollup-keyed filters: the sums kept at insert (migration 0012).
        if let Some(days) = rollup::days_for(by, q, &rollup::zones(self, q)?) {
            let mut agg = stats::Aggregator::new(by, only);
            rollup::sum_calls(self, by, q, &days, &mut agg)?;
            rollup::sum_violations(self, by, q, &days, &mut agg)?;
            return Ok(agg.finish());
        }
        let mut calls = stats::Aggregator::new(by, only);
        // The violations on a second connection meanwhile: two scans at once.
        let violations = std::thread::scope(|s| -> anyhow::Result<stats::Aggregator> {
            let h = s.spawn(|| -> anyhow::Result<stats::Aggregator> {
                let mut agg = stats::Aggregator::new(by, only);
                self.sum_violations(by, q, &mut agg)?;
                Ok(agg)
            });
            self.sum_calls(by, q, &mut calls)?;
            h.join().map_err(|_| anyhow!("a stats reader thread panicked"))?
        })?;
        calls.merge(violations);
        Ok(calls.finish())
    }

    fn recordings(&self, q: &Filter) -> anyhow::Result<Vec<RecordingRow>> {
        let mut w = PgWhere::default();
        if let Some(t) = q.from {
            let a = w.arg(t.as_micros());
            w.add(format!("r.call_started_us >= {a}"));
        }
        if let Some(t) = q.to {
            let a = w.arg(t.as_micros());
            w.add(format!("r.call_started_us < {a}"));
        }
        if let Some(s) = &q.site {
            let a = w.arg(s.clone());
            w.add(format!("r.site = {a}"));
        }
        if let Some(e) = &q.ext {
            let a = w.arg(e.clone());
            w.add(format!("(r.caller = {a} OR r.callee = {a})"));
        }
        if let Some(g) = &q.group {
            let a = w.arg(g.clone());
            w.add(format!("(r.group_name = {a} OR c.group_name = {a})"));
        }
        if let Some(c) = &q.class {
            let a = w.arg(c.clone());
            w.add(format!("c.class = {a}"));
        }
        if let Some(r) = &q.rule {
            let a = w.arg(r.clone());
            w.add(format!(
                "EXISTS (SELECT 1 FROM violations v WHERE v.site = r.site AND v.call_id = r.call_id \
                 AND v.call_started_us = r.call_started_us AND (v.rule = {a} OR v.kind = {a}))"
            ));
        }
        if let Some(n) = &q.number {
            let a = w.arg(contains(n));
            let cols = ["r.dialled", "r.caller", "r.callee", "c.number"];
            let any = cols.iter().map(|c| format!("{c} ILIKE {a} ESCAPE '\\'")).collect::<Vec<_>>().join(" OR ");
            w.add(format!("({any})"));
        }
        if let Some(s) = q.status {
            let a = w.arg(s.as_str().to_string());
            w.add(format!("r.status = {a}"));
        }
        if let Some(m) = &q.month {
            let a = w.arg(m.clone());
            w.add(format!("r.month = {a}"));
        }
        let (cmp, order) = if q.newest_first { ("<", "DESC") } else { (">", "ASC") };
        if let Some(a) = &q.after {
            after_clause(&mut w, a, cmp, "r.call_started_us", "r.id", false, "r.site");
        }
        let limit = w.arg(limit_value(q.limit));
        let sql = format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings r
             LEFT JOIN calls c ON c.site = r.site AND c.call_id = r.call_id AND c.started_us = r.call_started_us
             {} ORDER BY r.call_started_us {order}, r.id COLLATE \"C\" {order}, r.site COLLATE \"C\" {order}
             LIMIT {limit}",
            w.sql()
        );
        let rows = self.query(&sql, &w.refs())?;
        rows.iter().map(|r| self.recording_row(r)).collect()
    }

    fn recording(&self, id: &str) -> anyhow::Result<Option<RecordingRow>> {
        let rows = self.query(
            &format!(
                "SELECT {RECORDING_COLUMNS} FROM recordings r WHERE r.id = $1
                 ORDER BY r.call_started_us DESC, r.site COLLATE \"C\" LIMIT 1"
            ),
            &[&id],
        )?;
        rows.first().map(|r| self.recording_row(r)).transpose()
    }

    fn recording_of_call(
        &self,
        site: Option<&str>,
        call_id: &str,
        started_us: i64,
    ) -> anyhow::Result<Option<RecordingRow>> {
        let rows = self.query(
            &format!(
                "SELECT {RECORDING_COLUMNS} FROM recordings r
                 WHERE r.call_id = $1 AND r.call_started_us = $2 AND ($3::text IS NULL OR r.site = $3)
                   AND r.superseded_by IS NULL
                 ORDER BY r.site COLLATE \"C\" LIMIT 1"
            ),
            &[&call_id, &started_us, &site],
        )?;
        rows.first().map(|r| self.recording_row(r)).transpose()
    }

    /// The log lines of every site (or `q.site`'s). Oldest first by time; newest first
    /// by time too (SQLite's newest-first is by id, the order one site wrote them, which
    /// does not compare across sites), then by the central sequence number (`seq`,
    /// central migration 0012), which is also the pages' cursor with the time.
    fn playback_log(&self, q: &PlaybackQuery) -> anyhow::Result<Vec<PlaybackRow>> {
        let mut w = PgWhere::default();
        if let Some(t) = q.from {
            let a = w.arg(t.as_micros());
            w.add(format!("at_us >= {a}"));
        }
        if let Some(t) = q.to {
            let a = w.arg(t.as_micros());
            w.add(format!("at_us < {a}"));
        }
        if let Some(who) = &q.who {
            let a = w.arg(who.clone());
            w.add(format!("who = {a}"));
        }
        if let Some(r) = &q.recording {
            let a = w.arg(r.clone());
            w.add(format!("recording_id = {a}"));
        }
        if let Some(s) = &q.site {
            let a = w.arg(s.clone());
            w.add(format!("site = {a}"));
        }
        match q.before {
            Some(PlaybackCursor::Central { at_us, seq }) => {
                let (a, b) = (w.arg(at_us), w.arg(seq));
                w.add(format!("(at_us, seq) < ({a}, {b})"));
            }
            Some(c @ PlaybackCursor::Id(_)) => {
                return Err(QueryError::Cursor { param: "after", value: c.to_string() }.into());
            }
            None => {}
        }
        let order = if q.newest_first { "at_us DESC, seq DESC" } else { "at_us, site COLLATE \"C\", id, seq" };
        let limit = w.arg(limit_value(q.limit));
        let sql = format!(
            "SELECT site, coalesce(id, 0), at_us, who, recording_id, action, via, detail, seq FROM playback_log {}
             ORDER BY {order} LIMIT {limit}",
            w.sql()
        );
        let rows = self.query(&sql, &w.refs())?;
        rows.iter()
            .map(|r| {
                let at_us: i64 = get(r, 2)?;
                Ok(PlaybackRow {
                    cursor: PlaybackCursor::Central { at_us, seq: get(r, 8)? },
                    site: Some(get(r, 0)?),
                    id: get(r, 1)?,
                    at: format_ts(at_us, &self.tz),
                    at_us,
                    who: get(r, 3)?,
                    recording_id: get(r, 4)?,
                    action: get(r, 5)?,
                    via: get(r, 6)?,
                    detail: get(r, 7)?,
                })
            })
            .collect()
    }
}
