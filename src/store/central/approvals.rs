//! Approvals made centrally (central migration 0010): registered, revoked and listed in
//! the central store by `callwarden approve --store postgres://...`, for one site or for
//! every site, and copied by each site's forwarder into the site's own `approvals` table
//! (`pull`), where the policy reads them like the site's own.
//! May use: postgres, the SQLite approvals table, core's approval compiler.
//! Invariants: like the site's own, an approval is checked with the policy's compiler
//! before it is stored centrally, and again in the site's zone before a site takes it (a
//! row that site cannot use is logged and left out); rows are never deleted, a revocation
//! only sets `revoked_us`; a site's copy changes only when the central row did.

use super::pg_error;
use crate::store::approvals::ApprovalRow;
use crate::store::reader::format_ts;
use anyhow::{anyhow, bail};
use callwarden_core::config::Approval;
use callwarden_core::policy::groups::{ApprovalRule, Zone};
use postgres::Client;
use rusqlite::{params, Connection};

/// Check `a` as the policy reads it (in zone `tz`) and store it centrally, for `site`
/// (None: every site). Returns its central id.
pub fn add(
    client: &mut Client,
    a: &Approval,
    site: Option<&str>,
    note: &str,
    tz: &str,
    now_us: i64,
) -> anyhow::Result<i64> {
    let zone = Zone::new(tz).map_err(anyhow::Error::msg)?;
    ApprovalRule::compile(a, &zone).map_err(anyhow::Error::msg)?;
    if a.approver.trim().is_empty() {
        bail!("approval for \"{}\": the approver is empty", a.extension);
    }
    if let Some(site) = site {
        let known =
            client.query_opt("SELECT 1 FROM sites WHERE name = $1", &[&site]).map_err(|e| anyhow!(pg_error(&e)))?;
        if known.is_none() {
            bail!("--site {site:?}: no such site in the central store (a site appears once it has forwarded)");
        }
    }
    let row = client
        .query_one(
            "INSERT INTO approvals (site, extension, class, valid_from, valid_until, approver, note, created_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &site,
                &a.extension.trim(),
                &a.class.trim(),
                &a.from.trim(),
                &a.until.trim(),
                &a.approver.trim(),
                &note,
                &now_us,
            ],
        )
        .map_err(|e| anyhow!(pg_error(&e)))?;
    Ok(row.get(0))
}

/// Revoke central approval `id`; `Ok(false)` when there is none or it was revoked already.
pub fn revoke(client: &mut Client, id: i64, now_us: i64) -> anyhow::Result<bool> {
    let n = client
        .execute("UPDATE approvals SET revoked_us = $2 WHERE id = $1 AND revoked_us IS NULL", &[&id, &now_us])
        .map_err(|e| anyhow!(pg_error(&e)))?;
    Ok(n == 1)
}

/// The central approvals (revoked ones too when `all`), oldest first, with their site
/// ("*" for every site).
pub fn list(client: &mut Client, all: bool, tz: &jiff::tz::TimeZone) -> anyhow::Result<Vec<(String, ApprovalRow)>> {
    let sql = format!(
        "SELECT id, coalesce(site, '*'), extension, class, valid_from, valid_until, approver, note, created_us, revoked_us
         FROM approvals {} ORDER BY id",
        if all { "" } else { "WHERE revoked_us IS NULL" }
    );
    let rows = client.query(&sql, &[]).map_err(|e| anyhow!(pg_error(&e)))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(1),
                ApprovalRow {
                    id: r.get(0),
                    extension: r.get(2),
                    class: r.get(3),
                    from: r.get(4),
                    until: r.get(5),
                    approver: r.get(6),
                    note: r.get(7),
                    created_at: format_ts(r.get(8), tz),
                    revoked_at: r.get::<_, Option<i64>>(9).map(|us| format_ts(us, tz)),
                },
            )
        })
        .collect())
}

/// Copy the central approvals for `site` (its own and every site's) into the site
/// database `conn`, judged in the site's zone `tz`. Returns how many rows of the site's
/// copy changed (0: nothing to reload).
pub fn pull(client: &mut Client, conn: &mut Connection, site: &str, tz: &str) -> anyhow::Result<usize> {
    let rows = client
        .query(
            "SELECT id, extension, class, valid_from, valid_until, approver, note, created_us, revoked_us
             FROM approvals WHERE site IS NULL OR site = $1 ORDER BY id",
            &[&site],
        )
        .map_err(|e| anyhow!(pg_error(&e)))?;
    let zone = Zone::new(tz).map_err(anyhow::Error::msg)?;
    let tx = conn.transaction()?;
    let mut changed = 0;
    {
        // Written only when the central row differs from the copy: an unchanged pull
        // changes nothing, so the pipeline is not told to reload for nothing.
        let mut upsert = tx.prepare(
            "INSERT INTO approvals (central_id, extension, class, valid_from, valid_until, approver, note, created_us, revoked_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (central_id) WHERE central_id IS NOT NULL DO UPDATE SET
                 extension = excluded.extension, class = excluded.class, valid_from = excluded.valid_from,
                 valid_until = excluded.valid_until, approver = excluded.approver, note = excluded.note,
                 revoked_us = excluded.revoked_us
             WHERE approvals.revoked_us IS NOT excluded.revoked_us OR approvals.extension <> excluded.extension
                 OR approvals.class <> excluded.class OR approvals.valid_from <> excluded.valid_from
                 OR approvals.valid_until <> excluded.valid_until OR approvals.approver <> excluded.approver
                 OR approvals.note <> excluded.note",
        )?;
        for r in &rows {
            let (id, extension, class, from, until, approver): (i64, String, String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let a = Approval { extension, class, from, until, approver };
            if let Err(e) = ApprovalRule::compile(&a, &zone) {
                tracing::warn!(central_id = id, error = %e, "a central approval this site cannot use is left out");
                continue;
            }
            let (note, created, revoked): (String, i64, Option<i64>) = (r.get(6), r.get(7), r.get(8));
            changed += upsert.execute(params![
                id,
                a.extension,
                a.class,
                a.from,
                a.until,
                a.approver,
                note,
                created,
                revoked
            ])?;
        }
    }
    tx.commit()?;
    Ok(changed)
}

/// Copy the central approvals for `site` now, on a connection of its own (a pipeline
/// opening judges with the central approvals of the moment; the forwarder then keeps the
/// copy current). The central schema is brought up to date first, as a forwarder would.
pub fn pull_now(central: &super::Central, conn: &mut Connection, site: &str, tz: &str) -> anyhow::Result<usize> {
    let mut client = central.connect()?;
    super::migrate(&mut client)?;
    pull(&mut client, conn, site, tz)
}
