//! Media binding: which call and which direction an RTP packet belongs to, what it
//! carries, and the per-direction media statistics.
//! Addresses come from SDP offer/answer: SDP sent by the caller's side announces where the
//! caller receives, SDP from the callee's side where the callee receives. A packet *to* a
//! side's address flows towards that side; a packet *from* a side's address (symmetric
//! RTP) flows away from it; the other end of such a packet is learnt for the opposite
//! side, so a NAT-rewritten source keeps working. Streams are told apart by address, never
//! by SSRC alone (both directions of the generated captures carry one SSRC).
//! May use: `time`, `rtp`, `sip::sdp`. Invariants: the per-packet path is one probe of the
//! live address table (which gives the call's slot), then reads of the call's first cache
//! lines (the leg's counters, cached payload kind, first stream and recognised address),
//! with no allocation (RFC 3551 encoding names are `'static`); every address entry
//! belongs to a tracked call, moves to the ended table when the call ends and goes when it
//! is freed; per-call lists are capped.

use super::dtmf::{self, DtmfState};
use super::{CallKey, Leg, MediaStats};
use crate::rtp::RtpPacket;
use crate::sip::sdp::Sdp;
use crate::time::{Dur, Ts};
use foldhash::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// An encoding name. The RFC 3551 names are `'static` so that handing a packet's kind to
/// the engine costs no allocation and no atomic reference count (this is on the path of
/// every RTP packet); only names outside that list are shared on the heap.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Known(&'static str),
    Other(Arc<str>),
}

impl std::ops::Deref for Encoding {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Encoding::Known(s) => s,
            Encoding::Other(s) => s,
        }
    }
}

impl From<&str> for Encoding {
    /// The canonical spelling of a known name ("pcma" → "PCMA"), else the name as given.
    fn from(name: &str) -> Encoding {
        match CANONICAL.iter().find(|c| c.eq_ignore_ascii_case(name)) {
            Some(c) => Encoding::Known(c),
            None => Encoding::Other(Arc::from(name)),
        }
    }
}

/// What an RTP packet carries, from the SDP rtpmap of its call or the static table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio for the recorder: encoding name ("PCMA", "PCMU", "G722", "opus", ...; the
    /// RFC 3551 names in their usual capitals) and RTP clock rate.
    Audio { encoding: Encoding, clock_rate: u32 },
    /// RFC 4733 telephone-event (DTMF): keep it out of the recording.
    Dtmf { clock_rate: u32 },
    /// RFC 3389 comfort noise.
    ComfortNoise,
    /// A payload type neither the SDP nor the static table names.
    Unknown(u8),
}

impl MediaKind {
    /// The encoding name, as listed in `MediaStats::codecs`.
    pub fn name(&self) -> Option<&str> {
        match self {
            MediaKind::Audio { encoding, .. } => Some(&**encoding),
            MediaKind::Dtmf { .. } => Some("telephone-event"),
            MediaKind::ComfortNoise => Some("CN"),
            MediaKind::Unknown(_) => None,
        }
    }
}

/// Where `Tracker::on_rtp` put a packet: the call, the direction, and what it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpBinding {
    /// The call (for a call of several legs, its first leg's key).
    pub key: CallKey,
    pub leg: Leg,
    pub kind: MediaKind,
    /// The packet is the call's media in its direction (recorded, counted). `false` for the
    /// second copy a media-anchoring PBX relays on another leg of the same call.
    pub primary: bool,
}

/// One end of a call, for media: the caller's or the callee's.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    Caller,
    Callee,
}

impl Side {
    pub(crate) fn idx(self) -> usize {
        match self {
            Side::Caller => 0,
            Side::Callee => 1,
        }
    }
    pub(crate) fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }
    /// The direction of a packet received by this side.
    pub(crate) fn receiving_leg(self) -> Leg {
        match self {
            Side::Caller => Leg::CalleeToCaller,
            Side::Callee => Leg::CallerToCallee,
        }
    }
}

/// Index of a leg in a call's per-leg arrays.
pub(crate) fn leg_idx(leg: Leg) -> usize {
    match leg {
        Leg::CallerToCallee => 0,
        Leg::CalleeToCaller => 1,
    }
}

/// Caps on what one call may hold: a hostile SDP or a spoofing flood cannot grow them.
const MAX_ANNOUNCED: usize = 8;
const MAX_LEARNED: usize = 4;
const MAX_PAYLOAD_TYPES: usize = 32;
const MAX_STREAMS: usize = 8;
const MAX_CODECS: usize = 8;

