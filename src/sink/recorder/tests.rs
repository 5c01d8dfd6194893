//! The recorder driven with the engine's events directly: files, rows, hashes, repair,
//! retention, verify, and what happens at a full queue.

use super::*;
use crate::store::recordings::{BeginOutcome, NewRecording, RecordingStatus};
use crate::store::{self, Reader};
use callwarden_core::media::{AudioBlock, MediaCounters, RecordingInfo, SampleRate};
use callwarden_core::track::Leg;

/// 2026-03-01T23:30:00Z = 2026-03-02 07:30 in Asia/Shanghai.
const T0: i64 = 1_772_407_800_000_000;
const DAY_US: i64 = 86_400_000_000;

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    db: PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recordings");
    let db = tmp.path().join("cw.db");
    // The store creates and migrates the database, as in `replay`.
    let (_sink, writer) = store::open(&db, "Asia/Shanghai").unwrap();
    writer.close().unwrap();
    Env { _tmp: tmp, dir, db }
}

fn cfg(e: &Env, retention: Retention) -> RecorderConfig {
    RecorderConfig { dir: e.dir.clone(), db: e.db.clone(), timezone: "Asia/Shanghai".into(), retention }
}

fn keep_forever() -> Retention {
    Retention { default_days: 0, by_group: HashMap::new() }
}

fn info(key: u64, id: &str, started: i64, group: Option<&str>) -> RecordingInfo {
    RecordingInfo {
        key: CallKey(key),
        id: id.into(),
        call_id: format!("call-{id}"),
        call_started_at: Ts(started),
        caller: "8001".into(),
        callee: "8101".into(),
        dialled: "8101".into(),
        group: group.map(str::to_string),
        resumed: false,
    }
}

fn begin(i: &RecordingInfo) -> Output {
    Output::Recording(RecordingEvent::Begin(i.clone()))
}

fn media(key: u64, out: MediaOut) -> Output {
    Output::Recording(RecordingEvent::Media { key: CallKey(key), out })
}

fn audio(key: u64, start_frame: u64, samples: Vec<i16>) -> Output {
    media(key, MediaOut::Audio(AudioBlock { start_frame, samples }))
}

fn end(key: u64, ended: i64, undecodable: Vec<u8>, dtmf: &str) -> Output {
    Output::Recording(RecordingEvent::End {
        key: CallKey(key),
        ended_at: Ts(ended),
        counters: MediaCounters { packets_placed: 7, ..MediaCounters::default() },
        undecodable,
        dtmf: dtmf.into(),
    })
}

fn raw(key: u64, leg: Leg, at: i64, seq: u16) -> Output {
    media(
        key,
        MediaOut::Raw {
            leg,
            at: Ts(at),
            pt: 18,
            ssrc: 77,
            seq,
            timestamp: u32::from(seq) * 160,
            marker: false,
            payload: vec![seq as u8; 20],
        },
    )
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    (r.spec(), r.samples::<i16>().map(Result::unwrap).collect())
}

/// A recorder fed `outputs`, its sink dropped, not yet closed.
fn fed(e: &Env, outputs: &[Output]) -> Recorder {
    let (mut sink, rec, _) = open(&cfg(e, keep_forever()), RecorderOptions::default(), Ts(T0)).unwrap();
    for o in outputs {
        sink.accept(o).unwrap();
    }
    drop(sink);
    rec
}

fn run(e: &Env, outputs: &[Output]) -> RecorderSummary {
    fed(e, outputs).close().unwrap()
}

/// `run`, keeping the summary when files failed (`close` says so as an error).
fn run_anyway(e: &Env, outputs: &[Output]) -> RecorderSummary {
    fed(e, outputs).close_anyway().unwrap()
}

fn reader(e: &Env) -> Reader {
    Reader::open(&e.db).unwrap()
}

