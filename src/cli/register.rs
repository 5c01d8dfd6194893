//! `callwarden register --month 2026-11 [--ext E] [--group G] [--out FILE]`: the month's
//! long-distance register (OUT-3, 长途电话记录表) as CSV, for the general manager.
//!
//! One row per answered outbound call of a long-distance class (`long-distance`,
//! `hk-macau`, `taiwan`, `international`) that started in the month (site zone), oldest
//! first. Columns: `user` (our extension), `callee` (the number as normalised), `start`
//! (answer time; the INVITE's for an unanswered call with `--unanswered`), `end`,
//! `duration` (talk, H:MM:SS), `class`, `cost_yuan` (2 decimals), `cost_fen`, and `matter`
//! and `outcome` left empty for people to fill in. Times are `YYYY-MM-DD HH:MM:SS` in the
//! site's zone, which spreadsheets read as times.
//!
//! The file is UTF-8 with a byte-order mark: supervisors open it in Excel, which reads a
//! CSV without a BOM in the local ANSI code page and garbles any Chinese in it (a matter
//! typed in and saved back, a display name). Quoting is the `csv` crate's (RFC 4180).

use super::filter::{open_reader, usage_error};
use super::Common;
use crate::report::register::{self, write_csv, REGISTER_CLASSES};
use crate::store::{query, Filter};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The month, YYYY-MM (calls that started in it, site zone).
    #[arg(long)]
    pub month: String,
    /// Only this extension's calls.
    #[arg(long)]
    pub ext: Option<String>,
    /// Only calls of this group.
    #[arg(long)]
    pub group: Option<String>,
    /// Only this class (one of long-distance, hk-macau, taiwan, international).
    #[arg(long, value_parser = REGISTER_CLASSES)]
    pub class: Option<String>,
    /// Only this site's calls (`[site] name`; over the central store, one of several).
    #[arg(long)]
    pub site: Option<String>,
    /// Also list calls that were not answered (duration 0, cost 0).
    #[arg(long)]
    pub unanswered: bool,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = super::load_settings(common)?;
    let reader = open_reader(&settings)?;
    let (from, to) = match query::month_range("--month", &a.month, reader.timezone()) {
        Ok(r) => r,
        Err(e) => return Ok(usage_error(&e)),
    };
    let q = Filter {
        from: Some(from),
        to: Some(to),
        ext: a.ext.clone(),
        group: a.group.clone(),
        class: a.class.clone(),
        site: a.site.clone(),
        ..Filter::default()
    };
    let calls = register::calls(&*reader, &q)?;
    let rows = register::rows(&calls, None, a.unanswered);
    match &a.out {
        Some(path) => {
            let f = std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
            write_csv(std::io::BufWriter::new(f), &rows)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            eprintln!("wrote {} call(s) of {} to {}", rows.len(), a.month, path.display());
        }
        None => write_csv(std::io::stdout().lock(), &rows)?,
    }
    Ok(ExitCode::SUCCESS)
}
