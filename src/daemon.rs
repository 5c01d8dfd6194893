//! `callwarden run`: the daemon, told in the order it happens (`run`): open the sources
//! (a wrong interface or a taken port fails the start with one line, before anything else
//! exists), bind the HTTP listener, open the pipeline (`pipeline::Pipeline`, the same one
//! `replay` uses, plus the live-only sinks: metrics, log, the API's live events), start the
//! pipeline thread and the sources, serve (the API, the web page, `/metrics`, `/healthz`)
//! until SIGTERM/SIGINT — reloading the config on SIGHUP and on file change, pinging
//! systemd's watchdog while the pipeline is healthy, expiring old recordings hourly — then
//! stop in order: capture, the pipeline (what was queued is fed, calls in progress end
//! `shutdown`), the sinks (`Closer`: recordings finished, the store flushed, alerts given
//! their grace), the HTTP server. Exit 0. `serve` is the same HTTP server without
//! capture, over the database as it is (`callwarden serve`).
//!
//! ```text
//! capture-<if> ─┐ try_send (full → counted drop)
//! capture-hep ──┼──────────────▶ [frames, bounded] ──▶ pipeline thread: Driver ──▶ sinks
//! reload, main ─┴── ctl (reload, approvals, stop) ──────▶       │ publish every 250 ms
//!                                                               ▼
//!                                   tokio: HTTP (API, page, /metrics, /healthz),
//!                                          signals, watchdog
//! ```
//! May use: capture, pipeline, sink, settings, reload, metrics, api. Invariant: every
//! thread and task it starts is stopped by it, in the order above, before `run` returns.

use crate::api::{self, AppState, EventsSink};
use crate::capture::hep::{HepGate, HepListener};
use crate::capture::live::{FrameTx, OwnedFrame, PcapOptions, PcapSource, SourceStats};
use crate::metrics::MetricsHandle;
use crate::pipeline::live::{self, Ctl, LiveIo, FRAME_QUEUE};
use crate::pipeline::{Closed, Driver, Mode, Pipeline};
use crate::reload::Reloader;
use crate::settings::Settings;
use crate::sink::log::LogSink;
use crate::sink::recorder;
use crate::store::central::read::CentralReader;
use crate::store::reader::{open_error, Reader};
use anyhow::Context;
use callwarden_core::config::Config;
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often recordings past their retention are expired while running.
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);

/// Live events buffered for slow SSE clients (a lagging client skips, it never blocks).
const LIVE_EVENTS: usize = 4096;

/// How long the HTTP server may take to finish its requests at shutdown.
const HTTP_GRACE: Duration = Duration::from_secs(2);

/// How long queued webhook alerts may take to go out at shutdown (systemd's stop timeout
/// in dist/callwarden.service leaves room for it).
const ALERTS_GRACE: Duration = Duration::from_secs(3);

/// Run the daemon until SIGTERM or SIGINT. `Err` only for what prevents starting (an
/// interface that cannot be opened, a port that cannot be bound, the database) or a
/// failure to store what was captured.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    let cfg = &settings.config;
    // First: the thresholds are process-wide and hold for every allocation after.
    live::fix_malloc_thresholds();
    let metrics = MetricsHandle::new();
    let sources = Sources::open(cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("callwarden-rt")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let listener = bind_http(&runtime, cfg)?;

    let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<Ctl>();
    let (events_tx, _) = tokio::sync::broadcast::channel(LIVE_EVENTS);
    let events = EventsSink::new(events_tx.clone(), &cfg.site.timezone);
    let api_state = api_state(&settings, &metrics, &ctl_tx, events_tx, &events)?;
    let pipeline =
        Pipeline::open(&settings, Mode::Live, vec![Box::new(metrics.sink()), Box::new(LogSink), Box::new(events)])?;
    metrics.set_alert_counters(pipeline.alert_counters.clone());
    if let Some(f) = &pipeline.forward {
        metrics.set_forward_status(f.clone());
    }
    log_recordings_start(&pipeline.recordings_start);

    let (frame_tx, frame_rx) = crossbeam_channel::bounded::<OwnedFrame>(FRAME_QUEUE);
    let io = LiveIo {
        frames: frame_rx,
        ctl: ctl_rx,
        metrics: metrics.clone(),
        store: Some(pipeline.store),
        db: Some(settings.db_path.clone()),
        forward: pipeline.forward.clone(),
    };
    let driver = pipeline.driver;
    let thread = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || live::run(driver, io, &live::wall_clock))
        .context("cannot start the pipeline thread")?;
    let running = sources.start(&frame_tx, &metrics)?;
    drop(frame_tx);

    let reloader = reloader(&settings, &api_state, &ctl_tx);
    let watcher = reloader.as_ref().and_then(|r| match r.watch() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, path = %r.path().display(), "cannot watch the config file; SIGHUP still reloads");
            None
        }
    });
    let server = Server::start(&runtime, listener, api_state);
    let served = runtime.block_on(serve_until_signal(&settings, &metrics, &thread, &ctl_tx, reloader.as_ref()));

    // Shutdown, in order. Each step is logged so a slow one can be found in the journal.
    notify(&[sd_notify::NotifyState::Stopping]);
    drop(watcher);
    running.stop();
    let _ = ctl_tx.send(Ctl::Stop);
    let driver = thread.join().map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?;
    let ended = Ended::of(&driver);
    let closed = pipeline.closer.close(driver, ALERTS_GRACE);
    server.stop(&runtime);
    runtime.shutdown_timeout(HTTP_GRACE);
    ended.log(&closed?);
    served
}

