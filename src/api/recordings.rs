//! Recordings (REC-1..4), auditor and admin only: `GET /api/recordings` (filters `from`,
//! `to`, `month`, `ext`, `group`, `number`, `status`; newest first; paging by `after`),
//! `GET /api/recordings/{id}` (one, with its playback log), `GET /api/recordings/{id}/audio`
//! (the WAV, with Range/206, logged), `GET /api/recordings/{id}/peaks` (min/max per
//! bucket for the page's waveform; reading peaks is not listening and is not logged),
//! `GET /api/recordings/sample` (the monthly spot check of REC-3: a reproducible random
//! sample of a month's recordings of a group, the same draw as `callwarden recordings
//! sample`, each drawn recording logged as `sample`).
//!
//! Reads the `recordings` table directly, with the columns the page shows (the store's
//! `Reader::recordings` serves the CLI). Audio is served only after the file's SHA-256 is
//! checked against the one stored when it was sealed.
//! Invariants: the only way from a request to a file is an id found in the database: the
//! stored relative path is joined to `[recordings].dir`, canonicalised, and must still be
//! inside the canonical recordings folder and be a regular file; Range handling is
//! tower-http's `ServeFile` (206, `Content-Range`, 416, `If-Range`), so the bytes are
//! the file's; the playback log row is written before the response (see `playback`).

use super::auth::Principal;
use super::params::{month_range, Paging};
use super::playback;
use super::{ApiError, AppState, Db};
use crate::sink::recorder::sample;
use crate::sink::store::query;
use crate::sink::store::reader::format_ts;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use axum::{Extension, Json};
use rusqlite::types::Value;
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use tower::ServiceExt;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordingRow {
    pub id: String,
    pub call_id: String,
    pub call_started_at: String,
    pub caller: String,
    pub callee: String,
    pub dialled: String,
    pub group: Option<String>,
    /// recording | complete | repaired | expired | missing
    pub status: String,
    pub sample_rate: Option<i64>,
    pub channels: i64,
    pub duration_ms: i64,
    pub bytes: i64,
    pub sha256: Option<String>,
    pub ended_at: Option<String>,
    pub dtmf: String,
    pub undecodable: Option<String>,
    pub retention_days: i64,
    #[serde(skip)]
    pub started_us: i64,
}

const COLUMNS: &str = "r.id, r.call_id, r.call_started_us, r.caller, r.callee, r.dialled, r.group_name, r.status, \
     r.sample_rate, r.channels, r.duration_ms, r.bytes, r.sha256, r.ended_us, r.dtmf, r.undecodable, r.retention_days";

fn row(r: &rusqlite::Row<'_>, tz: &jiff::tz::TimeZone) -> rusqlite::Result<RecordingRow> {
    let started_us: i64 = r.get(2)?;
    Ok(RecordingRow {
        id: r.get(0)?,
        call_id: r.get(1)?,
        call_started_at: format_ts(started_us, tz),
        started_us,
        caller: r.get(3)?,
        callee: r.get(4)?,
        dialled: r.get(5)?,
        group: r.get(6)?,
        status: r.get(7)?,
        sample_rate: r.get(8)?,
        channels: r.get(9)?,
        duration_ms: r.get(10)?,
        bytes: r.get(11)?,
        sha256: r.get(12)?,
        ended_at: r.get::<_, Option<i64>>(13)?.map(|us| format_ts(us, tz)),
        dtmf: r.get(14)?,
        undecodable: r.get(15)?,
        retention_days: r.get(16)?,
    })
}

#[derive(Deserialize, Default)]
pub struct RecFilters {
    from: Option<String>,
    to: Option<String>,
    month: Option<String>,
    ext: Option<String>,
    group: Option<String>,
    number: Option<String>,
    status: Option<String>,
}