#[test]
fn a_call_becomes_a_wav_and_a_complete_row() {
    let e = env();
    let i = info(1, "00000000000000aa", T0, Some("dispatch"));
    let left_right: Vec<i16> = (0..320).map(|n| if n % 2 == 0 { n as i16 } else { -(n as i16) }).collect();
    let summary = run(
        &e,
        &[
            begin(&i),
            media(1, MediaOut::Start { rate: SampleRate::Hz8000, at: Ts(T0 + 7_000_000) }),
            audio(1, 0, left_right.clone()),
            media(1, MediaOut::Silence { start_frame: 160, frames: 8000 }),
            audio(1, 8160, vec![5, 6]),
            end(1, T0 + 12_000_000, vec![], "1#"),
        ],
    );
    assert_eq!((summary.started, summary.completed, summary.frames_written), (1, 1, 8161));
    let path = e.dir.join("2026/03/02/00000000000000aa.wav");
    let (spec, samples) = read_wav(&path);
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8000, 16));
    assert_eq!(&samples[..320], &left_right[..]);
    assert!(samples[320..320 + 16000].iter().all(|&s| s == 0));
    assert_eq!(&samples[16320..], &[5, 6]);
    let row = reader(&e).recording("00000000000000aa").unwrap().unwrap();
    assert_eq!(row.status, "complete");
    assert_eq!(row.path, "2026/03/02/00000000000000aa.wav");
    assert_eq!((row.frames, row.sample_rate, row.duration_ms), (8161, Some(8000), 1020));
    assert_eq!(row.bytes as u64, std::fs::metadata(&path).unwrap().len());
    assert_eq!(row.sha256.as_deref(), Some(wav::sha256_file(&path).unwrap().0.as_str()));
    assert_eq!(row.group.as_deref(), Some("dispatch"));
    assert_eq!(row.dtmf, "1#");
    assert_eq!(row.media_started_at.as_deref(), Some("2026-03-02T07:30:07.000000+08:00"));
    assert_eq!(row.ended_at.as_deref(), Some("2026-03-02T07:30:12.000000+08:00"));
    assert_eq!(row.counters["packets_placed"], 7);
    assert_eq!(row.counters["recorder"]["frames_audio"], 161);
    assert_eq!(row.counters["recorder"]["frames_silence"], 8000);
    assert_eq!(row.counters["recorder"]["frames_filled_overload"], 0);
    assert!(row.undecodable.is_empty() && row.raw_paths.is_empty());
}

#[test]
fn no_media_gives_an_empty_row_and_no_file() {
    let e = env();
    let i = info(2, "00000000000000bb", T0, None);
    let s = run(&e, &[begin(&i), end(2, T0 + 5_000_000, vec![], "")]);
    assert_eq!((s.started, s.empty, s.completed), (1, 1, 0));
    let row = reader(&e).recording("00000000000000bb").unwrap().unwrap();
    assert_eq!(row.status, "empty");
    assert!(row.sha256.is_none());
    assert!(layout::walk(&e.dir).unwrap().is_empty());
}

#[test]
fn undecodable_rtp_is_kept_as_rtpdump_per_direction() {
    let e = env();
    let i = info(3, "00000000000000cc", T0, Some("dispatch"));
    let s = run(
        &e,
        &[
            begin(&i),
            raw(3, Leg::CallerToCallee, T0 + 1_000_000, 1),
            raw(3, Leg::CalleeToCaller, T0 + 1_010_000, 9),
            raw(3, Leg::CallerToCallee, T0 + 1_020_000, 2),
            end(3, T0 + 2_000_000, vec![18], ""),
        ],
    );
    assert_eq!((s.completed, s.raw_packets), (1, 3));
    let row = reader(&e).recording("00000000000000cc").unwrap().unwrap();
    assert_eq!(row.status, "complete");
    assert_eq!(row.undecodable, vec![18]);
    assert_eq!(row.sample_rate, None, "no audio decoded: no WAV");
    assert_eq!(
        row.raw_paths,
        ["2026/03/02/00000000000000cc.caller.rtpdump", "2026/03/02/00000000000000cc.callee.rtpdump"]
    );
    let (start, recs) = rtpdump::read(&e.dir.join(&row.raw_paths[0])).unwrap();
    assert_eq!(start, Ts(T0 + 1_000_000));
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].offset_ms, 20);
    assert_eq!(&recs[1].rtp[12..], &[2u8; 20]);
    let raws = &row.counters["recorder"]["raw_files"];
    assert_eq!(raws[0]["packets"], 2);
    assert_eq!(raws[1]["sha256"], wav::sha256_file(&e.dir.join(&row.raw_paths[1])).unwrap().0.as_str());
    let (_, v) = verify(&e.db, &e.dir).unwrap();
    assert!(v.clean(), "{v:?}");
    assert_eq!((v.checked, v.ok), (2, 2));
}

