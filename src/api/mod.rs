//! The HTTP API and the web page (issue 7): an axum router over the store, mounted by
//! `callwarden run` (with live events, metrics and the calls in progress) and by
//! `callwarden serve` (over an existing database, no capture).
//!
//! Owns: routing (`router`), access (`auth`: bearer tokens or the page's cookie, roles),
//! one file per resource (`calls`, `stats`, `violations`, `register`, `callbacks`, `recordings`,
//! `playback`, `approvals`, `policy_check`), live events (`events`: the `EventsSink` and SSE),
//! CSV (`csv_out`), the OpenAPI document (`openapi`) and the embedded page (`web`).
//! May use: the store's reader and query types, core's policy and config, tokio/axum.
//! Over the central store (`serve --store postgres://...`, `AppState::central`) the same
//! routes read every site's rows through `CentralReader`; a recording's audio is fetched
//! from its site and checked (`site_audio`); what writes (approvals, the playback log)
//! and what needs a site's files otherwise (samples) answer 501; audio and peaks are asked of the site.
//! Invariants: every blocking SQLite call runs on `spawn_blocking` with a reader of its
//! own (a small pool, WAL lets them read while the writer commits); no path from a
//! request reaches the file system except a recording's path read from the database,
//! canonicalised and checked to be inside the recordings folder; every audio fetch is in
//! the playback log before a byte is sent (if it cannot be logged it is not served);
//! errors are JSON `{"error": "..."}` with a 4xx/5xx status, never a panic.

mod approvals;
mod auth;
mod callbacks;
mod calls;
mod csv_out;
mod events;
pub mod limits;
mod openapi;
mod params;
mod playback;
mod policy_check;
mod recordings;
mod register;
pub mod site_audio;
mod stats;
mod violations;
mod web;

pub use auth::Principal;
pub use events::{EventsSink, LiveCall, LiveEvent, LiveViolation};

use crate::settings::Settings;
use crate::store::central::read::CentralReader;
use crate::store::{QueryError, Reader, Store};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use callwarden_core::config::{Config, Token};
use rusqlite::{Connection, OpenFlags};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Prometheus text of the daemon, for `/metrics`.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;
/// The daemon's health for `/healthz`: `Err(why)` answers 503 with the reason.
pub type HealthFn = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;
/// The calls in progress now, for `/api/live` and the page's live view.
pub type LiveCallsFn = Arc<dyn Fn() -> Vec<LiveCall> + Send + Sync>;
/// The forwarder's status (`/api/central`); `None`: no central store configured.
pub type CentralFn = Arc<dyn Fn() -> Option<serde_json::Value> + Send + Sync>;
/// Called after an approval was added or revoked, so the daemon can give the engine's
/// policy the stored approvals again.
pub type ApprovalsChangedFn = Arc<dyn Fn() + Send + Sync>;

/// Readers kept open between requests; more may be open at once, these are kept.
const POOL_KEEP: usize = 4;

/// What the API needs of the config; replaced whole on a reload.
pub(crate) struct ApiConfig {
    pub config: Config,
    pub tokens: Vec<Token>,
    pub tz: jiff::tz::TimeZone,
    pub recordings_dir: PathBuf,
    /// The sites whose recordings a central `serve` fetches (`[[api.site]]`).
    pub site_audio: site_audio::SiteAudio,
}

/// A reader of the store (asked through the `Store` interface) and a plain read-only
/// connection (for the approvals' queries, which take a connection; none over the
/// central store, which keeps no approvals).
pub(crate) struct Db {
    pub reader: Box<dyn Store>,
    pub conn: Option<Connection>,
}

impl Db {
    /// The SQLite connection, or 501 over the central store.
    pub fn sqlite(&self) -> Result<&Connection, ApiError> {
        self.conn.as_ref().ok_or_else(not_at_central)
    }
}

/// What the central view cannot do: it reads; writes and audio stay at the sites.
pub(crate) fn not_at_central() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not over the central store: approvals, the playback log and samples are at each site's own API (a recording's audio and peaks are fetched from its site: [[api.site]])",
    )
}

