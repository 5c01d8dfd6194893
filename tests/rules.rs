//! One test per rule id of RULES.md, each over a real capture made on 127.0.0.1 with SIPp
//! (tests/fixtures/rules/{inbound,outbound}.pcap, from the CSVs beside them by `make`),
//! replayed through the real engine and driver with the test site of `common::SITE`.
//! Expected times come from the independent tshark reading committed beside each capture
//! (NAME.pcap.json), not from callwarden: a rule known at the INVITE must be detected at
//! the INVITE packet's time, one judged on the whole call at the call's last message.
//! Fines are in fen and follow the config: OUT-1 = 20 × charge + 50 yuan, the others the
//! yuan amounts of `[fines]`.
//! The store-backed rules (OUT-3 register, OUT-6 budgets, STA-2 figures, approvals from
//! the database) run the built binary over a temporary site.

mod common;

use callwarden::pipeline::Driver;
use callwarden::store;
use callwarden_core::media::RecordingEvent;
use callwarden_core::policy::ViolationKind;
use callwarden_core::track::CallEvent;
use callwarden_core::{Output, Ts};
use common::{assert_rule, call, config, reference, replay, replay_with, NoStep, Step, Want, SITE};
use std::path::Path;
use std::process::Command;

const YUAN: i64 = 100;

fn outbound() -> (common::Run, Vec<common::RefCall>) {
    (replay("outbound.pcap", &config(SITE)), reference("outbound"))
}

fn inbound() -> (common::Run, Vec<common::RefCall>) {
    (replay("inbound.pcap", &config(SITE)), reference("inbound"))
}

fn kinds(run: &common::Run, rule: &str) -> Vec<ViolationKind> {
    run.rule(rule).iter().map(|v| v.kind).collect()
}

#[test]
fn ans_1_slow_answer() {
    let (run, r) = inbound();
    let c = call(&r, "13900000001", "8101");
    assert_eq!(c.rings, 4, "the capture rang 17 s: 4 rings of 5 s");
    let want: Want = ("ANS-1", "8101", "13900000001", c.ended_at, Some(10 * YUAN));
    assert_rule(&run, "ANS-1", &[(want, c)]);
    assert_eq!(kinds(&run, "ANS-1"), [ViolationKind::SlowAnswer]);
    assert!(run.rule("ANS-1")[0].detail.contains("answered after 4 rings"), "{:?}", run.rule("ANS-1"));
    // 8103 answered after one ring and 8104 without ringing: within three rings.
    assert!(run.final_violations().iter().all(|v| v.extension != "8103" && v.extension != "8104"));
}

#[test]
fn ans_2_group_max_rings() {
    let (run, r) = inbound();
    let c = call(&r, "13900000002", "8201");
    assert_eq!(c.rings, 3, "12 s of ringing: within the default 3, over reception's 2");
    let want: Want = ("ANS-2", "8201", "13900000002", c.ended_at, Some(10 * YUAN));
    assert_rule(&run, "ANS-2", &[(want, c)]);
    assert!(run.rule("ANS-2")[0].detail.contains("> 2 allowed in group reception"));
    // With the group's limit at the default, the same call is within the rule.
    let relaxed = config(&SITE.replace("max_rings = 2", "max_rings = 3"));
    let again = replay("inbound.pcap", &relaxed);
    assert!(again.rule("ANS-2").is_empty() && again.rule("ANS-1").len() == 1);
}

#[test]
fn ans_3_missed() {
    let (run, r) = inbound();
    let cancelled = call(&r, "13900000003", "8101");
    let busy = call(&r, "13900000004", "8102");
    // In the order the calls ended: the busy one ended first.
    assert!(busy.ended_at < cancelled.ended_at);
    assert_rule(
        &run,
        "ANS-3",
        &[
            (("ANS-3", "8102", "13900000004", busy.ended_at, Some(5 * YUAN)), busy),
            (("ANS-3", "8101", "13900000003", cancelled.ended_at, Some(5 * YUAN)), cancelled),
        ],
    );
    let details: Vec<String> = run.rule("ANS-3").iter().map(|v| v.detail.clone()).collect();
    let rings = |n: u32| if n == 1 { "1 ring".to_string() } else { format!("{n} rings") };
    assert_eq!(
        details,
        [
            format!("not answered (busy, SIP 486) after {}", rings(busy.rings)),
            format!("not answered (cancelled, SIP 487) after {}", rings(cancelled.rings))
        ]
    );
    assert_eq!(busy.rings, 1, "the capture's busy call rang once (the singular is checked)");
}

