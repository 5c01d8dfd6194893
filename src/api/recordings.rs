//! Recordings (REC-1..4), auditor and admin only: `GET /api/recordings` (filters `from`,
//! `to`, `month`, `ext`, `group`, `number`, `status`; newest first; paging by `after`),
//! `GET /api/recordings/{id}` (one, with its playback log), `GET /api/recordings/{id}/audio`
//! (the WAV, with Range/206, logged), `GET /api/recordings/{id}/peaks` (min/max per
//! bucket for the page's waveform; reading peaks is not listening and is not logged),
//! `GET /api/recordings/sample` (the monthly spot check of REC-3: a reproducible random
//! sample of a month's recordings of a group, the same draw as `callwarden recordings
//! sample`, each drawn recording logged as `sample`).
//!
//! May use: the store's `Reader` queries of recordings and the playback log (those the
//! CLI uses: `group` and `number` match the recording or its call, as there), the recorder's
//! `sample` draw and `maintain::check_hash`, tower-http's `ServeFile`. It owns no SQL:
//! it turns parameters into the store's queries and the store's rows into the page's
//! `Recording`. Audio is served only after the file's SHA-256 is checked against the one
//! stored when it was sealed.
//! Invariants: the only way from a request to a file is an id found in the database: the
//! stored relative path is joined to `[recordings].dir`, canonicalised, and must still be
//! inside the canonical recordings folder and be a regular file; Range handling is
//! tower-http's `ServeFile` (206, `Content-Range`, 416, `If-Range`), so the bytes are
//! the file's; the playback log row is written before the response (see `playback`).

use super::auth::Principal;
use super::params::{month_range, nonempty, time_range, Paging};
use super::playback;
use super::{ApiError, AppState};
use crate::sink::recorder::maintain::{self, FileCheck};
use crate::sink::recorder::sample;
use crate::store::recordings::{self as rows, PlaybackAction, PlaybackQuery, RecordingStatus};
use crate::store::{Cursor, Filter};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;
use tower::ServiceExt;

/// A recording as the API shows it: the columns the page and scripts read, under these
/// names (the store's row has more, and keeps `undecodable` as a list).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recording {
    /// The site that holds it (`[site] name`); null for a site without a name.
    pub site: Option<String>,
    pub id: String,
    pub call_id: String,
    pub call_started_at: String,
    pub caller: String,
    pub callee: String,
    pub dialled: String,
    pub group: Option<String>,
    /// recording | complete | repaired | expired | missing | empty
    pub status: String,
    pub sample_rate: Option<u32>,
    pub channels: u32,
    pub duration_ms: i64,
    pub bytes: i64,
    pub sha256: Option<String>,
    pub ended_at: Option<String>,
    pub dtmf: String,
    /// The payload types that could not be decoded as stored, "18,98"; null when none.
    pub undecodable: Option<String>,
    pub retention_days: u32,
    /// The call's whole recording, when this one is the part an earlier replay recorded
    /// of a call a later replay completed (kept, not the call's recording); else null.
    pub superseded_by: Option<String>,
    /// False when the call has no record: still going on, or the process was killed
    /// during it (the recording was repaired at the next start; `recordings verify`).
    pub call_record: bool,
}

impl From<rows::RecordingRow> for Recording {
    fn from(r: rows::RecordingRow) -> Recording {
        Recording {
            undecodable: rows::join_pts(&r.undecodable),
            site: r.site,
            id: r.id,
            call_id: r.call_id,
            call_started_at: r.call_started_at,
            caller: r.caller,
            callee: r.callee,
            dialled: r.dialled,
            group: r.group,
            status: r.status,
            sample_rate: r.sample_rate,
            channels: r.channels,
            duration_ms: r.duration_ms,
            bytes: r.bytes,
            sha256: r.sha256,
            ended_at: r.ended_at,
            dtmf: r.dtmf,
            retention_days: r.retention_days,
            superseded_by: r.superseded_by,
            call_record: r.call_record,
        }
    }
}

/// How many playback-log lines a recording's own page shows (the newest).
const DETAIL_LOG: usize = 200;

