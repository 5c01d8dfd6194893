//! The recorder (REC-1..4): the audio of recorded calls, as the engine's
//! `Output::Recording` events bring it, to stereo 16-bit WAV files under the recordings
//! folder (`layout`: `YYYY/MM/DD/<id>.wav`, left = caller → callee, right = callee →
//! caller), undecodable RTP beside them as rtpdump (`rtpdump`), a row per recording in
//! the store (`store::recordings`) with the finished file's SHA-256.
//!
//! Shape: `RecorderSink` (the pipeline side, a `Sink`) puts events on a bounded channel;
//! one thread (`writer`) owns the files and a database connection of its own; a second
//! (`seal`) fsyncs finished files and stores their rows, off the writer's path. When the
//! channel is full: `Begin`/`Start`/`End` always wait (they are few, and without them a
//! recording is lost whole); audio waits too under `Backpressure::Block` (replay: nothing
//! is lost by going slower), or under `Backpressure::Drop` waits at most `wait` once per
//! overload and then drops blocks without waiting until the queue takes one again. A
//! dropped block is never lost silently: the writer fills its frames with silence (so the
//! WAV keeps the call's timing), and the recording's row counts the blocks and frames
//! (`counters.recorder.*_overload`).
//!
//! At start (`open`, and `recordings verify`), with the folder's lock held exclusively
//! (`lock`: only when no other process is recording there), recordings left in status
//! `recording` by a crash are repaired (`maintain`: WAV header fixed to the data present,
//! hashed, status `repaired`; no file → `missing`, or `empty` when no audio had come);
//! then retention deletes the files of expired recordings (rows stay, `expired`).
//! `maintain` also holds `verify` and the hash check before a file is exported or
//! played; `sample` draws the monthly spot check.
//! May use: core media types, `store::recordings`, hound, sha2, libc (flock).
//! Invariants: a file on disk has a row (the row is committed before the file is made);
//! a finished file is never rewritten; memory per open recording is fixed
//! (`writer::bytes_per_recording`), whatever the call's length.

pub mod layout;
pub mod lock;
pub mod maintain;
pub mod rtpdump;
pub mod sample;
mod seal;
pub mod wav;
pub(crate) mod writer;

pub use writer::{bytes_per_recording, Lost, RawFile, RecorderSummary};

use crate::settings::Settings;
use crate::sink::Sink;
use crate::store::recordings as rows;
use anyhow::{anyhow, Context};
use callwarden_core::config::Config;
use callwarden_core::media::{MediaOut, RecordingEvent};
use callwarden_core::track::CallKey;
use callwarden_core::{Output, Ts};
use lock::DirLock;
use maintain::{ExpireReport, RepairReport, VerifyReport};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use writer::{Knobs, Msg, Writer};

/// How long recordings are kept, by group, from the config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// `[recordings].retention_days`; 0 = keep forever.
    pub default_days: u32,
    /// `retention_days` of the groups that set it.
    pub by_group: HashMap<String, u32>,
}

impl Retention {
    pub fn from_config(cfg: &Config) -> Retention {
        Retention {
            default_days: cfg.recordings.retention_days,
            by_group: cfg.groups.iter().filter_map(|g| Some((g.name.clone(), g.retention_days?))).collect(),
        }
    }

    pub fn days_for(&self, group: Option<&str>) -> u32 {
        group.and_then(|g| self.by_group.get(g)).copied().unwrap_or(self.default_days)
    }
}

/// Where and how to record.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// The recordings folder (`[recordings].dir`, relative to the config file).
    pub dir: PathBuf,
    /// The database (the store's).
    pub db: PathBuf,
    /// The site's zone: the folder of a recording is the date of its call there.
    pub timezone: String,
    pub retention: Retention,
}

impl RecorderConfig {
    pub fn from_settings(s: &Settings) -> RecorderConfig {
        RecorderConfig {
            dir: s.recordings_dir.clone(),
            db: s.db_path.clone(),
            timezone: s.config.site.timezone.clone(),
            retention: Retention::from_config(&s.config),
        }
    }
}

/// What the sink does with audio when the writer's queue is full (see the module doc).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait: for replay, where going slower loses nothing.
    Block,
    /// Wait at most this long (once per overload), then drop and count: for live capture.
    Drop { wait: Duration },
}

