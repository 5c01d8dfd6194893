//! `callwarden run`: the daemon. Wires live sources (libpcap on each configured interface,
//! the HEP listener) into one bounded channel, the driver thread (the one loop shared with
//! `replay`, owning the Engine) and the sinks (store writer, alerts, recorder, metrics,
//! log, the API's live events, and whatever the caller adds), serves the HTTP API, the
//! web page, `/metrics` and `/healthz` on `[api].listen`, reloads the config on
//! SIGHUP and on file change, talks to systemd (READY, WATCHDOG, STOPPING), and on
//! SIGTERM/SIGINT shuts down in order: stop capture, feed what was queued, end the calls
//! in progress with end reason `shutdown`, drop the sinks (recordings are finished),
//! flush and close the store, exit 0.
//!
//! ```text
//! capture-<if> ─┐ try_send (full → counted drop)
//! capture-hep ──┼──────────────▶ [frames, bounded] ──▶ pipeline thread: Driver ──▶ sinks
//! reload, main ─┴── ctl (reload, stop) ─────────────────▶       │ publish every 250 ms
//!                                                               ▼
//!                                   tokio: HTTP (API, page, /metrics, /healthz),
//!                                          signals, watchdog
//! ```
//! May use: capture, driver, sink, settings, reload, metrics, api. Invariants: the pipeline
//! thread is the only reader of the system clock for packet time (`idle`), and it feeds
//! the engine a time `IDLE_MARGIN` behind the clock so frames still on their way (in
//! the kernel buffer or the channel) are not overtaken by a timer; frames are fed in the
//! order they arrive; nothing is fed after `finish`; no frame is taken as later than the
//! wall clock (plus `engine::MAX_AHEAD`).

