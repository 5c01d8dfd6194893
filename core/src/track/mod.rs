//! Call tracking: SIP messages and RTP packets (with their packet times) → call events.
//! Owns dialogs, the call state machine, de-duplication (the same dialog seen on two hops
//! of a proxy, mirrored twice, or retransmitted is one call), authentication challenges
//! (INVITE → 401/407 → INVITE again is one call), re-INVITEs, forked and repeated 18x,
//! end reasons, media binding from SDP offer/answer, and the timer table for timeouts.
//! May use: `time`, `sip`, `rtp`, `config`. No policy, no clock: time only advances with
//! packet timestamps and `handle_timeout`.
//! Invariants: exactly one `Started` and one `Ended` per call, in that order; state is
//! bounded (ended calls linger only long enough to absorb retransmissions and late RTP,
//! then go with their index, address and timer entries).
//!
//! Layout: `call` (one call's state machine and record), `dialogs` (Call-ID + From tag →
//! call), `media_bind` (address → call/leg, payload kinds, per-leg statistics), `dtmf`
//! (RFC 4733 events → digits), `timers` (one deadline per call). This file holds the shared
//! types and `Tracker`, which routes messages and packets between them.

mod call;
mod dialogs;
mod dtmf;
pub mod link;
mod media_bind;
mod table;
mod timers;

#[cfg(test)]
mod test_msg;
#[cfg(test)]
mod tests_calls;
#[cfg(test)]
mod tests_link;

pub use link::{LegRole, LegSummary, LinkConfig, LinkKind, LinkStats, Linking};
pub use media_bind::{Encoding, MediaKind, RtpBinding};

use crate::sip::{Method, SipMsg};
use crate::time::{Dur, Ts};
use call::{Call, Ending};
use dialogs::{Dialogs, MAX_CALLS_PER_CALL_ID};
use link::{Evidence, Linker};
use media_bind::{leg_idx, Handle, Matched, MediaMap, StaticPayloads};
use serde::Serialize;
use std::net::SocketAddr;
use table::CallTable;
use timers::TimerTable;

/// The engine's handle on a call while it is tracked (not stored; unique per run).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CallKey(pub u64);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From outside to one of our extensions.
    Inbound,
    /// From one of our extensions to outside.
    Outbound,
    /// Extension to extension.
    Internal,
    /// Neither end is one of our extensions (trunk to trunk, or a misconfigured plan).
    Transit,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
            Direction::Transit => "transit",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    CallerBye,
    CalleeBye,
    Cancelled,
    Busy,
    Rejected,
    NoAnswer,
    Timeout,
    CaptureEnded,
    Shutdown,
    /// Pushed out of the full call table (`[capture].max_calls`) by newer calls.
    Evicted,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerBye => "caller-bye",
            EndReason::CalleeBye => "callee-bye",
            EndReason::Cancelled => "cancelled",
            EndReason::Busy => "busy",
            EndReason::Rejected => "rejected",
            EndReason::NoAnswer => "no-answer",
            EndReason::Timeout => "timeout",
            EndReason::CaptureEnded => "capture-ended",
            EndReason::Shutdown => "shutdown",
            EndReason::Evicted => "evicted",
        }
    }
}

/// Which way a media packet flows, relative to the call.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leg {
    /// Caller → callee: the left channel of a recording.
    CallerToCallee,
    /// Callee → caller: the right channel.
    CalleeToCaller,
}