#[derive(Deserialize, Default)]
pub struct RecFilters {
    from: Option<String>,
    to: Option<String>,
    month: Option<String>,
    ext: Option<String>,
    group: Option<String>,
    number: Option<String>,
    status: Option<String>,
    site: Option<String>,
}

/// A recording id as the core makes them (16 hex digits); anything else is not looked up.
fn valid_id(id: &str) -> Result<(), ApiError> {
    if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no recording {id:?}")))
    }
}

pub async fn list(
    State(state): State<AppState>,
    Query(f): Query<RecFilters>,
    Query(p): Query<Paging>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cfg = state.config();
    let limit = p.limit()?;
    let (from, to) = time_range(&f.from, &f.to, &f.month, &cfg.tz)?;
    let after = p.after().map(str::parse::<Cursor>).transpose()?;
    let status = match nonempty(&f.status) {
        None => None,
        Some(s) => match RecordingStatus::parse(&s) {
            Some(st) => Some(st),
            // No row the recorder writes has it: the empty page the filter always gave.
            None => return Ok(Json(serde_json::json!({ "recordings": [], "next": null }))),
        },
    };
    let q = Filter {
        from,
        to,
        ext: nonempty(&f.ext),
        group: nonempty(&f.group),
        number: nonempty(&f.number),
        site: nonempty(&f.site),
        status,
        // One more than asked: whether there is a next page.
        limit: Some(limit + 1),
        after,
        newest_first: true,
        ..Filter::default()
    };
    let mut rows = state.with_db(move |db, _| db.reader.recordings(&q).map_err(ApiError::any)).await?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| r.cursor().to_string())
    } else {
        None
    };
    let rows: Vec<Recording> = rows.into_iter().map(Recording::from).collect();
    Ok(Json(serde_json::json!({ "recordings": rows, "next": next })))
}

pub async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    valid_id(&id)?;
    let doc = state
        .with_db(move |db, _| {
            let Some(rec) = db.reader.recording(&id).map_err(ApiError::any)? else {
                return Err(ApiError::not_found(format!("no recording {id:?}")));
            };
            let q = PlaybackQuery {
                recording: Some(id),
                limit: Some(DETAIL_LOG),
                newest_first: true,
                ..PlaybackQuery::default()
            };
            // The recording is named once, above the log: its lines leave it out.
            let log: Vec<serde_json::Value> = db
                .reader
                .playback_log(&q)
                .map_err(ApiError::any)?
                .into_iter()
                .map(|l| {
                    serde_json::json!({
                        "id": l.id, "at": l.at, "who": l.who, "action": l.action, "via": l.via, "detail": l.detail,
                    })
                })
                .collect();
            let mut v = serde_json::to_value(Recording::from(rec)).map_err(|e| ApiError::internal(e.to_string()))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("playback_log".into(), log.into());
            }
            Ok(v)
        })
        .await?;
    Ok(Json(doc))
}

/// The file of a recording the database knows, checked to be inside the recordings
/// folder. Errors: 404 (no such id), 409 (still being written), 410 (expired/missing).
pub async fn resolve(state: &AppState, id: &str) -> Result<(rows::RecordingRow, PathBuf), ApiError> {
    valid_id(id)?;
    if state.central_reader().is_some() {
        // Recordings stay at their site; fetching them from there is not built yet.
        return Err(super::not_at_central());
    }
    let id2 = id.to_string();
    let found = state.with_db(move |db, _| db.reader.recording(&id2).map_err(ApiError::any)).await?;
    let Some(rec) = found else {
        return Err(ApiError::not_found(format!("no recording {id:?}")));
    };
    match RecordingStatus::parse(&rec.status) {
        Some(s) if s.has_files() => {}
        Some(RecordingStatus::Recording) => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                format!("recording {id} is still being written; it can be played when the call has ended"),
            ))
        }
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::GONE,
                format!("recording {id} is {}: no audio", rec.status),
            ))
        }
    }
    let dir = state.config().recordings_dir.clone();
    let rel = rec.path.clone();
    let path = tokio::task::spawn_blocking(move || inside(&dir, &rel))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((rec, path))
}