fn set(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
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
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    if let Some(s) = set(&f.from) {
        clauses.push("r.call_started_us >= ?".into());
        params.push(Value::Integer(query::range_start("from", &s, &cfg.tz)?.as_micros()));
    }
    if let Some(s) = set(&f.to) {
        clauses.push("r.call_started_us < ?".into());
        params.push(Value::Integer(query::range_end("to", &s, &cfg.tz)?.as_micros()));
    }
    if let Some(m) = set(&f.month) {
        let (a, b) = month_range(&m, &cfg.tz)?;
        clauses.push("r.call_started_us >= ? AND r.call_started_us < ?".into());
        params.extend([Value::Integer(a.as_micros()), Value::Integer(b.as_micros())]);
    }
    if let Some(e) = set(&f.ext) {
        clauses.push("(r.caller = ? OR r.callee = ?)".into());
        params.extend([Value::Text(e.clone()), Value::Text(e)]);
    }
    if let Some(g) = set(&f.group) {
        clauses.push("r.group_name = ?".into());
        params.push(Value::Text(g));
    }
    if let Some(n) = set(&f.number) {
        clauses.push("(instr(r.dialled, ?) > 0 OR instr(r.callee, ?) > 0 OR instr(r.caller, ?) > 0)".into());
        params.extend([Value::Text(n.clone()), Value::Text(n.clone()), Value::Text(n)]);
    }
    if let Some(s) = set(&f.status) {
        clauses.push("r.status = ?".into());
        params.push(Value::Text(s));
    }
    if let Some(a) = p.after() {
        let bad = || ApiError::bad_request(format!("after: {a:?} is not a cursor"));
        let (us, id) = a.split_once(':').ok_or_else(bad)?;
        let us: i64 = us.parse().map_err(|_| bad())?;
        clauses.push("(r.call_started_us, r.id) < (?, ?)".into());
        params.extend([Value::Integer(us), Value::Text(id.to_string())]);
    }
    let wh = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    let sql = format!("SELECT {COLUMNS} FROM recordings r {wh} ORDER BY r.call_started_us DESC, r.id DESC LIMIT ?");
    params.push(Value::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    let mut rows = state
        .with_db(move |db, cfg| {
            let mut stmt = db.conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| row(r, &cfg.tz))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| format!("{}:{}", r.started_us, r.id))
    } else {
        None
    };
    Ok(Json(serde_json::json!({ "recordings": rows, "next": next })))
}

fn find(db: &Db, id: &str, tz: &jiff::tz::TimeZone) -> Result<Option<(RecordingRow, String)>, ApiError> {
    let sql = format!("SELECT {COLUMNS}, r.path FROM recordings r WHERE r.id = ?");
    Ok(db.conn.prepare_cached(&sql)?.query_row([id], |r| Ok((row(r, tz)?, r.get::<_, String>(17)?))).optional()?)
}

