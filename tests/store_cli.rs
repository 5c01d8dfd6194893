//! The query commands end to end: a database filled through the real store writer with
//! call records and violations as the engine emits them, then the built binary run over
//! it (`calls`, `stats`, `violations`, `config check`): the tables, the JSON field names
//! and values, and the exit codes for a bad database and a broken config.

use callwarden::store;
use callwarden_core::policy::ViolationKind;
use callwarden_core::track::{CallEvent, Direction, EndReason};
use callwarden_core::Output;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output as ProcOut;
use store::testdata::{call, judged_by_defaults, unanswered, violation, T0};

const CONFIG: &str = r#"
[site]
timezone = "Asia/Shanghai"
extensions = ["8000-8999"]

[limits]
max_rings = 3

[[group]]
name = "dispatch"
extensions = ["8001-8009"]
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    db: PathBuf,
    config: PathBuf,
}

/// Six calls on 2026-03-02 (Shanghai) and one on the 1st, with three violations.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let db = dir.join("calls.db");
    let config = dir.join("callwarden.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let min = 60_000_000;
    let out = call("out-1", T0, "8001", "13800138000", Direction::Outbound);
    let mut prem = call("prem-1", T0 + min, "8003", "16800123", Direction::Outbound);
    prem.class = Some("premium".into());
    prem.dialled = "016800123".into();
    prem.cost_fen = Some(300);
    let mut inb = call("in-1", T0 + 2 * min, "02112345678", "8002", Direction::Inbound);
    inb.rings = 4;
    inb.ring_ms = 16_000;
    inb.class = Some("local".into());
    let missed =
        unanswered(call("in-2", T0 + 3 * min, "13900001111", "8002", Direction::Inbound), EndReason::Cancelled, 487);
    let mut int = call("int-1", T0 + 4 * min, "8001", "8002", Direction::Internal);
    int.talk_ms = 200_000;
    // 15:59Z on the 1st = 23:59 in Shanghai: the day before.
    let early = call("early-1", T0 - 27_060_000_000, "8001", "13800138000", Direction::Outbound);
    let prem_pending = violation(&prem, "OUT-1", ViolationKind::PremiumRate, "8003", 0, None);
    let prem_final = violation(&prem, "OUT-1", ViolationKind::PremiumRate, "8003", 49_200, Some(11_000));
    let slow = violation(&inb, "ANS-1", ViolationKind::SlowAnswer, "8002", 16_200, None);
    let long = violation(&int, "DUR-3", ViolationKind::LongCall, "8001", 207_200, None);

    let (mut sink, writer) = store::open(&db, "Asia/Shanghai").unwrap();
    // In the engine's order: the premium violation at the INVITE, before the call ends.
    // Each call with the verdicts the engine stores with it (default limits): stats count
    // those, they do not judge calls again.
    let ended = |c| Output::Call(CallEvent::Ended(Box::new(judged_by_defaults(c))));
    let outputs = vec![
        Output::Violation(prem_pending),
        ended(early),
        ended(out),
        ended(prem),
        Output::Violation(prem_final),
        ended(inb),
        Output::Violation(slow),
        ended(missed),
        ended(int),
        Output::Violation(long),
    ];
    for o in &outputs {
        sink.take(o).unwrap();
    }
    drop(sink);
    let s = writer.close().unwrap();
    assert_eq!((s.calls, s.calls_new, s.violations), (6, 6, 4));
    Fixture { _dir: tmp, dir, db, config }
}

fn run(args: &[&str], cwd: &Path) -> ProcOut {
    std::process::Command::new(env!("CARGO_BIN_EXE_callwarden")).args(args).current_dir(cwd).output().unwrap()
}