/// A side's media as its SDP described it, plus the sources seen from it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SideMedia {
    announced: Vec<SocketAddr>,
    learned: Vec<SocketAddr>,
    payload_types: Vec<(u8, MediaKind)>,
}

impl SideMedia {
    /// The address is one of this side's (announced or learnt). `recent` is the address it
    /// matched last, kept by the caller where the packet's other data is (in the leg this
    /// side sends), so that the usual packet needs no look into the heap vectors; a hit is
    /// remembered there. Checked before the map: the usual packet, between two announced
    /// addresses, costs no extra hash lookup.
    pub(crate) fn recognises(&self, addr: &SocketAddr, recent: &mut Option<SocketAddr>) -> bool {
        if *recent == Some(*addr) {
            return true;
        }
        let known = self.announced.contains(addr) || self.learned.contains(addr);
        if known {
            *recent = Some(*addr);
        }
        known
    }
    pub(crate) fn kind(&self, pt: u8) -> Option<&MediaKind> {
        self.payload_types.iter().find(|(p, _)| *p == pt).map(|(_, k)| k)
    }
    #[cfg(test)]
    pub(crate) fn announced(&self) -> &[SocketAddr] {
        &self.announced
    }
}

/// RFC 3551 spellings, matched case-insensitively so "pcma" and "PCMA" are one codec.
const CANONICAL: [&str; 17] = [
    "PCMU", "PCMA", "G722", "G729", "GSM", "G723", "DVI4", "LPC", "L16", "QCELP", "CN", "MPA", "G728", "G726-32",
    "AMR", "AMR-WB", "iLBC",
];

/// The kind an rtpmap line names.
pub(crate) fn kind_from_rtpmap(encoding: &str, clock_rate: u32) -> MediaKind {
    if encoding.eq_ignore_ascii_case("telephone-event") {
        return MediaKind::Dtmf { clock_rate };
    }
    if encoding.eq_ignore_ascii_case("CN") {
        return MediaKind::ComfortNoise;
    }
    MediaKind::Audio { encoding: Encoding::from(encoding), clock_rate }
}

/// The static audio payload types of RFC 3551 §6, built once per tracker; a lookup is a
/// plain copy (their names are `Encoding::Known`).
#[derive(Clone, Debug)]
pub(crate) struct StaticPayloads {
    kinds: Vec<MediaKind>,
}

impl StaticPayloads {
    pub(crate) fn new() -> StaticPayloads {
        let table: [(&str, u32); 19] = [
            ("PCMU", 8000),
            ("", 0), // 1: reserved
            ("", 0), // 2: reserved (formerly G721)
            ("GSM", 8000),
            ("G723", 8000),
            ("DVI4", 8000),
            ("DVI4", 16000),
            ("LPC", 8000),
            ("PCMA", 8000),
            ("G722", 8000), // RFC 3551: 8000 Hz RTP clock for 16 kHz audio
            ("L16", 44100),
            ("L16", 44100),
            ("QCELP", 8000),
            ("CN", 8000),
            ("MPA", 90000),
            ("G728", 8000),
            ("DVI4", 11025),
            ("DVI4", 22050),
            ("G729", 8000),
        ];
        let kinds = table
            .iter()
            .enumerate()
            .map(|(pt, &(name, rate))| match name {
                "" => MediaKind::Unknown(pt as u8),
                _ => kind_from_rtpmap(name, rate),
            })
            .collect();
        StaticPayloads { kinds }
    }

    pub(crate) fn kind(&self, pt: u8) -> MediaKind {
        self.kinds.get(usize::from(pt)).cloned().unwrap_or(MediaKind::Unknown(pt))
    }
}

/// Which of its addresses a packet was bound by.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Matched {
    /// The destination: the owner side receives this packet.
    Receiver,
    /// The source: the owner side sent it (symmetric RTP).
    Sender,
}

/// A tracked call as the address map knows it: its key, and the slot of the tracker's
/// call table it sits in (so that an RTP packet finds its call with this one probe).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Handle {
    pub key: CallKey,
    pub slot: u32,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub key: CallKey,
    pub slot: u32,
    pub side: Side,
}

/// Address → owner, with IPv4 addresses (nearly all of them) packed into a `u64` key: a
/// 24-byte entry instead of 48, and a key that hashes in one step.
#[derive(Debug, Default)]
struct Table {
    v4: HashMap<u64, Owner>,
    other: HashMap<SocketAddr, Owner>,
}