pub async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    valid_id(&id)?;
    let doc = state
        .with_db(move |db, cfg| {
            let Some((rec, _)) = find(db, &id, &cfg.tz)? else {
                return Err(ApiError::not_found(format!("no recording {id:?}")));
            };
            let mut stmt = db.conn.prepare_cached(
                "SELECT id, at_us, who, action, via, detail FROM playback_log WHERE recording_id = ? ORDER BY id DESC LIMIT 200",
            )?;
            let log = stmt
                .query_map([&id], |r| {
                    Ok(serde_json::json!({
                        "id": r.get::<_, i64>(0)?,
                        "at": format_ts(r.get(1)?, &cfg.tz),
                        "who": r.get::<_, String>(2)?,
                        "action": r.get::<_, String>(3)?,
                        "via": r.get::<_, String>(4)?,
                        "detail": r.get::<_, String>(5)?,
                    }))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut v = serde_json::to_value(&rec).map_err(|e| ApiError::internal(e.to_string()))?;
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
pub async fn resolve(state: &AppState, id: &str) -> Result<(RecordingRow, PathBuf), ApiError> {
    valid_id(id)?;
    let id2 = id.to_string();
    let found = state.with_db(move |db, cfg| find(db, &id2, &cfg.tz)).await?;
    let Some((rec, rel)) = found else {
        return Err(ApiError::not_found(format!("no recording {id:?}")));
    };
    match rec.status.as_str() {
        "complete" | "repaired" => {}
        "recording" => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                format!("recording {id} is still being written; it can be played when the call has ended"),
            ))
        }
        s => return Err(ApiError::new(axum::http::StatusCode::GONE, format!("recording {id} is {s}: no audio"))),
    }
    let dir = state.config().recordings_dir.clone();
    let path = tokio::task::spawn_blocking(move || inside(&dir, &rel))
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
    let (actual, _) = crate::sink::recorder::wav::sha256_file(path)
        .map_err(|e| ApiError::internal(format!("recording {id}: {e}")))?;
    if actual != expected {
        tracing::error!(recording = id, expected, actual = %actual, "recording changed since it was sealed; refused");
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "recording {id} was changed after it was sealed (stored sha256 {expected}, file now {actual}); \
                 run `callwarden recordings verify`"
            ),
        ));
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
    let (rec, path) = resolve(&state, &id).await?;
    // Evidence is never handed out unchecked (as `callwarden recordings play` does): a
    // file that no longer hashes to what was stored when it was sealed is refused.
    if let Some(expected) = rec.sha256.clone() {
        let p = path.clone();
        let id2 = rec.id.clone();
        tokio::task::spawn_blocking(move || verified(&id2, &p, &expected))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
    }
    if req.method() != Method::HEAD {
        let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).unwrap_or("full").to_string();
        let starts = match state.playback_dedup().lock() {
            Ok(mut d) => d.fetch(&who.name, &rec.id, Instant::now()),
            Err(_) => true,
        };
        if starts {
            if let Err(e) = playback::log(&state, &who.name, &rec.id, "stream", &range).await {
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
    let mut r = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = r.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 || spec.channels == 0 {
        return Err(format!("{}: not 16-bit PCM", path.display()));
    }
    let ch = usize::from(spec.channels);
    let frames = u64::from(r.duration());
    let buckets = buckets.clamp(1, 4000);
    let per = frames.div_ceil(buckets as u64).max(1);
    let n = usize::try_from(frames.div_ceil(per)).unwrap_or(buckets).min(buckets);
    let mut out = vec![vec![[0f32, 0f32]; n]; ch];
    for (i, s) in r.samples::<i16>().enumerate() {
        let s = s.map_err(|e| format!("{}: {e}", path.display()))?;
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
) -> Result<Json<Peaks>, ApiError> {
    let (_, path) = resolve(&state, &id).await?;
    let n = p.n.unwrap_or(800);
    let peaks = tokio::task::spawn_blocking(move || peaks_of(&path, n))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::internal)?;
    Ok(Json(peaks))
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
    let month = set(&p.month).ok_or_else(|| ApiError::bad_request("month: needed, YYYY-MM"))?;
    // Validates YYYY-MM; the draw itself uses the rows' month (the site's zone).
    month_range(&month, &cfg.tz)?;
    let group = set(&p.group);
    let n = p.n.unwrap_or(10).clamp(1, 1000);
    // The same candidates, seed and draw as `callwarden recordings sample`, so an auditor
    // gets the same recordings from the page and from the command line.
    let seed = p.seed.unwrap_or_else(|| sample::default_seed(group.as_deref().unwrap_or(""), &month));
    let g2 = group.clone();
    let m2 = month.clone();
    let rows = state
        .with_db(move |db, cfg| {
            // Every status is a candidate: a missing or expired recording drawn is itself a
            // finding, and the draw does not move when a status changes.
            let mut sql = "SELECT id FROM recordings WHERE month = ?".to_string();
            let mut params = vec![Value::Text(m2)];
            if let Some(g) = g2 {
                sql.push_str(" AND group_name = ?");
                params.push(Value::Text(g));
            }
            let ids = db
                .conn
                .prepare(&sql)?
                .query_map(rusqlite::params_from_iter(params), |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let total = ids.len();
            let mut rows = Vec::new();
            for id in sample::draw(&ids, n, seed) {
                if let Some((r, _)) = find(db, &id, &cfg.tz)? {
                    rows.push(r);
                }
            }
            rows.sort_by(|x, y| (x.started_us, &x.id).cmp(&(y.started_us, &y.id)));
            Ok((rows, total))
        })
        .await?;
    let (rows, total) = rows;
    let detail = format!("group={} month={month} seed={seed} n={n}", group.as_deref().unwrap_or("*"));
    for r in &rows {
        playback::log(&state, &who.name, &r.id, "sample", &detail).await?;
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