/// What is known of a call at its first INVITE: enough for policy to judge it at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallStart {
    pub key: CallKey,
    pub call_id: String,
    /// From tag of the first INVITE (empty if it had none): with the Call-ID and the start,
    /// the call's identity in the store (two callers may send the same Call-ID).
    pub from_tag: String,
    pub at: Ts,
    /// From user (or P-Asserted-Identity user when From is anonymous).
    pub caller: String,
    pub caller_display: Option<String>,
    /// To user.
    pub callee: String,
    /// Request-URI user of the first INVITE: the digits as dialled.
    pub dialled: String,
    /// Its host when that user is a name (`sip:alice@pbx.example`): policy classes the
    /// call by `[site].domains`.
    pub dialled_domain: Option<String>,
    pub direction: Direction,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// One SIP message of a call, for the ladder diagram and for explaining figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SipStep {
    pub at: Ts,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// "INVITE", "180 Ringing", ...
    pub label: String,
    pub cseq: String,
    /// Retransmission or a copy seen on another hop (shown greyed on the ladder).
    pub duplicate: bool,
}

/// Media statistics per direction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MediaStats {
    /// Encoding names seen ("PCMA", ...), from SDP rtpmap or static payload types.
    pub codecs: Vec<String>,
    pub packets: u64,
    /// Expected minus received, by extended sequence numbers (never negative).
    pub lost: u64,
    pub first_at: Option<Ts>,
    pub last_at: Option<Ts>,
}

/// The finished call, as stored. Every figure keeps the timestamps it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    pub key: CallKey,
    pub call_id: String,
    /// From tag of the first INVITE (empty if none); kept when an SBC retries a challenged
    /// INVITE with a new tag, so every copy of the traffic names the call alike.
    pub from_tag: String,
    pub caller: String,
    pub caller_display: Option<String>,
    pub callee: String,
    pub dialled: String,
    /// The Request-URI's host when `dialled` is a name (see `CallStart`).
    pub dialled_domain: Option<String>,
    /// Normalised number (policy fills it; the dialled digits until then).
    pub number: String,
    pub direction: Direction,
    /// Class name as printed ("mobile", ...); `None` until policy has classified it.
    pub class: Option<String>,
    /// The group of our extension on this call, if any.
    pub group: Option<String>,
    pub started_at: Ts,
    /// First 180, or 183 with SDP.
    pub ringing_at: Option<Ts>,
    /// 2xx to the INVITE.
    pub answered_at: Option<Ts>,
    pub ended_at: Ts,
    pub rings: u32,
    pub ring_ms: i64,
    pub talk_ms: i64,
    pub answered: bool,
    pub end_reason: EndReason,
    /// Final status of the INVITE (200, 486, 487, ...), if one was seen.
    pub sip_status: Option<u16>,
    pub cost_fen: Option<i64>,
    /// RFC 2833/4733 digits pressed, in order.
    pub dtmf: String,
    /// Media sent by the caller (leg `CallerToCallee`).
    pub media_caller: MediaStats,
    /// Media sent by the callee (leg `CalleeToCaller`).
    pub media_callee: MediaStats,
    /// Every SIP message of the call up to `MAX_LADDER` (500) steps.
    pub ladder: Vec<SipStep>,
    /// Steps beyond `MAX_LADDER` that were counted, not kept.
    pub ladder_dropped: u32,
    /// To tag of the final response to the INVITE: for an answered call, the fork that
    /// answered.
    pub to_tag: Option<String>,
    /// Who answered, the legs and what linked them (`track::link`).
    pub linking: Linking,
    /// What policy decided at the call's end, with the limits it applied (`policy` fills
    /// it; default: not judged). Stored with the call, so a figure read later never
    /// depends on the config of the day it is read.
    pub judged: Judged,
}

/// The verdicts of the rules judged at a call's end, as decided then. Each part is `None`
/// when its rule did not apply to the call (nobody of ours answered, the call was not
/// answered, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Judged {
    /// ANS-1/2: an answered call that rang one of ours.
    pub answer: Option<AnswerJudged>,
    /// DUR-1/2/3: an answered call with one of ours on it.
    pub talk: Option<TalkJudged>,
    /// STA-1 "effective": an answered call, against the `effective_min_talk_s` of the
    /// call's group (the defaults without a group).
    pub effective: Option<EffectiveJudged>,
}