/// An IPv4 address and port as one number (the flag bit keeps it apart from 0).
fn pack_v4(a: &std::net::SocketAddrV4) -> u64 {
    (1 << 48) | (u64::from(a.ip().to_bits()) << 16) | u64::from(a.port())
}

impl Table {
    fn get(&self, addr: &SocketAddr) -> Option<&Owner> {
        match addr {
            SocketAddr::V4(a) => self.v4.get(&pack_v4(a)),
            SocketAddr::V6(_) => self.other.get(addr),
        }
    }

    fn insert(&mut self, addr: SocketAddr, owner: Owner) {
        match addr {
            SocketAddr::V4(a) => self.v4.insert(pack_v4(&a), owner),
            SocketAddr::V6(_) => self.other.insert(addr, owner),
        };
    }

    fn remove(&mut self, addr: &SocketAddr) -> Option<Owner> {
        match addr {
            SocketAddr::V4(a) => self.v4.remove(&pack_v4(a)),
            SocketAddr::V6(_) => self.other.remove(addr),
        }
    }

    /// Remove the entry if `key` owns it.
    fn remove_owned(&mut self, addr: &SocketAddr, key: CallKey) -> Option<Owner> {
        if self.get(addr).is_some_and(|o| o.key == key) {
            self.remove(addr)
        } else {
            None
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }
}

/// Every bound address, in one of two tables: those of calls in progress (`live`), which
/// every RTP packet probes, and those of ended calls that linger to absorb late packets
/// (`ended`, probed only when `live` has no owner). Lingering calls outnumber active ones
/// three to one in a busy capture; kept apart, the table the packets probe stays small
/// enough for the core's cache. An address is in at most one of the two.
#[derive(Debug, Default)]
struct AddrMap {
    live: Table,
    ended: Table,
}

impl AddrMap {
    fn get(&self, addr: &SocketAddr) -> Option<&Owner> {
        self.live.get(addr).or_else(|| self.ended.get(addr))
    }

    fn contains_key(&self, addr: &SocketAddr) -> bool {
        self.get(addr).is_some()
    }

    /// Bind `addr` to `owner`, taking it from whichever call had it.
    fn insert(&mut self, addr: SocketAddr, owner: Owner) {
        self.ended.remove(&addr);
        self.live.insert(addr, owner);
    }

    /// Insert unless some call owns the address already.
    fn insert_vacant(&mut self, addr: SocketAddr, owner: Owner) {
        if !self.contains_key(&addr) {
            self.live.insert(addr, owner);
        }
    }

    /// Remove the entry if `key` owns it.
    fn remove_owned(&mut self, addr: &SocketAddr, key: CallKey) {
        if self.live.remove_owned(addr, key).is_none() {
            self.ended.remove_owned(addr, key);
        }
    }

    /// The call `key` ended: move its entry to the lingering table.
    fn retire(&mut self, addr: &SocketAddr, key: CallKey) {
        if let Some(owner) = self.live.remove_owned(addr, key) {
            self.ended.insert(*addr, owner);
        }
    }

    fn len(&self) -> usize {
        self.live.len() + self.ended.len()
    }
}

/// Address → (call, side): the hot-path index.
#[derive(Debug, Default)]
pub(crate) struct MediaMap {
    addrs: AddrMap,
}

impl MediaMap {
    /// Give memory back after a flood (see `shrink_sparse`).
    pub(crate) fn shrink(&mut self) {
        for t in [&mut self.addrs.live, &mut self.addrs.ended] {
            super::shrink_sparse(&mut t.v4);
            super::shrink_sparse(&mut t.other);
        }
    }

    pub(crate) fn lookup(&self, src: SocketAddr, dst: SocketAddr) -> Option<(Owner, Matched)> {
        if let Some(&o) = self.addrs.get(&dst) {
            return Some((o, Matched::Receiver));
        }
        self.addrs.get(&src).map(|&o| (o, Matched::Sender))
    }

    pub(crate) fn contains(&self, addr: &SocketAddr) -> bool {
        self.addrs.contains_key(addr)
    }

