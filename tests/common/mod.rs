//! Shared by the policy integration tests (rules, reload, alerts): the rule fixtures'
//! independent tshark readings, the test config that makes every rule fire on those short
//! captures, and an in-process pipeline (the real `Engine` and `Driver`) that collects
//! every output with the frame it came from.
#![allow(dead_code, reason = "each test file uses a different part of this module")]

use callwarden::capture::file::FileCapture;
use callwarden::pipeline::Driver;
use callwarden::sink::Sink;
use callwarden_core::config::Config;
use callwarden_core::policy::Violation;
use callwarden_core::track::EndReason;
use callwarden_core::{Engine, Output, Ts};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules").join(rel)
}

/// One call as tshark read it (tests/fixtures/rules/NAME.pcap.json).
#[derive(Clone, Debug)]
pub struct RefCall {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub invite_at: Ts,
    pub answered_at: Option<Ts>,
    pub ended_at: Ts,
    pub rings: u32,
    pub talk_ms: i64,
    /// tshark's frame numbers (1-based, the order the capture file holds them).
    pub invite_frame: u64,
    pub answer_frame: Option<u64>,
}

fn ts(v: &serde_json::Value) -> Option<Ts> {
    // tshark prints epoch seconds with 6 decimals; f64 holds them to well under 1 µs.
    v.as_f64().map(|s| Ts((s * 1e6).round() as i64))
}

/// The reference reading of `name` (inbound | outbound).
pub fn reference(name: &str) -> Vec<RefCall> {
    let text = std::fs::read_to_string(fixture(&format!("{name}.pcap.json"))).expect("reference json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    doc["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| RefCall {
            call_id: c["call_id"].as_str().expect("call_id").to_string(),
            from: c["from_user"].as_str().expect("from").to_string(),
            to: c["to_user"].as_str().expect("to").to_string(),
            invite_at: ts(&c["invite_at"]).expect("invite_at"),
            answered_at: ts(&c["answered_at"]),
            ended_at: ts(&c["ended_at"]).expect("ended_at"),
            rings: c["rings"].as_u64().expect("rings") as u32,
            talk_ms: c["talk_ms"].as_i64().expect("talk_ms"),
            invite_frame: c["frames"]["invite"].as_u64().expect("invite frame"),
            answer_frame: c["frames"]["answered"].as_u64(),
        })
        .collect()
}

/// The one reference call from `from` to `to`.
pub fn call<'a>(calls: &'a [RefCall], from: &str, to: &str) -> &'a RefCall {
    let found: Vec<&RefCall> = calls.iter().filter(|c| c.from == from && c.to == to).collect();
    assert_eq!(found.len(), 1, "calls {from} → {to}: {found:?}");
    found[0]
}

/// The test site: the captures were made at night local time (inbound.pcap 2026-11-24
/// 22:18, outbound.pcap 2026-11-25 02:36, Asia/Shanghai), so a day shift or day windows
/// exclude them (the tests check that from the reference times); limits are a few seconds so the short sipp
/// calls break them; every fine is non-zero so fines are checked.
/// Extensions: 8001-8006, 8020 office (no long distance, budget 5 yuan); 8031 alarm-only;
/// 8041 receive-only; 8051, 8071 dispatch (recorded, rostered 08:00-17:00); 8052
/// call-back windows; 8061 sales (target 2 effective calls a day); 8201 reception
/// (max_rings 2); 8101-8104 no group.
pub const SITE: &str = r#"
[site]
timezone = "Asia/Shanghai"
area_code = "021"
outside_prefix = "0"
extensions = ["8000-8999"]

[limits]
max_rings = 3
max_talk_s = 5
personal_max_talk_s = 3
internal_max_talk_s = 5
effective_min_talk_s = 3

[numbers]
personal = ["13900009999"]

[fines]
alarm_only = 200
receive_only = 100
off_duty = 300
outside_window = 150
below_target_per_call = 20
slow_answer = 10
missed = 5
long_call = 30

[[group]]
name = "office"
extensions = ["8001-8006", "8020"]
may_dial = ["internal", "local", "mobile", "emergency", "toll-free"]
monthly_budget = 5

[[group]]
name = "control"
extensions = ["8031"]
mode = "alarm-only"

[[group]]
name = "front"
extensions = ["8041"]
mode = "receive-only"

[[group]]
name = "dispatch"
extensions = ["8051", "8071"]
record = "always"
roster = true

[[shift]]
group = "dispatch"
extensions = ["8051", "8071"]
from = "08:00"
to = "17:00"

[[group]]
name = "callback"
extensions = ["8052"]
windows = ["10:00-12:00", "15:00-17:00"]

[[group]]
name = "sales"
extensions = ["8061"]
daily_target = 2