#[test]
fn a_finished_recording_is_never_written_again() {
    let e = env();
    let i = info(4, "00000000000000dd", T0, None);
    let start = media(4, MediaOut::Start { rate: SampleRate::Hz8000, at: Ts(T0) });
    run(&e, &[begin(&i), start.clone(), audio(4, 0, vec![1, 1, 2, 2]), end(4, T0 + 1, vec![], "")]);
    let path = e.dir.join("2026/03/02/00000000000000dd.wav");
    let before = std::fs::read(&path).unwrap();
    // The same call again (a second replay of the file), with other audio.
    let s = run(&e, &[begin(&i), start, audio(4, 0, vec![9, 9, 9, 9, 9, 9]), end(4, T0 + 1, vec![], "")]);
    assert_eq!((s.skipped_existing, s.started, s.frames_written), (1, 0, 0));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn holes_from_dropped_blocks_are_filled_and_counted() {
    let e = env();
    let i = info(5, "00000000000000ee", T0, None);
    let (mut sink, rec, _) = open(&cfg(&e, keep_forever()), RecorderOptions::default(), Ts(T0)).unwrap();
    sink.accept(&begin(&i)).unwrap();
    sink.accept(&media(5, MediaOut::Start { rate: SampleRate::Hz16000, at: Ts(T0) })).unwrap();
    sink.accept(&audio(5, 0, vec![3; 200])).unwrap();
    // Frames 100..300 and 400..500 never arrive: the sink dropped them.
    sink.accept(&audio(5, 300, vec![4; 200])).unwrap();
    sink.lost.insert(CallKey(5), Lost { blocks: 3, frames: 300, raw_packets: 0, end_frame: 500 });
    sink.accept(&end(5, T0 + 1_000_000, vec![], "")).unwrap();
    drop(sink);
    let s = rec.close().unwrap();
    assert_eq!(s.frames_filled, 300);
    let row = reader(&e).recording("00000000000000ee").unwrap().unwrap();
    assert_eq!(row.frames, 500, "the WAV keeps the media's length");
    let (_, samples) = read_wav(&e.dir.join(&row.path));
    assert!(samples[..200].iter().all(|&x| x == 3));
    assert!(samples[200..600].iter().all(|&x| x == 0));
    assert!(samples[600..800].iter().all(|&x| x == 4));
    assert!(samples[800..].iter().all(|&x| x == 0));
    let r = &row.counters["recorder"];
    assert_eq!((r["frames_filled_overload"].as_u64(), r["blocks_dropped_overload"].as_u64()), (Some(300), Some(3)));
}

#[test]
fn a_full_queue_drops_audio_but_never_control_and_counts_it() {
    // A sink whose writer is stuck (nobody reads the queue) and a queue of 2.
    let (tx, rx) = mpsc::sync_channel(2);
    let dropped = Arc::new(AtomicU64::new(0));
    let mut sink = RecorderSink {
        tx,
        backpressure: Backpressure::Drop { wait: Duration::from_millis(5) },
        overloaded: false,
        lost: HashMap::new(),
        dropped_blocks: dropped.clone(),
    };
    sink.accept(&audio(1, 0, vec![1; 320])).unwrap();
    sink.accept(&audio(1, 160, vec![1; 320])).unwrap();
    let t = Instant::now();
    sink.accept(&audio(1, 320, vec![1; 320])).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(5), "waited once");
    assert!(sink.overloaded);
    let t = Instant::now();
    sink.accept(&media(1, MediaOut::Silence { start_frame: 480, frames: 1000 })).unwrap();
    sink.accept(&raw(1, Leg::CallerToCallee, T0, 1)).unwrap();
    assert!(t.elapsed() < Duration::from_millis(5), "no more waiting while overloaded");
    assert_eq!(dropped.load(Ordering::Relaxed), 3);
    assert_eq!(sink.lost[&CallKey(1)], Lost { blocks: 2, frames: 1160, raw_packets: 1, end_frame: 1480 });
    // The writer catches up: the next block goes through and the overload ends.
    let _ = rx.recv().unwrap();
    sink.accept(&audio(1, 1480, vec![1; 2])).unwrap();
    assert!(!sink.overloaded);
    // End must not be dropped: it waits for room, and carries what was lost.
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        while let Ok(m) = rx.recv() {
            got.push(m);
        }
        got
    });
    sink.accept(&end(1, T0, vec![], "")).unwrap();
    drop(sink);
    let got = reader.join().unwrap();
    match got.last() {
        Some(Msg::End { lost, .. }) => assert_eq!(lost.end_frame, 1480),
        _ => panic!("the End came through last"),
    }
}

