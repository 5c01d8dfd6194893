//! `GET /api/policy/check?from=EXT&to=NUMBER[&at=RFC3339]`: would this call be allowed,
//! which class is the number, which group is the caller in, and which rules would it
//! break (with the fine as configured). The answer is `Policy::check` of the current
//! config with the approvals stored by `callwarden approve` / the admin API, judged at
//! `at` (default: now) — the same verdict the engine gives at the INVITE.

use super::approvals;
use super::{now_us, ApiError, AppState};
use crate::store::reader::format_ts;
use axum::extract::{Query, State};
use axum::Json;
use callwarden_core::policy::Policy;
use callwarden_core::Ts;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct CheckParams {
    from: Option<String>,
    to: Option<String>,
    at: Option<String>,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct RuleVerdict {
    pub rule: String,
    pub kind: String,
    /// Fen; null when it depends on the call's charge (premium-rate).
    pub fine_fen: Option<i64>,
    pub detail: String,
}

#[derive(Serialize, Debug)]
pub struct CheckAnswer {
    pub from: String,
    pub to: String,
    pub at: String,
    pub number: String,
    pub class: String,
    pub group: Option<String>,
    pub allowed: bool,
    pub violations: Vec<RuleVerdict>,
    /// Stored approvals taken into account (0 when the database could not be read).
    pub stored_approvals: usize,
}

pub async fn check(State(state): State<AppState>, Query(p): Query<CheckParams>) -> Result<Json<CheckAnswer>, ApiError> {
    let from = p.from.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let to = p.to.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::bad_request("from and to are needed: /api/policy/check?from=8001&to=016800123"));
    };
    let (from, to) = (from.to_string(), to.to_string());
    let at = match p.at.as_deref().filter(|s| !s.is_empty()) {
        None => Ts(now_us()),
        Some(s) => {
            let t: jiff::Timestamp = s.parse().map_err(|_| {
                ApiError::bad_request(format!("at: {s:?} is not an RFC 3339 instant such as 2026-11-02T10:00:00+08:00"))
            })?;
            Ts(t.as_microsecond())
        }
    };
    // Stored approvals are read when the database is there; a policy question is still
    // answered from the config when it is not (and says how many approvals it saw).
    let stored = state
        .with_db(|db, _| match &db.conn {
            Some(conn) => approvals::stored(conn),
            None => Ok(Vec::new()),
        })
        .await
        .unwrap_or_default();
    let cfg = state.config();
    let answer = tokio::task::spawn_blocking(move || -> Result<CheckAnswer, ApiError> {
        let mut policy = Policy::new(&cfg.config).map_err(ApiError::internal)?;
        let n = stored.len();
        for e in policy.set_approvals(stored) {
            tracing::warn!(error = e, "a stored approval cannot be used");
        }
        let c = policy.check(&from, &to, at);
        Ok(CheckAnswer {
            at: format_ts(at.as_micros(), &cfg.tz),
            from,
            to,
            number: c.number,
            class: c.class.as_str().to_string(),
            group: c.group,
            allowed: c.violations.is_empty(),
            violations: c
                .violations
                .into_iter()
                .map(|v| RuleVerdict {
                    rule: v.rule,
                    kind: v.kind.as_str().into(),
                    fine_fen: v.fine_fen,
                    detail: v.detail,
                })
                .collect(),
            stored_approvals: n,
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(answer))
}
