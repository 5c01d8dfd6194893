//! One call, however many legs (track::link): synthesised captures of calls through a B2BUA
//! PBX (tests/fixtures/legs/make.py), replayed by the real binary into a real SQLite file,
//! read back with `calls --json` / `violations --json` / `recordings list --json`.
//! Each scenario has a golden reading (`tests/fixtures/legs/NAME.records.txt`, rewritten
//! with UPDATE_EXPECT=1) and explicit checks of what the issue asks: one record per call,
//! who answered, rings as the caller heard them, one judgement per call, one recording.
//! The same captures with linking off (no `pbx`, no correlation header) give one record
//! per dialog, as before linking existed.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_callwarden")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legs")
}

/// The captures, made once per test run by the generator (deterministic: same bytes).
fn captures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cw-legs-{}", std::process::id()));
        let out = Command::new("python3")
            .arg(fixtures().join("make.py"))
            .arg(&dir)
            .output()
            .expect("python3 runs the capture generator");
        assert!(out.status.success(), "make.py: {}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

struct Site {
    /// Holds the site's folder (config, database, recordings) until the test ends.
    _dir: tempfile::TempDir,
    cfg: PathBuf,
}

/// A fresh site directory with the legs config (linking on), or with linking taken out.
fn site(linking: bool) -> Site {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = std::fs::read_to_string(fixtures().join("site.toml")).expect("site.toml");
    if !linking {
        text = text
            .lines()
            .filter(|l| !l.starts_with("pbx") && !l.starts_with("correlation_headers"))
            .collect::<Vec<_>>()
            .join("\n");
    }
    let cfg = dir.path().join("site.toml");
    std::fs::write(&cfg, text).expect("write config");
    Site { _dir: dir, cfg }
}

impl Site {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(bin()).args(args).arg("--config").arg(&self.cfg).output().expect("run callwarden");
        assert!(out.status.success(), "callwarden {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn replay(&self, scenario: &str) {
        let pcap = captures().join(format!("{scenario}.pcap"));
        self.run(&["replay", "-q", "--no-webhooks", pcap.to_str().expect("utf-8 path")]);
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.run(&a);
        match serde_json::from_str(&text) {
            Ok(Value::Array(v)) => v,
            other => panic!("{args:?}: not a JSON array: {other:?}\n{text}"),
        }
    }

    fn calls(&self) -> Vec<Value> {
        self.json(&["calls"])
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// Seconds (3 decimals) from the capture's first call to an RFC 3339 time.
fn rel(t0: &jiff::Timestamp, v: &Value) -> String {
    match v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => format!("{:.3}", t.duration_since(*t0).as_secs_f64()),
        None => "-".into(),
    }
}

/// The golden reading: every figure the record gives, times relative to the first call.
fn reading(site: &Site) -> String {
    let calls = site.calls();
    let violations = site.json(&["violations"]);
    let recordings = site.json(&["recordings", "list"]);
    let Some(t0) = calls.first().and_then(|c| c["started_at"].as_str()).and_then(|t| t.parse().ok()) else {
        return "no calls\n".into();
    };
    let mut out = String::new();
    for c in &calls {
        out += &format!(
            "call {} → {} dialled {} {} {} | rings {} ring_ms {} talk_ms {} wait_ms {} | answered {} by {} transferred_to {} | {} {} | link {}\n",
            s(&c["caller"]),
            s(&c["callee"]),
            s(&c["dialled"]),
            s(&c["direction"]),
            s(&c["class"]),
            s(&c["rings"]),
            s(&c["ring_ms"]),
            s(&c["talk_ms"]),
            s(&c["wait_ms"]),
            s(&c["answered"]),
            s(&c["answered_by"]),
            s(&c["transferred_to"]),
            s(&c["end_reason"]),
            s(&c["sip_status"]),
            s(&c["link"]),
        );
        out += &format!(
            "  times start {} ringing {} answered {} ended {}\n",
            rel(&t0, &c["started_at"]),
            rel(&t0, &c["ringing_at"]),
            rel(&t0, &c["answered_at"]),
            rel(&t0, &c["ended_at"])
        );
        for l in c["legs"].as_array().into_iter().flatten() {
            out += &format!(
                "  leg {} {} → {} start {} answered {} ended {} status {}\n",
                s(&l["role"]),
                s(&l["from"]),
                s(&l["to"]),
                rel(&t0, &l["started_at"]),
                rel(&t0, &l["answered_at"]),
                rel(&t0, &l["ended_at"]),
                s(&l["sip_status"])
            );
        }
        for v in violations.iter().filter(|v| v["call_id"] == c["call_id"]) {
            out += &format!(
                "  violation {} {} ext {} number {} detected {} fine {}\n",
                s(&v["rule"]),
                s(&v["kind"]),
                s(&v["extension"]),
                s(&v["number"]),
                rel(&t0, &v["detected_at"]),
                s(&v["fine_fen"])
            );
        }
        for r in recordings.iter().filter(|r| r["call_id"] == c["call_id"]) {
            out += &format!(
                "  recording {} group {} frames {} duration_ms {} packets_placed {}\n",
                s(&r["status"]),
                s(&r["group"]),
                s(&r["frames"]),
                s(&r["duration_ms"]),
                s(&r["counters"]["packets_placed"])
            );
        }
    }
    out
}

const SCENARIOS: [&str; 17] = [
    "outbound-relayed",
    "premium",
    "internal",
    "busy",
    "ringgroup-answered",
    "ringgroup-missed",
    "hunt",
    "queue-ivr",
    "transfer-blind",
    "transfer-attended",
    "replaces-takeover",
    "pickup",
    "header",
    "session-id",
    "hep-correlation",
    "sbc-challenge",
    "same-caller-twice",
];

/// Replays `scenario` into a fresh site and returns the site and its calls.
fn replayed(scenario: &str, linking: bool) -> (Site, Vec<Value>) {
    let site = site(linking);
    site.replay(scenario);
    let calls = site.calls();
    (site, calls)
}

#[test]
fn golden_readings() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failed = Vec::new();
    for name in SCENARIOS {
        let (site, _) = replayed(name, true);
        let got = reading(&site);
        let path = fixtures().join(format!("{name}.records.txt"));
        if update {
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            failed.push(format!("{name}: want\n{want}\ngot\n{got}"));
        }
    }
    assert!(failed.is_empty(), "golden readings differ (UPDATE_EXPECT=1 rewrites):\n{}", failed.join("\n"));
}

#[test]
fn one_record_per_call_and_one_per_dialog_without_linking() {
    // (scenario, calls a person made, SIP dialogs on the wire)
    let want = [
        ("outbound-relayed", 1, 2),
        ("premium", 1, 2),
        ("internal", 1, 2),
        ("busy", 1, 2),
        ("ringgroup-answered", 1, 4),
        ("ringgroup-missed", 1, 4),
        ("hunt", 1, 3),
        ("queue-ivr", 1, 2),
        ("transfer-blind", 1, 3),
        ("transfer-attended", 2, 4),
        ("replaces-takeover", 1, 3),
        ("pickup", 1, 3),
        ("header", 1, 2),
        ("session-id", 1, 2),
        ("hep-correlation", 1, 2),
        ("sbc-challenge", 1, 2),
        ("same-caller-twice", 2, 4),
    ];
    for (name, calls, dialogs) in want {
        let (_, linked) = replayed(name, true);
        assert_eq!(linked.len(), calls, "{name}: records with linking");
        let legs: usize = linked.iter().map(|c| c["legs"].as_array().map_or(0, Vec::len)).sum();
        assert_eq!(legs, dialogs, "{name}: legs listed");
        let (_, plain) = replayed(name, false);
        assert_eq!(plain.len(), dialogs, "{name}: records without linking (one per dialog)");
        assert!(plain.iter().all(|c| c["link"].is_null()), "{name}: no link without linking");
    }
}

fn only(calls: &[Value]) -> &Value {
    assert_eq!(calls.len(), 1, "{calls:#?}");
    &calls[0]
}

fn roles(c: &Value) -> Vec<String> {
    c["legs"].as_array().into_iter().flatten().map(|l| s(&l["role"])).collect()
}

#[test]
fn ring_group_answered_is_one_answered_call_without_missed() {
    let (site, calls) = replayed("ringgroup-answered", true);
    let c = only(&calls);
    assert_eq!(s(&c["direction"]), "inbound");
    assert_eq!(s(&c["answered_by"]), "8022");
    assert_eq!(s(&c["callee"]), "8022");
    assert_eq!(s(&c["dialled"]), "02161230000", "dialled as the caller dialled it");
    assert_eq!(roles(c), ["caller-side", "ring", "callee-side", "ring"]);
    // The caller heard ringing from 0.15 s to the answer at 9.01 s: 2 rings of 5 s.
    assert_eq!(c["rings"], 2);
    assert_eq!(s(&c["group"]), "ring", "the answering phone's group");
    assert!(site.json(&["violations"]).is_empty(), "nobody missed a call a colleague answered");
}

#[test]
fn ring_group_nobody_answers_is_one_missed_call() {
    let (site, calls) = replayed("ringgroup-missed", true);
    let c = only(&calls);
    assert_eq!(c["answered"], false);
    assert_eq!(s(&c["end_reason"]), "cancelled");
    assert_eq!(c["rings"], 5, "22 s of ringing as the caller heard it");
    let v = site.json(&["violations"]);
    assert_eq!(v.len(), 1, "one missed call, not one per phone: {v:#?}");
    assert_eq!(s(&v[0]["rule"]), "ANS-3");
    assert_eq!(s(&c["group"]), "ring");
}

#[test]
fn premium_through_the_pbx_is_flagged_once_at_the_phones_invite() {
    let (site, calls) = replayed("premium", true);
    let c = only(&calls);
    let v = site.json(&["violations"]);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(s(&v[0]["rule"]), "OUT-1");
    assert_eq!(v[0]["detected_at"], c["started_at"], "raised at the first INVITE");
    assert_eq!(s(&v[0]["extension"]), "8012");
    assert!(v[0]["fine_fen"].as_i64().is_some_and(|f| f > 0), "fine completed at the end");
}

#[test]
fn relayed_media_is_recorded_once() {
    let (site, calls) = replayed("outbound-relayed", true);
    let c = only(&calls);
    let rec = site.json(&["recordings", "list"]);
    assert_eq!(rec.len(), 1, "{rec:#?}");
    let r = &rec[0];
    assert_eq!(s(&r["status"]), "complete");
    assert_eq!(s(&r["call_id"]), s(&c["call_id"]));
    // 20 s of talk, 1000 packets each way on each of the two relayed legs: the recording
    // takes one leg's 2000, not 4000 (an echo) — 20 s of stereo audio.
    assert_eq!(r["counters"]["packets_placed"], 2000);
    let ms = r["duration_ms"].as_i64().expect("duration");
    assert!((19_900..=20_100).contains(&ms), "duration {ms} ms");
    // The stored media figures are one leg's too.
    site.run(&["recordings", "verify"]);
}

#[test]
fn transfer_keeps_one_record_with_whole_talk_time() {
    let (site, calls) = replayed("transfer-blind", true);
    let c = only(&calls);
    assert_eq!(s(&c["answered_by"]), "8004");
    assert_eq!(s(&c["transferred_to"]), "8005");
    assert_eq!(roles(c), ["caller-side", "callee-side", "transfer"]);
    // Answered at 4.0 s, the caller hung up at 36.6 s.
    let talk = c["talk_ms"].as_i64().expect("talk");
    assert!((32_500..=32_700).contains(&talk), "talk {talk}");
    // One recording of the whole conversation: 8004's leg, the trunk's while the call
    // was being transferred, then 8005's; never two copies at once.
    let rec = site.json(&["recordings", "list"]);
    assert_eq!(rec.len(), 1, "{rec:#?}");
    let ms = rec[0]["duration_ms"].as_i64().expect("duration");
    assert!((32_000..=32_600).contains(&ms), "recording {ms} ms");
    assert_eq!(rec[0]["counters"]["duplicates"], 0);
    site.run(&["recordings", "verify"]);
}

#[test]
fn attended_transfer_and_take_over_by_replaces() {
    let (site, calls) = replayed("transfer-attended", true);
    assert_eq!(calls.len(), 2, "the outside call and the consultation: {calls:#?}");
    let outside = &calls[0];
    assert_eq!(s(&outside["caller"]), "13900139006");
    assert_eq!(s(&outside["answered_by"]), "8051");
    assert_eq!(s(&outside["transferred_to"]), "8052");
    assert_eq!(s(&outside["link"]), "header", "the REFER's Replaces");
    assert_eq!(roles(outside), ["caller-side", "callee-side", "transfer"]);
    // Answered at 4.0 s, over when the caller hung up at 35 s, with 8052 at the end.
    let talk = outside["talk_ms"].as_i64().expect("talk");
    assert!((30_900..=31_100).contains(&talk), "talk {talk}");
    let consult = &calls[1];
    assert_eq!((s(&consult["caller"]), s(&consult["callee"])), ("8051".into(), "8052".into()));
    assert_eq!(s(&consult["direction"]), "internal");
    // The consultation ran from 8052's answer (14 s) to the transfer (20.5 s).
    let talk = consult["talk_ms"].as_i64().expect("talk");
    assert!((6_400..=6_600).contains(&talk), "consultation talk {talk}");
    assert!(site.json(&["violations"]).is_empty());

    let (_, calls) = replayed("replaces-takeover", true);
    let c = only(&calls);
    assert_eq!(s(&c["answered_by"]), "8053");
    assert_eq!(s(&c["transferred_to"]), "8054");
    assert_eq!(s(&c["link"]), "header");
    assert_eq!(roles(c), ["caller-side", "callee-side", "transfer"]);
}

#[test]
fn pickup_queue_and_hunt() {
    let (_, calls) = replayed("pickup", true);
    let c = only(&calls);
    assert_eq!(s(&c["answered_by"]), "8062");
    assert_eq!(roles(c), ["caller-side", "ring", "pickup"]);

    let (_, calls) = replayed("queue-ivr", true);
    let c = only(&calls);
    assert_eq!(s(&c["answered_by"]), "8071");
    let wait = c["wait_ms"].as_i64().expect("wait");
    assert!((12_000..=12_200).contains(&wait), "wait {wait}");
    assert_eq!(c["rings"], 2, "6 s of ringing at the agent's phone");

    let (_, calls) = replayed("hunt", true);
    let c = only(&calls);
    assert_eq!(s(&c["answered_by"]), "8082");
    assert_eq!(roles(c), ["caller-side", "ring", "callee-side"]);
}

#[test]
fn evidence_kinds_are_recorded() {
    for (name, kind) in [("header", "header"), ("session-id", "session-id"), ("hep-correlation", "hep")] {
        let (_, calls) = replayed(name, true);
        assert_eq!(s(&only(&calls)["link"]), kind, "{name}");
    }
    let (_, calls) = replayed("internal", true);
    assert_eq!(s(&only(&calls)["link"]), "inferred");
}

#[test]
fn challenged_invite_retried_with_a_new_from_tag_is_one_answered_call() {
    for linking in [true, false] {
        let (site, calls) = replayed("sbc-challenge", linking);
        let caller_side: Vec<&Value> = calls.iter().filter(|c| s(&c["caller"]) == "8017").collect();
        assert!(caller_side.iter().all(|c| c["answered"] == true), "linking {linking}: {calls:#?}");
        assert!(calls.iter().all(|c| s(&c["end_reason"]) != "rejected"), "no phantom rejected call");
        let v = site.json(&["violations"]);
        assert!(v.is_empty(), "{v:#?}");
    }
}

#[test]
fn two_calls_of_one_caller_are_not_merged() {
    let (_, calls) = replayed("same-caller-twice", true);
    assert_eq!(calls.len(), 2);
    for c in &calls {
        let legs = c["legs"].as_array().expect("legs");
        assert_eq!(legs.len(), 2, "{c:#}");
        // Each onward leg carries the number its own phone leg dialled.
        let dialled = s(&c["dialled"]);
        assert!(dialled.ends_with(&s(&legs[1]["to"])), "{dialled} vs {}", s(&legs[1]["to"]));
    }
}