/// A crash as kill -9 leaves it: the row in status `recording`, the WAV with a header
/// from the last flush and more data behind it, a torn rtpdump record.
fn crash_leftovers(e: &Env) {
    let conn = rows::open_rw(&e.db).unwrap();
    let mk = |id: &str| NewRecording {
        id: id.into(),
        call_id: format!("c-{id}"),
        call_started_us: T0,
        caller: "8001".into(),
        callee: "8101".into(),
        dialled: "8101".into(),
        group: None,
        path: format!("2026/03/02/{id}.wav"),
        retention_days: 0,
        day: "2026-03-02".into(),
        month: "2026-03".into(),
    };
    std::fs::create_dir_all(e.dir.join("2026/03/02")).unwrap();
    // 1: WAV flushed at 100 frames, 150 more on disk behind the header, a torn frame.
    assert_eq!(rows::begin(&conn, &mk("crash1")).unwrap(), BeginOutcome::Started);
    rows::media_started(&conn, "crash1", 8000, T0).unwrap();
    let p = e.dir.join("2026/03/02/crash1.wav");
    let mut w = wav::WavFile::create(&p, 8000).unwrap();
    w.write_interleaved(&[7; 200]).unwrap();
    w.flush().unwrap();
    w.write_interleaved(&[8; 300]).unwrap();
    // What the BufWriter had written when the process died: simulate by writing the
    // bytes behind hound's back and forgetting the writer (no finalise, no flush).
    std::mem::forget(w);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[8u8; 600]).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
    }
    // 2: audio had started, the file is gone.
    rows::begin(&conn, &mk("crash2")).unwrap();
    rows::media_started(&conn, "crash2", 8000, T0).unwrap();
    // 3: no audio yet.
    rows::begin(&conn, &mk("crash3")).unwrap();
    // 4: only undecodable RTP, its last record torn.
    rows::begin(&conn, &mk("crash4")).unwrap();
    let rp = e.dir.join(layout::raw_path("2026/03/02", "crash4", Leg::CallerToCallee));
    let mut r = rtpdump::RtpDumpWriter::create(&rp, Ts(T0)).unwrap();
    for s in 0..3 {
        r.write(&rtpdump::RawPacket {
            at: Ts(T0),
            pt: 18,
            ssrc: 1,
            seq: s,
            timestamp: 0,
            marker: false,
            payload: &[0; 20],
        })
        .unwrap();
    }
    r.finish().unwrap();
    let len = std::fs::metadata(&rp).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&rp).unwrap().set_len(len - 5).unwrap();
}

