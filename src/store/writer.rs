//! The writer thread: the only connection that writes. It takes calls and violations from
//! a bounded channel and commits them in batches: whenever the queue is empty, as soon as
//! a violation arrives, and at the latest every `batch_max` items or `batch_age`. A failed transaction is rolled back, logged and retried with
//! doubling pauses; after the last retry the items are written one per transaction, so
//! only the ones that really cannot be written are lost, counted and reported.
//! Invariants: every write of a batch is in one IMMEDIATE transaction (all or nothing);
//! the counts in `WriteSummary` are of committed rows only.

use super::{StoreOptions, WriteSummary};
use callwarden_core::policy::Violation;
use callwarden_core::track::{CallRecord, Direction, EndReason, Judged};
use callwarden_core::Ts;
use jiff::tz::TimeZone;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::Instant;

pub(super) enum Msg {
    Call(Box<CallRecord>),
    Violation(Box<Violation>),
    /// Commit everything before this, then answer (Err if something was lost since the
    /// previous barrier).
    #[allow(dead_code, reason = "sent by StoreSink::flush_barrier, not called by replay")]
    Barrier(SyncSender<Result<(), String>>),
    Close,
}

enum Item {
    Call(Box<CallRecord>),
    Violation(Box<Violation>),
}

#[derive(Default)]
struct Counts {
    calls: u64,
    calls_new: u64,
    violations: u64,
}

pub(super) struct Writer {
    conn: Connection,
    tz: TimeZone,
    opts: StoreOptions,
    summary: WriteSummary,
    lost_at_barrier: u64,
}

impl Writer {
    pub(super) fn new(conn: Connection, tz: TimeZone, opts: StoreOptions) -> Writer {
        Writer { conn, tz, opts, summary: WriteSummary::default(), lost_at_barrier: 0 }
    }

    /// `queued` counts messages sent and not yet taken; the writer takes one off per message.
    pub(super) fn run(mut self, rx: Receiver<Msg>, queued: &AtomicU64) -> WriteSummary {
        let mut batch: Vec<Item> = Vec::new();
        let mut oldest = Instant::now();
        loop {
            let msg = if batch.is_empty() {
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            } else {
                match rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => {
                        self.commit(&mut batch);
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            // `Close` is sent by the writer handle, not a sink: it was never counted.
            if !matches!(msg, Msg::Close) {
                queued.fetch_sub(1, Ordering::Relaxed);
            }
            let item = match msg {
                Msg::Call(c) => Item::Call(c),
                Msg::Violation(v) => Item::Violation(v),
                Msg::Barrier(reply) => {
                    self.commit(&mut batch);
                    let lost = self.summary.lost - self.lost_at_barrier;
                    self.lost_at_barrier = self.summary.lost;
                    let answer = if lost == 0 {
                        Ok(())
                    } else {
                        Err(format!(
                            "{lost} item(s) could not be stored: {}",
                            self.summary.last_error.as_deref().unwrap_or("unknown error")
                        ))
                    };
                    // The asker may have given up waiting; nothing to do then.
                    let _ = reply.send(answer);
                    continue;
                }
                Msg::Close => break,
            };
            if batch.is_empty() {
                oldest = Instant::now();
            }
            // A violation is evidence the moment it is raised (a premium-rate call is
            // flagged at its INVITE): commit it now, even while calls keep coming.
            let urgent = matches!(item, Item::Violation(_));
            batch.push(item);
            if urgent || batch.len() >= self.opts.batch_max || oldest.elapsed() >= self.opts.batch_age {
                self.commit(&mut batch);
            }
        }
        self.commit(&mut batch);
        self.summary
    }

    fn commit(&mut self, batch: &mut Vec<Item>) {
        if batch.is_empty() {
            return;
        }
        let mut pause = self.opts.retry_pause;
        let mut attempt = 0;
        loop {
            match write_batch(&mut self.conn, &self.tz, batch) {
                Ok(c) => {
                    self.add(c);
                    break;
                }
                Err(e) if attempt < self.opts.retries => {
                    attempt += 1;
                    self.summary.retries += 1;
                    tracing::warn!(error = %e, attempt, items = batch.len(), "store write failed; retrying");
                    std::thread::sleep(pause);
                    pause = pause.saturating_mul(2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, items = batch.len(), "store write failed after retries; writing one by one");
                    self.one_by_one(batch);
                    break;
                }
            }
        }
        batch.clear();
    }

    fn one_by_one(&mut self, batch: &[Item]) {
        for item in batch {
            match write_batch(&mut self.conn, &self.tz, std::slice::from_ref(item)) {
                Ok(c) => self.add(c),
                Err(e) => {
                    let what = match item {
                        Item::Call(c) => format!("call {} at {}", c.call_id, c.started_at),
                        Item::Violation(v) => format!("violation {} {} ext {}", v.rule, v.kind.as_str(), v.extension),
                    };
                    tracing::error!(error = %e, what, "not stored");
                    self.summary.lost += 1;
                    self.summary.last_error = Some(e.to_string());
                }
            }
        }
    }

    fn add(&mut self, c: Counts) {
        self.summary.calls += c.calls;
        self.summary.calls_new += c.calls_new;
        self.summary.violations += c.violations;
        self.summary.transactions += 1;
    }
}

fn write_batch(conn: &mut Connection, tz: &TimeZone, items: &[Item]) -> rusqlite::Result<Counts> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut counts = Counts::default();
    for item in items {
        match item {
            Item::Call(rec) => {
                counts.calls += 1;
                if write_call(&tx, tz, rec)? {
                    counts.calls_new += 1;
                }
            }
            Item::Violation(v) => {
                write_violation(&tx, tz, v)?;
                counts.violations += 1;
            }
        }
    }
    tx.commit()?;
    Ok(counts)
}

/// 'YYYY-MM-DD' and 'YYYY-MM' of `ts` in `tz`; empty for an instant jiff cannot
/// represent (a capture stamp beyond year 9999), which then matches no day filter.
pub(super) fn day_month(ts: Ts, tz: &TimeZone) -> (String, String) {
    match jiff::Timestamp::from_microsecond(ts.as_micros()) {
        Ok(t) => {
            let d = t.to_zoned_datetime(tz.clone()).date();
            (d.strftime("%Y-%m-%d").to_string(), d.strftime("%Y-%m").to_string())
        }
        Err(_) => (String::new(), String::new()),
    }
}

/// Which ends of the call are our extensions: (caller, callee).
fn our_extensions(rec: &CallRecord) -> (Option<&str>, Option<&str>) {
    match rec.direction {
        Direction::Outbound => (Some(&rec.caller), None),
        Direction::Inbound => (None, Some(&rec.callee)),
        Direction::Internal => (Some(&rec.caller), Some(&rec.callee)),
        Direction::Transit => (None, None),
    }
}

fn json<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// The legs as stored: times in µs like every other column.
#[derive(serde::Serialize)]
struct StoredLeg<'a> {
    call_id: &'a str,
    from: &'a str,
    to: &'a str,
    started_us: i64,
    answered_us: Option<i64>,
    ended_us: i64,
    sip_status: Option<u16>,
    role: &'static str,
}

