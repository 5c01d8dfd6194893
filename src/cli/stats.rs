//! `callwarden stats --by ext|group|day|month`: the figures supervisors ask for (STA-2,
//! ANS-1..3, DUR-1..3, OUT-6) per extension, group, day or month, over the calls the
//! filters select. The definitions are in `store::stats`; the JSON is one array of
//! rows with those field names. `--month YYYY-MM` selects one month; with `--by group` it
//! adds each group's `budget_fen` and `over_budget_fen` (OUT-6 department budgets).

use super::filter::{dash, known_group, open_reader, print_json, print_table, secs, usage_error, yuan, FilterArgs};
use super::Common;
use crate::report;
use crate::store::{query, StatsBy, StatsRow};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// One row per: ext (each of our extensions on a call), group, day, month or site.
    #[arg(long, default_value = "ext", value_parser = ["ext", "group", "day", "month", "site"])]
    pub by: String,
    /// Only calls that started in this month (YYYY-MM, site zone). With `--by group`,
    /// each group's spend is set against its `monthly_budget` (OUT-6).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub month: Option<String>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = super::load_settings(common)?;
    if let Err(e) = known_group(a.filter.group.as_deref(), &settings.config) {
        return Ok(usage_error(&e));
    }
    let reader = open_reader(&settings)?;
    let month = a.month.as_deref().map(|m| query::month_range("--month", m, reader.timezone())).transpose();
    let (by, mut q, month) = match (a.by.parse::<StatsBy>(), a.filter.call_query(reader.timezone()), month) {
        (Ok(by), Ok(q), Ok(m)) => (by, q, m),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(usage_error(&e)),
    };
    if let Some((from, to)) = month {
        (q.from, q.to) = (Some(from), Some(to));
    }
    let rows = report::stats::rows(&*reader, by, &q, month.is_some(), &settings.config)?;
    let budgets = by == StatsBy::Group && month.is_some();
    if a.json {
        print_json(&rows)?;
    } else {
        print_table(&table(by, &rows, budgets))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn table(by: StatsBy, rows: &[StatsRow], budgets: bool) -> Vec<Vec<String>> {
    let header = [
        by.as_str(),
        "calls",
        "in",
        "out",
        "int",
        "answered",
        "missed",
        "≤max rings",
        "rings 0/1/2/3/4/5+",
        "talk s mean",
        "p50",
        "p90",
        "max",
        "effective",
        "long",
        "violations",
        "cost yuan",
    ];
    let mut out = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    if budgets {
        if let Some(h) = out.first_mut() {
            h.extend(["budget yuan".to_string(), "over yuan".to_string()]);
        }
    }
    for r in rows {
        let within = match r.within_max_rings_share {
            Some(share) => format!("{}/{} {:.1}%", r.within_max_rings, r.answered_incoming, share * 100.0),
            None => "-".into(),
        };
        let approx = if r.talk_ms.estimated { "≈" } else { "" };
        let rings = r.rings_before_answer.as_array().map(|n| n.to_string()).join("/");
        let violations = r.violations.iter().map(|(rule, n)| format!("{rule}:{n}")).collect::<Vec<_>>().join(" ");
        out.push(vec![
            r.key.clone().unwrap_or_else(|| "(none)".into()),
            r.calls.to_string(),
            r.inbound.to_string(),
            r.outbound.to_string(),
            r.internal.to_string(),
            r.answered.to_string(),
            r.missed.to_string(),
            within,
            rings,
            dash(r.talk_ms.mean.map(secs)),
            // ≈: estimated from the central store's talk histograms (`talk_ms.estimated`).
            dash(r.talk_ms.p50.map(|v| format!("{}{}", approx, secs(v)))),
            dash(r.talk_ms.p90.map(|v| format!("{}{}", approx, secs(v)))),
            dash(r.talk_ms.max.map(secs)),
            r.effective.to_string(),
            r.long_calls.to_string(),
            if violations.is_empty() { "-".into() } else { violations },
            yuan(r.cost_fen),
        ]);
        if budgets {
            if let Some(line) = out.last_mut() {
                line.push(dash(r.budget_fen.map(yuan)));
                line.push(dash(r.over_budget_fen.map(yuan)));
            }
        }
    }
    out
}