#[test]
fn repair_at_start_fixes_what_a_crash_left() {
    let e = env();
    crash_leftovers(&e);
    let (sink, rec, report) = open(&cfg(&e, keep_forever()), RecorderOptions::default(), Ts(T0)).unwrap();
    drop(sink);
    rec.close().unwrap();
    let repair = report.repair.expect("alone: repaired");
    assert_eq!(repair.repaired, ["crash1", "crash4"]);
    assert_eq!(repair.missing, ["crash2"]);
    assert_eq!(repair.empty, ["crash3"]);
    let r = reader(&e);
    let row = r.recording("crash1").unwrap().unwrap();
    assert_eq!(row.status, "repaired");
    // Every whole frame on disk: 100 the header knew of, 150 behind it; the torn one cut.
    let (spec, samples) = read_wav(&e.dir.join(&row.path));
    assert_eq!(spec.sample_rate, 8000);
    assert_eq!(row.frames, 250);
    assert_eq!(samples.len(), 500);
    assert!(samples[..200].iter().all(|&s| s == 7));
    assert!(samples[200..].iter().all(|&s| s == 0x0808));
    assert_eq!(row.counters["recorder"]["repaired"]["header_frames"], 100);
    assert_eq!(row.sha256.as_deref(), Some(wav::sha256_file(&e.dir.join(&row.path)).unwrap().0.as_str()));
    assert_eq!(row.counters["recorder"]["repaired"]["cut_bytes"], 3);
    assert_eq!(r.recording("crash2").unwrap().unwrap().status, "missing");
    assert_eq!(r.recording("crash3").unwrap().unwrap().status, "empty");
    let c4 = r.recording("crash4").unwrap().unwrap();
    assert_eq!(c4.status, "repaired");
    assert_eq!(c4.counters["recorder"]["raw_files"][0]["packets"], 2);
    // A second start finds nothing to repair; verify passes except for the missing one.
    let (repair2, v) = verify(&e.db, &e.dir).unwrap();
    assert!(repair2.unwrap().is_empty());
    assert_eq!(v.missing.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["crash2"]);
    assert!(v.changed.is_empty() && v.unexpected.is_empty(), "{v:?}");
}

#[test]
fn no_repair_while_another_process_records_here() {
    let e = env();
    crash_leftovers(&e);
    let other = lock::DirLock::shared(&e.dir).unwrap();
    let (sink, rec, report) = open(&cfg(&e, keep_forever()), RecorderOptions::default(), Ts(T0)).unwrap();
    drop(sink);
    rec.close().unwrap();
    assert!(report.repair.is_none());
    assert_eq!(reader(&e).recording("crash1").unwrap().unwrap().status, "recording");
    // verify does not repair either, and counts them as in progress, not as problems.
    let (repair, v) = verify(&e.db, &e.dir).unwrap();
    assert!(repair.is_none());
    assert_eq!(v.in_progress.len(), 4);
    assert!(v.unexpected.is_empty(), "their files are accounted for: {v:?}");
    drop(other);
    let (repair, _) = verify(&e.db, &e.dir).unwrap();
    assert_eq!(repair.unwrap().repaired.len(), 2);
}

fn one_call(e: &Env, key: u64, id: &str, started: i64, group: Option<&str>) {
    let i = info(key, id, started, group);
    run(
        e,
        &[
            begin(&i),
            media(key, MediaOut::Start { rate: SampleRate::Hz8000, at: Ts(started) }),
            audio(key, 0, vec![key as i16; 1600]),
            end(key, started + 1_000_000, vec![], ""),
        ],
    );
}

