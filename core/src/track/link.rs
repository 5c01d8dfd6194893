//! Leg linking: the SIP dialogs (legs) of one call as a person lives it, made into one call.
//! A B2BUA PBX splits every call into legs with their own Call-IDs: the phone's leg to the
//! PBX and the PBX's leg onward (to the trunk, or one leg per phone of a ring group), a new
//! leg per transfer or pickup. The tracker follows each leg as a dialog; this stage sits
//! between the tracker's per-leg events and the engine, and links legs by the strongest
//! evidence present, in this order:
//! 1. `header`: a correlation header the PBX adds (`[site].correlation_headers`) whose value
//!    is another leg's Call-ID or the same header's value on another leg; and RFC 3891
//!    `Replaces`, which names the dialog a new leg takes over (attended transfer, pickup);
//! 2. `session-id`: RFC 7989 Session-ID UUIDs shared by two legs (either order);
//! 3. `hep`: HEPv3's correlation id (chunk 17) equal to another leg's Call-ID or id;
//! 4. `inferred`, for a configured PBX: a leg the PBX starts within `link_window_ms` of a
//!    leg arriving at it (or while that leg is held in an IVR/queue, or after a REFER on
//!    it), whose caller or callee number matches after normalisation; a pickup code dialled
//!    while a call rings. Ties go to the closest numbers, then the closest time; they are
//!    counted, and two legs from different callers of ours are never merged.
//!
//! The first leg of a call makes its `Started` (policy judges it at once, a premium number
//! is flagged there, once); linked legs make none. `Ringing`/`Answered` go out at the first
//! one on any leg; the call's record is made when its last leg ends (`compose`), from the
//! caller's point of view. Media of a call with several legs (an anchoring PBX relays the
//! same conversation on each) is taken from one leg per direction: the extension's leg,
//! else the first leg that carried it (`RtpBinding::primary`).
//! May use: the tracker's types, `config` (NetSet), `time`. No clock, no policy.
//! Invariants: with no PBX and no correlation header configured, every leg is its own call
//! and its record is exactly the tracker's (plus the one-leg `legs` list); a leg belongs to
//! at most one call; indexes hold only calls in progress, and the table of recent arriving
//! legs is bounded (`MAX_RECENT`, evictions counted).

use super::{rings_for, CallEvent, CallKey, CallRecord, CallStart, Direction, Leg, MediaStats, SipStep, MAX_LADDER};
use crate::config::{ExtensionSet, NetSet};
use crate::time::{Dur, Ts};
use serde::Serialize;
// Maps keyed by our own sequential `CallKey`s use foldhash (fast, looked up per RTP
// packet); the value index is keyed by strings from the wire (Call-IDs, header values), so
// it keeps std's keyed SipHash against chosen collisions.
use foldhash::{HashMap as FastMap, HashSet as FastSet};
use std::collections::{HashMap, VecDeque};

/// Default of `[capture].max_pending_legs` (`config::DEFAULT_MAX_PENDING_LEGS`).
pub const MAX_RECENT: usize = crate::config::DEFAULT_MAX_PENDING_LEGS;
/// Values (Call-IDs, header values, UUIDs) indexed per call at most.
const MAX_VALUES_PER_CALL: usize = 16;
/// Legs one call may gather; more legs stay calls of their own (counted as refused links).
pub const MAX_LEGS: usize = 32;

/// Which evidence linked a call's legs (the strongest one used on the call).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    Header,
    SessionId,
    Hep,
    Inferred,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Header => "header",
            LinkKind::SessionId => "session-id",
            LinkKind::Hep => "hep",
            LinkKind::Inferred => "inferred",
        }
    }
    pub fn parse(s: &str) -> Option<LinkKind> {
        [LinkKind::Header, LinkKind::SessionId, LinkKind::Hep, LinkKind::Inferred].into_iter().find(|k| k.as_str() == s)
    }
}

/// What one leg was to its call.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LegRole {
    /// The leg of the person who started the call.
    CallerSide,
    /// The leg toward whoever answered (or the one onward leg).
    CalleeSide,
    /// One phone of a ring group, hunt group, queue or fork that did not answer.
    Ring,
    /// A leg made by a transfer (REFER, or INVITE with Replaces after the answer).
    Transfer,
    /// A phone that picked the call up (pickup code, or Replaces of a ringing leg).
    Pickup,
}

impl LegRole {
    pub fn as_str(self) -> &'static str {
        match self {
            LegRole::CallerSide => "caller-side",
            LegRole::CalleeSide => "callee-side",
            LegRole::Ring => "ring",
            LegRole::Transfer => "transfer",
            LegRole::Pickup => "pickup",
        }
    }
}

/// One leg as the call record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegSummary {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub started_at: Ts,
    pub answered_at: Option<Ts>,
    pub ended_at: Ts,
    pub sip_status: Option<u16>,
    pub role: LegRole,
}

/// What the record says about the call's legs. For a call of one leg: that leg, no link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Linking {
    /// The extension that picked up (none for an outbound call answered outside).
    pub answered_by: Option<String>,
    /// The extension the call was last transferred to, if it was.
    pub transferred_to: Option<String>,
    /// Time the caller spent in an IVR or queue before any phone rang, ms (0 if none).
    pub wait_ms: i64,
    pub link: Option<LinkKind>,
    pub legs: Vec<LegSummary>,
}