/// Bind `[api].listen` (none when empty). Without tokens the API trusts loopback callers
/// only (see api::auth): a wider listener is refused now, with one line, rather than from
/// the server task.
fn bind_http(runtime: &tokio::runtime::Runtime, cfg: &Config) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let addr = cfg.api.listen.trim();
    if addr.is_empty() {
        return Ok(None);
    }
    if cfg.api.tokens.is_empty() && addr.parse::<std::net::SocketAddr>().is_ok_and(|a| !a.ip().is_loopback()) {
        anyhow::bail!(
            "[api].listen = {addr:?} is not a loopback address and no [[api.token]] is configured: \
             without tokens the API is for this machine only; listen on 127.0.0.1 or configure tokens"
        );
    }
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {addr}: {e}"))?;
    Ok(Some(listener))
}

/// The API's state: the database, its live view and SSE (fed by the events sink on the
/// pipeline thread), `/metrics` and `/healthz`, and a way to tell the pipeline that the
/// approvals changed.
fn api_state(
    settings: &Settings,
    metrics: &MetricsHandle,
    ctl: &Sender<Ctl>,
    events_tx: tokio::sync::broadcast::Sender<api::LiveEvent>,
    events: &EventsSink,
) -> anyhow::Result<AppState> {
    let (m, h, c) = (metrics.clone(), metrics.clone(), metrics.clone());
    let tx = ctl.clone();
    Ok(AppState::new(settings.db_path.clone(), settings)?
        .with_events(events_tx)
        .with_live_calls(events.live_calls_fn())
        .with_metrics(Arc::new(move || m.render()))
        .with_health(Arc::new(move || h.health()))
        .with_central(Arc::new(move || c.forward_json()))
        .with_approvals_changed(Arc::new(move || {
            let _ = tx.send(Ctl::Approvals);
        })))
}

fn log_recordings_start(start: &recorder::StartReport) {
    match &start.repair {
        Some(r) => tracing::info!(
            repaired = ?r.repaired,
            missing = ?r.missing,
            empty = r.empty.len(),
            failed = ?r.failed,
            expired = start.expire.expired.len(),
            "recordings folder ready"
        ),
        None => tracing::warn!("another process is recording into the recordings folder; nothing repaired"),
    }
}

/// The config file's reloader (none on the embedded default): the API takes the new
/// tokens, zone and limits at once; the pipeline gets the result through `Ctl::Reload`.
fn reloader(settings: &Settings, api: &AppState, ctl: &Sender<Ctl>) -> Option<Arc<Reloader>> {
    let path = settings.config_path.clone()?;
    let tx = ctl.clone();
    let (api, base) = (api.clone(), settings.clone());
    Some(Arc::new(Reloader::new(path, settings.config.clone(), move |r| {
        // The API's paths stay those the daemon started with (changing them needs a
        // restart, see reload.rs).
        if let Ok(c) = &r {
            let mut s = base.clone();
            s.config = (**c).clone();
            if let Err(e) = api.set_config(&s) {
                tracing::error!(error = %e, "the API keeps its previous config");
            }
        }
        let _ = tx.send(Ctl::Reload(r));
    })))
}

