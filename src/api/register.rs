//! `GET /api/register`: the long-distance register of OUT-3 (长途电话记录表) — every
//! outbound call of the classes long-distance, hk-macau, taiwan and international in the
//! filtered period (usually `month=YYYY-MM`), oldest first, with the columns the rule
//! asks for: user (our extension), callee, start, end, talk time, class, cost, and the
//! `matter` and `outcome` columns left empty for people to fill in. `format=csv` exports
//! it (`lang=zh` for Chinese column names).
//! Invariant: the same calls `GET /api/calls?direction=outbound&class=...` returns for
//! each of the four classes, merged by start.

use super::csv_out::{csv_response, opt};
use super::params::{Filters, Paging};
use super::{ApiError, AppState, Db};
use crate::sink::store::{CallQuery, CallRow};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// The classes OUT-2 restricts and OUT-3 registers.
pub const REGISTER_CLASSES: [&str; 4] = ["long-distance", "hk-macau", "taiwan", "international"];

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

/// The register rows for the filters in `q` (its class, if set, must be a register class).
pub fn rows(db: &Db, q: &CallQuery) -> Result<Vec<RegisterRow>, ApiError> {
    let classes: Vec<&str> = match q.class.as_deref() {
        None => REGISTER_CLASSES.to_vec(),
        Some(c) if REGISTER_CLASSES.contains(&c) => vec![c],
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "class: {c:?} is not in the register; one of {}",
                REGISTER_CLASSES.join(", ")
            )))
        }
    };
    let mut all: Vec<CallRow> = Vec::new();
    for class in classes {
        let q = CallQuery {
            class: Some(class.to_string()),
            direction: Some("outbound".into()),
            limit: None,
            after: None,
            newest_first: false,
            ..q.clone()
        };
        all.extend(db.reader.calls(&q).map_err(ApiError::any)?);
    }
    all.sort_by(|a, b| (a.started_us, &a.call_id).cmp(&(b.started_us, &b.call_id)));
    Ok(all.into_iter().map(RegisterRow::of).collect())
}

const HEADER_EN: [&str; 11] =
    ["user", "callee", "start", "end", "talk_s", "class", "cost_yuan", "group", "call_id", "matter", "outcome"];
const HEADER_ZH: [&str; 11] = [
    "使用人(分机)",
    "被叫号码",
    "开始时间",
    "结束时间",
    "通话时长(秒)",
    "类别",
    "费用(元)",
    "部门",
    "呼叫标识",
    "事由",
    "结果",
];

fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let f = fen.unsigned_abs();
    format!("{sign}{}.{:02}", f / 100, f % 100)
}

/// Whole seconds of talk, rounded half up: the register is read by people.
fn talk_s(ms: i64) -> String {
    ((ms.max(0) + 500) / 1000).to_string()
}

pub async fn get_register(
    State(state): State<AppState>,
    Query(f): Query<Filters>,
    Query(p): Query<Paging>,
    Query(lang): Query<Lang>,
) -> Result<Response, ApiError> {
    let cfg = state.config();
    let q = f.call_query(&cfg.tz)?;
    let csv = p.csv()?;
    let bom = p.bom();
    let rows = state.with_db(move |db, _| rows(db, &q)).await?;
    if !csv {
        return Ok(Json(serde_json::json!({ "rows": rows })).into_response());
    }
    let zh = lang.lang.as_deref() == Some("zh");
    let name = match &f.month {
        Some(m) if m.len() == 7 && m.bytes().all(|b| b.is_ascii_digit() || b == b'-') => format!("register-{m}.csv"),
        _ => "register.csv".to_string(),
    };
    let (mut sink, res) = csv_response(&name, bom);
    tokio::task::spawn_blocking(move || {
        if !sink.row(if zh { HEADER_ZH } else { HEADER_EN }) {
            return;
        }
        for r in &rows {
            let line = [
                r.user.clone(),
                r.callee.clone(),
                r.start.clone(),
                r.end.clone(),
                talk_s(r.talk_ms),
                r.class.clone(),
                opt(r.cost_fen.map(yuan)),
                opt(r.group.as_deref()),
                r.call_id.clone(),
                String::new(),
                String::new(),
            ];
            if !sink.row(line) {
                return;
            }
        }
        sink.finish();
    });
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_seconds() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(12345), "123.45");
        assert_eq!(yuan(-7), "-0.07");
        assert_eq!(talk_s(0), "0");
        assert_eq!(talk_s(1499), "1");
        assert_eq!(talk_s(1500), "2");
        assert_eq!(talk_s(-5), "0");
        assert_eq!(HEADER_EN.len(), HEADER_ZH.len());
    }
}
