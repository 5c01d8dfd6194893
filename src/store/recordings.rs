//! The Rust side of migration 0002: the `recordings` rows (one per recorded call, created
//! at the call's first INVITE with status `recording`, finished by the recorder with the
//! file's size and SHA-256) and the `playback_log` (who listened to or exported what,
//! when). Writes are plain functions over a `Connection` (the recorder thread batches
//! them in its own transactions; the CLI and the HTTP API call `log_playback`); reads
//! are `Reader` methods over its read-only connection, so the CLI and the API share them.
//! May use: rusqlite, jiff, serde_json, `reader` (for `Reader`, `format_ts`), `migrations`.
//! Invariants: a row is keyed by the recording id (`recording_id(call_id, started_at)`),
//! so a replayed call is the same row; a finished row (`complete`, `repaired`,
//! `expired`) is never reset to `recording` (evidence is not overwritten); a call has at
//! most one recording not superseded (`superseded_by`, 0011: the partial recording of a
//! call a later replay completed, kept with its file and hash); every value read back goes
//! through a checked conversion.

use super::migrations;
use super::query::{Cursor, Filter};
use super::reader::{contains, format_ts, limit_value, text, Reader, Where};
use anyhow::Context;
use callwarden_core::Ts;
use jiff::tz::TimeZone;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Where a recording is in its life. Stored as the lowercase name.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    /// Being written (or the process stopped while it was: repaired at the next start).
    Recording,
    /// Finished normally: the file is final and its SHA-256 stored.
    Complete,
    /// Half-written when the process died; the header was fixed to the data present.
    Repaired,
    /// Deleted by retention; the row stays as the record that it existed.
    Expired,
    /// The file should exist and does not (found at a repair or by `verify`).
    Missing,
    /// The call ended with no media at all (no RTP of any codec): nothing to play.
    Empty,
    /// Cut short by an I/O error (disk full): what reached the disk is kept, its header
    /// fixed to it, and hashed; the rest of the call was not recorded.
    Incomplete,
}

impl RecordingStatus {
    pub const ALL: [RecordingStatus; 7] = [
        RecordingStatus::Recording,
        RecordingStatus::Complete,
        RecordingStatus::Repaired,
        RecordingStatus::Expired,
        RecordingStatus::Missing,
        RecordingStatus::Empty,
        RecordingStatus::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Complete => "complete",
            RecordingStatus::Repaired => "repaired",
            RecordingStatus::Expired => "expired",
            RecordingStatus::Incomplete => "incomplete",
            RecordingStatus::Missing => "missing",
            RecordingStatus::Empty => "empty",
        }
    }

    pub fn parse(s: &str) -> Option<RecordingStatus> {
        RecordingStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A finished recording whose file is evidence: never overwritten by a new one.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RecordingStatus::Complete
                | RecordingStatus::Repaired
                | RecordingStatus::Incomplete
                | RecordingStatus::Expired
        )
    }

    /// Its files are supposed to be on disk (and to hash to what is stored).
    pub fn has_files(self) -> bool {
        matches!(self, RecordingStatus::Complete | RecordingStatus::Repaired | RecordingStatus::Incomplete)
    }
}

impl fmt::Display for RecordingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recording as it is known at its `Begin` (the INVITE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecording {
    pub id: String,
    pub call_id: String,
    pub call_started_us: i64,
    pub caller: String,
    pub callee: String,
    pub dialled: String,
    pub group: Option<String>,
    /// `YYYY/MM/DD/<id>.wav`, relative to the recordings folder.
    pub path: String,
    pub retention_days: u32,
    pub day: String,
    pub month: String,
}

/// What `begin` found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BeginOutcome {
    /// The row is (now) in status `recording`: write the files.
    Started,
    /// A finished recording of this call already exists: leave it alone.
    Exists(RecordingStatus),
}

/// Create the row of a new recording (status `recording`), or take over an unfinished
/// one of the same id (a replay of the same capture after a crash or a `missing` file).
pub fn begin(conn: &Connection, r: &NewRecording) -> rusqlite::Result<BeginOutcome> {
    let existing: Option<String> = conn
        .prepare_cached("SELECT status FROM recordings WHERE id = ?1")?
        .query_row([&r.id], |row| row.get(0))
        .optional()?;
    if let Some(st) = existing.as_deref().and_then(RecordingStatus::parse) {
        if st.is_final() {
            return Ok(BeginOutcome::Exists(st));
        }
    }
    // The same call seen by another clock (a tcpdump of what was captured live): its
    // start differs by microseconds, so its id does too; it is still the one recording.
    let other: Option<String> = conn
        .prepare_cached(
            "SELECT status FROM recordings WHERE call_id = ?1 AND id != ?2 AND superseded_by IS NULL
                 AND call_started_us BETWEEN ?3 - ?4 AND ?3 + ?4
             ORDER BY abs(call_started_us - ?3) LIMIT 1",
        )?
        .query_row(rusqlite::params![r.call_id, r.id, r.call_started_us, super::writer::SAME_CALL_WINDOW_US], |row| {
            row.get(0)
        })
        .optional()?;
    // `empty` too: the other copy of a call with no media has none either.
    if let Some(st) =
        other.as_deref().and_then(RecordingStatus::parse).filter(|st| st.is_final() || *st == RecordingStatus::Empty)
    {
        return Ok(BeginOutcome::Exists(st));
    }
    conn.prepare_cached(
        "INSERT INTO recordings (id, call_id, call_started_us, caller, callee, dialled, group_name, path,
             raw_path, status, undecodable, sample_rate, frames, duration_ms, bytes, sha256, media_started_us,
             ended_us, dtmf, counters, retention_days, day, month)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, 'recording', NULL, NULL, 0, 0, 0, NULL, NULL, NULL, '',
             NULL, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET
             call_id = excluded.call_id, call_started_us = excluded.call_started_us, caller = excluded.caller,
             callee = excluded.callee, dialled = excluded.dialled, group_name = excluded.group_name,
             path = excluded.path, raw_path = NULL, status = 'recording', undecodable = NULL,
             sample_rate = NULL, frames = 0, duration_ms = 0, bytes = 0, sha256 = NULL,
             media_started_us = NULL, ended_us = NULL, dtmf = '', counters = NULL,
             retention_days = excluded.retention_days, day = excluded.day, month = excluded.month",
    )?
    .execute(params![
        r.id,
        r.call_id,
        r.call_started_us,
        r.caller,
        r.callee,
        r.dialled,
        r.group,
        r.path,
        r.retention_days,
        r.day,
        r.month
    ])?;
    Ok(BeginOutcome::Started)
}