struct Inner {
    db_path: PathBuf,
    /// Set for `serve --store postgres://...`: every read goes to the central store.
    central_store: Option<CentralReader>,
    config: RwLock<Arc<ApiConfig>>,
    pool: Mutex<Vec<Db>>,
    /// One read-write connection, opened on first use, for the playback log and approvals.
    writer: Mutex<Option<Connection>>,
    events: Option<broadcast::Sender<LiveEvent>>,
    metrics: Option<MetricsFn>,
    health: Option<HealthFn>,
    live_calls: Option<LiveCallsFn>,
    central: Option<CentralFn>,
    approvals_changed: Option<ApprovalsChangedFn>,
    playback: Mutex<playback::Dedup>,
    /// `/api/stats` answers, valid while the database's `PRAGMA data_version` (read on
    /// `version_conn`, a connection of its own) is unchanged: a month of a large database
    /// takes a while to aggregate, and under `serve` (or between the daemon's commits) the
    /// same question gets the same answer.
    stats_cache: Mutex<stats::Cache>,
    version_conn: Mutex<Option<Connection>>,
    /// Set when `serve` is told to stop: long-lived responses (SSE) end so the graceful
    /// shutdown does not wait for them.
    shutdown: watch::Sender<bool>,
    requests: [AtomicU64; 5],
    sse: limits::SseCount,
    logins: limits::LoginLimiter,
    /// Connections closed at accept because `limits::MAX_CONNECTIONS` were open.
    refused_connections: Arc<AtomicU64>,
}