/// Counters of the linker (for `/metrics` and the replay summary).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Legs linked to a call, by the evidence that did it.
    pub by_header: u64,
    pub by_session_id: u64,
    pub by_hep: u64,
    pub by_inference: u64,
    /// Inferred links where more than one call was a candidate (resolved by score).
    pub ambiguous: u64,
    /// A weaker kind of evidence pointed elsewhere than the one that linked the leg.
    pub conflicts: u64,
    /// Recent arriving legs evicted from the candidate table before their window ended.
    pub evicted: u64,
    /// Legs not linked because their call already had `MAX_LEGS`.
    pub refused: u64,
    /// Calls in progress with more than one leg.
    pub linked_calls: u64,
}

/// Linking knobs, from `[site]` (and `[capture].max_pending_legs`).
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub pbx: NetSet,
    /// Lower-case header names.
    pub headers: Vec<String>,
    pub window: Dur,
    pub pickup_codes: Vec<String>,
    /// Recent arriving legs kept as candidates at most (the oldest is evicted).
    pub max_pending: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            pbx: NetSet::default(),
            headers: Vec::new(),
            window: Dur::default(),
            pickup_codes: Vec::new(),
            max_pending: MAX_RECENT,
        }
    }
}

impl LinkConfig {
    /// Linking is on when the site says where its PBX is or which header ties legs.
    pub fn enabled(&self) -> bool {
        !self.pbx.is_empty() || !self.headers.is_empty()
    }
}

/// What a new leg's INVITE offers as evidence (gathered by the tracker from the message).
#[derive(Clone, Debug, Default)]
pub(crate) struct Evidence {
    /// Values of configured correlation headers.
    pub headers: Vec<String>,
    /// Session-ID UUIDs (local and remote), lower-case, the all-zero one left out.
    pub session_ids: Vec<String>,
    pub hep: Option<String>,
    /// The leg a `Replaces` header names (found by the tracker's dialog index).
    pub replaces: Option<CallKey>,
}

#[derive(Debug)]
struct LegState {
    key: CallKey,
    start: CallStart,
    role: LegRole,
    /// A phone's own leg to the PBX (not one the PBX made): its person is its caller.
    from_phone: bool,
    ringing_at: Option<Ts>,
    answered_at: Option<Ts>,
    record: Option<Box<CallRecord>>,
}

#[derive(Debug)]
struct Linked {
    /// The first leg's numbers, normalised once for inference.
    numbers: Numbers,
    /// The first leg arrived at the PBX and is still in the table of recent arrivals.
    arrived: bool,
    /// Keys this call holds in `Linker::by_number`.
    number_keys: Vec<String>,
    legs: Vec<LegState>,
    link: Option<LinkKind>,
    ringing_sent: bool,
    answered_sent: bool,
    /// The leg whose media is the call's (the extension's), when known.
    ext_leg: Option<CallKey>,
    /// Per direction (caller→callee, callee→caller), the leg whose packets are the call's.
    media_src: [Option<CallKey>; 2],
    /// The leg whose DTMF is the call's (the first to carry a digit).
    dtmf_leg: Option<CallKey>,
    /// Last REFER seen on a leg of the call: when and to whom (normalised).
    refer: Option<(Ts, String)>,
    /// Index keys this call holds in `Linker::by_value`.
    values: Vec<String>,
    /// Answered by the PBX itself before any onward leg rang (IVR, queue).
    held: bool,
}

impl LegState {
    fn new(start: &CallStart, role: LegRole, from_phone: bool) -> LegState {
        LegState {
            key: start.key,
            start: start.clone(),
            role,
            from_phone,
            ringing_at: None,
            answered_at: None,
            record: None,
        }
    }
}

impl Linked {
    fn first(&self) -> &LegState {
        &self.legs[0]
    }
    fn answered(&self) -> bool {
        self.legs.iter().any(|l| l.answered_at.is_some())
    }
    fn all_ended(&self) -> bool {
        self.legs.iter().all(|l| l.record.is_some())
    }
}

/// The linking stage. Without linking configured it is a pass-through that only adds the
/// one-leg summary to each record.
#[derive(Debug, Default)]
pub(crate) struct Linker {
    cfg: LinkConfig,
    extensions: ExtensionSet,
    /// `[ringing].cycle_ms`, for the rings of a composed record.
    cycle_ms: u32,
    /// Leg → call, for every leg of a call in progress.
    leg_call: FastMap<CallKey, CallKey>,
    calls: FastMap<CallKey, Linked>,
    /// Call-IDs, correlation values, Session-ID UUIDs and HEP ids → the call holding them.
    by_value: HashMap<String, CallKey>,
    /// Calls with a leg that arrived at the PBX, by that leg's start (inference window).
    recent: VecDeque<(Ts, CallKey)>,
    /// Calls in progress by the numbers inference compares (`number_key`): a new leg is
    /// compared with the calls that share one of its numbers, not with every recent call.
    by_number: HashMap<String, Vec<CallKey>>,
    /// Calls held by the PBX (IVR, queue) or with a recent REFER: candidates beyond the window.
    held: FastSet<CallKey>,
    /// Evidence of legs that started and were not yet linked.
    evidence: FastMap<CallKey, Evidence>,
    stats: LinkStats,
}

/// Digits of a number as the PBX may rewrite it: `+86`/`0086` and non-digits dropped.
fn canon(n: &str) -> String {
    let d: String = n.chars().filter(char::is_ascii_digit).collect();
    let d = if n.trim_start().starts_with('+') { d.strip_prefix("86").map(str::to_string).unwrap_or(d) } else { d };
    let d = d.strip_prefix("0086").map(str::to_string).unwrap_or(d);
    d
}

