//! `GET /api/violations`: the stored violations matching the call filters (time bounds on
//! the start of the call they are about, as `violations` in the CLI), oldest first, with
//! keyset paging (`after` = the `next` of the previous page). Rows are `violations --json`'s.

use super::params::{FilterParams, Paging};
use super::{ApiError, AppState};
use crate::store::query::Cursor;
use crate::store::ViolationRow;
use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;

#[derive(Serialize)]
pub struct ViolationPage {
    pub violations: Vec<ViolationRow>,
    pub next: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(f): Query<FilterParams>,
    Query(p): Query<Paging>,
) -> Result<Json<ViolationPage>, ApiError> {
    let cfg = state.config();
    let mut q = f.violation_query(&cfg.tz)?;
    q.after = p.after().map(str::parse::<Cursor>).transpose()?;
    if let Some(d) = &f.direction {
        if !d.is_empty() {
            return Err(ApiError::bad_request("direction: not a filter of violations"));
        }
    }
    let limit = p.limit()?;
    q.limit = Some(limit + 1);
    let page = state
        .with_db(move |db, _| {
            let mut violations = db.reader.violations(&q).map_err(ApiError::any)?;
            let next = if violations.len() > limit {
                violations.truncate(limit);
                violations.last().map(|v| v.cursor().to_string())
            } else {
                None
            };
            Ok(ViolationPage { violations, next })
        })
        .await?;
    Ok(Json(page))
}
