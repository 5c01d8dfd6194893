//! Rule tests through the `Policy` API, with built `CallStart`/`CallRecord` values: one
//! test per rule id (named after it), precedence, approvals, shifts across midnight,
//! holidays, below-target day roll-over, reload, cost.

use super::*;
use crate::config::{self, Config, GroupMode};
use crate::time::Dur;
use crate::track::{rings_for, CallKey, Direction, MediaStats};
use jiff::civil::date;
use proptest::prelude::*;

/// Packet time of a Shanghai wall-clock time (second precision).
fn at(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> Ts {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let t = tz.to_ambiguous_timestamp(date(y, mo, d).at(h, mi, s, 0)).compatible().unwrap();
    Ts::from_micros(t.as_microsecond())
}

/// 2026-11-02 is a Monday.
fn mon(h: i8, mi: i8) -> Ts {
    at(2026, 11, 2, h, mi, 0)
}

fn grp(name: &str, exts: &[&str]) -> config::Group {
    config::Group { name: name.into(), extensions: exts.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

fn names(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

/// The test site: Shanghai, outside prefix 0, extensions 8000-8999, and one group per mode.
pub(crate) fn cfg() -> Config {
    let mut c = Config {
        fines: config::Fines {
            alarm_only: 200,
            receive_only: 100,
            off_duty: 100,
            outside_window: 50,
            below_target_per_call: 10,
            slow_answer: 20,
            missed: 10,
            long_call: 30,
            ..config::Fines::default()
        },
        ..Config::default()
    };
    c.numbers.personal = vec!["13800000000".into()];
    c.groups = vec![
        config::Group {
            roster: true,
            max_rings: Some(2),
            may_dial: names(&["internal", "local", "mobile", "emergency", "toll-free"]),
            ..grp("dispatch", &["8001-8009"])
        },
        config::Group { mode: GroupMode::AlarmOnly, allow: vec!["95588".into()], ..grp("gate", &["8100"]) },
        config::Group { mode: GroupMode::ReceiveOnly, ..grp("desk", &["8200"]) },
        config::Group {
            may_dial: names(&["internal", "local", "mobile", "toll-free"]),
            daily_target: 3,
            monthly_budget: 500,
            ..grp("sales", &["8300-8309"])
        },
        config::Group { windows: vec!["10:00-12:00".into(), "15:00-17:00".into()], ..grp("callback", &["8400-8401"]) },
        grp("managers", &["8500-8509"]),
    ];
    c.shifts = vec![
        config::Shift {
            group: "dispatch".into(),
            extensions: vec!["8001".into()],
            from: "08:00".into(),
            to: "17:00".into(),
            ..Default::default()
        },
        config::Shift {
            group: "dispatch".into(),
            extensions: vec!["8002".into()],
            from: "17:00".into(),
            to: "08:00".into(),
            days: ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec(),
            ..Default::default()
        },
    ];
    c.approvals = vec![config::Approval {
        extension: "8300".into(),
        class: "long-distance".into(),
        from: "2026-11-01".into(),
        until: "2026-11-30".into(),
        approver: "manager".into(),
    }];
    c.holidays.dates = vec!["2026-10-01".into()];
    c
}

fn policy() -> Policy {
    Policy::new(&cfg()).unwrap()
}

fn ours(s: &str) -> bool {
    s.len() == 4 && s.starts_with('8') && s.bytes().all(|b| b.is_ascii_digit())
}

fn start(key: u64, caller: &str, dialled: &str, t: Ts) -> CallStart {
    let direction = match (ours(caller), ours(dialled)) {
        (true, true) => Direction::Internal,
        (true, false) => Direction::Outbound,
        (false, true) => Direction::Inbound,
        (false, false) => Direction::Transit,
    };
    CallStart {
        key: CallKey(key),
        call_id: format!("call-{key}@test"),
        from_tag: format!("tag-{key}"),
        at: t,
        caller: caller.into(),
        caller_display: None,
        callee: dialled.into(),
        dialled: dialled.into(),
        dialled_domain: None,
        direction,
        src: "10.0.0.1:5060".parse().unwrap(),
        dst: "10.0.0.2:5060".parse().unwrap(),
    }
}

/// The record of `s`: ringing 1 s after the INVITE for `ring_ms` (if any), then answered
/// with `talk_ms` of talk, or ended unanswered with `reason`.
fn record(
    s: &CallStart,
    ring_ms: Option<i64>,
    talk_ms: Option<i64>,
    reason: EndReason,
    status: Option<u16>,
) -> CallRecord {
    let ringing_at = ring_ms.map(|_| s.at + Dur::from_secs(1));
    let after_ring = ringing_at.unwrap_or(s.at) + Dur::from_millis(ring_ms.unwrap_or(0));
    let answered_at = talk_ms.map(|_| after_ring);
    let ended_at = after_ring + Dur::from_millis(talk_ms.unwrap_or(0));
    CallRecord {
        key: s.key,
        call_id: s.call_id.clone(),
        from_tag: s.from_tag.clone(),
        caller: s.caller.clone(),
        caller_display: None,
        callee: s.callee.clone(),
        dialled: s.dialled.clone(),
        dialled_domain: s.dialled_domain.clone(),
        number: s.dialled.clone(),
        direction: s.direction,
        class: None,
        group: None,
        started_at: s.at,
        ringing_at,
        answered_at,
        ended_at,
        rings: rings_for(ring_ms, 5000),
        ring_ms: ring_ms.unwrap_or(0),
        talk_ms: talk_ms.unwrap_or(0),
        answered: talk_ms.is_some(),
        end_reason: reason,
        sip_status: status.or(talk_ms.map(|_| 200)),
        cost_fen: None,
        dtmf: String::new(),
        media_caller: MediaStats::default(),
        media_callee: MediaStats::default(),
        ladder: Vec::new(),
        ladder_dropped: 0,
        to_tag: None,
        linking: Default::default(),
        judged: Default::default(),
    }
}

fn answered(s: &CallStart, ring_ms: i64, talk_ms: i64) -> CallRecord {
    record(s, Some(ring_ms), Some(talk_ms), EndReason::CallerBye, None)
}

fn on_start(p: &mut Policy, s: &CallStart) -> Vec<Violation> {
    let mut out = Vec::new();
    p.on_start(s, &mut out);
    out
}

fn on_end(p: &mut Policy, mut r: CallRecord) -> (CallRecord, Vec<Violation>) {
    let mut out = Vec::new();
    p.on_end(&mut r, &mut out);
    (r, out)
}

/// The whole call: (violations at the INVITE, the record, violations at the end).
fn call(
    p: &mut Policy,
    s: &CallStart,
    r: impl FnOnce(&CallStart) -> CallRecord,
) -> (Vec<Violation>, CallRecord, Vec<Violation>) {
    let first = on_start(p, s);
    let (rec, end) = on_end(p, r(s));
    (first, rec, end)
}

fn rules(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|v| v.rule.as_str()).collect()
}

// ---------------------------------------------------------------- ANS

#[test]
fn ans_1_slow_answer() {
    let mut p = policy();
    // Inbound to a sales phone (default max_rings 3): 16 s of ringing = 4 rings.
    let s = start(1, "13912345678", "8300", mon(9, 0));
    let (first, rec, end) = call(&mut p, &s, |s| answered(s, 16_000, 20_000));
    assert!(first.is_empty());
    assert_eq!(rec.rings, 4);
    assert_eq!(
        end,
        vec![Violation {
            rule: "ANS-1".into(),
            kind: ViolationKind::SlowAnswer,
            call_id: Some("call-1@test".into()),
            call_started_at: Some(s.at),
            call_from_tag: Some(s.from_tag.clone()),
            extension: "8300".into(),
            number: "13912345678".into(),
            detected_at: rec.ended_at,
            fine_fen: Some(2000),
            detail: "answered after 4 rings (ringing 16.0 s) > 3 allowed in group sales".into(),
        }]
    );
    // Three rings (14.999 s) is within the limit.
    let s = start(2, "13912345678", "8300", mon(9, 1));
    let (_, rec, end) = call(&mut p, &s, |s| answered(s, 14_999, 20_000));
    assert_eq!((rec.rings, end), (3, vec![]));
    // Answered without ringing: 0 rings.
    let s = start(3, "13912345678", "8300", mon(9, 2));
    let (_, _, end) = call(&mut p, &s, |s| record(s, None, Some(5_000), EndReason::CalleeBye, None));
    assert!(end.is_empty());
}

#[test]
fn ans_2_slow_answer_group_limit() {
    let mut p = policy();
    // Dispatch answers within 2 rings; 8001 is on duty at 09:00.
    let s = start(1, "13912345678", "8001", mon(9, 0));
    let (_, rec, end) = call(&mut p, &s, |s| answered(s, 10_000, 20_000));
    assert_eq!(rec.rings, 3);
    assert_eq!(rules(&end), ["ANS-2"]);
    assert_eq!(end[0].kind, ViolationKind::SlowAnswer);
    assert_eq!((end[0].extension.as_str(), end[0].fine_fen), ("8001", Some(2000)));
    let s = start(2, "13912345678", "8001", mon(9, 1));
    let (_, _, end) = call(&mut p, &s, |s| answered(s, 9_999, 20_000));
    assert!(end.is_empty());
    // Internal calls ring at our extension too.
    let s = start(3, "8500", "8001", mon(9, 2));
    let (_, _, end) = call(&mut p, &s, |s| answered(s, 10_000, 20_000));
    assert_eq!(rules(&end), ["ANS-2"]);
    assert_eq!(end[0].number, "8500");
}

/// The rule id comes from where the limit came from: a group that sets `max_rings` to the
/// default value (3) is judged by ANS-2, its own limit, and one that does not by ANS-1;
/// what was applied is kept with the record (`judged`).
#[test]
fn ans_rule_by_origin_not_value() {
    let mut c = cfg();
    c.groups.push(config::Group { max_rings: Some(3), ..grp("front", &["8600-8609"]) });
    c.groups.push(config::Group { max_rings: Some(3), ..grp("back", &["8610-8619"]) });
    let mut p = Policy::new(&c).unwrap();
    for (n, ext, rule) in [(1, "8601", "ANS-2"), (2, "8611", "ANS-2"), (3, "8300", "ANS-1")] {
        let s = start(n, "13912345678", ext, mon(9, n as i8));
        let (_, rec, end) = call(&mut p, &s, |s| answered(s, 16_000, 20_000));
        assert_eq!((rec.rings, rules(&end)), (4, vec![rule]), "{ext}");
        let a = rec.judged.answer.clone().unwrap();
        assert_eq!((a.rule.as_str(), a.max_rings, a.within), (rule, 3, false), "{ext}");
        let t = rec.judged.talk.clone().unwrap();
        assert_eq!((t.rule.as_str(), t.limit_s, t.personal, t.over), ("DUR-1", 180, false, false), "{ext}");
        let e = rec.judged.effective.clone().unwrap();
        assert_eq!((e.min_talk_s, e.effective), (30, false), "{ext}: 20 s of talk < 30 s");
    }
    // Not answered: no answer, talk or effective verdict.
    let s = start(9, "13912345678", "8601", mon(10, 0));
    let (_, rec, _) = call(&mut p, &s, |s| record(s, Some(7_000), None, EndReason::Cancelled, Some(487)));
    assert_eq!(rec.judged, crate::track::Judged::default());
}

#[test]
fn ans_3_missed() {
    let mut p = policy();
    let s = start(1, "+8613912345678", "8300", mon(9, 0));
    let (_, rec, end) = call(&mut p, &s, |s| record(s, Some(7_000), None, EndReason::Cancelled, Some(487)));
    assert_eq!(rec.rings, 2);
    assert_eq!(rec.cost_fen, Some(0));
    assert_eq!(
        end,
        vec![Violation {
            rule: "ANS-3".into(),
            kind: ViolationKind::Missed,
            call_id: Some("call-1@test".into()),
            call_started_at: Some(s.at),
            call_from_tag: Some(s.from_tag.clone()),
            extension: "8300".into(),
            number: "13912345678".into(),
            detected_at: rec.ended_at,
            fine_fen: Some(1000),
            detail: "not answered (cancelled, SIP 487) after 2 rings".into(),
        }]
    );
    // Busy without ringing is missed; a caller who hung up before it rang is not; nor a
    // call cut by the end of the capture; nor an outbound call nobody of ours missed.
    let s = start(2, "13912345678", "8301", mon(9, 1));
    let (_, _, end) = call(&mut p, &s, |s| record(s, None, None, EndReason::Busy, Some(486)));
    assert_eq!(rules(&end), ["ANS-3"]);
    assert_eq!(end[0].detail, "not answered (busy, SIP 486) after 0 rings");
    let s = start(6, "13912345678", "8301", mon(9, 5));
    let (_, rec, end) = call(&mut p, &s, |s| record(s, Some(3_000), None, EndReason::Cancelled, Some(487)));
    assert_eq!(rec.rings, 1);
    assert_eq!(end[0].detail, "not answered (cancelled, SIP 487) after 1 ring");
    let s = start(3, "13912345678", "8301", mon(9, 2));
    let (_, _, end) = call(&mut p, &s, |s| record(s, None, None, EndReason::Cancelled, Some(487)));
    assert!(end.is_empty());
    let s = start(4, "13912345678", "8301", mon(9, 3));
    let (_, _, end) = call(&mut p, &s, |s| record(s, Some(3_000), None, EndReason::CaptureEnded, None));
    assert!(end.is_empty());
    let s = start(5, "8500", "013912345678", mon(9, 4));
    let (_, _, end) = call(&mut p, &s, |s| record(s, Some(30_000), None, EndReason::Cancelled, Some(487)));
    assert!(end.is_empty());
}

// ---------------------------------------------------------------- DUR

#[test]
fn dur_1_long_call_business() {
    let mut p = policy();
    let s = start(1, "8500", "013912345678", mon(9, 0));
    let (first, rec, end) = call(&mut p, &s, |s| answered(s, 3_000, 181_000));
    assert!(first.is_empty());
    assert_eq!(rules(&end), ["DUR-1"]);
    let v = &end[0];
    assert_eq!((v.kind, v.extension.as_str(), v.number.as_str()), (ViolationKind::LongCall, "8500", "13912345678"));
    assert_eq!((v.detected_at, v.fine_fen), (rec.ended_at, Some(3000)));
    assert_eq!(v.detail, "talk 181.0 s > 180 s (business limit of group managers)");
    // Exactly the limit is not over it.
    let s = start(2, "8500", "013912345678", mon(9, 10));
    let (_, _, end) = call(&mut p, &s, |s| answered(s, 3_000, 180_000));
    assert!(end.is_empty());
    // Inbound calls are judged by the callee's group.
    let s = start(3, "02112345678", "8300", mon(9, 20));
    let (_, _, end) = call(&mut p, &s, |s| answered(s, 3_000, 200_000));
    assert_eq!(rules(&end), ["DUR-1"]);
    assert_eq!((end[0].extension.as_str(), end[0].number.as_str()), ("8300", "12345678"));
}

#[test]
fn dur_2_long_call_personal() {
    let mut p = policy();
    let s = start(1, "8500", "013800000000", mon(9, 0));
    let (_, _, end) = call(&mut p, &s, |s| answered(s, 3_000, 121_000));
    assert_eq!(rules(&end), ["DUR-2"]);
    assert!(end[0].detail.contains("> 120 s (personal limit"), "{}", end[0].detail);
    let s = start(2, "8500", "013800000000", mon(9, 10));
    let (_, _, end) = call(&mut p, &s, |s| answered(s, 3_000, 120_000));
    assert!(end.is_empty());
    // A personal number calling in is judged the same way.
    let s = start(3, "+8613800000000", "8501", mon(9, 20));
    let (_, _, end) = call(&mut p, &s, |s| answered(s, 3_000, 150_000));
    assert_eq!(rules(&end), ["DUR-2"]);
}

#[test]
fn dur_3_long_call_internal() {
    let mut c = cfg();
    c.limits.internal_max_talk_s = 60;
    let mut p = Policy::new(&c).unwrap();
    let s = start(1, "8500", "8501", mon(9, 0));
    let (first, rec, end) = call(&mut p, &s, |s| answered(s, 3_000, 61_000));
    assert!(first.is_empty());
    assert_eq!(rec.class.as_deref(), Some("internal"));
    assert_eq!(rules(&end), ["DUR-3"]);
    assert_eq!((end[0].extension.as_str(), end[0].number.as_str()), ("8500", "8501"));
    let s = start(2, "8500", "8501", mon(9, 10));
    let (_, _, end) = call(&mut p, &s, |s| answered(s, 3_000, 60_000));
    assert!(end.is_empty());
}

// ---------------------------------------------------------------- OUT

#[test]
fn out_1_premium_rate_at_invite() {
    let mut p = policy();
    let s = start(1, "8500", "016800123", mon(9, 0));
    let first = on_start(&mut p, &s);
    let at_invite = Violation {
        rule: "OUT-1".into(),
        kind: ViolationKind::PremiumRate,
        call_id: Some("call-1@test".into()),
        call_started_at: Some(s.at),
        call_from_tag: Some(s.from_tag.clone()),
        extension: "8500".into(),
        number: "16800123".into(),
        detected_at: s.at,
        fine_fen: None,
        detail: "dialled 016800123 → 16800123, premium-rate prefix 168".into(),
    };
    assert_eq!(first, vec![at_invite.clone()]);
    // At the end: the same identity, the fine completed: 45 s = 1 minute at 300 fen,
    // 20 × 300 + 5000.
    let (rec, end) = on_end(&mut p, answered(&s, 2_000, 45_000));
    assert_eq!((rec.class.as_deref(), rec.number.as_str(), rec.cost_fen), (Some("premium"), "16800123", Some(300)));
    assert_eq!(
        end,
        vec![Violation {
            fine_fen: Some(11_000),
            detail: "dialled 016800123 → 16800123, premium-rate prefix 168; charge 300 fen (1 × 60 s of talk 45.0 s \
                     at 300 fen/min); fine 20 × 300 + 5000 = 11000 fen"
                .into(),
            ..at_invite
        }]
    );
    // Unanswered: charge 0, the fixed part only.
    let s = start(2, "8500", "91234", mon(9, 5));
    assert_eq!(rules(&on_start(&mut p, &s)), ["OUT-1"]);
    let (_, end) = on_end(&mut p, record(&s, Some(4_000), None, EndReason::Cancelled, Some(487)));
    assert_eq!((rules(&end), end[0].fine_fen, end[0].detected_at), (vec!["OUT-1"], Some(5_000), s.at));
    // The allow-listed 95588 is not premium.
    let s = start(3, "8500", "095588", mon(9, 6));
    assert!(on_start(&mut p, &s).is_empty());
    // Nor a trunk-to-trunk call: only our extensions are judged.
    let s = start(4, "13912345678", "16800123", mon(9, 7));
    assert!(on_start(&mut p, &s).is_empty());
}

#[test]
fn out_2_unauthorised_class() {
    let mut p = policy();
    let cases = [
        ("0075512345678", "075512345678", 5_000, "long-distance"),
        ("00085212345678", "0085212345678", 10_000, "hk-macau"),
        ("0008532812345", "008532812345", 10_000, "hk-macau"),
        ("000886212345678", "00886212345678", 10_000, "taiwan"),
        ("0001202555012", "001202555012", 50_000, "international"),
    ];
    for (i, (dialled, number, fine, class)) in cases.into_iter().enumerate() {
        let s = start(i as u64, "8301", dialled, mon(9, i as i8));
        let first = on_start(&mut p, &s);
        assert_eq!(rules(&first), ["OUT-2"], "{dialled}");
        let v = &first[0];
        assert_eq!(v.kind, ViolationKind::UnauthorisedClass);
        assert_eq!((v.number.as_str(), v.fine_fen, v.detected_at), (number, Some(fine), s.at));
        assert_eq!(
            v.detail,
            format!(
                "dialled {dialled} → {number}: {class} is not in may_dial of group sales and no approval covers \
                 2026-11-02 09:{i:02} Mon (Asia/Shanghai)"
            )
        );
        let (rec, end) = on_end(&mut p, answered(&s, 1_000, 10_000));
        assert_eq!(rec.class.as_deref(), Some(class));
        assert!(end.is_empty(), "OUT-2 is raised once, at the INVITE");
    }
    // A class in may_dial is fine; a group without may_dial may dial anything.
    assert!(on_start(&mut p, &start(10, "8301", "013912345678", mon(10, 0))).is_empty());
    assert!(on_start(&mut p, &start(11, "8500", "0001202555012", mon(10, 1))).is_empty());
    // Dispatch may not dial long distance either: 50 yuan.
    let v = on_start(&mut p, &start(12, "8001", "0075512345678", mon(10, 2)));
    assert_eq!((rules(&v), v[0].fine_fen), (vec!["OUT-2"], Some(5_000)));
}

#[test]
fn approvals_inside_and_outside_their_window() {
    let mut p = policy();
    // 8300 has a config approval for long distance in November 2026 (dates inclusive).
    for (k, t) in [(1, at(2026, 11, 1, 0, 0, 0)), (2, at(2026, 11, 30, 23, 59, 59))] {
        assert!(on_start(&mut p, &start(k, "8300", "0075512345678", t)).is_empty());
    }
    for (k, t) in [(3, at(2026, 10, 31, 23, 59, 59)), (4, at(2026, 12, 1, 0, 0, 0))] {
        assert_eq!(rules(&on_start(&mut p, &start(k, "8300", "0075512345678", t))), ["OUT-2"]);
    }
    // An approval covers its class only.
    assert_eq!(rules(&on_start(&mut p, &start(5, "8300", "0001202555012", mon(9, 0)))), ["OUT-2"]);
    // Approvals from the store (`callwarden approve`): 8302 for international on Nov 2.
    assert_eq!(rules(&on_start(&mut p, &start(6, "8302", "0001202555012", mon(9, 0)))), ["OUT-2"]);
    let errors = p.set_approvals(vec![
        config::Approval {
            extension: "8302".into(),
            class: "international".into(),
            from: "2026-11-02".into(),
            until: "2026-11-02".into(),
            approver: "director".into(),
        },
        config::Approval { extension: "8303".into(), class: "galactic".into(), ..Default::default() },
    ]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("galactic"));
    assert!(on_start(&mut p, &start(7, "8302", "0001202555012", mon(23, 59))).is_empty());
    assert_eq!(rules(&on_start(&mut p, &start(8, "8302", "0001202555012", at(2026, 11, 3, 0, 0, 0)))), ["OUT-2"]);
    // They survive a reload.
    p.reload(&cfg()).unwrap();
    assert!(on_start(&mut p, &start(9, "8302", "0001202555012", mon(12, 0))).is_empty());
    // Approvals do not lift OUT-1: premium-rate lines are barred.
    assert_eq!(rules(&on_start(&mut p, &start(10, "8300", "016800123", mon(12, 0)))), ["OUT-1"]);
}

#[test]
fn out_4_alarm_only() {
    let mut p = policy();
    let s = start(1, "8100", "013912345678", mon(9, 0));
    assert_eq!(
        on_start(&mut p, &s),
        vec![Violation {
            rule: "OUT-4".into(),
            kind: ViolationKind::AlarmOnly,
            call_id: Some("call-1@test".into()),
            call_started_at: Some(s.at),
            call_from_tag: Some(s.from_tag.clone()),
            extension: "8100".into(),
            number: "13912345678".into(),
            detected_at: s.at,
            fine_fen: Some(20_000),
            detail: "dialled 013912345678 → 13912345678 (mobile) from alarm-only phone of group gate".into(),
        }]
    );
    // 110 is an emergency number even from an alarm-only phone, with or without the
    // outside prefix; the group's allow-list too; internal calls are not outbound.
    for (k, d) in [(2, "110"), (3, "0119"), (4, "0120"), (5, "122"), (6, "095588"), (7, "8001")] {
        let s = start(k, "8100", d, mon(9, 0));
        assert!(on_start(&mut p, &s).is_empty(), "{d}");
        let (_, end) = on_end(&mut p, answered(&s, 1_000, 10_000));
        assert!(end.is_empty(), "{d}");
    }
}

#[test]
fn out_5_receive_only() {
    let mut p = policy();
    let s = start(1, "8200", "012345678", mon(9, 0));
    let v = on_start(&mut p, &s);
    assert_eq!(rules(&v), ["OUT-5"]);
    assert_eq!(
        (v[0].kind, v[0].number.as_str(), v[0].fine_fen),
        (ViolationKind::ReceiveOnly, "12345678", Some(10_000))
    );
    assert_eq!(v[0].detail, "dialled 012345678 → 12345678 (local) from receive-only phone of group desk");
    for (k, d) in [(2, "0110"), (3, "8001")] {
        assert!(on_start(&mut p, &start(k, "8200", d, mon(9, 0))).is_empty(), "{d}");
    }
    // Receiving is what it is for.
    let s = start(4, "13912345678", "8200", mon(9, 0));
    let (first, _, end) = call(&mut p, &s, |s| answered(s, 1_000, 10_000));
    assert!(first.is_empty() && end.is_empty());
}

#[test]
fn precedence_one_offence_one_fine() {
    let mut p = policy();
    // Alarm-only phone dialling premium: only alarm-only, at the INVITE and at the end.
    let s = start(1, "8100", "016800123", mon(9, 0));
    let (first, rec, end) = call(&mut p, &s, |s| answered(s, 1_000, 30_000));
    assert_eq!(rules(&first), ["OUT-4"]);
    assert!(end.is_empty());
    assert_eq!(rec.cost_fen, Some(300), "the charge is still counted");
    // Receive-only dialling premium: only receive-only.
    let s = start(2, "8200", "016800123", mon(9, 0));
    assert_eq!(rules(&call(&mut p, &s, |s| answered(s, 1_000, 30_000)).0), ["OUT-5"]);
    // Premium from a group whose may_dial leaves it out: premium-rate, not also OUT-2.
    let s = start(3, "8301", "016800123", mon(9, 0));
    let (first, _, end) = call(&mut p, &s, |s| answered(s, 1_000, 30_000));
    assert_eq!((rules(&first), rules(&end)), (vec!["OUT-1"], vec!["OUT-1"]));
    // Rules about different things add up: off-duty dispatcher dialling long distance
    // for too long gets OUT-2 + WHO-1 at the INVITE and DUR-1 at the end.
    let s = start(4, "8001", "0075512345678", mon(7, 0));
    let (first, _, end) = call(&mut p, &s, |s| answered(s, 1_000, 200_000));
    assert_eq!((rules(&first), rules(&end)), (vec!["OUT-2", "WHO-1"], vec!["DUR-1"]));
}

#[test]
fn emergency_numbers_are_never_flagged() {
    let mut p = policy();
    let callers =
        [("8100", mon(9, 0)), ("8200", mon(9, 0)), ("8301", mon(9, 0)), ("8400", mon(20, 0)), ("8003", mon(3, 0))];
    let mut k = 0;
    for (caller, t) in callers {
        for d in ["110", "0119", "+86120", "0122"] {
            k += 1;
            let s = start(k, caller, d, t);
            let (first, rec, end) = call(&mut p, &s, |s| answered(s, 1_000, 100_000));
            assert!(first.is_empty() && end.is_empty(), "{caller} {d}: {first:?} {end:?}");
            assert_eq!((rec.class.as_deref(), rec.cost_fen), (Some("emergency"), Some(0)));
        }
    }
    // On a holiday, too.
    let s = start(99, "8400", "110", at(2026, 10, 1, 11, 0, 0));
    assert!(on_start(&mut p, &s).is_empty());
}

// ---------------------------------------------------------------- WHO

#[test]
fn who_1_off_duty_use() {
    let mut p = policy();
    // 8001's shift is 08:00-17:00: a call at 07:59 is off duty, raised at the INVITE.
    let s = start(1, "8001", "012345678", mon(7, 59));
    assert_eq!(
        on_start(&mut p, &s),
        vec![Violation {
            rule: "WHO-1".into(),
            kind: ViolationKind::OffDutyUse,
            call_id: Some("call-1@test".into()),
            call_started_at: Some(s.at),
            call_from_tag: Some(s.from_tag.clone()),
            extension: "8001".into(),
            number: "12345678".into(),
            detected_at: s.at,
            fine_fen: Some(10_000),
            detail: "dialled 012345678 → 12345678: 8001 is not on a shift of group dispatch at 2026-11-02 07:59 Mon \
                     (Asia/Shanghai)"
                .into(),
        }]
    );
    assert!(on_start(&mut p, &start(2, "8001", "012345678", mon(8, 0))).is_empty());
    assert!(on_start(&mut p, &start(3, "8001", "012345678", mon(16, 59))).is_empty());
    assert_eq!(rules(&on_start(&mut p, &start(4, "8001", "012345678", mon(17, 0)))), ["WHO-1"]);
    // Internal calls from an off-duty dispatch phone count too.
    assert_eq!(rules(&on_start(&mut p, &start(5, "8001", "8500", mon(18, 0)))), ["WHO-1"]);
    // A dispatch extension nobody is rostered on is never on duty.
    assert_eq!(rules(&on_start(&mut p, &start(6, "8003", "012345678", mon(12, 0)))), ["WHO-1"]);
}

#[test]
fn who_1_night_shift_across_midnight_in_shanghai() {
    let mut p = policy();
    // 8002: 17:00-08:00 starting Monday to Friday.
    let ok = [
        at(2026, 11, 2, 17, 0, 0),   // Mon evening
        at(2026, 11, 3, 2, 0, 0),    // Tue 02:00, Monday's shift
        at(2026, 11, 3, 7, 59, 59),  // end of Monday's shift
        at(2026, 11, 7, 3, 0, 0),    // Sat 03:00, Friday's shift
        at(2026, 11, 2, 23, 59, 59), // Mon just before midnight
    ];
    let bad = [
        at(2026, 11, 3, 8, 0, 0),  // Tue 08:00: the shift ended
        at(2026, 11, 2, 3, 0, 0),  // Mon 03:00: Sunday's shift (none)
        at(2026, 11, 8, 3, 0, 0),  // Sun 03:00: Saturday's shift (none)
        at(2026, 11, 7, 18, 0, 0), // Sat evening
        at(2026, 11, 2, 12, 0, 0), // Mon midday
    ];
    for (i, t) in ok.into_iter().enumerate() {
        assert!(on_start(&mut p, &start(i as u64, "8002", "012345678", t)).is_empty(), "{i}");
    }
    for (i, t) in bad.into_iter().enumerate() {
        assert_eq!(rules(&on_start(&mut p, &start(100 + i as u64, "8002", "012345678", t))), ["WHO-1"], "{i}");
    }
}

#[test]
fn who_1_answering_off_duty() {
    let mut p = policy();
    // An outside call answered on 8001 at 20:00: raised at the end, judged at the answer.
    let s = start(1, "13912345678", "8001", mon(19, 59));
    let (first, rec, end) = call(&mut p, &s, |s| answered(s, 2_000, 30_000));
    assert!(first.is_empty());
    assert_eq!(rules(&end), ["WHO-1"]);
    assert_eq!((end[0].extension.as_str(), end[0].number.as_str()), ("8001", "13912345678"));
    assert_eq!(end[0].detected_at, rec.ended_at);
    // Ringing an off-duty phone that nobody answers is not use.
    let s = start(2, "13912345678", "8001", mon(20, 0));
    let (_, _, end) = call(&mut p, &s, |s| record(s, Some(3_000), None, EndReason::Cancelled, Some(487)));
    assert_eq!(rules(&end), ["ANS-3"]);
    // Answered in the shift: nothing.
    let s = start(3, "13912345678", "8001", mon(10, 0));
    assert!(call(&mut p, &s, |s| answered(s, 2_000, 30_000)).2.is_empty());
}

#[test]
fn who_2_outside_window() {
    let mut p = policy();
    let s = start(1, "8400", "013912345678", mon(9, 59));
    assert_eq!(
        on_start(&mut p, &s),
        vec![Violation {
            rule: "WHO-2".into(),
            kind: ViolationKind::OutsideWindow,
            call_id: Some("call-1@test".into()),
            call_started_at: Some(s.at),
            call_from_tag: Some(s.from_tag.clone()),
            extension: "8400".into(),
            number: "13912345678".into(),
            detected_at: s.at,
            fine_fen: Some(5_000),
            detail: "dialled 013912345678 → 13912345678 at 2026-11-02 09:59 Mon (Asia/Shanghai) outside the calling \
                     windows 10:00-12:00, 15:00-17:00 of group callback"
                .into(),
        }]
    );
    for (k, t, flagged) in [
        (2, mon(10, 0), false),
        (3, mon(11, 59), false),
        (4, mon(12, 0), true),
        (5, mon(14, 59), true),
        (6, mon(15, 0), false),
        (7, mon(17, 0), true),
        (8, mon(23, 30), true),
    ] {
        let v = on_start(&mut p, &start(k, "8400", "013912345678", t));
        assert_eq!(!v.is_empty(), flagged, "{k}");
    }
    // Internal calls are not outbound.
    assert!(on_start(&mut p, &start(9, "8400", "8500", mon(20, 0))).is_empty());
}

#[test]
fn who_2_holiday() {
    let mut p = policy();
    let v = on_start(&mut p, &start(1, "8400", "013912345678", at(2026, 10, 1, 10, 30, 0)));
    assert_eq!(rules(&v), ["WHO-2"]);
    assert_eq!(v[0].detail, "dialled 013912345678 → 13912345678 on holiday 2026-10-01");
    // The next day, inside a window: nothing. Groups without windows ignore holidays.
    assert!(on_start(&mut p, &start(2, "8400", "013912345678", at(2026, 10, 2, 10, 30, 0))).is_empty());
    assert!(on_start(&mut p, &start(3, "8500", "013912345678", at(2026, 10, 1, 10, 30, 0))).is_empty());
}

// ---------------------------------------------------------------- STA

/// An outbound sales call with `talk_s` of talk (0 = not answered).
fn sales_call(p: &mut Policy, k: u64, ext: &str, t: Ts, talk_s: i64) -> Vec<Violation> {
    let s = start(k, ext, "013912345678", t);
    let mut v = on_start(p, &s);
    let r = if talk_s > 0 {
        answered(&s, 2_000, talk_s * 1000)
    } else {
        record(&s, Some(10_000), None, EndReason::Cancelled, Some(487))
    };
    v.extend(on_end(p, r).1);
    v
}

fn timeout(p: &mut Policy, now: Ts) -> Vec<Violation> {
    let mut out = Vec::new();
    p.handle_timeout(now, &mut out);
    out
}

#[test]
fn sta_1_below_target_day_roll_over() {
    let mut p = policy();
    // The engine shows the policy every packet's time: watching from Sunday 23:00 makes
    // Monday a whole day.
    assert_eq!(p.poll_timeout(), None);
    p.observe(at(2026, 11, 1, 23, 0, 0));
    assert_eq!(p.poll_timeout(), None);
    // Monday: 8301 makes 3 effective calls; 8302 one effective, one of 29 s and one unanswered.
    for (k, m) in [(1, 0), (2, 10), (3, 20)] {
        assert!(sales_call(&mut p, k, "8301", mon(9, m), 30).is_empty());
    }
    sales_call(&mut p, 4, "8302", mon(10, 0), 45);
    sales_call(&mut p, 5, "8302", mon(10, 5), 29);
    sales_call(&mut p, 6, "8302", mon(10, 10), 0);
    // Internal calls do not count.
    on_end(&mut p, answered(&start(7, "8302", "8303", mon(11, 0)), 1_000, 60_000));
    let day_end = at(2026, 11, 3, 0, 0, 0);
    assert_eq!(p.poll_timeout(), Some(day_end));
    assert!(timeout(&mut p, day_end - Dur::from_micros(1)).is_empty());
    let v = timeout(&mut p, day_end + Dur::from_secs(5));
    assert_eq!(p.poll_timeout(), None);
    // The whole group is small (8300-8309): all ten are judged; 8301 met the target.
    let got: Vec<(&str, Option<i64>)> = v.iter().map(|v| (v.extension.as_str(), v.fine_fen)).collect();
    assert_eq!(
        got,
        vec![
            ("8300", Some(3_000)),
            ("8302", Some(2_000)),
            ("8303", Some(3_000)),
            ("8304", Some(3_000)),
            ("8305", Some(3_000)),
            ("8306", Some(3_000)),
            ("8307", Some(3_000)),
            ("8308", Some(3_000)),
            ("8309", Some(3_000)),
        ]
    );
    assert_eq!(
        v[1],
        Violation {
            rule: "STA-1".into(),
            kind: ViolationKind::BelowTarget,
            call_id: None,
            call_started_at: None,
            call_from_tag: None,
            extension: "8302".into(),
            number: String::new(),
            detected_at: day_end,
            fine_fen: Some(2_000),
            detail: "2026-11-02: 1 effective calls (answered, talk ≥ 30 s) of the 3 a day of group sales; short by 2"
                .into(),
        }
    );
    // Tuesday: nobody of sales works (a day off): not judged.
    sales_call(&mut p, 10, "8500", at(2026, 11, 3, 9, 0, 0), 60);
    assert!(timeout(&mut p, at(2026, 11, 4, 0, 0, 1)).is_empty());
}

#[test]
fn sta_1_partial_days_are_not_judged() {
    // The capture ends mid-day: handle_timeout(Ts::MAX) judges nothing and leaves no timer.
    let mut p = policy();
    timeout(&mut p, mon(8, 0) - Dur::from_secs(9 * 3600));
    sales_call(&mut p, 1, "8301", mon(9, 0), 10);
    assert!(p.poll_timeout().is_some());
    assert!(timeout(&mut p, Ts::MAX).is_empty());
    assert_eq!(p.poll_timeout(), None);

    // Started watching at 08:00: Monday is not whole, Tuesday is.
    let mut p = policy();
    timeout(&mut p, mon(8, 0));
    sales_call(&mut p, 1, "8301", mon(9, 0), 10);
    assert!(timeout(&mut p, at(2026, 11, 3, 0, 0, 0)).is_empty());
    sales_call(&mut p, 2, "8301", at(2026, 11, 3, 9, 0, 0), 10);
    assert_eq!(timeout(&mut p, at(2026, 11, 4, 0, 0, 0)).len(), 10);

    // ... unless the daemon restores the day's counts from the store.
    let mut p = policy();
    timeout(&mut p, mon(8, 0));
    p.restore_effective("8301", mon(7, 0), 2);
    sales_call(&mut p, 1, "8301", mon(9, 0), 40);
    let v = timeout(&mut p, at(2026, 11, 3, 0, 0, 0));
    assert_eq!(v.len(), 9);
    assert!(v.iter().all(|v| v.extension != "8301"));

    // A call cut short by the end of the capture spoils its day.
    let mut p = policy();
    timeout(&mut p, at(2026, 11, 1, 0, 0, 0));
    let s = start(1, "8301", "013912345678", mon(23, 59));
    on_start(&mut p, &s);
    assert!(timeout(&mut p, at(2026, 11, 3, 0, 0, 1)).is_empty(), "waits for the open call");
    assert_eq!(p.poll_timeout(), None);
    let (_, v) = on_end(&mut p, record(&s, Some(2_000), Some(5_000), EndReason::CaptureEnded, None));
    assert!(v.is_empty());
}

#[test]
fn sta_1_day_waits_for_its_open_calls() {
    let mut p = policy();
    timeout(&mut p, at(2026, 11, 1, 12, 0, 0));
    for (k, m) in [(1, 0), (2, 1)] {
        sales_call(&mut p, k, "8301", mon(22, m), 31);
    }
    // The third call starts Monday 23:59 and ends after midnight: it counts for Monday.
    let s = start(3, "8301", "013912345678", mon(23, 59));
    assert!(on_start(&mut p, &s).is_empty());
    assert!(timeout(&mut p, at(2026, 11, 3, 0, 0, 30)).is_empty());
    let (_, v) = on_end(&mut p, answered(&s, 2_000, 90_000));
    assert_eq!(v.len(), 9, "judged when the last call of the day ended");
    assert!(v.iter().all(|v| v.extension != "8301" && v.detected_at == at(2026, 11, 3, 0, 0, 33)));
}

#[test]
fn sta_1_holiday_not_judged_and_large_groups_judge_callers_only() {
    let mut c = cfg();
    c.holidays.dates.push("2026-11-02".into());
    let mut p = Policy::new(&c).unwrap();
    timeout(&mut p, at(2026, 11, 1, 0, 0, 0));
    sales_call(&mut p, 1, "8301", mon(9, 0), 10);
    assert!(timeout(&mut p, at(2026, 11, 3, 0, 0, 0)).is_empty());

    let mut c = cfg();
    c.groups[3].extensions = vec!["8300-8399".into(), "8600".into()];
    let mut p = Policy::new(&c).unwrap();
    timeout(&mut p, at(2026, 11, 1, 0, 0, 0));
    sales_call(&mut p, 1, "8301", mon(9, 0), 10);
    sales_call(&mut p, 2, "8355", mon(9, 5), 40);
    let v = timeout(&mut p, at(2026, 11, 3, 0, 0, 0));
    let got: Vec<(&str, Option<i64>)> = v.iter().map(|v| (v.extension.as_str(), v.fine_fen)).collect();
    // 101 numbers: a block, so only those who called and the one listed singly.
    assert_eq!(got, vec![("8301", Some(3_000)), ("8355", Some(2_000)), ("8600", Some(3_000))]);
}

// ---------------------------------------------------------------- cost, records, API

#[test]
fn out_6_cost_and_record_fields() {
    let mut p = policy();
    // Outbound mobile, 125 s: 3 started minutes × 15 fen.
    let (_, rec, _) = call(&mut p, &start(1, "8500", "013912345678", mon(9, 0)), |s| answered(s, 1_000, 125_000));
    assert_eq!(
        (rec.number.as_str(), rec.class.as_deref(), rec.group.as_deref(), rec.cost_fen),
        ("13912345678", Some("mobile"), Some("managers"), Some(45))
    );
    // Unanswered outbound: 0. Toll-free: 0. International: 800 a minute.
    let (_, rec, _) = call(&mut p, &start(2, "8500", "013912345678", mon(9, 0)), |s| {
        record(s, Some(5_000), None, EndReason::NoAnswer, Some(480))
    });
    assert_eq!(rec.cost_fen, Some(0));
    let (_, rec, _) = call(&mut p, &start(3, "8500", "04008123456", mon(9, 0)), |s| answered(s, 1_000, 300_000));
    assert_eq!((rec.class.as_deref(), rec.cost_fen), (Some("toll-free"), Some(0)));
    let (_, rec, _) = call(&mut p, &start(4, "8500", "0001202555012", mon(9, 0)), |s| answered(s, 1_000, 60_000));
    assert_eq!((rec.class.as_deref(), rec.cost_fen), (Some("international"), Some(800)));
    // Inbound costs us nothing; the group is the callee's.
    let (_, rec, _) = call(&mut p, &start(5, "13912345678", "8300", mon(9, 0)), |s| answered(s, 1_000, 60_000));
    assert_eq!((rec.class.as_deref(), rec.group.as_deref(), rec.cost_fen), (Some("internal"), Some("sales"), Some(0)));
    // Transit (neither end ours): no cost known.
    let (_, rec, _) = call(&mut p, &start(6, "13912345678", "02012345678", mon(9, 0)), |s| answered(s, 1_000, 60_000));
    assert_eq!((rec.number.as_str(), rec.class.as_deref(), rec.cost_fen), ("02012345678", Some("long-distance"), None));
    // Budgets.
    assert_eq!(p.monthly_budget_fen("sales"), Some(50_000));
    assert_eq!(p.monthly_budget_fen("managers"), None);
    assert_eq!(p.over_budget_fen("sales", 50_001), Some(1));
    assert_eq!(p.over_budget_fen("sales", 50_000), None);
    assert_eq!(p.month_of(at(2026, 11, 30, 23, 59, 59)).as_deref(), Some("2026-11"));
    assert_eq!(p.month_of(at(2026, 12, 1, 0, 0, 0)).as_deref(), Some("2026-12"));
    assert_eq!(p.cost_fen(Class::LongDistance, 61_000), 60);
    assert_eq!(p.open_calls(), 0);
}

#[test]
fn classify_on_the_policy() {
    let p = policy();
    assert_eq!(p.classify("016800123", "8001"), ("16800123".to_string(), Class::Premium));
    assert_eq!(p.classify("19912345678", "8001"), ("19912345678".to_string(), Class::Mobile));
    assert_eq!(p.classify("0110", "8100"), ("110".to_string(), Class::Emergency));
    let b = p.classify_borrowed("0075512345678", "8001");
    assert_eq!((b.number.to_string(), b.class), ("075512345678".to_string(), Class::LongDistance));
    assert!(p.is_extension("8001") && !p.is_extension("7001"));
    assert_eq!(p.group_of("8005").map(|g| g.name.as_str()), Some("dispatch"));
}

#[test]
fn check_for_the_api() {
    let p = policy();
    let c = p.check("8301", "0075512345678", mon(9, 0));
    assert_eq!((c.number.as_str(), c.class, c.group.as_deref()), ("075512345678", Class::LongDistance, Some("sales")));
    assert_eq!(rules(&c.violations), ["OUT-2"]);
    assert_eq!((c.violations[0].call_id.as_deref(), c.violations[0].call_started_at), (None, None));
    assert!(p.check("8300", "0075512345678", mon(9, 0)).violations.is_empty());
    assert_eq!(rules(&p.check("8100", "016800123", mon(9, 0)).violations), ["OUT-4"]);
}

#[test]
fn records_and_retention() {
    let mut c = cfg();
    c.groups[0].record = config::RecordMode::Always;
    c.groups[0].retention_days = Some(30);
    c.numbers.record = vec!["8500".into()];
    let p = Policy::new(&c).unwrap();
    assert!(p.records("8001", "013912345678") && p.records("13912345678", "8002"));
    assert!(p.records("8500", "8300"));
    assert!(!p.records("8300", "013912345678"));
    assert_eq!(
        (p.retention_days(Some("dispatch")), p.retention_days(Some("sales")), p.retention_days(None)),
        (30, 365, 365)
    );
}

#[test]
fn end_without_start_judges_the_invite_then() {
    let mut p = policy();
    let s = start(1, "8100", "016800123", mon(9, 0));
    let (rec, v) = on_end(&mut p, answered(&s, 1_000, 10_000));
    assert_eq!(rules(&v), ["OUT-4"]);
    assert_eq!(v[0].detected_at, rec.started_at);
    let s = start(2, "8500", "016800123", mon(9, 0));
    let (_, v) = on_end(&mut p, answered(&s, 1_000, 10_000));
    assert_eq!((rules(&v), v[0].fine_fen), (vec!["OUT-1"], Some(11_000)), "one OUT-1, completed");
}

// ---------------------------------------------------------------- reload

#[test]
fn reload_keeps_the_old_policy_for_calls_in_progress() {
    let mut p = policy();
    let s = start(1, "8500", "016800123", mon(9, 0));
    assert_eq!(rules(&on_start(&mut p, &s)), ["OUT-1"]);
    // The new config: no premium prefixes, a different fine and tariff.
    let mut c = cfg();
    c.numbers.restricted_prefixes.clear();
    c.fines.premium_fixed = 100;
    c.tariffs.premium = 1;
    p.reload(&c).unwrap();
    // The call in progress is judged by the config it started under: 20 × 300 + 5000.
    let (rec, v) = on_end(&mut p, answered(&s, 1_000, 30_000));
    assert_eq!((rec.class.as_deref(), rec.cost_fen), (Some("premium"), Some(300)));
    assert_eq!((rules(&v), v[0].fine_fen), (vec!["OUT-1"], Some(11_000)));
    // A new call is judged by the new one.
    let s = start(2, "8500", "016800123", mon(9, 5));
    let (first, rec, end) = call(&mut p, &s, |s| answered(s, 1_000, 30_000));
    assert!(first.is_empty() && end.is_empty());
    assert_eq!(rec.class.as_deref(), Some("local"));
    // A bad config changes nothing.
    let mut bad = cfg();
    bad.site.timezone = "Nowhere/Land".into();
    assert!(p.reload(&bad).unwrap_err().contains("site.timezone"));
    assert_eq!(p.classify("016800123", "8500").1, Class::Local);
}

#[test]
fn bad_configs_name_their_key() {
    type Edit = Box<dyn Fn(&mut Config)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|c| c.site.timezone = "UTC+8".into()), "site.timezone"),
        (Box::new(|c| c.site.extensions = vec!["80-8999".into()]), "site.extensions"),
        (Box::new(|c| c.numbers.emergency = vec!["11O".into()]), "numbers.emergency"),
        (Box::new(|c| c.numbers.personal = vec!["boss".into()]), "numbers.personal"),
        (Box::new(|c| c.tariffs.unit_s = 0), "tariffs.unit_s"),
        (Box::new(|c| c.holidays.dates = vec!["1 Oct".into()]), "holidays.dates"),
        (Box::new(|c| c.approvals[0].until = "2026-13-01".into()), "until"),
        (Box::new(|c| c.shifts[1].days = vec!["someday".into()]), "shift[1].days"),
        (Box::new(|c| c.groups[1].allow = vec!["95-588".into()]), "allow"),
    ];
    for (edit, key) in cases {
        let mut c = cfg();
        edit(&mut c);
        let e = Policy::new(&c).err().unwrap_or_default();
        assert!(e.contains(key), "{key}: {e}");
    }
    assert!(Policy::new(&Config::default()).is_ok());
}

