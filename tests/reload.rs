//! Config reload, as the daemon does it (text → `Config::parse` → `Engine::set_config`),
//! in the middle of a replay of the sipp capture of the rule tests, in-process with the
//! real engine and driver: a good edit takes effect for calls started after it; a broken
//! edit is rejected and the old policy stays; a call in progress across the edit is judged
//! by the policy it started under; approvals loaded from the store survive a reload.

mod common;

use callwarden::pipeline::Driver;
use callwarden_core::config::Config;
use common::{call, config, reference, replay, replay_with, Step, SITE};

/// Before frame `at`, reload with `text` (the daemon's path: parse, then give it to the
/// engine); keep what happened.
struct ReloadAt {
    at: u64,
    text: String,
    result: Option<Result<(), String>>,
}

impl Step for ReloadAt {
    fn before(&mut self, n: u64, driver: &mut Driver) {
        if n != self.at {
            return;
        }
        let res = match Config::parse(&self.text) {
            Ok(cfg) => driver.engine_mut().set_config(&cfg).map_err(|e| e.to_string()),
            Err(errors) => Err(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
        };
        self.result = Some(res);
    }
}

fn rules_of(run: &common::Run) -> Vec<(String, String, Option<i64>)> {
    run.final_violations().into_iter().map(|v| (v.rule, v.extension, v.fine_fen)).collect()
}

#[test]
fn a_good_edit_takes_effect_for_calls_started_after_it() {
    let r = reference("outbound");
    let ld = call(&r, "8002", "001012345678");
    // The edit lets the office dial long distance, and raises the premium-rate fine.
    let edited = SITE
        .replace(
            "may_dial = [\"internal\", \"local\", \"mobile\", \"emergency\", \"toll-free\"]",
            "may_dial = [\"internal\", \"local\", \"mobile\", \"emergency\", \"toll-free\", \"long-distance\"]",
        )
        .replace("[fines]\n", "[fines]\npremium_fixed = 80\n");
    assert_ne!(edited, SITE);
    let mut step = ReloadAt { at: ld.invite_frame, text: edited, result: None };
    let (run, _) = replay_with("outbound.pcap", &config(SITE), |_| {}, Vec::new(), &mut step);
    assert_eq!(step.result, Some(Ok(())));
    let before = replay("outbound.pcap", &config(SITE));
    let out2 = |run: &common::Run| -> Vec<String> { run.rule("OUT-2").iter().map(|v| v.extension.clone()).collect() };
    assert_eq!(out2(&before), ["8002", "8020", "8003"]);
    // Long distance after the edit is allowed; Hong Kong is still not in may_dial.
    assert_eq!(out2(&run), ["8003"]);
    // The premium call started before the edit keeps its fine, 20 × 300 + 50 yuan; the
    // one started after it (8001 → 91234, the last call) is fined 20 × 300 + 80 yuan.
    let fines: Vec<(String, Option<i64>)> = run.rule("OUT-1").iter().map(|v| (v.number.clone(), v.fine_fen)).collect();
    assert_eq!(
        fines,
        [("16800001234".to_string(), Some(20 * 300 + 5000)), ("91234".to_string(), Some(20 * 300 + 8000))]
    );
    // Everything else is as without the edit.
    let others = |run: &common::Run| -> Vec<(String, String, Option<i64>)> {
        rules_of(run).into_iter().filter(|v| v.0 != "OUT-2" && v.0 != "OUT-1").collect()
    };
    assert_eq!(others(&run), others(&before));
}

#[test]
fn a_broken_edit_keeps_the_old_policy() {
    let r = reference("outbound");
    let first = &r[0];
    let baseline = rules_of(&replay("outbound.pcap", &config(SITE)));
    for broken in [
        // Not TOML.
        SITE.replace("[limits]", "[limits"),
        // A wrong type.
        SITE.replace("max_talk_s = 5", "max_talk_s = \"five\""),
        // An unknown key (a typo of max_talk_s).
        SITE.replace("max_talk_s = 5", "max_talk = 60"),
        // A group that may dial a class that does not exist.
        SITE.replace("\"toll-free\"]", "\"tollfree\"]"),
        // An unknown time zone.
        SITE.replace("Asia/Shanghai", "Asia/Nowhere"),
    ] {
        let mut step = ReloadAt { at: first.invite_frame, text: broken.clone(), result: None };
        let (run, _) = replay_with("outbound.pcap", &config(SITE), |_| {}, Vec::new(), &mut step);
        let err = step.result.clone().expect("reloaded").expect_err("a broken edit is rejected");
        assert!(!err.is_empty());
        assert_eq!(rules_of(&run), baseline, "after the rejected edit {err}");
    }
}

#[test]
fn a_call_in_progress_keeps_the_policy_it_started_with() {
    let r = reference("outbound");
    let long = call(&r, "8004", "013812340001");
    let personal = call(&r, "8005", "013900009999");
    // Reload after 8004's INVITE and before 8005's: limits of a minute, long calls fined 99.
    assert!(long.invite_frame < personal.invite_frame);
    let edited = SITE
        .replace("\nmax_talk_s = 5", "\nmax_talk_s = 60")
        .replace("personal_max_talk_s = 3", "personal_max_talk_s = 60")
        .replace("long_call = 30", "long_call = 99");
    let mut step = ReloadAt { at: personal.invite_frame, text: edited, result: None };
    let (run, _) = replay_with("outbound.pcap", &config(SITE), |_| {}, Vec::new(), &mut step);
    assert_eq!(step.result, Some(Ok(())));
    // 8004 talked 7.3 s: over its old 5 s limit, fined at the old rate.
    let dur1 = run.rule("DUR-1");
    assert_eq!(dur1.len(), 1);
    assert_eq!((dur1[0].extension.as_str(), dur1[0].fine_fen), ("8004", Some(3000)));
    assert!(dur1[0].detail.contains("> 5 s"), "{}", dur1[0].detail);
    // 8005 started after the edit: 4.3 s is within the new 60 s personal limit.
    assert!(run.rule("DUR-2").is_empty());
    // 8006 (internal, limit unchanged at 5 s) started after it too: fined at the new rate.
    let dur3 = run.rule("DUR-3");
    assert_eq!((dur3[0].extension.as_str(), dur3[0].fine_fen), ("8006", Some(9900)));
}

#[test]
fn stored_approvals_survive_a_reload() {
    let r = reference("outbound");
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("cw.db");
    let conn = callwarden::store::approvals::open_rw(&db).expect("db");
    let a = callwarden_core::config::Approval {
        extension: "8020".into(),
        class: "long-distance".into(),
        from: "2026-11-01".into(),
        until: "2026-11-30".into(),
        approver: "manager".into(),
    };
    callwarden::store::approvals::add(&conn, &a, "", "Asia/Shanghai", 0).expect("add");
    // Reloaded before any call, with another fine: the stored approval still applies.
    let mut step = ReloadAt { at: r[0].invite_frame, text: SITE.replace("missed = 5", "missed = 6"), result: None };
    let load = |e: &mut callwarden_core::Engine| {
        callwarden::pipeline::feed_approvals(e, &db).expect("load");
    };
    let (run, _) = replay_with("outbound.pcap", &config(SITE), load, Vec::new(), &mut step);
    assert_eq!(step.result, Some(Ok(())));
    let flagged: Vec<String> = run.rule("OUT-2").iter().map(|v| v.extension.clone()).collect();
    assert_eq!(flagged, ["8002", "8003"]);
}
