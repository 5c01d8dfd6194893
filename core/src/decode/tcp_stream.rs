//! TCP: per-direction stream reassembly (keyed by the 4-tuple) feeding SIP framing.
//! In-order bytes are framed at once (straight from the segment when nothing is buffered,
//! so the common case copies only a trailing partial message); out-of-order segments wait
//! in a small bounded list; bytes already delivered (retransmissions, overlaps) are never
//! delivered twice. SYN sets the sequence origin and starts the stream at a message
//! boundary; a stream first seen mid-way hunts for the next SIP start line; FIN and RST
//! free the state. A hole that has not filled after `tcp_gap_timeout` (checked when the
//! next segment arrives) or that overflows the out-of-order bounds is given up: the bytes
//! after it are used and the stream hunts for a start line again.
//! Written here: no maintained crate does passive (sniffed, both directions, lossy) TCP
//! reassembly without owning the I/O; the shape follows pcap-analyzer's TCP reassembly
//! (streams expire on packet time) and ezk's framing loop.
//! On `DecodeConfig::ws_ports` a stream may be SIP over WebSocket (RFC 7118): the HTTP
//! Upgrade is recognised, then frames are unmasked and a message fragmented over several
//! frames is put back together (`websocket`); a stream that opens with a TLS record is
//! unreadable and counted (`TlsNotReadable`, and the flow under its server's address).
//! May use: `sip_frame`, `websocket`. Invariants: a stream buffers at most one partial message
//! (≤ `tcp_max_message` plus one segment) and 2 × `tcp_max_message` of out-of-order data;
//! at most `MAX_STREAMS` streams and `MAX_BUFFERED` bytes overall (least recently seen
//! streams are evicted past that); each segment that delivers nothing but discards bytes
//! counts one drop (`TcpNotSip` before the stream has shown a SIP start line, `TcpStream`
//! after; `TlsNotReadable` on a TLS stream); the HTTP Upgrade of a WebSocket stream counts
//! nothing, like a TCP handshake; a stream freed (FIN, RST, idle, eviction) while it still held undelivered
//! bytes counts one `TcpStream` for the stream.

use super::deadlines::Deadlines;
use super::sip_frame::{self, Framing};
use super::websocket::{self, WsFrame};
use super::{Datagram, DatagramOut, DecodeConfig, Decoder, PayloadHint, Transport};
use crate::counters::{Counters, DropReason};
use crate::time::{Dur, Ts};
use etherparse::TcpHeaderSlice;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Streams followed at once.
const MAX_STREAMS: usize = 16 * 1024;
/// Bytes buffered over all streams.
const MAX_BUFFERED: usize = 64 * 1024 * 1024;
/// Out-of-order segments held per stream.
const MAX_OOO_SEGMENTS: usize = 64;
/// A segment this far ahead of what we expect means we lost track: resynchronise on it.
const MAX_WINDOW: i64 = 16 * 1024 * 1024;

/// One direction of a TCP connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FlowKey {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl FlowKey {
    fn reverse(self) -> FlowKey {
        FlowKey { src: self.dst, dst: self.src }
    }
}

/// The parts of a TCP segment the reassembly uses.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Segment<'a> {
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: &'a [u8],
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Mode {
    /// At a message boundary (or inside a message being framed).
    Synced,
    /// Looking for the next SIP start line.
    Hunting,
    /// Discarding the rest of an oversized message (bytes still to skip).
    Skipping(usize),
    /// On a WebSocket port, before the HTTP Upgrade (or the first frame, when the
    /// handshake was not captured).
    Http,
    /// WebSocket frames after the Upgrade.
    Ws,
    /// TLS: nothing here can be read.
    Tls,
}

/// Framing state, kept apart from the buffer so both can be borrowed at once.
#[derive(Debug)]
struct FrameState {
    mode: Mode,
    /// The current message's total length, once its header block was seen.
    total: Option<usize>,
    /// A SIP start line was seen on this stream (decides TcpNotSip vs TcpStream).
    sip_seen: bool,
    /// The stream was upgraded to WebSocket: after a skipped frame, go back to `Ws`.
    ws: bool,
    /// A WebSocket message being put together from its frames, unmasked.
    ws_msg: Vec<u8>,
}

impl FrameState {
    fn discard_reason(&self) -> DropReason {
        if self.mode == Mode::Tls {
            DropReason::TlsNotReadable
        } else if self.sip_seen {
            DropReason::TcpStream
        } else {
            DropReason::TcpNotSip
        }
    }
}

#[derive(Debug)]
struct Stream {
    gen: u64,
    /// Sequence number of the next byte to deliver.
    next_seq: u32,
    /// In-order bytes not yet framed: a partial message, or while hunting an unfinished line.
    buf: Vec<u8>,
    /// Out-of-order segments (sequence number, bytes), ascending from `next_seq`.
    ooo: Vec<(u32, Vec<u8>)>,
    ooo_bytes: usize,
    fr: FrameState,
    last_seen: Ts,
    /// When the current hole in front of `ooo` opened.
    gap_since: Option<Ts>,
}

impl Stream {
    fn new(gen: u64, next_seq: u32, mode: Mode, ts: Ts) -> Stream {
        Stream {
            gen,
            next_seq,
            buf: Vec::new(),
            ooo: Vec::new(),
            ooo_bytes: 0,
            fr: FrameState { mode, total: None, sip_seen: false, ws: false, ws_msg: Vec::new() },
            last_seen: ts,
            gap_since: None,
        }
    }

