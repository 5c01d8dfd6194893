//! `callwarden recordings ...`: the auditors' commands over the recordings (REC-1..4):
//! `list` (the filters of `calls`, plus --status/--month), `play ID`, `export ID FILE`,
//! `verify`, `sample N --group G --month YYYY-MM [--seed S]`, `log`, `expire`.
//! Every play, export and sample draw is written to the playback log before the audio is
//! handed out, with who (`--as`, else $SUDO_USER, else $USER) and when (the wall clock).
//! Evidence is never handed out unchecked: `export` hashes the bytes it copies and keeps
//! the copy only when they match the stored SHA-256; `play` checks the file first.
//! Exit codes: 0 ok, 1 a check failed (verify found problems, a file changed or missing),
//! 2 bad usage.

use super::filter::{
    dash, known_group, open_reader, print_json, print_table, secs, table_time, usage_error, FilterArgs,
};
use super::Common;
use crate::settings::Settings;
use crate::sink::recorder::{self, maintain, sample};
use crate::store::recordings::{
    self as rows, PlaybackAction, PlaybackEntry, PlaybackQuery, RecordingRow, RecordingStatus, Via,
};
use crate::store::{query, Filter, QueryError};
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Who is listening or exporting, for the playback log (default $SUDO_USER, $USER).
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub who: Option<String>,
    #[command(subcommand)]
    pub command: Cmd,
}