/// How an answered call's rings were judged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnswerJudged {
    /// "ANS-2" when the limit is the group's own `max_rings`, "ANS-1" for `[limits]`'s.
    pub rule: String,
    /// The `max_rings` applied (0: the rule was off).
    pub max_rings: u32,
    /// Answered within it (always, when it was off).
    pub within: bool,
}

/// How an answered call's talk time was judged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TalkJudged {
    /// "DUR-1" (business), "DUR-2" (personal) or "DUR-3" (internal).
    pub rule: String,
    /// The limit applied, seconds (0: the rule was off).
    pub limit_s: u32,
    /// The other party matched `[numbers].personal`.
    pub personal: bool,
    /// Talk over the limit: a long call.
    pub over: bool,
}

/// Whether an answered call counts as effective (STA-1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EffectiveJudged {
    /// The `effective_min_talk_s` applied.
    pub min_talk_s: u32,
    pub effective: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "one Started per call (not per packet); the per-packet outputs are media, not call events"
)]
pub enum CallEvent {
    Started(CallStart),
    Ringing {
        key: CallKey,
        at: Ts,
    },
    Answered {
        key: CallKey,
        at: Ts,
    },
    /// A DTMF digit (RFC 4733) seen on the call.
    Dtmf {
        key: CallKey,
        at: Ts,
        digit: char,
    },
    Ended(Box<CallRecord>),
    /// Another leg joined call `key` (a B2BUA's onward leg, a ring-group phone, a transfer
    /// or pickup): its parties may bring recording or a group into the call.
    LegLinked {
        key: CallKey,
        /// The call's first leg (its identity: Call-ID and start).
        first: Box<CallStart>,
        leg: Box<CallStart>,
    },
}

/// Tracker knobs, from `[ringing]`, `[limits]` and `[site].extensions`.
#[derive(Clone, Debug)]
pub struct TrackConfig {
    pub cycle_ms: u32,
    pub call_timeout: Dur,
    pub extensions: crate::config::ExtensionSet,
    /// Leg linking (`[site].pbx`, `correlation_headers`, ...); default: off.
    pub link: LinkConfig,
    /// Calls tracked at once (active + lingering, `[capture].max_calls`); a new call past
    /// it evicts the oldest.
    pub max_calls: usize,
}

/// `rings = floor(ring_ms / cycle_ms) + 1` when there was a ringing phase, else 0.
pub fn rings_for(ring_ms: Option<i64>, cycle_ms: u32) -> u32 {
    match ring_ms {
        Some(ms) if cycle_ms > 0 => {
            u32::try_from(ms.max(0) / i64::from(cycle_ms)).unwrap_or(u32::MAX).saturating_add(1)
        }
        _ => 0,
    }
}

/// What the tracker saw that made no call, plus the size of its state (for `/metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrackStats {
    /// Messages of no known dialog (capture started mid-call, stray BYE, unknown response).
    pub orphan_messages: u64,
    /// Messages for a call that had already ended (retransmitted BYE/200, late ACK, ...).
    pub ended_call_messages: u64,
    /// RTP packets for a call that had already ended (absorbed, not bound).
    pub late_rtp: u64,
    /// REGISTER/OPTIONS/SUBSCRIBE/NOTIFY/MESSAGE/PUBLISH outside a call, and their responses.
    pub non_call_messages: u64,
    /// Copies of messages already seen (retransmissions, mirrors, the other hop of a proxy).
    pub duplicate_messages: u64,
    /// Ladder steps not kept because a call already had `MAX_LADDER` of them.
    pub ladder_steps_dropped: u64,
    /// Initial INVITEs refused because one Call-ID already had `MAX_CALLS_PER_CALL_ID` calls.
    pub refused_calls: u64,
    /// Calls (active or lingering) evicted from the full call table, oldest first; the
    /// active ones ended `evicted`.
    pub evicted_calls: u64,
    /// Calls in progress.
    pub active_calls: u64,
    /// Ended calls still absorbing retransmissions and late RTP.
    pub lingering_calls: u64,
    /// Media addresses bound.
    pub bound_addresses: u64,
    /// Timers armed (one per tracked call).
    pub timers: u64,
    /// RTP packets of a dialog's second media flow in the same direction while the first
    /// flows: a media relay's copy of the same conversation, not counted twice.
    pub relayed_rtp: u64,
    /// INVITEs retried with a new From tag after a 401/407 (an SBC's habit), kept as one call.
    pub challenge_new_tag: u64,
    /// Leg linking.
    pub link: LinkStats,
}

