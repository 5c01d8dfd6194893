//! `callwarden approve`: the register of prior approvals for calls of a class a group may
//! not dial (OUT-2), kept in the database (`store::approvals`).
//!
//! ```text
//! callwarden approve EXT CLASS --from D --until D --approver NAME [--note TEXT]
//! callwarden approve --list [--all] [--json]
//! callwarden approve --revoke ID
//! ```
//! With `--store postgres://...` the same three act on the central store's approvals,
//! made for one site (`--site NAME`) or for every site; each site copies those that
//! concern it (`store::central::approvals`).
//! Dates are `YYYY-MM-DD` (whole days in the site's zone, both inclusive) or RFC 3339
//! instants. `replay` and `run` load the approvals in force when they start; a running
//! daemon picks up a new one when it reloads. Exit codes: 0 done, 1 no such approval to
//! revoke or a database error, 2 bad usage or an approval the policy cannot use.

use super::filter::{print_json, print_table};
use super::Common;
use crate::settings::Settings;
use crate::store::approvals::{self, ApprovalRow};
use callwarden_core::config::Approval;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("what").args(["list", "revoke", "extension"]).required(true))]
pub struct Args {
    /// The extension approved (a number or a range like 8020-8029).
    #[arg(requires_all = ["class", "from", "until", "approver"])]
    pub extension: Option<String>,
    /// The class it may dial: long-distance, hk-macau, taiwan, international, mobile, ...
    pub class: Option<String>,
    /// First day (YYYY-MM-DD, site zone) or RFC 3339 instant of the approval.
    #[arg(long)]
    pub from: Option<String>,
    /// Last day (inclusive) or RFC 3339 instant.
    #[arg(long)]
    pub until: Option<String>,
    /// Who approved it.
    #[arg(long)]
    pub approver: Option<String>,
    /// Why (the matter), for the register.
    #[arg(long, default_value = "")]
    pub note: String,
    /// List the approvals in force.
    #[arg(long, conflicts_with_all = ["extension", "revoke"])]
    pub list: bool,
    /// With --list: revoked ones too.
    #[arg(long, requires = "list")]
    pub all: bool,
    /// With --list: one JSON array.
    #[arg(long, requires = "list")]
    pub json: bool,
    /// Revoke the approval with this id (the row is kept, marked revoked).
    #[arg(long, value_name = "ID", conflicts_with = "extension")]
    pub revoke: Option<i64>,
    /// With `--store`: the site the approval is for (default: every site).
    #[arg(long, value_name = "NAME", requires = "extension")]
    pub site: Option<String>,
}