    /// Take an SDP sent by `side`. A first-seen SDP (`replace`) is a new offer/answer: it
    /// replaces the side's addresses (a re-INVITE moving the port, hold with c=0.0.0.0).
    /// A copy of an SDP already seen (another hop, a mirror) only adds what it shows, so a
    /// media relay's address on one hop and the phone's on the other both bind.
    /// A newer call's first-seen SDP takes over an address another call announced.
    pub(crate) fn apply_sdp(&mut self, h: Handle, side: Side, sdp: &Sdp, replace: bool, sm: &mut SideMedia) {
        let key = h.key;
        let audio = sdp.media.iter().filter(|m| m.kind.eq_ignore_ascii_case("audio"));
        if replace {
            for addr in sm.announced.drain(..).chain(sm.learned.drain(..)) {
                self.addrs.remove_owned(&addr, key);
            }
            if audio.clone().next().is_some() {
                sm.payload_types.clear();
            }
        }
        for m in audio {
            for r in &m.rtpmap {
                if sm.payload_types.len() < MAX_PAYLOAD_TYPES && sm.kind(r.pt).is_none() {
                    sm.payload_types.push((r.pt, kind_from_rtpmap(&r.encoding, r.clock_rate)));
                }
            }
            let Some(ip) = m.conn.or(sdp.conn) else { continue };
            if m.port == 0 || ip.is_unspecified() {
                continue; // stream refused or on hold (c=0.0.0.0): nothing to receive
            }
            let addr = SocketAddr::new(ip, m.port);
            if !sm.announced.contains(&addr) {
                if sm.announced.len() >= MAX_ANNOUNCED {
                    continue;
                }
                sm.announced.push(addr);
            }
            let owner = Owner { key, slot: h.slot, side };
            if replace {
                self.addrs.insert(addr, owner);
            } else {
                // A late copy of an older SDP must not take an address back from a newer call.
                self.addrs.insert_vacant(addr, owner);
            }
        }
    }

    /// Bind a source or destination seen on a packet of the call, if no call owns it yet.
    pub(crate) fn learn(&mut self, h: Handle, side: Side, addr: SocketAddr, sm: &mut SideMedia) {
        if sm.learned.len() >= MAX_LEARNED || addr.ip().is_unspecified() || self.addrs.contains_key(&addr) {
            return;
        }
        sm.learned.push(addr);
        self.addrs.insert(addr, Owner { key: h.key, slot: h.slot, side });
    }

    /// The call ended: its addresses still bind (late packets are counted against it) but
    /// move out of the table that packets of calls in progress probe.
    pub(crate) fn retire(&mut self, key: CallKey, sides: &[SideMedia; 2]) {
        for sm in sides {
            for addr in sm.announced.iter().chain(&sm.learned) {
                self.addrs.retire(addr, key);
            }
        }
    }