/// Ladder steps kept per call; the rest are counted in `CallRecord::ladder_dropped`.
pub const MAX_LADDER: usize = 500;

/// Default of `[capture].max_calls` (`config::DEFAULT_MAX_CALLS`, where the config, which
/// sits below the tracker, can see it).
pub const MAX_CALLS: usize = crate::config::DEFAULT_MAX_CALLS;

/// What payload type `pt` carries toward `receiver`: the SDPs of the call, else the static
/// table. A leg's receiver is fixed, so the answer is cached in the leg until an SDP comes.
fn payload_kind(call: &mut Call, statics: &StaticPayloads, receiver: media_bind::Side, pt: u8) -> MediaKind {
    let leg = leg_idx(receiver.receiving_leg());
    if let Some(k) = call.legs[leg].cached_kind(pt) {
        return k.clone();
    }
    let k = match call.kind(receiver, pt) {
        Some(k) => k.clone(),
        None => statics.kind(pt),
    };
    call.legs[leg].cache_kind(pt, k.clone());
    k
}

/// Maps smaller than this (in capacity) are never shrunk: not worth a rehash.
pub(crate) const SHRINK_FROM: usize = 1024;

/// Give a map's memory back once it holds far fewer entries than it has room for (the
/// calls of a flood have gone): hash maps never shrink by themselves, and a table sized
/// for 100,000 calls kept tens of MB after they timed out. Amortised: after a shrink the
/// map must fall to an eighth again before the next one.
pub(crate) fn shrink_sparse<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    m: &mut std::collections::HashMap<K, V, S>,
) {
    if m.capacity() > SHRINK_FROM && m.len() < m.capacity() / 8 {
        m.shrink_to(m.len() * 2);
    }
}

/// A request INVITE without To tag: the start of a call (or a copy or retry of it).
fn is_initial_invite(msg: &SipMsg) -> bool {
    msg.method() == Some(&Method::Invite) && call::tag(&msg.to).is_none()
}

/// The call tracker. Feed it every SIP message and RTP packet in packet-time order.
/// Timers due at or before a packet's time are fired before the packet is used, so a
/// caller that forgets `handle_timeout` still sees the same events in the same order.
pub struct Tracker {
    cfg: TrackConfig,
    next_key: u64,
    /// Calls by slot and by key; the address map gives an RTP packet its call's slot.
    calls: CallTable,
    dialogs: Dialogs,
    media: MediaMap,
    timers: TimerTable,
    statics: StaticPayloads,
    active: usize,
    stats: TrackStats,
    link: Linker,
    /// Per-leg events waiting for the linker (kept to reuse its allocation).
    scratch: Vec<CallEvent>,
}

impl Tracker {
    pub fn new(cfg: TrackConfig) -> Tracker {
        Tracker {
            link: Linker::new(cfg.link.clone(), cfg.extensions.clone(), cfg.cycle_ms),
            scratch: Vec::new(),
            cfg,
            next_key: 1,
            calls: CallTable::default(),
            dialogs: Dialogs::default(),
            media: MediaMap::default(),
            timers: TimerTable::default(),
            statics: StaticPayloads::new(),
            active: 0,
            stats: TrackStats::default(),
        }
    }