#[derive(Clone, Debug)]
pub struct RecorderOptions {
    /// Messages the queue holds (each is one block of audio, typically one packet's).
    pub queue: usize,
    pub backpressure: Backpressure,
    /// A growing file is flushed (header included) at least this often: what a killed
    /// process can lose.
    pub flush_interval: Duration,
    /// Row updates are committed at least this often and every `batch_max` updates.
    pub batch_age: Duration,
    pub batch_max: usize,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            queue: 4096,
            backpressure: Backpressure::Block,
            flush_interval: Duration::from_secs(1),
            batch_age: Duration::from_millis(100),
            batch_max: 500,
        }
    }
}

/// What `open` did before recording.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StartReport {
    /// `None` when another process was recording into the folder (no repair then).
    pub repair: Option<RepairReport>,
    pub expire: ExpireReport,
}

/// The pipeline side: queues recording events for the writer thread.
pub struct RecorderSink {
    tx: SyncSender<Msg>,
    backpressure: Backpressure,
    /// Set after a drop: until the queue takes a block again, do not wait at all.
    overloaded: bool,
    lost: HashMap<CallKey, Lost>,
    dropped_blocks: Arc<AtomicU64>,
}

/// Owns the writer thread and the folder's lock; `close` finishes and reports.
pub struct Recorder {
    tx: SyncSender<Msg>,
    thread: JoinHandle<RecorderSummary>,
    dropped_blocks: Arc<AtomicU64>,
    _lock: DirLock,
}

/// Open the recorder: take the folder's lock, repair what a crash left (when nobody else
/// records there), apply retention at `now` (the wall clock), start the writer thread.
/// The database must exist and be migrated (the store opens it first).
pub fn open(
    cfg: &RecorderConfig,
    opts: RecorderOptions,
    now: Ts,
) -> anyhow::Result<(RecorderSink, Recorder, StartReport)> {
    let tz = jiff::tz::TimeZone::get(&cfg.timezone).with_context(|| format!("unknown time zone {:?}", cfg.timezone))?;
    let dir = &cfg.dir;
    let conn = rows::open_rw(&cfg.db)?;
    let (lock, repair) = repair_if_alone(&conn, dir)?;
    let expire = maintain::expire(&conn, dir, &cfg.retention, now).context("retention of recordings")?;
    if !expire.expired.is_empty() {
        tracing::info!(count = expire.expired.len(), files = expire.files_deleted, "expired recordings deleted");
    }
    let (tx, rx) = mpsc::sync_channel(opts.queue.max(1));
    let knobs =
        Knobs { flush_interval: opts.flush_interval, batch_age: opts.batch_age, batch_max: opts.batch_max.max(1) };
    let seal_conn = rows::open_rw(&cfg.db)?;
    let writer = Writer::new(conn, seal_conn, dir.clone(), tz, cfg.retention.clone(), knobs)
        .context("cannot start the recorder's sealer thread")?;
    let thread = std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || writer.run(rx))
        .context("cannot start the recorder thread")?;
    let dropped_blocks = Arc::new(AtomicU64::new(0));
    let sink = RecorderSink {
        tx: tx.clone(),
        backpressure: opts.backpressure,
        overloaded: false,
        lost: HashMap::new(),
        dropped_blocks: dropped_blocks.clone(),
    };
    Ok((sink, Recorder { tx, thread, dropped_blocks, _lock: lock }, StartReport { repair, expire }))
}

/// The wall clock as a `Ts`, for retention (the edge may read the clock; the core may not).
pub fn wall_clock() -> Ts {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Ts(us)
}

/// Take the folder's lock; when it can be had exclusively, repair, then share it.
fn repair_if_alone(conn: &rusqlite::Connection, dir: &Path) -> anyhow::Result<(DirLock, Option<RepairReport>)> {
    let lock_err = |e| anyhow!("{}: cannot lock the recordings folder: {e}", dir.display());
    match DirLock::try_exclusive(dir).map_err(lock_err)? {
        Some(ex) => {
            let report = maintain::repair_unfinished(conn, dir).context("repair of unfinished recordings")?;
            Ok((ex.downgrade().map_err(lock_err)?, Some(report)))
        }
        None => {
            tracing::info!(
                dir = %dir.display(),
                "another process is recording into this folder: unfinished recordings are repaired when it stops"
            );
            Ok((DirLock::shared(dir).map_err(lock_err)?, None))
        }
    }
}

/// `recordings verify`: repair (when no process records into the folder), then check
/// every file against the database.
pub fn verify(db: &Path, dir: &Path) -> anyhow::Result<(Option<RepairReport>, VerifyReport)> {
    let conn = rows::open_rw(db)?;
    let (_lock, repair) = repair_if_alone(&conn, dir)?;
    let report = maintain::verify(&conn, dir)?;
    Ok((repair, report))
}