/// The recording of the call (Call-ID, start) that is not superseded, if any: its id and
/// status (`None` for a status this build does not know).
pub fn current_of_call(
    conn: &Connection,
    call_id: &str,
    started_us: i64,
) -> rusqlite::Result<Option<(String, Option<RecordingStatus>)>> {
    conn.prepare_cached(
        "SELECT id, status FROM recordings WHERE call_id = ?1 AND call_started_us = ?2 AND superseded_by IS NULL",
    )?
    .query_row(params![call_id, started_us], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
    .optional()
    .map(|o| o.map(|(id, st)| (id, RecordingStatus::parse(&st))))
}

/// An id for another recording of the call whose first recording is `base`: `base-2`,
/// `base-3` ..., the first not taken.
pub fn next_id(conn: &Connection, base: &str) -> rusqlite::Result<String> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM recordings WHERE id = ?1")?;
    let mut n = 2u32;
    loop {
        let id = format!("{base}-{n}");
        if !stmt.exists([&id])? {
            return Ok(id);
        }
        n += 1;
    }
}

/// Begin `new` (status `recording`) as the recording of its call in place of `old`, which
/// stays as it is — file, hash, status — and names `new` as what supersedes it. One
/// transaction is the caller's (the recorder's batch), so both happen or neither.
pub fn supersede(conn: &Connection, old: &str, new: &NewRecording) -> rusqlite::Result<BeginOutcome> {
    conn.prepare_cached("UPDATE recordings SET superseded_by = ?2 WHERE id = ?1")?.execute(params![old, new.id])?;
    begin(conn, new)
}

/// The first audio arrived: the WAV exists from now on, at this rate.
pub fn media_started(conn: &Connection, id: &str, sample_rate: u32, media_started_us: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE recordings SET sample_rate = ?2, media_started_us = ?3 WHERE id = ?1")?
        .execute(params![id, sample_rate, media_started_us])?;
    Ok(())
}

/// Everything the recorder knows once a recording's files are final.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finished {
    pub id: String,
    pub status: Option<RecordingStatus>,
    /// `None`: no WAV was written (no decodable audio).
    pub sample_rate: Option<u32>,
    pub frames: u64,
    pub bytes: u64,
    pub sha256: Option<String>,
    /// Undecodable RTP kept beside the WAV (rtpdump files), relative to the folder.
    pub raw_paths: Vec<String>,
    pub undecodable: Vec<u8>,
    pub ended_us: Option<i64>,
    pub dtmf: String,
    /// JSON object: the media counters and the recorder's own.
    pub counters: Option<String>,
}

impl Finished {
    pub fn duration_ms(&self) -> i64 {
        match self.sample_rate {
            Some(rate) if rate > 0 => i64::try_from(self.frames.saturating_mul(1000) / u64::from(rate)).unwrap_or(0),
            _ => 0,
        }
    }
}

/// Payload types as stored in `undecodable`: "18,98", or NULL when there are none.
pub fn join_pts(pts: &[u8]) -> Option<String> {
    (!pts.is_empty()).then(|| pts.iter().map(u8::to_string).collect::<Vec<_>>().join(","))
}

fn join_paths(paths: &[String]) -> Option<String> {
    (!paths.is_empty()).then(|| paths.join(","))
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Store a recording's final figures (status complete, repaired or empty).
pub fn finish(conn: &Connection, f: &Finished) -> rusqlite::Result<()> {
    let status = f.status.unwrap_or(RecordingStatus::Complete);
    conn.prepare_cached(
        "UPDATE recordings SET status = ?2, sample_rate = coalesce(?3, sample_rate), frames = ?4,
             duration_ms = ?5, bytes = ?6, sha256 = ?7, raw_path = ?8, undecodable = ?9,
             ended_us = coalesce(?10, ended_us), dtmf = ?11, counters = coalesce(?12, counters)
         WHERE id = ?1",
    )?
    .execute(params![
        f.id,
        status.as_str(),
        f.sample_rate,
        i64_of(f.frames),
        f.duration_ms(),
        i64_of(f.bytes),
        f.sha256,
        join_paths(&f.raw_paths),
        join_pts(&f.undecodable),
        f.ended_us,
        f.dtmf,
        f.counters,
    ])?;
    Ok(())
}

pub fn set_status(conn: &Connection, id: &str, status: RecordingStatus) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE recordings SET status = ?2 WHERE id = ?1")?.execute(params![id, status.as_str()])?;
    Ok(())
}

