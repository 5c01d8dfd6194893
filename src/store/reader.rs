//! Read-only access for the CLI and the HTTP API: each `Reader` has its own read-only
//! connection (WAL lets it read while the writer commits). Rows come out with the JSON
//! field names of DESIGN.md, times as RFC 3339 with the site's offset (microseconds:
//! the precision of the packets the figures come from).
//! `stats` over more than a day reads its time slices on extra read-only connections, a
//! thread each, and merges the sums (the same rows as one scan).
//! Invariants: a reader never writes; every value from the database is read with a
//! checked conversion (a bad row is an error, not a panic).

use super::migrations;
use super::query::{Cursor, Filter, QueryError, StatsBy};
use super::stats::{self, StatCall, StatViolation, StatsRow};
use anyhow::{anyhow, bail, Context};
use callwarden_core::Ts;
use jiff::tz::TimeZone;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension, Row};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// A rule broken by a call, as listed with the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleKind {
    pub rule: String,
    pub kind: String,
}

/// One call as `calls --json` and `GET /api/calls` print it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallRow {
    /// The site that stored the call (`[site] name`); null for a site without a name.
    pub site: Option<String>,
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub dialled: String,
    pub number: String,
    pub direction: String,
    pub class: Option<String>,
    pub group: Option<String>,
    pub started_at: String,
    pub ringing_at: Option<String>,
    pub answered_at: Option<String>,
    pub ended_at: String,
    pub rings: u32,
    pub ring_ms: i64,
    pub talk_ms: i64,
    pub answered: bool,
    pub end_reason: String,
    pub sip_status: Option<u16>,
    pub cost_fen: Option<i64>,
    /// Id of the call's recording (`recordings list`), or null when the call was not
    /// recorded or had no media at all (status `empty`).
    pub recording: Option<String>,
    pub violations: Vec<RuleKind>,
    /// The extension that picked up (null: nobody of ours, or not answered).
    pub answered_by: Option<String>,
    /// The extension the call was last transferred to.
    pub transferred_to: Option<String>,
    /// Time in an IVR or queue before any phone rang, ms.
    pub wait_ms: i64,
    /// What linked the call's legs (`header`, `session-id`, `hep`, `inferred`); null for a
    /// call of one dialog.
    pub link: Option<String>,
    /// The SIP dialogs the call was made of, in the order they started.
    pub legs: Vec<LegRow>,
    /// Start in µs: with `call_id`, the call's identity and its paging cursor.
    #[serde(skip)]
    pub started_us: i64,
    /// STA-1 as judged when the call ended (null: not answered, or stored before 0006);
    /// the callbacks report counts it.
    #[serde(skip)]
    pub effective: Option<bool>,
}

impl CallRow {
    /// The cursor that continues a listing after this call.
    #[allow(dead_code, reason = "for the HTTP API's paging")]
    pub fn cursor(&self) -> Cursor {
        Cursor { at_us: self.started_us, key: self.call_id.clone(), site: self.site.clone() }
    }
}

/// One SIP dialog of a call, as `calls --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegRow {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: String,
    pub sip_status: Option<u16>,
    /// caller-side | callee-side | ring | transfer | pickup
    pub role: String,
}

/// A leg as the writer stores it (µs times).
#[derive(serde::Deserialize)]
pub(crate) struct StoredLeg {
    pub(crate) call_id: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) started_us: i64,
    pub(crate) answered_us: Option<i64>,
    pub(crate) ended_us: i64,
    pub(crate) sip_status: Option<u16>,
    pub(crate) role: String,
}

/// One call with everything stored about it (`GET /api/calls/{id}`).
#[allow(dead_code, reason = "for the HTTP API's GET /api/calls/{id}")]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: CallRow,
    pub caller_display: Option<String>,
    pub dtmf: String,
    /// Media statistics per direction and the SIP ladder, as stored (JSON).
    pub media_caller: serde_json::Value,
    pub media_callee: serde_json::Value,
    pub ladder: serde_json::Value,
    pub violation_details: Vec<ViolationRow>,
}

