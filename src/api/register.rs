//! `GET /api/register`: the long-distance register of OUT-3 (长途电话记录表) — every
//! outbound call of the classes long-distance, hk-macau, taiwan and international in the
//! filtered period (usually `month=YYYY-MM`), oldest first, with the columns the rule
//! asks for: user (our extension), callee, start, end, talk time, class, cost, and the
//! `matter` and `outcome` columns left empty for people to fill in. Answered calls only,
//! unless `unanswered=1` (as `callwarden register`). `format=csv` exports it: the same
//! rows and columns as `callwarden register` writes (`bom=1` for its byte-order mark;
//! `lang=zh` for Chinese column names); JSON rows carry more (RFC 3339 times, group,
//! Call-ID) for the page.
//! Invariant: the same calls `GET /api/calls?direction=outbound&class=...` returns for
//! each of the four classes, merged by start.

use super::csv_out::csv_response;
use super::params::{FilterParams, Paging};
use super::{ApiError, AppState};
use crate::report::register::{self as report, HEADER, HEADER_ZH};
use crate::store::CallRow;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterRow {
    pub user: String,
    pub callee: String,
    pub dialled: String,
    pub start: String,
    pub end: String,
    pub answered: bool,
    pub talk_ms: i64,
    pub class: String,
    pub cost_fen: Option<i64>,
    pub group: Option<String>,
    pub call_id: String,
    pub matter: String,
    pub outcome: String,
}

#[derive(Deserialize, Default)]
pub struct Lang {
    lang: Option<String>,
    /// `1`: unanswered calls too (as `callwarden register --unanswered`).
    unanswered: Option<String>,
}

impl RegisterRow {
    fn of(c: CallRow) -> RegisterRow {
        RegisterRow {
            user: c.caller,
            callee: if c.number.is_empty() { c.callee } else { c.number },
            dialled: c.dialled,
            start: c.started_at,
            end: c.ended_at,
            answered: c.answered,
            talk_ms: c.talk_ms,
            class: c.class.unwrap_or_default(),
            cost_fen: c.cost_fen,
            group: c.group,
            call_id: c.call_id,
            matter: String::new(),
            outcome: String::new(),
        }
    }
}

pub async fn get_register(
    State(state): State<AppState>,
    Query(f): Query<FilterParams>,
    Query(p): Query<Paging>,
    Query(opts): Query<Lang>,
) -> Result<Response, ApiError> {
    let cfg = state.config();
    let q = f.call_query(&cfg.tz)?;
    let csv = p.csv()?;
    let bom = p.bom();
    let unanswered = matches!(opts.unanswered.as_deref(), Some("1" | "true"));
    let calls = state.with_db(move |db, _| report::calls(&*db.reader, &q).map_err(ApiError::from)).await?;
    if !csv {
        let rows: Vec<RegisterRow> =
            calls.into_iter().filter(|c| c.answered || unanswered).map(RegisterRow::of).collect();
        return Ok(Json(serde_json::json!({ "rows": rows })).into_response());
    }
    let zh = opts.lang.as_deref() == Some("zh");
    let name = match &f.month {
        Some(m) if m.len() == 7 && m.bytes().all(|b| b.is_ascii_digit() || b == b'-') => format!("register-{m}.csv"),
        _ => "register.csv".to_string(),
    };
    let (mut sink, res) = csv_response(&name, bom);
    tokio::task::spawn_blocking(move || {
        // The same rows and columns as `callwarden register` (one document, two ways to get it).
        let rows = report::rows(&calls, None, unanswered);
        if !sink.row(if zh { HEADER_ZH } else { HEADER }) {
            return;
        }
        for r in &rows {
            if !sink.row(r) {
                return;
            }
        }
        sink.finish();
    });
    Ok(res)
}
