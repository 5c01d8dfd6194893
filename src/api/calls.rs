//! `GET /api/calls` (filters, keyset paging, newest first by default; `format=csv` exports
//! every matching call) and `GET /api/calls/{id}` (one call with its SIP ladder, media
//! statistics, violations and recording). Rows are the store's `CallRow`, the same JSON as
//! `calls --json`.
//! Invariants: a page is `limit` rows and `next` is set exactly when more rows follow
//! (one extra row is read to know); the CSV pages through the store with the same cursor.

use super::csv_out::{csv_response, opt, CsvBody};
use super::params::{FilterParams, Paging};
use super::{ApiError, AppState, Db};
use crate::store::query::Cursor;
use crate::store::{CallRow, Filter};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Rows read per store query while exporting.
const EXPORT_PAGE: usize = 2000;

#[derive(Serialize)]
pub struct CallPage {
    pub calls: Vec<CallRow>,
    /// Cursor for `after=` to get the next page; null on the last page.
    pub next: Option<String>,
}

/// Run `q` for one page of `limit` rows: the rows and the cursor after them if more follow.
pub fn page(db: &Db, mut q: Filter, limit: usize) -> Result<CallPage, ApiError> {
    q.limit = Some(limit + 1);
    let mut calls = db.reader.calls(&q).map_err(ApiError::any)?;
    let next = if calls.len() > limit {
        calls.truncate(limit);
        calls.last().map(|c| c.cursor().to_string())
    } else {
        None
    };
    Ok(CallPage { calls, next })
}

pub async fn list(
    State(state): State<AppState>,
    Query(f): Query<FilterParams>,
    Query(p): Query<Paging>,
) -> Result<Response, ApiError> {
    let cfg = state.config();
    let mut q = f.call_query(&cfg.tz)?;
    q.newest_first = p.newest_first()?;
    q.after = p.after().map(str::parse::<Cursor>).transpose()?;
    if p.csv()? {
        let limit = p.limit.filter(|&l| l > 0);
        let (sink, res) = csv_response("calls.csv", p.bom());
        tokio::spawn(async move {
            let _ = state.with_db(move |db, _| export(db, q, limit, sink)).await;
        });
        return Ok(res);
    }
    let limit = p.limit()?;
    let page = state.with_db(move |db, _| page(db, q, limit)).await?;
    Ok(Json(page).into_response())
}

/// `site` last: the columns before it kept their places when it was added.
pub const CSV_HEADER: [&str; 27] = [
    "call_id",
    "caller",
    "callee",
    "dialled",
    "number",
    "direction",
    "class",
    "group",
    "started_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "rings",
    "ring_ms",
    "talk_ms",
    "answered",
    "end_reason",
    "sip_status",
    "cost_fen",
    "recording",
    "violations",
    "answered_by",
    "transferred_to",
    "wait_ms",
    "link",
    "legs",
    "site",
];

pub fn csv_row(c: &CallRow) -> [String; 27] {
    [
        c.call_id.clone(),
        c.caller.clone(),
        c.callee.clone(),
        c.dialled.clone(),
        c.number.clone(),
        c.direction.clone(),
        opt(c.class.as_deref()),
        opt(c.group.as_deref()),
        c.started_at.clone(),
        opt(c.ringing_at.as_deref()),
        opt(c.answered_at.as_deref()),
        c.ended_at.clone(),
        c.rings.to_string(),
        c.ring_ms.to_string(),
        c.talk_ms.to_string(),
        c.answered.to_string(),
        c.end_reason.clone(),
        opt(c.sip_status),
        opt(c.cost_fen),
        opt(c.recording.as_deref()),
        c.violations.iter().map(|v| format!("{} {}", v.rule, v.kind)).collect::<Vec<_>>().join("; "),
        opt(c.answered_by.as_deref()),
        opt(c.transferred_to.as_deref()),
        c.wait_ms.to_string(),
        opt(c.link.as_deref()),
        // One cell: each leg as "role Call-ID from→to", in start order.
        c.legs.iter().map(|l| format!("{} {} {}→{}", l.role, l.call_id, l.from, l.to)).collect::<Vec<_>>().join("; "),
        opt(c.site.as_deref()),
    ]
}

/// Every call `q` selects (up to `limit`), page by page into the CSV.
fn export(db: &Db, mut q: Filter, limit: Option<usize>, mut sink: CsvBody) -> Result<(), ApiError> {
    if !sink.row(CSV_HEADER) {
        return Ok(());
    }
    let mut left = limit.unwrap_or(usize::MAX);
    while left > 0 {
        q.limit = Some(left.min(EXPORT_PAGE));
        let rows = match db.reader.calls(&q) {
            Ok(r) => r,
            Err(e) => {
                sink.fail(&format!("{e:#}"));
                return Ok(());
            }
        };
        for c in &rows {
            if !sink.row(csv_row(c)) {
                return Ok(());
            }
        }
        left -= rows.len();
        match rows.last() {
            Some(last) if rows.len() == q.limit.unwrap_or(0) => q.after = Some(last.cursor()),
            _ => break,
        }
    }
    sink.finish();
    Ok(())
}

#[derive(serde::Deserialize, Default)]
pub struct SiteParam {
    site: Option<String>,
}

/// `GET /api/calls/{id}[?site=S]`: a Call-ID is unique within a site only; over the
/// central store the latest call with it at any site unless `site` names one (the page
/// passes the row's site).
pub async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(s): Query<SiteParam>,
) -> Result<Response, ApiError> {
    let site = super::params::nonempty(&s.site);
    let doc = state
        .with_db(move |db, _| {
            let Some(d) = db.reader.call(&id, site.as_deref()).map_err(ApiError::any)? else {
                return Err(ApiError::not_found(format!("no call with Call-ID {id:?}")));
            };
            let rec = db
                .reader
                .recording_of_call(d.call.site.as_deref(), &d.call.call_id, d.call.started_us)
                .map_err(ApiError::any)?;
            let mut v = serde_json::to_value(&d).map_err(|e| ApiError::internal(e.to_string()))?;
            if let Some(o) = v.as_object_mut() {
                // The recording's id is the text id of the recordings table.
                o.insert("recording".into(), rec.as_ref().map(|r| r.id.clone()).into());
                o.insert("recording_status".into(), rec.map(|r| r.status).into());
            }
            Ok(v)
        })
        .await?;
    Ok(Json(doc).into_response())
}