/// `recordings expire`: retention at `now`, without recording anything.
pub fn expire(cfg: &RecorderConfig, now: Ts) -> anyhow::Result<ExpireReport> {
    let conn = rows::open_rw(&cfg.db)?;
    maintain::expire(&conn, &cfg.dir, &cfg.retention, now)
}

impl RecorderSink {
    fn send_wait(&self, msg: Msg) -> anyhow::Result<()> {
        self.tx.send(msg).map_err(|_| anyhow!("the recorder has stopped; a recording event was lost"))
    }

    fn media(&mut self, key: CallKey, out: &MediaOut) -> anyhow::Result<()> {
        let wait = match (self.backpressure, out) {
            (Backpressure::Block, _) | (_, MediaOut::Start { .. }) => {
                return self.send_wait(Msg::Media { key, out: out.clone() });
            }
            (Backpressure::Drop { wait }, _) => wait,
        };
        let mut msg = Msg::Media { key, out: out.clone() };
        let deadline = (!self.overloaded).then(|| Instant::now() + wait);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => {
                    self.overloaded = false;
                    return Ok(());
                }
                Err(TrySendError::Disconnected(_)) => return Err(anyhow!("the recorder has stopped; audio was lost")),
                Err(TrySendError::Full(m)) => match deadline {
                    Some(d) if Instant::now() < d => {
                        msg = m;
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    _ => break,
                },
            }
        }
        // Dropped: remember what, so the row says it and the WAV keeps its length.
        self.overloaded = true;
        self.dropped_blocks.fetch_add(1, Ordering::Relaxed);
        let lost = self.lost.entry(key).or_default();
        match out {
            MediaOut::Audio(b) => {
                lost.blocks += 1;
                lost.frames += b.frames();
                lost.end_frame = lost.end_frame.max(b.start_frame + b.frames());
            }
            MediaOut::Silence { start_frame, frames } => {
                lost.blocks += 1;
                lost.frames += frames;
                lost.end_frame = lost.end_frame.max(start_frame + frames);
            }
            MediaOut::Raw { .. } => lost.raw_packets += 1,
            MediaOut::Start { .. } => {}
        }
        Ok(())
    }
}

impl Sink for RecorderSink {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        let Output::Recording(ev) = out else { return Ok(()) };
        match ev {
            RecordingEvent::Begin(info) => self.send_wait(Msg::Begin(Box::new(info.clone()))),
            RecordingEvent::Media { key, out } => self.media(*key, out),
            RecordingEvent::End { key, ended_at, counters, undecodable, dtmf } => {
                let lost = self.lost.remove(key).unwrap_or_default();
                self.send_wait(Msg::End {
                    key: *key,
                    ended_at: *ended_at,
                    counters: Box::new(counters.clone()),
                    undecodable: undecodable.clone(),
                    dtmf: dtmf.clone(),
                    lost,
                })
            }
        }
    }
}

impl Recorder {
    /// Return once everything queued before the call is written and its rows committed.
    pub fn barrier(&self) -> anyhow::Result<()> {
        let (reply, done) = mpsc::sync_channel(1);
        self.tx.send(Msg::Barrier(reply)).map_err(|_| anyhow!("the recorder has stopped"))?;
        done.recv().map_err(|_| anyhow!("the recorder stopped before the barrier"))
    }

    /// Blocks dropped so far at a full queue (live capture under overload).
    pub fn dropped_blocks(&self) -> u64 {
        self.dropped_blocks.load(Ordering::Relaxed)
    }

    /// Finish every recording still open (as it is), stop the thread, report. `Err` when
    /// rows could not be stored or files could not be written.
    pub fn close(self) -> anyhow::Result<RecorderSummary> {
        let summary = self.close_anyway()?;
        if summary.db_errors > 0 || summary.io_errors > 0 {
            return Err(anyhow!(
                "recordings: {} file error(s), {} database error(s): {}",
                summary.io_errors,
                summary.db_errors,
                summary.last_error.as_deref().unwrap_or("unknown error")
            ));
        }
        Ok(summary)
    }

    /// `close`, with the summary returned whatever the recordings met (`Err` only when the
    /// thread died).
    pub fn close_anyway(self) -> anyhow::Result<RecorderSummary> {
        let _ = self.tx.send(Msg::Close);
        drop(self.tx);
        self.thread.join().map_err(|_| anyhow!("the recorder thread panicked"))
    }
}

#[cfg(test)]
mod tests;
