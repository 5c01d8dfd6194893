//! The recorder end to end through the built binary: `replay` of real sipp captures with
//! the callers in a `record = "always"` group writes stereo WAVs whose samples equal an
//! independent decode of the same RTP payloads (tshark extracts them, sox decodes them),
//! stores the row with its SHA-256; then the auditors' commands: `verify` catches a
//! changed byte, a deleted file and an extra one (exit 1), `export` refuses a changed
//! file, `sample` is reproducible, every access is in `recordings log`. And a process
//! killed with SIGKILL in the middle of a recording leaves a WAV the next start repairs.
//! Needs tshark and sox (scripts/install-test-deps). No network traffic: the captures are
//! committed files.

use callwarden::pipeline::Driver;
use callwarden::sink::{recorder, Sink};
use callwarden::store;
use callwarden_core::Engine;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CONFIG: &str = r#"
[site]
timezone = "Asia/Shanghai"
extensions = ["8000-8999"]

[[group]]
name = "dispatch"
extensions = ["8001-8099"]
record = "always"

[recordings]
dir = "rec"
retention_days = 0
"#;

const SIPP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sipp");

struct Site {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    db: PathBuf,
    rec: PathBuf,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let config = root.join("callwarden.toml");
    std::fs::write(&config, CONFIG).unwrap();
    Site { db: root.join("cw.db"), rec: root.join("rec"), root, config, _tmp: tmp }
}

impl Site {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_callwarden"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--db")
            .arg(&self.db)
            .env("USER", "tester")
            .env_remove("SUDO_USER")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}\n{}", String::from_utf8_lossy(&out.stderr), stdout(&out));
        stdout(&out)
    }

    fn replay(&self, pcaps: &[&str]) {
        let mut args = vec!["replay".to_string(), "-q".into()];
        args.extend(pcaps.iter().map(|p| format!("{SIPP}/{p}")));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&refs);
    }

    fn recordings(&self) -> Vec<Value> {
        let v: Value = serde_json::from_str(&self.ok(&["recordings", "list", "--json"])).unwrap();
        v.as_array().unwrap().clone()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    let left = s.iter().step_by(2).copied().collect();
    let right = s.iter().skip(1).step_by(2).copied().collect();
    (spec, left, right)
}

/// tshark's reading of a capture: one line of `fields` per packet matching `filter`.
fn tshark(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark (scripts/install-test-deps)");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    stdout(&out).lines().map(|l| l.split('\t').map(str::to_string).collect()).collect()
}