fn stored_legs(rec: &CallRecord) -> Vec<StoredLeg<'_>> {
    rec.linking
        .legs
        .iter()
        .map(|l| StoredLeg {
            call_id: &l.call_id,
            from: &l.from,
            to: &l.to,
            started_us: l.started_at.as_micros(),
            answered_us: l.answered_at.map(Ts::as_micros),
            ended_us: l.ended_at.as_micros(),
            sip_status: l.sip_status,
            role: l.role.as_str(),
        })
        .collect()
}

/// How far apart two sightings of one call's start may be and still be one call: a live
/// capture, a HEP copy and a tcpdump of the same packets are stamped by different clocks
/// (µs to ms apart). Within it the From tag tells calls apart that share a Call-ID.
pub const SAME_CALL_WINDOW_US: i64 = 1_000_000;

/// How many microseconds on a call may be moved to avoid another call's key (same
/// Call-ID, other From tag, same start): far more than real traffic ever needs.
const MAX_NUDGE_US: i64 = 1_000;

/// A From tag as a key part: none (empty) is unknown, NULL, which matches any tag.
fn tag_key(tag: &str) -> Option<&str> {
    (!tag.is_empty()).then_some(tag)
}

/// The start under which this call (Call-ID, From tag, start within the window) is
/// already stored — as a call or through its violations — the nearest one. That start
/// stays the call's key, so another copy of the same traffic updates it, not adds to it.
/// A NULL tag on either side (rows from before migration 0007, a From without tag)
/// matches any tag.
pub(super) fn stored_start(
    conn: &Connection,
    call_id: &str,
    tag: Option<&str>,
    started_us: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT s FROM (
             SELECT started_us AS s FROM calls WHERE call_id = ?1 AND started_us BETWEEN ?2 - ?3 AND ?2 + ?3
                 AND (?4 IS NULL OR from_tag IS NULL OR from_tag = ?4)
             UNION ALL
             SELECT call_started_us FROM violations
                 WHERE call_id = ?1 AND call_started_us BETWEEN ?2 - ?3 AND ?2 + ?3
                 AND (?4 IS NULL OR call_from_tag IS NULL OR call_from_tag = ?4))
         ORDER BY abs(s - ?2) LIMIT 1",
    )?
    .query_row(params![call_id, started_us, SAME_CALL_WINDOW_US, tag], |r| r.get(0))
    .optional()
}