/// `resolve`, then the file checked against its stored SHA-256. Evidence is never handed
/// out unchecked (as `callwarden recordings play` does): a file that no longer hashes to
/// what was stored when it was sealed is refused (409), and so is one with no stored hash
/// (409: never sealed, e.g. its disk filled while it was written) — audio and peaks alike.
pub async fn resolve_checked(state: &AppState, id: &str) -> Result<(rows::RecordingRow, PathBuf), ApiError> {
    let (rec, path) = resolve(state, id).await?;
    let Some(expected) = rec.sha256.clone() else {
        tracing::warn!(recording = %rec.id, status = %rec.status, "recording has no stored sha256; refused");
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "recording {} has no stored sha256 (status {}): it cannot be shown to be unaltered; \
                 run `callwarden recordings verify`",
                rec.id, rec.status
            ),
        ));
    };
    let p = path.clone();
    let id2 = rec.id.clone();
    tokio::task::spawn_blocking(move || verified(&id2, &p, &expected))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((rec, path))
}

/// `rel` under `dir`, canonical, a regular file, and still inside `dir`.
pub fn inside(dir: &std::path::Path, rel: &str) -> Result<PathBuf, ApiError> {
    let root =
        dir.canonicalize().map_err(|e| ApiError::internal(format!("recordings folder {}: {e}", dir.display())))?;
    let gone = || ApiError::new(axum::http::StatusCode::GONE, "the recording's file is not there".to_string());
    let p = root.join(rel).canonicalize().map_err(|_| gone())?;
    if !p.starts_with(&root) {
        tracing::error!(path = rel, "a recording's stored path leads outside the recordings folder; refused");
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "the recording's path is outside the recordings folder",
        ));
    }
    if !p.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(gone());
    }
    Ok(p)
}

/// Files whose hash was checked, by (id, size, mtime): a player's many Range requests
/// hash the file once, and any write to it (a new mtime or size) checks it again.
static VERIFIED: std::sync::Mutex<Vec<(String, u64, std::time::SystemTime)>> = std::sync::Mutex::new(Vec::new());
const VERIFIED_MAX: usize = 256;

/// `Ok` when the file at `path` hashes to `expected`; 409 naming both hashes when not.
fn verified(id: &str, path: &std::path::Path, expected: &str) -> Result<(), ApiError> {
    let meta = path.metadata().map_err(|e| ApiError::internal(format!("recording {id}: {e}")))?;
    let key = (id.to_string(), meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
    let mut cache = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    if cache.contains(&key) {
        return Ok(());
    }
    drop(cache);
    let check = maintain::check_hash(path, expected).map_err(|e| ApiError::internal(format!("recording {id}: {e}")))?;
    match check {
        FileCheck::Ok { .. } => {}
        FileCheck::Changed { expected, actual } => {
            tracing::error!(recording = id, expected, actual, "recording changed since it was sealed; refused");
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                format!(
                    "recording {id} was changed after it was sealed (stored sha256 {expected}, file now {actual}); \
                     run `callwarden recordings verify`"
                ),
            ));
        }
        // Gone since `inside` found it (check_hash says NoFile never).
        FileCheck::Missing | FileCheck::NoFile { .. } => {
            return Err(ApiError::internal(format!("recording {id}: the file is gone")));
        }
    }
    cache = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= VERIFIED_MAX {
        cache.remove(0);
    }
    cache.push(key);
    Ok(())
}

/// `GET /api/recordings/{id}/audio`: the WAV, Range requests answered with 206.
pub async fn audio(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    if state.central_reader().is_some() {
        return central_audio(&state, &who, &id).await;
    }
    let (rec, path) = resolve_checked(&state, &id).await?;
    if req.method() != Method::HEAD {
        let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).unwrap_or("full").to_string();
        let starts = match state.playback_dedup().lock() {
            Ok(mut d) => d.fetch(&who.name, &rec.id, Instant::now()),
            Err(_) => true,
        };
        if starts {
            if let Err(e) = playback::log(&state, &who.name, &rec.id, PlaybackAction::Stream, &range).await {
                if let Ok(mut d) = state.playback_dedup().lock() {
                    d.forget(&who.name, &rec.id);
                }
                return Err(e);
            }
        }
    }
    // Only what ServeFile needs of the request: method and the conditional/range headers.
    let mut inner = Request::new(axum::body::Body::empty());
    *inner.method_mut() = req.method().clone();
    for h in [header::RANGE, header::IF_RANGE, header::IF_MODIFIED_SINCE, header::IF_UNMODIFIED_SINCE] {
        if let Some(v) = req.headers().get(&h) {
            inner.headers_mut().insert(h, v.clone());
        }
    }
    let res = tower_http::services::ServeFile::new(&path)
        .oneshot(inner)
        .await
        .map_err(|e| ApiError::internal(format!("serving the recording: {e}")))?;
    let mut res = res.map(axum::body::Body::new);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{}.wav\"", rec.id)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// A recording over the central store that still has its files, and its site.
