//! The recorder's thread: takes the recording events from the sink's bounded channel and
//! does all the file and database work, so the pipeline never waits on a disk.
//!
//! Per recording: `Begin` creates its row (status `recording`) — or finds a finished one
//! and leaves it alone, unless the call is `resumed` (an earlier replay stored it cut and
//! recorded that part): then the whole call is recorded under the next id (`<id>-2` ...)
//! and the finished part names it as what supersedes it, in the same transaction;
//! `Start` creates the WAV (header on disk at once) after the row is committed, so a file
//! on disk always has a row; `Audio`/`Silence` are appended at the
//! frame they say, a hole (blocks the sink had to drop at a full queue) filled with
//! silence and counted, so the WAV's length stays the media time; `Raw` goes to the
//! direction's rtpdump file; `End` pads what the sink dropped at the end, finalises the
//! header, hashes, and hands the recording to the sealer (`seal`: its own thread fsyncs
//! files and folder, then stores the row, status `complete`, or `empty` when the call had
//! no media at all), so an fsync never holds up the audio of the other calls.
//! Every file is flushed (header included) at least every `flush_interval` while it
//! grows, so a killed process loses at most that much audio. Row updates are batched in
//! one transaction, committed when the queue is idle, every `batch_age` or `batch_max`
//! updates, and always before a file is created.
//! Invariants: an I/O error ends the writing of that recording only (its row says so and
//! the frames not written are counted); nothing here panics on what comes in.

use super::rtpdump::{RawPacket, RtpDumpWriter};
use super::seal::{self, SealMsg, Sealed};
use super::wav::{self, WavFile};
use super::{layout, Retention};
use crate::store::recordings::{self as rows, BeginOutcome, Finished, NewRecording, RecordingStatus};
use callwarden_core::media::{MediaCounters, MediaOut, RecordingInfo};
use callwarden_core::track::{CallKey, Leg};
use callwarden_core::Ts;
use jiff::tz::TimeZone;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

/// What the sink could not queue for one recording (a full queue in `Backpressure::Drop`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Lost {
    /// Audio/silence messages dropped, and the frames they covered.
    pub blocks: u64,
    pub frames: u64,
    /// Undecodable packets dropped.
    pub raw_packets: u64,
    /// End (exclusive) of the furthest frame any message of the recording covered.
    #[serde(skip)]
    pub end_frame: u64,
}

pub(super) enum Msg {
    Begin(Box<RecordingInfo>),
    Media {
        key: CallKey,
        out: MediaOut,
    },
    End {
        key: CallKey,
        ended_at: Ts,
        counters: Box<MediaCounters>,
        undecodable: Vec<u8>,
        dtmf: String,
        lost: Lost,
    },
    /// Commit everything before this and answer (tests, shutdown of the daemon).
    Barrier(SyncSender<()>),
    Close,
}

/// Knobs of the thread (from `RecorderOptions`).
#[derive(Clone, Debug)]
pub(super) struct Knobs {
    pub flush_interval: Duration,
    pub batch_age: Duration,
    pub batch_max: usize,
}

/// What the recorder did, returned by `Recorder::close`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecorderSummary {
    /// Recordings begun (rows created or taken over).
    pub started: u64,
    /// Finished with files (complete).
    pub completed: u64,
    /// Finished with no media at all (status empty).
    pub empty: u64,
    /// Not written because a finished recording of the same call exists (a replay).
    pub skipped_existing: u64,
    /// Begun in place of a finished recording of part of the call (a call an earlier
    /// replay stored cut, completed now): that one is kept, superseded.
    pub superseded: u64,
    /// Audio and silence frames written to WAV files.
    pub frames_written: u64,
    /// Frames of silence written in place of blocks the sink dropped at a full queue.
    pub frames_filled: u64,
    /// Undecodable packets kept in rtpdump files.
    pub raw_packets: u64,
    /// Recordings whose files hit an I/O error (each logged, counted in its row).
    pub io_errors: u64,
    /// Recordings cut short by an I/O error (disk full): status `incomplete`, what reached
    /// the disk kept and hashed.
    pub incomplete: u64,
    /// I/O errors are logged at most once a minute (a full disk fails every recording).
    #[serde(skip)]
    log_gate: LogGate,
    /// Row updates that could not be committed.
    pub db_errors: u64,
    pub last_error: Option<String>,
    /// Most recordings open at once, and the memory each costs here (write buffers and
    /// state; the core's timeline is counted by the engine).
    pub peak_active: u64,
    pub bytes_per_recording: u64,
    /// The most one recording's timeline can hold in the core with its default options
    /// (`CallAudio::memory_bound`), for the memory per active recording.
    pub core_bytes_per_recording: u64,
}