impl Fixture {
    /// Run a query command over the fixture's database and config.
    fn cmd(&self, args: &[&str]) -> ProcOut {
        let mut all: Vec<&str> = args.to_vec();
        let (cfg, db) = (self.config.to_str().unwrap(), self.db.to_str().unwrap());
        all.extend(["--config", cfg, "--db", db]);
        run(&all, &self.dir)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

fn ids(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap()).collect()
}

#[test]
fn calls_table_is_aligned_and_complete() {
    let f = fixture();
    let out = f.ok(&["calls"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 6 + 1, "{out}");
    let header = lines[0];
    for col in ["start", "caller", "callee/dialled", "direction", "class", "rings", "ring s", "talk s", "end", "status"]
    {
        assert!(header.contains(col), "{header}");
    }
    // Columns line up: each header column starts where the values below it start.
    let at = |col: &str| header.find(col).unwrap();
    for row in &lines[1..7] {
        assert_eq!(row.get(at("caller") - 2..at("caller")), Some("  "), "{row}");
        assert_ne!(row.get(at("caller")..at("caller") + 1), Some(" "), "{row}");
    }
    assert!(lines[1].starts_with("2026-03-01 23:59:00  8001 "), "{}", lines[1]);
    let prem = lines.iter().find(|l| l.contains("16800123")).unwrap();
    for part in
        ["2026-03-02 07:31:00", "8003", "16800123/016800123", "outbound", "premium", "7.0", "42.0", "caller-bye"]
    {
        assert!(prem.contains(part), "{part} in {prem}");
    }
    assert!(prem.ends_with("OUT-1 premium-rate"), "{prem}");
    let missed = lines.iter().find(|l| l.contains("13900001111")).unwrap();
    assert!(missed.contains("cancelled") && missed.contains("487"), "{missed}");
    assert_eq!(lines[7], "6 call(s)");
}

#[test]
fn calls_json_has_the_documented_fields_and_values() {
    let f = fixture();
    let v = f.json(&["calls"]);
    assert_eq!(ids(&v), vec!["early-1", "out-1", "prem-1", "in-1", "in-2", "int-1"]);
    let prem = &v[2];
    let mut keys: Vec<&str> = prem.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "site",
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
        "answered_by",
        "transferred_to",
        "wait_ms",
        "link",
        "legs",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    let expect = serde_json::json!({
        "site": null,
        "call_id": "prem-1",
        "caller": "8003",
        "callee": "16800123",
        "dialled": "016800123",
        "number": "16800123",
        "direction": "outbound",
        "class": "premium",
        "group": "dispatch",
        "started_at": "2026-03-02T07:31:00.000000+08:00",
        "ringing_at": "2026-03-02T07:31:00.200000+08:00",
        "answered_at": "2026-03-02T07:31:07.200000+08:00",
        "ended_at": "2026-03-02T07:31:49.200000+08:00",
        "rings": 2,
        "ring_ms": 7000,
        "talk_ms": 42000,
        "answered": true,
        "end_reason": "caller-bye",
        "sip_status": 200,
        "cost_fen": 300,
        "recording": null,
        "violations": [{"rule": "OUT-1", "kind": "premium-rate"}],
        "answered_by": null,
        "transferred_to": null,
        "wait_ms": 0,
        "link": null,
        "legs": [{
            "call_id": "prem-1",
            "from": "8003",
            "to": "16800123",
            "started_at": "2026-03-02T07:31:00.000000+08:00",
            "answered_at": "2026-03-02T07:31:07.200000+08:00",
            "ended_at": "2026-03-02T07:31:49.200000+08:00",
            "sip_status": 200,
            "role": "caller-side",
        }],
    });
    assert_eq!(prem, &expect);
    let missed = &v[4];
    assert_eq!(missed["answered"], false);
    assert_eq!(missed["answered_at"], Value::Null);
    assert_eq!(missed["cost_fen"], Value::Null);
    assert_eq!(missed["end_reason"], "cancelled");
}

#[test]
fn call_filters_on_the_command_line() {
    let f = fixture();
    // Dates are days in Asia/Shanghai: the 23:59 call is on the 1st.
    assert_eq!(ids(&f.json(&["calls", "--from", "2026-03-01", "--to", "2026-03-01"])), vec!["early-1"]);
    assert_eq!(ids(&f.json(&["calls", "--from", "2026-03-02"])).len(), 5);
    assert_eq!(ids(&f.json(&["calls", "--to", "2026-03-01T16:00:00Z"])), vec!["early-1"]);
    assert_eq!(ids(&f.json(&["calls", "--ext", "8002"])), vec!["in-1", "in-2", "int-1"]);
    assert_eq!(ids(&f.json(&["calls", "--class", "premium"])), vec!["prem-1"]);
    assert_eq!(ids(&f.json(&["calls", "--rule", "ANS-1"])), vec!["in-1"]);
    assert_eq!(ids(&f.json(&["calls", "--number", "0168"])), vec!["prem-1"]);
    assert_eq!(ids(&f.json(&["calls", "--group", "dispatch", "--limit", "2"])), vec!["early-1", "out-1"]);
    // A bad filter value is bad usage.
    for bad in
        [&["calls", "--from", "yesterday"][..], &["calls", "--class", "longdistance"], &["stats", "--by", "week"]]
    {
        let o = f.cmd(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("yesterday") || err.contains("longdistance") || err.contains("week"), "{err}");
    }
}

#[test]
fn stats_figures_by_extension_and_day() {
    let f = fixture();
    let v = f.json(&["stats", "--by", "ext", "--from", "2026-03-02", "--to", "2026-03-02"]);
    let rows = v.as_array().unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, vec!["8001", "8002", "8003"]);
    let e = &rows[1];
    // 8002: in-1 (answered after 4 rings, 42 s), in-2 (cancelled), int-1 (2 rings, 200 s).
    assert_eq!(
        e,
        &serde_json::json!({
            "key": "8002",
            "calls": 3, "inbound": 2, "outbound": 0, "internal": 1,
            "answered": 2, "missed": 1,
            "answered_incoming": 2, "within_max_rings": 1, "within_max_rings_share": 0.5,
            "rings_before_answer": {"0": 0, "1": 0, "2": 1, "3": 0, "4": 1, "5+": 0},
            "talk_ms": {"mean": 121000, "p50": 42000, "p90": 200000, "max": 200000},
            "effective": 2, "long_calls": 1,
            "violations": {"ANS-1": 1},
            "cost_fen": 0
        })
    );
    assert_eq!(rows[2]["violations"], serde_json::json!({"OUT-1": 1}));
    assert_eq!(rows[2]["cost_fen"], 300);
    let by_day = f.json(&["stats", "--by", "day"]);
    let days: Vec<(&str, u64)> =
        by_day.as_array().unwrap().iter().map(|r| (r["key"].as_str().unwrap(), r["calls"].as_u64().unwrap())).collect();
    assert_eq!(days, vec![("2026-03-01", 1), ("2026-03-02", 5)]);
    let table = f.ok(&["stats", "--by", "month"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("month") && lines[0].contains("rings 0/1/2/3/4/5+"), "{table}");
    assert!(lines[1].starts_with("2026-03 "), "{table}");
    assert!(lines[1].contains("1/2 50.0%") && lines[1].contains("0/0/1/0/1/0"), "{table}");
    assert!(lines[1].contains("ANS-1:1 DUR-3:1 OUT-1:1") && lines[1].ends_with("3.60"), "{table}");
}

#[test]
fn violations_listing() {
    let f = fixture();
    let v = f.json(&["violations"]);
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3, "the premium violation completed at the end is one row");
    let mut keys: Vec<&str> = rows[0].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec!["call_id", "detail", "detected_at", "extension", "fine_fen", "id", "kind", "number", "rule", "site"]
    );
    assert_eq!(rows[0]["rule"], "OUT-1");
    assert_eq!(rows[0]["kind"], "premium-rate");
    assert_eq!(rows[0]["call_id"], "prem-1");
    assert_eq!(rows[0]["extension"], "8003");
    assert_eq!(rows[0]["number"], "16800123");
    assert_eq!(rows[0]["detected_at"], "2026-03-02T07:31:00.000000+08:00", "detected at the INVITE");
    assert_eq!(rows[0]["fine_fen"], 11_000);
    assert_eq!(rows[1]["fine_fen"], Value::Null);
    let only = f.json(&["violations", "--ext", "8001"]);
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["rule"], "DUR-3");
    let table = f.ok(&["violations", "--rule", "premium-rate"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[1].contains("OUT-1") && lines[1].contains("110.00") && lines[1].contains("prem-1"), "{table}");
    assert_eq!(lines[2], "1 violation(s), fines 110.00 yuan, 0 pending");
    let all = f.ok(&["violations"]);
    assert!(all.contains("pending") && all.ends_with("3 violation(s), fines 110.00 yuan, 2 pending\n"), "{all}");
}

