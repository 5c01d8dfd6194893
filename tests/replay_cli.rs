//! `callwarden replay` end to end through the built binary: the summary, idempotence (the
//! same file twice stores each call once), the JSON that scripts depend on, and bad input —
//! a truncated capture, a file that is not a capture, a missing file, an unusable database
//! path, a broken config — each a one-line error naming the file, a non-zero exit, and
//! nothing already stored lost.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_callwarden")
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("cw.toml"),
            "[site]\nextensions = [\"1000-2999\", \"8000-8999\"]\n[store]\npath = \"cw.db\"\n[recordings]\ndir = \"rec\"\n",
        )
        .expect("config");
        Site { dir }
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("cw.toml")
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(bin()).args(args).arg("--config").arg(self.config()).output().expect("run callwarden")
    }
    fn replay(&self, files: &[&Path]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.arg("replay").arg("--json").arg("--config").arg(self.config());
        for f in files {
            cmd.arg(f);
        }
        cmd.output().expect("run replay")
    }
    fn calls(&self) -> Vec<Value> {
        let out = self.run(&["calls", "--json"]);
        assert!(out.status.success(), "calls: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("calls --json is JSON");
        v.as_array().cloned().expect("an array")
    }
}

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("summary JSON: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}

#[test]
fn replay_stores_calls_once_and_prints_drops_by_reason() {
    let site = Site::new();
    let pcap = fixture("public/gen-sipp-mixed-calls-udp.pcap");
    let first = site.replay(&[&pcap]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let s = summary(&first);
    assert_eq!(s["packets"], 2569);
    assert_eq!(s["calls"], 7);
    assert_eq!(s["calls_new"], 7);
    assert!(s["sip_messages"].as_u64().unwrap_or(0) >= 45, "{s}");
    // Every packet is used or counted: ICMP port-unreachables and late RTP show by reason.
    let drops = s["drops"].as_object().expect("drops by reason");
    assert_eq!(drops.values().filter_map(Value::as_u64).sum::<u64>(), s["dropped"].as_u64().unwrap_or(0));

    let again = site.replay(&[&pcap]);
    assert!(again.status.success());
    let s2 = summary(&again);
    assert_eq!((s2["calls"].as_u64(), s2["calls_new"].as_u64()), (Some(7), Some(0)));
    let calls = site.calls();
    assert_eq!(calls.len(), 7, "a second replay must not duplicate calls");

    // The fields scripts depend on (DESIGN.md), with their types.
    for c in &calls {
        for key in [
            "call_id",
            "caller",
            "callee",
            "dialled",
            "number",
            "direction",
            "class",
            "group",
            "started_at",
            "ringing_at",
            "answered_at",
            "ended_at",
            "rings",
            "ring_ms",
            "talk_ms",
            "answered",
            "end_reason",
            "sip_status",
            "cost_fen",
            "recording",
            "violations",
        ] {
            assert!(c.get(key).is_some(), "missing {key} in {c}");
        }
        let started = c["started_at"].as_str().expect("RFC 3339 string");
        assert!(started.ends_with("+08:00"), "times in the site's zone with offset: {started}");
    }
    let busy: Vec<&Value> = calls.iter().filter(|c| c["end_reason"] == "busy").collect();
    assert_eq!(busy.len(), 1);
    assert_eq!((busy[0]["sip_status"].as_u64(), busy[0]["answered"].as_bool()), (Some(486), Some(false)));
    let slow = calls.iter().find(|c| c["callee"] == "2002").expect("the 16 s ring call");
    assert_eq!((slow["rings"].as_u64(), slow["answered"].as_bool()), (Some(4), Some(true)));
    assert!((slow["ring_ms"].as_i64().unwrap_or(0) - 16_000).abs() < 100, "{slow}");
}

#[test]
fn truncated_capture_keeps_the_calls_before_the_damage() {
    let site = Site::new();
    let src = std::fs::read(fixture("public/gen-sipp-mixed-calls-udp.pcap")).expect("fixture");
    // Cut inside a record in the last third: the first calls are complete before it.
    let cut = site.dir.path().join("cut.pcap");
    std::fs::write(&cut, &src[..src.len() * 2 / 3 + 7]).expect("write");
    let out = site.replay(&[&cut]);
    assert_eq!(out.status.code(), Some(1), "a damaged file is a failure");
    let errors = stderr_lines(&out);
    assert_eq!(errors.len(), 1, "one line: {errors:?}");
    assert!(errors[0].contains("cut.pcap") && errors[0].contains("frame"), "{}", errors[0]);
    let s = summary(&out);
    let stored = s["calls"].as_u64().unwrap_or(0);
    assert!(stored >= 3, "calls completed before the truncation are stored: {s}");
    assert_eq!(site.calls().len() as u64, stored);
}

#[test]
fn not_a_capture_missing_file_bad_db_and_bad_config_are_one_line_errors() {
    let site = Site::new();
    let junk = site.dir.path().join("notes.txt");
    std::fs::write(&junk, "this is not a capture\n").expect("write");
    let out = site.replay(&[&junk]);
    assert_ne!(out.status.code(), Some(0));
    let e = stderr_lines(&out);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("notes.txt") && e[0].contains("not a pcap"), "{}", e[0]);
    assert!(!site.dir.path().join("cw.db").exists(), "nothing stored for a file that cannot be read");

    let out = site.replay(&[&site.dir.path().join("nope.pcap")]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr_lines(&out);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("nope.pcap"), "{}", e[0]);

    // A database path in a folder that does not exist.
    let pcap = fixture("sipp/ring-7s.pcap");
    let out = Command::new(bin())
        .args(["replay", "--config"])
        .arg(site.config())
        .arg("--db")
        .arg("/nonexistent-dir/x/cw.db")
        .arg(&pcap)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let e = stderr_lines(&out);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("/nonexistent-dir/x/cw.db"), "{}", e[0]);

    // A broken config: key and line, exit 2.
    let bad = site.dir.path().join("bad.toml");
    std::fs::write(&bad, "[site]\ntimezone = \"Mars/Olympus\"\n\n[ringing]\ncycle_ms = 0\n").expect("write");
    let out = Command::new(bin()).args(["replay", "--config"]).arg(&bad).arg(&pcap).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("bad.toml:2") && text.contains("site.timezone"), "{text}");
    assert!(text.contains("bad.toml:5") && text.contains("ringing.cycle_ms"), "{text}");
}

