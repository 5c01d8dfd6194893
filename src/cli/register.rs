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

use super::filter::{open_reader, usage_error, yuan};
use super::Common;
use crate::settings::Settings;
use crate::store::{query, CallQuery, CallRow};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Classes the register lists: every call that leaves the local and mobile network.
pub const REGISTER_CLASSES: [&str; 4] = ["long-distance", "hk-macau", "taiwan", "international"];

/// The UTF-8 byte-order mark Excel needs to read the file as UTF-8.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

pub const HEADER: [&str; 10] =
    ["user", "callee", "start", "end", "duration", "class", "cost_yuan", "cost_fen", "matter", "outcome"];

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
    /// Also list calls that were not answered (duration 0, cost 0).
    #[arg(long)]
    pub unanswered: bool,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

/// The register's rows (without the header) for these calls.
pub fn rows(calls: &[CallRow], class: Option<&str>, unanswered: bool) -> Vec<[String; 10]> {
    calls
        .iter()
        .filter(|c| c.direction == "outbound")
        .filter(|c| match (c.class.as_deref(), class) {
            (Some(k), Some(want)) => k == want,
            (Some(k), None) => REGISTER_CLASSES.contains(&k),
            (None, _) => false,
        })
        .filter(|c| c.answered || unanswered)
        .map(|c| {
            let start = c.answered_at.as_deref().filter(|_| c.answered).unwrap_or(&c.started_at);
            let talk = if c.answered { c.talk_ms } else { 0 };
            let cost = c.cost_fen.unwrap_or(0);
            [
                c.caller.clone(),
                c.number.clone(),
                sheet_time(start),
                sheet_time(&c.ended_at),
                hms(talk),
                c.class.clone().unwrap_or_default(),
                yuan(cost),
                cost.to_string(),
                String::new(),
                String::new(),
            ]
        })
        .collect()
}

/// RFC 3339 from the store → "YYYY-MM-DD HH:MM:SS" (the zone's local time, as stored).
fn sheet_time(rfc3339: &str) -> String {
    super::filter::table_time(rfc3339)
}

/// Milliseconds → "H:MM:SS", whole seconds rounded down (the talk the bill counts from).
pub fn hms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Write the register (BOM, header, rows) as CSV.
pub fn write_csv<W: Write>(mut w: W, rows: &[[String; 10]]) -> anyhow::Result<()> {
    w.write_all(BOM)?;
    let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(w);
    csv.write_record(HEADER)?;
    for r in rows {
        csv.write_record(r)?;
    }
    csv.flush()?;
    Ok(())
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(common.config.as_deref(), common.db.as_deref())?;
    let reader = open_reader(&settings)?;
    let (from, to) = match query::month_range("--month", &a.month, reader.timezone()) {
        Ok(r) => r,
        Err(e) => return Ok(usage_error(&e)),
    };
    let q = CallQuery {
        from: Some(from),
        to: Some(to),
        ext: a.ext.clone(),
        group: a.group.clone(),
        direction: Some("outbound".into()),
        ..CallQuery::default()
    };
    let calls = reader.calls(&q)?;
    let rows = rows(&calls, a.class.as_deref(), a.unanswered);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(hms(0), "0:00:00");
        assert_eq!(hms(3_310), "0:00:03");
        assert_eq!(hms(61_999), "0:01:01");
        assert_eq!(hms(3_600_000 * 2 + 59_000), "2:00:59");
        assert_eq!(hms(-5), "0:00:00");
    }

    #[test]
    fn csv_has_bom_header_and_quotes() {
        let row = [
            "8020".to_string(),
            "01087654321".into(),
            "2026-11-24 14:18:47".into(),
            "2026-11-24 14:18:51".into(),
            "0:00:03".into(),
            "long-distance".into(),
            "0.30".into(),
            "30".into(),
            "客户, \"北京\"".into(),
            String::new(),
        ];
        let mut out = Vec::new();
        write_csv(&mut out, &[row]).unwrap();
        assert!(out.starts_with(BOM));
        let text = String::from_utf8(out[3..].to_vec()).unwrap();
        assert_eq!(
            text,
            "user,callee,start,end,duration,class,cost_yuan,cost_fen,matter,outcome\r\n\
             8020,01087654321,2026-11-24 14:18:47,2026-11-24 14:18:51,0:00:03,long-distance,0.30,30,\"客户, \"\"北京\"\"\",\r\n"
        );
    }
}