/// Open the database at `path` for writing recordings (creating and migrating it like the
/// store does): WAL, full sync, a busy timeout so it waits for the store's writer.
pub fn open_rw(path: &Path) -> anyhow::Result<Connection> {
    let mut conn = Connection::open(path).with_context(|| format!("{}: cannot open the database", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let _: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    migrations::apply(&mut conn).with_context(|| format!("{}: cannot migrate the database", path.display()))?;
    Ok(conn)
}

/// The raw columns of one row, for the recorder's maintenance (repair, retention, verify).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecording {
    pub id: String,
    pub call_started_us: i64,
    pub group: Option<String>,
    pub path: String,
    pub raw_paths: Vec<String>,
    pub status: Option<RecordingStatus>,
    pub status_text: String,
    pub sample_rate: Option<u32>,
    pub frames: i64,
    pub sha256: Option<String>,
    pub counters: Option<String>,
    pub retention_days: u32,
}

pub(crate) fn split_paths(s: Option<String>) -> Vec<String> {
    s.map(|s| s.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect()).unwrap_or_default()
}

/// Every row (optionally only those with one of `statuses`), ordered by id.
pub fn stored(conn: &Connection, statuses: &[RecordingStatus]) -> rusqlite::Result<Vec<StoredRecording>> {
    let mut sql = String::from(
        "SELECT id, call_started_us, group_name, path, raw_path, status, sample_rate, frames, sha256, counters,
                retention_days FROM recordings",
    );
    if !statuses.is_empty() {
        let list = statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        sql.push_str(&format!(" WHERE status IN ({list})"));
    }
    sql.push_str(" ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| {
        let status_text: String = r.get(5)?;
        Ok(StoredRecording {
            id: r.get(0)?,
            call_started_us: r.get(1)?,
            group: r.get(2)?,
            path: r.get(3)?,
            raw_paths: split_paths(r.get(4)?),
            status: RecordingStatus::parse(&status_text),
            status_text,
            sample_rate: r.get(6)?,
            frames: r.get(7)?,
            sha256: r.get(8)?,
            counters: r.get(9)?,
            retention_days: r.get(10)?,
        })
    })?;
    rows.collect()
}

/// Finished recordings (any status but `recording`) whose call has no record in `calls`,
/// by id: the process was killed while the call went on.
pub fn without_call(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT r.id FROM recordings r WHERE r.status <> 'recording' AND NOT EXISTS
           (SELECT 1 FROM calls k WHERE k.call_id = r.call_id AND k.started_us = r.call_started_us)
         ORDER BY r.id",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// What an access to a recording was.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaybackAction {
    /// Played whole (CLI `play`).
    Play,
    /// Streamed over HTTP (possibly a byte range).
    Stream,
    /// Copied out as a file.
    Export,
    /// Drawn for the monthly spot check (`sample`).
    Sample,
}

impl PlaybackAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlaybackAction::Play => "play",
            PlaybackAction::Stream => "stream",
            PlaybackAction::Export => "export",
            PlaybackAction::Sample => "sample",
        }
    }
}

/// Through which door.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Cli,
    Api,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Cli => "cli",
            Via::Api => "api",
        }
    }
}

/// One line of the playback log, to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaybackEntry {
    /// Wall-clock time of the access (the caller reads the clock; the store does not).
    pub at: Ts,
    /// API token name, or the CLI user.
    pub who: String,
    pub recording_id: String,
    pub action: PlaybackAction,
    pub via: Via,
    /// The export path, the byte range, the sample's seed ...
    pub detail: String,
}

/// Append `entry` to the playback log; returns its id. For the CLI and the HTTP API: call
/// it before (or as) the audio is handed out, so an access that fails half-way is logged.
pub fn log_playback(conn: &Connection, entry: &PlaybackEntry) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO playback_log (at_us, who, recording_id, action, via, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        entry.at.as_micros(),
        entry.who,
        entry.recording_id,
        entry.action.as_str(),
        entry.via.as_str(),
        entry.detail
    ])?;
    Ok(conn.last_insert_rowid())
}

/// `log_playback` on the database at `path` (opened for this one write).
pub fn log_playback_at(path: &Path, entry: &PlaybackEntry) -> anyhow::Result<i64> {
    let conn = open_rw(path)?;
    log_playback(&conn, entry).with_context(|| format!("{}: cannot write the playback log", path.display()))
}