/// The start a call is stored under: the one it already has, else its own — moved on a
/// microsecond at a time while another call of the same Call-ID (another tag) holds that
/// exact key, since (call_id, started_us) is the row key every table joins on.
fn placed_start(conn: &Connection, call_id: &str, tag: Option<&str>, started_us: i64) -> rusqlite::Result<i64> {
    if let Some(s) = stored_start(conn, call_id, tag, started_us)? {
        return Ok(s);
    }
    let mut taken = conn.prepare_cached(
        "SELECT 1 FROM calls WHERE call_id = ?1 AND started_us = ?2
         UNION ALL SELECT 1 FROM violations WHERE call_id = ?1 AND call_started_us = ?2 LIMIT 1",
    )?;
    let mut at = started_us;
    while at - started_us < MAX_NUDGE_US && taken.exists(params![call_id, at])? {
        at = at.saturating_add(1);
    }
    Ok(at)
}

/// Insert or replace the call; `true` when it was not there before.
fn write_call(tx: &rusqlite::Transaction<'_>, tz: &TimeZone, rec: &CallRecord) -> rusqlite::Result<bool> {
    let at = rec.started_at.as_micros();
    let tag = tag_key(&rec.from_tag);
    let existed = tx
        .prepare_cached(
            "SELECT 1 FROM calls WHERE call_id = ?1 AND started_us BETWEEN ?2 - ?3 AND ?2 + ?3
                 AND (?4 IS NULL OR from_tag IS NULL OR from_tag = ?4) LIMIT 1",
        )?
        .query_row(params![rec.call_id, at, SAME_CALL_WINDOW_US, tag], |_| Ok(()))
        .optional()?
        .is_some();
    let started = placed_start(tx, &rec.call_id, tag, at)?;
    // A call cut by the end of a capture is the beginning of one already stored whole
    // (its file replayed again after the files that complete it): keep the whole one.
    if existed && rec.end_reason == EndReason::CaptureEnded {
        let whole = tx
            .prepare_cached(
                "SELECT 1 FROM calls WHERE call_id = ?1 AND started_us = ?2 AND end_reason <> 'capture-ended'",
            )?
            .exists(params![rec.call_id, started])?;
        if whole {
            return Ok(false);
        }
    }
    let (day, month) = day_month(rec.started_at, tz);
    let (caller_ext, callee_ext) = our_extensions(rec);
    let mut stmt = tx.prepare_cached(
        "INSERT INTO calls (call_id, started_us, caller, caller_display, callee, dialled, number, direction,
             class, group_name, caller_ext, callee_ext, ringing_us, answered_us, ended_us, rings, ring_ms,
             talk_ms, answered, end_reason, sip_status, cost_fen, dtmf, media_caller, media_callee, ladder,
             day, month, answered_by, transferred_to, wait_ms, link, legs, from_tag)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
             ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)
         ON CONFLICT (call_id, started_us) DO UPDATE SET
             caller = excluded.caller, caller_display = excluded.caller_display, callee = excluded.callee,
             dialled = excluded.dialled, number = excluded.number, direction = excluded.direction,
             class = excluded.class, group_name = excluded.group_name, caller_ext = excluded.caller_ext,
             callee_ext = excluded.callee_ext, ringing_us = excluded.ringing_us,
             answered_us = excluded.answered_us, ended_us = excluded.ended_us, rings = excluded.rings,
             ring_ms = excluded.ring_ms, talk_ms = excluded.talk_ms, answered = excluded.answered,
             end_reason = excluded.end_reason, sip_status = excluded.sip_status,
             cost_fen = excluded.cost_fen, dtmf = excluded.dtmf, media_caller = excluded.media_caller,
             media_callee = excluded.media_callee, ladder = excluded.ladder, day = excluded.day,
             month = excluded.month, answered_by = excluded.answered_by,
             transferred_to = excluded.transferred_to, wait_ms = excluded.wait_ms, link = excluded.link,
             legs = excluded.legs, from_tag = coalesce(excluded.from_tag, from_tag)",
    )?;
    stmt.execute(params![
        rec.call_id,
        started,
        rec.caller,
        rec.caller_display,
        rec.callee,
        rec.dialled,
        rec.number,
        rec.direction.as_str(),
        rec.class,
        rec.group,
        caller_ext,
        callee_ext,
        rec.ringing_at.map(Ts::as_micros),
        rec.answered_at.map(Ts::as_micros),
        rec.ended_at.as_micros(),
        rec.rings,
        rec.ring_ms,
        rec.talk_ms,
        rec.answered,
        rec.end_reason.as_str(),
        rec.sip_status,
        rec.cost_fen,
        rec.dtmf,
        json(&rec.media_caller)?,
        json(&rec.media_callee)?,
        json(&rec.ladder)?,
        day,
        month,
        rec.linking.answered_by,
        rec.linking.transferred_to,
        rec.linking.wait_ms,
        rec.linking.link.map(|k| k.as_str()),
        json(&stored_legs(rec))?,
        tag,
    ])?;
    write_judged(tx, &rec.call_id, started, &rec.judged)?;
    Ok(!existed)
}

