//! `GET /api/callbacks?month=YYYY-MM[&group=G][&site=S]`: the monthly call-back report (STA-3) as
//! `callwarden callbacks --json` prints it (`{month, groups: [...]}`, figures defined in
//! `store::callbacks`), without a plan: a plan is a file the CLI reads, and no request
//! reaches the file system. Role: supervisor.

use super::{ApiError, AppState};
use crate::report::callbacks::{self, Report};
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct Params {
    month: Option<String>,
    group: Option<String>,
    /// One site's calls (over the central store; a site's own API has only its own).
    site: Option<String>,
}

pub async fn get_callbacks(State(state): State<AppState>, Query(p): Query<Params>) -> Result<Json<Report>, ApiError> {
    let month =
        p.month.filter(|m| !m.trim().is_empty()).ok_or_else(|| ApiError::bad_request("month: required, YYYY-MM"))?;
    let group = p.group.filter(|g| !g.trim().is_empty());
    let site = super::params::nonempty(&p.site);
    let report = state
        .with_db(move |db, cfg| {
            callbacks::report(
                &*db.reader,
                &cfg.config,
                &month,
                group.as_deref(),
                site.as_deref(),
                None,
                ("month", "group"),
            )
            .map_err(ApiError::from)
        })
        .await?;
    Ok(Json(report))
}
