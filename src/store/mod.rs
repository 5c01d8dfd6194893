//! The store: its interface (`Store` for what readers ask, `StoreInput` for what the
//! pipeline writes: `interface`) and the SQLite backend behind it — schema and numbered
//! migrations (`migrations`), the writer thread (one connection, batched transactions,
//! fed by a bounded channel: `writer`), and the read side (`query` for the one `Filter`
//! and `Cursor` and date ranges, `reader` for the read-only connection, `stats` for the
//! figures, `recordings` and `approvals` for their tables). Times are integer
//! microseconds with indexed day/month columns in the site's zone; money in fen.
//! May use: core types (CallRecord, Violation, Config), rusqlite, jiff, serde_json; nothing
//! above it (no sink, pipeline, report, cli or api).
//! Invariants: a call is committed when it ends, a violation as soon as it is raised
//! (the writer commits whenever its queue is empty); a call is identified by
//! (call_id, started_at), so replaying a file twice stores it once; a violation by its
//! natural key, so one raised at the INVITE and completed at the end is one row; nothing
//! queued is dropped: the sink blocks when the queue is full, and what could not be
//! written after retries is counted and reported by `StoreWriter::close`.

pub mod approvals;
pub mod backfill;
pub mod central;
pub mod changes;
mod interface;
pub mod migrations;
pub mod query;
pub mod reader;
pub mod recordings;
pub mod replay_open;
pub mod stats;
mod writer;

pub use interface::{Store, StoreInput};
pub use query::{Cursor, Filter, QueryError, StatsBy};
pub use reader::{CallRow, Reader, ViolationRow};
pub use stats::StatsRow;

use anyhow::{anyhow, Context};
use callwarden_core::config::Durability;
use callwarden_core::track::CallEvent;
use callwarden_core::Output;
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use writer::{Msg, Writer};

/// The pipeline side of the store: a cheap handle that queues outputs for the writer
/// thread. Several may exist (one per pipeline).
#[derive(Clone)]
pub struct StoreSink {
    tx: SyncSender<Msg>,
    /// Messages sent and not yet taken by the writer (the daemon's /metrics).
    queued: Arc<AtomicU64>,
}

/// Owns the writer thread. `close` flushes what is queued, stops the thread and reports.
pub struct StoreWriter {
    tx: SyncSender<Msg>,
    thread: JoinHandle<WriteSummary>,
}

/// What the writer did, returned when it is closed.
#[derive(Clone, Debug, Default)]
pub struct WriteSummary {
    /// Calls written (inserted or replaced).
    pub calls: u64,
    /// Of those, calls not already in the database (a second replay of a file adds 0).
    pub calls_new: u64,
    pub violations: u64,
    pub transactions: u64,
    /// Transactions that failed and were tried again (each is also logged).
    pub retries: u64,
    /// Calls and violations that could not be written even after the retries.
    pub lost: u64,
    /// The last write error, when there was one.
    pub last_error: Option<String>,
}

/// Knobs of the writer; `Default` is what `open` uses.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Capacity of the queue between the pipeline and the writer (items).
    pub queue: usize,
    /// Commit at least every this many items ...
    pub batch_max: usize,
    /// ... or when the oldest uncommitted item is this old (and always when the queue
    /// is empty).
    pub batch_age: Duration,
    /// How long SQLite waits for a lock held by another connection before failing.
    pub busy_timeout: Duration,
    /// Retries of a failed transaction (with doubling pauses from `retry_pause`) before
    /// the items are written one by one and what still fails is counted as lost.
    pub retries: u32,
    pub retry_pause: Duration,
    /// What a commit survives (`[store] durability`): `PRAGMA synchronous` FULL or NORMAL.
    pub durability: Durability,
    /// Test hook: cap the database size (`PRAGMA max_page_count`) to provoke "disk full".
    pub max_page_count: Option<u32>,
    /// The config that judges calls stored before migration 0006 (`backfill`), once;
    /// `None` leaves them pending for a writer that has one.
    pub judge_old_calls: Option<std::sync::Arc<callwarden_core::config::Config>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            queue: 4096,
            batch_max: 500,
            batch_age: Duration::from_millis(100),
            busy_timeout: Duration::from_secs(5),
            retries: 5,
            retry_pause: Duration::from_millis(100),
            durability: Durability::Full,
            max_page_count: None,
            judge_old_calls: None,
        }
    }
}