/// One recording as `recordings list --json` and `GET /api/recordings` print it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordingRow {
    /// The site that holds the recording (`[site] name`); null for a site without a name.
    pub site: Option<String>,
    pub id: String,
    pub call_id: String,
    pub call_started_at: String,
    pub caller: String,
    pub callee: String,
    pub dialled: String,
    pub group: Option<String>,
    pub status: String,
    /// `YYYY/MM/DD/<id>.wav`, relative to the recordings folder.
    pub path: String,
    /// Undecodable RTP kept beside it (rtpdump, one file per direction).
    pub raw_paths: Vec<String>,
    /// Payload types that could not be decoded (the recording is then partly silent).
    pub undecodable: Vec<u8>,
    pub sample_rate: Option<u32>,
    pub channels: u32,
    pub frames: i64,
    pub duration_ms: i64,
    pub bytes: i64,
    pub sha256: Option<String>,
    pub media_started_at: Option<String>,
    pub ended_at: Option<String>,
    pub dtmf: String,
    /// What happened to the packets (JSON object; null while recording).
    pub counters: serde_json::Value,
    pub retention_days: u32,
    pub day: String,
    /// Whether the call has its record in `calls`. False while the call goes on, and for
    /// good when the process was killed during the call (the recording was repaired at the
    /// next start, the call was never stored): an orphan, named by `recordings verify`.
    pub call_record: bool,
    /// The recording that replaced this one as the call's (this one is the part of the
    /// call an earlier replay saw before its capture ended; kept, hashed, verified).
    pub superseded_by: Option<String>,
    #[serde(skip)]
    pub call_started_us: i64,
}

impl RecordingRow {
    /// May the monthly spot check (REC-3) draw it: not when it holds no audio (status
    /// `empty`, or 0 ms: a dispatch call that never had media), which an auditor cannot
    /// listen to, nor when it is superseded (the call's whole recording is drawn instead). Missing, expired or failed ones with audio stay candidates: drawn, they
    /// are findings.
    pub fn sampleable(&self) -> bool {
        self.status != RecordingStatus::Empty.as_str() && self.duration_ms > 0 && self.superseded_by.is_none()
    }

    /// The cursor that continues a listing after this recording.
    pub fn cursor(&self) -> Cursor {
        Cursor { at_us: self.call_started_us, key: self.id.clone(), site: self.site.clone() }
    }

    /// The WAV's place on disk under the recordings folder `dir`.
    pub fn file(&self, dir: &Path) -> std::path::PathBuf {
        dir.join(&self.path)
    }
}

/// Which playback-log lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaybackQuery {
    pub from: Option<Ts>,
    pub to: Option<Ts>,
    pub who: Option<String>,
    pub recording: Option<String>,
    pub limit: Option<usize>,
    /// Newest first by id (the order the lines were written), instead of by time.
    pub newest_first: bool,
    /// Only lines after this one in the newest-first order (the API's paging; with
    /// `newest_first`): the cursor of the last line of the page before.
    pub before: Option<PlaybackCursor>,
    /// Lines of this site only (a site's own store has no other site's lines).
    pub site: Option<String>,
}

/// Where a newest-first page of the playback log resumes: below this line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaybackCursor {
    /// A site's own log: the line's id (the order the site wrote its lines).
    Id(i64),
    /// The central log of every site: the line's time and, among lines of one time, its
    /// central sequence number (site ids do not compare across sites, and lines logged
    /// through the central API have none).
    Central { at_us: i64, seq: i64 },
}

impl PlaybackCursor {
    /// As the API hands it out: `ID` or `AT_US.SEQ`.
    pub fn parse(param: &'static str, s: &str) -> Result<PlaybackCursor, super::query::QueryError> {
        let bad = || super::query::QueryError::Cursor { param, value: s.to_string() };
        match s.split_once('.') {
            None => s.parse().map(PlaybackCursor::Id).map_err(|_| bad()),
            Some((at, seq)) => Ok(PlaybackCursor::Central {
                at_us: at.parse().map_err(|_| bad())?,
                seq: seq.parse().map_err(|_| bad())?,
            }),
        }
    }
}

impl std::fmt::Display for PlaybackCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaybackCursor::Id(id) => write!(f, "{id}"),
            PlaybackCursor::Central { at_us, seq } => write!(f, "{at_us}.{seq}"),
        }
    }
}

/// One line of the playback log as `recordings log --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlaybackRow {
    /// The site whose log holds the line; null for a site without a name.
    pub site: Option<String>,
    pub id: i64,
    pub at: String,
    pub who: String,
    pub recording_id: String,
    pub action: String,
    pub via: String,
    pub detail: String,
    #[serde(skip)]
    pub at_us: i64,
    /// Where the next newest-first page starts after this line.
    #[serde(skip)]
    pub cursor: PlaybackCursor,
}

const RECORDING_COLUMNS: &str = "r.id, r.call_id, r.call_started_us, r.caller, r.callee, r.dialled, r.group_name,
     r.status, r.path, r.raw_path, r.undecodable, r.sample_rate, r.channels, r.frames, r.duration_ms, r.bytes,
     r.sha256, r.media_started_us, r.ended_us, r.dtmf, r.counters, r.retention_days, r.day,
     EXISTS (SELECT 1 FROM calls k WHERE k.call_id = r.call_id AND k.started_us = r.call_started_us)";

/// The schema that added `superseded_by` (0011); an older database has no superseded row.
pub(super) const SUPERSEDED_SCHEMA: u32 = 11;

pub(crate) fn parse_pts(s: Option<String>) -> Vec<u8> {
    s.map(|s| s.split(',').filter_map(|p| p.trim().parse().ok()).collect()).unwrap_or_default()
}

impl Reader {
    /// `RECORDING_COLUMNS` (the call record known, column 23) and `superseded_by` (column
    /// 24), NULL before 0011.
    fn recording_columns(&self) -> String {
        let sup = if self.schema >= SUPERSEDED_SCHEMA { "r.superseded_by" } else { "NULL" };
        format!("{RECORDING_COLUMNS}, {sup}")
    }