proptest! {
    /// Whatever calls and timeouts come, the driver's loop moves on: after
    /// `handle_timeout(now)` the next deadline is after `now`; every call's record gets
    /// a class; and OUT-1 raised at an INVITE is completed at the end with a fine.
    #[test]
    fn timers_advance_and_calls_are_judged(
        steps in proptest::collection::vec((0u8..4, 0usize..6, 0usize..6, 0i64..200_000, 0i64..400_000), 1..40)
    ) {
        let exts = ["8001", "8100", "8301", "8302", "8400", "13912345678"];
        let dials = ["016800123", "013912345678", "0075512345678", "8500", "110", "95588"];
        let mut p = policy();
        let mut t = at(2026, 11, 1, 6, 0, 0);
        let mut k = 0u64;
        for (op, a, b, ring, talk) in steps {
            t = t + Dur::from_secs(ring / 4 + 1000 * i64::from(op));
            match op {
                0 => {
                    let mut out = Vec::new();
                    p.handle_timeout(t, &mut out);
                    if let Some(next) = p.poll_timeout() {
                        prop_assert!(next > t);
                    }
                }
                _ => {
                    k += 1;
                    let s = start(k, exts[a], dials[b], t);
                    let first = on_start(&mut p, &s);
                    let r = if op == 3 {
                        record(&s, Some(ring), None, EndReason::Cancelled, Some(487))
                    } else {
                        answered(&s, ring, talk)
                    };
                    t = r.ended_at;
                    let (rec, end) = on_end(&mut p, r);
                    prop_assert!(rec.class.is_some());
                    let pending = first.iter().filter(|v| v.fine_fen.is_none()).count();
                    let completed = end.iter().filter(|v| v.rule == "OUT-1" && v.fine_fen.is_some()).count();
                    prop_assert_eq!(pending, completed);
                    prop_assert!(end.iter().all(|v| v.fine_fen.is_some()));
                }
            }
        }
        let mut out = Vec::new();
        p.handle_timeout(Ts::MAX, &mut out);
        prop_assert_eq!(p.poll_timeout(), None);
        prop_assert_eq!(p.open_calls(), 0);
    }
}

/// Issue 19 point 5, through the policy: a name dialled at one of `[site].domains` is
/// internal, at another domain `sip-uri` (judged at the INVITE and kept on the record).
#[test]
fn a_dialled_name_is_classed_by_the_sites_domains() {
    let mut c = cfg();
    c.site.domains = vec!["pbx.example".into()];
    let mut p = Policy::new(&c).unwrap();
    for (n, domain, class) in [(1, "pbx.example", "internal"), (2, "evil.example", "sip-uri")] {
        let mut s = start(n, "8001", "alice", mon(9, 0));
        s.dialled_domain = Some(domain.into());
        let (_, rec, _) = call(&mut p, &s, |s| answered(s, 1_000, 20_000));
        assert_eq!((rec.number.as_str(), rec.class.as_deref()), ("alice", Some(class)), "{domain}");
    }
    let mut s = start(3, "8001", "alice", mon(9, 0));
    s.dialled_domain = Some("pbx.example".into());
    let (_, rec, _) = call(&mut Policy::new(&cfg()).unwrap(), &s, |s| answered(s, 1_000, 20_000));
    assert_eq!(rec.class.as_deref(), Some("sip-uri"), "no domains configured: never internal");
}