    /// Replace the knobs (config reload). Calls in progress keep their direction; a new
    /// `call_timeout` applies to every call from now on. The memory caps stay as started:
    /// they come from `[capture]`, which takes effect only after a restart.
    pub fn set_config(&mut self, mut cfg: TrackConfig) {
        cfg.max_calls = self.cfg.max_calls;
        cfg.link.max_pending = self.cfg.link.max_pending;
        self.link.set_config(cfg.link.clone(), cfg.extensions.clone(), cfg.cycle_ms);
        self.cfg = cfg;
        for call in self.calls.iter() {
            self.timers.set(call.key, Some(call.deadline(self.cfg.call_timeout)));
        }
    }

    pub fn on_sip(&mut self, at: Ts, src: SocketAddr, dst: SocketAddr, msg: &SipMsg, out: &mut Vec<CallEvent>) {
        self.on_sip_hep(at, src, dst, msg, None, out);
    }

    /// `on_sip` for a message that came in HEP with a correlation id (chunk 17).
    pub fn on_sip_hep(
        &mut self,
        at: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &SipMsg,
        hep_correlation: Option<&[u8]>,
        out: &mut Vec<CallEvent>,
    ) {
        self.through_linker(out, |t, legs| t.leg_sip(at, src, dst, msg, hep_correlation, legs));
    }

    /// Run `f` on the per-leg (per-dialog) events, then let the linker make them per-call.
    fn through_linker<R>(
        &mut self,
        out: &mut Vec<CallEvent>,
        f: impl FnOnce(&mut Self, &mut Vec<CallEvent>) -> R,
    ) -> R {
        let mut legs = std::mem::take(&mut self.scratch);
        let r = f(self, &mut legs);
        self.link.process(&mut legs, out);
        self.scratch = legs;
        r
    }

    fn leg_sip(
        &mut self,
        at: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &SipMsg,
        hep: Option<&[u8]>,
        out: &mut Vec<CallEvent>,
    ) {
        self.catch_up(at, out);
        let from_tag = call::tag(&msg.from).unwrap_or("");
        let Some(key) = self.dialogs.find(&msg.call_id, from_tag, call::tag(&msg.to)) else {
            if is_initial_invite(msg) && self.challenge_retry(msg) {
                // Re-indexed under its new From tag: now it is found.
                return self.leg_sip(at, src, dst, msg, hep, out);
            }
            self.unknown_dialog(at, src, dst, msg, hep, out);
            return;
        };
        if msg.method() == Some(&Method::Refer) && self.link.enabled() {
            if let Some(refer_to) = msg.link_header("refer-to") {
                let (target, replaces) = crate::sip::parse_refer_to(refer_to);
                let target = target.unwrap_or_default();
                match replaces.and_then(|r| self.replaced_leg(&r)) {
                    Some(replaced) => self.link.note_attended(key, at, &target, replaced),
                    None => self.link.note_refer(key, at, &target),
                }
            }
        }
        let Some(call) = self.calls.get_mut(key) else { return };
        if call.is_ended() {
            // A lingering call never reopens: retransmitted BYE/200, ACK, late INVITE copy.
            // An initial INVITE with a higher CSeq is no copy but a new attempt (after a 3xx
            // redirect, a 422, or a challenge answered after 32 s): it is a new call, found
            // first by the index from now on.
            if is_initial_invite(msg) && msg.cseq.seq > call.invite_cseq() {
                self.unknown_dialog(at, src, dst, msg, hep, out);
            } else {
                self.stats.ended_call_messages += 1;
            }
            return;
        }
        if let Some(ending) = call.on_sip(at, src, dst, msg, &mut self.media, &mut self.stats, out) {
            self.end(key, ending, at, out);
        } else {
            self.timers.set(key, Some(call.deadline(self.cfg.call_timeout)));
        }
    }

    /// Bind an RTP packet to a call by the addresses its SDP announced (or that were seen
    /// on its packets). `None`: no call takes it (unknown addresses, or a call that has
    /// ended: those are counted in `TrackStats::late_rtp`).
    pub fn on_rtp(
        &mut self,
        at: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        pkt: &crate::rtp::RtpPacket<'_>,
        out: &mut Vec<CallEvent>,
    ) -> Option<RtpBinding> {
        self.through_linker(out, |t, legs| t.leg_rtp(at, src, dst, pkt, legs))
    }

