//! Tracker tests with built messages, one per case of the brief, deterministic and in
//! packet time only. The harness drives the tracker the way the engine's driver does
//! (timers due before each packet fire first, each at its own time) and checks the timer
//! contract after every `handle_timeout`.

use super::test_msg::*;
use super::*;
use crate::config::ExtensionSet;
use crate::sip::sdp::Direction as SdpDirection;
use crate::sip::Method;
use proptest::prelude::*;
use std::collections::HashMap;

/// 2023-11-14T22:13:20Z: all test times are milliseconds after this.
const T0: i64 = 1_700_000_000_000_000;

pub(super) fn t(ms: i64) -> Ts {
    Ts(T0 + ms * 1000)
}

const PHONE: &str = "10.0.0.1:5060";
const PBX: &str = "10.0.0.2:5060";
const CALLEE_SIG: &str = "10.0.0.3:5060";
const CALLER_RTP: &str = "10.0.0.1:4000";
const CALLEE_RTP: &str = "10.0.0.3:5000";

fn cfg(call_timeout_s: i64) -> TrackConfig {
    TrackConfig {
        cycle_ms: 5000,
        call_timeout: Dur::from_secs(call_timeout_s),
        extensions: ExtensionSet::parse(&["8000-8999".to_string()]).unwrap(),
        link: LinkConfig::default(),
        max_calls: MAX_CALLS,
    }
}

/// The driver's part, for tests: a tracker and every event it gave. `tests_link` uses it too.
pub(super) struct H {
    pub(super) tr: Tracker,
    pub(super) ev: Vec<CallEvent>,
}

impl H {
    pub(super) fn with_config(cfg: TrackConfig) -> H {
        H { tr: Tracker::new(cfg), ev: Vec::new() }
    }
    fn new() -> H {
        H::with_timeout(7200)
    }
    fn with_timeout(s: i64) -> H {
        H { tr: Tracker::new(cfg(s)), ev: Vec::new() }
    }

    /// The driver's loop: fire each timer due at or before `now` at its own time.
    pub(super) fn run_until(&mut self, now: Ts) {
        while let Some(due) = self.tr.poll_timeout() {
            if due > now {
                break;
            }
            self.timeout(due);
        }
    }

    fn timeout(&mut self, now: Ts) {
        self.tr.handle_timeout(now, &mut self.ev);
        let next = self.tr.poll_timeout();
        assert!(next.is_none_or(|n| n > now), "poll_timeout {next:?} not after {now:?}");
    }

    pub(super) fn sip_at(&mut self, at: Ts, src: &str, dst: &str, m: Msg) {
        self.run_until(at);
        self.tr.on_sip(at, addr(src), addr(dst), &m.build(), &mut self.ev);
    }

    /// A message from the caller's phone to the PBX (or back, for responses).
    fn up(&mut self, ms: i64, m: Msg) {
        self.sip_at(t(ms), PHONE, PBX, m);
    }
    fn down(&mut self, ms: i64, m: Msg) {
        self.sip_at(t(ms), PBX, PHONE, m);
    }

    fn rtp_at(&mut self, at: Ts, src: &str, dst: &str, pkt: crate::rtp::RtpPacket<'_>) -> Option<RtpBinding> {
        self.run_until(at);
        self.tr.on_rtp(at, addr(src), addr(dst), &pkt, &mut self.ev)
    }
    fn rtp(&mut self, ms: i64, src: &str, dst: &str, pkt: crate::rtp::RtpPacket<'_>) -> Option<RtpBinding> {
        self.rtp_at(t(ms), src, dst, pkt)
    }

    pub(super) fn records(&self) -> Vec<&CallRecord> {
        self.ev
            .iter()
            .filter_map(|e| match e {
                CallEvent::Ended(r) => Some(&**r),
                _ => None,
            })
            .collect()
    }
    fn one(&self) -> &CallRecord {
        let r = self.records();
        assert_eq!(r.len(), 1, "expected one ended call, events: {:#?}", self.ev);
        r[0]
    }
    fn starts(&self) -> Vec<&CallStart> {
        self.ev
            .iter()
            .filter_map(|e| match e {
                CallEvent::Started(s) => Some(s),
                _ => None,
            })
            .collect()
    }
    fn count(&self, f: impl Fn(&CallEvent) -> bool) -> usize {
        self.ev.iter().filter(|e| f(e)).count()
    }

    /// End of the run: everything freed once the linger is over.
    fn drain_all(&mut self, now: Ts) {
        self.tr.end_all(now, EndReason::CaptureEnded, &mut self.ev);
        self.run_until(now + Dur::from_secs(40));
        assert_eq!(self.tr.index_sizes(), (0, 0, 0, 0));
        assert_eq!(self.tr.active_calls(), 0);
    }
}

fn dlg() -> Dialog {
    Dialog::new("call-1@10.0.0.1", "8001", "13800138000")
}

/// INVITE at 0, 100 at 20 ms, 180 at 1 s, 200 at 1 s + `ring_ms`, ACK, caller BYE
/// `talk_ms` later.
fn answered_call(h: &mut H, d: &Dialog, ring_ms: i64, talk_ms: i64) {
    h.up(0, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
    h.down(20, d.r(100, 1));
    h.down(1000, d.r(180, 1));
    let ans = 1000 + ring_ms;
    h.down(ans, d.r(200, 1).sdp(sdp("10.0.0.3", 5000)));
    h.up(ans + 10, d.req(Method::Ack, 1));
    h.up(ans + talk_ms, d.req(Method::Bye, 2));
    h.down(ans + talk_ms + 5, d.resp(200, 2, Method::Bye));
}

#[test]
fn answered_after_7_12_17_seconds_of_ringing() {
    for (ring_ms, rings) in [(7000, 2), (12000, 3), (17000, 4)] {
        let mut h = H::new();
        let d = dlg();
        answered_call(&mut h, &d, ring_ms, 30_000);
        let r = h.one();
        assert_eq!(r.started_at, t(0));
        assert_eq!(r.ringing_at, Some(t(1000)));
        assert_eq!(r.answered_at, Some(t(1000 + ring_ms)));
        assert_eq!(r.ended_at, t(1000 + ring_ms + 30_000));
        assert_eq!((r.ring_ms, r.rings, r.talk_ms), (ring_ms, rings, 30_000));
        assert!(r.answered);
        assert_eq!(r.end_reason, EndReason::CallerBye);
        assert_eq!(r.sip_status, Some(200));
        assert_eq!(r.to_tag.as_deref(), Some("b"));
        assert_eq!((r.caller.as_str(), r.callee.as_str(), r.dialled.as_str()), ("8001", "13800138000", "13800138000"));
        assert_eq!(r.direction, Direction::Outbound);
        let labels: Vec<&str> = r.ladder.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["INVITE", "100 Trying", "180 Ringing", "200 OK", "ACK", "BYE"]);
        assert_eq!(r.ladder[3].cseq, "1 INVITE");
        assert_eq!(r.ladder[5].cseq, "2 BYE");
        // Events in order: Started, Ringing, Answered, Ended.
        let kinds: Vec<&str> =
            h.ev.iter()
                .map(|e| match e {
                    CallEvent::Started(_) => "start",
                    CallEvent::Ringing { .. } => "ring",
                    CallEvent::Answered { .. } => "answer",
                    CallEvent::Dtmf { .. } => "dtmf",
                    CallEvent::Ended(_) => "end",
                    CallEvent::LegLinked { .. } => "leg",
                })
                .collect();
        assert_eq!(kinds, ["start", "ring", "answer", "end"]);
        h.drain_all(t(200_000));
    }
}

#[test]
fn answered_without_ringing_has_no_rings() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(300, d.r(200, 1));
    h.up(5300, d.req(Method::Bye, 2));
    let r = h.one();
    assert_eq!((r.ringing_at, r.ring_ms, r.rings, r.talk_ms), (None, 0, 0, 5000));
}

#[test]
fn a_183_without_sdp_is_not_ringing_the_180_after_it_is() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(500, d.r(183, 1));
    assert_eq!(h.count(|e| matches!(e, CallEvent::Ringing { .. })), 0);
    h.down(2000, d.r(180, 1));
    h.down(9000, d.r(200, 1));
    h.up(10_000, d.req(Method::Bye, 2));
    let r = h.one();
    assert_eq!((r.ringing_at, r.ring_ms, r.rings), (Some(t(2000)), 7000, 2));
}

#[test]
fn a_183_with_sdp_is_ringing_and_early_media_binds() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
    h.down(800, d.r(183, 1).sdp(sdp("10.0.0.3", 5000)));
    h.down(900, d.r(180, 1));
    let b = h.rtp(1000, CALLEE_RTP, CALLER_RTP, rtp(8, 1, 7)).unwrap();
    assert_eq!(b.leg, Leg::CalleeToCaller);
    h.down(4800, d.r(200, 1));
    h.up(6000, d.req(Method::Bye, 2));
    let r = h.one();
    assert_eq!((r.ringing_at, r.ring_ms, r.rings), (Some(t(800)), 4000, 1));
    assert_eq!(r.media_callee.packets, 1);
    assert_eq!(h.count(|e| matches!(e, CallEvent::Ringing { .. })), 1);
}

