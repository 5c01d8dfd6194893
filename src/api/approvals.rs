//! Admin: the prior approvals of OUT-2 stored in the `approvals` table (0003), the same
//! rows `callwarden approve` writes. `GET /api/approvals` lists them (revoked ones too,
//! with `revoked_at`); `POST /api/approvals` registers one (`extension`, `class`, `from`,
//! `until`, `approver`, optional `note`); `POST /api/approvals/{id}/revoke` revokes one.
//! After a change the daemon is told (`AppState::with_approvals_changed`) so its policy
//! takes the stored approvals again.
//! Reads and writes go through `store::approvals` (shared with `callwarden approve`).
//! Invariants: a new approval is validated as the config's `[[approval]]` is (a known
//! class, dates `YYYY-MM-DD` or RFC 3339, from ≤ until) before it is written; a revoked
//! approval stays in the table (an audit trail), with the time it was revoked.

use super::{now_us, ApiError, AppState};
use crate::store::approvals::{self as store_approvals, ApprovalRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use callwarden_core::config::{Approval, DateOrInstant};
use callwarden_core::policy::Class;
use rusqlite::Connection;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct NewApproval {
    pub extension: String,
    pub class: String,
    pub from: String,
    pub until: String,
    pub approver: String,
    #[serde(default)]
    pub note: String,
}

/// Approvals in force (not revoked), as the policy takes them.
pub fn stored(conn: &Connection) -> Result<Vec<Approval>, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT extension, class, valid_from, valid_until, approver FROM approvals WHERE revoked_us IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Approval { extension: r.get(0)?, class: r.get(1)?, from: r.get(2)?, until: r.get(3)?, approver: r.get(4)? })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Every approval, revoked ones too, newest first (the store's rows, as `approve --list`).
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<ApprovalRow>>, ApiError> {
    let mut rows =
        state.with_db(|db, cfg| store_approvals::list(db.sqlite()?, true, &cfg.tz).map_err(ApiError::any)).await?;
    rows.reverse();
    Ok(Json(rows))
}

/// Check a new approval as the config's `[[approval]]` is checked.
pub fn validate(a: &NewApproval, tz: &jiff::tz::TimeZone) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    if a.extension.trim().is_empty() {
        return bad("extension: empty".into());
    }
    if Class::parse(&a.class).is_none() {
        return bad(format!(
            "class: {:?} is not a class; one of {}",
            a.class,
            Class::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if a.approver.trim().is_empty() {
        return bad("approver: empty (who approved it is part of the record)".into());
    }
    let from = DateOrInstant::parse(&a.from).and_then(|d| d.start(tz));
    let until = DateOrInstant::parse(&a.until).and_then(|d| d.end(tz));
    match (from, until) {
        (None, _) => bad(format!("from: {:?} is not a date YYYY-MM-DD or an RFC 3339 instant", a.from)),
        (_, None) => bad(format!("until: {:?} is not a date YYYY-MM-DD or an RFC 3339 instant", a.until)),
        (Some(f), Some(u)) if f >= u => bad(format!("until: {:?} is before from {:?}", a.until, a.from)),
        _ => Ok(()),
    }
}

pub async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<super::Principal>,
    Json(a): Json<NewApproval>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let cfg = state.config();
    validate(&a, &cfg.tz)?;
    let tz = cfg.config.site.timezone.clone();
    let id = state
        .with_writer(move |conn| {
            let note = if a.note.is_empty() {
                format!("via api by {}", who.name)
            } else {
                format!("{} (via api by {})", a.note, who.name)
            };
            let approval = Approval {
                extension: a.extension.trim().to_string(),
                class: a.class.trim().to_string(),
                from: a.from.trim().to_string(),
                until: a.until.trim().to_string(),
                approver: a.approver.trim().to_string(),
            };
            // The store checks it as the policy will read it (as `callwarden approve` does).
            store_approvals::add(conn, &approval, &note, &tz, now_us())
                .map_err(|e| ApiError::bad_request(format!("{e:#}")))
        })
        .await?;
    state.approvals_changed();
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))))
}

pub async fn revoke(State(state): State<AppState>, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    let changed =
        state.with_writer(move |conn| store_approvals::revoke(conn, id, now_us()).map_err(ApiError::any)).await?;
    if !changed {
        return Err(ApiError::not_found(format!("no approval {id} in force")));
    }
    state.approvals_changed();
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(class: &str, from: &str, until: &str) -> NewApproval {
        NewApproval {
            extension: "8020".into(),
            class: class.into(),
            from: from.into(),
            until: until.into(),
            approver: "manager".into(),
            note: String::new(),
        }
    }

    #[test]
    fn validates_like_the_config() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        assert!(validate(&a("long-distance", "2026-11-01", "2026-11-30"), &tz).is_ok());
        assert!(validate(&a("long-distance", "2026-11-01", "2026-11-01"), &tz).is_ok(), "one whole day");
        assert!(validate(&a("longdistance", "2026-11-01", "2026-11-30"), &tz)
            .unwrap_err()
            .message
            .starts_with("class:"));
        assert!(validate(&a("mobile", "2026-11-31", "2026-12-01"), &tz).unwrap_err().message.starts_with("from:"));
        assert!(validate(&a("mobile", "2026-12-01", "2026-11-01"), &tz).unwrap_err().message.starts_with("until:"));
        let mut x = a("mobile", "2026-11-01", "2026-11-30");
        x.approver = " ".into();
        assert!(validate(&x, &tz).is_err());
    }
}