    /// Forget every address the call still owns (when it is freed).
    pub(crate) fn release(&mut self, key: CallKey, sides: &mut [SideMedia; 2]) {
        for sm in sides.iter_mut() {
            for addr in sm.announced.drain(..).chain(sm.learned.drain(..)) {
                self.addrs.remove_owned(&addr, key);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.addrs.len()
    }
}

/// RFC 3550 A.1 limits: a jump further than this is a restarted sender, not loss.
const MAX_DROPOUT: i64 = 3000;
const MAX_MISORDER: i64 = 100;

/// Sequence-number accounting of one stream (source address + SSRC).
/// Private extension of 16-bit sequence numbers (the shared `rtp::SeqExtender` is being
/// written on another branch): the nearest 64-bit index to the highest one seen.
#[derive(Clone, Debug)]
struct Stream {
    src: SocketAddr,
    ssrc: u32,
    base: u64,
    max: u64,
    received: u64,
    /// Loss of the stream's earlier runs, before a sequence restart.
    lost_before: u64,
}

impl Stream {
    fn new(src: SocketAddr, ssrc: u32, seq: u16) -> Stream {
        // Start one cycle up so packets older than the first stay non-negative.
        let ext = (1u64 << 16) + u64::from(seq);
        Stream { src, ssrc, base: ext, max: ext, received: 1, lost_before: 0 }
    }

    fn on_seq(&mut self, seq: u16) {
        let delta = i64::from(seq.wrapping_sub(self.max as u16) as i16);
        if delta == 0 {
            return; // the latest packet again (mirror copy): not a new packet
        }
        if !(-MAX_MISORDER..=MAX_DROPOUT).contains(&delta) {
            self.lost_before = self.lost();
            let restart = Stream::new(self.src, self.ssrc, seq);
            *self = Stream { lost_before: self.lost_before, ..restart };
            return;
        }
        let ext = u64::try_from(i64::try_from(self.max).unwrap_or(i64::MAX).saturating_add(delta)).unwrap_or(0);
        if ext > self.max {
            self.max = ext;
        } else if ext < self.base {
            self.base = ext;
        }
        self.received += 1;
    }

    fn lost(&self) -> u64 {
        let expected = self.max.saturating_sub(self.base) + 1;
        self.lost_before.saturating_add(expected.saturating_sub(self.received))
    }
}

/// Media of one direction of a call. The fields every packet touches come first and
/// inline (`repr(C)` keeps them together, a cache line or two from the call's head): the
/// counters, the kind of the latest payload type, and the first stream, which is the only
/// one of nearly every leg. The rest is looked at only when something changes.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub(crate) struct LegMedia {
    /// Packets counted; `first_at`/`last_at` mean something only when it is not 0.
    packets: u64,
    first_at: Ts,
    last_at: Ts,
    last_pt: Option<u8>,
    /// The sending side's address that `SideMedia::recognises` matched last (cleared with
    /// the kind whenever an SDP is applied, which may take addresses away).
    pub(crate) recent: Option<SocketAddr>,
    /// The kind the latest payload type resolved to (SDP of the call, else the static
    /// table); cleared by the call whenever an SDP is applied, since that may rename it.
    kind_cache: Option<(u8, MediaKind)>,
    /// The first stream of the leg; `more_streams` holds the others (capped together).
    stream: Option<Stream>,
    more_streams: Vec<Stream>,
    codecs: Vec<String>,
    dtmf: DtmfState,
    /// The flow (source, destination) this direction's media is taken from, and its
    /// latest packet: a media relay on the path (rtpengine, rtpproxy, an SBC anchoring
    /// media) puts the same conversation on the wire twice, on other ports.
    flow: Option<(SocketAddr, SocketAddr, Ts)>,
    /// (SSRC, sequence number) of the taken flow's latest packets, to know a relay's copy.
    recent_seq: [(u32, u16); RECENT_SEQ],
    recent_next: u8,
}

/// Packets of the taken flow remembered to recognise their relayed copies (a relay
/// forwards within milliseconds: a few packets' worth is plenty).
const RECENT_SEQ: usize = 8;

/// A second flow of the same direction, within this long of the taken flow's latest
/// packet, carrying a packet the taken flow carried (same SSRC and sequence number), is a
/// relay's copy. Anything else on a second flow — a re-INVITE or latching (symmetric RTP,
/// NAT) moving the media — makes that flow the taken one at once. A relay that rewrites
/// SSRC and sequence numbers is not recognised (its copy is counted as before).
pub(crate) const RELAY_COPY_WINDOW: Dur = Dur::from_millis(250);

impl LegMedia {
    /// Is this packet from `src` to `dst` a relayed copy of one the flow this direction's
    /// media is taken from carried? If not, its flow is (now) the taken one.
    pub(crate) fn is_relayed_copy(&mut self, at: Ts, src: SocketAddr, dst: SocketAddr, pkt: &RtpPacket<'_>) -> bool {
        let id = (pkt.ssrc, pkt.seq);
        match &mut self.flow {
            Some((s, d, last)) if *s == src && *d == dst => *last = (*last).max(at),
            Some((_, _, last)) if at.since(*last) < RELAY_COPY_WINDOW && self.recent_seq.contains(&id) => return true,
            _ => self.flow = Some((src, dst, at)),
        }
        self.recent_seq[usize::from(self.recent_next) % RECENT_SEQ] = id;
        self.recent_next = self.recent_next.wrapping_add(1);
        false
    }

    /// The kind cached for this payload type, if it is the one resolved last.
    pub(crate) fn cached_kind(&self, pt: u8) -> Option<&MediaKind> {
        match &self.kind_cache {
            Some((p, k)) if *p == pt => Some(k),
            _ => None,
        }
    }

    pub(crate) fn cache_kind(&mut self, pt: u8, kind: MediaKind) {
        self.kind_cache = Some((pt, kind));
    }

    /// Drop what was cached from the SDPs (the kind of the latest payload type, the
    /// address recognised last): an SDP was applied.
    pub(crate) fn forget_cached(&mut self) {
        self.kind_cache = None;
        self.recent = None;
    }

