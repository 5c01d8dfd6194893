//! `callwarden violations`: the stored violations matching the filters, in the order they
//! were detected, as an aligned table or one JSON array (`id`, `rule`, `kind`, `call_id`,
//! `extension`, `number`, `detected_at`, `fine_fen`, `detail`).

use super::filter::{
    dash, known_group, open_reader, print_json, print_table, table_time, usage_error, yuan, FilterArgs,
};
use super::Common;
use crate::store::{Filter, ViolationRow};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many violations (the earliest first).
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
    let q = match a.filter.call_query(reader.timezone()) {
        Ok(q) => q,
        Err(e) => return Ok(usage_error(&e)),
    };
    let vq = Filter { limit: a.limit, ..q.unpaged() };
    let rows = reader.violations(&vq)?;
    if a.json {
        print_json(&rows)?;
    } else {
        print_table(&table(&rows))?;
        let fines: i64 = rows.iter().filter_map(|v| v.fine_fen).sum();
        let pending = rows.iter().filter(|v| v.fine_fen.is_none()).count();
        println!("{} violation(s), fines {} yuan, {} pending", rows.len(), yuan(fines), pending);
    }
    Ok(ExitCode::SUCCESS)
}

fn table(rows: &[ViolationRow]) -> Vec<Vec<String>> {
    let header = ["detected", "rule", "kind", "ext", "number", "fine yuan", "call", "detail"];
    let mut out = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for v in rows {
        out.push(vec![
            table_time(&v.detected_at),
            v.rule.clone(),
            v.kind.clone(),
            v.extension.clone(),
            if v.number.is_empty() { "-".into() } else { v.number.clone() },
            v.fine_fen.map_or_else(|| "pending".into(), yuan),
            dash(v.call_id.as_deref()),
            v.detail.clone(),
        ]);
    }
    out
}