#[test]
fn dur_1_long_call() {
    let (run, r) = outbound();
    let c = call(&r, "8004", "013812340001");
    assert!(c.talk_ms > 5000);
    assert_rule(&run, "DUR-1", &[(("DUR-1", "8004", "13812340001", c.ended_at, Some(30 * YUAN)), c)]);
    // Every other answered outside call talked under 5 s.
    assert!(r.iter().filter(|x| x.from != "8004" && x.from != "8006").all(|x| x.talk_ms < 5000));
}

#[test]
fn dur_2_personal() {
    let (run, r) = outbound();
    let c = call(&r, "8005", "013900009999");
    assert!(c.talk_ms > 3000 && c.talk_ms < 5000, "over the personal limit, under the business one");
    assert_rule(&run, "DUR-2", &[(("DUR-2", "8005", "13900009999", c.ended_at, Some(30 * YUAN)), c)]);
    // Not personal any more: the same call is within the business limit.
    let cfg = config(&SITE.replace("personal = [\"13900009999\"]", "personal = []"));
    assert!(replay("outbound.pcap", &cfg).final_violations().iter().all(|v| v.extension != "8005"));
}

#[test]
fn dur_3_internal() {
    let (run, r) = outbound();
    let c = call(&r, "8006", "8106");
    assert_rule(&run, "DUR-3", &[(("DUR-3", "8006", "8106", c.ended_at, Some(30 * YUAN)), c)]);
    assert!(run.rule("DUR-3")[0].detail.contains("internal limit"));
}

#[test]
fn out_1_premium_rate() {
    let (run, r) = outbound();
    let c168 = call(&r, "8001", "016800001234");
    let c9 = call(&r, "8001", "091234");
    // Charge: 3.3 s and 2.3 s of talk = 1 started minute at 300 fen; fine 20 × 300 + 50 yuan.
    let fine = 20 * 300 + 50 * YUAN;
    assert_rule(
        &run,
        "OUT-1",
        &[
            (("OUT-1", "8001", "16800001234", c168.invite_at, Some(fine)), c168),
            (("OUT-1", "8001", "91234", c9.invite_at, Some(fine)), c9),
        ],
    );
    let details: Vec<String> = run.rule("OUT-1").iter().map(|v| v.detail.clone()).collect();
    assert!(details[0].contains("premium-rate prefix 168") && details[1].contains("premium-rate prefix 9"));
    for c in [c168, c9] {
        // Raised twice: at the INVITE packet (no fine yet), completed at the end.
        let raised: Vec<(u64, Option<i64>, Ts)> = run
            .outputs
            .iter()
            .filter_map(|(n, o)| match o {
                Output::Violation(v) if v.rule == "OUT-1" && v.call_id.as_deref() == Some(c.call_id.as_str()) => {
                    Some((*n, v.fine_fen, v.detected_at))
                }
                _ => None,
            })
            .collect();
        assert_eq!(raised.len(), 2, "{raised:?}");
        assert_eq!((raised[0].0, raised[0].1, raised[0].2), (c.invite_frame, None, c.invite_at));
        assert_eq!((raised[1].1, raised[1].2), (Some(fine), c.invite_at));
        // The first came out while the INVITE frame was processed: before the answer.
        let answered_at_frame = run
            .outputs
            .iter()
            .find_map(|(n, o)| match o {
                Output::Call(CallEvent::Answered { at, .. }) if Some(*at) == c.answered_at => Some(*n),
                _ => None,
            })
            .expect("the answer");
        assert!(raised[0].0 < answered_at_frame && Some(answered_at_frame) == c.answer_frame);
    }
    // 95588 is on the allow-list (95xxx service numbers): not premium.
    assert!(run.final_violations().iter().all(|v| v.number != "95588"));
}