    fn leg_rtp(
        &mut self,
        at: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        pkt: &crate::rtp::RtpPacket<'_>,
        out: &mut Vec<CallEvent>,
    ) -> Option<RtpBinding> {
        self.catch_up(at, out);
        let (owner, matched) = self.media.lookup(src, dst)?;
        let call = self.calls.at_mut(owner.slot, owner.key)?;
        // The side the packet flows to, and the far address to learn for the other side.
        let (receiver, far) = match matched {
            Matched::Receiver => (owner.side, src),
            Matched::Sender => (owner.side.other(), dst),
        };
        if call.is_ended() {
            if !self.link.call_in_progress(owner.key) {
                self.stats.late_rtp += 1;
                return None;
            }
            // A leg of a ring group or fork that ended while its call goes on (its SDP
            // named the same media as the answering leg): the packet is still the call's.
            let leg = receiver.receiving_leg();
            let kind = payload_kind(call, &self.statics, receiver, pkt.payload_type);
            let primary = self.link.media_primary(owner.key, leg);
            return Some(RtpBinding { key: self.link.call_of(owner.key), leg, kind, primary });
        }
        let far_side = match matched {
            Matched::Receiver => owner.side.other(),
            Matched::Sender => receiver,
        };
        // A side's recently recognised address is kept in the leg it sends.
        let recent = &mut call.legs[leg_idx(far_side.other().receiving_leg())].recent;
        if !call.sides[far_side.idx()].recognises(&far, recent) && !self.media.contains(&far) {
            let h = Handle { key: owner.key, slot: owner.slot };
            self.media.learn(h, far_side, far, &mut call.sides[far_side.idx()]);
        }
        let leg = receiver.receiving_leg();
        let kind = payload_kind(call, &self.statics, receiver, pkt.payload_type);
        if call.legs[leg_idx(leg)].is_relayed_copy(at, src, dst, pkt) {
            // The same conversation relayed on another hop of this dialog: not counted
            // twice, not recorded twice.
            self.stats.relayed_rtp += 1;
            return Some(RtpBinding { key: self.link.call_of(owner.key), leg, kind, primary: false });
        }
        if let Some(digit) = call.on_rtp(at, src, leg, pkt, &kind) {
            out.push(CallEvent::Dtmf { key: owner.key, at, digit });
        }
        let primary = self.link.media_primary(owner.key, leg);
        Some(RtpBinding { key: self.link.call_of(owner.key), leg, kind, primary })
    }

    /// Fire every timer due at or before `now`. Afterwards `poll_timeout` is later than
    /// `now` (or `None`).
    pub fn handle_timeout(&mut self, now: Ts, out: &mut Vec<CallEvent>) {
        self.through_linker(out, |t, legs| t.leg_timeout(now, legs));
    }