    /// Recordings matching `q`, ordered by the call's start (then id).
    pub fn recordings(&self, q: &Filter) -> anyhow::Result<Vec<RecordingRow>> {
        if self.other_site(q) {
            return Ok(Vec::new());
        }
        let mut w = Where::default();
        if let Some(t) = q.from {
            w.add("r.call_started_us >= ?", vec![Value::Integer(t.as_micros())]);
        }
        if let Some(t) = q.to {
            w.add("r.call_started_us < ?", vec![Value::Integer(t.as_micros())]);
        }
        if let Some(e) = &q.ext {
            w.add("(r.caller = ? OR r.callee = ?)", vec![text(e), text(e)]);
        }
        if let Some(g) = &q.group {
            // The group that asked for it, or the call's group (another group, or a
            // recorded number, may have asked): what an auditor means by "the group's".
            w.add("(r.group_name = ? OR c.group_name = ?)", vec![text(g), text(g)]);
        }
        if let Some(c) = &q.class {
            w.add("c.class = ?", vec![text(c)]);
        }
        if let Some(r) = &q.rule {
            w.add(
                "EXISTS (SELECT 1 FROM violations v WHERE v.call_id = r.call_id \
                 AND v.call_started_us = r.call_started_us AND (v.rule = ? OR v.kind = ?))",
                vec![text(r), text(r)],
            );
        }
        if let Some(n) = &q.number {
            let columns = ["r.dialled", "r.caller", "r.callee", "c.number"];
            let sql = columns.iter().map(|c| format!("{c} LIKE ? ESCAPE '\\'")).collect::<Vec<_>>().join(" OR ");
            w.add(&format!("({sql})"), vec![contains(n); columns.len()]);
        }
        if let Some(s) = q.status {
            w.add("r.status = ?", vec![text(s.as_str())]);
        }
        if let Some(m) = &q.month {
            w.add("r.month = ?", vec![text(m)]);
        }
        let (cmp, order) = if q.newest_first { ("<", "DESC") } else { (">", "ASC") };
        if let Some(a) = &q.after {
            w.add(&format!("(r.call_started_us, r.id) {cmp} (?, ?)"), vec![Value::Integer(a.at_us), text(&a.key)]);
        }
        let filter = w.sql();
        let sql = format!(
            "SELECT {} FROM recordings r
             LEFT JOIN calls c ON c.call_id = r.call_id AND c.started_us = r.call_started_us
             {filter} ORDER BY r.call_started_us {order}, r.id {order} LIMIT ?",
            self.recording_columns()
        );
        let mut params = w.params;
        params.push(limit_value(q.limit));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(params), |r| recording_row(r, &self.tz, self.site.as_deref()))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The recording with this id.
    pub fn recording(&self, id: &str) -> anyhow::Result<Option<RecordingRow>> {
        let sql = format!("SELECT {} FROM recordings r WHERE r.id = ?", self.recording_columns());
        Ok(self.conn.query_row(&sql, [id], |r| recording_row(r, &self.tz, self.site.as_deref())).optional()?)
    }

    /// The recording of a call (Call-ID + start), if one was made: the one not superseded.
    pub fn recording_of_call(&self, call_id: &str, started_us: i64) -> anyhow::Result<Option<RecordingRow>> {
        let current = if self.schema >= SUPERSEDED_SCHEMA { "AND r.superseded_by IS NULL" } else { "" };
        let sql = format!(
            "SELECT {} FROM recordings r WHERE r.call_id = ? AND r.call_started_us = ? {current}",
            self.recording_columns()
        );
        Ok(self
            .conn
            .query_row(&sql, params![call_id, started_us], |r| recording_row(r, &self.tz, self.site.as_deref()))
            .optional()?)
    }