/// Wait for SIGTERM or SIGINT. Meanwhile: SIGHUP reloads the config (and re-reads the
/// stored approvals), the watchdog is pinged at half its period while the pipeline is
/// healthy (a stuck pipeline gets the service restarted), recordings past their
/// retention are expired every `EXPIRE_EVERY`, and a pipeline thread that stopped on its
/// own ends the daemon with an error.
async fn serve_until_signal(
    settings: &Settings,
    metrics: &MetricsHandle,
    pipeline: &JoinHandle<Driver>,
    ctl: &Sender<Ctl>,
    reloader: Option<&Arc<Reloader>>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let cfg = &settings.config;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let status = format!(
        "capturing on {} interface(s){}",
        cfg.capture.interfaces.len(),
        if cfg.capture.hep_listen.is_empty() { String::new() } else { format!(", HEP on {}", cfg.capture.hep_listen) }
    );
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&status)]);
    tracing::info!(db = %settings.db_path.display(), "{status}; ready");
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(Duration::from_secs(1), |w| (w / 2).min(Duration::from_secs(1)));
    let mut tick = tokio::time::interval(period);
    let started = std::time::Instant::now();
    // Retention runs at start (recorder::open) and then every EXPIRE_EVERY, so a daemon
    // that runs for months still deletes recordings past their retention.
    let mut expire_tick = tokio::time::interval_at(tokio::time::Instant::now() + EXPIRE_EVERY, EXPIRE_EVERY);
    let rec_cfg = recorder::RecorderConfig::from_settings(settings);
    loop {
        tokio::select! {
            _ = expire_tick.tick() => expire(&rec_cfg).await,
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); return Ok(()); }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); return Ok(()); }
            _ = hup.recv() => {
                // Approvals registered with `callwarden approve` since the start apply from
                // here on, whether or not the config file changed.
                let _ = ctl.send(Ctl::Approvals);
                match reloader {
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
}

/// Expire the recordings past their retention, off the async threads.
async fn expire(cfg: &recorder::RecorderConfig) {
    let c = cfg.clone();
    match tokio::task::spawn_blocking(move || recorder::expire(&c, recorder::wall_clock())).await {
        Ok(Ok(r)) if r.expired.is_empty() && r.failed.is_empty() => {}
        Ok(Ok(r)) => tracing::info!(
            expired = r.expired.len(),
            files_deleted = r.files_deleted,
            failed = ?r.failed,
            "recordings past their retention expired"
        ),
        Ok(Err(e)) => tracing::error!(error = %e, "expiring old recordings failed; will try again"),
        Err(e) => tracing::error!(error = %e, "expiring old recordings failed; will try again"),
    }
}

/// The HTTP server task and what stops it.
struct Server {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    fn start(runtime: &tokio::runtime::Runtime, listener: Option<tokio::net::TcpListener>, state: AppState) -> Server {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = listener.map(|listener| {
            let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(listen = %local, "serving /metrics, /healthz, the API and the web page");
            let mut stopped = stopped.clone();
            runtime.spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = api::serve(listener, state, shutdown).await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            })
        });
        Server { stop, task }
    }

    /// Let requests in progress finish, for `HTTP_GRACE` at most.
    fn stop(self, runtime: &tokio::runtime::Runtime) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task {
            let _ = runtime.block_on(async { tokio::time::timeout(HTTP_GRACE, t).await });
        }
    }
}

/// The sources, opened and not yet started.
struct Sources {
    pcaps: Vec<PcapSource>,
    hep: Option<HepListener>,
}

/// The running sources: their threads and the flag that stops them.
struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Wakes each libpcap thread out of its poll.
    breakers: Vec<pcap::BreakLoop>,
}

impl Sources {
    fn open(cfg: &Config) -> anyhow::Result<Sources> {
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
        Ok(Sources { pcaps, hep })
    }

