//! One call's state machine: from its first INVITE to its record.
//! Owns the INVITE transaction (auth retries by CSeq, CANCEL, provisional and final
//! responses), ringing, answer, end reasons and their times, de-duplication of messages
//! seen more than once, the ladder, and the per-leg media.
//! May use: `sip` (messages), `time`, and the tracker's `media_bind`. Invariants: every
//! figure comes from the first sighting of the message that decides it (later copies only
//! go on the ladder as duplicates); `finish` runs once and the call never changes after it;
//! ended_at >= started_at, ring_ms >= 0, talk_ms >= 0.

use super::media_bind::{leg_idx, Handle, LegMedia, MediaKind, MediaMap, Side, SideMedia};
use super::{
    rings_for, CallEvent, CallKey, CallRecord, CallStart, Direction, EndReason, Leg, SipStep, TrackConfig, TrackStats,
    MAX_LADDER,
};
use crate::rtp::RtpPacket;
use crate::sip::{Method, NameAddr, SipMsg, StartLine};
use crate::time::{Dur, Ts};
use std::collections::HashSet;
use std::net::SocketAddr;

/// RFC 3261 timer B/F (64·T1): an INVITE with no answer, a CANCEL with no final response,
/// or a challenge with no retry is over after this.
pub(crate) const TXN_TIMEOUT: Dur = Dur::from_secs(32);
/// How long a challenged INVITE (401/407) waits for its retry before the call is over as
/// rejected. Longer than a transaction: a phone that asks its user for credentials
/// retries only when they are typed (Wireshark's classic sample retries 17–51 s later).
/// The record still ends at the challenge; this only bounds how late a retry is the same
/// call.
pub(crate) const AUTH_RETRY_WINDOW: Dur = Dur::from_secs(180);
/// How long an ended call stays to absorb retransmissions and late RTP.
pub(crate) const LINGER: Dur = Dur::from_secs(32);
/// Distinct messages remembered for de-duplication (beyond it copies count as new on the
/// ladder, which is capped anyway; figures are first-time-only by state, not by this set).
const MAX_SEEN: usize = 1024;
/// A caller answered by two forks hangs up the one it does not keep within this of the
/// other's 2xx; a BYE later is the end of the call.
const FORK_HANGUP_AT_ONCE: Dur = Dur::from_secs(2);
/// DTMF digits kept per call.
const MAX_DTMF: usize = 256;

/// What makes two sightings "the same message": a retransmission, a mirror copy or the
/// other hop of a proxy keep method/status, CSeq, the tags and the direction, while
/// addresses, Vias and the Request-URI may change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct MsgId {
    /// 0 for requests.
    status: u16,
    method: Method,
    seq: u32,
    /// The request (or the request answered) was the caller's.
    by_caller: bool,
    to_tag: Option<String>,
}

/// How and when a call ends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ending {
    pub at: Ts,
    pub reason: EndReason,
}

/// A tag as written, with an empty tag the same as none.
pub(crate) fn tag(na: &NameAddr) -> Option<&str> {
    na.tag.as_deref().filter(|t| !t.is_empty())
}

/// Whole milliseconds, rounded to nearest like `Dur::as_millis`, never negative, and
/// saturating where `as_millis` would overflow on a span near `i64::MAX` (hostile stamps).
fn millis(d: Dur) -> i64 {
    d.as_micros().max(0).saturating_add(500) / 1000
}

/// The Request-URI's host when its user part is a name (`sip:alice@pbx.example`), not a
/// number or a feature code: policy classes such a call by `[site].domains`.
fn name_domain(uri: &crate::sip::Uri) -> Option<String> {
    let user = uri.user.as_deref().unwrap_or("");
    let name = user.bytes().any(|b| !(b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'+')));
    uri.host.clone().filter(|h| name && !h.is_empty())
}

fn user(na: &NameAddr) -> &str {
    na.uri.user.as_deref().unwrap_or("")
}