#[test]
fn retention_deletes_files_keeps_rows() {
    let e = env();
    one_call(&e, 1, "0000000000000001", T0 - 40 * DAY_US, Some("dispatch"));
    one_call(&e, 2, "0000000000000002", T0 - 40 * DAY_US, Some("callback"));
    one_call(&e, 3, "0000000000000003", T0 - 5 * DAY_US, Some("callback"));
    one_call(&e, 4, "0000000000000004", T0 - 400 * DAY_US, None);
    let retention = Retention { default_days: 365, by_group: HashMap::from([("callback".to_string(), 30)]) };
    assert_eq!(retention.days_for(Some("callback")), 30);
    assert_eq!(retention.days_for(Some("dispatch")), 365);
    let report = expire(&cfg(&e, retention.clone()), Ts(T0)).unwrap();
    assert_eq!(report.expired, ["0000000000000002", "0000000000000004"]);
    assert_eq!(report.files_deleted, 2);
    let r = reader(&e);
    for (id, status) in
        [("0000000000000001", "complete"), ("0000000000000002", "expired"), ("0000000000000003", "complete")]
    {
        let row = r.recording(id).unwrap().unwrap();
        assert_eq!(row.status, status, "{id}");
        assert_eq!(e.dir.join(&row.path).exists(), status == "complete", "{id}");
    }
    // At start too; nothing more is due.
    let (sink, rec, start) = open(&cfg(&e, retention), RecorderOptions::default(), Ts(T0)).unwrap();
    drop(sink);
    rec.close().unwrap();
    assert!(start.expire.expired.is_empty());
    let (_, v) = verify(&e.db, &e.dir).unwrap();
    assert!(v.clean(), "expired recordings are not missing: {v:?}");
}

#[test]
fn verify_finds_changed_missing_and_unexpected_files() {
    let e = env();
    for k in 1..=3 {
        one_call(&e, k, &format!("000000000000000{k}"), T0, Some("dispatch"));
    }
    let (_, v) = verify(&e.db, &e.dir).unwrap();
    assert!(v.clean());
    assert_eq!(v.ok, 3);
    let day = e.dir.join("2026/03/02");
    // One byte changed, one file deleted, one file added.
    let p1 = day.join("0000000000000001.wav");
    let mut bytes = std::fs::read(&p1).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&p1, &bytes).unwrap();
    std::fs::remove_file(day.join("0000000000000002.wav")).unwrap();
    std::fs::write(day.join("intruder.wav"), b"RIFF").unwrap();
    let (_, v) = verify(&e.db, &e.dir).unwrap();
    assert!(!v.clean());
    assert_eq!(v.changed.len(), 1);
    assert_eq!(v.changed[0].id, "0000000000000001");
    assert_ne!(v.changed[0].actual_sha256, v.changed[0].expected_sha256);
    assert_eq!(v.missing.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["0000000000000002"]);
    assert_eq!(v.unexpected, ["2026/03/02/intruder.wav"]);
    let r = reader(&e);
    assert_eq!(r.recording("0000000000000002").unwrap().unwrap().status, "missing");
    let row1 = r.recording("0000000000000001").unwrap().unwrap();
    assert!(matches!(maintain::check_file(&e.dir, &row1).unwrap(), maintain::FileCheck::Changed { .. }));
    let row3 = r.recording("0000000000000003").unwrap().unwrap();
    assert!(matches!(maintain::check_file(&e.dir, &row3).unwrap(), maintain::FileCheck::Ok { .. }));
    let row2 = r.recording("0000000000000002").unwrap().unwrap();
    assert_eq!(maintain::check_file(&e.dir, &row2).unwrap(), maintain::FileCheck::Missing);
    // Still missing the next time.
    let (_, v) = verify(&e.db, &e.dir).unwrap();
    assert_eq!(v.missing.len(), 1);
    assert_eq!(RecordingStatus::parse(&row2.status), Some(RecordingStatus::Missing));
}

#[test]
fn memory_per_open_recording_is_small() {
    // The writer's share of the 64 KiB budget per recording.
    assert!(bytes_per_recording() < 16 * 1024, "{}", bytes_per_recording());
}