/// Do two numbers name the same party once prefixes (outside line, carrier, area code,
/// country) are set aside? Short numbers (extensions) must be equal; long ones may differ
/// by a prefix of the longer one.
#[cfg(test)]
fn same_number(a: &str, b: &str) -> bool {
    same_canon(&canon(a), &canon(b))
}

/// `same_number` of two numbers already in `canon` form (no allocation: it runs for every
/// candidate call of every leg the PBX starts).
fn same_canon(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.len() >= 7 && long.ends_with(short)
}

/// The index key of a number in `canon` form: numbers that `same_canon` matches share it
/// (equal, or the longer ends with the shorter of at least 7 digits: their last 7 digits).
fn number_key(n: &str) -> &str {
    n.get(n.len().saturating_sub(7)..).unwrap_or(n)
}

/// A leg's numbers in `canon` form: caller, dialled, callee.
#[derive(Debug, Default)]
struct Numbers {
    caller: String,
    dialled: String,
    callee: String,
}

impl Numbers {
    fn of(s: &CallStart) -> Numbers {
        Numbers { caller: canon(&s.caller), dialled: canon(&s.dialled), callee: canon(&s.callee) }
    }
}

/// The UUIDs of an RFC 7989 Session-ID value (`local;remote=uuid`), all-zero ones left out.
pub(crate) fn session_uuids(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut parts = v.split(';');
    let mut push = |u: &str| {
        let u = u.trim().trim_matches('"').to_ascii_lowercase();
        if u.len() >= 8
            && u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            && u.bytes().any(|b| b != b'0' && b != b'-')
        {
            out.push(u);
        }
    };
    if let Some(local) = parts.next() {
        push(local);
    }
    for p in parts {
        if let Some((k, val)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("remote") {
                push(val);
            }
        }
    }
    out
}

impl Linker {
    pub(crate) fn new(cfg: LinkConfig, extensions: ExtensionSet, cycle_ms: u32) -> Linker {
        Linker { cfg, extensions, cycle_ms, ..Linker::default() }
    }

    /// Give memory back after a flood (see `shrink_sparse`).
    pub(crate) fn shrink(&mut self) {
        super::shrink_sparse(&mut self.leg_call);
        super::shrink_sparse(&mut self.calls);
        super::shrink_sparse(&mut self.by_value);
        super::shrink_sparse(&mut self.by_number);
        super::shrink_sparse(&mut self.evidence);
        if self.recent.capacity() > super::SHRINK_FROM && self.recent.len() < self.recent.capacity() / 8 {
            self.recent.shrink_to(self.recent.len() * 2);
        }
    }

    /// Arriving legs evicted from the full candidate table (cheap, for the engine's counters).
    pub(crate) fn evicted(&self) -> u64 {
        self.stats.evicted
    }

    /// A reload: calls in progress keep their legs; new legs are linked by the new rules.
    pub(crate) fn set_config(&mut self, cfg: LinkConfig, extensions: ExtensionSet, cycle_ms: u32) {
        self.cfg = cfg;
        self.extensions = extensions;
        self.cycle_ms = cycle_ms;
    }

    pub(crate) fn enabled(&self) -> bool {
        self.cfg.enabled()
    }

    pub(crate) fn stats(&self) -> LinkStats {
        LinkStats {
            linked_calls: self.calls.values().filter(|c| c.legs.len() > 1).count() as u64,
            ..self.stats.clone()
        }
    }

    /// Entries of every index that must be empty once no call is in progress (tests).
    #[cfg(test)]
    pub(crate) fn open_calls(&self) -> usize {
        self.calls.len()
            + self.leg_call.len()
            + self.by_value.len()
            + self.held.len()
            + self.evidence.len()
            + self.by_number.len()
    }

    /// The correlation-header names to read from a new leg's INVITE.
    pub(crate) fn headers(&self) -> &[String] {
        &self.cfg.headers
    }

    /// The leg's evidence, given by the tracker before the leg's `Started` goes through.
    pub(crate) fn note_evidence(&mut self, leg: CallKey, ev: Evidence) {
        if self.enabled() {
            self.evidence.insert(leg, ev);
        }
    }

    /// A REFER on a leg: a leg the PBX starts toward `target` soon after is a transfer.
    pub(crate) fn note_refer(&mut self, leg: CallKey, at: Ts, target: &str) {
        let Some(&call) = self.leg_call.get(&leg) else { return };
        if let Some(c) = self.calls.get_mut(&call) {
            let to = canon(target);
            c.refer = Some((at, to.clone()));
            self.held.insert(call);
            self.index_number(call, &to);
        }
    }