/// The reference decode of one direction's audio: the payloads of the RTP packets of
/// `filter` as tshark reads them, in capture order, decoded by sox from `sox_type`
/// ("al" A-law, "ul" μ-law) to 16-bit samples.
fn reference(pcap: &Path, filter: &str, sox_type: &str) -> Vec<i16> {
    let mut bytes = Vec::new();
    for row in tshark(pcap, filter, &["rtp.payload"]) {
        let hex: String = row[0].chars().filter(|c| *c != ':').collect();
        for i in (0..hex.len()).step_by(2) {
            bytes.push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
        }
    }
    assert!(!bytes.is_empty(), "no payload for {filter}");
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.raw"), dir.path().join("out.raw"));
    std::fs::write(&inp, &bytes).unwrap();
    let st = Command::new("sox")
        .args(["-t", sox_type, "-r", "8000", "-c", "1"])
        .arg(&inp)
        .args(["-t", "s16", "-e", "signed", "-b", "16", "-L"])
        .arg(&out)
        .status()
        .expect("sox (scripts/install-test-deps)");
    assert!(st.success());
    std::fs::read(&out).unwrap().chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

/// Where `want` sits in `channel`: it must appear there exactly, with nothing but silence
/// before and after it. Returns its first frame.
fn placed_exactly(channel: &[i16], want: &[i16]) -> usize {
    assert!(want.len() <= channel.len(), "channel {} frames, reference {}", channel.len(), want.len());
    let off = (0..=channel.len() - want.len())
        .find(|&o| channel[o..o + want.len()] == *want)
        .unwrap_or_else(|| panic!("the reference decode ({} frames) is not in the channel", want.len()));
    assert!(channel[..off].iter().all(|&s| s == 0), "audio before the reference");
    assert!(channel[off + want.len()..].iter().all(|&s| s == 0), "audio after the reference");
    off
}

fn epoch(s: &str) -> f64 {
    s.parse().unwrap()
}

#[test]
fn a_sipp_call_playing_g711a_is_recorded_sample_exact() {
    let s = site();
    s.replay(&["ring-7s.pcap"]);
    let recs = s.recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(r["status"], "complete");
    assert_eq!(r["caller"], "8001");
    assert_eq!(r["group"], "dispatch");
    assert_eq!(r["sample_rate"], 8000);
    assert_eq!(r["channels"], 2);
    // The caller's RFC 2833 digit is in the record, not in the audio.
    assert_eq!(r["dtmf"], "1");
    let wav = s.rec.join(r["path"].as_str().unwrap());
    assert!(r["path"].as_str().unwrap().starts_with("2026/11/24/"), "site-zone day folder: {}", r["path"]);
    let (spec, left, right) = read_wav(&wav);
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8000, 16));
    assert_eq!(r["frames"].as_i64().unwrap() as usize, left.len());

    // The stored hash is the file's.
    let sha = Command::new("sha256sum").arg(&wav).output().unwrap();
    assert_eq!(stdout(&sha).split_whitespace().next().unwrap(), r["sha256"].as_str().unwrap());

    // Left = caller → callee (UAC port 20000), right = callee → caller, each exactly the
    // independent decode of its PCMA payloads up to the BYE (after it the call is over).
    let pcap = Path::new(SIPP).join("ring-7s.pcap");
    let bye = epoch(&tshark(&pcap, "sip.Method == \"BYE\"", &["frame.time_epoch"])[0][0]);
    let in_call = format!("rtp.p_type == 8 && frame.time_epoch < {bye}");
    let l_ref = reference(&pcap, &format!("{in_call} && udp.srcport == 20000"), "al");
    let r_ref = reference(&pcap, &format!("{in_call} && udp.srcport == 30000"), "al");
    let l_off = placed_exactly(&left, &l_ref);
    let r_off = placed_exactly(&right, &r_ref);

    // Both channels on one timeline: the offset between them is the arrival offset of
    // their first packets (within one 30 ms packet).
    let first =
        |port: u16| epoch(&tshark(&pcap, &format!("{in_call} && udp.srcport == {port}"), &["frame.time_epoch"])[0][0]);
    let arrival_gap_frames = (first(20000) - first(30000)) * 8000.0;
    assert!(
        ((l_off as f64 - r_off as f64) - arrival_gap_frames).abs() <= 240.0,
        "{l_off} {r_off} {arrival_gap_frames}"
    );

    // The WAV lasts as long as the media: first RTP packet to the end of the last one.
    let times: Vec<f64> = tshark(&pcap, &in_call, &["frame.time_epoch"]).iter().map(|row| epoch(&row[0])).collect();
    let media_s = times.last().unwrap() - times.first().unwrap() + 0.030;
    let wav_s = left.len() as f64 / 8000.0;
    assert!((wav_s - media_s).abs() < 0.1, "wav {wav_s} s, media {media_s} s");
    assert_eq!(r["duration_ms"].as_i64().unwrap(), (left.len() as i64 * 1000) / 8000);

    // The call's JSON names its recording.
    let calls: Value = serde_json::from_str(&s.ok(&["calls", "--json"])).unwrap();
    assert_eq!(calls[0]["recording"], r["id"]);

    // A second replay of the same capture keeps the finished evidence as it is.
    let before = std::fs::read(&wav).unwrap();
    s.replay(&["ring-7s.pcap"]);
    assert_eq!(std::fs::read(&wav).unwrap(), before);
    assert_eq!(s.recordings().len(), 1);
}