    /// Count one packet; returns a DTMF digit when the packet starts a new event.
    pub(crate) fn on_packet(&mut self, at: Ts, src: SocketAddr, pkt: &RtpPacket<'_>, kind: &MediaKind) -> Option<char> {
        if self.packets == 0 {
            self.first_at = at;
            self.last_at = at;
        } else {
            self.first_at = self.first_at.min(at);
            self.last_at = self.last_at.max(at);
        }
        self.packets += 1;
        if self.last_pt != Some(pkt.payload_type) {
            // Names are compared only when the payload type changes, not per packet.
            self.last_pt = Some(pkt.payload_type);
            if let Some(name) = kind.name() {
                if self.codecs.len() < MAX_CODECS && !self.codecs.iter().any(|c| c == name) {
                    self.codecs.push(name.to_string());
                }
            }
        }
        match &mut self.stream {
            Some(st) if st.ssrc == pkt.ssrc && st.src == src => st.on_seq(pkt.seq),
            _ => self.other_stream(src, pkt),
        }
        match kind {
            MediaKind::Dtmf { .. } => dtmf::parse(pkt.payload).and_then(|ev| self.dtmf.on_packet(pkt.timestamp, ev)),
            _ => None,
        }
    }

    /// A packet that is not of the first stream: one of the others, or a new one.
    fn other_stream(&mut self, src: SocketAddr, pkt: &RtpPacket<'_>) {
        if let Some(st) = self.more_streams.iter_mut().find(|st| st.ssrc == pkt.ssrc && st.src == src) {
            st.on_seq(pkt.seq);
        } else if self.stream.is_none() {
            self.stream = Some(Stream::new(src, pkt.ssrc, pkt.seq));
        } else if self.more_streams.len() + 1 < MAX_STREAMS {
            self.more_streams.push(Stream::new(src, pkt.ssrc, pkt.seq));
        }
    }