#[test]
fn busy_486() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(1000, d.r(180, 1));
    h.down(6000, d.r(486, 1));
    h.up(6010, d.req(Method::Ack, 1));
    let r = h.one();
    assert_eq!(r.end_reason, EndReason::Busy);
    assert_eq!((r.ended_at, r.sip_status, r.answered, r.answered_at), (t(6000), Some(486), false, None));
    assert_eq!((r.ring_ms, r.rings, r.talk_ms), (5000, 2, 0));
    // 600 Busy Everywhere is busy too; 480 and 408 are no-answer; 503 is rejected.
    for (status, reason) in
        [(600, EndReason::Busy), (480, EndReason::NoAnswer), (408, EndReason::NoAnswer), (503, EndReason::Rejected)]
    {
        let mut h = H::new();
        h.up(0, d.invite(1));
        h.down(700, d.r(status, 1));
        let r = h.one();
        assert_eq!((r.end_reason, r.sip_status, r.ended_at), (reason, Some(status), t(700)));
    }
}

#[test]
fn cancel_while_ringing_keeps_the_rings_heard_before_it() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(1000, d.r(180, 1));
    h.up(8000, d.req(Method::Cancel, 1));
    h.down(8010, d.resp(200, 1, Method::Cancel));
    assert!(h.records().is_empty(), "the call ends at the 487, not at the CANCEL");
    h.down(8020, d.r(487, 1));
    h.up(8030, d.req(Method::Ack, 1));
    let r = h.one();
    assert_eq!(r.end_reason, EndReason::Cancelled);
    assert_eq!((r.ended_at, r.sip_status), (t(8000), Some(487)));
    assert_eq!((r.ring_ms, r.rings, r.talk_ms, r.answered), (7000, 2, 0, false));
    assert_eq!(h.tr.stats().ended_call_messages, 1, "the ACK for the 487 came after the end");
}

#[test]
fn cancel_with_no_final_response_ends_32_s_later_at_the_cancel() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(1000, d.r(180, 1));
    h.up(12_500, d.req(Method::Cancel, 1));
    h.run_until(t(12_500 + 31_999));
    assert!(h.records().is_empty());
    h.run_until(t(12_500 + 32_000));
    let r = h.one();
    assert_eq!((r.end_reason, r.ended_at, r.sip_status), (EndReason::Cancelled, t(12_500), None));
    assert_eq!((r.ring_ms, r.rings), (11_500, 3));
}

#[test]
fn a_487_without_cancel_is_cancelled_at_its_time() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(1000, d.r(180, 1));
    h.down(4000, d.r(487, 1));
    let r = h.one();
    assert_eq!((r.end_reason, r.ended_at, r.ring_ms, r.sip_status), (EndReason::Cancelled, t(4000), 3000, Some(487)));
}

#[test]
fn a_2xx_winning_the_race_with_cancel_answers_the_call() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(1000, d.r(180, 1));
    h.up(9000, d.req(Method::Cancel, 1));
    h.down(9005, d.r(200, 1));
    h.down(9006, d.resp(200, 1, Method::Cancel));
    h.up(9010, d.req(Method::Ack, 1));
    h.run_until(t(60_000)); // the CANCEL's 32 s must not end it
    assert!(h.records().is_empty());
    h.up(70_000, d.req(Method::Bye, 2));
    let r = h.one();
    assert_eq!(r.end_reason, EndReason::CallerBye);
    assert_eq!((r.answered_at, r.ring_ms, r.talk_ms, r.sip_status), (Some(t(9005)), 8005, 60_995, Some(200)));
}

#[test]
fn challenge_then_retry_is_one_call_started_at_the_first_invite() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(20, d.r(407, 1));
    h.up(30, d.req(Method::Ack, 1).no_to_tag());
    h.up(100, d.invite(2).via("z9hG4bK-retry"));
    h.down(120, d.r(100, 2));
    h.down(500, d.r(180, 2));
    h.down(5500, d.r(200, 2));
    h.up(5510, d.req(Method::Ack, 2));
    h.run_until(t(40_000)); // the challenge's 32 s must not end it
    h.up(45_500, d.req(Method::Bye, 3));
    assert_eq!(h.starts().len(), 1);
    let r = h.one();
    assert_eq!((r.started_at, r.ringing_at, r.answered_at), (t(0), Some(t(500)), Some(t(5500))));
    assert_eq!((r.ring_ms, r.rings, r.talk_ms, r.sip_status), (5000, 2, 40_000, Some(200)));
    assert_eq!(r.ladder.len(), 9);
}

#[test]
fn retry_with_a_new_from_tag_keeps_the_first_tag_as_the_calls_identity() {
    let mut h = H::new();
    let d = dlg();
    let mut retry = d.clone();
    retry.caller_tag = "sbc-retry".into();
    h.up(0, d.invite(1));
    h.down(20, d.r(407, 1));
    h.up(30, d.req(Method::Ack, 1).no_to_tag());
    h.up(100, retry.invite(2).via("z9hG4bK-retry"));
    h.down(5500, retry.r(200, 2));
    h.up(5510, retry.req(Method::Ack, 2));
    h.up(9000, retry.req(Method::Bye, 3));
    assert_eq!(h.starts().len(), 1);
    assert_eq!(h.starts()[0].from_tag, "a");
    let r = h.one();
    assert_eq!(
        (r.from_tag.as_str(), r.end_reason),
        ("a", EndReason::CallerBye),
        "every copy names it by its first tag"
    );
}

#[test]
fn a_name_keeps_its_host_beside_what_was_dialled_and_a_number_not() {
    let mut h = H::new();
    h.up(0, Dialog::new("name@h", "8001", "alice").invite(1));
    h.up(10, Dialog::new("num@h", "8001", "013800138000").invite(1));
    h.up(20, Dialog::new("code@h", "8001", "*72").invite(1));
    let dialled: Vec<(&str, Option<&str>)> =
        h.starts().iter().map(|s| (s.dialled.as_str(), s.dialled_domain.as_deref())).collect();
    assert_eq!(
        dialled,
        [("alice", Some("pbx.example")), ("013800138000", None), ("*72", None)],
        "the host classes a name by [site].domains"
    );
}

#[test]
fn challenge_with_no_retry_is_rejected_at_the_challenge() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(50, d.r(401, 1));
    h.up(60, d.req(Method::Ack, 1));
    h.down(70, d.r(180, 1)); // stale: the transaction is complete
                             // A retry may come as late as a person takes to type credentials (180 s).
    h.run_until(t(50 + 179_999));
    assert!(h.records().is_empty());
    h.run_until(t(50 + 180_000));
    let r = h.one();
    assert_eq!((r.end_reason, r.ended_at, r.sip_status, r.answered), (EndReason::Rejected, t(50), Some(401), false));
    assert_eq!((r.ringing_at, r.ring_ms, r.rings), (None, 0, 0));
}

#[test]
fn a_retry_51_s_after_the_challenge_is_the_same_call() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(50, d.r(407, 1));
    h.up(60, d.req(Method::Ack, 1));
    h.up(51_050, d.invite(2));
    h.down(51_100, d.r(403, 2));
    h.up(51_110, d.req(Method::Ack, 2));
    h.run_until(t(400_000));
    let r = h.one();
    assert_eq!(
        (r.started_at, r.end_reason, r.ended_at, r.sip_status),
        (t(0), EndReason::Rejected, t(51_100), Some(403))
    );
}

#[test]
fn a_challenge_pending_when_the_capture_ends_is_rejected_at_the_challenge() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(50, d.r(407, 1));
    h.up(60, d.req(Method::Ack, 1));
    h.tr.end_all(t(5_000), EndReason::CaptureEnded, &mut h.ev);
    let r = h.one();
    assert_eq!((r.end_reason, r.ended_at, r.sip_status), (EndReason::Rejected, t(50), Some(407)));
}

#[test]
fn a_retry_after_a_redirect_during_the_linger_is_a_new_call() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(100, d.r(302, 1));
    h.up(110, d.req(Method::Ack, 1));
    h.up(120, d.invite(1)); // a late copy of the first INVITE: absorbed
    h.up(200, d.invite(2).ruri("13900139000"));
    h.down(1200, d.r(180, 2));
    h.down(6200, d.r(200, 2));
    h.up(6210, d.req(Method::Ack, 2));
    h.up(20_000, d.req(Method::Bye, 3));
    let recs = h.records();
    assert_eq!((recs.len(), h.starts().len()), (2, 2));
    assert_eq!((recs[0].end_reason, recs[0].sip_status, recs[0].ended_at), (EndReason::Rejected, Some(302), t(100)));
    let r = recs[1];
    assert_eq!((r.started_at, r.dialled.as_str(), r.end_reason), (t(200), "13900139000", EndReason::CallerBye));
    assert_eq!((r.ring_ms, r.rings, r.talk_ms), (5000, 2, 13_800));
    assert_eq!(h.tr.stats().ended_call_messages, 2);
    h.drain_all(t(20_000));
}