/// Everything a handler needs; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl AppState {
    /// The API over the database at `db_path`, with the tokens, zone, policy and
    /// recordings folder of `settings`. The database is opened on the first request (the
    /// daemon creates it; `serve` checks it exists before it listens).
    pub fn new(db_path: impl Into<PathBuf>, settings: &Settings) -> anyhow::Result<AppState> {
        let cfg = api_config(settings)?;
        let (shutdown, _) = watch::channel(false);
        Ok(AppState {
            inner: Arc::new(Inner {
                db_path: db_path.into(),
                central_store: None,
                config: RwLock::new(Arc::new(cfg)),
                pool: Mutex::new(Vec::new()),
                writer: Mutex::new(None),
                events: None,
                metrics: None,
                health: None,
                live_calls: None,
                central: None,
                approvals_changed: None,
                playback: Mutex::new(playback::Dedup::default()),
                stats_cache: Mutex::new(stats::Cache::default()),
                version_conn: Mutex::new(None),
                shutdown,
                requests: Default::default(),
                sse: limits::SseCount::default(),
                logins: limits::LoginLimiter::default(),
                refused_connections: Arc::new(AtomicU64::new(0)),
            }),
        })
    }

    /// The API over the central store (read only), with the tokens, zone and policy of
    /// `settings`.
    pub fn central(reader: CentralReader, settings: &Settings) -> anyhow::Result<AppState> {
        Ok(AppState::new(PathBuf::new(), settings)?.map_inner(|i| i.central_store = Some(reader)))
    }

    /// Serving the central store (no SQLite file behind).
    pub(crate) fn central_reader(&self) -> Option<&CentralReader> {
        self.inner.central_store.as_ref()
    }

    fn map_inner(mut self, f: impl FnOnce(&mut Inner)) -> AppState {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            // Hooks are set while building, before the state is cloned into a router.
            None => tracing::error!("AppState hook set after the state was shared; ignored"),
        }
        self
    }

    /// Live calls and violations for `/api/events` (SSE) and the page's live view.
    pub fn with_events(self, tx: broadcast::Sender<LiveEvent>) -> AppState {
        self.map_inner(|i| i.events = Some(tx))
    }

    /// Prometheus text for `/metrics` (the API adds its own request counters).
    pub fn with_metrics(self, f: MetricsFn) -> AppState {
        self.map_inner(|i| i.metrics = Some(f))
    }

    /// The daemon's health for `/healthz` (without it `/healthz` only says the server is up).
    pub fn with_health(self, f: HealthFn) -> AppState {
        self.map_inner(|i| i.health = Some(f))
    }

    /// The calls in progress, for `/api/live`.
    pub fn with_live_calls(self, f: LiveCallsFn) -> AppState {
        self.map_inner(|i| i.live_calls = Some(f))
    }

    /// The forwarder's status, for `/api/central` and the page.
    pub fn with_central(self, f: CentralFn) -> AppState {
        self.map_inner(|i| i.central = Some(f))
    }

    /// Told after `POST /api/approvals` or a revocation changed the approvals table.
    pub fn with_approvals_changed(self, f: ApprovalsChangedFn) -> AppState {
        self.map_inner(|i| i.approvals_changed = Some(f))
    }

    /// Take a reloaded config (tokens, zone, limits, policy, recordings folder). On error
    /// the old one stays.
    pub fn set_config(&self, settings: &Settings) -> anyhow::Result<()> {
        let cfg = api_config(settings)?;
        if let Ok(mut c) = self.inner.config.write() {
            *c = Arc::new(cfg);
        }
        // Readers show times in the zone they were opened with.
        if let Ok(mut pool) = self.inner.pool.lock() {
            pool.clear();
        }
        // Stats depend on the config's limits.
        if let Ok(mut c) = self.inner.stats_cache.lock() {
            *c = stats::Cache::default();
        }
        Ok(())
    }

    pub fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    pub(crate) fn config(&self) -> Arc<ApiConfig> {
        match self.inner.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub(crate) fn events(&self) -> Option<&broadcast::Sender<LiveEvent>> {
        self.inner.events.as_ref()
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Open a reader (or take a pooled one) and run `f` on a blocking thread.
    pub(crate) async fn with_db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Db, &ApiConfig) -> Result<T, ApiError> + Send + 'static,
    {
        let state = self.clone();
        let cfg = self.config();
        tokio::task::spawn_blocking(move || {
            let db = match state.inner.pool.lock().ok().and_then(|mut p| p.pop()) {
                Some(db) => db,
                None => match &state.inner.central_store {
                    Some(c) => Db {
                        reader: Box::new(c.with_timezone(&cfg.config.site.timezone).map_err(ApiError::any)?),
                        conn: None,
                    },
                    None => open_db(&state.inner.db_path, &cfg)?,
                },
            };
            let out = f(&db, &cfg);
            if let Ok(mut pool) = state.inner.pool.lock() {
                if pool.len() < POOL_KEEP {
                    pool.push(db);
                }
            }
            out
        })
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?
    }

    /// Run `f` with the read-write connection on a blocking thread.
    pub(crate) async fn with_writer<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ApiError> + Send + 'static,
    {
        if self.inner.central_store.is_some() {
            return Err(not_at_central());
        }
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = state.inner.writer.lock().map_err(|_| ApiError::internal("writer lock poisoned"))?;
            if guard.is_none() {
                let conn = Connection::open_with_flags(
                    &state.inner.db_path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| ApiError::unavailable(format!("cannot open the database for writing: {e}")))?;
                conn.busy_timeout(Duration::from_secs(5)).map_err(ApiError::db)?;
                *guard = Some(conn);
            }
            match guard.as_mut() {
                Some(conn) => f(conn),
                None => Err(ApiError::internal("no writer connection")),
            }
        })
        .await
        .map_err(|e| ApiError::internal(format!("write task failed: {e}")))?
    }

    /// The database's change counter as seen by a connection of the API's own: differs
    /// after any other connection (the daemon's writer, the API's) committed. Blocking.
    /// None over the central store: the sites write there without telling, so nothing
    /// is cached.
    pub(crate) fn data_version(&self) -> Result<Option<i64>, ApiError> {
        if self.inner.central_store.is_some() {
            return Ok(None);
        }
        let mut guard = self.inner.version_conn.lock().map_err(|_| ApiError::internal("version lock poisoned"))?;
        if guard.is_none() {
            let conn = Connection::open_with_flags(
                &self.inner.db_path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| ApiError::unavailable(format!("cannot read the database: {e}")))?;
            *guard = Some(conn);
        }
        match guard.as_ref() {
            Some(c) => Ok(Some(c.query_row("PRAGMA data_version", [], |r| r.get(0))?)),
            None => Err(ApiError::internal("no version connection")),
        }
    }

    /// The store's changes after change `after` (`store::changes`), read on the version
    /// connection that `data_version` opened: what the stats cache must forget.
    pub(crate) fn stats_changes(&self, after: Option<i64>) -> Result<crate::store::changes::Since, ApiError> {
        let guard = self.inner.version_conn.lock().map_err(|_| ApiError::internal("version lock poisoned"))?;
        match guard.as_ref() {
            Some(c) => Ok(crate::store::changes::since(c, after)?),
            None => Ok(crate::store::changes::Since::Unknown { last: None }),
        }
    }

    pub(crate) fn stats_cache(&self) -> &Mutex<stats::Cache> {
        &self.inner.stats_cache
    }

    pub(crate) fn approvals_changed(&self) {
        if let Some(f) = &self.inner.approvals_changed {
            f();
        }
    }

    pub(crate) fn sse_slot(&self) -> Option<limits::SseSlot> {
        self.inner.sse.take(limits::MAX_SSE)
    }

    pub(crate) fn logins(&self) -> &limits::LoginLimiter {
        &self.inner.logins
    }

    pub(crate) fn live_calls(&self) -> Option<Vec<LiveCall>> {
        self.inner.live_calls.as_ref().map(|f| f())
    }

    pub(crate) fn playback_dedup(&self) -> &Mutex<playback::Dedup> {
        &self.inner.playback
    }

    fn count(&self, status: StatusCode) {
        let i = usize::from(status.as_u16() / 100).saturating_sub(1).min(4);
        if let Some(c) = self.inner.requests.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn api_config(settings: &Settings) -> anyhow::Result<ApiConfig> {
    let config = settings.config.clone();
    let tz = jiff::tz::TimeZone::get(&config.site.timezone)
        .map_err(|e| anyhow::anyhow!("site.timezone {:?}: {e}", config.site.timezone))?;
    let mut names = std::collections::HashSet::new();
    for t in &config.api.tokens {
        if t.token.trim().is_empty() {
            anyhow::bail!("api.token {:?}: the token is empty", t.name);
        }
        if !names.insert(t.name.as_str()) {
            anyhow::bail!("api.token: the name {:?} is used twice (the playback log names tokens)", t.name);
        }
    }
    Ok(ApiConfig {
        tokens: config.api.tokens.clone(),
        tz,
        recordings_dir: settings.recordings_dir.clone(),
        site_audio: site_audio::SiteAudio::new(&config.api.sites, &settings.base_dir),
        config,
    })
}

fn open_db(path: &Path, cfg: &ApiConfig) -> Result<Db, ApiError> {
    let reader = Reader::open(path)
        .and_then(|r| r.with_timezone(&cfg.config.site.timezone))
        .map(|r| r.with_site(&cfg.config.site.name))
        .map_err(|e| ApiError::unavailable(format!("{}: cannot read the database: {e:#}", path.display())))?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| ApiError::unavailable(format!("{}: cannot read the database: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(ApiError::db)?;
    Ok(Db { reader: Box::new(reader), conn: Some(conn) })
}

/// An error answer: a status and one line saying what was wrong.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

/// A report's error: the database's is a server error, any other a bad request.
impl From<crate::report::ReportError> for ApiError {
    fn from(e: crate::report::ReportError) -> ApiError {
        match e {
            crate::report::ReportError::Db(e) => ApiError::any(e),
            e => ApiError::bad_request(e.to_string()),
        }
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    pub fn db(e: rusqlite::Error) -> ApiError {
        ApiError::internal(format!("database: {e}"))
    }
    pub fn any(e: anyhow::Error) -> ApiError {
        ApiError::internal(format!("{e:#}"))
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        ApiError::db(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), error = %self.message, "api error");
        }
        (self.status, axum::Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// The whole API and page. Routes by role (see `auth`): open (`/`, assets, `/healthz`,
/// `/api/openapi.json`, login/logout), `/metrics` (loopback or any token), supervisor,
/// auditor, admin.
pub fn router(state: AppState) -> Router {
    use auth::{require, Need};
    use axum::middleware::{from_fn, from_fn_with_state};
    let supervisor = Router::new()
        .route("/api/calls", get(calls::list))
        .route("/api/calls/{id}", get(calls::detail))
        .route("/api/stats", get(stats::get_stats))
        .route("/api/sites", get(sites))
        .route("/api/violations", get(violations::list))
        .route("/api/register", get(register::get_register))
        .route("/api/callbacks", get(callbacks::get_callbacks))
        .route("/api/policy/check", get(policy_check::check))
        .route("/api/events", get(events::sse))
        .route("/api/live", get(events::live))
        .route("/api/central", get(central_status))
        .route_layer(from_fn_with_state(
            (state.clone(), Need::Role(callwarden_core::config::Role::Supervisor)),
            require,
        ));
    let auditor = Router::new()
        .route("/api/recordings", get(recordings::list))
        .route("/api/recordings/sample", get(recordings::sample))
        .route("/api/recordings/{id}", get(recordings::detail))
        .route("/api/recordings/{id}/audio", get(recordings::audio))
        .route("/api/recordings/{id}/peaks", get(recordings::peaks))
        .route("/api/playback-log", get(playback::list))
        .route_layer(from_fn_with_state((state.clone(), Need::Role(callwarden_core::config::Role::Auditor)), require));
    let admin = Router::new()
        .route("/api/approvals", get(approvals::list).post(approvals::create))
        .route("/api/approvals/{id}/revoke", post(approvals::revoke))
        .route_layer(from_fn_with_state((state.clone(), Need::Role(callwarden_core::config::Role::Admin)), require));
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(from_fn_with_state((state.clone(), Need::LoopbackOrToken), require));
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .route("/healthz", get(healthz))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/whoami", get(auth::whoami))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .merge(supervisor)
        .merge(auditor)
        .merge(admin)
        .merge(metrics)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(limits::MAX_BODY))
        .layer(from_fn_with_state(state.clone(), count_requests))
        .layer(from_fn(security_headers))
        .with_state(state)
}

/// Serve `router(state)` on `listener` until `shutdown` completes; then streams still open
/// (SSE) are ended and requests in flight finish. With no tokens configured the listener
/// must be on a loopback address (see `auth`: local mode), else this fails at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if state.config().tokens.is_empty() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve the API on {addr} with no [[api.token]] in the config: without tokens it is \
             for this machine only; listen on 127.0.0.1 or configure tokens"
        );
    }
    let stop = state.inner.shutdown.clone();
    let refused = state.inner.refused_connections.clone();
    let app = router(state);
    limits::serve_bounded(
        listener,
        app,
        async move {
            shutdown.await;
            let _ = stop.send(true);
        },
        Duration::from_secs(10),
        refused,
    )
    .await;
    Ok(())
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.inner.health.as_ref().map_or(Ok(()), |f| f()) {
        Ok(()) => "ok\n".into_response(),
        Err(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// `GET /api/sites`: the sites whose rows this API shows (the page offers a choice when
/// there are several): over the central store every site that forwarded to it; over a
/// site's own database its `[site] name`, or none when it has no name.
async fn sites(axum::extract::State(state): axum::extract::State<AppState>) -> Result<Response, ApiError> {
    let sites = match state.central_reader().cloned() {
        Some(c) => tokio::task::spawn_blocking(move || c.sites())
            .await
            .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?
            .map_err(ApiError::any)?,
        None => {
            let name = state.config().config.site.name.trim().to_string();
            if name.is_empty() {
                vec![]
            } else {
                vec![name]
            }
        }
    };
    Ok(axum::Json(serde_json::json!({ "central": state.central_reader().is_some(), "sites": sites })).into_response())
}

/// `/api/central`: the forwarder's backlog and state (`{"configured": false}` without a
/// central store), so the page can say when this site's rows are not yet central.
async fn central_status(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.inner.central.as_ref().and_then(|f| f()) {
        Some(mut v) => {
            v["configured"] = true.into();
            axum::Json(v).into_response()
        }
        None => axum::Json(serde_json::json!({ "configured": false })).into_response(),
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such path: {}", uri.path()))
}

/// `/metrics`: the daemon's text (when it gave one) and the API's request counters.
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let mut text = state.inner.metrics.as_ref().map(|f| f()).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# HELP callwarden_api_requests_total HTTP requests answered by the API, by status class.\n");
    text.push_str("# TYPE callwarden_api_requests_total counter\n");
    for (i, c) in state.inner.requests.iter().enumerate() {
        text.push_str(&format!(
            "callwarden_api_requests_total{{code=\"{}xx\"}} {}\n",
            i + 1,
            c.load(Ordering::Relaxed)
        ));
    }
    text.push_str(&format!(
        "# HELP callwarden_api_connections_refused_total Connections closed at accept: {} were open.\n\
         # TYPE callwarden_api_connections_refused_total counter\n\
         callwarden_api_connections_refused_total {}\n\
         # HELP callwarden_api_sse_streams Live event streams open (at most {}).\n\
         # TYPE callwarden_api_sse_streams gauge\n\
         callwarden_api_sse_streams {}\n",
        limits::MAX_CONNECTIONS,
        state.inner.refused_connections.load(Ordering::Relaxed),
        limits::MAX_SSE,
        state.inner.sse.open()
    ));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn count_requests(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    state.count(res.status());
    res
}

/// The page loads nothing from elsewhere: a strict CSP makes that a rule, not a habit.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::header::{HeaderValue, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// Wall-clock microseconds, for the playback log and approvals (the API is at the edge:
/// the one place besides the daemon's idle timer where the system time is read).
pub(crate) fn now_us() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
