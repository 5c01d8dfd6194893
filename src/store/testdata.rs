//! Builders of the engine's outputs for store tests (unit tests here, and
//! tests/store_cli.rs, which fills a database through the real writer with these).

use callwarden_core::policy::{Violation, ViolationKind};
use callwarden_core::track::{CallKey, CallRecord, Direction, EndReason, MediaStats, SipStep};
use callwarden_core::{Dur, Ts};

/// 2026-03-01T23:30:00Z = 2026-03-02 07:30 in Asia/Shanghai.
pub const T0: i64 = 1_772_407_800_000_000;

/// An answered call started at `started_us`: rings 200 ms after the INVITE, answered
/// 7 s later (2 rings), 42 s of talk, caller hangs up; group "dispatch", cost 15 fen.
pub fn call(call_id: &str, started_us: i64, caller: &str, callee: &str, direction: Direction) -> CallRecord {
    let at = Ts(started_us);
    let ringing = at + Dur::from_millis(200);
    let answered = ringing + Dur::from_secs(7);
    let ended = answered + Dur::from_secs(42);
    CallRecord {
        key: CallKey(1),
        call_id: call_id.into(),
        from_tag: "caller-tag".into(),
        caller: caller.into(),
        caller_display: Some("Zhang San".into()),
        callee: callee.into(),
        dialled: callee.into(),
        dialled_domain: None,
        number: callee.into(),
        direction,
        class: Some(if direction == Direction::Internal { "internal" } else { "mobile" }.into()),
        group: Some("dispatch".into()),
        started_at: at,
        ringing_at: Some(ringing),
        answered_at: Some(answered),
        ended_at: ended,
        rings: 2,
        ring_ms: 7000,
        talk_ms: 42_000,
        answered: true,
        end_reason: EndReason::CallerBye,
        sip_status: Some(200),
        cost_fen: Some(15),
        dtmf: "1".into(),
        media_caller: MediaStats {
            codecs: vec!["PCMA".into()],
            packets: 2100,
            lost: 3,
            first_at: Some(answered),
            last_at: Some(ended),
        },
        media_callee: MediaStats::default(),
        ladder: vec![SipStep {
            at,
            src: "127.0.0.1:5060".parse().unwrap(),
            dst: "127.0.0.1:5080".parse().unwrap(),
            label: "INVITE".into(),
            cseq: "1 INVITE".into(),
            duplicate: false,
        }],
        ladder_dropped: 0,
        to_tag: Some("callee-tag".into()),
        linking: Default::default(),
        judged: Default::default(),
    }
}

/// `c` with the verdicts policy stores when it judges with `[limits]`' defaults (max_rings
/// 3, talk limits 180 s business and internal, 120 s personal, effective from 30 s), as
/// the engine would have: for a record made by hand that was not judged yet.
pub fn judged_by_defaults(mut c: CallRecord) -> CallRecord {
    use callwarden_core::track::{AnswerJudged, EffectiveJudged, Judged, TalkJudged};
    if c.judged != Judged::default() || !c.answered {
        return c;
    }
    let l = callwarden_core::config::Limits::default();
    let incoming = matches!(c.direction, Direction::Inbound | Direction::Internal);
    c.judged.answer =
        incoming.then(|| AnswerJudged { rule: "ANS-1".into(), max_rings: l.max_rings, within: c.rings <= l.max_rings });
    let (rule, limit_s) =
        if c.direction == Direction::Internal { ("DUR-3", l.internal_max_talk_s) } else { ("DUR-1", l.max_talk_s) };
    c.judged.talk =
        Some(TalkJudged { rule: rule.into(), limit_s, personal: false, over: c.talk_ms > i64::from(limit_s) * 1000 });
    c.judged.effective = Some(EffectiveJudged {
        min_talk_s: l.effective_min_talk_s,
        effective: c.talk_ms >= i64::from(l.effective_min_talk_s) * 1000,
    });
    c
}

/// The same call, not answered: ended `reason` after `ring_ms` of ringing.
pub fn unanswered(mut c: CallRecord, reason: EndReason, status: u16) -> CallRecord {
    c.answered = false;
    c.answered_at = None;
    c.talk_ms = 0;
    c.cost_fen = None;
    c.end_reason = reason;
    c.sip_status = Some(status);
    c.ended_at = c.ringing_at.unwrap_or(c.started_at) + Dur::from_millis(c.ring_ms);
    c
}

/// A violation about `call`, detected `after_ms` after its start.
pub fn violation(
    call: &CallRecord,
    rule: &str,
    kind: ViolationKind,
    ext: &str,
    after_ms: i64,
    fine: Option<i64>,
) -> Violation {
    Violation {
        rule: rule.into(),
        kind,
        call_id: Some(call.call_id.clone()),
        call_started_at: Some(call.started_at),
        call_from_tag: Some(call.from_tag.clone()).filter(|t| !t.is_empty()),
        extension: ext.into(),
        number: call.number.clone(),
        detected_at: call.started_at + Dur::from_millis(after_ms),
        fine_fen: fine,
        detail: match fine {
            Some(f) => format!("fine {f} fen"),
            None => "fine pending".into(),
        },
    }
}