/// `repr(C)`: the fields an RTP packet touches (key, end, activity, the legs' and sides'
/// inline heads) come first, so a packet reads a few adjacent cache lines of its call.
#[repr(C)]
pub(crate) struct Call {
    pub key: CallKey,
    /// Set once the call ended: when it may be freed.
    linger_until: Option<Ts>,
    /// Latest packet (SIP or RTP) of the call.
    last_activity: Ts,
    pub legs: [LegMedia; 2],
    pub sides: [SideMedia; 2],
    /// Where the tracker's call table keeps it.
    pub slot: u32,
    pub call_id: String,
    pub caller_tag: String,
    /// The first INVITE's From tag: `caller_tag` may change on an auth retry, this not.
    from_tag: String,
    started_at: Ts,
    caller: String,
    caller_display: Option<String>,
    callee: String,
    dialled: String,
    dialled_domain: Option<String>,
    direction: Direction,
    /// CSeq of the latest initial INVITE: its final response is the one that counts.
    invite_cseq: u32,
    invite_at: Ts,
    invite_responded: bool,
    /// 401/407 to the latest INVITE, waiting for a retry.
    challenge: Option<Ts>,
    cancel_at: Option<Ts>,
    ringing_at: Option<Ts>,
    answered_at: Option<Ts>,
    to_tag: Option<String>,
    final_status: Option<u16>,
    /// Other forks of the INVITE that answered too (To tag, time of their 2xx): a caller
    /// answered twice takes one and hangs up the others at once (RFC 3261 §13.2.2.4). The
    /// fork kept (`to_tag`) is the one ACKed, or the one not hung up at once; BYEs to the
    /// others do not end the call. The call was answered at the first 2xx either way.
    other_answers: Vec<(String, Ts)>,
    /// The caller ACKed the fork taken as the answer (else an ACKed other fork takes over).
    answer_acked: bool,
    seen: HashSet<MsgId>,
    ladder: Vec<SipStep>,
    ladder_dropped: u32,
    dtmf: String,
}

impl Call {
    /// A call from its first INVITE (a request INVITE without To tag).
    pub(crate) fn start(
        h: Handle,
        at: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &SipMsg,
        cfg: &TrackConfig,
        media: &mut MediaMap,
    ) -> (Call, CallStart) {
        let from_user = user(&msg.from);
        let pai = msg.p_asserted_identity.as_ref().map(user).filter(|u| !u.is_empty());
        let caller = match pai {
            Some(p) if from_user.is_empty() || from_user.eq_ignore_ascii_case("anonymous") => p,
            _ => from_user,
        }
        .to_string();
        let callee = user(&msg.to).to_string();
        let dialled = match &msg.start {
            StartLine::Request { uri, .. } => uri.user.clone().unwrap_or_default(),
            StartLine::Response { .. } => String::new(),
        };
        let dialled_domain = match &msg.start {
            StartLine::Request { uri, .. } => name_domain(uri),
            StartLine::Response { .. } => None,
        };
        let ext = &cfg.extensions;
        let direction = match (ext.contains(&caller), ext.contains(&callee) || ext.contains(&dialled)) {
            (true, true) => Direction::Internal,
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
            (false, false) => Direction::Transit,
        };
        let caller_display = msg.from.display.clone().filter(|d| !d.trim().is_empty());
        let key = h.key;
        let mut call = Call {
            key,
            slot: h.slot,
            call_id: msg.call_id.clone(),
            caller_tag: tag(&msg.from).unwrap_or("").to_string(),
            from_tag: tag(&msg.from).unwrap_or("").to_string(),
            started_at: at,
            caller,
            caller_display,
            callee,
            dialled,
            dialled_domain,
            direction,
            invite_cseq: msg.cseq.seq,
            invite_at: at,
            invite_responded: false,
            challenge: None,
            cancel_at: None,
            ringing_at: None,
            answered_at: None,
            to_tag: None,
            final_status: None,
            other_answers: Vec::new(),
            answer_acked: false,
            linger_until: None,
            last_activity: at,
            seen: HashSet::new(),
            ladder: Vec::new(),
            ladder_dropped: 0,
            dtmf: String::new(),
            legs: Default::default(),
            sides: Default::default(),
        };
        call.remember(msg, true);
        call.push_step(at, src, dst, msg, false, &mut 0);
        if let Some(sdp) = &msg.sdp {
            media.apply_sdp(h, Side::Caller, sdp, true, &mut call.sides[Side::Caller.idx()]);
        }
        let start = CallStart {
            key,
            call_id: call.call_id.clone(),
            from_tag: call.from_tag.clone(),
            at,
            caller: call.caller.clone(),
            caller_display: call.caller_display.clone(),
            callee: call.callee.clone(),
            dialled: call.dialled.clone(),
            dialled_domain: call.dialled_domain.clone(),
            direction,
            src,
            dst,
        };
        (call, start)
    }

    pub(crate) fn invite_cseq(&self) -> u32 {
        self.invite_cseq
    }

