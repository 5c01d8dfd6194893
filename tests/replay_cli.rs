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