    fn mem(&self) -> usize {
        self.buf.len() + self.ooo_bytes + self.fr.ws_msg.len()
    }

    /// Holds bytes that were neither delivered nor already counted as dropped.
    fn has_undelivered(&self) -> bool {
        !self.ooo.is_empty()
            || !self.fr.ws_msg.is_empty()
            || matches!(self.fr.mode, Mode::Synced | Mode::Ws) && self.buf.iter().any(|&c| c != b'\r' && c != b'\n')
    }

    fn reset(&mut self, next_seq: u32, mode: Mode) {
        self.next_seq = next_seq;
        self.buf.clear();
        self.ooo.clear();
        self.ooo_bytes = 0;
        self.fr.mode = mode;
        self.fr.total = None;
        self.fr.ws_msg.clear();
        self.gap_since = None;
    }
}

/// Signed distance from `base` to `seq` in sequence space.
fn rel(seq: u32, base: u32) -> i64 {
    i64::from(seq.wrapping_sub(base) as i32)
}

pub(crate) struct TcpStreams {
    streams: HashMap<FlowKey, Stream>,
    /// Idle deadlines, earliest first; an item whose stream is gone or was seen since is
    /// stale and re-armed or skipped by `expire`.
    deadlines: Deadlines<FlowKey>,
    next_gen: u64,
    buffered: usize,
}

/// Where a stream's framed messages go.
struct Emit<'a, 's> {
    sink: &'a mut DatagramOut<'s>,
    ts: Ts,
    key: FlowKey,
}

impl Emit<'_, '_> {
    fn message(&mut self, payload: &[u8]) {
        self.send(payload, Transport::Tcp);
    }

    fn send(&mut self, payload: &[u8], transport: Transport) {
        self.sink.emit(Datagram {
            ts: self.ts,
            src: self.key.src,
            dst: self.key.dst,
            transport,
            payload,
            hint: PayloadHint::Sip,
            correlation: None,
        });
    }

    /// A TLS stream's first record: a ClientHello names its server, counted once per
    /// connection under that address.
    fn tls_flow(&mut self, record: websocket::Tls) {
        if record == websocket::Tls::ClientHello {
            *self.sink.counters.tls_servers.entry(self.key.dst.to_string()).or_default() += 1;
        }
    }
}