/// One violation as `violations --json` and `GET /api/violations` print it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViolationRow {
    /// The site that stored it (`[site] name`); null for a site without a name.
    pub site: Option<String>,
    pub id: i64,
    pub rule: String,
    pub kind: String,
    pub call_id: Option<String>,
    pub extension: String,
    pub number: String,
    pub detected_at: String,
    /// Fen; null while pending (a premium-rate fine before the call's charge is known).
    pub fine_fen: Option<i64>,
    pub detail: String,
    #[serde(skip)]
    pub detected_us: i64,
    #[serde(skip)]
    pub call_started_us: Option<i64>,
}

impl ViolationRow {
    /// The cursor that continues a listing after this violation.
    #[allow(dead_code, reason = "for the HTTP API's paging")]
    pub fn cursor(&self) -> Cursor {
        Cursor { at_us: self.detected_us, key: self.id.to_string(), site: self.site.clone() }
    }
}

pub struct Reader {
    // Visible to `recordings`, whose queries are `Reader` methods too.
    pub(super) conn: Connection,
    pub(super) tz: TimeZone,
    /// The database's schema version (older ones lack some columns: see `link_columns`).
    pub(super) schema: u32,
    /// This site's name (`[site] name`), stamped on every row read; None when unset.
    pub(super) site: Option<String>,
}

/// A stored leg as listed, times in `tz`.
pub(crate) fn leg_row(l: StoredLeg, tz: &TimeZone) -> LegRow {
    LegRow {
        call_id: l.call_id,
        from: l.from,
        to: l.to,
        started_at: format_ts(l.started_us, tz),
        answered_at: l.answered_us.map(|us| format_ts(us, tz)),
        ended_at: format_ts(l.ended_us, tz),
        sip_status: l.sip_status,
        role: l.role,
    }
}

/// RFC 3339 with the zone's offset, to the microsecond.
pub fn format_ts(us: i64, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_microsecond(us) {
        Ok(t) => t.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string(),
        Err(_) => callwarden_core::Ts(us).to_string(),
    }
}

/// A WHERE clause built from optional filters, with its parameters in order.
#[derive(Default)]
pub(super) struct Where {
    clauses: Vec<String>,
    pub(super) params: Vec<Value>,
}

impl Where {
    pub(super) fn add(&mut self, clause: &str, params: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.to_string());
        self.params.extend(params);
    }

    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

pub(super) fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// `%s%` for LIKE, with LIKE's wildcards in `s` taken literally (ESCAPE '\').
pub(super) fn contains(s: &str) -> Value {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    Value::Text(p)
}

pub(super) fn limit_value(limit: Option<usize>) -> Value {
    // -1 is SQLite's "no limit".
    Value::Integer(limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)))
}

fn call_where(q: &Filter) -> Where {
    let mut w = Where::default();
    if let Some(t) = q.from {
        w.add("c.started_us >= ?", [Value::Integer(t.as_micros())]);
    }
    if let Some(t) = q.to {
        w.add("c.started_us < ?", [Value::Integer(t.as_micros())]);
    }
    if let Some(e) = &q.ext {
        w.add("(c.caller_ext = ? OR c.callee_ext = ?)", [text(e), text(e)]);
    }
    if let Some(g) = &q.group {
        w.add("c.group_name = ?", [text(g)]);
    }
    if let Some(c) = &q.class {
        w.add("c.class = ?", [text(c)]);
    }
    if let Some(d) = &q.direction {
        w.add("c.direction = ?", [text(d)]);
    }
    if let Some(r) = &q.rule {
        w.add(
            "EXISTS (SELECT 1 FROM violations v WHERE v.call_id = c.call_id AND v.call_started_us = c.started_us \
             AND (v.rule = ? OR v.kind = ?))",
            [text(r), text(r)],
        );
    }
    if let Some(n) = &q.number {
        w.add("(c.dialled LIKE ? ESCAPE '\\' OR c.number LIKE ? ESCAPE '\\')", [contains(n), contains(n)]);
    }
    w
}