#[test]
fn stats_by_ext_and_day() {
    let site = Site::new();
    let out = site.replay(&[&fixture("public/gen-sipp-mixed-calls-udp.pcap")]);
    assert!(out.status.success());
    let out = site.run(&["stats", "--by", "day", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["calls"], 7);
    let out = site.run(&["stats", "--by", "ext"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("2002") && table.contains("2001"), "{table}");
}

/// A long replay on a terminal shows its progress (file, packets/s, calls) on stderr; not
/// on a pipe (the other tests' stderr is a pipe: there it stays empty).
#[test]
fn progress_on_a_terminal_only() {
    let site = Site::new();
    let pcap = fixture("public/gen-sipp-mixed-calls-udp.pcap");
    // On a pipe: nothing but the summary on stdout, nothing on stderr.
    let piped = site.replay(&[&pcap]);
    assert!(piped.status.success());
    assert!(stderr_lines(&piped).is_empty(), "{:?}", stderr_lines(&piped));
    // Under a pseudo-terminal (util-linux `script`): the progress line is drawn.
    let cmd = format!("{} replay --quiet --config {} {}", bin(), site.config().display(), pcap.display());
    let tty =
        Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("TERM", "xterm").output().expect("run script(1)");
    assert!(tty.status.success(), "{}", String::from_utf8_lossy(&tty.stderr));
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(
        text.contains("gen-sipp-mixed-calls-udp.pcap: ") && text.contains("packets (") && text.contains("calls"),
        "no progress line on the terminal:\n{text}"
    );
    assert!(text.contains("replayed 1 file(s)"), "{text}");
}

/// `replay` as root into a database folder the service's user owns would leave root-owned
/// files the daemon cannot write: refused, naming the owner and how to run it. (Root, as
/// CI and the daemon tests run.)
#[test]
fn replay_as_root_over_another_users_data_is_refused() {
    // SAFETY: geteuid(2) has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test runs as root (as CI does)");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    // uid 65534 (nobody): any owner but root.
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).expect("chown");
    let cfg = dir.path().join("cw.toml");
    std::fs::write(
        &cfg,
        "[site]\nextensions = [\"8000-8999\"]\n[store]\npath = \"data/cw.db\"\n[recordings]\ndir = \"data/rec\"\n",
    )
    .expect("config");
    let pcap = fixture("sipp/ring-7s.pcap");
    let out = Command::new(bin()).arg("replay").arg("--config").arg(&cfg).arg(&pcap).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("owned by nobody") && err.contains("sudo -u nobody callwarden replay"), "{err}");
    assert!(!data.join("cw.db").exists(), "nothing written");
}