async fn central_recording(state: &AppState, id: &str) -> Result<(rows::RecordingRow, String), ApiError> {
    valid_id(id)?;
    let id2 = id.to_string();
    let rec = state
        .with_db(move |db, _| db.reader.recording(&id2).map_err(ApiError::any))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no recording {id:?}")))?;
    if !RecordingStatus::parse(&rec.status).is_some_and(|s| s.has_files()) {
        let gone = axum::http::StatusCode::GONE;
        return Err(ApiError::new(gone, format!("recording {id} is {}: no audio", rec.status)));
    }
    let site = rec.site.clone().ok_or_else(|| ApiError::internal(format!("recording {id} has no site")))?;
    Ok((rec, site))
}

/// Ask `rec`'s site for something of it (`what`: audio or peaks), off the async threads;
/// a refusal is 409 (nothing to check it by, or not what was sealed), 501 (no way to ask
/// that site) or 502 (the site cannot be reached or refuses), logged once.
async fn from_site(
    state: &AppState,
    rec: &rows::RecordingRow,
    site: &str,
    what: &'static str,
    ask: impl FnOnce(
            &super::site_audio::SiteAudio,
            &str,
            &rows::RecordingRow,
        ) -> Result<Vec<u8>, super::site_audio::FetchError>
        + Send
        + 'static,
) -> Result<Vec<u8>, ApiError> {
    use super::site_audio::FetchError;
    use axum::http::StatusCode;
    let audio = state.config().site_audio.clone();
    let (site2, rec2) = (site.to_string(), rec.clone());
    tokio::task::spawn_blocking(move || ask(&audio, &site2, &rec2))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| {
            let status = match &e {
                FetchError::NoHash(_) | FetchError::Altered { .. } => StatusCode::CONFLICT,
                FetchError::NoSite(_) | FetchError::Token { .. } => StatusCode::NOT_IMPLEMENTED,
                FetchError::Unreachable { .. } | FetchError::Refused { .. } | FetchError::Folder { .. } => {
                    StatusCode::BAD_GATEWAY
                }
            };
            tracing::warn!(recording = %rec.id, site = %site, error = %e, what, "central fetch refused");
            ApiError::new(status, e.to_string())
        })
}

/// Audio over the central store: the recording stays at its site, so it is fetched from
/// the site's API (`[[api.site]]`), checked against the SHA-256 the central store holds
/// (`site_audio`), logged in the central playback log, and served whole (no ranges: the
/// bytes are checked as a whole before any leaves). 502 when the site cannot be reached
/// or refuses, 409 when what it sent is not what was sealed.
async fn central_audio(state: &AppState, who: &Principal, id: &str) -> Result<Response, ApiError> {
    let (rec, site) = central_recording(state, id).await?;
    let bytes = from_site(state, &rec, &site, "audio", |audio, site, rec| {
        audio.fetch(site, &rec.id, &rec.path, rec.sha256.as_deref())
    })
    .await?;
    let starts = match state.playback_dedup().lock() {
        Ok(mut d) => d.fetch(&who.name, &rec.id, Instant::now()),
        Err(_) => true,
    };
    if starts {
        let reader = state.central_reader().cloned().ok_or_else(super::not_at_central)?;
        let (who2, site2, id2) = (who.name.clone(), site.clone(), rec.id.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = reader.write_conn()?;
            crate::store::central::playback::log(
                &mut conn,
                &site2,
                super::now_us(),
                &who2,
                &id2,
                "stream",
                "via the central API",
            )
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| {
            if let Ok(mut d) = state.playback_dedup().lock() {
                d.forget(&who.name, &rec.id);
            }
            ApiError::unavailable(format!("{e:#}"))
        })?;
    }
    let mut res = Response::new(axum::body::Body::from(bytes));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{}.wav\"", rec.id)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[derive(Deserialize)]