/// The premium-rate violation is in the database before the call's 200 OK is processed.
#[test]
fn out_1_premium_rate_stored_before_the_answer() {
    struct AtAnswer<'a> {
        sink: store::StoreSink,
        db: &'a Path,
        answer_frame: u64,
        invite_at: Ts,
        checked: bool,
    }
    impl Step for AtAnswer<'_> {
        fn before(&mut self, n: u64, driver: &mut Driver) {
            if n != self.answer_frame {
                return;
            }
            // Its INVITE and 180 have been fed (and the next call's INVITE), not its 200.
            assert_eq!(driver.engine().active_calls(), 2);
            self.sink.flush_barrier().expect("barrier");
            let conn = rusqlite::Connection::open(self.db).expect("db");
            let rows: Vec<(String, String, i64, Option<i64>)> = conn
                .prepare("SELECT rule, extension, detected_us, fine_fen FROM violations")
                .expect("sql")
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert_eq!(rows, [("OUT-1".to_string(), "8001".to_string(), self.invite_at.0, None)]);
            let calls: i64 = conn.query_row("SELECT count(*) FROM calls", [], |r| r.get(0)).expect("count");
            assert_eq!(calls, 0, "the call has not ended");
            self.checked = true;
        }
    }
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("cw.db");
    let (sink, writer) = store::open(&db, "Asia/Shanghai").expect("store");
    let r = reference("outbound");
    let c = call(&r, "8001", "016800001234");
    let mut step = AtAnswer {
        sink: sink.clone(),
        db: &db,
        answer_frame: c.answer_frame.expect("answered"),
        invite_at: c.invite_at,
        checked: false,
    };
    let (_, driver) = replay_with(
        "outbound.pcap",
        &config(SITE),
        |_| {},
        vec![Box::new(callwarden::sink::database::Database(Box::new(sink)))],
        &mut step,
    );
    assert!(step.checked);
    drop(driver);
    drop(step);
    writer.close().expect("close");
    // At the end the same row carries the fine.
    let conn = rusqlite::Connection::open(&db).expect("db");
    let fine: Option<i64> =
        conn.query_row("SELECT fine_fen FROM violations WHERE rule = 'OUT-1'", [], |r| r.get(0)).expect("row");
    assert_eq!(fine, Some(20 * 300 + 50 * YUAN));
}