#[test]
fn reinvite_hold_moves_the_binding_and_is_no_new_call() {
    let mut h = H::new();
    let d = dlg();
    answered_call_open(&mut h, &d);
    assert_eq!(h.rtp(12_000, CALLEE_RTP, CALLER_RTP, rtp(8, 1, 9)).unwrap().leg, Leg::CalleeToCaller);
    // The caller puts the call on hold from a new port.
    h.up(20_000, d.req(Method::Invite, 2).sdp(sdp_dir("10.0.0.1", 4002, SdpDirection::SendOnly)));
    h.down(20_050, d.resp(200, 2, Method::Invite).sdp(sdp_dir("10.0.0.3", 5000, SdpDirection::RecvOnly)));
    h.up(20_060, d.req(Method::Ack, 2));
    assert_eq!(h.rtp(21_000, "10.0.0.1:4002", CALLEE_RTP, rtp(8, 2, 5)).unwrap().leg, Leg::CallerToCallee);
    assert_eq!(h.rtp(21_000, "10.0.0.3:5000", "10.0.0.1:4002", rtp(8, 2, 9)).unwrap().leg, Leg::CalleeToCaller);
    assert_eq!(h.rtp(21_020, "10.0.0.99:7000", CALLER_RTP, rtp(8, 3, 9)), None, "the old port is unbound");
    // The callee holds with c=0.0.0.0: its address is unbound.
    h.sip_at(t(30_000), CALLEE_SIG, PBX, d.callee_req(Method::Invite, 1).sdp(sdp("0.0.0.0", 5000)));
    h.sip_at(t(30_010), PBX, CALLEE_SIG, d.callee_resp(200, 1, Method::Invite).sdp(sdp("10.0.0.1", 4002)));
    assert_eq!(h.rtp(30_500, "10.0.0.77:1", CALLEE_RTP, rtp(8, 4, 5)), None);
    h.up(40_000, d.req(Method::Bye, 3));
    assert_eq!(h.starts().len(), 1);
    let r = h.one();
    assert_eq!((r.answered_at, r.talk_ms), (Some(t(10_000)), 30_000), "a re-INVITE's 200 is not an answer");
    assert_eq!(r.media_caller.packets, 1);
    assert_eq!(r.media_callee.packets, 2);
}

/// INVITE (caller SDP) at 0, 180 at 1 s, 200 (callee SDP) at 10 s, ACK.
fn answered_call_open(h: &mut H, d: &Dialog) {
    h.up(0, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
    h.down(1000, d.r(180, 1));
    h.down(10_000, d.r(200, 1).sdp(sdp("10.0.0.3", 5000)));
    h.up(10_010, d.req(Method::Ack, 1));
}

#[test]
fn forked_18x_first_counts_and_the_answering_fork_is_kept() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.down(1000, d.r(180, 1).to_tag("fork-1"));
    h.down(1500, d.r(180, 1).to_tag("fork-2"));
    h.down(2000, d.r(183, 1).to_tag("fork-1").sdp(sdp("10.0.0.5", 6000)));
    h.down(2500, d.r(180, 1).to_tag("fork-1"));
    h.down(7000, d.r(200, 1).to_tag("fork-2"));
    h.up(7010, d.req(Method::Ack, 1).to_tag("fork-2"));
    h.sip_at(t(9000), CALLEE_SIG, PHONE, d.callee_req(Method::Bye, 1).from_tag("fork-2"));
    assert_eq!(h.count(|e| matches!(e, CallEvent::Ringing { .. })), 1);
    let r = h.one();
    assert_eq!((r.ringing_at, r.ring_ms, r.rings), (Some(t(1000)), 6000, 2));
    assert_eq!(r.to_tag.as_deref(), Some("fork-2"));
    assert_eq!(r.end_reason, EndReason::CalleeBye);
    // The repeated 180 of fork-1 is a copy on the ladder.
    assert_eq!(r.ladder.iter().filter(|s| s.duplicate).count(), 1);
}

/// The messages of one answered call with two DTMF-free RTP packets, as (time, msg).
fn whole_dialog(d: &Dialog) -> Vec<(i64, bool, Msg)> {
    // (ms, from the caller's side?, message)
    vec![
        (0, true, d.invite(1).sdp(sdp("10.0.0.1", 4000))),
        (30, false, d.r(100, 1)),
        (1000, false, d.r(180, 1)),
        (13_000, false, d.r(200, 1).sdp(sdp("10.0.0.3", 5000))),
        (13_020, true, d.req(Method::Ack, 1)),
        (40_000, false, d.callee_req(Method::Bye, 1)),
        (40_010, true, d.callee_resp(200, 1, Method::Bye)),
    ]
}

#[test]
fn the_dialog_seen_on_two_hops_is_one_call_with_the_same_figures() {
    let d = dlg();
    let mut one = H::new();
    for (ms, _, m) in whole_dialog(&d) {
        one.up(ms, m);
    }
    let mut two = H::new();
    // Hop 1: phone <-> proxy; hop 2, 2 ms later: proxy <-> callee, with one more Via.
    for (ms, from_caller, m) in whole_dialog(&d) {
        if from_caller {
            two.sip_at(t(ms), PHONE, PBX, m.clone());
            two.sip_at(t(ms + 2), PBX, CALLEE_SIG, m.via("z9hG4bK-proxy"));
        } else {
            two.sip_at(t(ms), CALLEE_SIG, PBX, m.clone());
            two.sip_at(t(ms + 2), PBX, PHONE, m);
        }
    }
    assert_eq!(two.starts().len(), 1);
    let (a, b) = (one.one(), two.one());
    assert_eq!(b.ladder.len(), 2 * a.ladder.len() - 1, "the BYE's copy comes after the end");
    assert_eq!(b.ladder.iter().filter(|s| s.duplicate).count(), a.ladder.len() - 1);
    assert!(!b.ladder[0].duplicate && b.ladder[1].duplicate);
    let strip = |r: &CallRecord| CallRecord { ladder: Vec::new(), ..r.clone() };
    assert_eq!(strip(a), strip(b));
    assert_eq!((b.ring_ms, b.rings, b.talk_ms, b.end_reason), (12_000, 3, 27_000, EndReason::CalleeBye));
    assert_eq!(two.tr.stats().ended_call_messages, 3, "BYE copy, 200 and its copy");
}

#[test]
fn retransmissions_change_nothing() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.up(500, d.invite(1));
    h.up(1500, d.invite(1));
    h.down(1600, d.r(180, 1));
    h.down(8000, d.r(200, 1));
    h.down(8500, d.r(200, 1));
    h.down(9500, d.r(200, 1));
    h.up(9600, d.req(Method::Ack, 1));
    h.up(20_000, d.req(Method::Bye, 2));
    h.up(20_500, d.req(Method::Bye, 2));
    h.down(20_600, d.resp(200, 2, Method::Bye));
    assert_eq!(h.starts().len(), 1);
    assert_eq!(h.count(|e| matches!(e, CallEvent::Answered { .. })), 1);
    let r = h.one();
    assert_eq!((r.started_at, r.answered_at, r.ended_at), (t(0), Some(t(8000)), t(20_000)));
    assert_eq!((r.ring_ms, r.talk_ms), (6400, 12_000));
    let dups: Vec<&str> = r.ladder.iter().filter(|s| s.duplicate).map(|s| s.label.as_str()).collect();
    assert_eq!(dups, ["INVITE", "INVITE", "200 OK", "200 OK"]);
    let s = h.tr.stats();
    assert_eq!((s.duplicate_messages, s.ended_call_messages), (4, 2));
}