impl TcpStreams {
    pub fn new() -> TcpStreams {
        TcpStreams { streams: HashMap::new(), deadlines: Deadlines::new(), next_gen: 0, buffered: 0 }
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Take one segment. `Err` only when it delivered nothing and discarded bytes.
    pub fn segment(
        &mut self,
        ts: Ts,
        key: FlowKey,
        seg: Segment<'_>,
        cfg: &DecodeConfig,
        sink: &mut DatagramOut<'_>,
    ) -> Result<(), DropReason> {
        let emitted_before = sink.emitted;
        if seg.rst {
            // The connection is gone in both directions. A RST's payload, if any, is a
            // diagnostic, not stream data (RFC 9293 §3.5.3).
            self.remove(key, sink.counters);
            self.remove(key.reverse(), sink.counters);
            return Ok(());
        }
        if !self.streams.contains_key(&key) {
            if seg.payload.is_empty() && !seg.syn {
                // An ACK or FIN of a stream we do not follow: nothing to keep.
                return Ok(());
            }
            self.make_room(sink.counters);
            let ws = cfg.ws_ports.contains(&key.src.port()) || cfg.ws_ports.contains(&key.dst.port());
            let (next, mode) = match (seg.syn, ws) {
                (_, true) => (if seg.syn { seg.seq.wrapping_add(1) } else { seg.seq }, Mode::Http),
                (true, false) => (seg.seq.wrapping_add(1), Mode::Synced),
                (false, false) => (seg.seq, Mode::Hunting),
            };
            let gen = self.next_gen;
            self.next_gen += 1;
            self.streams.insert(key, Stream::new(gen, next, mode, ts));
            self.deadlines.arm(ts.saturating_add(cfg.tcp_idle), gen, key);
        }
        let Some(st) = self.streams.get_mut(&key) else {
            return Ok(());
        };
        let mem_before = st.mem();
        st.last_seen = ts;
        let mut lost = None;
        if seg.syn && st.next_seq != seg.seq.wrapping_add(1) {
            // A new connection on the same ports (the old one's state is stale).
            if st.has_undelivered() {
                lost = Some(DropReason::TcpStream);
            }
            let mode = if st.fr.ws || st.fr.mode == Mode::Http { Mode::Http } else { Mode::Synced };
            st.reset(seg.seq.wrapping_add(1), mode);
            st.fr.sip_seen = false;
            st.fr.ws = false;
        }
        let data_seq = if seg.syn { seg.seq.wrapping_add(1) } else { seg.seq };
        let mut emit = Emit { sink, ts, key };
        if !seg.payload.is_empty() {
            lost = lost.or(data(st, data_seq, seg.payload, cfg, &mut emit));
        }
        if st.gap_since.is_some_and(|since| ts.since(since) >= cfg.tcp_gap_timeout) {
            lost = lost.or(skip_gap(st, cfg, &mut emit));
        }
        let end = data_seq.wrapping_add(seg.payload.len() as u32);
        let closed = seg.fin && st.ooo.is_empty() && end == st.next_seq;
        let mem_after = st.mem();
        self.buffered = (self.buffered + mem_after).saturating_sub(mem_before);
        if closed {
            // Counts the unfinished message, if one is left, for the stream.
            self.remove(key, sink.counters);
        }
        while self.buffered > MAX_BUFFERED && !self.streams.is_empty() {
            self.evict_lru(sink.counters);
        }
        match lost {
            Some(why) if sink.emitted == emitted_before => Err(why),
            _ => Ok(()),
        }
    }

    fn remove(&mut self, key: FlowKey, counters: &mut Counters) {
        if let Some(st) = self.streams.remove(&key) {
            self.buffered = self.buffered.saturating_sub(st.mem());
            if st.has_undelivered() {
                counters.drop(DropReason::TcpStream);
            }
        }
        self.trim();
    }

    /// Drop deadlines of streams that are gone, so the earliest one is a live stream's.
    fn trim(&mut self) {
        let streams = &self.streams;
        self.deadlines.trim(|key, gen| streams.get(key).is_some_and(|s| s.gen == gen));
    }

    fn make_room(&mut self, counters: &mut Counters) {
        while self.streams.len() >= MAX_STREAMS {
            self.evict_lru(counters);
        }
    }

    fn evict_lru(&mut self, counters: &mut Counters) {
        let oldest = self.streams.iter().min_by_key(|(_, s)| (s.last_seen, s.gen)).map(|(k, _)| *k);
        if let Some(key) = oldest {
            self.remove(key, counters);
        }
    }

    /// Free every stream idle for `idle` at `now`.
    pub fn expire(&mut self, now: Ts, idle: Dur, counters: &mut Counters) {
        while let Some((gen, key)) = self.deadlines.pop_due(now) {
            let Some(st) = self.streams.get(&key).filter(|s| s.gen == gen) else { continue };
            let due = st.last_seen.saturating_add(idle);
            if due <= now {
                self.remove(key, counters);
            } else {
                self.deadlines.arm(due, gen, key);
            }
        }
        self.trim();
    }

    /// The earliest idle deadline armed for a live stream (it may have been seen since;
    /// `expire` then re-arms it later).
    pub fn next_expiry(&self) -> Option<Ts> {
        self.deadlines.next()
    }
}

/// Place a segment's bytes; frame what became contiguous. Returns why bytes were lost.
fn data(st: &mut Stream, seq: u32, payload: &[u8], cfg: &DecodeConfig, emit: &mut Emit<'_, '_>) -> Option<DropReason> {
    let len = payload.len() as i64;
    let ooo_cap = cfg.tcp_max_message.saturating_mul(2);
    let mut lost = None;
    // At most: give up a hole, then place the segment (3 rounds bound the loop).
    for _ in 0..3 {
        let off = rel(seq, st.next_seq);
        if off + len <= 0 {
            // Everything here was delivered already: a retransmission.
            return lost;
        }
        if off <= 0 {
            let fresh = payload.get((-off) as usize..).unwrap_or_default();
            st.next_seq = st.next_seq.wrapping_add(fresh.len() as u32);
            lost = lost.or(feed(st, fresh, cfg.tcp_max_message, emit));
            return lost.or(drain_ooo(st, cfg, emit));
        }
        if off > MAX_WINDOW {
            // Far ahead of anything plausible: we lost track of this stream.
            lost = Some(DropReason::TcpStream);
            st.reset(seq, Mode::Hunting);
            continue;
        }
        if st.ooo.len() < MAX_OOO_SEGMENTS && st.ooo_bytes + payload.len() <= ooo_cap {
            let pos = st.ooo.partition_point(|(s, _)| rel(*s, st.next_seq) < off);
            match st.ooo.get_mut(pos) {
                Some((s, d)) if *s == seq => {
                    if d.len() < payload.len() {
                        st.ooo_bytes = st.ooo_bytes + payload.len() - d.len();
                        *d = payload.to_vec();
                    }
                }
                _ => {
                    st.ooo.insert(pos, (seq, payload.to_vec()));
                    st.ooo_bytes += payload.len();
                }
            }
            if st.gap_since.is_none() {
                st.gap_since = Some(emit.ts);
            }
            return lost;
        }
        // Over the out-of-order bounds: give up the hole in front.
        lost = lost.or(if st.ooo.is_empty() {
            st.reset(seq, Mode::Hunting);
            Some(DropReason::TcpStream)
        } else {
            skip_gap(st, cfg, emit)
        });
    }
    lost
}

/// Deliver out-of-order segments that became contiguous.
fn drain_ooo(st: &mut Stream, cfg: &DecodeConfig, emit: &mut Emit<'_, '_>) -> Option<DropReason> {
    let mut lost = None;
    let mut progressed = false;
    while let Some((seq, _)) = st.ooo.first() {
        let off = rel(*seq, st.next_seq);
        if off > 0 {
            break;
        }
        let (_, bytes) = st.ooo.remove(0);
        st.ooo_bytes = st.ooo_bytes.saturating_sub(bytes.len());
        if let Some(fresh) = bytes.get((-off) as usize..).filter(|f| !f.is_empty()) {
            st.next_seq = st.next_seq.wrapping_add(fresh.len() as u32);
            lost = lost.or(feed(st, fresh, cfg.tcp_max_message, emit));
            progressed = true;
        }
    }
    if st.ooo.is_empty() {
        st.gap_since = None;
    } else if progressed {
        st.gap_since = Some(emit.ts);
    }
    lost
}

/// Give up the hole in front of the first out-of-order segment: what was in it is lost,
/// so the message being framed is broken and the stream hunts for a start line.
fn skip_gap(st: &mut Stream, cfg: &DecodeConfig, emit: &mut Emit<'_, '_>) -> Option<DropReason> {
    let Some((seq, _)) = st.ooo.first() else {
        st.gap_since = None;
        return None;
    };
    st.next_seq = *seq;
    st.buf.clear();
    st.fr.mode = Mode::Hunting;
    st.fr.total = None;
    st.gap_since = None;
    drain_ooo(st, cfg, emit).or(Some(DropReason::TcpStream))
}

/// Append in-order bytes and frame every complete message.
fn feed(st: &mut Stream, data: &[u8], max: usize, emit: &mut Emit<'_, '_>) -> Option<DropReason> {
    if st.buf.is_empty() {
        // Fast path: frame straight from the segment, keep only the unfinished tail.
        let (used, lost) = frame_all(&mut st.fr, data, max, emit);
        st.buf.extend_from_slice(data.get(used..).unwrap_or_default());
        lost
    } else {
        st.buf.extend_from_slice(data);
        let (used, lost) = frame_all(&mut st.fr, &st.buf, max, emit);
        st.buf.drain(..used.min(st.buf.len()));
        lost
    }
}

/// Frame messages from the start of `b`; returns the bytes consumed (delivered, skipped
/// or discarded) and why bytes were discarded, if they were.
fn frame_all(fr: &mut FrameState, b: &[u8], max: usize, emit: &mut Emit<'_, '_>) -> (usize, Option<DropReason>) {
    let mut at = 0usize;
    let mut lost = None;
    loop {
        let rest = b.get(at..).unwrap_or_default();
        if !fr.sip_seen && matches!(fr.mode, Mode::Synced | Mode::Hunting | Mode::Http) {
            if let Some(record) = websocket::tls_record(rest) {
                emit.tls_flow(record);
                fr.mode = Mode::Tls;
            }
        }
        match fr.mode {
            Mode::Tls => {
                // Unreadable to the end of the stream; the bytes are counted, not kept.
                return (b.len(), if rest.is_empty() { lost } else { Some(DropReason::TlsNotReadable) });
            }
            Mode::Http => {
                if rest.is_empty() {
                    return (at, lost);
                }
                if rest.starts_with(b"GET ") || rest.starts_with(b"HTTP/") {
                    let Some(end) = sip_frame::header_end(rest) else {
                        if rest.len() > max {
                            fr.mode = Mode::Hunting;
                            return (b.len(), Some(fr.discard_reason()));
                        }
                        return (at, lost);
                    };
                    if websocket::is_upgrade(rest.get(..end).unwrap_or_default()) {
                        fr.ws = true;
                        fr.mode = Mode::Ws;
                    } else {
                        fr.mode = Mode::Hunting;
                        lost = lost.or(Some(fr.discard_reason()));
                    }
                    at += end;
                } else if websocket::looks_like_frame(rest) {
                    // The Upgrade happened before the capture began.
                    fr.ws = true;
                    fr.mode = Mode::Ws;
                } else {
                    // Plain SIP over TCP on this port.
                    fr.mode = Mode::Synced;
                }
            }
            Mode::Ws => match ws_frame(fr, rest, max, emit) {
                WsStep::Used(n, why) => {
                    at += n;
                    lost = lost.or(why);
                }
                WsStep::Wait => return (at, lost),
            },
            Mode::Skipping(n) => {
                let k = n.min(rest.len());
                at += k;
                if k > 0 {
                    lost = Some(DropReason::TcpStream);
                }
                if k < n {
                    fr.mode = Mode::Skipping(n - k);
                    return (at, lost);
                }
                fr.mode = if fr.ws { Mode::Ws } else { Mode::Synced };
            }
            Mode::Hunting => match sip_frame::find_start_line(rest) {
                Ok(off) => {
                    if off > 0 {
                        lost = lost.or(Some(fr.discard_reason()));
                    }
                    at += off;
                    fr.mode = Mode::Synced;
                }
                Err(keep) => {
                    // Nothing to sync on in these bytes.
                    return (at + keep, lost.or(Some(fr.discard_reason())));
                }
            },
            Mode::Synced => {
                let nl = sip_frame::leading_newlines(rest);
                at += nl;
                let rest = rest.get(nl..).unwrap_or_default();
                if rest.is_empty() {
                    return (at, lost);
                }
                match sip_frame::frame(rest, max, fr.total) {
                    Framing::Complete(n) => {
                        emit.message(rest.get(..n).unwrap_or_default());
                        at += n;
                        fr.sip_seen = true;
                        fr.total = None;
                    }
                    Framing::Incomplete(total) => {
                        fr.total = total;
                        return (at, lost);
                    }
                    Framing::TooBig(Some(total)) => {
                        fr.sip_seen = true;
                        fr.mode = Mode::Skipping(total);
                        fr.total = None;
                        lost = Some(DropReason::TcpStream);
                    }
                    Framing::TooBig(None) => {
                        // Even the header block is over the cap: hunt past this start line.
                        fr.mode = Mode::Hunting;
                        fr.total = None;
                        at += 1;
                        lost = Some(DropReason::TcpStream);
                    }
                    Framing::NotSip => {
                        lost = lost.or(Some(fr.discard_reason()));
                        fr.mode = Mode::Hunting;
                        fr.total = None;
                        at += rest.iter().position(|&c| c == b'\n').map_or(rest.len(), |i| i + 1);
                    }
                }
            }
        }
    }
}

/// What one step over a WebSocket stream did.
enum WsStep {
    /// Consumed this many bytes (a frame, or what was skipped), losing some if `Some`.
    Used(usize, Option<DropReason>),
    /// The frame is not complete yet.
    Wait,
}

/// Take the WebSocket frame at the start of `rest`: control frames are skipped, data frames
/// unmasked into the message being built, and a finished message is delivered as SIP
/// (leading CR/LF keep-alives trimmed; an empty one is a keep-alive, delivered as nothing).
fn ws_frame(fr: &mut FrameState, rest: &[u8], max: usize, emit: &mut Emit<'_, '_>) -> WsStep {
    let (fin, opcode, header, len, mask) = match websocket::parse_frame(rest) {
        WsFrame::Incomplete => return WsStep::Wait,
        WsFrame::Bad => {
            // Lost the frame boundaries (or an extension we cannot read): give the rest up.
            fr.ws_msg.clear();
            return WsStep::Used(rest.len(), Some(DropReason::TcpStream));
        }
        WsFrame::Frame { fin, opcode, header, len, mask } => (fin, opcode, header, len, mask),
    };
    let total = usize::try_from(len).ok().and_then(|l| l.checked_add(header));
    let Some(total) = total.filter(|_| len <= max as u64) else {
        fr.ws_msg.clear();
        fr.mode = Mode::Skipping(usize::try_from(len).unwrap_or(usize::MAX).saturating_add(header));
        return WsStep::Used(0, Some(DropReason::TcpStream));
    };
    let Some(payload) = rest.get(header..total) else { return WsStep::Wait };
    if opcode >= 8 {
        return WsStep::Used(total, None);
    }
    if opcode != websocket::OP_CONTINUATION {
        fr.ws_msg.clear();
    }
    if fr.ws_msg.len() + payload.len() > max {
        fr.ws_msg.clear();
        return WsStep::Used(total, Some(DropReason::TcpStream));
    }
    match mask {
        Some(k) => websocket::unmask_into(payload, k, &mut fr.ws_msg),
        None if fin && fr.ws_msg.is_empty() => {
            // An unmasked, unfragmented message (server to client): straight from the bytes.
            deliver_ws(fr, payload, emit);
            return WsStep::Used(total, None);
        }
        None => fr.ws_msg.extend_from_slice(payload),
    }
    if fin {
        let msg = std::mem::take(&mut fr.ws_msg);
        deliver_ws(fr, &msg, emit);
        fr.ws_msg = msg;
        fr.ws_msg.clear();
    }
    WsStep::Used(total, None)
}

fn deliver_ws(fr: &mut FrameState, msg: &[u8], emit: &mut Emit<'_, '_>) {
    let msg = msg.get(sip_frame::leading_newlines(msg)..).unwrap_or_default();
    if !msg.is_empty() {
        fr.sip_seen = true;
        emit.send(msg, Transport::Ws);
    }
}

impl Decoder {
    pub(super) fn tcp(
        &mut self,
        ts: Ts,
        src: IpAddr,
        dst: IpAddr,
        bytes: &[u8],
        sink: &mut DatagramOut<'_>,
    ) -> Result<(), DropReason> {
        let h = TcpHeaderSlice::from_slice(bytes).map_err(|_| DropReason::BadTcp)?;
        let payload = bytes.get(h.slice().len()..).ok_or(DropReason::BadTcp)?;
        let key =
            FlowKey { src: SocketAddr::new(src, h.source_port()), dst: SocketAddr::new(dst, h.destination_port()) };
        let seg = Segment { seq: h.sequence_number(), syn: h.syn(), fin: h.fin(), rst: h.rst(), payload };
        self.tcp.segment(ts, key, seg, &self.cfg, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::decode::LinkType;
    use proptest::prelude::*;

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    fn msg(n: usize, body: &str) -> Vec<u8> {
        format!("MESSAGE sip:u{n}@example.com SIP/2.0\r\nCall-ID: c{n}\r\nl: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    /// A client stream: SYN at `isn`, then the given segments (offset from ISN+1, bytes).
    fn feed_stream(h: &mut Harness, isn: u32, segs: &[(u32, &[u8])]) {
        h.feed(LinkType::Ipv4, 0, &ipv4_tcp(A, B, 5060, 5060, isn, TcpFlags::SYN, b""));
        for (i, (off, bytes)) in segs.iter().enumerate() {
            let seq = isn.wrapping_add(1).wrapping_add(*off);
            h.feed(LinkType::Ipv4, i as i64 + 1, &ipv4_tcp(A, B, 5060, 5060, seq, TcpFlags::ACK, bytes));
        }
    }

    /// One direction of a TCP connection between ports: SYN at `isn`, then the byte
    /// stream cut into segments at `cuts` (so frames and messages straddle segments).
    fn feed_cut(h: &mut Harness, (sport, dport): (u16, u16), isn: u32, stream: &[u8], cuts: &[usize], t0: i64) {
        let (src, dst) = if sport < dport { (B, A) } else { (A, B) };
        h.feed(LinkType::Ipv4, t0, &ipv4_tcp(src, dst, sport, dport, isn, TcpFlags::SYN, b""));
        let mut at = 0;
        for (i, end) in cuts.iter().copied().chain([stream.len()]).enumerate() {
            let seq = isn.wrapping_add(1).wrapping_add(at as u32);
            h.feed(
                LinkType::Ipv4,
                t0 + i as i64 + 1,
                &ipv4_tcp(src, dst, sport, dport, seq, TcpFlags::ACK, &stream[at..end]),
            );
            at = end;
        }
    }

    #[test]
    fn sip_over_websocket_both_directions() {
        use super::websocket::build::frame;
        let mut h = Harness::default();
        // Browser → PBX: the Upgrade, a masked text frame, a ping, a binary message in two
        // fragments with a pong between them, a keep-alive, all cut across segments.
        let invite = msg(1, "v=0");
        let bye = msg(2, "");
        let mut c = b"GET /ws HTTP/1.1\r\nHost: pbx\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: sip\r\n\r\n".to_vec();
        c.extend(frame(true, 1, Some([9, 8, 7, 6]), &invite));
        c.extend(frame(true, 9, Some([1, 1, 1, 1]), b"hi"));
        c.extend(frame(false, 2, Some([5, 5, 5, 5]), &bye[..10]));
        c.extend(frame(true, 10, Some([1, 2, 1, 2]), b""));
        c.extend(frame(true, 0, Some([3, 4, 5, 6]), &bye[10..]));
        c.extend(frame(true, 1, Some([3, 4, 5, 6]), b"\r\n\r\n"));
        feed_cut(&mut h, (50000, 8080), 7, &c, &[20, 120, 150, 151, 200], 0);
        // PBX → browser: the 101, then unmasked frames (one long enough for a 16-bit length).
        let ok = msg(3, &"s".repeat(300));
        let mut s = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec();
        s.extend(frame(true, 1, None, &ok));
        s.extend(frame(true, 1, None, &msg(4, "")));
        feed_cut(&mut h, (8080, 50000), 99, &s, &[40, 100, 101], 100);
        assert_eq!(h.payloads(), vec![invite, bye, ok, msg(4, "")]);
        assert!(h.out.iter().all(|d| d.transport == Transport::Ws && d.hint == PayloadHint::Sip));
        assert_eq!(h.out[0].src.port(), 50000);
        assert_eq!(h.counters.total_drops(), 0, "{:?}", h.counters.drops);
        // Not a WebSocket port: the same bytes are not SIP.
        let mut h = Harness::default();
        feed_cut(&mut h, (50000, 9999), 7, &c, &[], 0);
        assert!(h.out.is_empty());
        assert_eq!(h.counters.dropped(DropReason::TcpNotSip), 1);
    }

    #[test]
    fn websocket_without_handshake_and_broken_frames() {
        use super::websocket::build::frame;
        let mut h = Harness::default();
        // Captured after the Upgrade: frames from the first byte.
        let mut c = frame(true, 1, Some([1, 2, 3, 4]), &msg(1, ""));
        feed_cut(&mut h, (50001, 5066), 1, &c, &[3], 0);
        assert_eq!(h.payloads(), vec![msg(1, "")]);
        // Then a frame with RSV1 (compressed): the rest of the stream is given up, counted.
        c = frame(true, 1, Some([1, 2, 3, 4]), &msg(2, ""));
        c[0] |= 0x40;
        let first = frame(true, 1, None, &msg(3, ""));
        feed_cut(&mut h, (50002, 5066), 1, &[&first[..], &c[..]].concat(), &[first.len()], 10);
        assert_eq!(h.payloads(), vec![msg(1, ""), msg(3, "")]);
        assert_eq!(h.counters.dropped(DropReason::TcpStream), 1);
        // Plain SIP over TCP on a WebSocket port still works, and so does plain HTTP (not SIP).
        feed_cut(&mut h, (50003, 8080), 1, &msg(5, ""), &[], 20);
        feed_cut(&mut h, (50004, 80), 1, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &[], 30);
        assert_eq!(h.out.len(), 3);
        assert_eq!(h.out[2].transport, Transport::Tcp);
        assert_eq!(h.counters.dropped(DropReason::TcpNotSip), 1);
    }

    #[test]
    fn tls_streams_are_counted_per_server() {
        let mut h = Harness::default();
        let hello = [22, 3, 1, 0, 100, 1, 0, 0, 96, 3, 3];
        let mut app = vec![23, 3, 3, 0, 40];
        app.extend_from_slice(&[0xaa; 40]);
        for (i, port) in [50010u16, 50011].into_iter().enumerate() {
            let t = i as i64 * 100;
            feed_cut(&mut h, (port, 5061), 1, &[&hello[..], &app[..]].concat(), &[hello.len()], t);
        }
        feed_cut(&mut h, (50012, 7443), 1, &hello, &[], 300);
        assert!(h.out.is_empty());
        assert_eq!(h.counters.dropped(DropReason::TlsNotReadable), 5);
        let servers: Vec<(String, u64)> = h.counters.tls_servers.clone().into_iter().collect();
        assert_eq!(servers, vec![("10.0.0.2:5061".to_string(), 2), ("10.0.0.2:7443".to_string(), 1)]);
    }

    #[test]
    fn several_messages_in_one_segment_and_keepalives() {
        let mut h = Harness::default();
        let mut s = msg(1, "hello");
        s.extend_from_slice(b"\r\n\r\n");
        s.extend_from_slice(&msg(2, ""));
        s.extend_from_slice(b"\r\n");
        feed_stream(&mut h, 100, &[(0, &s)]);
        assert_eq!(h.payloads(), vec![msg(1, "hello"), msg(2, "")]);
        assert!(h.out.iter().all(|d| d.transport == Transport::Tcp && d.hint == PayloadHint::Sip));
        assert_eq!(h.counters.total_drops(), 0);
    }

    #[test]
    fn one_message_over_many_segments_takes_the_last_ts() {
        let mut h = Harness::default();
        let m = msg(1, &"x".repeat(3000));
        let segs: Vec<(u32, &[u8])> = m.chunks(700).enumerate().map(|(i, c)| ((i * 700) as u32, c)).collect();
        feed_stream(&mut h, u32::MAX - 1000, &segs); // wraps the sequence space too
        assert_eq!(h.out[0].ts.0, segs.len() as i64);
        assert_eq!(h.payloads(), vec![m.clone()]);
        assert_eq!(h.counters.total_drops(), 0);
    }

    #[test]
    fn reordered_and_retransmitted_segments() {
        let mut h = Harness::default();
        let mut s = msg(1, "abc");
        s.extend_from_slice(&msg(2, "defgh"));
        let (x, y, z) = (&s[..30], &s[30..70], &s[70..]);
        feed_stream(&mut h, 7, &[(70, z), (0, x), (0, x), (30, y), (30, y), (20, &s[20..50])]);
        assert_eq!(h.payloads(), vec![msg(1, "abc"), msg(2, "defgh")]);
        assert_eq!(h.counters.total_drops(), 0);
        assert_eq!(h.decoder.pending().1, 1);
    }

    #[test]
    fn mid_stream_capture_resyncs() {
        let mut h = Harness::default();
        let mut s = b"ength: 0\r\n\r\n".to_vec();
        s.extend_from_slice(&msg(5, "body"));
        // No SYN: the first segment starts inside a message.
        h.feed(LinkType::Ipv4, 1, &ipv4_tcp(A, B, 5060, 5060, 5000, TcpFlags::ACK, &s));
        assert_eq!(h.payloads(), vec![msg(5, "body")]);
        // A lone tail before any start line is "not SIP" (yet).
        h.feed(LinkType::Ipv4, 2, &ipv4_tcp(B, A, 5060, 5060, 1, TcpFlags::ACK, b"tail only\r\n"));
        assert_eq!(h.counters.dropped(DropReason::TcpNotSip), 1);
    }

    #[test]
    fn not_sip_counted_per_segment() {
        let mut h = Harness::default();
        feed_stream(
            &mut h,
            1,
            &[(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (27, b"more bytes\r\n"), (39, b"\x16\x03")],
        );
        assert!(h.out.is_empty());
        assert_eq!(h.counters.dropped(DropReason::TcpNotSip), 3);
    }

    #[test]
    fn oversized_message_is_skipped_then_resyncs() {
        let cfg = DecodeConfig { tcp_max_message: 200, ..DecodeConfig::default() };
        let mut h = Harness::with_config(cfg);
        let big = msg(1, &"b".repeat(500));
        let small = msg(2, "ok");
        let mut s = big.clone();
        s.extend_from_slice(&small);
        let segs: Vec<(u32, &[u8])> = s.chunks(150).enumerate().map(|(i, c)| ((i * 150) as u32, c)).collect();
        feed_stream(&mut h, 1, &segs);
        assert_eq!(h.payloads(), vec![small]);
        // Every segment that only carried skipped bytes counts once.
        let skipped_only = segs.len() - 1;
        assert_eq!(h.counters.dropped(DropReason::TcpStream), skipped_only as u64);
    }

    #[test]
    fn gap_that_never_fills_is_given_up() {
        let mut h = Harness::default();
        let (m1, m2, m3) = (msg(1, "one"), msg(2, "two"), msg(3, "three"));
        let o2 = m1.len() as u32;
        let o3 = o2 + m2.len() as u32;
        h.feed(LinkType::Ipv4, 0, &ipv4_tcp(A, B, 1, 2, 0, TcpFlags::SYN, b""));
        h.feed(LinkType::Ipv4, 1_000_000, &ipv4_tcp(A, B, 1, 2, 1, TcpFlags::ACK, &m1));
        // m2 is never captured; m3 waits behind the hole...
        h.feed(LinkType::Ipv4, 1_100_000, &ipv4_tcp(A, B, 1, 2, 1 + o3, TcpFlags::ACK, &m3));
        assert_eq!(h.out.len(), 1);
        // ...until a later segment finds the hole older than tcp_gap_timeout (2 s).
        let m4 = msg(4, "four");
        let o4 = o3 + m3.len() as u32;
        h.feed(LinkType::Ipv4, 3_200_000, &ipv4_tcp(A, B, 1, 2, 1 + o4, TcpFlags::ACK, &m4));
        assert_eq!(h.payloads(), vec![m1, m3, m4]);
        assert_eq!(h.out[1].ts.0, 3_200_000);
        let _ = m2;
    }

    #[test]
    fn idle_streams_expire_and_count_unfinished_messages() {
        let mut h = Harness::default();
        let m = msg(1, "abcdef");
        feed_stream(&mut h, 1, &[(0, &m[..20])]);
        assert_eq!(h.decoder.pending().1, 1);
        let t = h.decoder.next_expiry().unwrap();
        assert_eq!(t, Ts(300_000_000));
        h.decoder.expire(Ts(t.0 - 1), &mut h.counters);
        assert_eq!(h.decoder.pending().1, 1);
        // The stream was seen at ts 1: the first deadline is early, expire re-arms it.
        h.decoder.expire(t, &mut h.counters);
        let t2 = h.decoder.next_expiry().unwrap();
        assert!(t2 > t);
        h.decoder.expire(t2, &mut h.counters);
        assert_eq!(h.decoder.pending().1, 0);
        assert_eq!(h.decoder.next_expiry(), None);
        assert_eq!(h.counters.dropped(DropReason::TcpStream), 1);
    }

    #[test]
    fn fin_and_rst_free_the_stream() {
        let mut h = Harness::default();
        let m = msg(1, "x");
        let end = m.len() as u32;
        feed_stream(&mut h, 1, &[(0, &m)]);
        h.feed(LinkType::Ipv4, 9, &ipv4_tcp(A, B, 5060, 5060, 2 + end, TcpFlags::FIN, b""));
        assert_eq!(h.decoder.pending().1, 0);
        feed_stream(&mut h, 1, &[(0, &m[..10])]);
        h.feed(LinkType::Ipv4, 9, &ipv4_tcp(B, A, 5060, 5060, 77, TcpFlags::RST, b""));
        assert_eq!(h.decoder.pending().1, 0);
        // The half message held when the RST came is lost, and counted.
        assert_eq!(h.counters.dropped(DropReason::TcpStream), 1);
        assert_eq!(h.out.len(), 1);
        // Pure ACKs of unknown streams create nothing and count nothing.
        h.feed(LinkType::Ipv4, 10, &ipv4_tcp(A, B, 1, 1, 1, TcpFlags::ACK, b""));
        assert_eq!(h.decoder.pending().1, 0);
        assert_eq!(h.counters.total_drops(), 1);
        // A FIN right after half a message: the stream is freed and the half counted.
        feed_stream(&mut h, 500, &[(0, &m[..12])]);
        h.feed(LinkType::Ipv4, 11, &ipv4_tcp(A, B, 5060, 5060, 501 + 12, TcpFlags::FIN, b""));
        assert_eq!(h.decoder.pending().1, 0);
        assert_eq!(h.counters.dropped(DropReason::TcpStream), 2);
        // A FIN out of order (bytes still missing before it) keeps the stream.
        feed_stream(&mut h, 900, &[(0, &m[..12])]);
        h.feed(LinkType::Ipv4, 12, &ipv4_tcp(A, B, 5060, 5060, 901 + 20, TcpFlags::FIN, b""));
        assert_eq!(h.decoder.pending().1, 1);
    }

    #[test]
    fn new_connection_on_same_ports_resets() {
        let mut h = Harness::default();
        let m = msg(1, "x");
        feed_stream(&mut h, 1, &[(0, &m[..15])]);
        feed_stream(&mut h, 90_000, &[(0, &m)]);
        assert_eq!(h.payloads(), vec![m]);
    }

    #[test]
    fn bad_tcp_header() {
        let mut h = Harness::default();
        let mut p = ipv4_tcp(A, B, 1, 2, 1, TcpFlags::ACK, b"");
        p[20 + 12] = 0x20; // data offset 2 words
        h.feed(LinkType::Ipv4, 1, &p);
        assert_eq!(h.counters.dropped(DropReason::BadTcp), 1);
    }

    /// The stream used by the property tests: messages with bodies, keep-alives between.
    fn stream_bytes(bodies: &[String]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut s = Vec::new();
        let mut msgs = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            let m = msg(i, b);
            s.extend_from_slice(&m);
            if i % 3 == 0 {
                s.extend_from_slice(b"\r\n\r\n");
            }
            msgs.push(m);
        }
        (s, msgs)
    }

    proptest! {
        #[test]
        fn resegmentation_reorder_duplication_yield_the_same_messages(
            bodies in proptest::collection::vec("[a-z\r\n]{0,300}", 1..8),
            cuts in proptest::collection::vec(16usize..400, 1..40),
            swaps in proptest::collection::vec((0usize..40, 0usize..40), 0..6),
            dups in proptest::collection::vec(0usize..64, 0..6),
            isn in any::<u32>(),
        ) {
            let (s, msgs) = stream_bytes(&bodies);
            // Cut into segments.
            let mut segs = Vec::new();
            let mut at = 0;
            let mut ci = 0;
            while at < s.len() {
                let n = cuts[ci % cuts.len()].min(s.len() - at);
                segs.push((at as u32, s[at..at + n].to_vec()));
                at += n;
                ci += 1;
            }
            // Duplicate some (retransmissions, also overlapping ones), then reorder some.
            for d in &dups {
                let (off, bytes) = segs[d % segs.len()].clone();
                segs.push((off, bytes.clone()));
                if bytes.len() > 2 {
                    segs.push((off + 1, bytes[1..].to_vec()));
                }
            }
            for (a, b) in &swaps {
                let n = segs.len();
                segs.swap(a % n, b % n);
            }
            let mut h = Harness::default();
            let refs: Vec<(u32, &[u8])> = segs.iter().map(|(o, b)| (*o, b.as_slice())).collect();
            feed_stream(&mut h, isn, &refs);
            prop_assert_eq!(h.payloads(), msgs);
            prop_assert_eq!(h.counters.total_drops(), 0);
        }

        #[test]
        fn random_segments_never_panic(
            segs in proptest::collection::vec((any::<u32>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)), 1..30),
        ) {
            let mut h = Harness::default();
            for (i, (seq, flags, bytes)) in segs.iter().enumerate() {
                h.feed(LinkType::Ipv4, i as i64, &ipv4_tcp(A, B, 5060, 5060, *seq, TcpFlags(*flags), bytes));
            }
            h.decoder.expire(Ts::MAX, &mut h.counters);
            prop_assert_eq!(h.decoder.pending(), (0, 0));
        }
    }
}