fn violation_where(q: &Filter) -> Where {
    let mut w = Where::default();
    if let Some(t) = q.from {
        w.add("coalesce(v.call_started_us, v.detected_us) >= ?", [Value::Integer(t.as_micros())]);
    }
    if let Some(t) = q.to {
        w.add("coalesce(v.call_started_us, v.detected_us) < ?", [Value::Integer(t.as_micros())]);
    }
    if let Some(e) = &q.ext {
        w.add("v.extension = ?", [text(e)]);
    }
    if let Some(g) = &q.group {
        w.add("c.group_name = ?", [text(g)]);
    }
    if let Some(c) = &q.class {
        w.add("c.class = ?", [text(c)]);
    }
    if let Some(r) = &q.rule {
        w.add("(v.rule = ? OR v.kind = ?)", [text(r), text(r)]);
    }
    if let Some(n) = &q.number {
        w.add("v.number LIKE ? ESCAPE '\\'", [contains(n)]);
    }
    w
}

/// Columns 20–24 of a call row: how its legs were linked (0005); a database before that
/// stored calls of one dialog each, read as such.
const LINK_COLUMNS: &str = "c.answered_by, c.transferred_to, c.wait_ms, c.link, c.legs";
const NO_LINK_COLUMNS: &str = "NULL, NULL, 0, NULL, '[]'";
const LINK_SCHEMA: u32 = 5;
/// The verdicts stored with calls from 0006 on (`stats` needs them: it refuses an older
/// database rather than judge its calls with today's config).
const VERDICT_SCHEMA: u32 = 6;

/// Column 19 of a call row: its recording's id (none for a call with no media at all),
/// the one not superseded (0011).
const RECORDING_OF_CALL: &str = "(SELECT r.id FROM recordings r WHERE r.call_id = c.call_id
     AND r.call_started_us = c.started_us AND r.status <> 'empty' AND r.superseded_by IS NULL) AS recording";
/// The same before 0011 (no superseded recordings).
const RECORDING_OF_CALL_8: &str = "(SELECT r.id FROM recordings r WHERE r.call_id = c.call_id
     AND r.call_started_us = c.started_us AND r.status <> 'empty') AS recording";

const VIOLATION_COLUMNS: &str =
    "v.id, v.rule, v.kind, v.call_id, v.extension, v.number, v.detected_us, v.fine_fen, v.detail, v.call_started_us";
const VIOLATION_FROM: &str =
    "FROM violations v LEFT JOIN calls c ON c.call_id = v.call_id AND c.started_us = v.call_started_us";

/// Sum the calls `q` selects into `agg`, each row as it is read, its text borrowed from
/// SQLite's buffer. Columns the grouping does not use are read as '' (less to decode).
fn sum_calls(
    conn: &Connection,
    by: StatsBy,
    q: &Filter,
    site: Option<&str>,
    agg: &mut stats::Aggregator,
) -> anyhow::Result<()> {
    let w = call_where(q);
    let col = |name: &'static str, used: bool| if used { name } else { "''" };
    let sql = format!(
        "SELECT c.direction, {}, {}, c.group_name, {}, {}, c.answered,
                c.end_reason, c.rings, c.talk_ms, c.cost_fen,
                coalesce(c.within_max_rings, 0), coalesce(c.long_call, 0), coalesce(c.effective, 0)
         FROM calls c {}",
        col("c.caller_ext", by == StatsBy::Ext),
        col("c.callee_ext", by == StatsBy::Ext),
        col("c.day", by == StatsBy::Day),
        col("c.month", by == StatsBy::Month),
        w.sql()
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(w.params))?;
    while let Some(r) = rows.next()? {
        let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
        let opt_text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str_or_null()?));
        agg.add_call(&StatCall {
            direction: text(0)?,
            caller_ext: opt_text(1)?,
            callee_ext: opt_text(2)?,
            group: opt_text(3)?,
            day: text(4)?,
            month: text(5)?,
            site,
            answered: r.get(6)?,
            end_reason: text(7)?,
            rings: r.get(8)?,
            talk_ms: r.get(9)?,
            cost_fen: r.get(10)?,
            within_max_rings: r.get(11)?,
            long: r.get(12)?,
            effective: r.get(13)?,
        });
    }
    Ok(())
}

