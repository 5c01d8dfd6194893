//! Separate replays of a rotated set, seen from what an auditor gets: a call cut by the end
//! of one file and completed by a later replay (`replay_open`, the warm-up re-read of the
//! earlier files) must end with one recording of the whole call — equal, sample for sample
//! and byte for byte, to the one a single replay of both files makes — while the partial
//! one the first replay wrote stays on disk with its hash, marked superseded. Also:
//! `replay --follow` hands over the calls open when it is stopped like a separate replay
//! does, and what files replayed out of order give.
//! Needs no tools beyond the built binary; the captures are committed files.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_callwarden");

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

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cw.toml"), CONFIG).expect("config");
        Site { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(self.path("cw.toml"))
            .arg("--db")
            .arg(self.path("cw.db"))
            .env("USER", "tester")
            .env_remove("SUDO_USER")
            .stdin(Stdio::null())
            .output()
            .expect("run callwarden")
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn replay(&self, files: &[&Path]) -> String {
        let mut args = vec!["replay".to_string(), "-q".into()];
        args.extend(files.iter().map(|p| p.display().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&refs);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
    fn json(&self, args: &[&str]) -> Vec<Value> {
        let v: Value = serde_json::from_str(&self.ok(args)).expect("JSON");
        v.as_array().cloned().expect("an array")
    }
    fn calls(&self) -> Vec<Value> {
        self.json(&["calls", "--json"])
    }
    fn recordings(&self) -> Vec<Value> {
        self.json(&["recordings", "list", "--json"])
    }
    /// The WAV of a recording row, read whole.
    fn wav(&self, r: &Value) -> Vec<u8> {
        std::fs::read(self.path("rec").join(r["path"].as_str().expect("path"))).expect("the WAV is on disk")
    }
}

/// Split a classic little-endian pcap after frame `at`s (0-based frame counts), as a
/// capture box rotating its file would.
fn split(pcap: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let header = &pcap[..24];
    assert_eq!(&header[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "a little-endian microsecond pcap");
    let mut files = vec![header.to_vec()];
    let (mut at, mut n) = (24usize, 0usize);
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes([pcap[at + 8], pcap[at + 9], pcap[at + 10], pcap[at + 11]]) as usize;
        if cuts.contains(&n) {
            files.push(header.to_vec());
        }
        files.last_mut().expect("a file").extend_from_slice(&pcap[at..at + 16 + incl]);
        at += 16 + incl;
        n += 1;
    }
    files
}

/// ring-7s (one dispatch call, 8001 → 8101, PCMA both ways from 7.08 s to the BYE at 9.82 s)
/// cut after frame 100 (8.4 s): the RTP of the call spans both files.
fn ring_7s_in_two(site: &Site) -> (PathBuf, PathBuf) {
    let parts = split(&std::fs::read(fixture("sipp/ring-7s.pcap")).expect("fixture"), &[100]);
    assert_eq!(parts.len(), 2);
    let (a, b) = (site.path("cap-1.pcap"), site.path("cap-2.pcap"));
    std::fs::write(&a, &parts[0]).expect("write");
    std::fs::write(&b, &parts[1]).expect("write");
    (a, b)
}

/// The fields of a recording that must not depend on how the files were replayed.
fn audio_of(r: &Value) -> (Value, Value, Value, Value, Value) {
    (r["frames"].clone(), r["duration_ms"].clone(), r["sha256"].clone(), r["dtmf"].clone(), r["sample_rate"].clone())
}

/// Issue 19: a dispatch call whose RTP spans two files of a rotated set. Replayed together,
/// one recording. Replayed one at a time, the second run completes the call the first left
/// capture-ended — and its recording must be the whole call's (same frames, same SHA-256 as
/// the single run's), the call must name it, and the first run's partial WAV must stay on
/// disk with its hash, named as superseded by the whole one, listed and checked by `recordings verify`.
#[test]
fn a_call_completed_by_a_later_replay_gets_the_whole_recording_and_keeps_the_partial_one() {
    let one = Site::new();
    let (a, b) = ring_7s_in_two(&one);
    one.replay(&[&a, &b]);
    let recs = one.recordings();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let whole = recs[0].clone();
    assert_eq!(whole["status"], "complete");
    assert!(whole["frames"].as_i64().unwrap_or(0) > 8000, "{whole}");

    let runs = Site::new();
    let (a, b) = ring_7s_in_two(&runs);
    runs.replay(&[&a]);
    let calls = runs.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["end_reason"], "capture-ended");
    let recs = runs.recordings();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let partial = recs[0].clone();
    assert!(partial["frames"].as_i64() < whole["frames"].as_i64(), "{partial}");
    let partial_wav = runs.wav(&partial);

    let out = runs.run(&["replay", "--json", &b.display().to_string()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("resuming 1 call"), "{said}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary JSON");
    assert_eq!(summary["recordings"]["superseded"], 1, "{summary:#}");
    let calls = runs.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["end_reason"], one.calls()[0]["end_reason"]);

    let recs = runs.recordings();
    let current: Vec<&Value> = recs.iter().filter(|r| r["superseded_by"].is_null()).collect();
    assert_eq!(current.len(), 1, "one recording of the call: {recs:#?}");
    assert_eq!(audio_of(current[0]), audio_of(&whole), "{:#?}", current[0]);
    assert_eq!(runs.wav(current[0]), one.wav(&whole), "the same WAV, byte for byte");
    assert_eq!(calls[0]["recording"], current[0]["id"], "the call names the whole recording");

    let old: Vec<&Value> = recs.iter().filter(|r| !r["superseded_by"].is_null()).collect();
    assert_eq!(old.len(), 1, "the partial recording is kept: {recs:#?}");
    assert_eq!(old[0]["id"], partial["id"]);
    assert_eq!(old[0]["superseded_by"], current[0]["id"]);
    assert_eq!(old[0]["status"], "complete", "its file is as that replay finished it");
    assert_eq!(old[0]["sha256"], partial["sha256"]);
    assert_eq!(old[0]["frames"], partial["frames"]);
    assert_eq!(runs.wav(old[0]), partial_wav, "the partial WAV is untouched");

    let v: Value = serde_json::from_str(&runs.ok(&["recordings", "verify", "--json"])).expect("JSON");
    assert_eq!(v["clean"], true, "{v:#}");
    assert!(runs.ok(&["recordings", "verify"]).contains("2 file(s) checked, 2 ok"));

    // Replaying either file again changes nothing.
    runs.replay(&[&a]);
    runs.replay(&[&b]);
    assert_eq!(runs.recordings(), recs);
}

/// The first file replayed alone, then both files in one run: the second run reads past
/// the cut itself (not a resume: it starts before it) and stores the call whole; its
/// recording supersedes the partial one the same way, and the call is no longer left open.
#[test]
fn a_cut_call_read_whole_by_a_later_run_over_both_files_gets_the_whole_recording() {
    let one = Site::new();
    let (a, b) = ring_7s_in_two(&one);
    one.replay(&[&a, &b]);
    let whole = one.recordings()[0].clone();

    let runs = Site::new();
    let (a, b) = ring_7s_in_two(&runs);
    runs.replay(&[&a]);
    let partial = runs.recordings()[0].clone();
    runs.replay(&[&a, &b]);
    let calls = runs.calls();
    assert_eq!(calls.len(), 1);
    assert_ne!(calls[0]["end_reason"], "capture-ended");
    let recs = runs.recordings();
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let current = recs.iter().find(|r| r["superseded_by"].is_null()).expect("the call's recording");
    assert_eq!(audio_of(current), audio_of(&whole));
    assert_eq!(calls[0]["recording"], current["id"]);
    let old = recs.iter().find(|r| r["id"] == partial["id"]).expect("the partial one is kept");
    assert_eq!((&old["superseded_by"], &old["sha256"]), (&current["id"], &partial["sha256"]));
    // Nothing is left open: the second file replayed alone now changes nothing.
    let said = runs.replay(&[&b]);
    assert!(!said.contains("resuming"), "{said}");
    assert_eq!(runs.recordings(), recs);
}

/// Start `replay --follow` on `spool`, let `write` put files there, stop it with SIGTERM.
fn follow(site: &Site, spool: &Path, write: impl FnOnce()) -> Output {
    let child = Command::new(BIN)
        .args(["replay", "--follow", "-q", "--config"])
        .arg(site.path("cw.toml"))
        .arg("--db")
        .arg(site.path("cw.db"))
        .arg(spool)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn replay --follow");
    // Its signal handler is installed first thing; give it the time to be.
    std::thread::sleep(std::time::Duration::from_millis(800));
    write();
    std::thread::sleep(std::time::Duration::from_millis(800));
    // SAFETY: kill(2) on the pid of the child this test started.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().expect("replay --follow ends");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `replay --follow` stopped (SIGTERM) while a call is open hands it over exactly as a
/// separate replay does: stored capture-ended, remembered in replay_open, and completed —
/// record and recording — by the next run, whether that is a replay of the next file or
/// `--follow` started again on the folder. A call spanning the files one `--follow` run
/// reads is one whole call with one recording.
#[test]
fn follow_stopped_mid_call_hands_it_over_like_a_separate_replay() {
    let one = Site::new();
    let (a, b) = ring_7s_in_two(&one);
    one.replay(&[&a, &b]);
    let (want_call, whole) = (one.calls()[0].clone(), one.recordings()[0].clone());
    let same_call = |c: &Value| {
        for k in ["call_id", "started_at", "answered_at", "ended_at", "talk_ms", "end_reason", "sip_status"] {
            assert_eq!(c[k], want_call[k], "{k}");
        }
    };

    // One --follow run over both files.
    let site = Site::new();
    let (a, b) = ring_7s_in_two(&site);
    let spool = site.path("spool");
    std::fs::create_dir(&spool).expect("mkdir");
    follow(&site, &spool, || {
        std::fs::copy(&a, spool.join("cap-1.pcap")).expect("copy");
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::copy(&b, spool.join("cap-2.pcap")).expect("copy");
    });
    same_call(&site.calls()[0]);
    let recs = site.recordings();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(audio_of(&recs[0]), audio_of(&whole));

    // Stopped after the first file; the next file replayed on its own.
    for next_is_follow in [false, true] {
        let site = Site::new();
        let (a, b) = ring_7s_in_two(&site);
        let spool = site.path("spool");
        std::fs::create_dir(&spool).expect("mkdir");
        follow(&site, &spool, || {
            std::fs::copy(&a, spool.join("cap-1.pcap")).expect("copy");
        });
        let calls = site.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["end_reason"], "capture-ended", "next_is_follow {next_is_follow}");
        let partial = site.recordings()[0].clone();
        assert!(partial["frames"].as_i64() < whole["frames"].as_i64());
        if next_is_follow {
            follow(&site, &spool, || {
                std::fs::copy(&b, spool.join("cap-2.pcap")).expect("copy");
            });
        } else {
            let said = site.replay(&[&b]);
            assert!(said.contains("resuming 1 call"), "{said}");
        }
        let calls = site.calls();
        assert_eq!(calls.len(), 1);
        same_call(&calls[0]);
        let recs = site.recordings();
        let current = recs.iter().find(|r| r["superseded_by"].is_null()).expect("the call's recording");
        assert_eq!(audio_of(current), audio_of(&whole), "next_is_follow {next_is_follow}");
        assert_eq!(calls[0]["recording"], current["id"]);
        let old = recs.iter().find(|r| r["id"] == partial["id"]).expect("kept");
        assert_eq!(old["superseded_by"], current["id"]);
        assert_eq!(recs.len(), 2, "{recs:#?}");
    }
}

/// Files replayed out of order in separate runs: the second file first, then the first.
/// What the operator gets, said in the README: the second file alone holds the call's
/// end without its INVITE, which is no call; the first then stores the call from its start
/// to the end of that file, `capture-ended`, with the part of its recording — different
/// from one run over both. Replaying the second file again (now after the first) resumes
/// the call and gives exactly the records of one run.
#[test]
fn files_replayed_out_of_order_cut_the_call_until_the_later_one_is_replayed_again() {
    let one = Site::new();
    let (a, b) = ring_7s_in_two(&one);
    one.replay(&[&a, &b]);
    let (want_call, whole) = (one.calls()[0].clone(), one.recordings()[0].clone());

    let site = Site::new();
    let (a, b) = ring_7s_in_two(&site);
    site.replay(&[&b]);
    assert!(site.calls().is_empty(), "{:#?}", site.calls());
    assert!(site.recordings().is_empty());
    site.replay(&[&a]);
    let calls = site.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["end_reason"], "capture-ended");
    assert_ne!(calls[0]["ended_at"], want_call["ended_at"]);
    let recs = site.recordings();
    assert_eq!(recs.len(), 1);
    assert!(recs[0]["frames"].as_i64() < whole["frames"].as_i64());

    let said = site.replay(&[&b]);
    assert!(said.contains("resuming 1 call"), "{said}");
    let calls = site.calls();
    assert_eq!(calls.len(), 1);
    for k in ["call_id", "started_at", "answered_at", "ended_at", "talk_ms", "end_reason", "sip_status"] {
        assert_eq!(calls[0][k], want_call[k], "{k}");
    }
    let current: Vec<Value> = site.recordings().into_iter().filter(|r| r["superseded_by"].is_null()).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(audio_of(&current[0]), audio_of(&whole));
}