    /// An attended transfer: a REFER on `refer_leg` whose Refer-To replaces `replaced` (the
    /// transferor's leg of its consultation call). The consultation call's other legs in
    /// progress (toward the transfer target) now carry the transferred call: they move to
    /// it as `transfer` legs; the consultation call keeps the replaced leg and ends with it.
    pub(crate) fn note_attended(&mut self, refer_leg: CallKey, at: Ts, target: &str, replaced: CallKey) {
        let (x, y) = (self.call_of(refer_leg), self.call_of(replaced));
        if x == y || !self.calls.contains_key(&x) {
            return self.note_refer(refer_leg, at, target);
        }
        let Some(consult) = self.calls.get_mut(&y) else { return self.note_refer(refer_leg, at, target) };
        let first = consult.first().key;
        let (moving, staying): (Vec<LegState>, Vec<LegState>) = std::mem::take(&mut consult.legs)
            .into_iter()
            .partition(|l| l.key != replaced && l.key != first && l.record.is_none());
        consult.legs = staying;
        for src in consult.media_src.iter_mut() {
            if src.is_some_and(|k| moving.iter().any(|l| l.key == k)) {
                *src = None;
            }
        }
        if moving.is_empty() {
            return self.note_refer(refer_leg, at, target);
        }
        let caller_ours = self.calls.get(&x).is_some_and(|c| self.extensions.contains(&c.first().start.caller));
        for mut l in moving {
            self.leg_call.insert(l.key, x);
            l.role = LegRole::Transfer;
            if let Some(c) = self.calls.get_mut(&x) {
                if !caller_ours && self.extensions.contains(&l.start.callee) && l.answered_at.is_some() {
                    c.ext_leg = Some(l.key);
                }
                c.legs.push(l);
            }
        }
        if let Some(c) = self.calls.get_mut(&x) {
            c.link = Some(c.link.map_or(LinkKind::Header, |k| k.min(LinkKind::Header)));
            c.refer = None;
        }
        self.stats.by_header += 1;
    }

    /// The call a leg belongs to (itself when unlinked or linking is off).
    pub(crate) fn call_of(&self, leg: CallKey) -> CallKey {
        if !self.enabled() {
            return leg;
        }
        self.leg_call.get(&leg).copied().unwrap_or(leg)
    }

    /// Is the leg part of a call still in progress (another leg still up)?
    pub(crate) fn call_in_progress(&self, leg: CallKey) -> bool {
        if !self.enabled() {
            return false;
        }
        self.leg_call.get(&leg).and_then(|c| self.calls.get(c)).is_some_and(|c| !c.all_ended())
    }