/// Count into `agg` the violations `like_calls(q)` selects. The call's record is joined
/// only when something needs it (its group for `--by group`, a group or class filter):
/// the join is a lookup per violation, most of the time of a month's violations read
/// from disk.
fn sum_violations(
    conn: &Connection,
    by: StatsBy,
    q: &Filter,
    site: Option<&str>,
    agg: &mut stats::Aggregator,
) -> anyhow::Result<()> {
    let vq = q.unpaged();
    let w = violation_where(&vq);
    let join = by == StatsBy::Group || vq.group.is_some() || vq.class.is_some();
    let sql = if join {
        format!("SELECT v.rule, v.extension, c.group_name, v.day, v.month {VIOLATION_FROM} {}", w.sql())
    } else {
        format!("SELECT v.rule, v.extension, NULL, v.day, v.month FROM violations v {}", w.sql())
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(w.params))?;
    while let Some(r) = rows.next()? {
        let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
        agg.add_violation(&StatViolation {
            rule: text(0)?,
            extension: text(1)?,
            group: r.get_ref(2).and_then(|v| Ok(v.as_str_or_null()?))?,
            day: text(3)?,
            month: text(4)?,
            site,
        });
    }
    Ok(())
}

/// A read-only connection as every reader opens it.
fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

impl Reader {
    /// Open the database at `path` read-only. Times are shown (and dates judged) in the
    /// zone the store was written in; `with_timezone` changes that.
    pub fn open(path: &Path) -> anyhow::Result<Reader> {
        // SQLite's own message for a missing file is "unable to open database file".
        std::fs::metadata(path).context("no such database (it is created by `callwarden replay` or `run`)")?;
        let conn = open_read_only(path)?;
        let version = migrations::version(&conn)?;
        if version == 0 {
            bail!("not a callwarden database (schema version 0)");
        }
        if version < migrations::OLDEST_READABLE {
            bail!(
                "the database is at schema version {version} and this build reads versions {} to {}: replay a \
                 file into it (or start `run`) once to upgrade it",
                migrations::OLDEST_READABLE,
                migrations::latest()
            );
        }
        if version > migrations::latest() {
            bail!(
                "the database is at schema version {version}, newer than this build reads ({}): use a newer callwarden",
                migrations::latest()
            );
        }
        if version < migrations::latest() {
            tracing::warn!(
                version,
                latest = migrations::latest(),
                "reading a database at an older schema: answers are the same, some are slower until `replay` or `run` \
                 opens it once and adds the newer indexes"
            );
        }
        let zone: Option<String> =
            conn.query_row("SELECT value FROM meta WHERE key = 'timezone'", [], |r| r.get(0)).optional()?;
        let tz = zone.and_then(|z| TimeZone::get(&z).ok()).unwrap_or(TimeZone::UTC);
        Ok(Reader { conn, tz, schema: version, site: None })
    }

    /// Show times and judge dates in `tz` (the site's zone from the current config).
    pub fn with_timezone(mut self, tz: &str) -> anyhow::Result<Reader> {
        self.tz = TimeZone::get(tz).with_context(|| format!("unknown time zone {tz:?}"))?;
        Ok(self)
    }

    /// Name the rows with this site (`[site] name` of the config; "" = no name). The
    /// database holds this one site's rows, so a filter for another site selects none.
    pub fn with_site(mut self, name: &str) -> Reader {
        let name = name.trim();
        self.site = (!name.is_empty()).then(|| name.to_string());
        self
    }

    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    /// `q` asks for another site's rows: none are here.
    pub(super) fn other_site(&self, q: &Filter) -> bool {
        q.site.as_ref().is_some_and(|s| Some(s) != self.site.as_ref())
    }