#[test]
fn late_rtp_after_bye_never_reopens_and_a_new_invite_later_is_a_new_call() {
    let mut h = H::new();
    let d = dlg();
    answered_call_open(&mut h, &d);
    h.rtp(15_000, CALLEE_RTP, CALLER_RTP, rtp(8, 1, 9)).unwrap();
    h.up(20_000, d.req(Method::Bye, 2));
    for i in 0..100 {
        assert_eq!(h.rtp(20_000 + i * 20, CALLEE_RTP, CALLER_RTP, rtp(8, 2 + i as u16, 9)), None);
    }
    // The same INVITE again during the linger is absorbed.
    h.up(25_000, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
    assert_eq!(h.starts().len(), 1);
    let s = h.tr.stats();
    assert_eq!((s.late_rtp, s.ended_call_messages, s.lingering_calls, s.active_calls), (100, 1, 1, 0));
    let r = h.one().clone();
    assert_eq!((r.ended_at, r.media_callee.packets, r.media_callee.last_at), (t(20_000), 1, Some(t(15_000))));
    // After the linger (32 s from the BYE) the call is freed: a new INVITE is a new call.
    h.run_until(t(52_000));
    assert_eq!(h.tr.index_sizes(), (0, 0, 0, 0));
    assert_eq!(h.rtp(52_001, CALLEE_RTP, CALLER_RTP, rtp(8, 500, 9)), None);
    assert_eq!(h.tr.stats().late_rtp, 100);
    h.up(60_000, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
    let starts = h.starts();
    assert_eq!(starts.len(), 2);
    assert_ne!(starts[0].key, starts[1].key);
}

#[test]
fn invite_with_no_response_times_out_at_32_s() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    h.up(500, d.invite(1));
    h.up(1500, d.invite(1));
    assert_eq!(h.tr.poll_timeout(), Some(t(32_000)), "retransmissions do not push the deadline");
    h.run_until(t(31_999));
    assert!(h.records().is_empty());
    h.run_until(t(32_000));
    let r = h.one();
    assert_eq!(
        (r.end_reason, r.ended_at, r.sip_status, r.ring_ms, r.talk_ms),
        (EndReason::Timeout, t(32_000), None, 0, 0)
    );
}

#[test]
fn answered_call_with_no_bye_times_out_at_its_last_packet_without_rekeying_per_packet() {
    let mut h = H::with_timeout(60);
    let d = dlg();
    answered_call_open(&mut h, &d);
    assert_eq!(h.tr.poll_timeout(), Some(t(10_010 + 60_000)));
    for s in 11..=100 {
        h.rtp(s * 1000, CALLER_RTP, CALLEE_RTP, rtp(8, s as u16, 5)).unwrap();
        if s < 70 {
            assert_eq!(h.tr.poll_timeout(), Some(t(70_010)), "RTP must not re-key the timer");
        }
    }
    // Fired at 70.01 s, re-armed from the packet at 70 s: 130 s; then from 100 s: 160 s.
    assert_eq!(h.tr.poll_timeout(), Some(t(130_000)));
    h.run_until(t(159_999));
    assert!(h.records().is_empty());
    h.run_until(t(160_000));
    let r = h.one();
    assert_eq!((r.end_reason, r.ended_at, r.talk_ms), (EndReason::Timeout, t(100_000), 90_000));
    assert_eq!(r.media_caller.packets, 90);
}

#[test]
fn end_all_ends_the_rest_as_capture_ended() {
    let mut h = H::new();
    let (a, b, c, e) = (
        Dialog::new("answered", "8001", "8002"),
        Dialog::new("ringing", "8001", "8003"),
        Dialog::new("cancelling", "8001", "8004"),
        Dialog::new("done", "8001", "8005"),
    );
    answered_call_open(&mut h, &a);
    h.up(11_000, b.invite(1));
    h.down(12_000, b.r(180, 1));
    h.up(12_100, c.invite(1));
    h.down(12_500, c.r(180, 1));
    h.up(14_000, c.req(Method::Cancel, 1));
    h.up(14_000, e.invite(1));
    h.down(14_100, e.r(486, 1));
    h.tr.end_all(t(20_000), EndReason::CaptureEnded, &mut h.ev);
    let recs = h.records();
    assert_eq!(recs.len(), 4);
    let by_id = |id: &str| *recs.iter().find(|r| r.call_id == id).unwrap();
    let r = by_id("answered");
    assert_eq!((r.end_reason, r.ended_at, r.talk_ms), (EndReason::CaptureEnded, t(20_000), 10_000));
    let r = by_id("ringing");
    assert_eq!(
        (r.end_reason, r.ended_at, r.ring_ms, r.rings, r.answered),
        (EndReason::CaptureEnded, t(20_000), 8000, 2, false)
    );
    let r = by_id("cancelling");
    assert_eq!((r.end_reason, r.ended_at, r.ring_ms), (EndReason::Cancelled, t(14_000), 1500));
    assert_eq!(by_id("done").end_reason, EndReason::Busy);
    assert_eq!(h.tr.active_calls(), 0);
    // Ended in start order; a second end_all has nothing left to end.
    h.tr.end_all(t(21_000), EndReason::Shutdown, &mut h.ev);
    assert_eq!(h.records().len(), 4);
    h.drain_all(t(21_000));
}

#[test]
fn end_all_first_runs_the_timeouts_already_due() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1));
    // Called directly, without the driver's timer loop: the INVITE timed out at 32 s.
    h.tr.end_all(t(50_000), EndReason::CaptureEnded, &mut h.ev);
    let r = h.one();
    assert_eq!((r.end_reason, r.ended_at), (EndReason::Timeout, t(32_000)));
}

#[test]
fn directions_from_the_extension_plan_kept_across_reloads() {
    let mut h = H::new();
    let cases = [
        ("8001", "8002", "8002", Direction::Internal),
        ("8001", "13800138000", "013800138000", Direction::Outbound),
        ("13800138000", "8003", "8003", Direction::Inbound),
        // The callee is ours by the dialled number even if To says otherwise.
        ("02155550000", "reception", "8004", Direction::Inbound),
        ("02155550000", "13800138000", "13800138000", Direction::Transit),
    ];
    for (i, (from, to, ruri, _)) in cases.iter().enumerate() {
        let d = Dialog::new(&format!("dir-{i}"), from, to);
        h.up(i as i64, d.invite(1).ruri(ruri));
    }
    let got: Vec<Direction> = h.starts().iter().map(|s| s.direction).collect();
    assert_eq!(got, cases.iter().map(|c| c.3).collect::<Vec<_>>());
    // A reload that makes nobody ours does not change calls in progress.
    h.tr.set_config(TrackConfig { extensions: ExtensionSet::default(), ..cfg(7200) });
    h.tr.end_all(t(1000), EndReason::Shutdown, &mut h.ev);
    let got: Vec<Direction> = h.records().iter().map(|r| r.direction).collect();
    assert_eq!(got, cases.iter().map(|c| c.3).collect::<Vec<_>>());
    assert_eq!(h.records()[1].dialled, "013800138000");
}

#[test]
fn anonymous_caller_is_named_by_p_asserted_identity() {
    let mut h = H::new();
    let d = Dialog::new("anon", "anonymous", "8002");
    h.up(0, d.invite(1).display("Anonymous").pai("13900139000"));
    let d2 = Dialog::new("anon-no-pai", "anonymous", "8002");
    h.up(1, d2.invite(1));
    let d3 = Dialog::new("named", "8001", "8002");
    h.up(2, d3.invite(1).display("Front Desk").pai("13900139000"));
    let s = h.starts();
    assert_eq!((s[0].caller.as_str(), s[0].caller_display.as_deref()), ("13900139000", Some("Anonymous")));
    assert_eq!(s[0].direction, Direction::Inbound);
    assert_eq!(s[1].caller, "anonymous");
    assert_eq!((s[2].caller.as_str(), s[2].caller_display.as_deref()), ("8001", Some("Front Desk")));
}

#[test]
fn rtp_binds_both_legs_with_kinds() {
    let mut h = H::new();
    let d = dlg();
    answered_call_open(&mut h, &d);
    let b = h.rtp(11_000, CALLER_RTP, CALLEE_RTP, rtp(8, 1, 0xDEE0EE8F)).unwrap();
    assert_eq!((b.leg, b.kind), (Leg::CallerToCallee, MediaKind::Audio { encoding: "PCMA".into(), clock_rate: 8000 }));
    // Same SSRC the other way: told apart by address.
    let b = h.rtp(11_000, CALLEE_RTP, CALLER_RTP, rtp(8, 1, 0xDEE0EE8F)).unwrap();
    assert_eq!(b.leg, Leg::CalleeToCaller);
    let b = h.rtp(11_020, CALLER_RTP, CALLEE_RTP, rtp(0, 2, 0xDEE0EE8F)).unwrap();
    assert_eq!(b.kind, MediaKind::Audio { encoding: "PCMU".into(), clock_rate: 8000 }, "static table");
    let b = h.rtp(11_040, CALLER_RTP, CALLEE_RTP, rtp(13, 3, 0xDEE0EE8F)).unwrap();
    assert_eq!(b.kind, MediaKind::ComfortNoise);
    let b = h.rtp(11_060, CALLER_RTP, CALLEE_RTP, rtp(96, 4, 0xDEE0EE8F)).unwrap();
    assert_eq!(b.kind, MediaKind::Unknown(96));
    let b = h.rtp(11_080, CALLER_RTP, CALLEE_RTP, rtp_event(101, 5, 800, &[4, 10, 0, 160])).unwrap();
    assert_eq!(b.kind, MediaKind::Dtmf { clock_rate: 8000 });
    assert_eq!(h.rtp(11_100, "10.9.9.9:1000", "10.9.9.8:2000", rtp(8, 1, 1)), None);
    h.up(12_000, d.req(Method::Bye, 2));
    let r = h.one();
    assert_eq!(r.media_caller.codecs, ["PCMA", "PCMU", "CN", "telephone-event"]);
    assert_eq!((r.media_caller.packets, r.media_callee.packets), (5, 1));
    assert_eq!(r.dtmf, "4");
}

