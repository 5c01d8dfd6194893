//! The pipeline: the engine and the sinks its outputs go to, built in one place for
//! `replay` and `run` alike. `Pipeline::open` makes the store (migrated, older calls judged
//! once), feeds the engine the stored state it takes as input (approvals), and chooses the
//! sinks in their one order — store, alerts, recorder, then the mode's own and the
//! caller's; `Closer::close` shuts them in the one right order. `driver` is the loop that
//! feeds the engine and drains its outputs; `live` runs it on a thread fed by capture.
//! May use: core, `settings`, `sink`, `store`, `capture` (frames), `metrics` (live).
//! Invariants: a sink never outlives the driver that feeds it; the recorder finishes its
//! files before the store's writer is flushed and closed, and queued alerts get their
//! grace last, so what the calls ended at shutdown raised still goes out.

pub mod driver;
pub mod live;

pub use driver::Driver;

use crate::settings::Settings;
use crate::sink::alerts::{AlertCounters, AlertStats, AlertsCloser, AlertsOptions, AlertsSink};
use crate::sink::{database::Database, recorder, Sink};
use crate::store::central::forward::{self, ForwardStatus, ForwardSummary, Forwarder};
use crate::store::central::Central;
use crate::store::{self, StoreInput, StoreOptions, StoreWriter, WriteSummary};
use anyhow::Context;
use callwarden_core::Engine;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where frames come from, which decides how hard the sinks may push back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Capture files: a full recorder queue waits (nothing is lost, the file waits).
    Replay {
        /// POST violations to `[alerts].webhooks` (`replay --no-webhooks` turns it off).
        webhooks: bool,
    },
    /// Live capture: a full recorder queue waits `RECORDER_WAIT` and then drops
    /// (counted), so a slow disk cannot stall capture.
    Live,
}

/// How long a full recorder queue may hold up a live pipeline before audio is dropped.
const RECORDER_WAIT: Duration = Duration::from_millis(20);

/// How long closing may go on shipping the backlog to the central store: a replay waits
/// for its rows to leave (the operator expects them centrally when it returns), a daemon
/// stopping must not hold systemd up; what is left stays queued for the next start.
const FORWARD_DRAIN_REPLAY: Duration = Duration::from_secs(30);
const FORWARD_DRAIN_LIVE: Duration = Duration::from_secs(5);

/// An open pipeline: the driver to feed, and what closes the sinks after it.
pub struct Pipeline {
    pub driver: Driver,
    pub closer: Closer,
    /// The store's input, for its queue depth in `/metrics`.
    pub store: Box<dyn StoreInput>,
    /// The alerts' delivery counters (`/metrics`).
    pub alert_counters: Arc<AlertCounters>,
    /// What the recorder repaired and expired when it opened.
    pub recordings_start: recorder::StartReport,
    /// The forwarder's status, when a central store is configured (`/metrics`, page).
    pub forward: Option<Arc<ForwardStatus>>,
}

/// Closes the sinks of a pipeline once its driver is done (`close`).
pub struct Closer {
    writer: StoreWriter,
    recorder: recorder::Recorder,
    alerts: Option<AlertsCloser>,
    forwarder: Option<(Forwarder, Duration)>,
    db: PathBuf,
    recordings: PathBuf,
}

/// What the sinks did, once closed.
pub struct Closed {
    pub written: WriteSummary,
    pub recorded: recorder::RecorderSummary,
    pub alerts: AlertStats,
    /// Rows shipped to the central store and left queued, when there is one.
    pub forwarded: Option<ForwardSummary>,
}