    /// Calls matching `q`, ordered by start (then Call-ID).
    pub fn calls(&self, q: &Filter) -> anyhow::Result<Vec<CallRow>> {
        if self.other_site(q) {
            return Ok(Vec::new());
        }
        let mut w = call_where(q);
        let (cmp, order) = if q.newest_first { ("<", "DESC") } else { (">", "ASC") };
        if let Some(after) = &q.after {
            w.add(&format!("(c.started_us, c.call_id) {cmp} (?, ?)"), [Value::Integer(after.at_us), text(&after.key)]);
        }
        let sql = format!(
            "SELECT c.call_id, c.caller, c.callee, c.dialled, c.number, c.direction, c.class, c.group_name,
                    c.started_us, c.ringing_us, c.answered_us, c.ended_us, c.rings, c.ring_ms, c.talk_ms,
                    c.answered, c.end_reason, c.sip_status, c.cost_fen, {}, {}
             FROM calls c {} ORDER BY c.started_us {order}, c.call_id {order} LIMIT ?",
            self.recording_of_call_column(),
            self.link_columns(),
            w.sql()
        );
        let mut params = w.params;
        params.push(limit_value(q.limit));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(params), |r| self.call_row(r))?;
        let mut out = Vec::new();
        for row in rows {
            let mut row = row?;
            row.violations = self.rule_kinds(&row.call_id, row.started_us)?;
            out.push(row);
        }
        Ok(out)
    }

    /// The call with this Call-ID (the latest, if the same Call-ID started twice).
    #[allow(dead_code, reason = "for the HTTP API's GET /api/calls/{id}")]
    pub fn call(&self, call_id: &str) -> anyhow::Result<Option<CallDetail>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT c.call_id, c.caller, c.callee, c.dialled, c.number, c.direction, c.class, c.group_name,
                    c.started_us, c.ringing_us, c.answered_us, c.ended_us, c.rings, c.ring_ms, c.talk_ms,
                    c.answered, c.end_reason, c.sip_status, c.cost_fen, {}, {},
                    c.caller_display, c.dtmf, c.media_caller, c.media_callee, c.ladder
             FROM calls c WHERE c.call_id = ? ORDER BY c.started_us DESC LIMIT 1",
            self.recording_of_call_column(),
            self.link_columns()
        ))?;
        let found = stmt
            .query_row([call_id], |r| {
                Ok((
                    self.call_row(r)?,
                    r.get::<_, Option<String>>(26)?,
                    r.get::<_, String>(27)?,
                    r.get::<_, String>(28)?,
                    r.get::<_, String>(29)?,
                    r.get::<_, String>(30)?,
                ))
            })
            .optional()?;
        let Some((mut call, caller_display, dtmf, media_caller, media_callee, ladder)) = found else {
            return Ok(None);
        };
        call.violations = self.rule_kinds(&call.call_id, call.started_us)?;
        let parse = |what: &str, s: &str| -> anyhow::Result<serde_json::Value> {
            serde_json::from_str(s).with_context(|| format!("call {call_id}: stored {what} is not JSON"))
        };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {VIOLATION_COLUMNS} FROM violations v WHERE v.call_id = ? AND v.call_started_us = ?
             ORDER BY v.detected_us, v.id"
        ))?;
        let violation_details = stmt
            .query_map(rusqlite::params![call.call_id, call.started_us], |r| self.violation_row(r))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(CallDetail {
            media_caller: parse("media_caller", &media_caller)?,
            media_callee: parse("media_callee", &media_callee)?,
            ladder: parse("ladder", &ladder)?,
            call,
            caller_display,
            dtmf,
            violation_details,
        }))
    }

    /// Violations matching `q`, ordered by detection time (then id).
    pub fn violations(&self, q: &Filter) -> anyhow::Result<Vec<ViolationRow>> {
        if self.other_site(q) {
            return Ok(Vec::new());
        }
        let mut w = violation_where(q);
        if let Some(a) = &q.after {
            let id: i64 = a.key.parse().map_err(|_| QueryError::Cursor { param: "after", value: a.to_string() })?;
            w.add("(v.detected_us, v.id) > (?, ?)", [Value::Integer(a.at_us), Value::Integer(id)]);
        }
        let sql =
            format!("SELECT {VIOLATION_COLUMNS} {VIOLATION_FROM} {} ORDER BY v.detected_us, v.id LIMIT ?", w.sql());
        let mut params = w.params;
        params.push(limit_value(q.limit));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(params), |r| self.violation_row(r))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The figures of `stats` for the calls `q` selects (paging fields are ignored), one
    /// row per extension, group, day or month.
    pub fn stats(&self, by: StatsBy, q: &Filter) -> anyhow::Result<Vec<StatsRow>> {
        if self.schema < VERDICT_SCHEMA {
            bail!(
                "the database is at schema version {}: its calls were stored without the verdicts stats count \
                 (version {VERDICT_SCHEMA}); open it once with `callwarden replay` or `run`, which judges them once",
                self.schema
            );
        }
        if self.other_site(q) {
            return Ok(Vec::new());
        }
        // A range of more than a day (a month: ~80,000 calls at a busy site) is read in
        // time slices at once, one connection and thread each: the scan is bound by
        // decoding rows when the file is cached and by page reads when it is not, and both
        // halve with two readers (issue 7's benchmark).
        let long = matches!((q.from, q.to), (Some(a), Some(b)) if b.as_micros() - a.as_micros() > 86_400_000_000);
        let slices = if long { std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) } else { 1 };
        self.stats_sliced(by, q, slices)
    }

    /// `stats` with the calls of [q.from, q.to) read in `slices` equal time slices (one
    /// when the range is open); the rows are the same for any number of slices.
    pub(super) fn stats_sliced(&self, by: StatsBy, q: &Filter, slices: usize) -> anyhow::Result<Vec<StatsRow>> {
        let only = if by == StatsBy::Ext { q.ext.as_deref() } else { None };
        let bounds = match (q.from, q.to, self.conn.path().filter(|p| !p.is_empty())) {
            (Some(a), Some(b), Some(path)) if slices > 1 && b.as_micros() > a.as_micros() => {
                let (a, b) = (a.as_micros(), b.as_micros());
                let n = i64::try_from(slices).unwrap_or(1);
                let cut = |k: i64| a + (b - a) / n * k + ((b - a) % n) * k / n;
                Some(((0..n).map(|k| (Ts(cut(k)), Ts(cut(k + 1)))).collect::<Vec<_>>(), path))
            }
            _ => None,
        };
        // A part of the work: the calls of a slice, or (None) the violations of `q`.
        let site = self.site.as_deref();
        let sum = |conn: &Connection, part: Option<&Filter>, agg: &mut stats::Aggregator| match part {
            Some(calls) => sum_calls(conn, by, calls, site, agg),
            None => sum_violations(conn, by, q, site, agg),
        };
        let mut agg = stats::Aggregator::new(by, only);
        match bounds {
            None => {
                sum(&self.conn, Some(q), &mut agg)?;
                sum(&self.conn, None, &mut agg)?;
            }
            // The violations and each slice of calls but the first on a thread and
            // connection of their own; this one reads the first slice.
            Some((ranges, path)) => std::thread::scope(|s| -> anyhow::Result<()> {
                let slice = |(from, to): (Ts, Ts)| Filter { from: Some(from), to: Some(to), ..q.clone() };
                let sum = &sum;
                let others: Vec<_> = std::iter::once(None)
                    .chain(ranges[1..].iter().map(|&r| Some(slice(r))))
                    .map(|part| {
                        s.spawn(move || -> anyhow::Result<stats::Aggregator> {
                            let conn = open_read_only(Path::new(path))?;
                            let mut agg = stats::Aggregator::new(by, only);
                            sum(&conn, part.as_ref(), &mut agg)?;
                            Ok(agg)
                        })
                    })
                    .collect();
                sum(&self.conn, Some(&slice(ranges[0])), &mut agg)?;
                for h in others {
                    agg.merge(h.join().map_err(|_| anyhow!("a stats reader thread panicked"))??);
                }
                Ok(())
            })?,
        }
        Ok(agg.finish())
    }

    fn call_row(&self, r: &Row<'_>) -> rusqlite::Result<CallRow> {
        let ts = |i: usize| -> rusqlite::Result<String> { Ok(format_ts(r.get(i)?, &self.tz)) };
        let opt_ts = |i: usize| -> rusqlite::Result<Option<String>> {
            Ok(r.get::<_, Option<i64>>(i)?.map(|us| format_ts(us, &self.tz)))
        };
        Ok(CallRow {
            site: self.site.clone(),
            call_id: r.get(0)?,
            caller: r.get(1)?,
            callee: r.get(2)?,
            dialled: r.get(3)?,
            number: r.get(4)?,
            direction: r.get(5)?,
            class: r.get(6)?,
            group: r.get(7)?,
            started_at: ts(8)?,
            started_us: r.get(8)?,
            ringing_at: opt_ts(9)?,
            answered_at: opt_ts(10)?,
            ended_at: ts(11)?,
            rings: r.get(12)?,
            ring_ms: r.get(13)?,
            talk_ms: r.get(14)?,
            answered: r.get(15)?,
            end_reason: r.get(16)?,
            sip_status: r.get(17)?,
            cost_fen: r.get(18)?,
            recording: r.get(19)?,
            violations: Vec::new(),
            answered_by: r.get(20)?,
            transferred_to: r.get(21)?,
            wait_ms: r.get(22)?,
            link: r.get(23)?,
            legs: self.legs(r, 24)?,
            effective: r.get(25)?,
        })
    }

    /// Columns 20–25 of a call row: how its legs were linked (0005; a database before
    /// that stored calls of one dialog each, read as such) and its stored STA-1 verdict
    /// (0006; NULL before).
    fn recording_of_call_column(&self) -> &'static str {
        if self.schema >= super::recordings::SUPERSEDED_SCHEMA {
            RECORDING_OF_CALL
        } else {
            RECORDING_OF_CALL_8
        }
    }

    fn link_columns(&self) -> String {
        let link = if self.schema >= LINK_SCHEMA { LINK_COLUMNS } else { NO_LINK_COLUMNS };
        let effective = if self.schema >= VERDICT_SCHEMA { "c.effective" } else { "NULL" };
        format!("{link}, {effective}")
    }

    /// The stored legs of a call row; a call stored before legs were kept (`[]`) shows
    /// its own dialog as its one leg.
    fn legs(&self, r: &Row<'_>, i: usize) -> rusqlite::Result<Vec<LegRow>> {
        let text: String = r.get(i)?;
        let stored: Vec<StoredLeg> = serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))?;
        let tz = &self.tz;
        if stored.is_empty() {
            let answered_us: Option<i64> = r.get(10)?;
            return Ok(vec![LegRow {
                call_id: r.get(0)?,
                from: r.get(1)?,
                to: r.get(2)?,
                started_at: format_ts(r.get(8)?, tz),
                answered_at: answered_us.map(|us| format_ts(us, tz)),
                ended_at: format_ts(r.get(11)?, tz),
                sip_status: r.get(17)?,
                role: "caller-side".into(),
            }]);
        }
        Ok(stored.into_iter().map(|l| leg_row(l, tz)).collect())
    }

    fn violation_row(&self, r: &Row<'_>) -> rusqlite::Result<ViolationRow> {
        let detected_us: i64 = r.get(6)?;
        Ok(ViolationRow {
            site: self.site.clone(),
            id: r.get(0)?,
            rule: r.get(1)?,
            kind: r.get(2)?,
            call_id: r.get(3)?,
            extension: r.get(4)?,
            number: r.get(5)?,
            detected_at: format_ts(detected_us, &self.tz),
            detected_us,
            fine_fen: r.get(7)?,
            detail: r.get(8)?,
            call_started_us: r.get(9)?,
        })
    }

    fn rule_kinds(&self, call_id: &str, started_us: i64) -> rusqlite::Result<Vec<RuleKind>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT rule, kind FROM violations WHERE call_id = ? AND call_started_us = ? ORDER BY detected_us, id",
        )?;
        let rows = stmt
            .query_map(rusqlite::params![call_id, started_us], |r| Ok(RuleKind { rule: r.get(0)?, kind: r.get(1)? }))?;
        rows.collect()
    }
}

/// Turn any reader error into one line naming the database file.
pub fn open_error(path: &Path, e: anyhow::Error) -> anyhow::Error {
    anyhow!("{}: cannot read the database: {e:#}", path.display())
}