    /// Playback-log lines matching `q`, oldest first (or newest first, see `PlaybackQuery`).
    pub fn playback_log(&self, q: &PlaybackQuery) -> anyhow::Result<Vec<PlaybackRow>> {
        if q.site.as_ref().is_some_and(|s| Some(s) != self.site.as_ref()) {
            return Ok(Vec::new());
        }
        let mut w = Where::default();
        if let Some(t) = q.from {
            w.add("at_us >= ?", [Value::Integer(t.as_micros())]);
        }
        if let Some(t) = q.to {
            w.add("at_us < ?", [Value::Integer(t.as_micros())]);
        }
        if let Some(who) = &q.who {
            w.add("who = ?", [text(who)]);
        }
        if let Some(r) = &q.recording {
            w.add("recording_id = ?", [text(r)]);
        }
        match q.before {
            Some(PlaybackCursor::Id(id)) => w.add("id < ?", [Value::Integer(id)]),
            Some(c @ PlaybackCursor::Central { .. }) => {
                return Err(super::query::QueryError::Cursor { param: "after", value: c.to_string() }.into())
            }
            None => {}
        }
        let filter = w.sql();
        let order = if q.newest_first { "id DESC" } else { "at_us, id" };
        let sql = format!(
            "SELECT id, at_us, who, recording_id, action, via, detail FROM playback_log {filter}
             ORDER BY {order} LIMIT ?"
        );
        let mut params = w.params;
        params.push(limit_value(q.limit));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(params), |r| {
            let at_us: i64 = r.get(1)?;
            let id: i64 = r.get(0)?;
            Ok(PlaybackRow {
                site: self.site.clone(),
                id,
                cursor: PlaybackCursor::Id(id),
                at: format_ts(at_us, &self.tz),
                at_us,
                who: r.get(2)?,
                recording_id: r.get(3)?,
                action: r.get(4)?,
                via: r.get(5)?,
                detail: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

fn recording_row(r: &Row<'_>, tz: &TimeZone, site: Option<&str>) -> rusqlite::Result<RecordingRow> {
    let started: i64 = r.get(2)?;
    let opt_ts =
        |i: usize| -> rusqlite::Result<Option<String>> { Ok(r.get::<_, Option<i64>>(i)?.map(|us| format_ts(us, tz))) };
    let counters: Option<String> = r.get(20)?;
    // A counters text that is not JSON (written by hand?) is shown as a string, not lost.
    let counters = match counters {
        None => serde_json::Value::Null,
        Some(s) => serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)),
    };
    Ok(RecordingRow {
        site: site.map(str::to_string),
        id: r.get(0)?,
        call_id: r.get(1)?,
        call_started_at: format_ts(started, tz),
        call_started_us: started,
        caller: r.get(3)?,
        callee: r.get(4)?,
        dialled: r.get(5)?,
        group: r.get(6)?,
        status: r.get(7)?,
        path: r.get(8)?,
        raw_paths: split_paths(r.get(9)?),
        undecodable: parse_pts(r.get(10)?),
        sample_rate: r.get(11)?,
        channels: r.get(12)?,
        frames: r.get(13)?,
        duration_ms: r.get(14)?,
        bytes: r.get(15)?,
        sha256: r.get(16)?,
        media_started_at: opt_ts(17)?,
        ended_at: opt_ts(18)?,
        dtmf: r.get(19)?,
        counters,
        retention_days: r.get(21)?,
        day: r.get(22)?,
        call_record: r.get(23)?,
        superseded_by: r.get(24)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use callwarden_core::track::{CallEvent, Direction};
    use callwarden_core::Output;

    fn new_rec(id: &str, started: i64, group: &str) -> NewRecording {
        NewRecording {
            id: id.into(),
            call_id: format!("call-{id}"),
            call_started_us: started,
            caller: "8001".into(),
            callee: "13800138000".into(),
            dialled: "013800138000".into(),
            group: Some(group.into()),
            path: format!("2026/03/02/{id}.wav"),
            retention_days: 30,
            day: "2026-03-02".into(),
            month: "2026-03".into(),
        }
    }

    fn db() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let conn = open_rw(&path).unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('timezone', 'Asia/Shanghai')", []).unwrap();
        (dir, path, conn)
    }

    #[test]
    fn lifecycle_begin_start_finish_and_read_back() {
        let (_d, path, conn) = db();
        let t0 = 1_772_407_800_000_000;
        assert_eq!(begin(&conn, &new_rec("aa", t0, "dispatch")).unwrap(), BeginOutcome::Started);
        media_started(&conn, "aa", 8000, t0 + 7_000_000).unwrap();
        let f = Finished {
            id: "aa".into(),
            status: Some(RecordingStatus::Complete),
            sample_rate: Some(8000),
            frames: 16_000,
            bytes: 64_044,
            sha256: Some("ab".repeat(32)),
            raw_paths: vec!["2026/03/02/aa.caller.rtpdump".into()],
            undecodable: vec![18, 98],
            ended_us: Some(t0 + 10_000_000),
            dtmf: "15#".into(),
            counters: Some(r#"{"packets_placed":100}"#.into()),
        };
        assert_eq!(f.duration_ms(), 2000);
        finish(&conn, &f).unwrap();
        let reader = Reader::open(&path).unwrap();
        let row = reader.recording("aa").unwrap().unwrap();
        assert_eq!(row.status, "complete");
        assert_eq!(row.frames, 16_000);
        assert_eq!(row.duration_ms, 2000);
        assert_eq!(row.undecodable, vec![18, 98]);
        assert_eq!(row.raw_paths, vec!["2026/03/02/aa.caller.rtpdump".to_string()]);
        assert_eq!(row.call_started_at, "2026-03-02T07:30:00.000000+08:00");
        assert_eq!(row.media_started_at.as_deref(), Some("2026-03-02T07:30:07.000000+08:00"));
        assert_eq!(row.counters["packets_placed"], 100);
        assert_eq!(row.dtmf, "15#");
        assert_eq!(reader.recording_of_call("call-aa", t0).unwrap().unwrap().id, "aa");
        assert!(reader.recording("nope").unwrap().is_none());
        // A finished recording is never overwritten by a second Begin (a replay).
        assert_eq!(
            begin(&conn, &new_rec("aa", t0, "dispatch")).unwrap(),
            BeginOutcome::Exists(RecordingStatus::Complete)
        );
        assert_eq!(reader.recording("aa").unwrap().unwrap().frames, 16_000);
    }

    /// A later replay that completes a cut call records it whole under a new id: the
    /// partial row stays (file, hash, status) and names it; the call's recording is the
    /// whole one; a second recording not superseded is refused by the schema.
    #[test]
    fn a_whole_recording_supersedes_the_partial_one() {
        let (_d, path, conn) = db();
        let t0 = 1_772_407_800_000_000;
        begin(&conn, &new_rec("aa", t0, "dispatch")).unwrap();
        let part = Finished {
            id: "aa".into(),
            status: Some(RecordingStatus::Complete),
            sample_rate: Some(8000),
            frames: 800,
            sha256: Some("cd".repeat(32)),
            ..Finished::default()
        };
        finish(&conn, &part).unwrap();
        assert_eq!(
            current_of_call(&conn, "call-aa", t0).unwrap(),
            Some(("aa".into(), Some(RecordingStatus::Complete)))
        );
        let id = next_id(&conn, "aa").unwrap();
        assert_eq!(id, "aa-2");
        let mut whole = new_rec("aa", t0, "dispatch");
        whole.id = id.clone();
        whole.path = "2026/03/02/aa-2.wav".into();
        // Without superseding, the call would have two recordings: not begun, and the
        // schema refuses a second row not superseded.
        assert_eq!(begin(&conn, &whole).unwrap(), BeginOutcome::Exists(RecordingStatus::Complete));
        let dup = conn.execute(
            "INSERT INTO recordings (id, call_id, call_started_us, caller, callee, dialled, path, status,
                 retention_days, day, month) SELECT 'x', call_id, call_started_us, caller, callee, dialled, 'x.wav',
                 'recording', 0, day, month FROM recordings WHERE id = 'aa'",
            [],
        );
        assert!(dup.is_err(), "{dup:?}");
        assert_eq!(supersede(&conn, "aa", &whole).unwrap(), BeginOutcome::Started);
        finish(&conn, &Finished { id: id.clone(), frames: 1600, sample_rate: Some(8000), ..Finished::default() })
            .unwrap();
        let reader = Reader::open(&path).unwrap();
        assert_eq!(reader.recording_of_call("call-aa", t0).unwrap().unwrap().id, "aa-2");
        let old = reader.recording("aa").unwrap().unwrap();
        assert_eq!((old.status.as_str(), old.frames, old.superseded_by.as_deref()), ("complete", 800, Some("aa-2")));
        assert_eq!(old.sha256, part.sha256);
        assert!(!old.sampleable());
        assert_eq!(current_of_call(&conn, "call-aa", t0).unwrap().map(|c| c.0), Some("aa-2".into()));
        assert_eq!(next_id(&conn, "aa").unwrap(), "aa-3");
        // A replay of the first file again finds the superseded row final: not rewritten.
        assert_eq!(
            begin(&conn, &new_rec("aa", t0, "dispatch")).unwrap(),
            BeginOutcome::Exists(RecordingStatus::Complete)
        );
        assert_eq!(reader.recordings(&Filter::default()).unwrap().len(), 2);
    }

    #[test]
    fn unfinished_rows_are_taken_over() {
        let (_d, _path, conn) = db();
        let t0 = 1_772_407_800_000_000;
        begin(&conn, &new_rec("bb", t0, "g")).unwrap();
        media_started(&conn, "bb", 16000, t0).unwrap();
        set_status(&conn, "bb", RecordingStatus::Missing).unwrap();
        assert_eq!(begin(&conn, &new_rec("bb", t0, "g")).unwrap(), BeginOutcome::Started);
        let rows = stored(&conn, &[RecordingStatus::Recording]).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].sample_rate, None, "the takeover starts from scratch");
        assert!(stored(&conn, &[RecordingStatus::Missing]).unwrap().is_empty());
    }

    #[test]
    fn query_filters() {
        let (_d, path, conn) = db();
        let t0 = 1_772_407_800_000_000;
        let day = 86_400_000_000;
        begin(&conn, &new_rec("r1", t0, "dispatch")).unwrap();
        let mut r2 = new_rec("r2", t0 + day, "callback");
        r2.caller = "8002".into();
        r2.month = "2026-04".into();
        begin(&conn, &r2).unwrap();
        let mut r3 = new_rec("r3", t0 + 2 * day, "dispatch");
        r3.dialled = "016800123".into();
        begin(&conn, &r3).unwrap();
        set_status(&conn, "r3", RecordingStatus::Expired).unwrap();
        let reader = Reader::open(&path).unwrap();
        let ids = |q: Filter| reader.recordings(&q).unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(Filter::default()), ["r1", "r2", "r3"]);
        assert_eq!(ids(Filter { group: Some("dispatch".into()), ..Default::default() }), ["r1", "r3"]);
        assert_eq!(ids(Filter { ext: Some("8002".into()), ..Default::default() }), ["r2"]);
        assert_eq!(ids(Filter { number: Some("168".into()), ..Default::default() }), ["r3"]);
        assert_eq!(ids(Filter { status: Some(RecordingStatus::Expired), ..Default::default() }), ["r3"]);
        assert_eq!(ids(Filter { month: Some("2026-04".into()), ..Default::default() }), ["r2"]);
        assert_eq!(ids(Filter { from: Some(Ts(t0 + day)), to: Some(Ts(t0 + 2 * day)), ..Default::default() }), ["r2"]);
        assert_eq!(ids(Filter { newest_first: true, limit: Some(2), ..Default::default() }), ["r3", "r2"]);
        let first = reader.recordings(&Filter { limit: Some(1), ..Default::default() }).unwrap();
        assert_eq!(ids(Filter { after: Some(first[0].cursor()), ..Default::default() }), ["r2", "r3"]);
        // class and rule need the call's record: none is stored here.
        assert!(ids(Filter { class: Some("mobile".into()), ..Default::default() }).is_empty());
    }

    #[test]
    fn group_and_number_match_the_recording_or_its_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let (mut sink, writer) = super::super::open(&path, "Asia/Shanghai").unwrap();
        let t0 = super::super::testdata::T0;
        // The call's record names another group and number than the recording: r1 was
        // asked for by the callee's group, and the call was dialled as a normalised number.
        let mut call = super::super::testdata::call("call-r1", t0, "8001", "8002", Direction::Internal);
        call.group = Some("sales".into());
        call.number = "+86139".into();
        sink.take(&Output::Call(CallEvent::Ended(Box::new(call)))).unwrap();
        writer.close().unwrap();
        let conn = open_rw(&path).unwrap();
        let mut r1 = new_rec("r1", t0, "dispatch");
        (r1.callee, r1.dialled) = ("8002".into(), "8002".into());
        begin(&conn, &r1).unwrap();
        let reader = Reader::open(&path).unwrap();
        let ids = |q: Filter| reader.recordings(&q).unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
        let sales = Filter { group: Some("sales".into()), ..Default::default() };
        assert_eq!(ids(sales), ["r1"], "the call's group matches");
        let dispatch = Filter { group: Some("dispatch".into()), ..Default::default() };
        assert_eq!(ids(dispatch), ["r1"], "the recording's group matches");
        assert!(ids(Filter { group: Some("ops".into()), ..Default::default() }).is_empty());
        let number = Filter { number: Some("+86".into()), ..Default::default() };
        assert_eq!(ids(number), ["r1"], "the call's number matches");
        let own = Filter { number: Some("800".into()), ..Default::default() };
        assert_eq!(ids(own), ["r1"], "the recording's caller matches");
        assert!(ids(Filter { number: Some("777".into()), ..Default::default() }).is_empty());
    }

