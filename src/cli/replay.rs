//! `callwarden replay FILE...`: the whole pipeline over capture files, into the store.
//! Several files are merged by packet time (like mergecap), so captures of the same
//! period taken at two points make one timeline. A damaged file stops at the damage: the
//! calls completed before it are still stored, the error names the file and frame, and
//! the exit code is 1.

use super::Common;
use crate::capture::file::{CaptureError, FileCapture};
use crate::driver::Driver;
use crate::settings::Settings;
use crate::sink::alerts::{AlertsOptions, AlertsSink};
use crate::sink::{console::ConsoleSink, recorder, store, Sink};
use anyhow::Context;
use callwarden_core::track::{EndReason, LinkStats};
use callwarden_core::{Counters, Engine, Frame, LinkType, Ts};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Capture files (pcap or pcapng).
    #[arg(required = true, value_name = "PCAP")]
    pub files: Vec<PathBuf>,
    /// Do not print violations as they happen.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Do not POST violations to `[alerts].webhooks` (they are still logged), e.g. when
    /// replaying old captures again.
    #[arg(long)]
    pub no_webhooks: bool,
}

/// How long the end of a replay waits for queued webhook alerts (retries included).
const WEBHOOK_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// One open file and its next frame, copied so several files can be merged.
struct Head {
    cap: FileCapture,
    next: Option<(Ts, LinkType)>,
    buf: Vec<u8>,
    error: Option<CaptureError>,
}

impl Head {
    fn advance(&mut self) {
        self.next = None;
        if self.error.is_some() {
            return;
        }
        match self.cap.next_frame() {
            Ok(Some(f)) => {
                self.buf.clear();
                self.buf.extend_from_slice(f.bytes);
                self.next = Some((f.ts, f.link));
            }
            Ok(None) => {}
            Err(e) => self.error = Some(e),
        }
    }
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(common.config.as_deref(), common.db.as_deref())?;
    settings.check_data_owner("replay")?;
    // Open every file before storing anything: a typo in the last name should not leave
    // a half-done replay behind.
    let mut heads = Vec::with_capacity(a.files.len());
    for f in &a.files {
        let cap = FileCapture::open(f)?;
        heads.push(Head { cap, next: None, buf: Vec::new(), error: None });
    }
    let mut engine = Engine::new(&settings.config)?;
    let (store_sink, writer) = store::open(&settings.db_path, &settings.config.site.timezone)
        .with_context(|| format!("{}: cannot open the database", settings.db_path.display()))?;
    store::approvals::load_into(&mut engine, &settings.db_path)?;
    let webhooks = if a.no_webhooks { &[][..] } else { &settings.config.alerts.webhooks[..] };
    let mut alerts = AlertsSink::new(webhooks, &settings.config.site.timezone, AlertsOptions::default())?;
    let alerts_closer = alerts.take_closer();
    // The recorder after the store: the store has created and migrated the database.
    let (rec_sink, rec, rec_start) = recorder::open(
        &recorder::RecorderConfig::from_settings(&settings),
        recorder::RecorderOptions::default(),
        recorder::wall_clock(),
    )
    .with_context(|| format!("{}: cannot open the recordings folder", settings.recordings_dir.display()))?;
    let mut sinks: Vec<Box<dyn Sink + Send>> = vec![Box::new(store_sink), Box::new(alerts), Box::new(rec_sink)];
    if !a.quiet && !a.json {
        sinks.push(Box::new(ConsoleSink::new(&settings.config.site.timezone)));
    }
    let mut driver = Driver::new(engine, sinks);
    let mut progress = super::progress::Progress::new(&a.files);

    if let [only] = heads.as_mut_slice() {
        // One file: feed its frames straight from the reader's buffer, no copy.
        loop {
            match only.cap.next_frame() {
                Ok(Some(frame)) => {
                    driver.feed(frame);
                    progress.frame(0, driver.engine().counters());
                }
                Ok(None) => break,
                Err(e) => {
                    only.error = Some(e);
                    break;
                }
            }
        }
    } else {
        for h in &mut heads {
            h.advance();
        }
        // k-way merge by packet time; ties go to the earlier file on the command line.
        while let Some(i) =
            heads.iter().enumerate().filter_map(|(i, h)| h.next.map(|(ts, _)| (ts, i))).min().map(|(_, i)| i)
        {
            let h = &mut heads[i];
            if let Some((ts, link)) = h.next {
                driver.feed(Frame { ts, link, bytes: &h.buf });
            }
            h.advance();
            progress.frame(i, driver.engine().counters());
        }
    }
    progress.finish();
    driver.finish(EndReason::CaptureEnded);
    let counters = driver.engine().counters().clone();
    let link = driver.engine().track_stats().link;
    let sink_errors = driver.sink_errors;
    drop(driver);
    let written = writer.close().with_context(|| format!("{}: storing calls failed", settings.db_path.display()))?;
    let recorded = rec.close().with_context(|| format!("{}: recording failed", settings.recordings_dir.display()))?;
    let alert_stats = alerts_closer.map(|c| c.close(WEBHOOK_GRACE)).unwrap_or_default();
    if !webhooks.is_empty() && alert_stats.delivered < alert_stats.raised * webhooks.len() as u64 {
        eprintln!(
            "callwarden: webhooks: {} of {} alert(s) delivered ({} failed, {} dropped; see the log)",
            alert_stats.delivered,
            alert_stats.raised * webhooks.len() as u64,
            alert_stats.failed,
            alert_stats.dropped
        );
    }