/// At most one log line per `EVERY` for a kind of error; the lines held back are counted
/// and their number given with the next line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogGate {
    last: Option<std::time::Instant>,
    held: u64,
}

impl LogGate {
    pub const EVERY: Duration = Duration::from_secs(60);

    /// `Some(lines held back since the last one)` when a line may be written now.
    pub fn open(&mut self, now: std::time::Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now.duration_since(t) < Self::EVERY) {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

/// The recorder's own counts for one recording, stored with the core's in the row.
#[derive(Clone, Debug, Default, Serialize)]
struct RecCounters {
    frames_audio: u64,
    frames_silence: u64,
    /// Silence written where the sink dropped blocks at a full queue (overload).
    frames_filled_overload: u64,
    blocks_dropped_overload: u64,
    raw_dropped_overload: u64,
    /// Audio that overlapped what was already written (should not happen), skipped.
    frames_overlap_skipped: u64,
    /// Audio not written: over the WAV size limit, or after an I/O error.
    frames_over_limit: u64,
    frames_lost_io: u64,
    raw_packets: u64,
    raw_lost_io: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    io_error: Option<String>,
    /// The process stopped (or the recorder was closed) before the call ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    closed_before_end: bool,
    raw_files: Vec<RawFile>,
}

/// An rtpdump file of a recording and its hash (checked by `verify` like the WAV).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RawFile {
    pub path: String,
    pub sha256: String,
    pub packets: u64,
    pub bytes: u64,
}

struct Active {
    id: String,
    day_dir: String,
    wav_rel: String,
    wav: Option<WavFile>,
    rate: Option<u32>,
    raw: [Option<RtpDumpWriter>; 2],
    raw_rel: Vec<String>,
    c: RecCounters,
}

impl Active {
    fn failed(&self) -> bool {
        self.c.io_error.is_some()
    }
}

/// Memory of one open recording here: its state, the WAV write buffer and hound's
/// sample buffer (rtpdump buffers only for undecodable calls, not counted).
pub fn bytes_per_recording() -> u64 {
    (std::mem::size_of::<Active>() + wav::WRITE_BUFFER + wav::CHUNK_FRAMES * 4 + 128) as u64
}

pub(super) struct Writer {
    conn: Connection,
    /// The sealer (fsync, then the finished row): its own thread and connection.
    seal_tx: Option<SyncSender<SealMsg>>,
    seal_thread: Option<std::thread::JoinHandle<seal::SealSummary>>,
    dir: PathBuf,
    tz: TimeZone,
    retention: Retention,
    knobs: Knobs,
    active: HashMap<CallKey, Active>,
    skipped: HashSet<CallKey>,
    in_tx: bool,
    tx_ops: usize,
    tx_since: Instant,
    last_sweep: Instant,
    summary: RecorderSummary,
}

fn leg_index(leg: Leg) -> usize {
    match leg {
        Leg::CallerToCallee => 0,
        Leg::CalleeToCaller => 1,
    }
}

impl Writer {
    /// `seal_conn`: a second connection to the same database, for the sealer thread.
    pub(super) fn new(
        conn: Connection,
        seal_conn: Connection,
        dir: PathBuf,
        tz: TimeZone,
        retention: Retention,
        knobs: Knobs,
    ) -> std::io::Result<Writer> {
        let (seal_tx, seal_rx) = std::sync::mpsc::sync_channel(1024);
        let seal_thread =
            std::thread::Builder::new().name("recorder-seal".into()).spawn(move || seal::run(seal_conn, seal_rx))?;
        Ok(Writer {
            conn,
            seal_tx: Some(seal_tx),
            seal_thread: Some(seal_thread),
            dir,
            tz,
            retention,
            knobs,
            active: HashMap::new(),
            skipped: HashSet::new(),
            in_tx: false,
            tx_ops: 0,
            tx_since: Instant::now(),
            last_sweep: Instant::now(),
            summary: RecorderSummary {
                bytes_per_recording: bytes_per_recording(),
                core_bytes_per_recording: callwarden_core::media::CallAudio::default().memory_bound() as u64,
                ..RecorderSummary::default()
            },
        })
    }