impl Pipeline {
    /// Build the engine and the sinks for `mode`: the store (created or migrated; calls
    /// stored before verdicts were kept are judged once with this config), alerts, the
    /// recorder (after the store, which created the database; it repairs what a crash
    /// left and expires old files), then `more` in order.
    pub fn open(settings: &Settings, mode: Mode, more: Vec<Box<dyn Sink + Send>>) -> anyhow::Result<Pipeline> {
        let cfg = &settings.config;
        let mut engine = Engine::new(cfg)?;
        let opts = StoreOptions {
            durability: cfg.store.durability,
            judge_old_calls: Some(Arc::new(cfg.clone())),
            ..StoreOptions::default()
        };
        let (store_sink, writer) = store::open_with(&settings.db_path, &cfg.site.timezone, opts)
            .with_context(|| format!("{}: cannot open the database", settings.db_path.display()))?;
        // Forwarding first: it copies the approvals made centrally, which the engine takes
        // with the site's own.
        let forwarder = start_forwarding(settings)?;
        feed_approvals(&mut engine, &settings.db_path)?;
        let forward = forwarder.as_ref().map(Forwarder::status);
        let drain = match mode {
            Mode::Live => FORWARD_DRAIN_LIVE,
            Mode::Replay { .. } => FORWARD_DRAIN_REPLAY,
        };
        let webhooks = match mode {
            Mode::Replay { webhooks: false } => &[][..],
            _ => &cfg.alerts.webhooks[..],
        };
        let mut alerts = AlertsSink::new(webhooks, &cfg.site.timezone, AlertsOptions::default())?;
        let alerts_closer = alerts.take_closer();
        let alert_counters = alerts.counters();
        let backpressure = match mode {
            Mode::Live => recorder::Backpressure::Drop { wait: RECORDER_WAIT },
            Mode::Replay { .. } => recorder::RecorderOptions::default().backpressure,
        };
        let (rec_sink, recorder, recordings_start) = recorder::open(
            &recorder::RecorderConfig::from_settings(settings),
            recorder::RecorderOptions { backpressure, ..recorder::RecorderOptions::default() },
            recorder::wall_clock(),
        )
        .with_context(|| format!("{}: cannot open the recordings folder", settings.recordings_dir.display()))?;
        let mut sinks: Vec<Box<dyn Sink + Send>> =
            vec![Box::new(Database(Box::new(store_sink.clone()))), Box::new(alerts), Box::new(rec_sink)];
        sinks.extend(more);
        Ok(Pipeline {
            driver: Driver::new(engine, sinks),
            closer: Closer {
                writer,
                recorder,
                alerts: alerts_closer,
                forwarder: forwarder.map(|f| (f, drain)),
                db: settings.db_path.clone(),
                recordings: settings.recordings_dir.clone(),
            },
            store: Box::new(store_sink),
            alert_counters,
            recordings_start,
            forward,
        })
    }
}

impl Closer {
    /// Shut the sinks in order: drop the driver (and with it the sinks' queues), let the
    /// recorder finish its files (hashes, rows), flush and close the store, ship what it
    /// committed to the central store (bounded), then give queued webhook alerts
    /// `alerts_grace` to go out. Every step runs even when an
    /// earlier one failed; the first failure is returned after all have run.
    pub fn close(self, driver: Driver, alerts_grace: Duration) -> anyhow::Result<Closed> {
        drop(driver);
        let recorded =
            self.recorder.close().with_context(|| format!("{}: recording failed", self.recordings.display()));
        let written = self.writer.close().with_context(|| format!("{}: storing calls failed", self.db.display()));
        let forwarded = self.forwarder.map(|(f, drain)| f.close(drain));
        let alerts = self.alerts.map(|c| c.close(alerts_grace)).unwrap_or_default();
        Ok(Closed { written: written?, recorded: recorded?, alerts, forwarded })
    }
}

/// Forwarding to the central store, as configured: on (queue every row written from now,
/// and what the database already holds the first time, then start the forwarder), or off
/// (a site alone queues nothing). Refuses a database that went out under another site name.
fn start_forwarding(settings: &Settings) -> anyhow::Result<Option<Forwarder>> {
    let cfg = &settings.config;
    let mut conn = forward::open(&settings.db_path)?;
    let Some(central) = Central::of(&cfg.store, &settings.base_dir) else {
        if forward::disable(&conn)? {
            tracing::warn!("no [store] central any more: rows are no longer queued for a central store");
        }
        return Ok(None);
    };
    let queued = forward::enable(&mut conn, &cfg.site.name)?;
    if queued > 0 {
        tracing::info!(rows = queued, "forwarding turned on: the rows already stored are queued for the central store");
    }
    match store::central::approvals::pull_now(&central, &mut conn, &cfg.site.name, &cfg.site.timezone) {
        Ok(0) => {}
        Ok(n) => tracing::info!(changed = n, "approvals from the central store copied"),
        Err(e) => tracing::warn!(
            error = %format!("{e:#}"),
            "approvals: the central store did not answer; judging with the last copy of its approvals"
        ),
    }
    drop(conn);
    Ok(Some(Forwarder::start(
        &settings.db_path,
        central,
        cfg.site.name.clone(),
        cfg.store.forward_batch,
        Duration::from_secs(u64::from(cfg.store.approvals_pull_s)),
    )?))
}

/// Give the engine the approvals in force in the database at `db` (`callwarden approve`):
/// at open, and again whenever they may have changed (the live pipeline's `Ctl::Approvals`).
/// One the policy cannot use is logged and left out. Returns how many were given.
pub fn feed_approvals(engine: &mut Engine, db: &Path) -> anyhow::Result<usize> {
    let stored = store::approvals::in_force(db)?;
    let n = stored.len();
    for e in engine.set_approvals(stored) {
        tracing::warn!(error = %e, "stored approval not used");
    }
    if n > 0 {
        tracing::info!(approvals = n, "stored approvals loaded");
    }
    Ok(n)
}
