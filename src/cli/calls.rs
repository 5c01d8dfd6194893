//! `callwarden calls`: the stored call records matching the filters, oldest first, as an
//! aligned table or one JSON array (the field names of DESIGN.md).

use super::filter::{
    dash, known_group, open_reader, print_json, print_table, secs, table_time, usage_error, FilterArgs,
};
use super::Common;
use crate::store::CallRow;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many calls (the oldest first).
    #[arg(long)]
    pub limit: Option<usize>,
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
    let mut q = match a.filter.call_query(reader.timezone()) {
        Ok(q) => q,
        Err(e) => return Ok(usage_error(&e)),
    };
    q.limit = a.limit;
    let calls = reader.calls(&q)?;
    if a.json {
        print_json(&calls)?;
    } else {
        print_table(&table(&calls))?;
        println!("{} call(s)", calls.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn table(calls: &[CallRow]) -> Vec<Vec<String>> {
    let header = [
        "start",
        "caller",
        "callee/dialled",
        "direction",
        "class",
        "rings",
        "ring s",
        "talk s",
        "end",
        "status",
        "legs",
        "violations",
    ];
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for c in calls {
        let callee = if c.dialled.is_empty() || c.dialled == c.callee {
            c.callee.clone()
        } else {
            format!("{}/{}", c.callee, c.dialled)
        };
        let violations = c.violations.iter().map(|v| format!("{} {}", v.rule, v.kind)).collect::<Vec<_>>().join(", ");
        rows.push(vec![
            table_time(&c.started_at),
            c.caller.clone(),
            callee,
            c.direction.clone(),
            dash(c.class.as_deref()),
            c.rings.to_string(),
            if c.ringing_at.is_some() { secs(c.ring_ms) } else { "-".into() },
            if c.answered { secs(c.talk_ms) } else { "-".into() },
            c.end_reason.clone(),
            dash(c.sip_status),
            // Dialogs the call was made of, with what linked them when more than one.
            match &c.link {
                Some(l) => format!("{} ({l})", c.legs.len()),
                None => c.legs.len().to_string(),
            },
            if violations.is_empty() { "-".into() } else { violations },
        ]);
    }
    rows
}
