//! `callwarden callbacks --month 2026-11 [--group G] [--site S] [--plan FILE] [--json]`: the monthly
//! call-back report (STA-3) as a table or JSON. The figures and their definitions are in
//! `store::callbacks` (the API's `/api/callbacks` gives the same); this reads the plan file
//! and prints.

use super::filter::{open_reader, print_json, print_table, usage_error};
use super::Common;
use crate::report::callbacks::{self, parse_plan, Planned, Report};
use crate::report::ReportError;
use anyhow::Context;
use callwarden_core::policy::Policy;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How many never-called planned numbers the table shows (the JSON has them all).
const TABLE_NEVER_CALLED: usize = 5;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The month, YYYY-MM (calls that started in it, site zone).
    #[arg(long)]
    pub month: String,
    /// Only this group (a [[group]] name).
    #[arg(long)]
    pub group: Option<String>,
    /// Only this site's calls (`[site] name`; over the central store, one of several).
    #[arg(long)]
    pub site: Option<String>,
    /// Numbers planned for call-back this month (list or CSV, first column); needs --group.
    #[arg(long, value_name = "FILE", requires = "group")]
    pub plan: Option<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn read_plan(path: &Path, policy: &Policy) -> anyhow::Result<Vec<Planned>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the plan", path.display()))?;
    parse_plan(&text, |n| policy.normalise_written(n)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = super::load_settings(common)?;
    let cfg = &settings.config;
    let reader = open_reader(&settings)?;
    let plan = match &a.plan {
        Some(path) => {
            // The config was validated by `Settings::load`; this compiles the same plan.
            let policy = Policy::new(cfg).map_err(|e| anyhow::anyhow!("config: {e}"))?;
            Some((path.display().to_string(), read_plan(path, &policy)?))
        }
        None => None,
    };
    let plan = plan.as_ref().map(|(file, p)| (file.as_str(), p.as_slice()));
    let report = match callbacks::report(
        &*reader,
        cfg,
        &a.month,
        a.group.as_deref(),
        a.site.as_deref(),
        plan,
        ("--month", "--group"),
    ) {
        Ok(r) => r,
        Err(ReportError::Db(e)) => return Err(e),
        Err(e) => return Ok(usage_error(&e)),
    };
    if a.json {
        print_json(&report)?;
    } else {
        print_table(&table(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(share: Option<f64>) -> String {
    share.map_or_else(|| "-".to_string(), |s| format!("{:.1}%", s * 100.0))
}

fn table(r: &Report) -> Vec<Vec<String>> {
    let with_plan = r.groups.iter().any(|g| g.plan.is_some());
    let mut header: Vec<String> =
        ["group", "made", "numbers", "answered", "answered %", "effective", "effective ≥ s"].map(String::from).into();
    if with_plan {
        header.extend(["planned", "reached", "completion %", "plan answered", "never called"].map(String::from));
    }
    let mut rows = vec![header];
    for g in &r.groups {
        let mut row = vec![
            g.group.clone(),
            g.made.to_string(),
            g.numbers.to_string(),
            g.answered.to_string(),
            pct(g.answered_rate),
            g.effective.to_string(),
            format!("{}", g.effective_min_talk_s),
        ];
        if let Some(p) = &g.plan {
            let shown: Vec<&str> = p.never_called.iter().take(TABLE_NEVER_CALLED).map(String::as_str).collect();
            let more = if p.never_called.len() > shown.len() { " ..." } else { "" };
            let never = if shown.is_empty() {
                "0".to_string()
            } else {
                format!("{}: {}{more}", p.never_called.len(), shown.join(" "))
            };
            row.extend([
                p.planned.to_string(),
                p.reached.to_string(),
                pct(p.completion_rate),
                p.answered.to_string(),
                never,
            ]);
        }
        rows.push(row);
    }
    rows
}