    fn leg_timeout(&mut self, now: Ts, out: &mut Vec<CallEvent>) {
        while let Some((_, key)) = self.timers.pop_due(now) {
            let Some(call) = self.calls.get(key) else { continue };
            if call.is_ended() {
                if call.deadline(self.cfg.call_timeout) <= now {
                    self.free(key);
                } else {
                    self.timers.set(key, Some(call.deadline(self.cfg.call_timeout)));
                }
                continue;
            }
            match call.on_timer(now, self.cfg.call_timeout) {
                Some(ending) => self.end(key, ending, now, out),
                // Active since the deadline was armed: re-arm from the real last activity.
                None => self.timers.set(key, Some(call.deadline(self.cfg.call_timeout))),
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Ts> {
        self.timers.next()
    }

    /// End every call in progress with `reason` at `now` (capture-ended, shutdown), in
    /// the order they started. A call whose CANCEL was seen ends `cancelled` at the CANCEL.
    pub fn end_all(&mut self, now: Ts, reason: EndReason, out: &mut Vec<CallEvent>) {
        self.through_linker(out, |t, legs| t.leg_end_all(now, reason, legs));
    }

    fn leg_end_all(&mut self, now: Ts, reason: EndReason, out: &mut Vec<CallEvent>) {
        // Timeouts already due end as timeouts, not as `reason`.
        self.catch_up(now, out);
        let mut keys: Vec<CallKey> = self.calls.iter().filter(|c| !c.is_ended()).map(|c| c.key).collect();
        keys.sort_unstable();
        for key in keys {
            if let Some(call) = self.calls.get(key) {
                let ending = call.ending_at_shutdown(now, reason);
                self.end(key, ending, now, out);
            }
        }
    }

    pub fn active_calls(&self) -> usize {
        self.active
    }

    /// Calls tracked (in progress or lingering): what holds the tracker's memory.
    pub fn tracked_calls(&self) -> usize {
        self.calls.len()
    }

    /// RTP packets that arrived for calls already ended (cheap, for the engine's counters).
    pub fn late_rtp(&self) -> u64 {
        self.stats.late_rtp
    }

    pub fn stats(&self) -> TrackStats {
        TrackStats {
            active_calls: self.active as u64,
            lingering_calls: (self.calls.len() - self.active) as u64,
            bound_addresses: self.media.len() as u64,
            timers: self.timers.len() as u64,
            link: self.link.stats(),
            ..self.stats.clone()
        }
    }

    /// Run the timers due at or before `at`, each at its own due time (as the driver does).
    fn catch_up(&mut self, at: Ts, out: &mut Vec<CallEvent>) {
        while let Some(due) = self.timers.next().filter(|&d| d <= at) {
            self.leg_timeout(due, out);
        }
    }

    /// A message that matches no tracked call: a new call, or counted.
    fn unknown_dialog(
        &mut self,
        at: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &SipMsg,
        hep: Option<&[u8]>,
        out: &mut Vec<CallEvent>,
    ) {
        let method = msg.method().unwrap_or(&msg.cseq.method);
        if is_initial_invite(msg) {
            if self.dialogs.calls_with(&msg.call_id) >= MAX_CALLS_PER_CALL_ID {
                self.stats.refused_calls += 1;
                return;
            }
            while self.calls.len() >= self.cfg.max_calls.max(1) {
                if !self.evict_oldest(at, out) {
                    break;
                }
            }
            let key = CallKey(self.next_key);
            self.next_key += 1;
            let h = Handle { key, slot: self.calls.vacant() };
            let (call, start) = Call::start(h, at, src, dst, msg, &self.cfg, &mut self.media);
            if self.link.enabled() {
                let ev = self.evidence(msg, hep);
                self.link.note_evidence(key, ev);
            }
            out.push(CallEvent::Started(start));
            self.dialogs.insert(&call.call_id, &call.caller_tag, key);
            self.timers.set(key, Some(call.deadline(self.cfg.call_timeout)));
            self.calls.insert(call);
            self.active += 1;
        } else if matches!(
            method,
            Method::Register | Method::Options | Method::Subscribe | Method::Notify | Method::Message | Method::Publish
        ) {
            self.stats.non_call_messages += 1;
        } else {
            self.stats.orphan_messages += 1;
        }
    }

    /// What a new leg's INVITE says about the call it belongs to.
    fn evidence(&self, msg: &SipMsg, hep: Option<&[u8]>) -> Evidence {
        let headers = self
            .link
            .headers()
            .iter()
            .flat_map(|h| msg.link_headers.iter().filter(move |(n, _)| n == h).map(|(_, v)| v.trim().to_string()))
            .filter(|v| !v.is_empty())
            .collect();
        let session_ids = msg.link_header("session-id").map(link::session_uuids).unwrap_or_default();
        let hep = hep.map(|h| String::from_utf8_lossy(h).trim().to_string()).filter(|h| !h.is_empty());
        let replaces =
            msg.link_header("replaces").and_then(crate::sip::parse_replaces).and_then(|r| self.replaced_leg(&r));
        Evidence { headers, session_ids, hep, replaces }
    }

    /// The tracked leg a Replaces names.
    fn replaced_leg(&self, r: &crate::sip::Replaces) -> Option<CallKey> {
        self.dialogs.find(&r.call_id, &r.from_tag, r.to_tag.as_deref())
    }

    /// An initial INVITE under a Call-ID whose call was challenged (401/407) and waits
    /// for its retry, with a new From tag: some SBCs and trunks retry that way. The call
    /// takes the new tag, so the retry continues it instead of making a phantom call.
    fn challenge_retry(&mut self, msg: &SipMsg) -> bool {
        let Some(new_tag) = call::tag(&msg.from) else { return false };
        let Some(key) = self.dialogs.challenged(&msg.call_id, |k| self.calls.get(k).is_some_and(Call::awaits_retry))
        else {
            return false;
        };
        let Some(call) = self.calls.get_mut(key) else { return false };
        call.take_new_tag(new_tag);
        self.dialogs.insert(&msg.call_id, new_tag, key);
        self.stats.challenge_new_tag += 1;
        true
    }

    /// End an active call: emit its record and let it linger.
    fn end(&mut self, key: CallKey, ending: Ending, now: Ts, out: &mut Vec<CallEvent>) {
        let Some(call) = self.calls.get_mut(key) else { return };
        if call.is_ended() {
            return;
        }
        let rec = call.finish(ending, now, self.cfg.cycle_ms);
        self.media.retire(key, &call.sides);
        self.active = self.active.saturating_sub(1);
        self.timers.set(key, Some(call.deadline(self.cfg.call_timeout)));
        out.push(CallEvent::Ended(Box::new(rec)));
    }

    /// Make room in the full call table: forget the oldest tracked call. One in progress
    /// first ends `evicted` (or cancelled/rejected, as at shutdown), so every `Started`
    /// still gets its `Ended` and nothing downstream waits for it. `false`: table empty.
    fn evict_oldest(&mut self, now: Ts, out: &mut Vec<CallEvent>) -> bool {
        let Some(key) = self.calls.oldest() else { return false };
        if let Some(call) = self.calls.get(key).filter(|c| !c.is_ended()) {
            let ending = call.ending_at_shutdown(now, EndReason::Evicted);
            self.end(key, ending, now, out);
        }
        self.free(key);
        self.stats.evicted_calls += 1;
        true
    }

    /// Forget an ended call and everything that points to it.
    fn free(&mut self, key: CallKey) {
        self.timers.set(key, None);
        if let Some(mut call) = self.calls.remove(key) {
            self.dialogs.remove(&call.call_id, key);
            self.media.release(key, &mut call.sides);
        }
        self.dialogs.shrink();
        self.timers.shrink();
        self.media.shrink();
        self.link.shrink();
    }

    /// (calls evicted from the full call table, arriving legs evicted from the linker's
    /// full candidate table), cheap, for the engine's counters.
    pub fn evictions(&self) -> (u64, u64) {
        (self.stats.evicted_calls, self.link.evicted())
    }

    #[cfg(test)]
    fn index_sizes(&self) -> (usize, usize, usize, usize) {
        (self.calls.len(), self.dialogs.len(), self.media.len(), self.timers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_formula() {
        assert_eq!(rings_for(None, 5000), 0);
        assert_eq!(rings_for(Some(0), 5000), 1);
        assert_eq!(rings_for(Some(4999), 5000), 1);
        assert_eq!(rings_for(Some(7000), 5000), 2);
        assert_eq!(rings_for(Some(12000), 5000), 3);
        assert_eq!(rings_for(Some(17000), 5000), 4);
        assert_eq!(rings_for(Some(-5), 5000), 1);
        assert_eq!(rings_for(Some(7000), 0), 0);
        assert_eq!(rings_for(Some(i64::MAX), 1), u32::MAX);
    }
}