#[test]
fn a_bad_database_is_one_line_naming_the_file_and_exit_1() {
    let f = fixture();
    let cfg = f.config.to_str().unwrap();
    let missing = f.dir.join("nope").join("missing.db");
    let junk = f.dir.join("junk.db");
    std::fs::write(&junk, "not a database at all, but long enough to be read as one ...........").unwrap();
    for (db, why) in [(&missing, "no such database"), (&junk, "not a database")] {
        for cmd in ["calls", "stats", "violations"] {
            let o = run(&[cmd, "--config", cfg, "--db", db.to_str().unwrap()], &f.dir);
            assert_eq!(o.status.code(), Some(1), "{cmd} {db:?}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(db.to_str().unwrap()) && err.contains(why), "{err}");
            assert!(o.stdout.is_empty());
        }
    }
}

#[test]
fn config_check_reports_every_error_with_line_and_key() {
    let f = fixture();
    let good = f.config.to_str().unwrap();
    let o = run(&["config", "check", good], &f.dir);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{good}: ok\n"));

    let bad = f.dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[site]\ntimezone = \"Asia/Shanghia\"\n\n[ringing]\ncycle_ms = 0\n\n[[group]]\nname = \"d\"\n\
         windows = [\"10:00-25:00\"]\nmay_dial = [\"local\", \"premum\"]\n\n[[shift]]\ngroup = \"x\"\n\
         from = \"08:00\"\nto = \"17:00\"\n",
    )
    .unwrap();
    let b = bad.to_str().unwrap();
    let o = run(&["config", "check", b], &f.dir);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let heads: Vec<String> = err.lines().map(|l| l.splitn(4, ": ").take(2).collect::<Vec<_>>().join(": ")).collect();
    assert_eq!(
        heads,
        vec![
            format!("{b}:2: site.timezone"),
            format!("{b}:5: ringing.cycle_ms"),
            format!("{b}:9: group[0].windows[0]"),
            format!("{b}:10: group[0].may_dial[1]"),
            format!("{b}:13: shift[0].group"),
        ],
        "{err}"
    );
    // A syntax error: the parser's line.
    std::fs::write(&bad, "[site]\ntimezone = \"UTC\"\nextensions = [\"8000-8999\"\n").unwrap();
    let o = run(&["config", "check", b], &f.dir);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with(&format!("{b}:3: ")) || err.starts_with(&format!("{b}:4: ")), "{err}");
    // Any command refuses to run on a broken config, with the same lines, exit 2.
    std::fs::write(&bad, "[ringing]\ncycle_ms = 0\n").unwrap();
    let o = run(&["calls", "--config", b, "--db", f.db.to_str().unwrap()], &f.dir);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{b}:2: ringing.cycle_ms: ")), "{err}");
    // An unreadable file: exit 1, naming it.
    let o = run(&["config", "check", "no-such.toml"], &f.dir);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such.toml"));
}