[[group]]
name = "reception"
extensions = ["8201"]
max_rings = 2
"#;

/// The site's local time of a packet time.
pub fn local(t: Ts) -> jiff::ZonedDateTime {
    jiff::Timestamp::from_microsecond(t.0).expect("ts").in_tz("Asia/Shanghai").expect("zone")
}

/// A one-hour calling window holding `t` ("HH:00-HH+1:00").
pub fn window_around(t: Ts) -> String {
    let h = local(t).hour();
    format!("{h:02}:00-{:02}:00", h + 1)
}

pub fn config(text: &str) -> Config {
    Config::parse(text).unwrap_or_else(|e| panic!("test config: {e:?}"))
}

/// Collects every output, with the number (1-based) of the frame being fed when it came.
#[derive(Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<(u64, Output)>>>, pub Arc<Mutex<u64>>);

impl Sink for Collect {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        let frame = *self.1.lock().expect("frame");
        self.0.lock().expect("outputs").push((frame, out.clone()));
        Ok(())
    }
}

/// What a replay gave.
pub struct Run {
    pub outputs: Vec<(u64, Output)>,
}

impl Run {
    pub fn violations(&self) -> Vec<Violation> {
        self.outputs
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Violation(v) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    /// The final word on each violation: a premium-rate one raised at the INVITE and
    /// completed at the end counts once, with its fine.
    pub fn final_violations(&self) -> Vec<Violation> {
        let mut out: Vec<Violation> = Vec::new();
        for v in self.violations() {
            match out.iter_mut().find(|o| o.rule == v.rule && o.call_id == v.call_id && o.extension == v.extension) {
                Some(o) if o.fine_fen.is_none() => *o = v,
                _ => out.push(v),
            }
        }
        out
    }

    pub fn rule(&self, rule: &str) -> Vec<Violation> {
        self.final_violations().into_iter().filter(|v| v.rule == rule).collect()
    }
}

/// Hooks into a frame-by-frame replay.
pub trait Step {
    /// Before frame `n` (1-based) is fed.
    fn before(&mut self, _n: u64, _driver: &mut Driver) {}
}

pub struct NoStep;
impl Step for NoStep {}

/// Replay `pcap` through the real engine and driver with `cfg`, the extra sinks and a
/// collector; `prepare` may touch the engine first (approvals, restored counts).
pub fn replay_with(
    pcap: &str,
    cfg: &Config,
    prepare: impl FnOnce(&mut Engine),
    mut extra: Vec<Box<dyn Sink + Send>>,
    step: &mut dyn Step,
) -> (Run, Driver) {
    let mut engine = Engine::new(cfg).expect("engine");
    prepare(&mut engine);
    let collect = Collect::default();
    extra.push(Box::new(collect.clone()));
    let mut driver = Driver::new(engine, extra);
    let mut cap = FileCapture::open(&fixture(pcap)).expect("capture");
    let mut n = 0u64;
    loop {
        n += 1;
        step.before(n, &mut driver);
        *collect.1.lock().expect("frame") = n;
        match cap.next_frame().expect("frame") {
            Some(f) => driver.feed(f),
            None => break,
        }
    }
    driver.finish(EndReason::CaptureEnded);
    let outputs = collect.0.lock().expect("outputs").clone();
    (Run { outputs }, driver)
}

pub fn replay(pcap: &str, cfg: &Config) -> Run {
    replay_with(pcap, cfg, |_| {}, Vec::new(), &mut NoStep).0
}

/// A violation as a test expects it: rule, extension, number, detected_at, fine.
pub type Want<'a> = (&'a str, &'a str, &'a str, Ts, Option<i64>);

/// rule, extension, number, detected_at, fine, call_id, call_started_at.
type Key = (String, String, String, Ts, Option<i64>, Option<String>, Option<Ts>);

/// The violations of `rule` are exactly these (in the order raised), each about the
/// reference call it names.
pub fn assert_rule(run: &Run, rule: &str, want: &[(Want<'_>, &RefCall)]) {
    let got = run.rule(rule);
    let got_t: Vec<Key> = got
        .iter()
        .map(|v| {
            (
                v.rule.clone(),
                v.extension.clone(),
                v.number.clone(),
                v.detected_at,
                v.fine_fen,
                v.call_id.clone(),
                v.call_started_at,
            )
        })
        .collect();
    let want_t: Vec<Key> = want
        .iter()
        .map(|((r, e, n, at, fine), c)| {
            (r.to_string(), e.to_string(), n.to_string(), *at, *fine, Some(c.call_id.clone()), Some(c.invite_at))
        })
        .collect();
    assert_eq!(got_t, want_t, "{rule}: {got:#?}");
}