/// The verdicts decided at the call's end (migration 0006), beside the call they judge.
fn write_judged(tx: &rusqlite::Transaction<'_>, call_id: &str, started: i64, j: &Judged) -> rusqlite::Result<()> {
    let (a, t, e) = (j.answer.as_ref(), j.talk.as_ref(), j.effective.as_ref());
    tx.prepare_cached(
        "UPDATE calls SET ans_rule = ?3, max_rings = ?4, within_max_rings = ?5, talk_rule = ?6,
             talk_limit_s = ?7, personal = ?8, long_call = ?9, effective_min_talk_s = ?10, effective = ?11
         WHERE call_id = ?1 AND started_us = ?2",
    )?
    .execute(params![
        call_id,
        started,
        a.map(|a| a.rule.as_str()),
        a.map(|a| a.max_rings),
        a.map(|a| a.within),
        t.map(|t| t.rule.as_str()),
        t.map(|t| t.limit_s),
        t.map(|t| t.personal),
        t.map(|t| t.over),
        e.map(|e| e.min_talk_s),
        e.map(|e| e.effective),
    ])?;
    Ok(())
}

/// The identity of an offence: rule, kind, extension, and the call (Call-ID + start), or
/// for a violation about no call the day it is about. Fields are joined with a unit
/// separator, which no rule id, extension or Call-ID contains.
pub(super) fn natural_key(v: &Violation, day: &str) -> String {
    let started = v.call_started_at.map(|t| t.as_micros().to_string()).unwrap_or_default();
    match &v.call_id {
        Some(id) => format!("{}\x1f{}\x1f{}\x1fcall\x1f{}\x1f{}", v.rule, v.kind.as_str(), v.extension, started, id),
        None => format!("{}\x1f{}\x1f{}\x1fday\x1f{}", v.rule, v.kind.as_str(), v.extension, day),
    }
}

fn write_violation(tx: &rusqlite::Transaction<'_>, tz: &TimeZone, v: &Violation) -> rusqlite::Result<()> {
    // A violation about a call belongs to the call's day; one about no call to the day
    // it was detected.
    // Keyed to the start its call is stored under (another copy of the traffic is the same call).
    let snapped;
    let v = match (&v.call_id, v.call_started_at) {
        (Some(id), Some(at)) => {
            match placed_start(tx, id, v.call_from_tag.as_deref().and_then(tag_key), at.as_micros())? {
                s if s != at.as_micros() => {
                    snapped = Violation { call_started_at: Some(Ts::from_micros(s)), ..v.clone() };
                    &snapped
                }
                _ => v,
            }
        }
        _ => v,
    };
    let (day, month) = day_month(v.call_started_at.unwrap_or(v.detected_at), tz);
    let key = natural_key(v, &day);
    // Raised again: keep the first detection time; a completed fine (and its detail) is
    // never overwritten by a pending one (a replay raises the INVITE version again).
    tx.prepare_cached(
        "INSERT INTO violations (natural_key, rule, kind, call_id, call_started_us, extension, number,
             detected_us, fine_fen, detail, day, month, call_from_tag)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (natural_key) DO UPDATE SET
             detected_us = min(detected_us, excluded.detected_us),
             call_from_tag = coalesce(excluded.call_from_tag, call_from_tag),
             number = CASE WHEN excluded.fine_fen IS NOT NULL OR fine_fen IS NULL
                           THEN excluded.number ELSE number END,
             detail = CASE WHEN excluded.fine_fen IS NOT NULL OR fine_fen IS NULL
                           THEN excluded.detail ELSE detail END,
             fine_fen = coalesce(excluded.fine_fen, fine_fen)",
    )?
    .execute(params![
        key,
        v.rule,
        v.kind.as_str(),
        v.call_id,
        v.call_started_at.map(Ts::as_micros),
        v.extension,
        v.number,
        v.detected_at.as_micros(),
        v.fine_fen,
        v.detail,
        day,
        month,
        v.call_from_tag.as_deref().and_then(tag_key),
    ])?;
    Ok(())
}