#[test]
fn out_2_unauthorised_class() {
    let (run, r) = outbound();
    let ld = call(&r, "8002", "001012345678");
    let ld2 = call(&r, "8020", "001087654321");
    let hk = call(&r, "8003", "00085298765432");
    assert_rule(
        &run,
        "OUT-2",
        &[
            (("OUT-2", "8002", "01012345678", ld.invite_at, Some(50 * YUAN)), ld),
            (("OUT-2", "8020", "01087654321", ld2.invite_at, Some(50 * YUAN)), ld2),
            (("OUT-2", "8003", "0085298765432", hk.invite_at, Some(100 * YUAN)), hk),
        ],
    );
    let classes: Vec<Option<String>> = run
        .outputs
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Call(CallEvent::Ended(rec)) if rec.caller == "8003" || rec.caller == "8002" => {
                Some(rec.class.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(classes, [Some("long-distance".into()), Some("hk-macau".into())]);
}

/// An approval (from the config, or stored with `approve` and loaded) lifts OUT-2 for
/// that extension and class in its validity window only.
#[test]
fn out_2_unauthorised_class_approved() {
    let r = reference("outbound");
    let ld = call(&r, "8002", "001012345678");
    let hk = call(&r, "8003", "00085298765432");
    let flagged =
        |run: &common::Run| -> Vec<String> { run.rule("OUT-2").iter().map(|v| v.extension.clone()).collect() };
    // In the config.
    let approved = format!(
        "{SITE}\n[[approval]]\nextension = \"8020\"\nclass = \"long-distance\"\nfrom = \"2026-11-01\"\nuntil = \"2026-11-30\"\napprover = \"manager\"\n"
    );
    let run = replay("outbound.pcap", &config(&approved));
    assert_eq!(flagged(&run), ["8002", "8003"]);
    // Stored in the database, loaded as `replay` loads it.
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("cw.db");
    let conn = store::approvals::open_rw(&db).expect("db");
    let add = |ext: &str, class: &str, from: &str, until: &str| {
        let a = callwarden_core::config::Approval {
            extension: ext.into(),
            class: class.into(),
            from: from.into(),
            until: until.into(),
            approver: "manager".into(),
        };
        store::approvals::add(&conn, &a, "", "Asia/Shanghai", 0).expect("add")
    };
    let day = common::local(ld.invite_at).date();
    let yesterday = day.yesterday().expect("day").to_string();
    let day = day.to_string();
    // For the day of the calls only.
    add("8020", "long-distance", &day, &day);
    // Expired the day before: does not cover the call.
    add("8002", "long-distance", "2026-11-01", &yesterday);
    // Another class: does not cover a long-distance call.
    let hk_id = add("8002", "hk-macau", "2026-11-01", "2026-11-30");
    add("8003", "hk-macau", "2026-11-01", "2026-11-30");
    let load = |e: &mut callwarden_core::Engine| {
        callwarden::pipeline::feed_approvals(e, &db).expect("load");
    };
    let (run, _) = replay_with("outbound.pcap", &config(SITE), load, Vec::new(), &mut NoStep);
    assert_eq!(flagged(&run), ["8002"]);
    assert_eq!(run.rule("OUT-2")[0].detected_at, ld.invite_at);
    // A revoked approval no longer applies.
    let hk_8003 = hk_id + 1;
    assert!(store::approvals::revoke(&conn, hk_8003, 1).expect("revoke"));
    let (run, _) = replay_with("outbound.pcap", &config(SITE), load, Vec::new(), &mut NoStep);
    assert_eq!(flagged(&run), ["8002", "8003"]);
    assert_eq!(run.rule("OUT-2")[1].detected_at, hk.invite_at);
}

#[test]
fn out_4_alarm_only() {
    let (run, r) = outbound();
    let c = call(&r, "8031", "013812345678");
    assert_rule(&run, "OUT-4", &[(("OUT-4", "8031", "13812345678", c.invite_at, Some(200 * YUAN)), c)]);
    // 110 from the same phone: emergency numbers are never flagged, and the call is kept.
    let emergency = call(&r, "8031", "0110");
    assert!(run.final_violations().iter().all(|v| v.number != "110"));
    let kept = run.outputs.iter().any(|(_, o)| {
        matches!(o, Output::Call(CallEvent::Ended(rec)) if rec.call_id == emergency.call_id && rec.class.as_deref() == Some("emergency"))
    });
    assert!(kept);
}

#[test]
fn out_5_receive_only() {
    let (run, r) = outbound();
    let c = call(&r, "8041", "013812345679");
    assert_rule(&run, "OUT-5", &[(("OUT-5", "8041", "13812345679", c.invite_at, Some(100 * YUAN)), c)]);
    assert!(run.final_violations().iter().all(|v| v.number != "120"), "120 from a receive-only phone is allowed");
}

#[test]
fn who_1_off_duty_use() {
    let (run, r) = outbound();
    let a = call(&r, "8051", "013812340002");
    let b = call(&r, "8071", "013812340007");
    assert_rule(
        &run,
        "WHO-1",
        &[
            (("WHO-1", "8051", "13812340002", a.invite_at, Some(300 * YUAN)), a),
            (("WHO-1", "8071", "13812340007", b.invite_at, Some(300 * YUAN)), b),
        ],
    );
    let t = common::local(a.invite_at);
    assert!(
        !(8..17).contains(&t.hour())
            && run.rule("WHO-1")[0].detail.contains(&t.strftime("%Y-%m-%d %H:%M %a (Asia/Shanghai)").to_string()),
        "{:?}",
        run.rule("WHO-1")
    );
    // A night shift across midnight covers the capture's time: on duty, nothing flagged; a shift for
    // 8051 only leaves 8071 off duty.
    let night = config(&SITE.replace("from = \"08:00\"\nto = \"17:00\"", "from = \"17:00\"\nto = \"08:00\""));
    assert!(replay("outbound.pcap", &night).rule("WHO-1").is_empty());
    let one = config(&SITE.replace(
        "extensions = [\"8051\", \"8071\"]\nfrom = \"08:00\"\nto = \"17:00\"",
        "extensions = [\"8051\"]\nfrom = \"17:00\"\nto = \"08:00\"",
    ));
    let left: Vec<String> = replay("outbound.pcap", &one).rule("WHO-1").iter().map(|v| v.extension.clone()).collect();
    assert_eq!(left, ["8071"]);
}

#[test]
fn who_2_outside_window() {
    let (run, r) = outbound();
    let c = call(&r, "8052", "013812340003");
    assert_rule(&run, "WHO-2", &[(("WHO-2", "8052", "13812340003", c.invite_at, Some(150 * YUAN)), c)]);
    let t = common::local(c.invite_at);
    assert!(!(10..12).contains(&t.hour()) && !(15..17).contains(&t.hour()));
    // A window holding the call's time: allowed.
    let evening = SITE.replace(
        "windows = [\"10:00-12:00\", \"15:00-17:00\"]",
        &format!("windows = [\"{}\"]", common::window_around(c.invite_at)),
    );
    assert!(replay("outbound.pcap", &config(&evening)).rule("WHO-2").is_empty());
}

#[test]
fn who_2_outside_window_holiday() {
    let r = reference("outbound");
    let c = call(&r, "8052", "013812340003");
    // Inside the window, but the day is a holiday: flagged all the same.
    let day = common::local(c.invite_at).date();
    let holiday = format!(
        "{}\n[holidays]\ndates = [\"{day}\"]\n",
        SITE.replace(
            "windows = [\"10:00-12:00\", \"15:00-17:00\"]",
            &format!("windows = [\"{}\"]", common::window_around(c.invite_at))
        )
    );
    let run = replay("outbound.pcap", &config(&holiday));
    assert_rule(&run, "WHO-2", &[(("WHO-2", "8052", "13812340003", c.invite_at, Some(150 * YUAN)), c)]);
    assert_eq!(run.rule("WHO-2")[0].detail, format!("dialled 013812340003 → 13812340003 on holiday {day}"));
}

#[test]
fn rec_1_records_dispatch() {
    let (run, r) = outbound();
    let begun: Vec<(u64, String, Option<String>)> = run
        .outputs
        .iter()
        .filter_map(|(n, o)| match o {
            Output::Recording(RecordingEvent::Begin(info)) => Some((*n, info.call_id.clone(), info.group.clone())),
            _ => None,
        })
        .collect();
    let want: Vec<(u64, String, Option<String>)> = [call(&r, "8051", "013812340002"), call(&r, "8071", "013812340007")]
        .iter()
        .map(|c| (c.invite_frame, c.call_id.clone(), Some("dispatch".to_string())))
        .collect();
    assert_eq!(begun, want, "recorded from the INVITE, only the dispatch group's calls");
    let ended = run.outputs.iter().filter(|(_, o)| matches!(o, Output::Recording(RecordingEvent::End { .. }))).count();
    assert_eq!(ended, 2);
}

#[test]
fn sta_1_below_target() {
    let r = reference("outbound");
    let calls: Vec<&common::RefCall> = r.iter().filter(|c| c.from == "8061").collect();
    // 3.3 s, 1.3 s and busy: one effective call (≥ 3 s) of the 2 the group must make.
    let effective = calls.iter().filter(|c| c.answered_at.is_some() && c.talk_ms >= 3000).count();
    assert_eq!((calls.len(), effective), (3, 1));
    let first = calls[0].invite_at;
    let next_day = common::local(first).date().tomorrow().expect("day");
    let day_end = Ts(next_day.in_tz("Asia/Shanghai").expect("midnight").timestamp().as_microsecond());
    // The capture began late in the day: the day is judged only when its earlier counts are
    // known (here: none, as the daemon restores them from the store after a restart) and
    // packet time has passed midnight (live, the daemon's idle clock).
    let collect = common::Collect::default();
    let (run, mut driver) = replay_with(
        "outbound.pcap",
        &config(SITE),
        |e| e.restore_effective("8061", first, 0),
        vec![Box::new(collect.clone())],
        &mut NoStep,
    );
    assert!(run.rule("STA-1").is_empty(), "not before the day ends");
    collect.0.lock().expect("o").clear();
    let after = &mut driver;
    after.idle(Ts(day_end.0 - 1));
    assert!(collect.0.lock().expect("o").is_empty(), "nothing before midnight");
    after.idle(day_end);
    let got: Vec<_> = collect
        .0
        .lock()
        .expect("o")
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Violation(v) => Some(v.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    let v = &got[0];
    assert_eq!(
        (v.rule.as_str(), v.kind, v.extension.as_str(), v.call_id.as_deref(), v.detected_at, v.fine_fen),
        ("STA-1", ViolationKind::BelowTarget, "8061", None, day_end, Some(20 * YUAN))
    );
}

// ---- through the binary, with the store ----

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(extra: &str) -> Site {
        let dir = tempfile::tempdir().expect("tmp");
        let text = format!("{SITE}\n{extra}\n[store]\npath = \"cw.db\"\n[recordings]\ndir = \"rec\"\n");
        std::fs::write(dir.path().join("cw.toml"), text).expect("config");
        Site { dir }
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new(env!("CARGO_BIN_EXE_callwarden"))
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("cw.toml"))
            .output()
            .expect("run callwarden");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }
    fn replay(&self) {
        let o = common::fixture("outbound.pcap");
        let i = common::fixture("inbound.pcap");
        self.run(&["replay", "--quiet", o.to_str().expect("path"), i.to_str().expect("path")]);
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_slice(&self.run(args).stdout).expect("json")
    }
}

fn local(t: Ts) -> String {
    jiff::Timestamp::from_microsecond(t.0)
        .expect("ts")
        .in_tz("Asia/Shanghai")
        .expect("zone")
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[test]
fn out_3_register() {
    let site = Site::new("");
    // Registered with `approve` before the replay: 8020's call is approved, and still in
    // the register (the register lists every long-distance call, approved or not).
    site.run(&[
        "approve",
        "8020",
        "long-distance",
        "--from",
        "2026-11-01",
        "--until",
        "2026-11-30",
        "--approver",
        "manager",
        "--note",
        "北京客户",
    ]);
    site.replay();
    let out = site.dir.path().join("register.csv");
    site.run(&["register", "--month", "2026-11", "--out", out.to_str().expect("path")]);
    let bytes = std::fs::read(&out).expect("csv");
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with a BOM for Excel");
    let text = String::from_utf8(bytes[3..].to_vec()).expect("utf-8");
    let r = reference("outbound");
    let row = |from: &str, to: &str, number: &str, class: &str, fen: i64| {
        let c = call(&r, from, to);
        let talk_s = c.talk_ms / 1000;
        format!(
            "{from},{number},{},{},0:00:{talk_s:02},{class},{}.{:02},{fen},,\r\n",
            local(c.answered_at.expect("answered")),
            local(c.ended_at),
            fen / 100,
            fen % 100
        )
    };
    let want = format!(
        "user,callee,start,end,duration,class,cost_yuan,cost_fen,matter,outcome\r\n{}{}{}",
        row("8002", "001012345678", "01012345678", "long-distance", 30),
        row("8020", "001087654321", "01087654321", "long-distance", 30),
        row("8003", "00085298765432", "0085298765432", "hk-macau", 200),
    );
    assert_eq!(text, want);
    // The approval kept 8020 out of the violations; 8002's call is flagged.
    let v = site.json(&["violations", "--json", "--rule", "OUT-2"]);
    let exts: Vec<&str> = v.as_array().expect("array").iter().filter_map(|x| x["extension"].as_str()).collect();
    assert_eq!(exts, ["8002", "8003"]);
    // Another month is empty but for the header.
    let none = site.run(&["register", "--month", "2026-10"]);
    assert_eq!(none.stdout, b"\xEF\xBB\xBFuser,callee,start,end,duration,class,cost_yuan,cost_fen,matter,outcome\r\n");
}

#[test]
fn out_6_cost_and_budget() {
    let (run, _) = outbound();
    let costs: Vec<(String, String, Option<i64>)> = run
        .outputs
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Call(CallEvent::Ended(rec)) => Some((rec.caller.clone(), rec.number.clone(), rec.cost_fen)),
            _ => None,
        })
        .collect();
    let cost_of = |n: &str| costs.iter().find(|c| c.1 == n).map(|c| c.2).expect(n);
    // Per started minute: premium 300, local 10, long distance 30, Hong Kong 200, mobile
    // 15; emergency and internal calls cost nothing; an unanswered call costs nothing.
    for (n, fen) in [
        ("16800001234", 300),
        ("91234", 300),
        ("95588", 10),
        ("01012345678", 30),
        ("0085298765432", 200),
        ("13812345678", 15),
        ("110", 0),
        ("8106", 0),
        ("13812340006", 0),
    ] {
        assert_eq!(cost_of(n), Some(fen), "{n}");
    }
    // The office group (budget 5 yuan) spent 300 + 10 + 30 + 30 + 200 + 15 + 15 + 300 = 900.
    let site = Site::new("");
    site.replay();
    let rows = site.json(&["stats", "--by", "group", "--month", "2026-11", "--json"]);
    let office = rows.as_array().expect("rows").iter().find(|r| r["key"] == "office").expect("office").clone();
    assert_eq!(
        (&office["cost_fen"], &office["budget_fen"], &office["over_budget_fen"]),
        (&900.into(), &500.into(), &400.into())
    );
    let sales = rows.as_array().expect("rows").iter().find(|r| r["key"] == "sales").expect("sales").clone();
    assert_eq!(sales["cost_fen"], 30);
    assert!(sales.get("budget_fen").is_none() && sales.get("over_budget_fen").is_none(), "{sales}");
    // A month with no calls: no spend, no rows.
    let empty = site.json(&["stats", "--by", "group", "--month", "2026-10", "--json"]);
    assert_eq!(empty, serde_json::json!([]));
}