/// A tmpfs of `kib` KiB mounted on `at` (as root, or through passwordless sudo, as
/// scripts/test runs), unmounted when dropped.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, kib: u32) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
        let mut cmd: Vec<String> = sudo.iter().map(|s| s.to_string()).collect();
        cmd.extend(["mount", "-t", "tmpfs", "-o"].map(String::from));
        cmd.push(format!("size={kib}k"));
        cmd.extend(["tmpfs".to_string(), at.display().to_string()]);
        let st = std::process::Command::new(&cmd[0]).args(&cmd[1..]).status().unwrap();
        assert!(st.success(), "cannot mount a tmpfs (needs root or passwordless sudo): {cmd:?}");
        SmallDisk { at: at.to_path_buf() }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
        let mut cmd: Vec<String> = sudo.iter().map(|s| s.to_string()).collect();
        cmd.extend(["umount".to_string(), self.at.display().to_string()]);
        let _ = std::process::Command::new(&cmd[0]).args(&cmd[1..]).status();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn a_full_disk_leaves_an_incomplete_hashed_recording_and_the_next_one_records() {
    let e = env();
    let disk = SmallDisk::mount(&e.dir, 256);
    // Most of the disk taken by something else; the recording fills the rest.
    let filler = e.dir.join("filler");
    std::fs::write(&filler, vec![0u8; 160 * 1024]).unwrap();
    let second: Vec<i16> = (0..16_000).map(|n| (n % 300) as i16).collect(); // 1 s of stereo
    let a = info(1, "00000000000000aa", T0, Some("dispatch"));
    let mut outs = vec![begin(&a), media(1, MediaOut::Start { rate: SampleRate::Hz8000, at: Ts(T0) })];
    for s in 0..6u64 {
        outs.push(audio(1, s * 8000, second.clone()));
    }
    outs.push(end(1, T0 + 6_000_000, vec![], ""));
    let summary = run_anyway(&e, &outs);
    assert_eq!(
        (summary.started, summary.completed, summary.incomplete, summary.io_errors),
        (1, 0, 1, 1),
        "{summary:?}"
    );
    let row = reader(&e).recording("00000000000000aa").unwrap().unwrap();
    assert_eq!(row.status, "incomplete");
    let path = e.dir.join(&row.path);
    let (sha, bytes) = wav::sha256_file(&path).unwrap();
    assert_eq!(row.sha256.as_deref(), Some(sha.as_str()), "what reached the disk is hashed");
    assert_eq!(row.bytes, bytes as i64);
    let (_, samples) = read_wav(&path);
    assert!(!samples.is_empty() && samples.len() < 6 * 16_000, "{} samples kept", samples.len());
    assert_eq!(samples[..1000], second[..1000], "the audio that was written plays");
    // Space comes back: the next call is recorded whole.
    std::fs::remove_file(&filler).unwrap();
    let b = info(2, "00000000000000bb", T0 + 60_000_000, Some("dispatch"));
    let summary = run(
        &e,
        &[
            begin(&b),
            media(2, MediaOut::Start { rate: SampleRate::Hz8000, at: Ts(T0 + 60_000_000) }),
            audio(2, 0, second.clone()),
            end(2, T0 + 61_000_000, vec![], ""),
        ],
    );
    assert_eq!((summary.completed, summary.incomplete, summary.io_errors), (1, 0, 0), "{summary:?}");
    let row = reader(&e).recording("00000000000000bb").unwrap().unwrap();
    assert_eq!(row.status, "complete");
    assert_eq!(read_wav(&e.dir.join(&row.path)).1, second);
    // `verify` holds both as they are: the incomplete one is evidence too.
    let conn = rusqlite::Connection::open(&e.db).unwrap();
    let report = maintain::verify(&conn, &e.dir).unwrap();
    assert!(report.changed.is_empty() && report.missing.is_empty(), "{report:?}");
    assert_eq!(report.ok, 2, "{report:?}");
    drop(conn);
    drop(disk);
}

#[test]
fn io_errors_are_logged_once_a_minute() {
    let mut g = writer::LogGate::default();
    let t = std::time::Instant::now();
    assert_eq!(g.open(t), Some(0));
    for s in 1..60 {
        assert_eq!(g.open(t + Duration::from_secs(s)), None);
    }
    assert_eq!(g.open(t + Duration::from_secs(60)), Some(59), "the held lines are counted");
    assert_eq!(g.open(t + Duration::from_secs(61)), None);
}