pub struct PeaksParams {
    n: Option<usize>,
}

/// Peaks of a WAV: per bucket, per channel, (min, max) in [-1, 1].
#[derive(Serialize, Debug)]
pub struct Peaks {
    pub sample_rate: u32,
    pub channels: u16,
    pub frames: u64,
    /// `peaks[channel][bucket] = [min, max]`.
    pub peaks: Vec<Vec<[f32; 2]>>,
}

pub fn peaks_of(path: &std::path::Path, buckets: usize) -> Result<Peaks, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    peaks_from(std::io::BufReader::new(f), &path.display().to_string(), buckets)
}

/// Peaks of the WAV `name` read from `input` (a file, or bytes already checked).
pub fn peaks_from<R: std::io::Read>(input: R, name: &str, buckets: usize) -> Result<Peaks, String> {
    let mut r = hound::WavReader::new(input).map_err(|e| format!("{name}: {e}"))?;
    let spec = r.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 || spec.channels == 0 {
        return Err(format!("{name}: not 16-bit PCM"));
    }
    let ch = usize::from(spec.channels);
    let frames = u64::from(r.duration());
    let buckets = buckets.clamp(1, 4000);
    let per = frames.div_ceil(buckets as u64).max(1);
    let n = usize::try_from(frames.div_ceil(per)).unwrap_or(buckets).min(buckets);
    let mut out = vec![vec![[0f32, 0f32]; n]; ch];
    for (i, s) in r.samples::<i16>().enumerate() {
        let s = s.map_err(|e| format!("{name}: {e}"))?;
        let frame = (i / ch) as u64;
        let b = usize::try_from(frame / per).unwrap_or(usize::MAX);
        let v = f32::from(s) / 32768.0;
        if let Some(slot) = out.get_mut(i % ch).and_then(|c| c.get_mut(b)) {
            slot[0] = slot[0].min(v);
            slot[1] = slot[1].max(v);
        }
    }
    Ok(Peaks { sample_rate: spec.sample_rate, channels: spec.channels, frames, peaks: out })
}

pub async fn peaks(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<PeaksParams>,
) -> Result<Response, ApiError> {
    let n = p.n.unwrap_or(800).clamp(1, 4000);
    if state.central_reader().is_some() {
        return central_peaks(&state, &id, n).await;
    }
    let (_, path) = resolve_checked(&state, &id).await?;
    let peaks = tokio::task::spawn_blocking(move || peaks_of(&path, n))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::internal)?;
    Ok(axum::response::IntoResponse::into_response(Json(peaks)))
}

/// Peaks over the central store: asked of the recording's site, which checks the file
/// against its stored hash before reading it (its 409 is passed on as 502 naming the
/// site, as for audio). Not logged as a playback: no audio leaves the site.
async fn central_peaks(state: &AppState, id: &str, n: usize) -> Result<Response, ApiError> {
    use axum::http::StatusCode;
    let (rec, site) = central_recording(state, id).await?;
    let body = from_site(state, &rec, &site, "peaks", move |audio, site, rec| {
        audio.peaks(site, &rec.id, &rec.path, n, rec.sha256.as_deref())
    })
    .await?;
    // Only JSON that parses as peaks leaves (a site answering something else is a 502).
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .filter(|v| v.get("peaks").is_some_and(|p| p.is_array()))
        .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, format!("site {site:?} sent no peaks for {id}")))?;
    let mut res = Response::new(axum::body::Body::from(body));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}

#[derive(Deserialize)]
pub struct SampleParams {
    month: Option<String>,
    group: Option<String>,
    n: Option<usize>,
    seed: Option<u64>,
}