#[test]
fn sta_2_stats() {
    let site = Site::new("");
    site.replay();
    let rows = site.json(&["stats", "--by", "ext", "--json"]);
    let row = |ext: &str| rows.as_array().expect("rows").iter().find(|r| r["key"] == ext).expect(ext).clone();
    let r8101 = row("8101");
    // 8101: rang 4 times and answered (slow), then a call cancelled while ringing.
    assert_eq!(
        (&r8101["calls"], &r8101["inbound"], &r8101["answered"], &r8101["missed"], &r8101["within_max_rings"]),
        (&2.into(), &2.into(), &1.into(), &1.into(), &0.into())
    );
    assert_eq!(r8101["rings_before_answer"]["4"], 1);
    assert_eq!(r8101["violations"], serde_json::json!({"ANS-1": 1, "ANS-3": 1}));
    // 8061: three outbound calls, two answered, one effective (≥ 3 s), two mobile minutes.
    let r8061 = row("8061");
    assert_eq!(
        (&r8061["outbound"], &r8061["answered"], &r8061["effective"], &r8061["cost_fen"]),
        (&3.into(), &2.into(), &1.into(), &30.into())
    );
    let r = reference("outbound");
    let talks: Vec<i64> = r.iter().filter(|c| c.from == "8061" && c.answered_at.is_some()).map(|c| c.talk_ms).collect();
    let max = r8061["talk_ms"]["max"].as_i64().expect("max");
    assert!((max - talks.iter().max().copied().unwrap_or(0)).abs() <= 1, "{max} vs tshark {talks:?}");
    // By day: the inbound calls on one local day, the outbound ones on the next.
    let days = site.json(&["stats", "--by", "day", "--json"]);
    let days: Vec<(String, u64)> = days
        .as_array()
        .expect("rows")
        .iter()
        .map(|d| (d["key"].as_str().unwrap_or("").to_string(), d["calls"].as_u64().unwrap_or(0)))
        .collect();
    let day_of = |c: &common::RefCall| common::local(c.invite_at).date().to_string();
    let inb = reference("inbound");
    assert_eq!(days, [(day_of(&inb[0]), 6), (day_of(&r[0]), 19)]);
}