/// Open (creating and migrating) the database at `path` and start the writer thread.
/// `tz` is the site's zone, for the day/month columns.
pub fn open(path: &Path, tz: &str) -> anyhow::Result<(StoreSink, StoreWriter)> {
    open_with(path, tz, StoreOptions::default())
}

/// `open` with explicit knobs.
pub fn open_with(path: &Path, tz: &str, opts: StoreOptions) -> anyhow::Result<(StoreSink, StoreWriter)> {
    let zone = jiff::tz::TimeZone::get(tz).with_context(|| format!("unknown time zone {tz:?}"))?;
    let mut conn = Connection::open(path)?;
    configure(&conn, &opts)?;
    migrations::apply(&mut conn)?;
    if let Some(cfg) = &opts.judge_old_calls {
        let n = backfill::run(&mut conn, cfg).context("judging the calls stored before migration 0006")?;
        if n > 0 {
            tracing::info!(calls = n, "calls stored before verdicts were kept judged with the current config (once)");
        }
    }
    // Readers format times and judge dates in the zone the day columns were written in.
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('timezone', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [tz],
    )?;
    let (tx, rx) = mpsc::sync_channel(opts.queue.max(1));
    let queued = Arc::new(AtomicU64::new(0));
    let writer = Writer::new(conn, zone, opts);
    let taken = queued.clone();
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer.run(rx, &taken))
        .context("cannot start the store writer thread")?;
    Ok((StoreSink { tx: tx.clone(), queued }, StoreWriter { tx, thread }))
}

fn configure(conn: &Connection, opts: &StoreOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(opts.busy_timeout)?;
    // journal_mode answers with the mode in force; a file that is not a database fails here.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "the database could not be put in WAL mode");
    }
    // In WAL mode both keep every commit through a process crash; FULL also through a
    // power cut (the log is fsynced at each commit), NORMAL only up to the last checkpoint.
    let sync = match opts.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if let Some(pages) = opts.max_page_count {
        conn.pragma_update(None, "max_page_count", pages)?;
    }
    Ok(())
}

impl StoreSink {
    fn send(&self, msg: Msg) -> anyhow::Result<()> {
        // Blocks while the queue is full: a call record is never dropped for speed.
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(msg).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            anyhow!("the store writer has stopped; the output was not stored")
        })
    }

    /// Messages queued for the writer and not yet taken by it (for `/metrics`).
    pub fn queue_depth(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Return once everything this sink (and any other) sent before the call is
    /// committed. `Err` if the writer has stopped, or if something sent since the last
    /// barrier could not be written.
    pub fn flush_barrier(&self) -> anyhow::Result<()> {
        let (reply, done) = mpsc::sync_channel(1);
        self.send(Msg::Barrier(reply))?;
        let res = done.recv().map_err(|_| anyhow!("the store writer stopped before the flush"))?;
        res.map_err(|e| anyhow!(e))
    }
}

impl StoreWriter {
    pub fn close(self) -> anyhow::Result<WriteSummary> {
        // If the thread is already gone the send fails; the join tells why.
        let _ = self.tx.send(Msg::Close);
        drop(self.tx);
        let summary = self.thread.join().map_err(|_| anyhow!("the store writer thread panicked"))?;
        if summary.lost > 0 {
            return Err(anyhow!(
                "{} call(s)/violation(s) could not be written ({} written): {}",
                summary.lost,
                summary.calls + summary.violations,
                summary.last_error.as_deref().unwrap_or("unknown error")
            ));
        }
        Ok(summary)
    }
}

impl StoreSink {
    /// Queue what the store keeps of one engine output: an ended call, a violation
    /// (the pipeline's `Sink` for the store, in `sink::database`, is this).
    pub fn take(&mut self, out: &Output) -> anyhow::Result<()> {
        match out {
            Output::Call(CallEvent::Ended(rec)) => self.send(Msg::Call(rec.clone())),
            Output::Violation(v) => self.send(Msg::Violation(Box::new(v.clone()))),
            // Calls in progress are not stored; the record at the end has everything.
            Output::Call(_) => Ok(()),
            // The recorder sink writes the audio and reports the finished file itself.
            Output::Recording(_) => Ok(()),
        }
    }
}

/// Builders of call records and violations for tests (this crate's and tests/).
#[doc(hidden)]
pub mod testdata;

#[cfg(test)]
mod tests;