fn now_us() -> i64 {
    // The wall clock is right here: this is when a person registered the approval.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(common.config.as_deref(), common.db.as_deref())?;
    settings.check_data_owner("approve")?;
    let tz_name = settings.config.site.timezone.clone();
    let tz = jiff::tz::TimeZone::get(&tz_name).unwrap_or(jiff::tz::TimeZone::UTC);
    if let Some(url) = common.store.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        return central(a, url, &settings, &tz_name, &tz);
    }
    if a.site.is_some() {
        eprintln!("callwarden: approve --site: only with --store postgres://... (a site's own approvals are its own)");
        return Ok(ExitCode::from(2));
    }
    let db = &settings.db_path;
    let conn =
        approvals::open_rw(db).map_err(|e| anyhow::anyhow!("{}: cannot open the database: {e:#}", db.display()))?;

    if a.list {
        let rows = approvals::list(&conn, a.all, &tz)?;
        if a.json {
            print_json(&rows)?;
        } else {
            print_table(&table(&rows))?;
            println!("{} approval(s)", rows.len());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = a.revoke {
        return Ok(if approvals::revoke(&conn, id, now_us())? {
            println!("approval {id} revoked");
            ExitCode::SUCCESS
        } else {
            let why = match approvals::get(&conn, id, &tz)? {
                Some(r) => format!("was revoked at {}", r.revoked_at.unwrap_or_default()),
                None => "does not exist".to_string(),
            };
            eprintln!("callwarden: approval {id} {why}");
            ExitCode::from(1)
        });
    }
    // clap's requires_all guarantees these with an extension.
    let (Some(extension), Some(class), Some(from), Some(until), Some(approver)) =
        (a.extension, a.class, a.from, a.until, a.approver)
    else {
        eprintln!("callwarden: approve EXT CLASS needs --from, --until and --approver");
        return Ok(ExitCode::from(2));
    };
    let approval = Approval { extension, class, from, until, approver };
    match approvals::add(&conn, &approval, &a.note, &tz_name, now_us()) {
        Ok(id) => {
            println!(
                "approval {id}: {} may dial {} from {} until {} (approved by {})",
                approval.extension, approval.class, approval.from, approval.until, approval.approver
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.downcast_ref::<rusqlite::Error>().is_none() => {
            eprintln!("callwarden: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e),
    }
}

/// `approve` against the central store.
fn central(
    a: Args,
    url: &str,
    settings: &Settings,
    tz_name: &str,
    tz: &jiff::tz::TimeZone,
) -> anyhow::Result<ExitCode> {
    use crate::store::central::{self, approvals as capp, Central};
    let mut c = Central::from_url(url)?;
    if let Some(base) = Central::of(&settings.config.store, &settings.base_dir) {
        // The password and CA of the config's own [store] central, when it names one.
        (c.password_file, c.ca_file) = (base.password_file, base.ca_file);
    }
    let mut client = c.connect()?;
    central::check_readable(&mut client)?;
    if a.list {
        let rows = capp::list(&mut client, a.all, tz)?;
        if a.json {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|(site, r)| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["site"] = if site == "*" { serde_json::Value::Null } else { site.clone().into() };
                    v
                })
                .collect();
            print_json(&v)?;
        } else {
            let mut t = table(&rows.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>());
            for (i, row) in t.iter_mut().enumerate() {
                row.insert(1, if i == 0 { "site".into() } else { rows[i - 1].0.clone() });
            }
            print_table(&t)?;
            println!("{} central approval(s)", rows.len());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = a.revoke {
        return Ok(if capp::revoke(&mut client, id, now_us())? {
            println!("central approval {id} revoked (the sites take it at their next copy)");
            ExitCode::SUCCESS
        } else {
            eprintln!("callwarden: central approval {id} does not exist or was revoked already");
            ExitCode::from(1)
        });
    }
    let (Some(extension), Some(class), Some(from), Some(until), Some(approver)) =
        (a.extension, a.class, a.from, a.until, a.approver)
    else {
        eprintln!("callwarden: approve EXT CLASS needs --from, --until and --approver");
        return Ok(ExitCode::from(2));
    };
    let approval = Approval { extension, class, from, until, approver };
    match capp::add(&mut client, &approval, a.site.as_deref(), &a.note, tz_name, now_us()) {
        Ok(id) => {
            println!(
                "central approval {id}: {} may dial {} from {} until {} at {} (approved by {})",
                approval.extension,
                approval.class,
                approval.from,
                approval.until,
                a.site.as_deref().unwrap_or("every site"),
                approval.approver
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("callwarden: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn table(rows: &[ApprovalRow]) -> Vec<Vec<String>> {
    let header = ["id", "ext", "class", "from", "until", "approver", "note", "registered", "revoked"];
    let mut out = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for r in rows {
        out.push(vec![
            r.id.to_string(),
            r.extension.clone(),
            r.class.clone(),
            r.from.clone(),
            r.until.clone(),
            r.approver.clone(),
            if r.note.is_empty() { "-".into() } else { r.note.clone() },
            super::filter::table_time(&r.created_at),
            r.revoked_at.as_deref().map_or_else(|| "-".into(), super::filter::table_time),
        ]);
    }
    out
}