    /// A thread per source, each sending frames to `tx` and counting into `metrics`.
    fn start(self, tx: &Sender<OwnedFrame>, metrics: &MetricsHandle) -> anyhow::Result<Running> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut breakers = Vec::new();
        for mut p in self.pcaps {
            breakers.push(p.breaker());
            let stats = Arc::new(SourceStats::new(p.name(), true));
            metrics.add_source(stats.clone());
            threads
                .push(p.spawn(FrameTx::new(tx.clone(), stats), stop.clone()).context("cannot start a capture thread")?);
        }
        if let Some(h) = self.hep {
            let stats = Arc::new(SourceStats::new(h.name(), false));
            metrics.add_source(stats.clone());
            threads
                .push(h.spawn(FrameTx::new(tx.clone(), stats), stop.clone()).context("cannot start the HEP thread")?);
        }
        Ok(Running { stop, threads, breakers })
    }
}

impl Running {
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

/// What the engine saw, taken from the driver before it is closed, for the last log line.
struct Ended {
    counters: callwarden_core::Counters,
    sink_errors: u64,
}

impl Ended {
    fn of(driver: &Driver) -> Ended {
        Ended { counters: driver.engine().counters().clone(), sink_errors: driver.sink_errors }
    }

    fn log(&self, closed: &Closed) {
        let (c, w, r, a) = (&self.counters, &closed.written, &closed.recorded, &closed.alerts);
        tracing::info!(
            frames = c.frames,
            calls = c.calls_ended,
            stored = w.calls,
            violations = w.violations,
            recordings = r.completed,
            recording_frames_silenced_by_overload = r.frames_filled,
            alerts_delivered = a.delivered,
            alerts_failed = a.failed + a.dropped,
            sink_errors = self.sink_errors,
            "stopped"
        );
    }
}

/// `callwarden serve`: the API and the web page over the database, without capture,
/// until Ctrl-C or SIGTERM. Nothing is captured, so the live view is empty; the API writes
/// only the playback log (every audio fetch) and, for admins, approvals.
/// With `--store postgres://...` (`settings.read_store`) it serves the central store of
/// all sites instead (its read replica `[store] central_read` when the URL is `central`'s),
/// read only: the schema is checked (a newer one is refused) and never migrated.
pub fn serve(settings: Settings, listen: &str) -> anyhow::Result<()> {
    // Fail now, with the file's name, rather than on every request.
    let (state, shown) = match &settings.read_store {
        Some(url) => {
            let tz = &settings.config.site.timezone;
            let reader = CentralReader::for_store(url, &settings.config.store, &settings.base_dir, tz)
                .map_err(|e| anyhow::anyhow!("--store: cannot read the central store: {e:#}"))?;
            let shown = match reader.primary_shown() {
                Some(primary) => format!("{} (read replica; playback log to {primary})", reader.shown()),
                None => reader.shown().to_string(),
            };
            (AppState::central(reader, &settings)?, shown)
        }
        None => {
            Reader::open(&settings.db_path).map_err(|e| open_error(&settings.db_path, e))?;
            (AppState::new(settings.db_path.clone(), &settings)?, settings.db_path.display().to_string())
        }
    };
    if settings.config.api.tokens.is_empty() && listen_is_loopback(listen) {
        eprintln!(
            "callwarden: no [[api.token]] in the config: local mode, the API and page answer only clients on this \
             machine (loopback), as admin \"local\""
        );
    }
    // The central store's pool closes its (sync) connections when its last handle drops,
    // which must not happen on the runtime's threads: this one is dropped after it.
    let central_pool = state.central_reader().cloned();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let served = rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        // `api::serve` refuses this too; saying it before "serving" keeps the output honest.
        if settings.config.api.tokens.is_empty() && !addr.ip().is_loopback() {
            anyhow::bail!("no [[api.token]] in the config: refusing to listen on {addr}; use a loopback address or configure tokens");
        }
        eprintln!("callwarden: serving {shown} on http://{addr}/");
        api::serve(listener, state, shutdown_signal()).await
    });
    drop(rt);
    drop(central_pool);
    served
}

/// Ctrl-C, or SIGTERM on Unix (what systemd and `kill` send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Whether `listen` (as given) names a loopback address: only to choose what to say;
/// the bound address is what is checked.
fn listen_is_loopback(listen: &str) -> bool {
    listen.parse::<std::net::SocketAddr>().map_or(listen.starts_with("localhost:"), |a| a.ip().is_loopback())
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