    /// Should an RTP packet of `leg` flowing in direction `dir` count as the call's media
    /// (recorded, DTMF taken)? Picks one leg per direction: the extension's leg as soon as
    /// it carries media, else the first leg that did.
    pub(crate) fn media_primary(&mut self, leg: CallKey, dir: Leg) -> bool {
        if !self.enabled() {
            return true;
        }
        let Some(call) = self.leg_call.get(&leg).and_then(|c| self.calls.get_mut(c)) else { return true };
        if call.legs.len() < 2 {
            return true;
        }
        let i = super::media_bind::leg_idx(dir);
        match call.media_src[i] {
            None => {
                call.media_src[i] = Some(leg);
                true
            }
            Some(cur) if cur == leg => true,
            Some(cur) => {
                // The extension's leg takes over once it carries media; and when the leg
                // media came from has ended (a transfer, a pickup), the leg that carries it
                // now is the call's.
                let cur_ended = call.legs.iter().find(|l| l.key == cur).is_none_or(|l| l.record.is_some());
                if cur_ended || (call.ext_leg == Some(leg) && call.ext_leg != Some(cur)) {
                    call.media_src[i] = Some(leg);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Translate the tracker's per-leg events into per-call events.
    pub(crate) fn process(&mut self, legs: &mut Vec<CallEvent>, out: &mut Vec<CallEvent>) {
        if legs.is_empty() {
            return;
        }
        for ev in legs.drain(..) {
            if !self.enabled() {
                out.push(match ev {
                    CallEvent::Ended(rec) => CallEvent::Ended(single(rec, &self.extensions)),
                    other => other,
                });
                continue;
            }
            match ev {
                CallEvent::Started(start) => self.started(start, out),
                CallEvent::Ringing { key, at } => {
                    let call_key = self.call_of(key);
                    if let Some(c) = self.calls.get_mut(&call_key) {
                        if let Some(l) = c.legs.iter_mut().find(|l| l.key == key) {
                            l.ringing_at.get_or_insert(at);
                        }
                        if !c.ringing_sent {
                            c.ringing_sent = true;
                            out.push(CallEvent::Ringing { key: call_key, at });
                        }
                    }
                }
                CallEvent::Answered { key, at } => self.answered(key, at, out),
                CallEvent::Dtmf { key, at, digit } => {
                    let call_key = self.call_of(key);
                    if let Some(c) = self.calls.get_mut(&call_key) {
                        if *c.dtmf_leg.get_or_insert(key) == key {
                            out.push(CallEvent::Dtmf { key: call_key, at, digit });
                        }
                    }
                }
                CallEvent::Ended(rec) => self.ended(rec, out),
                CallEvent::LegLinked { .. } => out.push(ev),
            }
        }
    }

    fn started(&mut self, start: CallStart, out: &mut Vec<CallEvent>) {
        let leg = start.key;
        let ev = self.evidence.remove(&leg).unwrap_or_default();
        let by_pbx = self.cfg.pbx.contains(start.src.ip());
        let to_pbx = self.cfg.pbx.contains(start.dst.ip());
        // A phone's own leg to the PBX (not one the PBX made): its person is its caller.
        let from_phone = to_pbx && !by_pbx;
        match self.find_call(&start, &ev, by_pbx, to_pbx) {
            Some((call_key, kind, role)) => {
                self.attach(call_key, LegState::new(&start, role, from_phone), &ev, kind, by_pbx);
                if let Some(first) = self.calls.get(&call_key).map(|c| c.first().start.clone()) {
                    out.push(CallEvent::LegLinked { key: call_key, first: Box::new(first), leg: Box::new(start) });
                }
            }
            None => {
                let caller_ours = self.extensions.contains(&start.caller);
                let numbers = Numbers::of(&start);
                let arriving_numbers = if to_pbx {
                    [&numbers.caller, &numbers.dialled, &numbers.callee].map(|n| n.clone()).to_vec()
                } else {
                    Vec::new()
                };
                let c = Linked {
                    numbers,
                    arrived: to_pbx,
                    number_keys: Vec::new(),
                    link: None,
                    ringing_sent: false,
                    answered_sent: false,
                    ext_leg: caller_ours.then_some(leg),
                    media_src: [None, None],
                    dtmf_leg: None,
                    refer: None,
                    values: Vec::new(),
                    held: false,
                    legs: vec![LegState::new(&start, LegRole::CallerSide, from_phone)],
                };
                self.calls.insert(leg, c);
                self.leg_call.insert(leg, leg);
                self.index(leg, &start.call_id, &ev);
                // A leg arriving at the PBX: a candidate for the legs the PBX starts.
                if to_pbx {
                    for n in arriving_numbers {
                        self.index_number(leg, &n);
                    }
                    self.push_recent(start.at, leg);
                }
                out.push(CallEvent::Started(start));
            }
        }
    }

    fn push_recent(&mut self, at: Ts, call: CallKey) {
        while self.recent.len() >= self.cfg.max_pending.max(1) {
            if let Some((t, old)) = self.recent.pop_front() {
                if t + self.cfg.window > at {
                    self.stats.evicted += 1;
                    if let Some(c) = self.calls.get_mut(&old) {
                        c.arrived = false;
                    }
                }
            }
        }
        self.recent.push_back((at, call));
    }

    /// Index `call` under the key of `number` (canon form; empty numbers are not indexed).
    fn index_number(&mut self, call: CallKey, number: &str) {
        if number.is_empty() {
            return;
        }
        let key = number_key(number).to_string();
        let Some(c) = self.calls.get_mut(&call) else { return };
        if c.number_keys.contains(&key) || c.number_keys.len() >= MAX_VALUES_PER_CALL {
            return;
        }
        c.number_keys.push(key.clone());
        self.by_number.entry(key).or_default().push(call);
    }

    /// Index the leg's Call-ID and evidence values under its call.
    fn index(&mut self, call_key: CallKey, call_id: &str, ev: &Evidence) {
        let mut keys = vec![format!("cid:{call_id}")];
        keys.extend(ev.headers.iter().map(|v| format!("hdr:{v}")));
        keys.extend(ev.session_ids.iter().map(|u| format!("sid:{u}")));
        keys.extend(ev.hep.iter().map(|h| format!("hep:{h}")));
        let Some(c) = self.calls.get_mut(&call_key) else { return };
        for k in keys {
            if c.values.len() >= MAX_VALUES_PER_CALL {
                break;
            }
            if !self.by_value.contains_key(&k) {
                self.by_value.insert(k.clone(), call_key);
                c.values.push(k);
            }
        }
    }

    /// The call in progress `v` names, if any.
    fn lookup(&self, key: &str) -> Option<CallKey> {
        self.by_value.get(key).copied().filter(|c| self.calls.get(c).is_some_and(|c| !c.all_ended()))
    }

    /// The call this new leg belongs to, by the strongest evidence; with the kind and role.
    fn find_call(
        &mut self,
        start: &CallStart,
        ev: &Evidence,
        by_pbx: bool,
        to_pbx: bool,
    ) -> Option<(CallKey, LinkKind, LegRole)> {
        let mut found: Vec<(CallKey, LinkKind, LegRole)> = Vec::new();
        // 1. Correlation headers: another leg's Call-ID, or the same value on another leg.
        for v in &ev.headers {
            if let Some(c) = self.lookup(&format!("cid:{v}")).or_else(|| self.lookup(&format!("hdr:{v}"))) {
                found.push((c, LinkKind::Header, LegRole::CalleeSide));
            }
        }
        // Replaces names the dialog this leg takes over.
        if let Some(replaced) = ev.replaces {
            let c = self.call_of(replaced);
            if let Some(call) = self.calls.get(&c).filter(|call| !call.all_ended()) {
                let was_answered = call.legs.iter().any(|l| l.key == replaced && l.answered_at.is_some());
                let role = if was_answered { LegRole::Transfer } else { LegRole::Pickup };
                found.push((c, LinkKind::Header, role));
            }
        }
        // 2. Session-ID.
        for u in &ev.session_ids {
            if let Some(c) = self.lookup(&format!("sid:{u}")) {
                found.push((c, LinkKind::SessionId, LegRole::CalleeSide));
            }
        }
        // 3. HEP correlation id.
        if let Some(h) = &ev.hep {
            if let Some(c) = self.lookup(&format!("cid:{h}")).or_else(|| self.lookup(&format!("hep:{h}"))) {
                found.push((c, LinkKind::Hep, LegRole::CalleeSide));
            }
        }
        // 4. Inference, for a configured PBX.
        if let Some(inferred) = self.infer(start, by_pbx, to_pbx) {
            found.push(inferred);
        }
        let (best, kind, role) = *found.first()?;
        if found.iter().any(|&(c, _, _)| c != best) {
            self.stats.conflicts += 1;
        }
        if self.calls.get(&best).is_some_and(|c| c.legs.len() >= MAX_LEGS) {
            self.stats.refused += 1;
            return None;
        }
        match kind {
            LinkKind::Header => self.stats.by_header += 1,
            LinkKind::SessionId => self.stats.by_session_id += 1,
            LinkKind::Hep => self.stats.by_hep += 1,
            LinkKind::Inferred => self.stats.by_inference += 1,
        }
        Some((best, kind, role))
    }

    /// Inference from the PBX's address, time and numbers.
    fn infer(&mut self, start: &CallStart, by_pbx: bool, to_pbx: bool) -> Option<(CallKey, LinkKind, LegRole)> {
        // (Both are false when no PBX is configured.)
        // A pickup code dialled to the PBX: the call ringing most recently at one of ours.
        if to_pbx && self.cfg.pickup_codes.contains(&start.dialled) {
            let ringing = self
                .calls
                .iter()
                .filter(|(_, c)| !c.all_ended() && !c.answered())
                .filter(|(_, c)| {
                    c.legs.iter().any(|l| l.ringing_at.is_some() && self.extensions.contains(&l.start.callee))
                })
                .max_by_key(|(_, c)| c.legs.iter().filter_map(|l| l.ringing_at).max())
                .map(|(&k, _)| k);
            return ringing.map(|k| (k, LinkKind::Inferred, LegRole::Pickup));
        }
        if !by_pbx {
            return None;
        }
        let window = self.cfg.window;
        while let Some(&(t, old)) = self.recent.front() {
            if t + window < start.at {
                self.recent.pop_front();
                if let Some(c) = self.calls.get_mut(&old) {
                    c.arrived = false;
                }
            } else {
                break;
            }
        }
        // Candidates: calls in progress sharing one of the leg's numbers.
        let leg_numbers = Numbers::of(start);
        let mut cands: Vec<CallKey> = [&leg_numbers.caller, &leg_numbers.dialled, &leg_numbers.callee]
            .into_iter()
            .filter(|n| !n.is_empty())
            .filter_map(|n| self.by_number.get(number_key(n)))
            .flatten()
            .copied()
            .collect();
        cands.sort_unstable();
        cands.dedup();
        // Score: caller matches (2), callee matches (1), a REFER to this callee (3).
        let mut best: Vec<(u32, i64, CallKey, LegRole)> = Vec::new();
        let caller_ours = self.extensions.contains(&start.caller);
        let leg = leg_numbers;
        for ck in cands {
            let Some(c) = self.calls.get(&ck) else { continue };
            if c.all_ended() {
                continue;
            }
            let a = &c.first().start;
            let n = &c.numbers;
            let in_window = c.arrived && start.at >= a.at && start.at.since(a.at) <= window;
            let refer = c.refer.as_ref().filter(|(t, to)| {
                start.at.since(*t) <= window && (same_canon(to, &leg.callee) || same_canon(to, &leg.dialled))
            });
            let caller_match = same_canon(&n.caller, &leg.caller);
            let callee_match = same_canon(&n.dialled, &leg.dialled)
                || same_canon(&n.callee, &leg.callee)
                || same_canon(&n.dialled, &leg.callee);
            // Two of our own extensions calling are two people: never one call (a REFER
            // names the transfer target, so it may come from the transferring phone).
            if refer.is_none() && caller_ours && self.extensions.contains(&a.caller) && !caller_match {
                continue;
            }
            // Within the window any number may match; beyond it (a hunt group's next phone,
            // a queue's agent, an IVR's transfer) only a call held for more legs, and only
            // with the same caller.
            let score = if refer.is_some() {
                3
            } else if in_window {
                u32::from(caller_match) * 2 + u32::from(callee_match)
            } else if caller_match && self.held.contains(&ck) {
                2 + u32::from(callee_match)
            } else {
                0
            };
            if score == 0 {
                continue;
            }
            let role = if refer.is_some() || c.answered() && !c.held { LegRole::Transfer } else { LegRole::CalleeSide };
            best.push((score, start.at.since(a.at).as_micros(), ck, role));
        }
        // Highest score, then the closest in time.
        best.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        if best.len() > 1 {
            self.stats.ambiguous += 1;
        }
        best.first().map(|&(_, _, k, role)| (k, LinkKind::Inferred, role))
    }

    fn attach(&mut self, call_key: CallKey, leg: LegState, ev: &Evidence, kind: LinkKind, by_pbx: bool) {
        let (key, role) = (leg.key, leg.role);
        self.leg_call.insert(key, call_key);
        self.index(call_key, &leg.start.call_id, ev);
        if let Some(c) = self.calls.get_mut(&call_key) {
            c.link = Some(c.link.map_or(kind, |k| k.min(kind)));
            if role == LegRole::Transfer {
                c.refer = None;
            }
            c.legs.push(leg);
        }
        // Not answered yet: the PBX may try more phones after this one (hunt group, queue).
        // A transfer done: its target is the leg now, not a REFER to come.
        match self.calls.get(&call_key) {
            Some(c) if by_pbx && !c.answered() => {
                self.held.insert(call_key);
            }
            Some(c) if role == LegRole::Transfer && !c.held => {
                self.held.remove(&call_key);
            }
            _ => {}
        }
    }

    fn answered(&mut self, key: CallKey, at: Ts, out: &mut Vec<CallEvent>) {
        let call_key = self.call_of(key);
        let Some(c) = self.calls.get_mut(&call_key) else { return };
        let first_key = c.first().key;
        if let Some(l) = c.legs.iter_mut().find(|l| l.key == key) {
            l.answered_at.get_or_insert(at);
        }
        if key == first_key && c.legs.len() == 1 && self.cfg.pbx.contains(c.first().start.dst.ip()) {
            // The PBX itself answered the caller (IVR, queue): onward legs may come later.
            c.held = true;
            self.held.insert(call_key);
        } else if key != first_key {
            // A phone answered: the call has left the queue or hunt.
            c.held = false;
            self.held.remove(&call_key);
            // The phone that answered (the callee of an onward leg, the caller of a pickup
            // leg) is the extension whose media is the call's, unless the caller is ours.
            let phone = c.legs.iter().find(|l| l.key == key).map(|l| match l.role {
                LegRole::Pickup => l.start.caller.clone(),
                _ => l.start.callee.clone(),
            });
            let caller_ours = self.extensions.contains(&c.first().start.caller);
            if phone.is_some_and(|p| self.extensions.contains(&p)) && (c.ext_leg.is_none() || !caller_ours) {
                c.ext_leg = Some(key);
            }
        }
        if !c.answered_sent {
            c.answered_sent = true;
            out.push(CallEvent::Answered { key: call_key, at });
        }
    }

    fn ended(&mut self, rec: Box<CallRecord>, out: &mut Vec<CallEvent>) {
        let leg = rec.key;
        let call_key = self.call_of(leg);
        let Some(c) = self.calls.get_mut(&call_key) else {
            out.push(CallEvent::Ended(single(rec, &self.extensions)));
            return;
        };
        if let Some(l) = c.legs.iter_mut().find(|l| l.key == leg) {
            l.record = Some(rec);
        }
        if !c.all_ended() {
            return;
        }
        let Some(c) = self.calls.remove(&call_key) else { return };
        for v in &c.values {
            if self.by_value.get(v) == Some(&call_key) {
                self.by_value.remove(v);
            }
        }
        for l in &c.legs {
            self.leg_call.remove(&l.key);
        }
        self.held.remove(&call_key);
        for k in &c.number_keys {
            if let Some(v) = self.by_number.get_mut(k) {
                v.retain(|&x| x != call_key);
                if v.is_empty() {
                    self.by_number.remove(k);
                }
            }
        }
        // `recent` entries of an ended call fall out with the window (lookups skip them).
        if let Some(rec) = compose(c, &self.extensions, self.cycle_ms) {
            out.push(CallEvent::Ended(rec));
        }
    }
}

/// A call of one leg: the tracker's record with its one-leg summary.
fn single(mut rec: Box<CallRecord>, ext: &ExtensionSet) -> Box<CallRecord> {
    let answered_by = (rec.answered && ext.contains(&rec.callee)).then(|| rec.callee.clone());
    let summary = LegSummary {
        call_id: rec.call_id.clone(),
        from: rec.caller.clone(),
        to: rec.callee.clone(),
        started_at: rec.started_at,
        answered_at: rec.answered_at,
        ended_at: rec.ended_at,
        sip_status: rec.sip_status,
        role: LegRole::CallerSide,
    };
    rec.linking = Linking { answered_by, transferred_to: None, wait_ms: 0, link: None, legs: vec![summary] };
    rec
}

fn millis(d: Dur) -> i64 {
    d.as_micros().max(0).saturating_add(500) / 1000
}

/// The call's record from its legs' records, from the caller's point of view.
fn compose(c: Linked, ext: &ExtensionSet, cycle_ms: u32) -> Option<Box<CallRecord>> {
    let Linked { legs, link, ext_leg, media_src, dtmf_leg, .. } = c;
    let mut recs: Vec<(LegState, Box<CallRecord>)> =
        legs.into_iter().filter_map(|mut l| l.record.take().map(|r| (l, r))).collect();
    if recs.len() == 1 {
        return recs.pop().map(|(_, r)| single(r, ext));
    }
    // `ended` composes a call once all its legs have ended: it has at least its first.
    let (_, a) = recs.first()?;
    let onward: Vec<&(LegState, Box<CallRecord>)> = recs.iter().skip(1).collect();
    let first_onward_ring = onward.iter().filter_map(|(_, r)| r.ringing_at.or(r.answered_at)).min();
    let held = a.answered_at.is_some_and(|ta| first_onward_ring.is_some_and(|r| ta < r));
    // The answering leg: the first onward leg answered (the PBX's 200 to the caller relays
    // it), else the caller's leg itself (unless only an IVR answered it).
    let answer_leg = onward.iter().filter(|(_, r)| r.answered_at.is_some()).min_by_key(|(_, r)| r.answered_at);
    let answered_at = match (answer_leg, held) {
        (Some((_, r)), _) => {
            if held {
                r.answered_at
            } else {
                [a.answered_at, r.answered_at].into_iter().flatten().min()
            }
        }
        (None, true) => None,
        (None, false) => a.answered_at,
    };
    let ringing_at = if held {
        onward.iter().filter_map(|(_, r)| r.ringing_at).min()
    } else {
        recs.iter().filter_map(|(_, r)| r.ringing_at).min()
    };
    let wait_ms = match (held, a.answered_at, first_onward_ring) {
        (true, Some(ta), Some(tr)) => millis(tr.since(ta)),
        _ => 0,
    };
    let ended_at = if answered_at.is_some() {
        recs.iter().filter(|(_, r)| r.answered_at.is_some()).map(|(_, r)| r.ended_at).max().unwrap_or(a.ended_at)
    } else {
        a.ended_at
    }
    .max(a.started_at);
    let ring_end = answered_at.unwrap_or(ended_at);
    let ring_ms = ringing_at.map(|r| millis(ring_end.since(r)));
    let talk_ms = answered_at.map_or(0, |t| millis(ended_at.since(t)));
    let answered_by = match answer_leg {
        // A pickup leg is the picking phone's own call to the pickup code.
        Some((l, r)) if l.role == LegRole::Pickup && ext.contains(&r.caller) => Some(r.caller.clone()),
        Some((_, r)) if ext.contains(&r.callee) => Some(r.callee.clone()),
        Some(_) => None,
        None if a.answered_at.is_some() && !held && ext.contains(&a.callee) => Some(a.callee.clone()),
        None => None,
    };
    // The transfer target: the callee of a leg the PBX made to it, or the caller of a leg
    // the target's phone made (INVITE with Replaces).
    let transferred_to = recs
        .iter()
        .filter(|(l, r)| l.role == LegRole::Transfer && r.answered_at.is_some())
        .max_by_key(|(_, r)| r.answered_at)
        .map(|(l, r)| if l.from_phone { r.caller.clone() } else { r.callee.clone() });
    let callee = answered_by.clone().unwrap_or_else(|| a.callee.clone());
    let caller_ours = ext.contains(&a.caller);
    let callee_ours = answered_by.is_some()
        || ext.contains(&a.callee)
        || ext.contains(&a.dialled)
        || onward.iter().any(|(_, r)| ext.contains(&r.callee));
    let direction = match (caller_ours, callee_ours) {
        (true, true) => Direction::Internal,
        (true, false) => Direction::Outbound,
        (false, true) => Direction::Inbound,
        (false, false) => a.direction,
    };
    let answer_key = answer_leg.map(|(l, _)| l.key);
    let many_onward = onward.len() > 1;
    let summaries: Vec<LegSummary> = recs
        .iter()
        .map(|(l, r)| {
            let role = match l.role {
                LegRole::CalleeSide if Some(l.key) != answer_key && many_onward => LegRole::Ring,
                other => other,
            };
            LegSummary {
                call_id: r.call_id.clone(),
                from: r.caller.clone(),
                to: r.callee.clone(),
                started_at: r.started_at,
                answered_at: r.answered_at,
                ended_at: r.ended_at,
                sip_status: r.sip_status,
                role,
            }
        })
        .collect();
    // Media per direction: the leg chosen while packets flowed, else the extension's leg,
    // else the leg that carried the most.
    let pick = |i: usize, get: &dyn Fn(&CallRecord) -> &MediaStats| -> MediaStats {
        let by_key = |k: CallKey| recs.iter().find(|(l, _)| l.key == k).map(|(_, r)| get(r).clone());
        media_src[i]
            .and_then(by_key)
            .filter(|m| m.packets > 0)
            .or_else(|| ext_leg.and_then(by_key).filter(|m| m.packets > 0))
            .or_else(|| recs.iter().map(|(_, r)| get(r)).max_by_key(|m| m.packets).cloned())
            .unwrap_or_default()
    };
    let media_caller = pick(0, &|r: &CallRecord| &r.media_caller);
    let media_callee = pick(1, &|r: &CallRecord| &r.media_callee);
    let dtmf = dtmf_leg
        .and_then(|k| recs.iter().find(|(l, _)| l.key == k))
        .map(|(_, r)| r.dtmf.clone())
        .unwrap_or_else(|| a.dtmf.clone());
    let mut ladder: Vec<SipStep> = recs.iter().flat_map(|(_, r)| r.ladder.iter().cloned()).collect();
    ladder.sort_by_key(|s| s.at);
    let mut ladder_dropped: u32 = recs.iter().map(|(_, r)| r.ladder_dropped).sum();
    if ladder.len() > MAX_LADDER {
        ladder_dropped = ladder_dropped.saturating_add((ladder.len() - MAX_LADDER) as u32);
        ladder.truncate(MAX_LADDER);
    }
    Some(Box::new(CallRecord {
        key: a.key,
        call_id: a.call_id.clone(),
        from_tag: a.from_tag.clone(),
        caller: a.caller.clone(),
        caller_display: a.caller_display.clone(),
        callee,
        dialled: a.dialled.clone(),
        dialled_domain: a.dialled_domain.clone(),
        number: a.number.clone(),
        direction,
        class: None,
        group: None,
        started_at: a.started_at,
        ringing_at,
        answered_at,
        ended_at,
        rings: rings_for(ring_ms, cycle_ms),
        ring_ms: ring_ms.unwrap_or(0),
        talk_ms,
        answered: answered_at.is_some(),
        end_reason: a.end_reason,
        sip_status: a.sip_status,
        cost_fen: None,
        dtmf,
        media_caller,
        media_callee,
        ladder,
        ladder_dropped,
        to_tag: a.to_tag.clone(),
        linking: Linking { answered_by, transferred_to, wait_ms, link, legs: summaries },
        judged: super::Judged::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_across_prefixes() {
        assert!(same_number("016800123", "16800123"));
        assert!(same_number("+8613800138000", "13800138000"));
        assert!(same_number("0013800138000", "13800138000"));
        assert!(same_number("8001", "8001"));
        assert!(!same_number("8001", "18001"), "short numbers must be equal");
        assert!(!same_number("", ""));
        assert!(!same_number("13800138000", "13800138001"));
    }

    #[test]
    fn session_id_uuids() {
        assert_eq!(
            session_uuids("ab30317f1a784dc48ff824d0d3715d86;remote=00000000000000000000000000000000"),
            vec!["ab30317f1a784dc48ff824d0d3715d86"]
        );
        assert_eq!(session_uuids("AB30317F1A784DC48FF824D0D3715D86;remote=47755a9de7794ba387653f2099600ef2").len(), 2);
        assert!(session_uuids("not-a-uuid!").is_empty());
    }
}