/// `GET /api/recordings/sample?month=YYYY-MM&group=G&n=10[&seed=S]`: REC-3's monthly spot
/// check. Without a seed a fresh one is chosen (and returned: the same seed draws the same
/// sample again, for whoever checks the checker).
pub async fn sample(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(p): Query<SampleParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cfg = state.config();
    let month = nonempty(&p.month).ok_or_else(|| ApiError::bad_request("month: needed, YYYY-MM"))?;
    // Validates YYYY-MM; the draw itself uses the rows' month (the site's zone).
    month_range(&month, &cfg.tz)?;
    let group = nonempty(&p.group);
    let n = p.n.unwrap_or(10).clamp(1, 1000);
    // The same candidates, seed and draw as `callwarden recordings sample`, so an auditor
    // gets the same recordings from the page and from the command line.
    let seed = p.seed.unwrap_or_else(|| sample::default_seed(group.as_deref().unwrap_or(""), &month));
    let q = Filter { month: Some(month.clone()), group: group.clone(), ..Default::default() };
    let (rows, total) = state
        .with_db(move |db, _| {
            // Every status is a candidate (not a recording without audio): a missing or
            // expired recording drawn is itself a finding, and the draw does not move when a
            // status changes.
            let all: Vec<_> =
                db.reader.recordings(&q).map_err(ApiError::any)?.into_iter().filter(|r| r.sampleable()).collect();
            let ids: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
            let drawn: HashSet<String> = sample::draw(&ids, n, seed).into_iter().collect();
            // `all` is in the order of the calls' start (then id), and so are the drawn.
            let rows: Vec<Recording> = all.into_iter().filter(|r| drawn.contains(&r.id)).map(Recording::from).collect();
            Ok((rows, ids.len()))
        })
        .await?;
    let detail = format!("group={} month={month} seed={seed} n={n}", group.as_deref().unwrap_or("*"));
    for r in &rows {
        playback::log(&state, &who.name, &r.id, PlaybackAction::Sample, &detail).await?;
    }
    Ok(Json(serde_json::json!({
        "month": month, "group": group, "n": n, "seed": seed, "total": total, "recordings": rows,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_folder_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rec");
        std::fs::create_dir_all(dir.join("2026/03/02")).unwrap();
        std::fs::write(dir.join("2026/03/02/a.wav"), b"RIFF").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), b"x").unwrap();
        assert!(inside(&dir, "2026/03/02/a.wav").is_ok());
        assert_eq!(inside(&dir, "../secret.txt").unwrap_err().status, axum::http::StatusCode::FORBIDDEN);
        assert_eq!(
            inside(&dir, tmp.path().join("secret.txt").to_str().unwrap()).unwrap_err().status,
            axum::http::StatusCode::FORBIDDEN
        );
        assert_eq!(inside(&dir, "2026/03/02/none.wav").unwrap_err().status, axum::http::StatusCode::GONE);
        assert_eq!(inside(&dir, "2026/03").unwrap_err().status, axum::http::StatusCode::GONE, "a folder is no file");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret.txt"), dir.join("link.wav")).unwrap();
            assert_eq!(inside(&dir, "link.wav").unwrap_err().status, axum::http::StatusCode::FORBIDDEN);
        }
    }

    #[test]
    fn ids_are_checked_before_any_lookup() {
        assert!(valid_id("0123456789abcdef").is_ok());
        for bad in ["", "../x", "a/b", "a b", &"a".repeat(65)] {
            assert!(valid_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn peaks_of_a_wav() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for i in 0..8000i32 {
            // Left: silence then a full-scale half; right: always quiet.
            let l = if i < 4000 {
                0
            } else if i % 2 == 0 {
                16384
            } else {
                -16384
            };
            w.write_sample(l as i16).unwrap();
            w.write_sample(100i16).unwrap();
        }
        w.finalize().unwrap();
        let pk = peaks_of(&p, 4).unwrap();
        assert_eq!((pk.sample_rate, pk.channels, pk.frames), (8000, 2, 8000));
        assert_eq!(pk.peaks[0].len(), 4);
        assert_eq!(pk.peaks[0][0], [0.0, 0.0]);
        assert_eq!(pk.peaks[0][3], [-0.5, 0.5]);
        assert!(pk.peaks[1].iter().all(|b| b[1] > 0.0 && b[1] < 0.01));
        assert!(peaks_of(&tmp.path().join("none.wav"), 4).is_err());
    }
}