    /// Hand a finished recording to the sealer; inline when the sealer is gone.
    fn seal(&mut self, job: Sealed) {
        use std::sync::mpsc::{SendError, TrySendError};
        let job = match self.seal_tx.clone() {
            None => job,
            Some(tx) => match tx.try_send(SealMsg::Seal(Box::new(job))) {
                Ok(()) => return,
                // The sealer's row update waits for our open transaction (the write
                // lock): never block on a full sealer queue while holding it.
                Err(TrySendError::Full(msg)) => {
                    self.commit();
                    match tx.send(msg) {
                        Ok(()) => return,
                        Err(SendError(SealMsg::Seal(job))) => *job,
                        Err(SendError(SealMsg::Barrier(_))) => return,
                    }
                }
                Err(TrySendError::Disconnected(SealMsg::Seal(job))) => *job,
                Err(TrySendError::Disconnected(SealMsg::Barrier(_))) => return,
            },
        };
        tracing::warn!(id = %job.fin.id, "the sealer has stopped; sealing on the writer thread");
        for f in &job.files {
            if let Err(e) = wav::sync_path(f) {
                self.summary.io_errors += 1;
                self.summary.last_error = Some(format!("fsync {}: {e}", f.display()));
            }
        }
        let fin = job.fin;
        self.db("recording end", |c| rows::finish(c, &fin));
    }

    /// Wait until the sealer has stored everything handed to it so far.
    fn seal_barrier(&self) {
        if let Some(tx) = &self.seal_tx {
            let (reply, done) = std::sync::mpsc::sync_channel(1);
            if tx.send(SealMsg::Barrier(reply)).is_ok() {
                let _ = done.recv();
            }
        }
    }