#[test]
fn a_sipp_call_playing_espeak_speech_is_recorded_sample_exact() {
    // Both SIPp peers played speech.al (espeak-ng, A-law by sox) with play_pcap_audio
    // (tests/fixtures/recording/make-sipp-speech).
    let s = site();
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recording/sipp-speech.pcap");
    s.ok(&["replay", "-q", pcap.to_str().unwrap()]);
    let recs = s.recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(r["status"], "complete");
    assert_eq!(r["dtmf"], "1");
    let (_, left, right) = read_wav(&s.rec.join(r["path"].as_str().unwrap()));
    let bye = epoch(&tshark(&pcap, "sip.Method == \"BYE\"", &["frame.time_epoch"])[0][0]);
    let in_call = format!("rtp.p_type == 8 && frame.time_epoch < {bye}");
    let l_ref = reference(&pcap, &format!("{in_call} && udp.srcport == 20000"), "al");
    let r_ref = reference(&pcap, &format!("{in_call} && udp.srcport == 30000"), "al");
    placed_exactly(&left, &l_ref);
    placed_exactly(&right, &r_ref);
    // What went over the wire is the whole speech: every sample of it is in each channel.
    let speech =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recording/speech.al")).unwrap();
    let whole = &speech[..speech.len() / 160 * 160];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.al"), whole).unwrap();
    let dec = Command::new("sox")
        .args(["-t", "al", "-r", "8000", "-c", "1"])
        .arg(dir.path().join("s.al"))
        .args(["-t", "s16", "-e", "signed", "-b", "16", "-L", "-"])
        .output()
        .unwrap();
    let want: Vec<i16> = dec.stdout.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(l_ref, want);
    assert_eq!(r_ref, want);
    let times: Vec<f64> = tshark(&pcap, &in_call, &["frame.time_epoch"]).iter().map(|row| epoch(&row[0])).collect();
    let media_s = times.last().unwrap() - times.first().unwrap() + 0.020;
    let wav_s = left.len() as f64 / 8000.0;
    assert!((wav_s - media_s).abs() < 0.1, "wav {wav_s} s, media {media_s} s");
}

#[test]
fn calls_outside_the_recorded_group_are_not_recorded_and_calls_without_media_are_empty() {
    let s = site();
    // tcp-call is 8007 (recorded); busy-486 and cancel-ringing never had media.
    s.replay(&["tcp-call.pcap", "busy-486.pcap", "cancel-ringing.pcap"]);
    let recs = s.recordings();
    let status =
        |caller: &str| recs.iter().find(|r| r["caller"] == caller).map(|r| r["status"].as_str().unwrap().to_string());
    assert_eq!(status("8007").as_deref(), Some("complete"));
    assert_eq!(status("8005").as_deref(), Some("empty"));
    assert_eq!(status("8006").as_deref(), Some("empty"));

    let other = site();
    std::fs::write(&other.config, CONFIG.replace("8001-8099", "8050-8099")).unwrap();
    other.replay(&["ring-7s.pcap"]);
    assert!(other.recordings().is_empty());
    assert!(!other.rec.join("2026").exists());
}