/// Every violation of both captures is one of those the tests above expect: nothing extra.
#[test]
fn no_other_violations() {
    let (out, _) = outbound();
    let (inb, _) = inbound();
    let mut got: Vec<(String, String)> =
        out.final_violations().into_iter().chain(inb.final_violations()).map(|v| (v.rule, v.extension)).collect();
    got.sort();
    let mut want: Vec<(String, String)> = [
        ("ANS-1", "8101"),
        ("ANS-2", "8201"),
        ("ANS-3", "8101"),
        ("ANS-3", "8102"),
        ("DUR-1", "8004"),
        ("DUR-2", "8005"),
        ("DUR-3", "8006"),
        ("OUT-1", "8001"),
        ("OUT-1", "8001"),
        ("OUT-2", "8002"),
        ("OUT-2", "8003"),
        ("OUT-2", "8020"),
        ("OUT-4", "8031"),
        ("OUT-5", "8041"),
        ("WHO-1", "8051"),
        ("WHO-1", "8071"),
        ("WHO-2", "8052"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    want.sort();
    assert_eq!(got, want);
}

/// `replay` prints each violation as it is raised, stamped with its packet time: the
/// premium-rate call at its INVITE ("fine pending"), before violations raised later in the
/// capture, and again with its fine when the call ends.
#[test]
fn replay_prints_violations_as_they_happen() {
    let site = Site::new("");
    let o = common::fixture("outbound.pcap");
    let out = site.run(&["replay", o.to_str().expect("path")]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" ext ")).collect();
    let r = reference("outbound");
    let premium = call(&r, "8001", "016800001234");
    let ld = call(&r, "8002", "001012345678");
    let stamp = |t: Ts| common::local(t).strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string();
    let pos = |prefix: &str, what: &str| {
        lines.iter().position(|l| l.starts_with(prefix) && l.contains(what)).unwrap_or_else(|| panic!("{what}: {text}"))
    };
    let pending =
        pos(&stamp(premium.invite_at), "OUT-1  premium-rate        ext 8001     number 16800001234    fine pending");
    let out2 = pos(&stamp(ld.invite_at), "OUT-2");
    let fined = pos(&stamp(premium.invite_at), "fine 110.00 yuan");
    assert!(pending < out2 && out2 < fined, "{text}");
    assert_eq!(lines.len(), 15, "{text}");
}

/// `approve`: add, list (JSON), revoke (once; a second time or an unknown id exits 1), and
/// an approval the policy could not use is refused with exit 2.
#[test]
fn approve_add_list_revoke() {
    let site = Site::new("");
    let cw = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_callwarden"))
            .args(args)
            .arg("--config")
            .arg(site.dir.path().join("cw.toml"))
            .output()
            .expect("run")
    };
    let add =
        cw(&["approve", "8020", "long-distance", "--from", "2026-11-01", "--until", "2026-11-30", "--approver", "li"]);
    assert!(add.status.success());
    assert_eq!(
        String::from_utf8_lossy(&add.stdout),
        "approval 1: 8020 may dial long-distance from 2026-11-01 until 2026-11-30 (approved by li)\n"
    );
    let bad = cw(&["approve", "8020", "premium", "--from", "2026-11-01", "--until", "2026-11-30", "--approver", "li"]);
    assert_eq!(bad.status.code(), Some(2), "premium can never be approved (OUT-1)");
    let list = site.json(&["approve", "--list", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(
        (&list[0]["id"], &list[0]["class"], &list[0]["revoked_at"]),
        (&1.into(), &"long-distance".into(), &serde_json::Value::Null)
    );
    assert_eq!(cw(&["approve", "--revoke", "1"]).status.code(), Some(0));
    assert_eq!(cw(&["approve", "--revoke", "1"]).status.code(), Some(1));
    assert_eq!(cw(&["approve", "--revoke", "7"]).status.code(), Some(1));
    assert_eq!(site.json(&["approve", "--list", "--json"]), serde_json::json!([]));
    let all = site.json(&["approve", "--list", "--all", "--json"]);
    assert!(all[0]["revoked_at"].is_string(), "{all}");
    // Revoked before the replay: 8020 is flagged again.
    site.replay();
    let v = site.json(&["violations", "--json", "--rule", "OUT-2", "--ext", "8020"]);
    assert_eq!(v.as_array().map(Vec::len), Some(1));
}

/// WHO-1 for a rostered phone that answers off shift (answering is using it), judged at the
/// answer and raised at the end; and REC-1 for a call *to* a dispatch phone.
#[test]
fn who_1_off_duty_answering() {
    let r = reference("inbound");
    let c = call(&r, "13900000005", "8103");
    let cfg = config(&SITE.replace(
        "extensions = [\"8051\", \"8071\"]\nrecord = \"always\"",
        "extensions = [\"8051\", \"8071\", \"8103\"]\nrecord = \"always\"",
    ));
    let run = replay("inbound.pcap", &cfg);
    assert_rule(&run, "WHO-1", &[(("WHO-1", "8103", "13900000005", c.ended_at, Some(300 * YUAN)), c)]);
    let begun: Vec<(u64, String)> = run
        .outputs
        .iter()
        .filter_map(|(n, o)| match o {
            Output::Recording(RecordingEvent::Begin(info)) => Some((*n, info.call_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(begun, [(c.invite_frame, c.call_id.clone())]);
}