    let errors: Vec<&CaptureError> = heads.iter().filter_map(|h| h.error.as_ref()).collect();
    if a.json {
        print_json(&counters, &written, &errors, &settings, &recorded, &rec_start, &link);
    } else {
        print_summary(&a.files, &counters, &written, &settings, &recorded, &rec_start, &link);
    }
    for e in &errors {
        eprintln!("callwarden: {e}");
    }
    if sink_errors > 0 {
        eprintln!("callwarden: {sink_errors} outputs could not be delivered (see the log)");
    }
    Ok(if errors.is_empty() && sink_errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_summary(
    files: &[PathBuf],
    c: &Counters,
    w: &store::WriteSummary,
    s: &Settings,
    r: &recorder::RecorderSummary,
    rs: &recorder::StartReport,
    link: &LinkStats,
) {
    println!("replayed {} file(s) into {}", files.len(), s.db_path.display());
    println!("  packets read     {:>10}", c.frames);
    println!("  bytes read       {:>10}", c.bytes);
    println!("  SIP messages     {:>10}", c.sip_messages);
    println!("  RTP packets      {:>10}", c.rtp_packets);
    println!("  RTCP packets     {:>10}", c.rtcp_packets);
    println!("  calls            {:>10}  (stored {}, new {})", c.calls_ended, w.calls, w.calls_new);
    println!("  violations       {:>10}", c.violations);
    let linked = link.by_header + link.by_session_id + link.by_hep + link.by_inference;
    if linked > 0 {
        println!(
            "  legs linked      {:>10}  (header {}, session-id {}, hep {}, inferred {}; ambiguous {}, conflicts {})",
            linked, link.by_header, link.by_session_id, link.by_hep, link.by_inference, link.ambiguous, link.conflicts
        );
    }
    if c.rtp_relayed_copies > 0 {
        println!(
            "  RTP relay copies {:>10}  (the same media on a second leg, not recorded twice)",
            c.rtp_relayed_copies
        );
    }
    println!(
        "  recordings       {:>10}  (complete {}, empty {}, kept before {}, frames {}, raw packets {})",
        r.started, r.completed, r.empty, r.skipped_existing, r.frames_written, r.raw_packets
    );
    if let Some(rep) = rs.repair.as_ref().filter(|rep| !rep.is_empty()) {
        println!("  repaired at start {:>9}  (missing {})", rep.repaired.len(), rep.missing.len());
    }
    if !rs.expire.expired.is_empty() {
        println!("  expired at start {:>10}", rs.expire.expired.len());
    }
    let total: u64 = c.total_drops();
    println!("  dropped          {:>10}", total);
    for (why, n) in &c.drops {
        println!("    {:<16} {:>10}", why.as_str(), n);
    }
}

fn print_json(
    c: &Counters,
    w: &store::WriteSummary,
    errors: &[&CaptureError],
    s: &Settings,
    r: &recorder::RecorderSummary,
    rs: &recorder::StartReport,
    link: &LinkStats,
) {
    let drops: serde_json::Map<String, serde_json::Value> =
        c.drops.iter().map(|(k, v)| (k.as_str().to_string(), (*v).into())).collect();
    let doc = serde_json::json!({
        "db": s.db_path.display().to_string(),
        "packets": c.frames,
        "bytes": c.bytes,
        "sip_messages": c.sip_messages,
        "sip_fallback": c.sip_fallback,
        "sip_by_kind": c.sip_by_kind,
        "rtp_packets": c.rtp_packets,
        "rtcp_packets": c.rtcp_packets,
        "calls": c.calls_ended,
        "calls_stored": w.calls,
        "calls_new": w.calls_new,
        "violations": c.violations,
        "link": link,
        "rtp_relayed_copies": c.rtp_relayed_copies,
        "dropped": c.total_drops(),
        "drops": drops,
        "recordings": r,
        "recordings_start": rs,
        "errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
    });
    println!("{doc:#}");
}
