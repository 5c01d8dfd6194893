//! FilterParams shared by `calls`, `stats`, `violations` and `recordings list`: --from, --to
//! (dates or RFC 3339), --ext, --group, --class, --rule, --number; and what those
//! commands share around them: opening the database read-only, printing aligned tables,
//! money and durations as people read them.

pub use crate::report::{table_time, yuan};
use crate::settings::Settings;
use crate::store::central::read::CentralReader;
use crate::store::{query, Filter, QueryError, Reader, Store};
use jiff::tz::TimeZone;
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// From this date (YYYY-MM-DD, site zone) or RFC 3339 instant, inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this date (inclusive) or RFC 3339 instant (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// Calls where this extension is caller or callee.
    #[arg(long)]
    pub ext: Option<String>,
    /// Calls of this group (a [[group]] name).
    #[arg(long)]
    pub group: Option<String>,
    /// A class name: internal, emergency, premium, toll-free, hk-macau, taiwan,
    /// international, mobile, long-distance, local, sip-uri.
    #[arg(long)]
    pub class: Option<String>,
    /// A rule id (OUT-1) or violation kind (premium-rate).
    #[arg(long)]
    pub rule: Option<String>,
    /// Calls whose dialled or normalised number contains this.
    #[arg(long)]
    pub number: Option<String>,
    /// Only this site's rows (`[site] name`; over the central store, one site of several).
    #[arg(long)]
    pub site: Option<String>,
}

impl FilterArgs {
    /// The call query these filters describe, dates judged in `tz`.
    pub fn call_query(&self, tz: &TimeZone) -> Result<Filter, QueryError> {
        Ok(Filter {
            from: self.from.as_deref().map(|s| query::range_start("--from", s, tz)).transpose()?,
            to: self.to.as_deref().map(|s| query::range_end("--to", s, tz)).transpose()?,
            ext: self.ext.clone(),
            group: self.group.clone(),
            class: self.class.as_deref().map(|c| query::class_name("--class", c)).transpose()?,
            rule: self.rule.clone(),
            number: self.number.clone(),
            site: self.site.clone(),
            ..Filter::default()
        })
    }
}

/// `--group NAME` must name a `[[group]]` of the config: an unknown name (a typo) would
/// silently match nothing. The error lists the groups there are.
pub fn known_group(group: Option<&str>, cfg: &callwarden_core::config::Config) -> Result<(), String> {
    match group {
        Some(g) if !cfg.groups.iter().any(|x| x.name == g) => {
            let names: Vec<&str> = cfg.groups.iter().map(|x| x.name.as_str()).collect();
            Err(if names.is_empty() {
                format!("--group: {g:?}: the config has no [[group]]")
            } else {
                format!("--group: {g:?} is not a [[group]] of the config; one of {}", names.join(", "))
            })
        }
        _ => Ok(()),
    }
}

/// Open the database of `settings` read-only, in the site's zone, its rows named with
/// `[site] name`; an error names the file. With `--store postgres://...` the central
/// store of all sites instead (checked readable, never migrated). The subcommands ask it
/// through the `Store` interface only.
pub fn open_reader(settings: &Settings) -> anyhow::Result<Box<dyn Store>> {
    if let Some(url) = &settings.read_store {
        return Ok(Box::new(open_central(settings, url)?));
    }
    let path = &settings.db_path;
    Reader::open(path)
        .and_then(|r| r.with_timezone(&settings.config.site.timezone))
        .map(|r| Box::new(r.with_site(&settings.config.site.name)) as Box<dyn Store>)
        .map_err(|e| crate::store::reader::open_error(path, e))
}

/// The central store at `url` (`--store`), read in the config's zone; when the URL is the
/// configured `[store] central`, with its password file and CA, at its read replica
/// `central_read` if one is set; else with PGPASSWORD.
pub fn open_central(settings: &Settings, url: &str) -> anyhow::Result<CentralReader> {
    CentralReader::for_store(url, &settings.config.store, &settings.base_dir, &settings.config.site.timezone)
}

/// A bad filter value is bad usage: say which and exit 2.
pub fn usage_error(e: &impl std::fmt::Display) -> ExitCode {
    eprintln!("callwarden: {e}");
    ExitCode::from(2)
}

/// Write rows as an aligned table (the first row is the header).
pub fn print_table(rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut tw = tabwriter::TabWriter::new(std::io::stdout().lock()).padding(2);
    for row in rows {
        // A tab or newline inside a value (a SIP display name, a detail) would break the
        // columns.
        let cells: Vec<String> = row.iter().map(|c| c.replace(['\t', '\n', '\r'], " ")).collect();
        writeln!(tw, "{}", cells.join("\t"))?;
    }
    tw.flush()?;
    Ok(())
}

/// Print `value` as one pretty JSON document.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    // As an io::Error, so a closed pipe is recognised in `cli::main` (serde_json's own
    // error does not name its io::Error as its source).
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// Milliseconds as seconds with one decimal ("7.0").
pub fn secs(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    // Round to the nearest tenth, half up, in integers.
    let tenths = (ms.unsigned_abs() + 50) / 100;
    format!("{sign}{}.{}", tenths / 10, tenths % 10)
}

pub fn dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(6500), "65.00");
        assert_eq!(yuan(1234), "12.34");
        assert_eq!(yuan(-5), "-0.05");
        assert_eq!(secs(7000), "7.0");
        assert_eq!(secs(16_949), "16.9");
        assert_eq!(secs(16_950), "17.0");
        assert_eq!(secs(0), "0.0");
        assert_eq!(table_time("2026-03-02T07:30:00.000000+08:00"), "2026-03-02 07:30:00");
        assert_eq!(table_time("short"), "short");
    }

    #[test]
    fn filter_to_query() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let f = FilterArgs {
            from: Some("2026-03-02".into()),
            to: Some("2026-03-02".into()),
            class: Some("long-distance".into()),
            ..FilterArgs::default()
        };
        let q = f.call_query(&tz).unwrap();
        assert_eq!(q.from, Some(callwarden_core::Ts(1_772_380_800_000_000)));
        assert_eq!(q.to, Some(callwarden_core::Ts(1_772_467_200_000_000)));
        assert_eq!(q.class.as_deref(), Some("long-distance"));
        let bad = FilterArgs { class: Some("longdistance".into()), ..FilterArgs::default() };
        assert!(bad.call_query(&tz).unwrap_err().to_string().starts_with("--class:"));
        let bad = FilterArgs { to: Some("tomorrow".into()), ..FilterArgs::default() };
        assert!(bad.call_query(&tz).unwrap_err().to_string().starts_with("--to:"));
    }
}
