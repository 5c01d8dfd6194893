//! `callwarden replay FILE|DIR...`: the whole pipeline over capture files, into the store.
//! Several files — or a folder of them, such as a rotated capture set — are merged by
//! packet time (like mergecap), whatever their names, so captures of the same period
//! taken at two points make one timeline and a call open at the end of one rotated file
//! continues in the next. Files replayed one at a time, in separate runs into the same
//! database, give the same records: the calls still open when a replay's capture ends are
//! stored `capture-ended` and handed over (`store::replay_open`); the next replay whose
//! first packet follows within the call timeout re-reads the earlier files from the
//! first such call's start, passing on only those calls (`Driver::warm_up`), so a call
//! whose rest is in its files is completed under the same identity, and one whose rest
//! never comes stays capture-ended. The recording of a call so completed (or read past
//! its cut by a later run over the same files) is made again, whole, and supersedes the
//! part the earlier replay recorded (`Driver::completes`, the recorder keeps that one).
//! `--follow` plans the same from its first file and hands over the same at its stop.
//! A damaged file stops at the damage: the
//! calls completed before it are still stored, the error names the file and frame, and
//! the exit code is 1.

use super::Common;
use crate::capture::file::{CaptureError, FileCapture};
use crate::pipeline::{Driver, Mode, Pipeline};
use crate::settings::Settings;
use crate::sink::{console::ConsoleSink, recorder, Sink};
use crate::store;
use crate::store::replay_open::{self, OpenCall};
use anyhow::Context;
use callwarden_core::track::{CallEvent, EndReason, LinkStats};
use callwarden_core::{Counters, Dur, Frame, LinkType, Output, Ts};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Capture files (pcap or pcapng), or folders: every capture file in a folder (a
    /// rotated set), all merged by packet time.
    #[arg(required = true, value_name = "PCAP|DIR")]
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
    /// Watch one folder that tcpdump/dumpcap rotate into (-G, -C, ring buffer): read each
    /// file once a newer one appears (it is closed then), until SIGINT/SIGTERM, which reads
    /// what the newest file holds and ends.
    #[arg(long)]
    pub follow: bool,
}

/// How long the end of a replay waits for queued webhook alerts (retries included).
const WEBHOOK_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// One open file and its next frame, copied so several files can be merged.
struct Head {
    cap: FileCapture,
    next: Option<(Ts, LinkType)>,
    buf: Vec<u8>,
    error: Option<CaptureError>,
    /// Frames before this are skipped (an earlier replay's file re-read from here).
    from: Option<Ts>,
}

impl Head {
    fn advance(&mut self) {
        self.next = None;
        while self.error.is_none() {
            let (buf, from) = (&mut self.buf, self.from);
            let read = self.cap.next_frame_with(|f| {
                if from.is_some_and(|from| f.ts < from) {
                    return None;
                }
                buf.clear();
                buf.extend_from_slice(f.bytes);
                Some((f.ts, f.link))
            });
            match read {
                Ok(Some(None)) => continue,
                Ok(Some(next)) => {
                    self.next = next;
                    return;
                }
                Ok(None) => return,
                Err(e) => self.error = Some(e),
            }
        }
    }
}

/// A capture to replay and the time of its first frame (`None`: it has none, or the first
/// read failed — opened first so its error is reported).
struct Source {
    path: PathBuf,
    first: Option<Ts>,
    /// Read from this packet time on (a file of an earlier replay, re-read to resume).
    from: Option<Ts>,
}