    /// Challenged (401/407), not answered, not ended: waiting for the INVITE's retry.
    pub(crate) fn awaits_retry(&self) -> bool {
        self.challenge.is_some() && self.answered_at.is_none() && !self.is_ended()
    }

    /// The retry comes with a new From tag (and so may restart its CSeq): the call's
    /// requests are from now on those with this tag, and the retry is a new transaction.
    pub(crate) fn take_new_tag(&mut self, tag: &str) {
        self.caller_tag = tag.to_string();
        self.invite_cseq = 0;
        self.seen.clear();
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.linger_until.is_some()
    }

    /// A later SIP message of this (not ended) call. Returns how it ended, if it did.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_sip(
        &mut self,
        at: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &SipMsg,
        media: &mut MediaMap,
        stats: &mut TrackStats,
        out: &mut Vec<CallEvent>,
    ) -> Option<Ending> {
        self.last_activity = self.last_activity.max(at);
        let by_caller = tag(&msg.from).unwrap_or("") == self.caller_tag;
        let fresh = self.remember(msg, by_caller);
        self.push_step(at, src, dst, msg, !fresh, &mut stats.ladder_steps_dropped);
        if let Some(sdp) = &msg.sdp {
            // SDP in the caller's requests, or in responses to the callee's, is the caller's.
            let side = if msg.is_request() == by_caller { Side::Caller } else { Side::Callee };
            let h = Handle { key: self.key, slot: self.slot };
            media.apply_sdp(h, side, sdp, fresh, &mut self.sides[side.idx()]);
            // An SDP may name payload types anew, or take addresses away: what the legs
            // cached from the SDPs is stale.
            self.legs.iter_mut().for_each(LegMedia::forget_cached);
        }
        if !fresh {
            stats.duplicate_messages += 1;
            return None;
        }
        match &msg.start {
            StartLine::Request { method, .. } => self.on_request(at, method, msg, by_caller),
            StartLine::Response { status, .. } => self.on_response(at, *status, msg, by_caller, out),
        }
    }

    fn on_request(&mut self, at: Ts, method: &Method, msg: &SipMsg, by_caller: bool) -> Option<Ending> {
        let unanswered = self.answered_at.is_none();
        match method {
            // The same INVITE again with a higher CSeq (after 401/407): the new transaction
            // is the one whose final response counts. An INVITE with a To tag is a
            // re-INVITE: only its SDP matters.
            Method::Invite => {
                if by_caller && tag(&msg.to).is_none() && unanswered && msg.cseq.seq > self.invite_cseq {
                    self.invite_cseq = msg.cseq.seq;
                    self.invite_at = at;
                    self.invite_responded = false;
                    self.challenge = None;
                    self.final_status = None;
                    self.to_tag = None;
                }
                None
            }
            Method::Cancel => {
                if by_caller && unanswered && self.cancel_at.is_none() && msg.cseq.seq == self.invite_cseq {
                    self.cancel_at = Some(at);
                }
                None
            }
            // The caller ACKs the 2xx it takes: an ACK to another fork that answered, while
            // the first one taken was never ACKed, makes that fork the answer.
            Method::Ack if by_caller && msg.cseq.seq == self.invite_cseq && !unanswered => {
                match tag(&msg.to) {
                    Some(t) if Some(t) == self.to_tag.as_deref() => self.answer_acked = true,
                    Some(t) if !self.answer_acked => {
                        if let Some(i) = self.other_answers.iter().position(|(o, _)| o == t) {
                            let (t, a) = self.other_answers.remove(i);
                            if let Some(old) = self.to_tag.take() {
                                self.other_answers.push((old, a));
                            }
                            self.to_tag = Some(t);
                            self.answer_acked = true;
                        }
                    }
                    _ => {}
                }
                None
            }
            Method::Bye => {
                // The fork this BYE is about: To tag of the caller's, From tag of the callee's.
                let fork = if by_caller { tag(&msg.to) } else { tag(&msg.from) };
                if let Some(fork) = fork.filter(|_| !self.other_answers.is_empty()) {
                    if let Some(i) = self.other_answers.iter().position(|(t, _)| t == fork) {
                        // An extra fork hung up: the call goes on with the one answering.
                        self.other_answers.remove(i);
                        return None;
                    }
                    let at_once = self.other_answers.iter().any(|(_, a)| at.since(*a) <= FORK_HANGUP_AT_ONCE);
                    if self.to_tag.as_deref() == Some(fork) && at_once {
                        // The fork taken first is hung up at once while another that
                        // answered is kept: that one is the answer (the call was answered
                        // when the first 2xx came: `answered_at` stays).
                        let (t, _) = self.other_answers.remove(0);
                        self.to_tag = Some(t);
                        return None;
                    }
                }
                Some(Ending { at, reason: if by_caller { EndReason::CallerBye } else { EndReason::CalleeBye } })
            }
            _ => None,
        }
    }

    fn on_response(
        &mut self,
        at: Ts,
        status: u16,
        msg: &SipMsg,
        by_caller: bool,
        out: &mut Vec<CallEvent>,
    ) -> Option<Ending> {
        let initial_invite = msg.cseq.method == Method::Invite && by_caller && msg.cseq.seq == self.invite_cseq;
        // Another fork answering after the first one: remembered, the answer may move to it.
        if initial_invite && self.answered_at.is_some() && (200..=299).contains(&status) {
            if let Some(t) = tag(&msg.to).filter(|t| Some(*t) != self.to_tag.as_deref()) {
                if self.other_answers.len() < 4 && !self.other_answers.iter().any(|(o, _)| o == t) {
                    self.other_answers.push((t.to_string(), at));
                }
            }
            return None;
        }
        // After the answer, or after the challenge that completed this transaction, later
        // responses to it are stale copies that must not move any figure.
        if !initial_invite || self.answered_at.is_some() || self.challenge.is_some() {
            return None;
        }
        self.invite_responded = true;
        match status {
            100..=199 => {
                // Ringing: 180, or 183 with SDP (early media ringback). Not after a CANCEL.
                let rings = status == 180 || (status == 183 && msg.sdp.is_some());
                if rings && self.ringing_at.is_none() && self.cancel_at.is_none() {
                    self.ringing_at = Some(at);
                    out.push(CallEvent::Ringing { key: self.key, at });
                }
                None
            }
            200..=299 => {
                // Wins over a CANCEL seen before it: the call is answered.
                self.answered_at = Some(at);
                self.to_tag = tag(&msg.to).map(str::to_string);
                self.final_status = Some(status);
                self.challenge = None;
                out.push(CallEvent::Answered { key: self.key, at });
                None
            }
            300..=699 => {
                self.final_status = Some(status);
                self.to_tag = tag(&msg.to).map(str::to_string);
                if let Some(cancel) = self.cancel_at {
                    return Some(Ending { at: cancel, reason: EndReason::Cancelled });
                }
                let reason = match status {
                    401 | 407 => {
                        self.challenge = Some(at);
                        return None;
                    }
                    487 => EndReason::Cancelled,
                    486 | 600 => EndReason::Busy,
                    408 | 480 => EndReason::NoAnswer,
                    _ => EndReason::Rejected,
                };
                Some(Ending { at, reason })
            }
            _ => None,
        }
    }

    /// Count an RTP packet on `leg`; a DTMF digit it starts is appended and returned.
    pub(crate) fn on_rtp(
        &mut self,
        at: Ts,
        src: SocketAddr,
        leg: Leg,
        pkt: &RtpPacket<'_>,
        kind: &MediaKind,
    ) -> Option<char> {
        self.last_activity = self.last_activity.max(at);
        let digit = self.legs.get_mut(leg_idx(leg))?.on_packet(at, src, pkt, kind)?;
        if self.dtmf.len() < MAX_DTMF {
            self.dtmf.push(digit);
        }
        Some(digit)
    }

    /// The payload type as the receiving side's SDP named it, else the sender's.
    pub(crate) fn kind(&self, receiver: Side, pt: u8) -> Option<&MediaKind> {
        self.sides[receiver.idx()].kind(pt).or_else(|| self.sides[receiver.other().idx()].kind(pt))
    }

    /// The one deadline of this call.
    pub(crate) fn deadline(&self, call_timeout: Dur) -> Ts {
        if let Some(t) = self.linger_until {
            return t;
        }
        if self.answered_at.is_none() {
            if let Some(c) = self.cancel_at {
                return c + TXN_TIMEOUT;
            }
            if let Some(c) = self.challenge {
                return c + AUTH_RETRY_WINDOW;
            }
            if !self.invite_responded {
                return self.invite_at + TXN_TIMEOUT;
            }
        }
        self.last_activity + call_timeout
    }

    /// The deadline fell due at or before `now`: how the call ends, or `None` when it was
    /// active since the deadline was armed (the caller re-arms at `deadline`).
    pub(crate) fn on_timer(&self, now: Ts, call_timeout: Dur) -> Option<Ending> {
        if self.is_ended() || self.deadline(call_timeout) > now {
            return None;
        }
        if self.answered_at.is_none() {
            if let Some(at) = self.cancel_at {
                return Some(Ending { at, reason: EndReason::Cancelled });
            }
            if let Some(at) = self.challenge {
                return Some(Ending { at, reason: EndReason::Rejected });
            }
            if !self.invite_responded {
                return Some(Ending { at: self.invite_at + TXN_TIMEOUT, reason: EndReason::Timeout });
            }
        }
        Some(Ending { at: self.last_activity, reason: EndReason::Timeout })
    }

    /// How `end_all` ends this call: a CANCEL already seen still makes it cancelled, and a
    /// challenge not yet retried leaves it rejected at the challenge (nothing was in
    /// progress when the capture or the daemon stopped).
    pub(crate) fn ending_at_shutdown(&self, now: Ts, reason: EndReason) -> Ending {
        if self.answered_at.is_none() {
            if let Some(at) = self.cancel_at {
                return Ending { at, reason: EndReason::Cancelled };
            }
            if let Some(at) = self.challenge {
                return Ending { at, reason: EndReason::Rejected };
            }
        }
        Ending { at: now, reason }
    }

    /// End the call and build its record; it lingers until `now + LINGER`.
    pub(crate) fn finish(&mut self, ending: Ending, now: Ts, cycle_ms: u32) -> CallRecord {
        let ended_at = ending.at.max(self.started_at);
        let ring_end = self.answered_at.unwrap_or(ended_at);
        let ring_ms = self.ringing_at.map(|r| millis(ring_end.since(r)));
        let talk_ms = self.answered_at.map_or(0, |a| millis(ended_at.since(a)));
        self.linger_until = Some(now + LINGER);
        self.seen = HashSet::new();
        CallRecord {
            key: self.key,
            call_id: self.call_id.clone(),
            from_tag: self.from_tag.clone(),
            caller: std::mem::take(&mut self.caller),
            caller_display: self.caller_display.take(),
            callee: std::mem::take(&mut self.callee),
            number: self.dialled.clone(),
            dialled: std::mem::take(&mut self.dialled),
            dialled_domain: self.dialled_domain.take(),
            direction: self.direction,
            class: None,
            group: None,
            started_at: self.started_at,
            ringing_at: self.ringing_at,
            answered_at: self.answered_at,
            ended_at,
            rings: rings_for(ring_ms, cycle_ms),
            ring_ms: ring_ms.unwrap_or(0),
            talk_ms,
            answered: self.answered_at.is_some(),
            end_reason: ending.reason,
            sip_status: self.final_status,
            cost_fen: None,
            dtmf: std::mem::take(&mut self.dtmf),
            media_caller: self.legs[leg_idx(Leg::CallerToCallee)].finish(),
            media_callee: self.legs[leg_idx(Leg::CalleeToCaller)].finish(),
            ladder: std::mem::take(&mut self.ladder),
            ladder_dropped: self.ladder_dropped,
            to_tag: self.to_tag.take(),
            linking: super::Linking::default(),
            judged: super::Judged::default(),
        }
    }

    /// Note the message; `false` if it was seen before.
    fn remember(&mut self, msg: &SipMsg, by_caller: bool) -> bool {
        let (status, method) = match &msg.start {
            StartLine::Request { method, .. } => (0, method.clone()),
            StartLine::Response { status, .. } => (*status, msg.cseq.method.clone()),
        };
        let id = MsgId { status, method, seq: msg.cseq.seq, by_caller, to_tag: tag(&msg.to).map(str::to_string) };
        if self.seen.contains(&id) {
            return false;
        }
        if self.seen.len() < MAX_SEEN {
            self.seen.insert(id);
        }
        true
    }

    fn push_step(
        &mut self,
        at: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &SipMsg,
        duplicate: bool,
        dropped: &mut u64,
    ) {
        if self.ladder.len() >= MAX_LADDER {
            self.ladder_dropped = self.ladder_dropped.saturating_add(1);
            *dropped += 1;
            return;
        }
        let label = match &msg.start {
            StartLine::Request { method, .. } => method.as_str().to_string(),
            StartLine::Response { status, reason } if reason.trim().is_empty() => status.to_string(),
            StartLine::Response { status, reason } => format!("{status} {}", reason.trim()),
        };
        let cseq = format!("{} {}", msg.cseq.seq, msg.cseq.method.as_str());
        self.ladder.push(SipStep { at, src, dst, label, cseq, duplicate });
    }
}