use crate::api::{self, AppState, EventsSink};
use crate::capture::hep::{HepGate, HepListener};
use crate::capture::live::{FrameTx, OwnedFrame, PcapOptions, PcapSource, SourceStats};
use crate::driver::Driver;
use crate::metrics::{MetricsHandle, Snapshot};
use crate::reload::{ReloadResult, Reloader};
use crate::settings::Settings;
use crate::sink::alerts::{AlertsOptions, AlertsSink};
use crate::sink::recorder;
use crate::sink::Sink;
use crate::store::{self, StoreSink};
use anyhow::Context;
use callwarden_core::track::{CallEvent, EndReason};
use callwarden_core::{Dur, Engine, Output, Ts};
use crossbeam_channel::{select, Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Frames that may wait between the capture threads and the pipeline (~1 s at 50,000
/// packets/s); more and the newest is dropped and counted.
pub const FRAME_QUEUE: usize = 65_536;

/// Timers fire when the clock has passed their due time by this much, so a frame stamped
/// before the due time but still on its way is fed first, as a replay would.
pub const IDLE_MARGIN: Dur = Dur::from_millis(250);

/// How often the pipeline publishes its counters (and proves it is alive).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// How often recordings past their retention are expired while running.
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);

/// How long a full recorder queue may hold up the pipeline before audio is dropped.
const RECORDER_WAIT: Duration = Duration::from_millis(20);

/// Live events buffered for slow SSE clients (a lagging client skips, it never blocks).
const LIVE_EVENTS: usize = 4096;

/// How long the HTTP server may take to finish its requests at shutdown.
const HTTP_GRACE: Duration = Duration::from_secs(2);

/// How long queued webhook alerts may take to go out at shutdown (systemd's stop timeout
/// in dist/callwarden.service leaves room for it).
const ALERTS_GRACE: Duration = Duration::from_secs(3);

/// A hook given the metrics handle at start.
pub type OnMetrics = Box<dyn FnOnce(&MetricsHandle) + Send>;

/// What the caller adds to the built-in pipeline (tests, or a future sink).
#[derive(Default)]
pub struct Extras {
    /// Sinks after the built-in ones (store, alerts, recorder, metrics, log, the API's
    /// live events), in this order.
    pub sinks: Vec<Box<dyn Sink + Send>>,
    /// Called with the metrics handle before anything starts (e.g. for the API's state).
    pub on_metrics: Option<OnMetrics>,
}

/// Messages to the pipeline thread other than frames.
pub enum Ctl {
    Reload(ReloadResult),
    /// The approvals table changed (API, or SIGHUP after `callwarden approve`): re-read it.
    Approvals,
    Stop,
}

/// The system clock as packet time.
pub fn wall_clock() -> Ts {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => Ts(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        Err(_) => Ts::EPOCH,
    }
}

/// What the pipeline thread needs besides the driver.
pub struct PipelineIo {
    pub frames: Receiver<OwnedFrame>,
    pub ctl: Receiver<Ctl>,
    pub metrics: MetricsHandle,
    /// For the store's queue depth.
    pub store: Option<StoreSink>,
    /// The database, to re-read the stored approvals on a config reload.
    pub db: Option<std::path::PathBuf>,
}

/// The pipeline thread's loop: frames and control messages in, timers on idle, counters
/// out every `PUBLISH_EVERY`. Returns the driver after `finish(Shutdown)` when told to stop
/// (or when the control channel is gone).
pub fn run_pipeline(mut driver: Driver, io: PipelineIo, clock: &dyn Fn() -> Ts) -> Driver {
    let mut frames = io.frames;
    let mut reloads = (0u64, 0u64);
    let mut lag = 0i64;
    let mut last_publish = std::time::Instant::now();
    let mut trim = Trim::default();
    loop {
        let now = clock();
        let wait = match driver.engine().poll_timeout() {
            Some(due) => {
                let left = due.saturating_add(IDLE_MARGIN).0.saturating_sub(now.0);
                Duration::from_micros(u64::try_from(left).unwrap_or(0)).min(PUBLISH_EVERY)
            }
            None => PUBLISH_EVERY,
        };
        let mut stop = false;
        select! {
            recv(frames) -> f => match f {
                Ok(f) => {
                    lag = lag.max(now.0.saturating_sub(f.ts.0));
                    feed_live(&mut driver, &f, clock());
                }
                // Every source has gone (or there never was one): only control remains.
                Err(_) => frames = crossbeam_channel::never(),
            },
            recv(io.ctl) -> c => match c {
                Ok(Ctl::Reload(Ok(cfg))) => match driver.engine_mut().set_config(&cfg) {
                    Ok(()) => {
                        reloads.0 += 1;
                        // Approvals added with `callwarden approve` since the start apply
                        // from here on (a read of one small table, on a rare event).
                        if let Some(db) = &io.db {
                            if let Err(e) = store::approvals::load_into(driver.engine_mut(), db) {
                                tracing::error!(error = %e, "cannot reload the stored approvals; keeping the ones loaded");
                            }
                        }
                    }
                    Err(e) => {
                        reloads.1 += 1;
                        tracing::error!(error = %e, "the new config was not applied; keeping the running one");
                    }
                },
                Ok(Ctl::Reload(Err(_))) => reloads.1 += 1,
                Ok(Ctl::Approvals) => {
                    if let Some(db) = &io.db {
                        if let Err(e) = store::approvals::load_into(driver.engine_mut(), db) {
                            tracing::error!(error = %e, "cannot reload the stored approvals; keeping the ones loaded");
                        }
                    }
                }
                Ok(Ctl::Stop) | Err(_) => stop = true,
            },
            default(wait) => driver.idle(clock().saturating_sub(IDLE_MARGIN)),
        }
        if stop {
            // The sources were stopped before `Stop` was sent: whatever they queued is
            // in the channel now, and is fed before the calls are ended.
            while let Ok(f) = frames.try_recv() {
                feed_live(&mut driver, &f, clock());
            }
            break;
        }
        if last_publish.elapsed() >= PUBLISH_EVERY {
            last_publish = std::time::Instant::now();
            publish(&driver, &io.metrics, io.store.as_ref(), frames.len(), lag, reloads);
            lag = 0;
            trim.after(driver.engine().active_calls());
        }
    }
    driver.finish(EndReason::Shutdown);
    publish(&driver, &io.metrics, io.store.as_ref(), 0, lag, reloads);
    driver
}

/// Memory back to the system after a flood: once the calls in progress fall to a quarter
/// of a peak above `TRIM_FROM`, glibc's heap is trimmed (free memory of its arenas is
/// returned; without it the RSS of a 100,000-INVITE flood stayed at its peak after every
/// call had timed out). Measured with scripts/flood-invite.
#[derive(Default)]
struct Trim {
    peak: usize,
}

const TRIM_FROM: usize = 5_000;

impl Trim {
    fn after(&mut self, active: usize) {
        self.peak = self.peak.max(active);
        if self.peak >= TRIM_FROM && active <= self.peak / 4 {
            self.peak = active;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only walks and releases the allocator's free memory; it
            // takes the allocator's own locks and touches no memory we own.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

/// Feed a live frame with the wall clock as its horizon: no frame is believed to come from
/// further ahead than `MAX_AHEAD` past now (a HEP agent's stamp is checked against the
/// frame's, so this bounds both).
fn feed_live(driver: &mut Driver, f: &OwnedFrame, wall: Ts) {
    driver.engine_mut().set_horizon(Some(wall.saturating_add(callwarden_core::engine::MAX_AHEAD)));
    driver.feed(f.as_frame());
}

fn publish(d: &Driver, m: &MetricsHandle, store: Option<&StoreSink>, queue: usize, lag_us: i64, reloads: (u64, u64)) {
    let e = d.engine();
    m.publish(Snapshot {
        counters: e.counters().clone(),
        active_calls: e.active_calls(),
        active_recordings: e.active_recordings(),
        store_queue: store.map_or(0, StoreSink::queue_depth),
        capture_queue: queue,
        lag_seconds: lag_us.max(0) as f64 / 1e6,
        reloads_ok: reloads.0,
        reloads_failed: reloads.1,
        sink_errors: d.sink_errors,
        link: e.track_stats().link,
    });
}

/// Ended calls to the log at debug level (violations are logged by the alerts sink).
pub struct LogSink;

impl Sink for LogSink {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        if let Output::Call(CallEvent::Ended(r)) = out {
            tracing::debug!(
                call_id = %r.call_id,
                caller = %r.caller,
                callee = %r.callee,
                reason = r.end_reason.as_str(),
                talk_ms = r.talk_ms,
                "call ended"
            );
        }
        Ok(())
    }
}

/// The running sources: their threads and the flag that stops them.
struct Sources {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Wakes each libpcap thread out of its poll.
    breakers: Vec<pcap::BreakLoop>,
}

impl Sources {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for b in &self.breakers {
            b.breakloop();
        }
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a capture thread panicked");
            }
        }
    }
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Run the daemon until SIGTERM or SIGINT. `Err` only for what prevents starting (an
/// interface that cannot be opened, a port that cannot be bound, the database) or a
/// failure to store what was captured.
pub fn run(settings: Settings, extras: Extras) -> anyhow::Result<()> {
    let cfg = &settings.config;
    let metrics = MetricsHandle::new();
    if let Some(f) = extras.on_metrics {
        f(&metrics);
    }

    // Open every source first: a wrong interface name or a taken port fails the start
    // with one line, before anything else exists.
    let mut pcaps = Vec::new();
    for iface in &cfg.capture.interfaces {
        pcaps.push(PcapSource::open(PcapOptions {
            interface: iface.clone(),
            bpf: cfg.capture.bpf.clone(),
            snaplen: cfg.capture.snaplen,
            buffer_mib: cfg.capture.buffer_mib,
            batch_ms: cfg.capture.batch_ms,
        })?);
    }
    let hep = match cfg.capture.hep_listen.trim() {
        "" => None,
        addr => Some(HepListener::bind(addr, HepGate::from_config(&cfg.capture))?),
    };
    let mut engine = Engine::new(cfg)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("callwarden-rt")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let http = match cfg.api.listen.trim() {
        "" => None,
        addr => Some({
            // Without tokens the API trusts loopback callers only (see api::auth): refuse
            // a wider listener now, with one line, rather than from the server task.
            if cfg.api.tokens.is_empty() && addr.parse::<std::net::SocketAddr>().is_ok_and(|a| !a.ip().is_loopback()) {
                anyhow::bail!(
                    "[api].listen = {addr:?} is not a loopback address and no [[api.token]] is configured: \
                     without tokens the API is for this machine only; listen on 127.0.0.1 or configure tokens"
                );
            }
            runtime
                .block_on(tokio::net::TcpListener::bind(addr))
                .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {addr}: {e}"))?
        }),
    };

    // The sinks: the same as `replay` (store + alerts), then metrics and the log, then
    // what the caller adds (`Extras::sinks`: the recorder, the API's events) — the one
    // place where sinks are chosen.
    let (store_sink, writer) = store::open(&settings.db_path, &cfg.site.timezone)
        .with_context(|| format!("{}: cannot open the database", settings.db_path.display()))?;
    store::approvals::load_into(&mut engine, &settings.db_path)?;
    let mut alerts = AlertsSink::new(&cfg.alerts.webhooks, &cfg.site.timezone, AlertsOptions::default())?;
    let alerts_closer = alerts.take_closer();
    metrics.set_alert_counters(alerts.counters());
    // The recorder after the store (which created and migrated the database); it repairs
    // what a crash left half-written and expires old files before the first call.
    // Live, a full recorder queue waits briefly and then drops (counted), so a slow disk
    // cannot stall capture; replay waits instead.
    let (rec_sink, recorder, rec_start) = recorder::open(
        &recorder::RecorderConfig::from_settings(&settings),
        recorder::RecorderOptions {
            backpressure: recorder::Backpressure::Drop { wait: RECORDER_WAIT },
            ..recorder::RecorderOptions::default()
        },
        recorder::wall_clock(),
    )
    .with_context(|| format!("{}: cannot open the recordings folder", settings.recordings_dir.display()))?;
    match &rec_start.repair {
        Some(r) => tracing::info!(
            repaired = ?r.repaired,
            missing = ?r.missing,
            empty = r.empty.len(),
            failed = ?r.failed,
            expired = rec_start.expire.expired.len(),
            "recordings folder ready"
        ),
        None => tracing::warn!("another process is recording into the recordings folder; nothing repaired"),
    }

    let (frame_tx, frame_rx) = crossbeam_channel::bounded::<OwnedFrame>(FRAME_QUEUE);
    let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<Ctl>();

    // The API: its live view and SSE are fed by the events sink on the pipeline thread.
    let (events_tx, _) = tokio::sync::broadcast::channel(LIVE_EVENTS);
    let events = EventsSink::new(events_tx.clone(), &cfg.site.timezone);
    let api_state = {
        let (m, h) = (metrics.clone(), metrics.clone());
        let tx = ctl_tx.clone();
        AppState::new(settings.db_path.clone(), &settings)?
            .with_events(events_tx)
            .with_live_calls(events.live_calls_fn())
            .with_metrics(Arc::new(move || m.render()))
            .with_health(Arc::new(move || h.health()))
            .with_approvals_changed(Arc::new(move || {
                let _ = tx.send(Ctl::Approvals);
            }))
    };

    let mut sinks: Vec<Box<dyn Sink + Send>> = vec![
        Box::new(store_sink.clone()),
        Box::new(alerts),
        Box::new(rec_sink),
        Box::new(metrics.sink()),
        Box::new(LogSink),
        Box::new(events),
    ];
    sinks.extend(extras.sinks);
    let driver = Driver::new(engine, sinks);
    let io = PipelineIo {
        frames: frame_rx,
        ctl: ctl_rx,
        metrics: metrics.clone(),
        store: Some(store_sink),
        db: Some(settings.db_path.clone()),
    };
    let pipeline = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || run_pipeline(driver, io, &wall_clock))
        .context("cannot start the pipeline thread")?;

    let sources = start_sources(pcaps, hep, &frame_tx, &metrics)?;
    drop(frame_tx);

    let reloader = settings.config_path.clone().map(|path| {
        let tx = ctl_tx.clone();
        let (api, base) = (api_state.clone(), settings.clone());
        Arc::new(Reloader::new(path, cfg.clone(), move |r| {
            // The API takes the new tokens, zone and limits; its paths stay those the
            // daemon started with (changing them needs a restart, see reload.rs).
            if let Ok(c) = &r {
                let mut s = base.clone();
                s.config = (**c).clone();
                if let Err(e) = api.set_config(&s) {
                    tracing::error!(error = %e, "the API keeps its previous config");
                }
            }
            let _ = tx.send(Ctl::Reload(r));
        }))
    });
    let _watcher = match &reloader {
        Some(r) => match r.watch() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, path = %r.path().display(), "cannot watch the config file; SIGHUP still reloads");
                None
            }
        },
        None => None,
    };

    let (server_stop, server_stopped) = tokio::sync::watch::channel(false);
    let server = http.map(|listener| {
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(listen = %local, "serving /metrics, /healthz, the API and the web page");
        let mut stop = server_stopped.clone();
        let state = api_state.clone();
        runtime.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = api::serve(listener, state, shutdown).await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        })
    });

    let status = format!(
        "capturing on {} interface(s){}",
        cfg.capture.interfaces.len(),
        if cfg.capture.hep_listen.is_empty() { String::new() } else { format!(", HEP on {}", cfg.capture.hep_listen) }
    );
    let watchdog = sd_notify::watchdog_enabled();
    let signal_result = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&status)]);
        tracing::info!(db = %settings.db_path.display(), "{status}; ready");
        // Ping the watchdog at half its period, and only while the pipeline is healthy:
        // a stuck pipeline thread gets the service restarted.
        let period = watchdog.map_or(Duration::from_secs(1), |w| (w / 2).min(Duration::from_secs(1)));
        let mut tick = tokio::time::interval(period);
        let started = std::time::Instant::now();
        // Retention runs at start (recorder::open) and then every EXPIRE_EVERY, so a
        // daemon that runs for months still deletes recordings past their retention.
        let mut expire_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + EXPIRE_EVERY, EXPIRE_EVERY);
        let rec_cfg = recorder::RecorderConfig::from_settings(&settings);
        loop {
            tokio::select! {
                _ = expire_tick.tick() => {
                    let c = rec_cfg.clone();
                    match tokio::task::spawn_blocking(move || recorder::expire(&c, recorder::wall_clock())).await {
                        Ok(Ok(r)) if r.expired.is_empty() && r.failed.is_empty() => {}
                        Ok(Ok(r)) => tracing::info!(expired = r.expired.len(), files_deleted = r.files_deleted, failed = ?r.failed, "recordings past their retention expired"),
                        Ok(Err(e)) => tracing::error!(error = %e, "expiring old recordings failed; will try again"),
                        Err(e) => tracing::error!(error = %e, "expiring old recordings failed; will try again"),
                    }
                }
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                _ = hup.recv() => {
                    // Approvals registered with `callwarden approve` since the start apply
                    // from here on, whether or not the config file changed.
                    let _ = ctl_tx.send(Ctl::Approvals);
                    match &reloader {
                        Some(r) => {
                            let r = Arc::clone(r);
                            let _ = tokio::task::spawn_blocking(move || r.reload("SIGHUP")).await;
                        }
                        None => tracing::warn!("SIGHUP: running on the embedded default config; nothing to reload"),
                    }
                },
                _ = tick.tick() => {
                    if pipeline.is_finished() {
                        anyhow::bail!("the pipeline thread stopped unexpectedly");
                    }
                    if watchdog.is_some() {
                        match metrics.health() {
                            Ok(()) => notify(&[sd_notify::NotifyState::Watchdog]),
                            // The first tick comes before the pipeline's first report: normal
                            // at start, not an error (unless it never reports).
                            Err(why) if !metrics.has_published() && started.elapsed() < crate::metrics::STALL_AFTER => {
                                tracing::debug!(%why, "not pinging the watchdog yet");
                            }
                            Err(why) => tracing::error!(%why, "not pinging the watchdog"),
                        }
                    }
                }
            }
        }
        Ok::<(), anyhow::Error>(())
    });

    // Shutdown, in order. Each step is logged so a slow one can be found in the journal.
    notify(&[sd_notify::NotifyState::Stopping]);
    drop(_watcher);
    sources.stop();
    let _ = ctl_tx.send(Ctl::Stop);
    let driver = pipeline.join().map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?;
    let counters = driver.engine().counters().clone();
    let sink_errors = driver.sink_errors;
    // Dropping the driver drops the sinks; then the recorder finishes its files (hashes,
    // rows) and the store writer flushes.
    drop(driver);
    let recorded = recorder.close().with_context(|| format!("{}: recording failed", settings.recordings_dir.display()));
    let written = writer.close().with_context(|| format!("{}: storing calls failed", settings.db_path.display()));
    // Alerts raised by the calls ended at shutdown get a short chance to go out.
    let alert_stats = alerts_closer.map(|c| c.close(ALERTS_GRACE)).unwrap_or_default();
    let _ = server_stop.send(true);
    if let Some(s) = server {
        let _ = runtime.block_on(async { tokio::time::timeout(HTTP_GRACE, s).await });
    }
    runtime.shutdown_timeout(HTTP_GRACE);
    let written = written?;
    let recorded = recorded?;
    tracing::info!(
        frames = counters.frames,
        calls = counters.calls_ended,
        stored = written.calls,
        violations = written.violations,
        recordings = recorded.completed,
        recording_frames_silenced_by_overload = recorded.frames_filled,
        alerts_delivered = alert_stats.delivered,
        alerts_failed = alert_stats.failed + alert_stats.dropped,
        sink_errors,
        "stopped"
    );
    signal_result
}

fn start_sources(
    pcaps: Vec<PcapSource>,
    hep: Option<HepListener>,
    tx: &Sender<OwnedFrame>,
    metrics: &MetricsHandle,
) -> anyhow::Result<Sources> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut breakers = Vec::new();
    for mut p in pcaps {
        breakers.push(p.breaker());
        let stats = Arc::new(SourceStats::new(p.name(), true));
        metrics.add_source(stats.clone());
        threads.push(p.spawn(FrameTx::new(tx.clone(), stats), stop.clone()).context("cannot start a capture thread")?);
    }
    if let Some(h) = hep {
        let stats = Arc::new(SourceStats::new(h.name(), false));
        metrics.add_source(stats.clone());
        threads.push(h.spawn(FrameTx::new(tx.clone(), stats), stop.clone()).context("cannot start the HEP thread")?);
    }
    Ok(Sources { stop, threads, breakers })
}