/// The files named on the command line, a folder standing for every capture file in it
/// (a rotated set written by tcpdump `-G`/`-C`/`-W` or dumpcap's ring buffer, whatever
/// the names). Each file is opened once here, so a typo or a file that is not a capture
/// stops the replay before anything is stored; in a folder, files that are not captures
/// are skipped with a note.
fn sources(args: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(arg)
                .with_context(|| format!("{}: cannot list the folder", arg.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
                .collect();
            names.sort();
            let before = out.len();
            for p in names {
                match probe(&p) {
                    Ok(src) => out.push(src),
                    Err(CaptureError::NotCapture { .. }) => {
                        eprintln!("callwarden: {}: not a capture, skipped", p.display())
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if out.len() == before {
                anyhow::bail!("{}: no pcap or pcapng files in this folder", arg.display());
            }
        } else {
            out.push(probe(arg)?);
        }
    }
    Ok(out)
}

fn probe(path: &std::path::Path) -> Result<Source, CaptureError> {
    let mut cap = FileCapture::open(path)?;
    // On the file's clock, as the merge will read it: a forged first stamp must not sort
    // the file after the others.
    let first = cap.next_frame_with(|f| f.ts).ok().flatten();
    Ok(Source { path: path.to_path_buf(), first, from: None })
}

/// A path as stored for a later replay: absolute, so it is found from any folder.
fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The calls left open by earlier replays that this one continues, and what it re-reads
/// for them.
#[derive(Default)]
struct Resume {
    /// Rows to delete when this replay is done: resumed (left open again, they are stored
    /// anew) or too old ever to be resumed.
    consumed: Vec<OpenCall>,
    /// Call-ID, From tag, start (µs) of the calls resumed.
    resumed: HashSet<(String, String, i64)>,
    /// The calls left open that this replay reads past the end of (the resumed ones, and
    /// those whose cut falls inside its own files): their recordings are made whole.
    completes: HashSet<(String, String, i64)>,
    /// The earlier files to re-read, from the first resumed call's start.
    prefix: Vec<Source>,
    /// How many they were (`prefix` is taken to be read).
    prefix_len: usize,
}

/// Which open calls this replay, whose first packet is at `first`, continues: those left
/// by a replay that ended before `first` and no more than `horizon` (the call timeout)
/// before it — later than that the engine would have timed them out. A call whose
/// earlier files are gone is not resumed (said once), and stays capture-ended. A call
/// whose cut falls inside this replay's own files is read whole by it when
/// `reads_past(cut)` — a file starts after the cut, or `--follow`, which reads on until
/// stopped: its recording then replaces the partial one too.
fn plan_resume(
    db: &Path,
    srcs: &[Source],
    first: Ts,
    horizon: Dur,
    reads_past: impl Fn(Ts) -> bool,
) -> anyhow::Result<Resume> {
    let mut r = Resume::default();
    let ours: HashSet<PathBuf> = srcs.iter().map(|s| absolute(&s.path)).collect();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut from = Ts::MAX;
    for c in replay_open::load(db)? {
        let end = Ts::from_micros(c.capture_end_us);
        if end < first - horizon {
            r.consumed.push(c);
            continue;
        }
        if end > first || c.started_us > first.as_micros() {
            // Not before this capture: left for the replay of what follows it, unless this
            // one reads past the cut (its record then replaces the row, see `hand_over`).
            if reads_past(end) && c.started_us >= first.as_micros() {
                r.completes.insert(identity(&c));
            }
            continue;
        }
        if let Some(gone) = c.files.iter().find(|f| !f.is_file()) {
            eprintln!(
                "callwarden: call {} left open by an earlier replay is not resumed: {} is gone; it stays capture-ended",
                c.call_id,
                gone.display()
            );
            r.consumed.push(c);
            continue;
        }
        for f in &c.files {
            if !ours.contains(f) && !files.contains(f) {
                files.push(f.clone());
            }
        }
        from = from.min(Ts::from_micros(c.started_us));
        r.resumed.insert(identity(&c));
        r.completes.insert(identity(&c));
        r.consumed.push(c);
    }
    for f in files {
        let mut s = probe(&f)?;
        s.first = s.first.map(|t| t.max(from));
        s.from = Some(from);
        r.prefix.push(s);
    }
    r.prefix_len = r.prefix.len();
    Ok(r)
}

/// Call-ID, From tag ("" for none), start (µs): a call's identity across replays.
fn identity(c: &OpenCall) -> (String, String, i64) {
    (c.call_id.clone(), c.from_tag.clone().unwrap_or_default(), c.started_us)
}

/// The calls that ended in this replay: those the capture's end cut (`capture-ended`), and
/// the identities of those that ended otherwise (whole).
#[derive(Default)]
struct Ended {
    cut: Vec<(String, String, Ts)>,
    whole: HashSet<(String, String, i64)>,
}

/// Takes the records of the calls as they end (`Ended`).
struct EndedCalls(Arc<Mutex<Ended>>);

impl Sink for EndedCalls {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        if let Output::Call(CallEvent::Ended(r)) = out {
            if let Ok(mut e) = self.0.lock() {
                if r.end_reason == EndReason::CaptureEnded {
                    e.cut.push((r.call_id.clone(), r.from_tag.clone(), r.started_at));
                } else {
                    e.whole.insert((r.call_id.clone(), r.from_tag.clone(), r.started_at.as_micros()));
                }
            }
        }
        Ok(())
    }
}

/// Feed one file to its end (or its damage) straight from the reader's buffer, no copy.
fn feed_file(
    cap: &mut FileCapture,
    driver: &mut Driver,
    errors: &mut Vec<CaptureError>,
    progress: &mut super::progress::Progress,
    index: usize,
    last: &mut Option<Ts>,
) {
    loop {
        let fed = cap.next_frame_with(|frame| {
            *last = Some(frame.ts);
            driver.feed(frame);
            progress.frame(index, driver.engine().counters());
        });
        match fed {
            Ok(Some(())) => {}
            Ok(None) => break,
            Err(e) => {
                errors.push(e);
                break;
            }
        }
    }
    file_done(cap, driver);
}

/// What a file's end says: a snap length that cut frames, and the frames whose lone jump
/// in time the file's clock refused (counted as the engine's `time-clamped`).
fn file_done(cap: &FileCapture, driver: &mut Driver) {
    say_if_cut(cap);
    driver.engine_mut().count_time_clamped(cap.time_clamped());
}

/// Set when SIGINT or SIGTERM arrives (a thread of its own waits for them).
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let flag = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut term, mut int) = rt.block_on(async {
        Ok::<_, std::io::Error>((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?))
    })?;
    let f = flag.clone();
    std::thread::Builder::new().name("replay-signals".into()).spawn(move || {
        rt.block_on(async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        f.store(true, Ordering::SeqCst);
    })?;
    Ok(flag)
}

/// How often `--follow` looks at the folder.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The files a replay read, in the order it opened them, each with its last packet time
/// (`None`: none read), to know which hold a call left open.
type Read = Vec<(PathBuf, Option<Ts>)>;

/// What a replay starts from: the earlier replays' open calls it continues
/// (`plan_resume`), with the driver told, and the sources to read, the files to re-read
/// first. Said on stderr when some are resumed.
fn start_resume(
    db: &Path,
    mut srcs: Vec<Source>,
    horizon: Dur,
    follow: bool,
    driver: &mut Driver,
) -> anyhow::Result<(Vec<Source>, Resume)> {
    let Some(first) = srcs.iter().filter_map(|s| s.first).min() else { return Ok((srcs, Resume::default())) };
    let starts: Vec<Ts> = srcs.iter().filter_map(|s| s.first).collect();
    let mut resume = plan_resume(db, &srcs, first, horizon, |cut| follow || starts.iter().any(|t| *t > cut))?;
    if !resume.resumed.is_empty() {
        eprintln!(
            "callwarden: resuming {} call(s) left open by an earlier replay: re-reading {}",
            resume.resumed.len(),
            resume.prefix.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        driver.warm_up(first, resume.resumed.clone());
    }
    driver.completes(resume.completes.clone());
    let mut all = std::mem::take(&mut resume.prefix);
    all.append(&mut srcs);
    Ok((all, resume))
}

/// `--follow DIR`: feed each capture file of `dir` once it is complete — a newer file
/// (by modification time) exists, so the writer has moved on — oldest first; at the stop
/// signal, the newest too. A ring buffer that reuses a name gives the file a new
/// modification time, so it is read again. Files that are not captures are skipped with a
/// note. The first file read starts the run as a separate replay's files would
/// (`start_resume`: the calls an earlier replay or `--follow` left open are resumed).
/// Returns the files read and what was resumed.
fn follow(
    dir: &std::path::Path,
    stop: &AtomicBool,
    driver: &mut Driver,
    errors: &mut Vec<CaptureError>,
    progress: &mut super::progress::Progress,
    db: &Path,
    horizon: Dur,
) -> anyhow::Result<(Read, Resume)> {
    let mut seen: std::collections::HashSet<(PathBuf, std::time::SystemTime)> = Default::default();
    let mut read: Read = Vec::new();
    let mut resume = Resume::default();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot list the folder", dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| {
                let m = e.metadata().ok().filter(|m| m.is_file())?;
                Some((m.modified().ok()?, e.path()))
            })
            .collect();
        files.sort();
        let complete = if stopping { files.len() } else { files.len().saturating_sub(1) };
        for (mtime, path) in files.into_iter().take(complete) {
            if !seen.insert((path.clone(), mtime)) {
                continue;
            }
            let src = match probe(&path) {
                Ok(s) => s,
                Err(CaptureError::NotCapture { .. }) => {
                    eprintln!("callwarden: {}: not a capture, skipped", path.display());
                    continue;
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if read.is_empty() {
                // The first file: with the earlier files of the calls it resumes, merged.
                let (srcs, r) = start_resume(db, vec![src], horizon, true, driver)?;
                resume = r;
                read.extend(merge(srcs, driver, errors, progress)?);
                continue;
            }
            let mut last = None;
            feed_file(&mut FileCapture::open(&path)?, driver, errors, progress, usize::MAX, &mut last);
            read.push((path, last));
        }
        if stopping {
            return Ok((read, resume));
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Feed `srcs` merged by packet time (one file: straight from the reader's buffer, no
/// copy). Returns each file with the last packet time read from it.
fn merge(
    mut srcs: Vec<Source>,
    driver: &mut Driver,
    errors: &mut Vec<CaptureError>,
    progress: &mut super::progress::Progress,
) -> anyhow::Result<Read> {
    let paths: Vec<PathBuf> = srcs.iter().map(|s| s.path.clone()).collect();
    let mut lasts: Vec<Option<Ts>> = vec![None; srcs.len()];
    if let ([only], [last]) = (srcs.as_slice(), lasts.as_mut_slice()) {
        feed_file(&mut FileCapture::open(&only.path)?, driver, errors, progress, 0, last);
    } else {
        // k-way merge by packet time; ties go to the earlier file on the command line. A
        // file is opened when the merge reaches its first frame and closed at its end, so a
        // folder of a thousand rotated files holds two or three open, not a thousand.
        let mut pending: Vec<(usize, Source)> = srcs.drain(..).enumerate().collect();
        pending.sort_by_key(|(i, s)| (s.first.unwrap_or(Ts::MIN), *i));
        let mut pending = std::collections::VecDeque::from(pending);
        let mut heads: Vec<(usize, Head)> = Vec::new();
        loop {
            let active = heads.iter().enumerate().filter_map(|(k, (i, h))| h.next.map(|(ts, _)| (ts, *i, k))).min();
            let open_next = pending
                .front()
                .is_some_and(|(i, p)| active.is_none_or(|(ts, j, _)| (p.first.unwrap_or(Ts::MIN), *i) <= (ts, j)));
            if open_next {
                if let Some((i, p)) = pending.pop_front() {
                    let mut h = Head {
                        cap: FileCapture::open(&p.path)?,
                        next: None,
                        buf: Vec::new(),
                        error: None,
                        from: p.from,
                    };
                    h.advance();
                    heads.push((i, h));
                }
                continue;
            }
            let Some((_, _, k)) = active else { break };
            let file_index = heads[k].0;
            let h = &mut heads[k].1;
            if let Some((ts, link)) = h.next {
                if let Some(last) = lasts.get_mut(file_index) {
                    *last = Some(ts);
                }
                driver.feed(Frame { ts, link, bytes: &h.buf });
                progress.frame(file_index, driver.engine().counters());
            }
            h.advance();
            if h.next.is_none() {
                let (_, done) = heads.swap_remove(k);
                file_done(&done.cap, driver);
                errors.extend(done.error);
            }
        }
        // Files that ended (or failed) at their first frame.
        for (_, h) in heads {
            file_done(&h.cap, driver);
            errors.extend(h.error);
        }
    }
    Ok(paths.into_iter().zip(lasts).collect())
}

/// A capture taken with a snap length shorter than its packets loses the end of long SIP
/// messages (INVITEs with SDP): said once per file, the messages counted as `sip-truncated`.
fn say_if_cut(cap: &FileCapture) {
    if let Some((n, snap)) = cap.cut_frames() {
        eprintln!(
            "callwarden: {}: {n} frame(s) cut short by the capture's snap length ({snap} bytes); \
             SIP messages in them are counted as sip-truncated: capture with tcpdump -s 0",
            cap.path().display()
        );
    }
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(common.config.as_deref(), common.db.as_deref())?;
    settings.check_data_owner("replay")?;
    let srcs = match (a.follow, a.files.as_slice()) {
        (false, _) => sources(&a.files)?,
        (true, [dir]) if dir.is_dir() => Vec::new(),
        (true, _) => anyhow::bail!("--follow watches exactly one folder"),
    };
    // Before anything is opened, so a signal during the set-up is not lost.
    let stop = if a.follow { Some(stop_on_signal()?) } else { None };
    let mut more: Vec<Box<dyn Sink + Send>> =
        if a.quiet || a.json { Vec::new() } else { vec![Box::new(ConsoleSink::new(&settings.config.site.timezone))] };
    let ended = Arc::new(Mutex::new(Ended::default()));
    more.push(Box::new(EndedCalls(ended.clone())));
    let pipeline = Pipeline::open(&settings, Mode::Replay { webhooks: !a.no_webhooks }, more)?;
    let (mut driver, rec_start) = (pipeline.driver, pipeline.recordings_start);
    let webhooks = if a.no_webhooks { &[][..] } else { &settings.config.alerts.webhooks[..] };

    // Calls earlier replays (or `--follow` runs) left open that this one may complete:
    // planned from the first packet of its files (with `--follow`, of the first file read).
    let horizon = Dur::from_secs(i64::from(settings.config.limits.call_timeout_s));
    let mut errors: Vec<CaptureError> = Vec::new();
    let mut progress;
    let (read, resume) = if let (Some(stop), [dir]) = (&stop, a.files.as_slice()) {
        progress = super::progress::Progress::new(&[]);
        follow(dir, stop, &mut driver, &mut errors, &mut progress, &settings.db_path, horizon)?
    } else {
        let (srcs, resume) = start_resume(&settings.db_path, srcs, horizon, false, &mut driver)?;
        let paths: Vec<PathBuf> = srcs.iter().map(|s| s.path.clone()).collect();
        progress = super::progress::Progress::new(&paths);
        (merge(srcs, &mut driver, &mut errors, &mut progress)?, resume)
    };
    // The files named (or, with --follow, found), not those re-read to resume.
    let n_files = read.len().saturating_sub(resume.prefix_len);
    progress.finish();
    driver.finish(EndReason::CaptureEnded);
    let counters = driver.engine().counters().clone();
    let link = driver.engine().track_stats().link;
    let sink_errors = driver.sink_errors;
    let closed = pipeline.closer.close(driver, WEBHOOK_GRACE)?;
    // After the store's writer closed: the open calls are handed over on a connection of
    // their own.
    hand_over(&settings.db_path, &ended, &read, resume.consumed)?;
    let (written, recorded, alert_stats, forwarded) =
        (closed.written, closed.recorded, closed.alerts, closed.forwarded);
    if !webhooks.is_empty() && alert_stats.delivered < alert_stats.raised * webhooks.len() as u64 {
        eprintln!(
            "callwarden: webhooks: {} of {} alert(s) delivered ({} failed, {} dropped; see the log)",
            alert_stats.delivered,
            alert_stats.raised * webhooks.len() as u64,
            alert_stats.failed,
            alert_stats.dropped
        );
    }

    let errors: Vec<&CaptureError> = errors.iter().collect();
    if a.json {
        let mut doc = summary_json(&counters, &written, &errors, &settings, &recorded, &rec_start, &link);
        doc["central"] = forwarded
            .map(|f| serde_json::json!({"shipped_rows": f.shipped_rows, "backlog_rows": f.backlog_rows}))
            .unwrap_or_default();
        println!("{doc:#}");
    } else {
        print_summary(n_files, &counters, &written, &settings, &recorded, &rec_start, &link);
        if let Some(f) = forwarded {
            println!("  central store    {:>10}  rows shipped, {} still queued", f.shipped_rows, f.backlog_rows);
        }
    }
    if let Some(f) = forwarded.filter(|f| f.backlog_rows > 0) {
        eprintln!(
            "callwarden: {} row(s) not yet in the central store (see the log); they stay queued in {} and go out with the next replay or `run`",
            f.backlog_rows,
            settings.db_path.display()
        );
    }
    for e in &errors {
        eprintln!("callwarden: {e}");
    }
    if sink_errors > 0 {
        eprintln!("callwarden: {sink_errors} outputs could not be delivered (see the log)");
    }
    Ok(if errors.is_empty() && sink_errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Remember the calls this replay leaves open (`capture-ended`) for the next one, with
/// the files that hold them (`read`), and forget the `consumed` ones, in one transaction.
/// A call this replay stored whole is forgotten too (an earlier replay had left it open:
/// it is complete now), and a call cut here that the database already holds whole (a file
/// replayed again after the ones that follow it) is not left open: nothing would replace
/// its whole record, and its recording must not be replaced by a part again.
fn hand_over(db: &Path, ended: &Mutex<Ended>, read: &Read, mut consumed: Vec<OpenCall>) -> anyhow::Result<()> {
    let ended = std::mem::take(&mut *ended.lock().map_err(|_| anyhow::anyhow!("the ended calls' lock"))?);
    let end = read.iter().filter_map(|(_, l)| *l).max();
    let mut left: Vec<OpenCall> = Vec::new();
    if let (Some(end), false) = (end, ended.cut.is_empty()) {
        let reader = store::Reader::open(db)?;
        for (call_id, tag, at) in ended.cut {
            let stored = reader.call(&call_id)?;
            if stored.is_some_and(|d| d.call.started_us == at.as_micros() && d.call.end_reason != "capture-ended") {
                continue;
            }
            left.push(OpenCall {
                files: read.iter().filter(|(_, l)| l.is_some_and(|l| l >= at)).map(|(p, _)| absolute(p)).collect(),
                call_id,
                from_tag: (!tag.is_empty()).then_some(tag),
                started_us: at.as_micros(),
                capture_end_us: end.as_micros(),
            });
        }
    }
    if !ended.whole.is_empty() {
        consumed.extend(replay_open::load(db)?.into_iter().filter(|c| ended.whole.contains(&identity(c))));
    }
    if !left.is_empty() || !consumed.is_empty() {
        replay_open::hand_over(db, &consumed, &left)?;
    }
    Ok(())
}

fn print_summary(
    files: usize,
    c: &Counters,
    w: &store::WriteSummary,
    s: &Settings,
    r: &recorder::RecorderSummary,
    rs: &recorder::StartReport,
    link: &LinkStats,
) {
    println!("replayed {} file(s) into {}", files, s.db_path.display());
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
    if r.superseded > 0 {
        println!(
            "  recordings superseded {:>5}  (the part an earlier replay recorded of a call completed now; kept)",
            r.superseded
        );
    }
    if let Some(rep) = rs.repair.as_ref().filter(|rep| !rep.is_empty()) {
        println!("  repaired at start {:>9}  (missing {})", rep.repaired.len(), rep.missing.len());
    }
    if !rs.expire.expired.is_empty() {
        println!("  expired at start {:>10}", rs.expire.expired.len());
    }
    for (kind, n) in &c.tunnels {
        println!("  tunnel {:<10} {:>10}", kind.as_str(), n);
    }
    for (server, n) in &c.tls_servers {
        println!("  TLS connections to {server}: {n} (encrypted: not readable; send HEP from the PBX)");
    }
    if c.evictions.total() > 0 {
        let tables: Vec<String> =
            c.evictions.by_table().iter().filter(|(_, n)| *n > 0).map(|(t, n)| format!("{t} {n}")).collect();
        println!(
            "  evicted          {:>10}  ({}; a table was full: see [capture] max_*)",
            c.evictions.total(),
            tables.join(", ")
        );
    }
    let total: u64 = c.total_drops();
    println!("  dropped          {:>10}", total);
    for (why, n) in &c.drops {
        println!("    {:<16} {:>10}", why.as_str(), n);
    }
}

fn summary_json(
    c: &Counters,
    w: &store::WriteSummary,
    errors: &[&CaptureError],
    s: &Settings,
    r: &recorder::RecorderSummary,
    rs: &recorder::StartReport,
    link: &LinkStats,
) -> serde_json::Value {
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
        "tls_servers": c.tls_servers,
        "evictions": c.evictions,
        "tunnels": c.tunnels.iter().map(|(k, v)| (k.as_str().to_string(), (*v).into())).collect::<serde_json::Map<String, serde_json::Value>>(),
        "recordings": r,
        "recordings_start": rs,
        "errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
    });
    doc
}