#[test]
fn the_shipped_config_checks_ok() {
    // Without FILE: the file `run` would use, config/callwarden.toml from here.
    let o = run(&["config", "check"], Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "config/callwarden.toml: ok\n");
    // With no config file around: the embedded copy.
    let empty = tempfile::tempdir().unwrap();
    let o = run(&["config", "check"], empty.path());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "<embedded config>: ok\n");
}

#[test]
fn config_and_db_are_taken_before_or_after_the_command() {
    let f = fixture();
    let (cfg, db) = (f.config.to_str().unwrap(), f.db.to_str().unwrap());
    let after = f.ok(&["calls", "--json"]);
    for args in
        [vec!["--config", cfg, "--db", db, "calls", "--json"], vec!["--db", db, "calls", "--config", cfg, "--json"]]
    {
        let o = run(&args, &f.dir);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8(o.stdout).unwrap(), after, "{args:?}");
    }
    // And one subcommand deeper.
    let o = run(&["--config", cfg, "--db", db, "recordings", "list"], &f.dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn an_unknown_group_is_refused_naming_the_groups() {
    let f = fixture();
    for args in [
        &["calls", "--group", "dispatc"][..],
        &["stats", "--group", "dispatc"],
        &["violations", "--group", "dispatc"],
        &["recordings", "list", "--group", "dispatc"],
        &["recordings", "sample", "2", "--group", "dispatc", "--month", "2026-03"],
    ] {
        let o = f.cmd(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("\"dispatc\" is not a [[group]]") && err.contains("one of dispatch"), "{args:?}: {err}");
    }
    assert!(f.ok(&["calls", "--group", "dispatch"]).ends_with(" call(s)\n"));
}

/// `callwarden violations --json | head`: the reader is gone before the command writes. The
/// pipe's read end is closed before the start, so every write meets EPIPE.
#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let f = fixture();
    for args in [&["violations", "--json"][..], &["violations"], &["calls"], &["calls", "--json"], &["stats"]] {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) into a two-int array; both fds are owned below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: fresh fds from pipe(2), each owned once.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", f.config.to_str().unwrap(), "--db", f.db.to_str().unwrap()]);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_callwarden"))
            .args(&all)
            .current_dir(&f.dir)
            .stdout(std::process::Stdio::from(write))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.is_empty(), "{args:?}: {err}");
        // Ended by SIGPIPE (as `cat` would be) or exit 0: either way the shell says nothing.
        use std::os::unix::process::ExitStatusExt;
        assert!(o.status.success() || o.status.signal() == Some(libc::SIGPIPE), "{args:?}: {:?}", o.status);
    }
}