    #[test]
    fn playback_log_newest_first_pages_by_id() {
        let (_d, path, conn) = db();
        let t = 1_772_407_800_000_000;
        // The clock stepped back between the writes: ids keep the order written.
        for (i, at) in [t + 2_000_000, t, t + 1_000_000].into_iter().enumerate() {
            let e = PlaybackEntry {
                at: Ts(at),
                who: "alice".into(),
                recording_id: if i == 1 { "r2".into() } else { "r1".into() },
                action: PlaybackAction::Stream,
                via: Via::Api,
                detail: String::new(),
            };
            log_playback(&conn, &e).unwrap();
        }
        let reader = Reader::open(&path).unwrap();
        let ids = |q: PlaybackQuery| reader.playback_log(&q).unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(PlaybackQuery::default()), [2, 3, 1], "by time");
        let newest = PlaybackQuery { newest_first: true, ..Default::default() };
        assert_eq!(ids(newest.clone()), [3, 2, 1]);
        assert_eq!(ids(PlaybackQuery { limit: Some(2), ..newest.clone() }), [3, 2]);
        assert_eq!(ids(PlaybackQuery { before: Some(PlaybackCursor::Id(3)), ..newest.clone() }), [2, 1]);
        assert_eq!(
            ids(PlaybackQuery { recording: Some("r1".into()), before: Some(PlaybackCursor::Id(3)), ..newest }),
            [1]
        );
    }

    #[test]
    fn playback_log_round_trip() {
        let (_d, path, conn) = db();
        let t = 1_772_407_800_000_000;
        for (i, (who, rec, action)) in [
            ("alice", "r1", PlaybackAction::Play),
            ("bob", "r1", PlaybackAction::Export),
            ("alice", "r2", PlaybackAction::Sample),
        ]
        .into_iter()
        .enumerate()
        {
            let e = PlaybackEntry {
                at: Ts(t + i as i64 * 1_000_000),
                who: who.into(),
                recording_id: rec.into(),
                action,
                via: Via::Cli,
                detail: format!("d{i}"),
            };
            log_playback(&conn, &e).unwrap();
        }
        let reader = Reader::open(&path).unwrap();
        let all = reader.playback_log(&PlaybackQuery::default()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].action, "export");
        assert_eq!(all[1].who, "bob");
        assert_eq!(all[0].at, "2026-03-02T07:30:00.000000+08:00");
        let alice = reader.playback_log(&PlaybackQuery { who: Some("alice".into()), ..Default::default() }).unwrap();
        assert_eq!(alice.iter().map(|r| r.recording_id.as_str()).collect::<Vec<_>>(), ["r1", "r2"]);
        let r1 = reader.playback_log(&PlaybackQuery { recording: Some("r1".into()), ..Default::default() }).unwrap();
        assert_eq!(r1.len(), 2);
        let late = reader.playback_log(&PlaybackQuery { from: Some(Ts(t + 1_000_000)), ..Default::default() }).unwrap();
        assert_eq!(late.len(), 2);
        let n = log_playback_at(
            &path,
            &PlaybackEntry {
                at: Ts(t),
                who: "carol".into(),
                recording_id: "r9".into(),
                action: PlaybackAction::Stream,
                via: Via::Api,
                detail: "bytes=0-99".into(),
            },
        )
        .unwrap();
        assert_eq!(n, 4);
    }

    #[test]
    fn status_names_round_trip() {
        for s in RecordingStatus::ALL {
            assert_eq!(RecordingStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RecordingStatus::parse("done"), None);
        assert!(RecordingStatus::Repaired.is_final() && !RecordingStatus::Missing.is_final());
    }
}