impl Args {
    /// Only reads the store (`list`, `log`): may read the central store (`--store`).
    pub fn reads_only(&self) -> bool {
        matches!(self.command, Cmd::List(_) | Cmd::Log(_))
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// List recordings (the filters of `calls`, plus --status and --month).
    List(ListArgs),
    /// Play a recording: WAV to stdout when it is not a terminal, else aplay/paplay/ffplay.
    Play { id: String },
    /// Copy a recording's WAV to FILE after checking its SHA-256 (refused if it changed).
    Export { id: String, file: PathBuf },
    /// Re-hash every finished recording; list changed, missing and unexpected files, and
    /// recordings without a call record (the process was killed during the call).
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Draw N recordings of a group and month for the spot check (REC-3), reproducibly.
    Sample {
        n: usize,
        #[arg(long)]
        group: String,
        /// YYYY-MM, in the site's zone.
        #[arg(long)]
        month: String,
        /// Default: derived from the group and month, so the month's draw is fixed.
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// The playback log: who played, exported or drew what, when.
    Log(LogArgs),
    /// Delete the files of recordings past their retention (rows stay, `expired`).
    Expire,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// recording, complete, repaired, incomplete, missing, expired, empty.
    #[arg(long)]
    pub status: Option<String>,
    /// YYYY-MM of the call's start, in the site's zone.
    #[arg(long)]
    pub month: Option<String>,
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// From this date (YYYY-MM-DD, site zone) or RFC 3339 instant, inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this date (inclusive) or RFC 3339 instant (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub who: Option<String>,
    /// A recording id.
    #[arg(long)]
    pub recording: Option<String>,
    /// Only this site's log (`[site] name`).
    #[arg(long)]
    pub site: Option<String>,
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = super::load_settings(common)?;
    let who = who(a.who.as_deref());
    match a.command {
        Cmd::List(l) => list(&settings, &l),
        Cmd::Play { id } => play(&settings, &who, &id),
        Cmd::Export { id, file } => export(&settings, &who, &id, &file),
        Cmd::Verify { json } => verify(&settings, json),
        Cmd::Sample { n, group, month, seed, json } => draw(&settings, &who, n, &group, &month, seed, json),
        Cmd::Log(l) => log(&settings, &l),
        Cmd::Expire => {
            settings.check_data_owner("recordings expire")?;
            let r = recorder::expire(&recorder::RecorderConfig::from_settings(&settings), recorder::wall_clock())?;
            println!("{} recording(s) expired, {} file(s) deleted", r.expired.len(), r.files_deleted);
            for (id, e) in &r.failed {
                eprintln!("callwarden: recording {id}: {e}");
            }
            Ok(if r.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// `--as`, else the user behind sudo, else the login user.
fn who(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_string)
        .or_else(|| std::env::var("SUDO_USER").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn list(settings: &Settings, a: &ListArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = known_group(a.filter.group.as_deref(), &settings.config) {
        return Ok(usage_error(&e));
    }
    let reader = open_reader(settings)?;
    let cq = match a.filter.call_query(reader.timezone()) {
        Ok(q) => q,
        Err(e) => return Ok(usage_error(&e)),
    };
    let mut q = cq.clone();
    q.limit = a.limit;
    if let Some(s) = &a.status {
        match RecordingStatus::parse(s) {
            Some(st) => q.status = Some(st),
            None => {
                eprintln!(
                    "callwarden: --status: {s:?} is not one of recording, complete, repaired, incomplete, missing, expired, empty"
                );
                return Ok(ExitCode::from(2));
            }
        }
    }
    if let Some(m) = &a.month {
        if query::parse_month(m).is_none() {
            eprintln!("callwarden: {}", QueryError::Month { param: "--month", value: m.clone() });
            return Ok(ExitCode::from(2));
        }
        q.month = Some(m.clone());
    }
    let recs = reader.recordings(&q)?;
    if a.json {
        print_json(&recs)?;
    } else {
        print_table(&table(&recs))?;
        println!("{} recording(s)", recs.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn table(recs: &[RecordingRow]) -> Vec<Vec<String>> {
    let header = ["id", "start", "caller", "callee", "group", "status", "length s", "rate", "dtmf", "path"];
    let mut out = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for r in recs {
        let mut status = r.status.clone();
        if !r.undecodable.is_empty() {
            let pts: Vec<String> = r.undecodable.iter().map(u8::to_string).collect();
            status.push_str(&format!(" (undecodable PT {})", pts.join(",")));
        }
        if let Some(by) = &r.superseded_by {
            // The part of a call an earlier replay saw: kept, not the call's recording.
            status.push_str(&format!(" (superseded by {by})"));
        }
        if !r.call_record && r.status != RecordingStatus::Recording.as_str() {
            status.push_str(" (no call record)");
        }
        out.push(vec![
            r.id.clone(),
            table_time(&r.call_started_at),
            r.caller.clone(),
            r.callee.clone(),
            dash(r.group.as_deref()),
            status,
            secs(r.duration_ms),
            dash(r.sample_rate),
            if r.dtmf.is_empty() { "-".into() } else { r.dtmf.clone() },
            r.path.clone(),
        ]);
    }
    out
}

/// The row of `id`, or a message and exit code 1.
fn find(settings: &Settings, id: &str) -> anyhow::Result<Result<RecordingRow, ExitCode>> {
    let reader = open_reader(settings)?;
    Ok(match reader.recording(id)? {
        Some(r) => Ok(r),
        None => {
            eprintln!("callwarden: no recording {id:?}");
            Err(ExitCode::from(1))
        }
    })
}

/// Say loudly why a file cannot be handed out; `None` when it can.
fn refuse(row: &RecordingRow, check: &maintain::FileCheck, dir: &Path) -> Option<ExitCode> {
    let path = row.file(dir);
    match check {
        maintain::FileCheck::Ok { .. } => None,
        maintain::FileCheck::Changed { expected, actual } => {
            eprintln!(
                "callwarden: REFUSED: recording {} ({}) has been changed since it was finished: \
                 SHA-256 stored {expected}, file now {actual}",
                row.id,
                path.display()
            );
            Some(ExitCode::from(1))
        }
        maintain::FileCheck::Missing => {
            eprintln!("callwarden: recording {}: its file {} is missing", row.id, path.display());
            Some(ExitCode::from(1))
        }
        maintain::FileCheck::NoFile { status } => {
            eprintln!("callwarden: recording {} has no finished file (status {status})", row.id);
            Some(ExitCode::from(1))
        }
    }
}

fn log_access(settings: &Settings, who: &str, id: &str, action: PlaybackAction, detail: String) -> anyhow::Result<()> {
    let entry = PlaybackEntry {
        at: recorder::wall_clock(),
        who: who.to_string(),
        recording_id: id.to_string(),
        action,
        via: Via::Cli,
        detail,
    };
    rows::log_playback_at(&settings.db_path, &entry)?;
    Ok(())
}

fn play(settings: &Settings, who: &str, id: &str) -> anyhow::Result<ExitCode> {
    let row = match find(settings, id)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let dir = &settings.recordings_dir;
    let check = maintain::check_file(dir, &row).with_context(|| row.file(dir).display().to_string())?;
    if let Some(code) = refuse(&row, &check, dir) {
        return Ok(code);
    }
    let path = row.file(dir);
    if !std::io::stdout().is_terminal() {
        log_access(settings, who, id, PlaybackAction::Play, "stdout".into())?;
        let mut f = std::fs::File::open(&path).with_context(|| path.display().to_string())?;
        let mut out = std::io::stdout().lock();
        std::io::copy(&mut f, &mut out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    // A terminal: hand the file to the first player installed.
    let players: [(&str, &[&str]); 3] =
        [("aplay", &["-q"]), ("paplay", &[]), ("ffplay", &["-nodisp", "-autoexit", "-loglevel", "error"])];
    for (prog, args) in players {
        let Some(bin) = which(prog) else { continue };
        log_access(settings, who, id, PlaybackAction::Play, prog.to_string())?;
        let status = std::process::Command::new(bin).args(args).arg(&path).status()?;
        return Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    eprintln!("callwarden: no player found (aplay, paplay, ffplay); redirect stdout to a file: play {id} > x.wav");
    Ok(ExitCode::from(1))
}

/// The first `prog` on $PATH.
fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| p.is_file())
}

/// Copy the WAV to a temporary file beside `to`, hashing the bytes copied; keep it (rename)
/// only when they hash to the stored SHA-256, so what lands at `to` is what was checked.
fn export(settings: &Settings, who: &str, id: &str, to: &Path) -> anyhow::Result<ExitCode> {
    let row = match find(settings, id)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let dir = &settings.recordings_dir;
    let check = maintain::check_file(dir, &row).with_context(|| row.file(dir).display().to_string())?;
    if let Some(code) = refuse(&row, &check, dir) {
        return Ok(code);
    }
    let Some(expected) = row.sha256.clone() else { return Ok(ExitCode::from(1)) };
    if to.exists() {
        eprintln!("callwarden: {} exists; export does not overwrite files", to.display());
        return Ok(ExitCode::from(1));
    }
    log_access(settings, who, id, PlaybackAction::Export, to.display().to_string())?;
    let src = row.file(dir);
    let tmp = {
        let mut name = to.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "export".into());
        name.push(".partial");
        to.with_file_name(name)
    };
    let copied = (|| -> anyhow::Result<String> {
        let mut input = std::fs::File::open(&src).with_context(|| src.display().to_string())?;
        let mut out = std::fs::File::create(&tmp).with_context(|| tmp.display().to_string())?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = input.read(&mut buf)?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else { break };
            hasher.update(chunk);
            out.write_all(chunk)?;
        }
        out.sync_all()?;
        Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
    })();
    let actual = match copied {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if actual != expected {
        let _ = std::fs::remove_file(&tmp);
        eprintln!(
            "callwarden: REFUSED: recording {id} changed while it was copied: SHA-256 stored {expected}, copied {actual}"
        );
        return Ok(ExitCode::from(1));
    }
    std::fs::rename(&tmp, to).with_context(|| to.display().to_string())?;
    println!("exported {id} to {} (sha256 {expected})", to.display());
    Ok(ExitCode::SUCCESS)
}

fn verify(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let (repair, r) = recorder::verify(&settings.db_path, &settings.recordings_dir)?;
    if json {
        print_json(&serde_json::json!({ "repair": repair, "verify": r, "clean": r.clean() }))?;
    } else {
        if let Some(rep) = repair.as_ref().filter(|rep| !rep.is_empty()) {
            println!(
                "repaired {} unfinished recording(s), {} missing, {} empty",
                rep.repaired.len(),
                rep.missing.len(),
                rep.empty.len()
            );
        }
        for p in &r.changed {
            println!(
                "CHANGED     {}  {}  stored {}  now {}",
                p.id,
                p.path,
                dash(p.expected_sha256.as_deref()),
                dash(p.actual_sha256.as_deref())
            );
        }
        for p in &r.missing {
            println!("MISSING     {}  {}", p.id, p.path);
        }
        for f in &r.unexpected {
            println!("UNEXPECTED  {f}");
        }
        for id in &r.without_call {
            println!("NO CALL     {id}  (a recording without a call record: the process stopped during the call)");
        }
        println!(
            "{} file(s) checked, {} ok, {} changed, {} missing, {} unexpected, {} in progress, {} without a call record",
            r.checked,
            r.ok,
            r.changed.len(),
            r.missing.len(),
            r.unexpected.len(),
            r.in_progress.len(),
            r.without_call.len()
        );
    }
    Ok(if r.clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn draw(
    settings: &Settings,
    who: &str,
    n: usize,
    group: &str,
    month: &str,
    seed: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Err(e) = known_group(Some(group), &settings.config) {
        return Ok(usage_error(&e));
    }
    if query::parse_month(month).is_none() {
        eprintln!("callwarden: {}", QueryError::Month { param: "--month", value: month.into() });
        return Ok(ExitCode::from(2));
    }
    let reader = open_reader(settings)?;
    let q = Filter { group: Some(group.to_string()), month: Some(month.to_string()), ..Default::default() };
    // Every recording of the group and month with audio is a candidate, whatever its
    // status: a missing or expired one drawn is itself a finding, and the draw does not
    // move when a status changes.
    let all: Vec<RecordingRow> = reader.recordings(&q)?.into_iter().filter(RecordingRow::sampleable).collect();
    let ids: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
    let seed = seed.unwrap_or_else(|| sample::default_seed(group, month));
    let picked = sample::draw(&ids, n, seed);
    let chosen: Vec<&RecordingRow> = picked.iter().filter_map(|id| all.iter().find(|r| &r.id == id)).collect();
    for r in &chosen {
        log_access(
            settings,
            who,
            &r.id,
            PlaybackAction::Sample,
            format!("group={group} month={month} seed={seed} n={n}"),
        )?;
    }
    if json {
        print_json(&serde_json::json!({
            "group": group, "month": month, "seed": seed, "candidates": ids.len(), "drawn": chosen,
        }))?;
    } else {
        print_table(&table(&chosen.iter().map(|r| (*r).clone()).collect::<Vec<_>>()))?;
        println!("{} of {} recording(s) drawn, seed {seed}", chosen.len(), ids.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn log(settings: &Settings, a: &LogArgs) -> anyhow::Result<ExitCode> {
    let reader = open_reader(settings)?;
    let tz = reader.timezone().clone();
    let range = (|| -> Result<_, query::QueryError> {
        Ok((
            a.from.as_deref().map(|s| query::range_start("--from", s, &tz)).transpose()?,
            a.to.as_deref().map(|s| query::range_end("--to", s, &tz)).transpose()?,
        ))
    })();
    let (from, to) = match range {
        Ok(r) => r,
        Err(e) => return Ok(usage_error(&e)),
    };
    let q = PlaybackQuery {
        from,
        to,
        who: a.who.clone(),
        recording: a.recording.clone(),
        site: a.site.clone(),
        limit: a.limit,
        ..PlaybackQuery::default()
    };
    let lines = reader.playback_log(&q)?;
    if a.json {
        print_json(&lines)?;
    } else {
        let mut t = vec![["at", "who", "recording", "action", "via", "detail"].iter().map(|s| s.to_string()).collect()];
        for l in &lines {
            t.push(vec![
                table_time(&l.at),
                l.who.clone(),
                l.recording_id.clone(),
                l.action.clone(),
                l.via.clone(),
                l.detail.clone(),
            ]);
        }
        print_table(&t)?;
        println!("{} access(es)", lines.len());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_who() {
        assert_eq!(who(Some("auditor1")), "auditor1");
    }
}