    pub(super) fn run(mut self, rx: Receiver<Msg>) -> RecorderSummary {
        let tick = self.knobs.flush_interval.min(self.knobs.batch_age).max(Duration::from_millis(10));
        loop {
            match rx.recv_timeout(tick) {
                Ok(Msg::Close) => break,
                Ok(Msg::Barrier(reply)) => {
                    self.commit();
                    self.seal_barrier();
                    let _ = reply.send(());
                }
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => self.commit(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.housekeeping();
        }
        // Recordings whose call never ended (the process is stopping): finish what is there.
        let keys: Vec<CallKey> = self.active.keys().copied().collect();
        for key in keys {
            if let Some(mut a) = self.active.remove(&key) {
                a.c.closed_before_end = true;
                self.finish(a, None, None, Vec::new(), String::new(), Lost::default());
            }
        }
        self.commit();
        drop(self.seal_tx.take());
        if let Some(t) = self.seal_thread.take() {
            match t.join() {
                Ok(sealed) => {
                    self.summary.io_errors += sealed.io_errors;
                    self.summary.db_errors += sealed.db_errors;
                    if sealed.last_error.is_some() {
                        self.summary.last_error = sealed.last_error;
                    }
                }
                Err(_) => {
                    self.summary.db_errors += 1;
                    self.summary.last_error = Some("the recorder's sealer thread panicked".into());
                }
            }
        }
        self.summary
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Begin(info) => self.begin(&info),
            Msg::Media { key, out } => self.media(key, out),
            Msg::End { key, ended_at, counters, undecodable, dtmf, lost } => {
                if self.skipped.remove(&key) {
                    return;
                }
                let active = self.active.remove(&key);
                // After a flood of recorded calls the map would keep room for its peak.
                let (len, cap) = (self.active.len(), self.active.capacity());
                if cap > 1024 && len < cap / 8 {
                    self.active.shrink_to(len * 2);
                }
                match active {
                    Some(a) => self.finish(a, Some(ended_at), Some(&counters), undecodable, dtmf, lost),
                    None => tracing::warn!(?key, "recording end without a beginning; ignored"),
                }
            }
            Msg::Barrier(_) | Msg::Close => {}
        }
    }

    /// Flush files that are due, commit a batch that is old enough.
    fn housekeeping(&mut self) {
        if self.in_tx && (self.tx_ops >= self.knobs.batch_max || self.tx_since.elapsed() >= self.knobs.batch_age) {
            self.commit();
        }
        if self.last_sweep.elapsed() < self.knobs.flush_interval / 4 {
            return;
        }
        self.last_sweep = Instant::now();
        let interval = self.knobs.flush_interval;
        let mut errors = Vec::new();
        for (key, a) in &mut self.active {
            if let Some(w) = a.wav.as_mut() {
                if let Err(e) = w.flush_if_due(interval) {
                    errors.push((*key, e.to_string()));
                }
            }
            for r in a.raw.iter_mut().flatten() {
                if let Err(e) = r.flush() {
                    errors.push((*key, e.to_string()));
                }
            }
        }
        for (key, e) in errors {
            if let Some(a) = self.active.get_mut(&key) {
                fail(a, &mut self.summary, e);
            }
        }
    }

    // ---------------------------------------------------------------- database batching

    fn db<T>(&mut self, what: &str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        if !self.in_tx {
            match self.conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => {
                    self.in_tx = true;
                    self.tx_since = Instant::now();
                    self.tx_ops = 0;
                }
                Err(e) => {
                    self.db_error(what, &e);
                    return None;
                }
            }
        }
        self.tx_ops += 1;
        match f(&self.conn) {
            Ok(v) => Some(v),
            Err(e) => {
                self.db_error(what, &e);
                None
            }
        }
    }