#[test]
fn verify_export_play_and_the_playback_log() {
    let s = site();
    s.replay(&["ring-7s.pcap", "ring-12s.pcap"]);
    let recs = s.recordings();
    assert_eq!(recs.len(), 2);
    let (a, b) = (recs[0]["id"].as_str().unwrap(), recs[1]["id"].as_str().unwrap());
    let wav_a = s.rec.join(recs[0]["path"].as_str().unwrap());
    let wav_b = s.rec.join(recs[1]["path"].as_str().unwrap());
    assert!(s.ok(&["recordings", "verify"]).contains("2 file(s) checked, 2 ok"));

    // Export while intact: the copy is byte for byte the file.
    let out = s.root.join("export-a.wav");
    s.ok(&["recordings", "export", a, out.to_str().unwrap(), "--as", "auditor1"]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&wav_a).unwrap());
    // An existing file is never overwritten.
    assert_eq!(s.run(&["recordings", "export", a, out.to_str().unwrap()]).status.code(), Some(1));
    // Play to a pipe: the WAV on stdout.
    let played = s.run(&["recordings", "play", a]);
    assert!(played.status.success());
    assert_eq!(played.stdout, std::fs::read(&wav_a).unwrap());

    // One byte changed in a, b deleted, an extra file dropped in.
    let mut bytes = std::fs::read(&wav_a).unwrap();
    bytes[5000] ^= 0x01;
    std::fs::write(&wav_a, &bytes).unwrap();
    std::fs::remove_file(&wav_b).unwrap();
    let extra = wav_a.with_file_name("planted.wav");
    std::fs::write(&extra, b"RIFF").unwrap();

    let v = s.run(&["recordings", "verify", "--json"]);
    assert_eq!(v.status.code(), Some(1), "{}", stdout(&v));
    let rep: Value = serde_json::from_str(&stdout(&v)).unwrap();
    let verify = &rep["verify"];
    assert_eq!(verify["changed"].as_array().unwrap().len(), 1);
    assert_eq!(verify["changed"][0]["id"], a);
    assert_eq!(verify["missing"].as_array().unwrap().len(), 1);
    assert_eq!(verify["missing"][0]["id"], b);
    assert_eq!(verify["unexpected"].as_array().unwrap().len(), 1);
    assert!(verify["unexpected"][0].as_str().unwrap().ends_with("/planted.wav"));
    assert_eq!(rep["clean"], false);
    let text = s.run(&["recordings", "verify"]);
    assert_eq!(text.status.code(), Some(1));
    let t = stdout(&text);
    assert!(t.contains("CHANGED") && t.contains("MISSING") && t.contains("UNEXPECTED"), "{t}");

    // The deleted one is now marked missing; the changed one cannot be exported or played.
    let status_of =
        |id: &str| s.recordings().into_iter().find(|r| r["id"] == id).unwrap()["status"].as_str().unwrap().to_string();
    assert_eq!(status_of(b), "missing");
    let refused_to = s.root.join("export-tampered.wav");
    let e = s.run(&["recordings", "export", a, refused_to.to_str().unwrap()]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("REFUSED"), "{}", String::from_utf8_lossy(&e.stderr));
    assert!(!refused_to.exists());
    assert!(!s.root.join("export-tampered.wav.partial").exists());
    assert_eq!(s.run(&["recordings", "play", a]).status.code(), Some(1));
    assert_eq!(s.run(&["recordings", "export", b, refused_to.to_str().unwrap()]).status.code(), Some(1));

    // Every access that handed audio out is in the log, with who.
    let log: Value = serde_json::from_str(&s.ok(&["recordings", "log", "--json"])).unwrap();
    let lines: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["who"].as_str().unwrap().into(),
                l["recording_id"].as_str().unwrap().into(),
                l["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [("auditor1".to_string(), a.to_string(), "export".to_string()), ("tester".into(), a.into(), "play".into())]
    );
    let only: Value = serde_json::from_str(&s.ok(&["recordings", "log", "--json", "--who", "auditor1"])).unwrap();
    assert_eq!(only.as_array().unwrap().len(), 1);
}