    /// The statistics as recorded, with loss summed over the streams.
    pub(crate) fn finish(&mut self) -> MediaStats {
        let (first_at, last_at) = match self.packets {
            0 => (None, None),
            _ => (Some(self.first_at), Some(self.last_at)),
        };
        MediaStats {
            codecs: std::mem::take(&mut self.codecs),
            packets: std::mem::take(&mut self.packets),
            lost: self.stream.iter().chain(&self.more_streams).map(Stream::lost).sum(),
            first_at,
            last_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::{Media, RtpMap};
    use proptest::prelude::*;

    fn h(key: CallKey) -> Handle {
        Handle { key, slot: key.0 as u32 }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn pkt(pt: u8, seq: u16, ssrc: u32) -> RtpPacket<'static> {
        RtpPacket { payload_type: pt, marker: false, seq, timestamp: u32::from(seq) * 160, ssrc, payload: &[0xd5; 160] }
    }

    fn sdp(ip: &str, port: u16) -> Sdp {
        Sdp {
            conn: Some(ip.parse().unwrap()),
            direction: None,
            media: vec![Media {
                kind: "audio".into(),
                port,
                proto: "RTP/AVP".into(),
                formats: vec![8, 101],
                rtpmap: vec![
                    RtpMap { pt: 8, encoding: "pcma".into(), clock_rate: 8000, channels: None },
                    RtpMap { pt: 101, encoding: "telephone-event".into(), clock_rate: 8000, channels: None },
                ],
                ..Media::default()
            }],
        }
    }

    #[test]
    fn static_table_and_rtpmap_names() {
        let t = StaticPayloads::new();
        assert_eq!(t.kind(0), MediaKind::Audio { encoding: "PCMU".into(), clock_rate: 8000 });
        assert_eq!(t.kind(8), MediaKind::Audio { encoding: "PCMA".into(), clock_rate: 8000 });
        assert_eq!(t.kind(9), MediaKind::Audio { encoding: "G722".into(), clock_rate: 8000 });
        assert_eq!(t.kind(18), MediaKind::Audio { encoding: "G729".into(), clock_rate: 8000 });
        assert_eq!(t.kind(3), MediaKind::Audio { encoding: "GSM".into(), clock_rate: 8000 });
        assert_eq!(t.kind(4), MediaKind::Audio { encoding: "G723".into(), clock_rate: 8000 });
        assert_eq!(t.kind(13), MediaKind::ComfortNoise);
        assert_eq!(t.kind(2), MediaKind::Unknown(2));
        assert_eq!(t.kind(96), MediaKind::Unknown(96));
        assert_eq!(t.kind(127), MediaKind::Unknown(127));
        assert_eq!(kind_from_rtpmap("pcma", 8000), MediaKind::Audio { encoding: "PCMA".into(), clock_rate: 8000 });
        assert_eq!(kind_from_rtpmap("opus", 48000), MediaKind::Audio { encoding: "opus".into(), clock_rate: 48000 });
        assert_eq!(kind_from_rtpmap("Telephone-Event", 8000), MediaKind::Dtmf { clock_rate: 8000 });
        assert_eq!(kind_from_rtpmap("cn", 16000), MediaKind::ComfortNoise);
    }

    #[test]
    fn replace_moves_and_copy_adds() {
        let mut m = MediaMap::default();
        let mut sm = SideMedia::default();
        let k = CallKey(1);
        m.apply_sdp(h(k), Side::Callee, &sdp("10.0.0.3", 5000), true, &mut sm);
        assert_eq!(
            m.lookup(addr("1.1.1.1:1"), addr("10.0.0.3:5000")).map(|(o, w)| (o.side, w)),
            Some((Side::Callee, Matched::Receiver))
        );
        assert!(matches!(sm.kind(101), Some(MediaKind::Dtmf { clock_rate: 8000 })));
        // A copy from another hop adds its address.
        m.apply_sdp(h(k), Side::Callee, &sdp("192.0.2.9", 7000), false, &mut sm);
        assert_eq!(m.len(), 2);
        // A new offer replaces both.
        m.apply_sdp(h(k), Side::Callee, &sdp("10.0.0.3", 5002), true, &mut sm);
        assert_eq!(sm.announced(), &[addr("10.0.0.3:5002")]);
        assert_eq!(m.len(), 1);
        // Hold with c=0.0.0.0 unbinds.
        m.apply_sdp(h(k), Side::Callee, &sdp("0.0.0.0", 5002), true, &mut sm);
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn v6_and_v4_addresses_bind_apart() {
        let mut m = MediaMap::default();
        let mut sm = SideMedia::default();
        m.apply_sdp(h(CallKey(1)), Side::Callee, &sdp("2001:db8::3", 5000), true, &mut sm);
        m.apply_sdp(h(CallKey(1)), Side::Callee, &sdp("10.0.0.3", 5000), false, &mut sm);
        assert_eq!(m.len(), 2);
        let other = addr("1.1.1.1:1");
        assert_eq!(m.lookup(other, addr("[2001:db8::3]:5000")).map(|(o, _)| o.side), Some(Side::Callee));
        assert_eq!(m.lookup(other, addr("10.0.0.3:5000")).map(|(o, _)| o.side), Some(Side::Callee));
        assert_eq!(m.lookup(other, addr("10.0.0.3:5001")), None);
        assert_eq!(m.lookup(other, addr("[::ffff:10.0.0.3]:5000")), None, "a v4-mapped v6 address is another address");
        assert_eq!(m.lookup(addr("[2001:db8::3]:5000"), other).map(|(_, w)| w), Some(Matched::Sender));
        let mut sides = [SideMedia::default(), sm];
        m.release(CallKey(2), &mut sides.clone());
        assert_eq!(m.len(), 2, "another call's release leaves them");
        m.release(CallKey(1), &mut sides);
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn retired_addresses_still_bind_and_can_be_taken_over() {
        let mut m = MediaMap::default();
        let (mut a, mut b) =
            ([SideMedia::default(), SideMedia::default()], [SideMedia::default(), SideMedia::default()]);
        let key_at = |m: &MediaMap| m.lookup(addr("9.9.9.9:9"), addr("10.0.0.1:4000")).map(|(o, _)| o.key);
        m.apply_sdp(h(CallKey(1)), Side::Caller, &sdp("10.0.0.1", 4000), true, &mut a[0]);
        m.retire(CallKey(2), &a); // not its own: stays live
        m.retire(CallKey(1), &a);
        assert_eq!((key_at(&m), m.len()), (Some(CallKey(1)), 1));
        assert!(m.contains(&addr("10.0.0.1:4000")));
        // Another call's copy of an SDP does not take it; its own new offer does.
        m.apply_sdp(h(CallKey(2)), Side::Callee, &sdp("10.0.0.1", 4000), false, &mut b[1]);
        assert_eq!(key_at(&m), Some(CallKey(1)));
        m.apply_sdp(h(CallKey(2)), Side::Callee, &sdp("10.0.0.1", 4000), true, &mut b[1]);
        assert_eq!((key_at(&m), m.len()), (Some(CallKey(2)), 1));
        m.release(CallKey(1), &mut a);
        assert_eq!((key_at(&m), m.len()), (Some(CallKey(2)), 1));
        m.retire(CallKey(2), &b);
        m.release(CallKey(2), &mut b);
        assert_eq!((key_at(&m), m.len()), (None, 0));
    }

    #[test]
    fn takeover_and_release_only_own_entries() {
        let mut m = MediaMap::default();
        let (mut a, mut b) =
            ([SideMedia::default(), SideMedia::default()], [SideMedia::default(), SideMedia::default()]);
        m.apply_sdp(h(CallKey(1)), Side::Caller, &sdp("10.0.0.1", 4000), true, &mut a[0]);
        m.apply_sdp(h(CallKey(2)), Side::Caller, &sdp("10.0.0.1", 4000), true, &mut b[0]);
        assert_eq!(m.lookup(addr("9.9.9.9:9"), addr("10.0.0.1:4000")).map(|(o, _)| o.key), Some(CallKey(2)));
        // A late copy of the old call's SDP (retransmission) does not take it back.
        m.apply_sdp(h(CallKey(1)), Side::Caller, &sdp("10.0.0.1", 4000), false, &mut a[0]);
        assert_eq!(m.lookup(addr("9.9.9.9:9"), addr("10.0.0.1:4000")).map(|(o, _)| o.key), Some(CallKey(2)));
        m.release(CallKey(1), &mut a);
        assert_eq!(m.len(), 1);
        m.learn(h(CallKey(2)), Side::Callee, addr("203.0.113.5:31000"), &mut b[1]);
        m.learn(h(CallKey(2)), Side::Callee, addr("10.0.0.1:4000"), &mut b[1]); // owned: not learnt
        assert_eq!(m.len(), 2);
        m.release(CallKey(2), &mut b);
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn loss_from_sequence_numbers() {
        let mut leg = LegMedia::default();
        let k = MediaKind::Audio { encoding: "PCMA".into(), clock_rate: 8000 };
        let src = addr("10.0.0.1:4000");
        // 65530..=65535, 0..=9 across the wrap, with 65533, 2 and 3 missing, 5 late, 7 twice.
        let seqs = [65530u16, 65531, 65532, 65534, 65535, 0, 1, 4, 6, 5, 7, 7, 8, 9];
        for (i, s) in seqs.iter().enumerate() {
            leg.on_packet(Ts(i as i64), src, &pkt(8, *s, 7), &k);
        }
        let st = leg.finish();
        assert_eq!(st.packets, 14);
        assert_eq!(st.lost, 3);
        assert_eq!(st.codecs, vec!["PCMA".to_string()]);
        assert_eq!((st.first_at, st.last_at), (Some(Ts(0)), Some(Ts(13))));
    }

    #[test]
    fn same_ssrc_from_two_sources_is_two_streams() {
        let mut leg = LegMedia::default();
        let k = MediaKind::Audio { encoding: "PCMA".into(), clock_rate: 8000 };
        for s in 0..10u16 {
            leg.on_packet(Ts(0), addr("10.0.0.1:4000"), &pkt(8, s, 7), &k);
            leg.on_packet(Ts(0), addr("10.0.0.9:4000"), &pkt(8, 1000 + s * 2, 7), &k);
        }
        assert_eq!(leg.finish().lost, 9);
    }

    #[test]
    fn sequence_restart_is_not_loss() {
        let mut leg = LegMedia::default();
        let k = MediaKind::ComfortNoise;
        let src = addr("10.0.0.1:4000");
        for s in [10u16, 11, 13, 30000, 30001, 30002] {
            leg.on_packet(Ts(0), src, &pkt(13, s, 7), &k);
        }
        assert_eq!(leg.finish().lost, 1);
    }

    proptest! {
        #[test]
        fn loss_is_exact_for_in_order_streams_with_gaps(start in any::<u16>(), gaps in proptest::collection::vec(0u16..50, 1..200)) {
            let mut leg = LegMedia::default();
            let k = MediaKind::Audio { encoding: "PCMA".into(), clock_rate: 8000 };
            let mut seq = start;
            let mut missing = 0u64;
            for g in &gaps {
                leg.on_packet(Ts(0), addr("10.0.0.1:4000"), &pkt(8, seq, 1), &k);
                seq = seq.wrapping_add(g + 1);
                missing += u64::from(*g);
            }
            let last_gap = u64::from(*gaps.last().unwrap());
            let st = leg.finish();
            prop_assert_eq!(st.packets, gaps.len() as u64);
            prop_assert_eq!(st.lost, missing - last_gap);
        }
    }
}