    fn commit(&mut self) {
        if !self.in_tx {
            return;
        }
        self.in_tx = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let n = self.tx_ops;
            self.db_error(&format!("commit of {n} recording update(s)"), &e);
            self.summary.db_errors += n.saturating_sub(1) as u64;
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn db_error(&mut self, what: &str, e: &rusqlite::Error) {
        tracing::error!(error = %e, what, "recordings: database write failed");
        self.summary.db_errors += 1;
        self.summary.last_error = Some(format!("{what}: {e}"));
    }

    // ---------------------------------------------------------------- events

    /// The id a resumed call's recording is written under, and the finished recording it
    /// supersedes: the call's current recording when that one is final (the part an
    /// earlier replay saw), else none (an unfinished or empty one is taken over as usual).
    fn resumed_id(&mut self, info: &RecordingInfo) -> (String, Option<String>) {
        let start = info.call_started_at.as_micros();
        let found = self.db("recording row", |c| {
            let Some((id, status)) = rows::current_of_call(c, &info.call_id, start)? else { return Ok(None) };
            if !status.is_some_and(RecordingStatus::is_final) {
                return Ok(Some((id, None)));
            }
            Ok(Some((rows::next_id(c, &info.id)?, Some(id))))
        });
        found.flatten().unwrap_or_else(|| (info.id.clone(), None))
    }

    fn begin(&mut self, info: &RecordingInfo) {
        let day_dir = layout::day_dir(info.call_started_at, &self.tz);
        let (day, month) = layout::day_month(info.call_started_at, &self.tz);
        let (id, supersedes) = if info.resumed { self.resumed_id(info) } else { (info.id.clone(), None) };
        let new = NewRecording {
            id: id.clone(),
            call_id: info.call_id.clone(),
            call_started_us: info.call_started_at.as_micros(),
            caller: info.caller.clone(),
            callee: info.callee.clone(),
            dialled: info.dialled.clone(),
            group: info.group.clone(),
            path: layout::wav_path(&day_dir, &id),
            retention_days: self.retention.days_for(info.group.as_deref()),
            day,
            month,
        };
        let began = match &supersedes {
            Some(old) => self.db("recording row", |c| rows::supersede(c, old, &new)),
            None => self.db("recording row", |c| rows::begin(c, &new)),
        };
        if let (Some(old), Some(BeginOutcome::Started)) = (&supersedes, began) {
            self.summary.superseded += 1;
            tracing::info!(%old, new = %id, call_id = %info.call_id, "a resumed call is recorded whole; the partial recording is kept, superseded");
        }
        match began {
            Some(BeginOutcome::Exists(status)) => {
                tracing::info!(id = %info.id, call_id = %info.call_id, %status, "already recorded; not written again");
                self.summary.skipped_existing += 1;
                self.skipped.insert(info.key);
            }
            // A row that could not be written: record anyway, the files are the evidence
            // and `verify` lists them; the error is counted.
            Some(BeginOutcome::Started) | None => {
                self.summary.started += 1;
                self.active.insert(
                    info.key,
                    Active {
                        id,
                        wav_rel: new.path,
                        day_dir,
                        wav: None,
                        rate: None,
                        raw: [None, None],
                        raw_rel: Vec::new(),
                        c: RecCounters::default(),
                    },
                );
                self.summary.peak_active = self.summary.peak_active.max(self.active.len() as u64);
            }
        }
    }

    fn media(&mut self, key: CallKey, out: MediaOut) {
        if !self.active.contains_key(&key) {
            if !self.skipped.contains(&key) {
                tracing::warn!(?key, "recording media without a beginning; ignored");
            }
            return;
        }
        match out {
            MediaOut::Start { rate, at } => self.start(key, rate.hz(), at),
            MediaOut::Audio(block) => {
                let frames = block.frames();
                self.place(key, block.start_frame, frames, false, |w, skip| {
                    w.write_interleaved(block.samples.get(skip as usize * 2..).unwrap_or_default())
                });
            }
            MediaOut::Silence { start_frame, frames } => {
                self.place(key, start_frame, frames, true, |w, skip| w.write_silence(frames - skip));
            }
            MediaOut::Raw { leg, at, pt, ssrc, seq, timestamp, marker, payload } => {
                let p = RawPacket { at, pt, ssrc, seq, timestamp, marker, payload: &payload };
                self.raw(key, leg, &p);
            }
        }
    }

    fn start(&mut self, key: CallKey, rate: u32, at: Ts) {
        // The row must be on disk before its file is.
        self.commit();
        let Some(a) = self.active.get_mut(&key) else { return };
        if a.wav.is_some() || a.failed() {
            return;
        }
        let path = self.dir.join(&a.wav_rel);
        let made = std::fs::create_dir_all(self.dir.join(&a.day_dir))
            .map_err(hound::Error::from)
            .and_then(|()| WavFile::create(&path, rate));
        match made {
            Ok(w) => {
                a.wav = Some(w);
                a.rate = Some(rate);
                let id = a.id.clone();
                self.db("recording start", |c| rows::media_started(c, &id, rate, at.as_micros()));
            }
            Err(e) => fail(a, &mut self.summary, format!("{}: {e}", path.display())),
        }
    }

    /// Write `frames` frames that belong at `start_frame`: fill a hole before them with
    /// silence (blocks dropped at a full queue), skip a part already written.
    fn place(
        &mut self,
        key: CallKey,
        start_frame: u64,
        frames: u64,
        silence: bool,
        write: impl FnOnce(&mut WavFile, u64) -> hound::Result<u64>,
    ) {
        let Some(a) = self.active.get_mut(&key) else { return };
        if a.failed() {
            a.c.frames_lost_io += frames;
            return;
        }
        let Some(w) = a.wav.as_mut() else {
            // Audio before Start cannot happen with the core's ordering; count it.
            a.c.frames_overlap_skipped += frames;
            return;
        };
        let res = (|| -> hound::Result<()> {
            let have = w.frames();
            if start_frame > have {
                let filled = w.write_silence(start_frame - have)?;
                a.c.frames_filled_overload += filled;
                self.summary.frames_filled += filled;
                a.c.frames_over_limit += start_frame - have - filled;
            }
            let skip = w.frames().saturating_sub(start_frame).min(frames);
            a.c.frames_overlap_skipped += skip;
            if skip < frames {
                let n = write(w, skip)?;
                a.c.frames_over_limit += frames - skip - n;
                if silence {
                    a.c.frames_silence += n;
                } else {
                    a.c.frames_audio += n;
                }
                self.summary.frames_written += n;
            }
            w.flush_if_due(self.knobs.flush_interval)?;
            Ok(())
        })();
        if let Err(e) = res {
            fail(a, &mut self.summary, e.to_string());
        }
    }

    fn raw(&mut self, key: CallKey, leg: Leg, p: &RawPacket<'_>) {
        let Some(a) = self.active.get_mut(&key) else { return };
        if a.failed() {
            a.c.raw_lost_io += 1;
            return;
        }
        let li = leg_index(leg);
        if a.raw.get(li).is_some_and(Option::is_none) {
            let rel = layout::raw_path(&a.day_dir, &a.id, leg);
            let path = self.dir.join(&rel);
            let made =
                std::fs::create_dir_all(self.dir.join(&a.day_dir)).and_then(|()| RtpDumpWriter::create(&path, p.at));
            match made {
                Ok(w) => {
                    if let Some(slot) = a.raw.get_mut(li) {
                        *slot = Some(w);
                    }
                    a.raw_rel.push(rel);
                }
                Err(e) => {
                    a.c.raw_lost_io += 1;
                    fail(a, &mut self.summary, format!("{}: {e}", path.display()));
                    return;
                }
            }
        }
        if let Some(Some(w)) = a.raw.get_mut(li) {
            match w.write(p) {
                Ok(()) => {
                    a.c.raw_packets += 1;
                    self.summary.raw_packets += 1;
                }
                Err(e) => {
                    a.c.raw_lost_io += 1;
                    fail(a, &mut self.summary, e.to_string());
                }
            }
        }
    }

    /// Close the files of a recording, hash them, store the row.
    fn finish(
        &mut self,
        mut a: Active,
        ended_at: Option<Ts>,
        media: Option<&MediaCounters>,
        undecodable: Vec<u8>,
        dtmf: String,
        lost: Lost,
    ) {
        a.c.blocks_dropped_overload = lost.blocks;
        a.c.raw_dropped_overload = lost.raw_packets;
        let mut fin = Finished {
            id: a.id.clone(),
            status: Some(RecordingStatus::Complete),
            sample_rate: a.rate,
            undecodable,
            ended_us: ended_at.map(Ts::as_micros),
            dtmf,
            ..Finished::default()
        };
        if let Some(mut w) = a.wav.take() {
            // Blocks dropped at the very end leave no later block to show the hole.
            if !a.failed() && lost.end_frame > w.frames() {
                let want = lost.end_frame - w.frames();
                match w.write_silence(want) {
                    Ok(n) => {
                        a.c.frames_filled_overload += n;
                        self.summary.frames_filled += n;
                    }
                    Err(e) => fail(&mut a, &mut self.summary, e.to_string()),
                }
            }
            let path = self.dir.join(&a.wav_rel);
            let done = w.finish().map_err(|e| e.to_string());
            if let Err(e) = &done {
                fail(&mut a, &mut self.summary, format!("{}: {e}", path.display()));
            }
            // After an I/O error (disk full) the header is made to describe the data that
            // did reach the disk, so what is kept plays and is hashed like any recording.
            let kept = match (done, a.failed()) {
                (Ok(frames), false) => Ok(frames),
                (_, _) => wav::repair(&path, a.rate.unwrap_or(8000)).map(|r| r.frames).map_err(|e| e.to_string()),
            };
            match kept.and_then(|frames| {
                let (sha, bytes) = wav::sha256_file(&path).map_err(|e| e.to_string())?;
                Ok((frames, sha, bytes))
            }) {
                Ok((frames, sha, bytes)) => {
                    fin.frames = frames;
                    fin.sha256 = Some(sha);
                    fin.bytes = bytes;
                }
                Err(e) => fail(&mut a, &mut self.summary, format!("{}: {e}", path.display())),
            }
        }
        for li in 0..a.raw.len() {
            let Some(w) = a.raw.get_mut(li).and_then(Option::take) else { continue };
            let leg = if li == 0 { Leg::CallerToCallee } else { Leg::CalleeToCaller };
            let rel = layout::raw_path(&a.day_dir, &a.id, leg);
            let path = self.dir.join(&rel);
            let done = w.finish().and_then(|packets| wav::sha256_file(&path).map(|(sha, bytes)| (packets, sha, bytes)));
            match done {
                Ok((packets, sha256, bytes)) => a.c.raw_files.push(RawFile { path: rel, sha256, packets, bytes }),
                Err(e) => fail(&mut a, &mut self.summary, format!("{}: {e}", path.display())),
            }
        }
        fin.raw_paths = std::mem::take(&mut a.raw_rel);
        let mut files: Vec<PathBuf> = fin.raw_paths.iter().map(|r| self.dir.join(r)).collect();
        if fin.sha256.is_some() {
            files.push(self.dir.join(&a.wav_rel));
        }
        if fin.sample_rate.is_none() && fin.raw_paths.is_empty() && !a.failed() {
            fin.status = Some(RecordingStatus::Empty);
            self.summary.empty += 1;
        } else if a.failed() {
            fin.status = Some(RecordingStatus::Incomplete);
            self.summary.incomplete += 1;
        } else {
            self.summary.completed += 1;
        }
        fin.counters = Some(counters_json(media, &a.c));
        tracing::debug!(id = %a.id, frames = fin.frames, "recording finished");
        self.seal(Sealed { fin, files, dir: self.dir.join(&a.day_dir) });
    }
}

/// Stop writing a recording after an I/O error: kept in its counters, counted, and logged
/// at most once a minute across all recordings (a full disk fails each one).
fn fail(a: &mut Active, summary: &mut RecorderSummary, e: String) {
    if a.c.io_error.is_none() {
        if let Some(held) = summary.log_gate.open(std::time::Instant::now()) {
            tracing::error!(
                id = %a.id,
                error = %e,
                errors_not_logged = held,
                "recording: write failed; the rest of this recording is lost (kept as incomplete)"
            );
        }
        summary.io_errors += 1;
        summary.last_error = Some(format!("recording {}: {e}", a.id));
        a.c.io_error = Some(e);
    }
}

/// The row's `counters`: the core's media counters, and ours under "recorder".
fn counters_json(media: Option<&MediaCounters>, rec: &RecCounters) -> String {
    let mut v = media.and_then(|m| serde_json::to_value(m).ok()).unwrap_or_else(|| serde_json::json!({}));
    if let (Some(obj), Ok(r)) = (v.as_object_mut(), serde_json::to_value(rec)) {
        obj.insert("recorder".into(), r);
    }
    v.to_string()
}

/// The rtpdump files a row's counters list (for `verify`).
pub fn raw_files_of(counters: Option<&str>) -> Vec<RawFile> {
    counters
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .and_then(|v| v.get("recorder")?.get("raw_files").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}