#[test]
fn the_monthly_sample_is_reproducible_and_moves_with_the_seed() {
    let s = site();
    s.replay(&[
        "ring-7s.pcap",
        "ring-12s.pcap",
        "ring-17s.pcap",
        "ring-none.pcap",
        "tcp-call.pcap",
        "kamailio-proxy.pcap",
    ]);
    // The candidates hold audio: the recordings of calls never answered are empty (0 s),
    // nothing for an auditor to listen to.
    let all = s.recordings();
    let n = all.iter().filter(|r| r["status"] != "empty" && r["duration_ms"].as_i64().unwrap_or(0) > 0).count();
    assert!(n >= 8 && n < all.len(), "{n} of {} recordings with audio", all.len());
    let draw = |seed: Option<&str>| {
        let mut args = vec!["recordings", "sample", "3", "--group", "dispatch", "--month", "2026-11", "--json"];
        if let Some(seed) = seed {
            args.extend(["--seed", seed]);
        }
        let v: Value = serde_json::from_str(&s.ok(&args)).unwrap();
        assert_eq!(v["candidates"].as_u64().unwrap() as usize, n);
        v["drawn"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let default = draw(None);
    assert_eq!(default.len(), 3);
    assert_eq!(draw(None), default, "the month's default draw is fixed");
    let one = draw(Some("1"));
    assert_eq!(draw(Some("1")), one);
    let others: Vec<Vec<String>> = (2..6).map(|k| draw(Some(&k.to_string()))).collect();
    assert!(others.iter().any(|o| *o != one), "other seeds draw other recordings");
    // Another month has no candidates; a bad month is a usage error.
    let v: Value = serde_json::from_str(&s.ok(&[
        "recordings",
        "sample",
        "3",
        "--group",
        "dispatch",
        "--month",
        "2026-10",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["drawn"].as_array().unwrap().len(), 0);
    assert_eq!(
        s.run(&["recordings", "sample", "3", "--group", "dispatch", "--month", "2026-13"]).status.code(),
        Some(2)
    );
    // The draws are logged.
    let log: Value = serde_json::from_str(&s.ok(&["recordings", "log", "--json"])).unwrap();
    assert!(log.as_array().unwrap().iter().all(|l| l["action"] == "sample"));
    assert_eq!(log.as_array().unwrap().len(), 3 * (2 + 2 + 4));
}

/// The child of the kill test (the same test run again by it, with the variables set):
/// the real engine and recorder over ring-7s.pcap, stopped half a second before the BYE;
/// it says READY once the file has been flushed, then waits to be killed.
fn kill_child(root: &str) {
    let root = PathBuf::from(root);
    let settings =
        callwarden::settings::Settings::load(Some(&root.join("callwarden.toml")), Some(&root.join("cw.db"))).unwrap();
    let engine = Engine::new(&settings.config).unwrap();
    let (store_sink, _writer) = store::open(&settings.db_path, &settings.config.site.timezone).unwrap();
    let opts =
        recorder::RecorderOptions { flush_interval: std::time::Duration::from_millis(200), ..Default::default() };
    let (rec_sink, rec, _) =
        recorder::open(&recorder::RecorderConfig::from_settings(&settings), opts, recorder::wall_clock()).unwrap();
    let sinks: Vec<Box<dyn Sink + Send>> =
        vec![Box::new(callwarden::sink::database::Database(Box::new(store_sink))), Box::new(rec_sink)];
    let mut driver = Driver::new(engine, sinks);
    let mut cap = callwarden::capture::file::FileCapture::open(&Path::new(SIPP).join("ring-7s.pcap")).unwrap();
    let stop = callwarden_core::Ts(std::env::var("CALLWARDEN_KILL_AT").unwrap().parse().unwrap());
    while let Some(f) = cap.next_frame().unwrap() {
        if f.ts >= stop {
            break;
        }
        driver.feed(f);
    }
    rec.barrier().unwrap();
    // Five flush intervals (room for a loaded machine): the header now says what the
    // data is.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    println!("READY");
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[test]
fn a_recording_killed_midway_is_repaired_at_the_next_start() {
    if let Ok(root) = std::env::var("CALLWARDEN_KILL_CHILD") {
        return kill_child(&root);
    }
    let s = site();
    let pcap = Path::new(SIPP).join("ring-7s.pcap");
    let bye = epoch(&tshark(&pcap, "sip.Method == \"BYE\"", &["frame.time_epoch"])[0][0]);
    let stop_us = ((bye - 0.5) * 1e6) as i64;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_recording_killed_midway_is_repaired_at_the_next_start",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("CALLWARDEN_KILL_CHILD", &s.root)
        .env("CALLWARDEN_KILL_AT", stop_us.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("READY")), "the child did not get ready");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The row says recording, the WAV is half-written.
    let recs = s.recordings();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["status"], "recording");
    let wav = s.rec.join(recs[0]["path"].as_str().unwrap());
    let len = std::fs::metadata(&wav).unwrap().len();
    assert!(len > 44 + 8000 * 4, "{len} bytes on disk");

    // The next start repairs it: playable, frames = the data present, hashed.
    let v = s.run(&["recordings", "verify", "--json"]);
    assert!(v.status.success(), "{}", stdout(&v));
    let rep: Value = serde_json::from_str(&stdout(&v)).unwrap();
    assert_eq!(rep["repair"]["repaired"].as_array().unwrap().len(), 1, "{rep}");
    let r = &s.recordings()[0];
    assert_eq!(r["status"], "repaired");
    let (spec, left, right) = read_wav(&wav);
    assert_eq!(spec.channels, 2);
    assert_eq!(left.len() as u64 * 4, std::fs::metadata(&wav).unwrap().len() - 44);
    assert_eq!(r["frames"].as_i64().unwrap() as usize, left.len());
    let sha = Command::new("sha256sum").arg(&wav).output().unwrap();
    assert_eq!(stdout(&sha).split_whitespace().next().unwrap(), r["sha256"].as_str().unwrap());
    // The call was in progress at the kill: it has no record, and the recording says so
    // (an orphan) in the list and in verify, which stays clean (nothing was altered).
    let calls: Value = serde_json::from_str(&s.ok(&["calls", "--json"])).unwrap();
    assert_eq!(calls.as_array().unwrap().len(), 0, "{calls}");
    assert_eq!(r["call_record"], false, "{r}");
    assert!(s.ok(&["recordings", "list"]).contains("repaired (no call record)"));
    let v: Value = serde_json::from_str(&s.ok(&["recordings", "verify", "--json"])).unwrap();
    assert_eq!(v["verify"]["without_call"], serde_json::json!([r["id"]]), "{v}");
    assert_eq!(v["clean"], true);
    assert!(s.ok(&["recordings", "verify"]).contains(&format!("NO CALL     {}", r["id"].as_str().unwrap())));

    // What was kept is the beginning of the full recording, sample for sample, and it
    // reaches the kill point less at most the core's reordering window (200 ms: audio is
    // committed that long after its packet time), a flush interval (200 ms here) and a
    // packet.
    let full = site();
    full.replay(&["ring-7s.pcap"]);
    assert_eq!(full.recordings()[0]["call_record"], true);
    let v: Value = serde_json::from_str(&full.ok(&["recordings", "verify", "--json"])).unwrap();
    assert_eq!(v["verify"]["without_call"], serde_json::json!([]), "{v}");
    assert!(!full.ok(&["recordings", "list"]).contains("no call record"));
    let (_, fl, fr) = read_wav(&full.rec.join(full.recordings()[0]["path"].as_str().unwrap()));
    assert_eq!(&fl[..left.len()], &left[..]);
    assert_eq!(&fr[..right.len()], &right[..]);
    let missing_s = (fl.len() - left.len()) as f64 / 8000.0;
    eprintln!("killed: {} of {} frames kept, {missing_s:.3} s lost", left.len(), fl.len());
    assert!(missing_s < 0.5 + 0.2 + 0.2 + 0.03, "{missing_s} s lost");
    assert!(missing_s >= 0.45, "{missing_s} s lost: more than the capture fed?");
    // And verify is clean afterwards; a replay again does not overwrite the evidence.
    assert!(s.run(&["recordings", "verify"]).status.success());
}