/// Split a classic little-endian pcap into files of `per` frames each: (bytes, first frame
/// time in µs) per file, as tcpdump -C/-G would rotate it.
fn rotate(pcap: &[u8], per: usize) -> Vec<(Vec<u8>, i64)> {
    let header = &pcap[..24];
    assert_eq!(&header[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "a little-endian microsecond pcap");
    let mut files: Vec<(Vec<u8>, i64)> = Vec::new();
    let (mut at, mut n) = (24usize, 0usize);
    while at + 16 <= pcap.len() {
        let word = |o: usize| u32::from_le_bytes([pcap[at + o], pcap[at + o + 1], pcap[at + o + 2], pcap[at + o + 3]]);
        let incl = word(8) as usize;
        if n % per == 0 {
            files.push((header.to_vec(), i64::from(word(0)) * 1_000_000 + i64::from(word(4))));
        }
        if let Some(f) = files.last_mut() {
            f.0.extend_from_slice(&pcap[at..at + 16 + incl]);
        }
        at += 16 + incl;
        n += 1;
    }
    files
}

fn call_summaries(calls: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = calls
        .iter()
        .map(|c| {
            let f = |k: &str| c[k].to_string();
            [
                "call_id",
                "caller",
                "callee",
                "started_at",
                "answered_at",
                "ended_at",
                "rings",
                "talk_ms",
                "end_reason",
                "sip_status",
            ]
            .iter()
            .map(|k| f(k))
            .collect::<Vec<_>>()
            .join(" ")
        })
        .collect();
    v.sort();
    v
}

/// A rotated capture set (the calls' frames cut into 4 files, named in the opposite order
/// of their times) replayed as a folder, or as files named in any order, gives exactly the
/// records of the one capture: calls open at the end of a file continue in the next.
#[test]
fn rotated_set_as_a_folder_or_files_equals_the_whole_capture() {
    let whole = fixture("sipp/kamailio-proxy.pcap");
    let one = Site::new();
    let out = one.replay(&[&whole]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = call_summaries(&one.calls());
    assert_eq!(want.len(), 5);

    let set = Site::new();
    let dir = set.dir.path().join("rotated");
    std::fs::create_dir(&dir).expect("mkdir");
    let parts = rotate(&std::fs::read(&whole).expect("fixture"), 210);
    assert_eq!(parts.len(), 4);
    // Some call must span a cut, or the test would prove nothing.
    let spans_a_cut = one.calls().iter().any(|c| {
        let (a, b) = (c["started_at"].as_str().unwrap_or(""), c["ended_at"].as_str().unwrap_or(""));
        parts[1..].iter().any(|(_, t)| {
            let cut = jiff::Timestamp::from_microsecond(*t).expect("ts");
            let (a, b) = (a.parse::<jiff::Timestamp>(), b.parse::<jiff::Timestamp>());
            matches!((a, b), (Ok(a), Ok(b)) if a < cut && cut < b)
        })
    });
    assert!(spans_a_cut, "no call spans a rotation");
    let mut paths = Vec::new();
    for (i, (bytes, _)) in parts.iter().enumerate() {
        let p = dir.join(format!("cap-{}.pcap", 9 - i));
        std::fs::write(&p, bytes).expect("write part");
        paths.push(p);
    }
    std::fs::write(dir.join("README"), "not a capture").expect("write");
    let out = set.replay(&[&dir]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["calls"].as_u64(), Some(5), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("README: not a capture, skipped"));
    assert_eq!(call_summaries(&set.calls()), want);

    let files = Site::new();
    let shuffled: Vec<&Path> = [2usize, 0, 3, 1].iter().map(|&i| paths[i].as_path()).collect();
    let out = files.replay(&shuffled);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(call_summaries(&files.calls()), want);
}

/// Issue 19: the parts of a rotated set replayed one at a time, each in a run of its own
/// into the same database, give the records of one run over the whole capture: a call cut
/// by the end of one part is stored capture-ended, then completed (same identity, not
/// duplicated) by the run over the part that holds its rest.
#[test]
fn parts_replayed_in_separate_runs_equal_the_whole_capture() {
    let whole = fixture("sipp/kamailio-proxy.pcap");
    let one = Site::new();
    let out = one.replay(&[&whole]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = call_summaries(&one.calls());
    assert_eq!(want.len(), 5);
    assert!(one.calls().iter().all(|c| c["end_reason"] != "capture-ended"));

    let runs = Site::new();
    let parts = rotate(&std::fs::read(&whole).expect("fixture"), 210);
    assert_eq!(parts.len(), 4);
    let mut cut_seen = false;
    for (i, (bytes, _)) in parts.iter().enumerate() {
        let p = runs.dir.path().join(format!("part-{i}.pcap"));
        std::fs::write(&p, bytes).expect("write part");
        let out = runs.replay(&[&p]);
        assert!(out.status.success(), "part {i}: {}", String::from_utf8_lossy(&out.stderr));
        let cut = runs.calls().iter().filter(|c| c["end_reason"] == "capture-ended").count();
        cut_seen |= cut > 0;
    }
    assert!(cut_seen, "no call spans a cut: the test would prove nothing");
    let got = runs.calls();
    assert_eq!(got.iter().filter(|c| c["end_reason"] == "capture-ended").count(), 0);
    assert_eq!(call_summaries(&got), want);

    // Replaying the first part again changes nothing: the calls it cuts are stored whole.
    let again = runs.replay(&[&runs.dir.path().join("part-0.pcap")]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(call_summaries(&runs.calls()), want);
}

/// A call left open whose rest never comes stays capture-ended: the next replay starts
/// more than the call timeout (2 h) after it, so nothing is resumed or re-read.
#[test]
fn open_calls_beyond_the_call_timeout_are_not_resumed() {
    let whole = std::fs::read(fixture("sipp/kamailio-proxy.pcap")).expect("fixture");
    let parts = rotate(&whole, 210);
    let site = Site::new();
    let first = site.dir.path().join("part-0.pcap");
    std::fs::write(&first, &parts[0].0).expect("write");
    let late = site.dir.path().join("late.pcap");
    let tail = site.dir.path().join("tail.pcap");
    std::fs::write(&tail, &parts[1].0).expect("write");
    let st = Command::new("editcap").args(["-t", "10800"]).arg(&tail).arg(&late).status().expect("editcap");
    assert!(st.success());
    assert!(site.replay(&[&first]).status.success());
    let cut = |s: &Site| s.calls().iter().filter(|c| c["end_reason"] == "capture-ended").count();
    assert_eq!(cut(&site), 4);
    let out = site.replay(&[&late]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("resuming"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cut(&site), 4, "their rest never came");
    // The next in time, replayed now, no longer resumes them either (handed over once).
    let out = site.replay(&[&tail]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("resuming"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A capture taken with a 200-byte snap length: said once on stderr, and every SIP message
/// it cut (all of kamailio-proxy's are longer) counted as sip-truncated, not lost silently.
#[test]
fn short_snap_length_is_reported_once_and_cut_sip_counted() {
    let src = std::fs::read(fixture("sipp/kamailio-proxy.pcap")).expect("fixture");
    let mut out = src[..24].to_vec();
    out[16..20].copy_from_slice(&200u32.to_le_bytes());
    let mut at = 24usize;
    while at + 16 <= src.len() {
        let incl = u32::from_le_bytes([src[at + 8], src[at + 9], src[at + 10], src[at + 11]]) as usize;
        let keep = incl.min(200);
        out.extend_from_slice(&src[at..at + 8]);
        out.extend_from_slice(&(keep as u32).to_le_bytes());
        out.extend_from_slice(&src[at + 12..at + 16]);
        out.extend_from_slice(&src[at + 16..at + 16 + keep]);
        at += 16 + incl;
    }
    let site = Site::new();
    let cut = site.dir.path().join("snap200.pcap");
    std::fs::write(&cut, &out).expect("write");
    let run = site.replay(&[&cut]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let notes = stderr_lines(&run);
    let said: Vec<&String> = notes.iter().filter(|l| l.contains("snap length (200 bytes)")).collect();
    assert_eq!(said.len(), 1, "{notes:?}");
    let s = summary(&run);
    // The reference reading has 64 SIP messages, every one over 200 bytes.
    assert_eq!(s["drops"]["sip-truncated"].as_u64(), Some(64), "{s}");
    assert_eq!(s["sip_messages"].as_u64(), Some(0));
}

/// `replay --follow DIR` while a capture is rotated into DIR (the 4 parts written one by
/// one, as tcpdump -C would): after SIGTERM it has read every file, the newest included,
/// and stored exactly the whole capture's records.
#[test]
fn follow_reads_a_rotating_folder_until_stopped() {
    let whole = fixture("sipp/kamailio-proxy.pcap");
    let one = Site::new();
    assert!(one.replay(&[&whole]).status.success());
    let want = call_summaries(&one.calls());

    let site = Site::new();
    let spool = site.dir.path().join("spool");
    std::fs::create_dir(&spool).expect("mkdir");
    let child = Command::new(bin())
        .args(["replay", "--follow", "--json", "--config"])
        .arg(site.config())
        .arg(&spool)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn replay --follow");
    let parts = rotate(&std::fs::read(&whole).expect("fixture"), 210);
    for (i, (bytes, _)) in parts.iter().enumerate() {
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::write(spool.join(format!("cap.pcap{i}")), bytes).expect("write part");
    }
    std::thread::sleep(std::time::Duration::from_millis(800));
    // SAFETY: kill(2) on the pid of the child this test started.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().expect("replay --follow ends");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["calls"].as_u64(), Some(5), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(call_summaries(&site.calls()), want);
}

/// The same traffic seen by another clock (a tcpdump beside the live capture, a HEP copy):
/// every stamp a few µs off. Replayed into the same database it is the same calls, the
/// same violations and the same recordings, not a second set.
#[test]
fn a_copy_of_the_traffic_stamped_microseconds_apart_is_the_same_calls() {
    let site = Site::new();
    std::fs::write(
        site.config(),
        "[site]\nextensions = [\"1000-2999\", \"8000-8999\"]\n[store]\npath = \"cw.db\"\n[recordings]\ndir = \"rec\"\n\
         [[group]]\nname = \"dispatch\"\nextensions = [\"1000-2999\"]\nrecord = \"always\"\n",
    )
    .unwrap();
    let pcap = fixture("public/gen-sipp-mixed-calls-udp.pcap");
    let count = |args: &[&str]| -> usize {
        let out = site.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().map_or(0, Vec::len)
    };
    let first = site.replay(&[&pcap]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let (calls, violations, recordings) =
        (count(&["calls", "--json"]), count(&["violations", "--json"]), count(&["recordings", "list", "--json"]));
    assert_eq!(calls, 7);
    assert!(violations >= 1 && recordings >= 1, "{violations} violations, {recordings} recordings");
    for shift in ["0.000003", "-0.000002", "0.000900"] {
        let copy = site.dir.path().join(format!("copy{shift}.pcap"));
        let st = Command::new("editcap").args(["-t", shift]).arg(&pcap).arg(&copy).status().expect("editcap");
        assert!(st.success());
        let again = site.replay(&[&copy]);
        assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
        assert_eq!(summary(&again)["calls_new"], 0, "shifted by {shift} s");
        assert_eq!(count(&["calls", "--json"]), calls, "shifted by {shift} s");
        assert_eq!(count(&["violations", "--json"]), violations, "shifted by {shift} s");
        assert_eq!(count(&["recordings", "list", "--json"]), recordings, "shifted by {shift} s");
    }
}

/// Rewrite the stamps of a little-endian microsecond pcap: `stamp(i, (sec, usec))` gives
/// record `i` its new time.
fn restamp(pcap: &[u8], mut stamp: impl FnMut(usize, (u32, u32)) -> (u32, u32)) -> Vec<u8> {
    let mut out = pcap.to_vec();
    let (mut at, mut i) = (24usize, 0usize);
    while at + 16 <= out.len() {
        let word = |o: usize| u32::from_le_bytes([out[at + o], out[at + o + 1], out[at + o + 2], out[at + o + 3]]);
        let (incl, old) = (word(8) as usize, (word(0), word(4)));
        let (sec, usec) = stamp(i, old);
        out[at..at + 4].copy_from_slice(&sec.to_le_bytes());
        out[at + 4..at + 8].copy_from_slice(&usec.to_le_bytes());
        at += 16 + incl;
        i += 1;
    }
    out
}

/// Each file keeps its own clock: one frame stamped in 2106 (a glitch or a forgery) in
/// the middle of the calls is taken at the file's time and counted, and the calls are
/// those of the clean file; alone and merged with another file alike. A real pause (every
/// frame after a point an hour later) is kept as it is.
#[test]
fn one_far_future_stamp_in_a_file_does_not_move_its_clock() {
    let whole = fixture("sipp/kamailio-proxy.pcap");
    let clean = std::fs::read(&whole).expect("fixture");
    let one = Site::new();
    assert!(one.replay(&[&whole]).status.success());
    let want = call_summaries(&one.calls());
    assert_eq!(want.len(), 5);

    let frames = rotate(&clean, 1).len();
    let forged = Site::new();
    let bad = forged.dir.path().join("forged.pcap");
    std::fs::write(&bad, restamp(&clean, |i, t| if i == frames / 2 { (u32::MAX, 0) } else { t })).expect("write");
    let out = forged.replay(&[&bad]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["drops"]["time-clamped"], 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(call_summaries(&forged.calls()), want, "the forged stamp changed the calls");

    // In a merge: the same forged file cut in two, as a rotated set.
    let merged = Site::new();
    let parts = rotate(&std::fs::read(&bad).expect("read"), frames / 2 - 3);
    let mut paths = Vec::new();
    for (k, (bytes, _)) in parts.iter().enumerate() {
        let p = merged.dir.path().join(format!("part{k}.pcap"));
        std::fs::write(&p, bytes).expect("write part");
        paths.push(p);
    }
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let out = merged.replay(&refs);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["drops"]["time-clamped"], 1);
    assert_eq!(call_summaries(&merged.calls()), want, "merged");

    // A real pause: every frame from the middle on an hour later. Nothing is clamped and
    // the last call's end is an hour later than in the clean capture.
    let paused = Site::new();
    let later = paused.dir.path().join("paused.pcap");
    std::fs::write(&later, restamp(&clean, |i, (s, u)| if i >= frames / 2 { (s + 3600, u) } else { (s, u) }))
        .expect("write");
    let out = paused.replay(&[&later]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(summary(&out)["drops"].get("time-clamped").is_none(), "{}", String::from_utf8_lossy(&out.stdout));
    let last_end = |calls: &[Value]| {
        calls.iter().filter_map(|c| c["ended_at"].as_str()?.parse::<jiff::Timestamp>().ok()).max().expect("calls")
    };
    let moved = last_end(&paused.calls()).as_second() - last_end(&one.calls()).as_second();
    assert!((3590..=3610).contains(&moved), "the pause was kept: the last end moved {moved} s");
}

/// `pcap` with one frame put before its first record: `bytes` stamped `(sec, usec)`.
fn prepend_frame(pcap: &[u8], (sec, usec): (u32, u32), bytes: &[u8]) -> Vec<u8> {
    let mut out = pcap[..24].to_vec();
    for w in [sec, usec, bytes.len() as u32, bytes.len() as u32] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(bytes);
    out.extend_from_slice(&pcap[24..]);
    out
}

/// The first frame of a file sets its clock, so it is judged by the frame after it too: a
/// forged first frame stamped in 2106 is taken at the next frame's time and counted, and
/// the calls and their times are those of the clean file; alone, and as the first frame of
/// the second file of a rotated set (which must not be merged as if it came last).
#[test]
fn a_far_future_first_stamp_in_a_file_does_not_set_its_clock() {
    let whole = fixture("sipp/kamailio-proxy.pcap");
    let clean = std::fs::read(&whole).expect("fixture");
    let one = Site::new();
    assert!(one.replay(&[&whole]).status.success());
    let want = call_summaries(&one.calls());
    assert_eq!(want.len(), 5);
    // The frame itself: the Ethernet and IP headers of the first frame, cut short (what it
    // carries does not matter here, only its stamp).
    let junk = &clean[24 + 16..24 + 16 + 34];

    let forged = Site::new();
    let bad = forged.dir.path().join("forged-first.pcap");
    std::fs::write(&bad, prepend_frame(&clean, (u32::MAX, 0), junk)).expect("write");
    let out = forged.replay(&[&bad]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["drops"]["time-clamped"], 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(call_summaries(&forged.calls()), want, "the forged first stamp changed the calls");

    // The second file of a rotated set starts with the forged frame.
    let merged = Site::new();
    let mut parts = rotate(&clean, 210);
    parts[1].0 = prepend_frame(&parts[1].0, (u32::MAX, 0), junk);
    let mut paths = Vec::new();
    for (k, (bytes, _)) in parts.iter().enumerate() {
        let p = merged.dir.path().join(format!("part{k}.pcap"));
        std::fs::write(&p, bytes).expect("write part");
        paths.push(p);
    }
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let out = merged.replay(&refs);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["drops"]["time-clamped"], 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(call_summaries(&merged.calls()), want, "merged");
}

/// Two forged stamps in a row vouch for each other, but not past the wall clock: a stamp
/// later than a day from now is never believed, so the file's clock stays and both frames
/// are counted; the calls are those of the clean file.
#[test]
fn two_forged_stamps_in_a_row_do_not_move_a_files_clock() {
    let whole = fixture("sipp/kamailio-proxy.pcap");
    let clean = std::fs::read(&whole).expect("fixture");
    let one = Site::new();
    assert!(one.replay(&[&whole]).status.success());
    let want = call_summaries(&one.calls());
    let frames = rotate(&clean, 1).len();
    let forged = Site::new();
    let bad = forged.dir.path().join("forged-two.pcap");
    let two = restamp(&clean, |i, t| if i == frames / 2 || i == frames / 2 + 1 { (u32::MAX, 0) } else { t });
    std::fs::write(&bad, two).expect("write");
    let out = forged.replay(&[&bad]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["drops"]["time-clamped"], 2, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(call_summaries(&forged.calls()), want, "two forged stamps changed the calls");
}