#[test]
fn symmetric_rtp_and_nat_rewritten_sources_bind() {
    let mut h = H::new();
    let d = dlg();
    // The caller announces its private address; its packets come from the NAT's.
    h.up(0, d.invite(1).sdp(sdp("192.168.1.10", 4000)));
    h.down(5000, d.r(200, 1).sdp(sdp("10.0.0.3", 5000)));
    let nat = "203.0.113.7:31000";
    assert_eq!(h.rtp(5100, nat, CALLEE_RTP, rtp(8, 1, 5)).unwrap().leg, Leg::CallerToCallee);
    // The callee answers to the learnt NAT address.
    assert_eq!(h.rtp(5100, CALLEE_RTP, nat, rtp(8, 1, 9)).unwrap().leg, Leg::CalleeToCaller);
    // Symmetric RTP: from the callee's announced address to somewhere never announced.
    let other = "198.51.100.4:40000";
    assert_eq!(h.rtp(5120, CALLEE_RTP, other, rtp(8, 2, 9)).unwrap().leg, Leg::CalleeToCaller);
    // ... and that destination now binds too.
    assert_eq!(h.rtp(5140, other, "10.0.0.3:5999", rtp(8, 2, 5)).unwrap().leg, Leg::CallerToCallee);
    h.up(6000, d.req(Method::Bye, 2));
    let r = h.one();
    assert_eq!((r.media_caller.packets, r.media_callee.packets), (2, 2));
    h.drain_all(t(6000));
}

#[test]
fn a_newer_call_announcing_the_same_address_takes_it_over() {
    let mut h = H::new();
    let (a, b) = (Dialog::new("old", "8001", "8002"), Dialog::new("new", "8001", "8003"));
    h.up(0, a.invite(1).sdp(sdp("10.0.0.1", 4000)));
    h.down(100, a.r(200, 1));
    h.up(200, b.invite(1).sdp(sdp("10.0.0.1", 4000)));
    h.down(250, b.r(180, 1));
    let keys: Vec<CallKey> = h.starts().iter().map(|s| s.key).collect();
    assert_eq!(h.rtp(300, CALLEE_RTP, CALLER_RTP, rtp(8, 1, 1)).unwrap().key, keys[1]);
    // The old call ending and being freed does not unbind the new call's address.
    h.up(400, a.req(Method::Bye, 2));
    h.run_until(t(40_000));
    assert_eq!(h.rtp(40_001, CALLEE_RTP, CALLER_RTP, rtp(8, 2, 1)).unwrap().key, keys[1]);
}

#[test]
fn dtmf_digit_once_from_a_triple_end_packet() {
    let mut h = H::new();
    let d = dlg();
    answered_call_open(&mut h, &d);
    static PROGRESS: [[u8; 4]; 3] = [[1, 10, 0, 160], [1, 10, 1, 64], [1, 10, 1, 224]];
    static END: [u8; 4] = [1, 0x8a, 3, 32];
    static HASH: [u8; 4] = [11, 0x8a, 3, 32];
    let mut seq = 100u16;
    for p in &PROGRESS {
        h.rtp(11_000 + i64::from(seq), CALLER_RTP, CALLEE_RTP, rtp_event(101, seq, 16_000, p)).unwrap();
        seq += 1;
    }
    for _ in 0..3 {
        h.rtp(11_200, CALLER_RTP, CALLEE_RTP, rtp_event(101, seq, 16_000, &END)).unwrap();
    }
    seq += 1;
    h.rtp(12_000, CALLER_RTP, CALLEE_RTP, rtp_event(101, seq, 24_000, &HASH)).unwrap();
    let digits: Vec<(Ts, char)> =
        h.ev.iter()
            .filter_map(|e| match e {
                CallEvent::Dtmf { at, digit, .. } => Some((*at, *digit)),
                _ => None,
            })
            .collect();
    assert_eq!(digits, [(t(11_100), '1'), (t(12_000), '#')]);
    h.up(13_000, d.req(Method::Bye, 2));
    let r = h.one();
    assert_eq!(r.dtmf, "1#");
    assert_eq!((r.media_caller.packets, r.media_caller.lost), (7, 0));
}

#[test]
fn lost_packets_counted_per_stream() {
    let mut h = H::new();
    let d = dlg();
    answered_call_open(&mut h, &d);
    let missing = [7u16, 30, 31, 32, 99];
    for s in (0..=120u16).filter(|s| !missing.contains(s)) {
        h.rtp(11_000 + i64::from(s) * 20, CALLER_RTP, CALLEE_RTP, rtp(8, s.wrapping_add(65_500), 1)).unwrap();
        h.rtp(11_000 + i64::from(s) * 20, CALLEE_RTP, CALLER_RTP, rtp(8, s, 1)).unwrap();
    }
    h.up(20_000, d.req(Method::Bye, 2));
    let r = h.one();
    assert_eq!((r.media_caller.packets, r.media_caller.lost), (116, 5));
    assert_eq!((r.media_callee.packets, r.media_callee.lost), (116, 5));
    assert_eq!(r.media_caller.first_at, Some(t(11_000)));
    assert_eq!(r.media_caller.last_at, Some(t(11_000 + 120 * 20)));
}

#[test]
fn orphans_and_non_call_messages_are_counted_not_calls() {
    let mut h = H::new();
    let d = Dialog::new("mid-call", "8001", "8002");
    h.up(0, d.req(Method::Bye, 7));
    h.down(1, d.resp(200, 7, Method::Bye));
    h.up(2, d.req(Method::Invite, 8)); // re-INVITE of a dialog we never saw start
    h.down(3, d.r(180, 1));
    let reg = Dialog::new("reg", "8001", "8001");
    h.up(10, reg.req(Method::Register, 1).no_to_tag());
    h.down(11, reg.resp(401, 1, Method::Register));
    h.up(12, reg.req(Method::Options, 2).no_to_tag());
    h.up(13, reg.req(Method::Subscribe, 3).no_to_tag());
    h.up(14, reg.req(Method::Notify, 4));
    h.up(15, reg.req(Method::Message, 5).no_to_tag());
    assert!(h.ev.is_empty());
    let s = h.tr.stats();
    assert_eq!((s.orphan_messages, s.non_call_messages, s.active_calls), (4, 6, 0));
    assert_eq!(h.tr.poll_timeout(), None);
}

#[test]
fn b2bua_legs_with_their_own_from_tags_are_two_calls() {
    let mut h = H::new();
    let leg1 = Dialog::new("same-id", "8001", "13800138000");
    let mut leg2 = leg1.clone();
    leg2.caller_tag = "pbx-leg".into();
    h.up(0, leg1.invite(1));
    h.down(5, leg2.invite(1));
    h.down(1000, leg2.r(200, 1));
    h.up(1010, leg1.r(200, 1));
    assert_eq!(h.starts().len(), 2);
    let tags: Vec<&str> = h.starts().iter().map(|s| s.from_tag.as_str()).collect();
    assert_eq!(tags, ["a", "pbx-leg"], "the From tag tells the two legs apart in the store");
    assert_eq!(h.count(|e| matches!(e, CallEvent::Answered { .. })), 2);
}

#[test]
fn ladder_is_bounded_at_500_steps() {
    let mut h = H::new();
    let d = dlg();
    answered_call_open(&mut h, &d);
    for i in 0..600 {
        h.up(11_000 + i, d.req(Method::Info, 2 + i as u32));
    }
    h.up(20_000, d.req(Method::Bye, 700));
    let r = h.one();
    assert_eq!((r.ladder.len(), r.ladder_dropped), (MAX_LADDER, 4 + 600 + 1 - 500));
    assert_eq!(h.tr.stats().ladder_steps_dropped, 105);
    assert_eq!(r.end_reason, EndReason::CallerBye, "steps beyond the cap still count");
}

#[test]
fn timer_contract_holds_at_the_end_of_time() {
    let mut h = H::new();
    let d = dlg();
    answered_call_open(&mut h, &d);
    h.up(10_020, Dialog::new("x", "8001", "8002").invite(1));
    // handle_timeout(Ts::MAX) ends and frees everything; nothing is left to poll.
    h.timeout(Ts::MAX);
    assert_eq!(h.records().len(), 2);
    assert_eq!(h.tr.poll_timeout(), None);
    assert_eq!(h.tr.index_sizes(), (0, 0, 0, 0));
}

#[test]
fn handle_timeout_leaves_the_next_deadline_after_now() {
    let mut h = H::with_timeout(10);
    let d = dlg();
    answered_call_open(&mut h, &d);
    // Call it at arbitrary times, not only at deadlines.
    for ms in [10_500, 20_009, 20_010, 20_011, 33_000, 60_000, 61_000, 100_000] {
        h.timeout(t(ms));
    }
    assert_eq!(h.one().ended_at, t(10_010));
}

#[test]
fn hostile_timestamps_do_not_panic() {
    for (a, b, c, e) in [
        (Ts(i64::MIN), Ts(i64::MIN + 1), Ts(i64::MAX - 1), Ts::MAX),
        (Ts(0), Ts(i64::MAX), Ts(i64::MAX), Ts::MAX),
        (Ts(i64::MAX), Ts(i64::MIN), Ts(0), Ts(i64::MIN)),
    ] {
        let mut h = H::new();
        let d = dlg();
        h.sip_at(a, PHONE, PBX, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
        h.sip_at(b, PBX, PHONE, d.r(180, 1));
        h.sip_at(c, PBX, PHONE, d.r(200, 1).sdp(sdp("10.0.0.3", 5000)));
        h.rtp_at(c, CALLER_RTP, CALLEE_RTP, rtp(8, 1, 1));
        h.sip_at(e, PHONE, PBX, d.req(Method::Bye, 2));
        h.tr.end_all(e, EndReason::CaptureEnded, &mut h.ev);
        h.timeout(Ts::MAX);
        let r = h.one();
        assert!(r.ended_at >= r.started_at && r.ring_ms >= 0 && r.talk_ms >= 0);
        assert_eq!(h.tr.index_sizes(), (0, 0, 0, 0));
    }
}

/// Real data: SIPp's RFC 2833 sample (digit 1: seven progress packets, the end packet three
/// times with the same sequence number), bound to a call announcing its destination.
#[test]
fn real_capture_dtmf_digit_1_once() {
    let pkts = read_udp_pcap("sipp-dtmf-2833-digit1.pcap");
    assert_eq!(pkts.len(), 10);
    let mut h = H::new();
    let d = dlg();
    let first = Ts(pkts[0].ts_us);
    h.sip_at(first - Dur::from_secs(5), PHONE, PBX, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
    h.sip_at(first - Dur::from_secs(1), PBX, PHONE, d.r(200, 1).sdp(sdp("192.168.0.1", 10000)));
    for p in &pkts {
        let b = h.rtp_at(Ts(p.ts_us), &p.src.to_string(), &p.dst.to_string(), rtp_of(&p.payload)).unwrap();
        assert_eq!((b.leg, b.kind.clone()), (Leg::CallerToCallee, MediaKind::Dtmf { clock_rate: 8000 }));
    }
    let end = Ts(pkts[9].ts_us + 1000);
    h.sip_at(end, PHONE, PBX, d.req(Method::Bye, 2));
    assert_eq!(h.count(|e| matches!(e, CallEvent::Dtmf { digit: '1', .. })), 1);
    let r = h.one();
    assert_eq!(r.dtmf, "1");
    // tshark reports -2 lost (the two copies); copies are not losses and not negative.
    assert_eq!((r.media_caller.packets, r.media_caller.lost), (10, 0));
}

/// Real data: SIPp's 7 s of PCMA (236 packets, 30 ms apart; tshark: 0 lost).
#[test]
fn real_capture_pcma_stream_statistics() {
    let pkts = read_udp_pcap("sipp-g711a-rtp-only.pcap");
    assert_eq!(pkts.len(), 236);
    let mut h = H::new();
    let d = dlg();
    let first = Ts(pkts[0].ts_us);
    let dst = pkts[0].dst;
    h.sip_at(first - Dur::from_secs(2), PHONE, PBX, d.invite(1).sdp(sdp(&dst.ip().to_string(), dst.port())));
    h.sip_at(first - Dur::from_secs(1), PBX, PHONE, d.r(200, 1).sdp(sdp("10.0.0.3", 5000)));
    for p in &pkts {
        let b = h.rtp_at(Ts(p.ts_us), &p.src.to_string(), &p.dst.to_string(), rtp_of(&p.payload)).unwrap();
        assert_eq!(b.leg, Leg::CalleeToCaller);
    }
    let last = Ts(pkts[235].ts_us);
    h.sip_at(last + Dur::from_millis(500), PHONE, PBX, d.req(Method::Bye, 2));
    let r = h.one();
    let m = &r.media_callee;
    assert_eq!((m.packets, m.lost, m.codecs.clone()), (236, 0, vec!["PCMA".to_string()]));
    assert_eq!((m.first_at, m.last_at), (Some(first), Some(last)));
    assert_eq!(last.since(first).as_millis(), 7050);
}

fn event_key(e: &CallEvent) -> CallKey {
    match e {
        CallEvent::Started(s) => s.key,
        CallEvent::Ringing { key, .. } | CallEvent::Answered { key, .. } | CallEvent::Dtmf { key, .. } => *key,
        CallEvent::Ended(r) => r.key,
        CallEvent::LegLinked { key, .. } => *key,
    }
}

// ---------------------------------------------------------------------------------------
// Property: random message sequences over a few dialogs keep the tracker's invariants.

#[derive(Clone, Debug)]
enum Op {
    Invite {
        d: usize,
        seq: u32,
    },
    Resp {
        d: usize,
        status: u16,
        seq: u32,
        fork: u8,
        sdp: bool,
    },
    Cancel {
        d: usize,
        seq: u32,
    },
    Ack {
        d: usize,
        seq: u32,
    },
    Bye {
        d: usize,
        by_caller: bool,
    },
    ReInvite {
        d: usize,
        port: u16,
    },
    Rtp {
        d: usize,
        to_callee: bool,
        seq: u16,
    },
    Register {
        d: usize,
    },
    /// The previous SIP message again, as a copy from another hop.
    Dup,
    Wait {
        ms: i64,
    },
    Timeout,
}

/// Any message of any dialog, in any order: the noise mixed into the plausible calls.
fn noise_op() -> impl Strategy<Value = Op> {
    let d = 0usize..3;
    prop_oneof![
        1 => (d.clone(), 1u32..4).prop_map(|(d, seq)| Op::Invite { d, seq }),
        3 => (d.clone(), prop::sample::select(vec![100u16, 180, 183, 200, 401, 407, 408, 480, 486, 487, 500, 600, 603]), 1u32..4, 0u8..2, any::<bool>())
            .prop_map(|(d, status, seq, fork, sdp)| Op::Resp { d, status, seq, fork, sdp }),
        1 => (d.clone(), 1u32..4).prop_map(|(d, seq)| Op::Cancel { d, seq }),
        1 => (d.clone(), 1u32..4).prop_map(|(d, seq)| Op::Ack { d, seq }),
        1 => (d.clone(), any::<bool>()).prop_map(|(d, by_caller)| Op::Bye { d, by_caller }),
        1 => (d.clone(), 4000u16..4003).prop_map(|(d, port)| Op::ReInvite { d, port }),
        2 => (d.clone(), any::<bool>(), 0u16..40).prop_map(|(d, to_callee, seq)| Op::Rtp { d, to_callee, seq }),
        1 => d.clone().prop_map(|d| Op::Register { d }),
        3 => Just(Op::Dup),
        2 => (0i64..40_000).prop_map(|ms| Op::Wait { ms }),
        1 => Just(Op::Timeout),
    ]
}

/// A plausible life of dialog `d`: optional challenge, provisional responses (forked,
/// repeated), then an answer with media, a failure, a CANCEL (with or without its 487, or
/// losing the race to a 200), or nothing at all.
fn call_script(d: usize) -> impl Strategy<Value = Vec<Op>> {
    let provisional = proptest::collection::vec(
        (prop::sample::select(vec![100u16, 180, 183]), 0u8..2, any::<bool>(), 0i64..9000),
        0..4,
    );
    (
        any::<bool>(),
        provisional,
        0u8..5,
        0u16..12,
        any::<bool>(),
        0u8..3,
        prop::sample::select(vec![486u16, 600, 408, 480, 403, 500, 603]),
        0i64..40_000,
    )
        .prop_map(move |(challenge, prov, outcome, rtp_n, reinvite, bye, fail, talk)| {
            let mut ops = vec![Op::Invite { d, seq: 1 }];
            let mut seq = 1;
            if challenge {
                ops.extend([Op::Resp { d, status: 407, seq, fork: 0, sdp: false }, Op::Ack { d, seq }]);
                seq = 2;
                ops.push(Op::Invite { d, seq });
            }
            for (status, fork, sdp, wait) in prov {
                ops.push(Op::Wait { ms: wait });
                ops.push(Op::Resp { d, status, seq, fork, sdp });
            }
            let answered = |ops: &mut Vec<Op>| {
                ops.extend([Op::Resp { d, status: 200, seq, fork: 0, sdp: true }, Op::Ack { d, seq }]);
                for i in 0..rtp_n {
                    ops.push(Op::Rtp { d, to_callee: i % 2 == 0, seq: i / 2 });
                }
                if reinvite {
                    ops.push(Op::ReInvite { d, port: 4002 });
                }
                ops.push(Op::Wait { ms: talk });
                if bye < 2 {
                    ops.push(Op::Bye { d, by_caller: bye == 0 });
                }
            };
            match outcome {
                0 => answered(&mut ops),
                1 => ops.push(Op::Resp { d, status: fail, seq, fork: 0, sdp: false }),
                2 => {
                    ops.push(Op::Cancel { d, seq });
                    match bye {
                        0 => ops.push(Op::Resp { d, status: 487, seq, fork: 0, sdp: false }),
                        1 => answered(&mut ops),
                        _ => {}
                    }
                }
                3 => {}
                _ => ops.push(Op::Resp { d, status: 487, seq, fork: 0, sdp: false }),
            }
            ops
        })
}

/// Three call scripts interleaved by `picks`, with noise and copies mixed in.
fn scenario() -> impl Strategy<Value = Vec<Op>> {
    (call_script(0), call_script(1), call_script(2), proptest::collection::vec((0u8..6, noise_op()), 0..60)).prop_map(
        |(a, b, c, picks)| {
            let mut scripts = [a.into_iter(), b.into_iter(), c.into_iter()];
            let mut ops = Vec::new();
            for (p, noise) in picks {
                match p {
                    0..=2 => ops.extend(scripts[usize::from(p)].next()),
                    3 => ops.push(Op::Dup),
                    _ => ops.push(noise),
                }
            }
            for s in &mut scripts {
                ops.extend(s.by_ref());
            }
            ops
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_dialogs_keep_the_invariants(ops in scenario(), timeout_s in 20i64..120) {
        let ops_dbg = ops.clone();
        let mut h = H::with_timeout(timeout_s);
        let dialogs: Vec<Dialog> = (0..3).map(|i| Dialog::new(&format!("p{i}"), "8001", &format!("800{}", i + 2))).collect();
        let caller_rtp = |d: usize| format!("10.0.1.{}:4000", d + 1);
        let callee_rtp = |d: usize| format!("10.0.2.{}:5000", d + 1);
        let mut now = 0i64;
        let mut bye_seq = 10u32;
        let mut last: Option<(Msg, bool)> = None;
        for op in ops {
            now += 7;
            let mut send = |h: &mut H, m: Msg, up: bool| {
                if up { h.up(now, m.clone()) } else { h.down(now, m.clone()) }
                last = Some((m, up));
            };
            match op {
                Op::Invite { d, seq } => {
                    let ip = format!("10.0.1.{}", d + 1);
                    send(&mut h, dialogs[d].invite(seq).sdp(sdp(&ip, 4000)), true);
                }
                Op::Resp { d, status, seq, fork, sdp: with_sdp } => {
                    let mut m = dialogs[d].r(status, seq);
                    if fork == 1 && status != 100 {
                        m = m.to_tag("fork-2");
                    }
                    if with_sdp {
                        m = m.sdp(sdp(&format!("10.0.2.{}", d + 1), 5000));
                    }
                    send(&mut h, m, false);
                }
                Op::Cancel { d, seq } => send(&mut h, dialogs[d].req(Method::Cancel, seq), true),
                Op::Ack { d, seq } => send(&mut h, dialogs[d].req(Method::Ack, seq), true),
                Op::Bye { d, by_caller } => {
                    bye_seq += 1;
                    let m = if by_caller { dialogs[d].req(Method::Bye, bye_seq) } else { dialogs[d].callee_req(Method::Bye, bye_seq) };
                    send(&mut h, m, by_caller);
                }
                Op::ReInvite { d, port } => {
                    bye_seq += 1;
                    send(&mut h, dialogs[d].req(Method::Invite, bye_seq).sdp(sdp(&format!("10.0.1.{}", d + 1), port)), true);
                }
                Op::Rtp { d, to_callee, seq } => {
                    let (src, dst) = if to_callee { (caller_rtp(d), callee_rtp(d)) } else { (callee_rtp(d), caller_rtp(d)) };
                    if let Some(b) = h.rtp(now, &src, &dst, rtp(8, seq, 1)) {
                        prop_assert_eq!(b.leg, if to_callee { Leg::CallerToCallee } else { Leg::CalleeToCaller });
                    }
                }
                Op::Register { d } => send(&mut h, dialogs[d].req(Method::Register, 1).no_to_tag(), true),
                Op::Dup => {
                    if let Some((m, up)) = last.clone() {
                        let (src, dst) = if up { (PBX, CALLEE_SIG) } else { (CALLEE_SIG, PBX) };
                        h.sip_at(t(now), src, dst, m.via("z9hG4bK-hop2"));
                    }
                }
                Op::Wait { ms } => {
                    now += ms;
                    h.run_until(t(now));
                }
                Op::Timeout => h.timeout(t(now)),
            }
            prop_assert_eq!(h.tr.active_calls(), h.tr.stats().active_calls as usize);
        }
        h.tr.end_all(t(now), EndReason::CaptureEnded, &mut h.ev);
        prop_assert_eq!(h.tr.active_calls(), 0);
        h.run_until(t(now + 40_000));
        prop_assert_eq!(h.tr.index_sizes(), (0, 0, 0, 0));
        prop_assert_eq!(h.tr.poll_timeout(), None);

        // One Started, then its events, then one Ended, per call.
        let mut state: HashMap<CallKey, u8> = HashMap::new(); // 1 started, 2 ended
        for e in &h.ev {
            let (key, s) = match e {
                CallEvent::Started(s) => (s.key, 1),
                CallEvent::Ringing { key, .. } | CallEvent::Answered { key, .. } | CallEvent::Dtmf { key, .. } => (*key, 0),
                CallEvent::Ended(r) => (r.key, 2),
                CallEvent::LegLinked { key, .. } => (*key, 0),
            };
            let cur = state.get(&key).copied();
            match s {
                1 => prop_assert_eq!(cur, None, "second Started for {:?}", key),
                0 => prop_assert_eq!(cur, Some(1), "event outside its call {:?}", e),
                _ => prop_assert_eq!(cur, Some(1), "Ended without Started, or twice {:?}", key),
            }
            if s != 0 {
                state.insert(key, s);
            }
        }
        prop_assert!(state.values().all(|&s| s == 2), "a call never ended");
        let first = |key: CallKey, f: &dyn Fn(&CallEvent) -> Option<Ts>| -> (usize, Option<Ts>) {
            let hits: Vec<Ts> = h.ev.iter().filter(|e| event_key(e) == key).filter_map(f).collect();
            (hits.len(), hits.first().copied())
        };
        if std::env::var_os("TRACK_PROP_DEBUG").is_some() {
            let recs = h.records();
            eprintln!("ops {:?}", ops_dbg);
            eprintln!("calls {} answered {} ringing {} reasons {:?}", recs.len(), recs.iter().filter(|r| r.answered).count(),
                recs.iter().filter(|r| r.ringing_at.is_some()).count(), recs.iter().map(|r| r.end_reason.as_str()).collect::<Vec<_>>());
        }
        for r in h.records() {
            let ringing = first(r.key, &|e| match e { CallEvent::Ringing { at, .. } => Some(*at), _ => None });
            let answered = first(r.key, &|e| match e { CallEvent::Answered { at, .. } => Some(*at), _ => None });
            prop_assert_eq!(ringing, (usize::from(r.ringing_at.is_some()), r.ringing_at));
            prop_assert_eq!(answered, (usize::from(r.answered_at.is_some()), r.answered_at));
            // Packet times only grow here, so the milestones are in order.
            let mut milestones = vec![r.started_at];
            milestones.extend(r.ringing_at);
            milestones.extend(r.answered_at);
            milestones.push(r.ended_at);
            prop_assert!(milestones.windows(2).all(|w| w[0] <= w[1]), "milestones out of order: {:?}", milestones);
            prop_assert!(r.ended_at >= r.started_at);
            prop_assert!(r.ring_ms >= 0 && r.talk_ms >= 0);
            prop_assert_eq!(r.rings, rings_for(r.ringing_at.map(|_| r.ring_ms), 5000));
            prop_assert_eq!(r.answered, r.answered_at.is_some());
            if let Some(a) = r.answered_at {
                prop_assert!(a <= r.ended_at || r.talk_ms == 0);
                prop_assert_eq!(r.sip_status.map(|s| (200..300).contains(&s)), Some(true));
            }
            if r.ringing_at.is_none() {
                prop_assert_eq!((r.ring_ms, r.rings), (0, 0));
            }
        }
    }
}

/// A media relay in the path of one dialog (rtpengine behind a proxy): the caller's
/// packets to the relay and the relay's copies to the callee carry the same SSRC and
/// sequence numbers; they are counted once, and the copies are bound as not primary.
/// Latching (a new flow with new packets) is taken at once, as before.
#[test]
fn relayed_copies_in_one_dialog_are_counted_once() {
    let mut h = H::new();
    let d = dlg();
    let relay_a = "10.0.0.9:40000"; // the relay's port toward the caller
    let relay_b = "10.0.0.9:40002"; // its port toward the callee
    h.up(0, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
    // The callee sees the relay's offer; the caller sees the relay's answer (another hop).
    h.sip_at(t(5), PBX, CALLEE_SIG, d.invite(1).sdp(sdp("10.0.0.9", 40002)).via("z9hG4bK-hop2"));
    h.sip_at(t(1000), CALLEE_SIG, PBX, d.r(200, 1).sdp(sdp("10.0.0.3", 5000)));
    h.down(1001, d.r(200, 1).sdp(sdp("10.0.0.9", 40000)));
    for i in 0..50u16 {
        let at = 2000 + i64::from(i) * 20;
        let a = h.rtp(at, CALLER_RTP, relay_a, rtp(8, i, 7)).unwrap();
        assert!(a.primary && a.leg == Leg::CallerToCallee);
        let copy = h.rtp(at + 1, relay_b, CALLEE_RTP, rtp(8, i, 7)).unwrap();
        assert!(!copy.primary, "packet {i}: the relay's copy");
    }
    // The relay goes away (a re-INVITE moved the media): after the window the relay's
    // flow is the one taken.
    let late = h.rtp(2000 + 50 * 20 + 300, relay_b, CALLEE_RTP, rtp(8, 50, 7)).unwrap();
    assert!(late.primary);
    h.up(5000, d.req(Method::Bye, 2));
    let r = h.one();
    assert_eq!(r.media_caller.packets, 51);
    assert_eq!(h.tr.stats().relayed_rtp, 50);
}

/// An INVITE flood (never answered) times out; the call table's slab then gives its
/// memory back instead of keeping room for the peak.
#[test]
fn the_call_table_gives_its_memory_back_once_a_flood_has_gone() {
    let mut h = H::new();
    for i in 0..3000 {
        h.up(i, Dialog::new(&format!("flood-{i}@10.0.0.1"), "8001", "13800138000").invite(1));
    }
    assert_eq!(h.tr.active_calls(), 3000);
    assert!(h.tr.calls.slots_held() >= 3000);
    h.drain_all(t(3_600_000));
    assert_eq!((h.tr.active_calls(), h.tr.calls.len()), (0, 0));
    assert_eq!(h.tr.calls.slots_held(), 0, "the slab was given back");
    // And it works as before afterwards.
    answered_call(&mut h, &dlg(), 2000, 5000);
    assert_eq!(h.tr.active_calls(), 0);
}

/// Two forks answer the INVITE (RFC 3261 §13.2.2.4): the caller ACKs both and hangs up the
/// one it does not keep at once. The answer is the fork kept, that BYE does not end the
/// call, and the talk time runs to the real hang-up.
#[test]
fn of_two_answering_forks_the_one_kept_is_the_answer() {
    for first_kept in [true, false] {
        let mut h = H::new();
        let d = dlg();
        h.up(0, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
        h.down(1000, d.r(180, 1).to_tag("fork-1"));
        h.down(6000, d.r(200, 1).to_tag("fork-1").sdp(sdp("10.0.0.5", 6000)));
        h.down(6050, d.r(200, 1).to_tag("fork-2").sdp(sdp("10.0.0.6", 6000)));
        h.up(6060, d.req(Method::Ack, 1).to_tag("fork-1"));
        h.up(6070, d.req(Method::Ack, 1).to_tag("fork-2"));
        let (dropped, kept) = if first_kept { ("fork-2", "fork-1") } else { ("fork-1", "fork-2") };
        h.up(6080, d.req(Method::Bye, 2).to_tag(dropped));
        assert!(h.records().is_empty(), "the extra fork's BYE ends nothing");
        h.up(20_000, d.req(Method::Bye, 3).to_tag(kept));
        let r = h.one();
        assert_eq!(r.to_tag.as_deref(), Some(kept));
        // Answered when the first 2xx came, over at the real hang-up.
        assert_eq!((r.answered_at, r.talk_ms), (Some(t(6000)), 14_000));
        assert_eq!(r.end_reason, EndReason::CallerBye);
        h.drain_all(t(200_000));
    }
}

/// Two forks answer and the caller ACKs only the second: the ACKed one is the answer.
#[test]
fn of_two_answering_forks_the_acked_one_is_the_answer() {
    let mut h = H::new();
    let d = dlg();
    h.up(0, d.invite(1).sdp(sdp("10.0.0.1", 4000)));
    h.down(6000, d.r(200, 1).to_tag("fork-1").sdp(sdp("10.0.0.5", 6000)));
    h.down(6500, d.r(200, 1).to_tag("fork-2").sdp(sdp("10.0.0.6", 6000)));
    h.up(6510, d.req(Method::Ack, 1).to_tag("fork-2"));
    h.up(16_500, d.req(Method::Bye, 2).to_tag("fork-2"));
    let r = h.one();
    assert_eq!(r.to_tag.as_deref(), Some("fork-2"));
    assert_eq!((r.answered_at, r.talk_ms), (Some(t(6000)), 10_500));
    h.drain_all(t(200_000));
}

/// Past `max_calls` the oldest tracked call goes to make room: a lingering one without a
/// second `Ended`, one in progress (here ringing) with an `Ended` that says `evicted`;
/// every eviction is counted, the newest calls stay, and nothing is left behind.
#[test]
fn a_full_call_table_evicts_the_oldest_call() {
    let mut h = H::with_config(TrackConfig { max_calls: 3, ..cfg(7200) });
    // A reload keeps the cap the tracker started with ([capture] is restart-only).
    h.tr.set_config(cfg(7200));
    let d: Vec<Dialog> = (0..6).map(|i| Dialog::new(&format!("c{i}@10.0.0.1"), "8001", "13800138000")).collect();
    // c0 ends (BYE) and lingers; c1 rings; c2 is a bare INVITE.
    answered_call(&mut h, &d[0], 100, 200);
    h.up(2000, d[1].invite(1));
    h.down(2100, d[1].r(180, 1).to_tag("t1"));
    h.up(3000, d[2].invite(1));
    assert_eq!((h.tr.calls.len(), h.tr.active_calls(), h.records().len()), (3, 2, 1));
    // c3 evicts the lingering c0: no event, counted.
    h.up(4000, d[3].invite(1));
    assert_eq!((h.tr.calls.len(), h.records().len(), h.tr.stats().evicted_calls), (3, 1, 1));
    // c4 evicts the ringing c1, which ends `evicted` at c4's time; c5 evicts c2 alike.
    h.up(5000, d[4].invite(1));
    h.up(6000, d[5].invite(1));
    let recs = h.records();
    assert_eq!(recs.len(), 3);
    assert_eq!(
        (recs[1].call_id.as_str(), recs[1].end_reason, recs[1].ended_at),
        ("c1@10.0.0.1", EndReason::Evicted, t(5000))
    );
    assert!(recs[1].ringing_at.is_some());
    assert_eq!((recs[2].call_id.as_str(), recs[2].end_reason), ("c2@10.0.0.1", EndReason::Evicted));
    assert_eq!((h.tr.stats().evicted_calls, h.tr.calls.len(), h.tr.active_calls()), (3, 3, 3));
    assert_eq!(h.tr.evictions(), (3, 0));
    // The evicted dialogs are forgotten: their BYE is an orphan; the newest calls go on.
    h.up(7000, d[1].req(Method::Bye, 2).to_tag("t1"));
    assert_eq!(h.tr.stats().orphan_messages, 1);
    h.down(7100, d[5].r(486, 1).to_tag("t5"));
    assert_eq!(h.records().last().map(|r| (r.call_id.as_str(), r.end_reason)), Some(("c5@10.0.0.1", EndReason::Busy)));
    h.drain_all(t(10_000));
    assert_eq!(h.count(|e| matches!(e, CallEvent::Started(_))), 6);
    assert_eq!(h.count(|e| matches!(e, CallEvent::Ended(_))), 6, "one Ended per Started");
}

/// The maps of a flood's calls are shrunk once they have gone, not kept at their peak.
#[test]
fn the_tracker_indexes_shrink_once_a_flood_has_gone() {
    let mut h = H::new();
    for i in 0..5000 {
        h.up(i, Dialog::new(&format!("flood-{i}@10.0.0.1"), "8001", "13800138000").invite(1));
    }
    let peak = (h.tr.dialogs.capacity(), h.tr.timers.capacity());
    assert!(peak.0 >= 5000 && peak.1 >= 5000, "{peak:?}");
    h.drain_all(t(3_600_000));
    let after = (h.tr.dialogs.capacity(), h.tr.timers.capacity());
    assert!(after.0 <= SHRINK_FROM && after.1 <= SHRINK_FROM, "{after:?}");
}
