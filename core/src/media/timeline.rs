//! The stereo timeline of one call: RTP packets of both legs in (with their packet times),
//! ordered blocks of interleaved 16-bit stereo out, left = caller → callee, right =
//! callee → caller.
//!
//! How a packet is placed. The timeline counts frames from the packet time of the call's
//! first audio packet; the recording starts at the earliest frame with audio (normally
//! that packet's, earlier when a packet sent before it arrives after it, within the
//! window), and `MediaOut::Start` says which packet time that is. Each stream (leg + SSRC) is anchored at its first packet: that packet goes at
//! its arrival frame (or right after the leg's previous stream, so a new SSRC neither
//! overlaps nor drifts), and every later packet goes where its extended RTP timestamp
//! says. When the stream's newest packet (by sequence number) lands more than
//! `tolerance` away from its own arrival frame, the timestamps no longer tell time (hold
//! without timestamp advance, a timestamp jump, a restart, clock drift): the stream is
//! re-anchored on that packet's arrival. Packets sent before a re-anchor that arrive
//! after it keep the old anchor. Duplicates (same sequence number) are dropped. A sender
//! whose clock drifts against the capture's is re-anchored once the drift passes the
//! tolerance (200 ms: after about half an hour at 100 ppm), leaving one gap or overlap of
//! that size; within it, the recording follows the sender's timestamps.
//!
//! When audio is written. Packets wait, still encoded, in a per-leg queue ordered by
//! position. Once packet time is `window` past a position, everything before it is
//! committed: queued packets are decoded in position order (so G.722's ADPCM state and
//! the upsampler see each stream in order, and reordered input gives exactly the
//! in-order output), written into a short PCM ring, and emitted as `MediaOut::Audio`.
//! Frames where neither leg has audio come out as `MediaOut::Silence`; silence after the
//! last audio is held back and dropped at `finish`, so a recording ends with its media.
//! A packet that would land before the commit point is too late: dropped and counted.
//!
//! Sample rate: `AudioOptions::rate`, else decided by the first audio packet (16 kHz if it
//! is G.722, 8 kHz otherwise) and fixed from then on. A mixed call (G.722 on one leg or
//! after a re-INVITE, G.711 on the other) is recorded at 16 kHz when the caller asked for
//! it (do so whenever the SDP offered G.722); the 8 kHz leg is upsampled 2×. Without that,
//! G.722 met on an 8 kHz recording is downsampled.
//!
//! May use: `stream`, `g711`, `g722`, `time`, `rtp::RtpPacket`, `track::Leg`.
//! Invariants: output frames are contiguous from 0 and in order; memory is bounded
//! whatever the input (`memory_bound`: queued encoded audio for `window + tolerance +
//! max_packet`, decoded audio for one `max_packet`); no clock.

use super::g722::G722Decoder;
use super::stream::{Decodable, SeqClass, Stream};
use super::{AudioBlock, Codec, MediaOut, SampleRate};
use crate::rtp::RtpPacket;
use crate::time::{Dur, Ts};
use crate::track::Leg;
use serde::Serialize;
use std::collections::VecDeque;

/// Streams remembered per leg; the one unused longest is forgotten first.
const MAX_STREAMS_PER_LEG: usize = 4;
/// Encoded packets waiting per leg (the 600 ms a packet may be placed in, of 5 ms
/// packets, is 120).
const MAX_QUEUED_PER_LEG: usize = 128;

/// Knobs of the timeline. Values are clamped to keep memory bounded: `window` and
/// `tolerance` to 0–1 s (tolerance at least 20 ms), `max_packet` to 10 ms–1 s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioOptions {
    /// How long after its packet time audio is committed: the reordering window.
    pub window: Dur,
    /// How far a stream's newest packet may land from its arrival before re-anchoring.
    pub tolerance: Dur,
    /// The longest audio one packet may carry; longer packets are dropped and counted.
    pub max_packet: Dur,
    /// Fixed output rate, or `None`: decided by the first audio packet.
    pub rate: Option<SampleRate>,
}

impl Default for AudioOptions {
    fn default() -> Self {
        AudioOptions {
            window: Dur::from_millis(200),
            tolerance: Dur::from_millis(200),
            max_packet: Dur::from_millis(200),
            rate: None,
        }
    }
}

/// What happened to the packets of one call's recording, for the recording row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MediaCounters {
    /// Audio packets queued for the timeline (G.711, G.722).
    pub packets_placed: u64,
    /// Dropped: same stream and sequence number as one already seen.
    pub duplicates: u64,
    /// Dropped: would have landed wholly before the commit point.
    pub too_late: u64,
    /// Placed with their beginning cut off at the commit point.
    pub truncated: u64,
    /// Dropped: longer than `max_packet`, too far ahead, or over the queue's bounds.
    pub out_of_range: u64,
    /// Streams re-anchored on packet time (a new SSRC on a leg counts as one).
    pub reanchors: u64,
    /// Streams (leg, SSRC) started.
    pub streams: u64,
    /// Silence filled inside the left / right channel (between its audio), in frames.
    pub gap_frames_left: u64,
    pub gap_frames_right: u64,
    /// Comfort-noise packets (RFC 3389): silence.
    pub comfort_noise: u64,
    /// Packets of codecs not decoded, emitted as `MediaOut::Raw`.
    pub raw_packets: u64,
    /// RFC 4733 telephone-event packets: neither audio nor undecodable.
    pub events_ignored: u64,
    /// Packets pushed after `finish`.
    pub after_finish: u64,
}

/// One output frame in the ring: both channels, and which of them were written.
#[derive(Copy, Clone, Debug, Default)]
struct Slot {
    s: [i16; 2],
    written: u8,
}

/// An encoded packet waiting for the commit point to pass its position.
#[derive(Clone, Debug)]
struct Queued {
    /// First frame to write (at or after the commit point when it was placed).
    at_frame: i64,
    /// Decoded frames to skip first (the part that was already behind the commit point).
    skip: usize,
    ssrc: u32,
    codec: Decodable,
    payload: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
struct LegState {
    streams: Vec<Stream>,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    /// End (exclusive) of the furthest packet placed on this leg.
    placed_end: Option<i64>,
    /// This leg has had audio committed; silence after it is a gap until more audio.
    audio_seen: bool,
    gap_pending: u64,
    gap_frames: u64,
}

/// The recording timeline of one call. See the module documentation.
#[derive(Debug)]
pub struct CallAudio {
    opts: AudioOptions,
    rate: Option<SampleRate>,
    /// Packet time of frame 0: the first audio packet's.
    origin: Option<Ts>,
    now: Ts,
    /// First frame not yet committed; `ring[0]` is this frame.
    head: i64,
    ring: VecDeque<Slot>,
    /// Frame that is output frame 0 (the first frame with audio), once known.
    base: Option<i64>,
    /// Next output frame to emit, and the silence held back before it.
    out_pos: u64,
    held_silence: u64,
    legs: [LegState; 2],
    counters: MediaCounters,
    undecodable: Vec<u8>,
    scratch: Vec<i16>,
    finished: bool,
}

fn leg_index(leg: Leg) -> usize {
    match leg {
        Leg::CallerToCallee => 0,
        Leg::CalleeToCaller => 1,
    }
}

fn clamp_dur(d: Dur, lo_ms: i64, hi_ms: i64) -> Dur {
    Dur(d.0.clamp(lo_ms * 1000, hi_ms * 1000))
}

impl Default for CallAudio {
    fn default() -> Self {
        CallAudio::new(AudioOptions::default())
    }
}

impl CallAudio {
    pub fn new(opts: AudioOptions) -> CallAudio {
        let opts = AudioOptions {
            window: clamp_dur(opts.window, 0, 1000),
            tolerance: clamp_dur(opts.tolerance, 20, 1000),
            max_packet: clamp_dur(opts.max_packet, 10, 1000),
            rate: opts.rate,
        };
        CallAudio {
            rate: opts.rate,
            opts,
            origin: None,
            now: Ts::MIN,
            head: 0,
            ring: VecDeque::new(),
            base: None,
            out_pos: 0,
            held_silence: 0,
            legs: [LegState::default(), LegState::default()],
            counters: MediaCounters::default(),
            undecodable: Vec::new(),
            scratch: Vec::new(),
            finished: false,
        }
    }

    /// The recording's sample rate, once fixed.
    pub fn rate(&self) -> Option<SampleRate> {
        self.rate
    }

    /// Packet time of output frame 0, once the first audio has been committed.
    pub fn start_at(&self) -> Option<Ts> {
        self.base.map(|b| self.frame_time(b))
    }

    pub fn counters(&self) -> &MediaCounters {
        &self.counters
    }

    /// Payload types seen that could not be decoded (in order of first sight, at most 16).
    pub fn undecodable(&self) -> &[u8] {
        &self.undecodable
    }

    pub fn is_undecodable(&self) -> bool {
        !self.undecodable.is_empty()
    }

    /// Output frames emitted so far (audio and silence), i.e. the recording's length.
    pub fn frames_emitted(&self) -> u64 {
        self.out_pos
    }

    /// Bytes this call's audio state holds: the struct and everything it owns on the heap.
    pub fn memory_bytes(&self) -> usize {
        let legs: usize = self
            .legs
            .iter()
            .map(|l| {
                l.streams.capacity() * std::mem::size_of::<Stream>()
                    + l.streams.iter().map(Stream::heap_bytes).sum::<usize>()
                    + l.queue.capacity() * std::mem::size_of::<Queued>()
                    + l.queue.iter().map(|q| q.payload.capacity()).sum::<usize>()
            })
            .sum();
        std::mem::size_of::<Self>()
            + self.ring.capacity() * std::mem::size_of::<Slot>()
            + self.scratch.capacity() * std::mem::size_of::<i16>()
            + self.undecodable.capacity()
            + legs
    }

    /// The most `memory_bytes` can reach with these options, whatever the input: a ring
    /// of the longest packet (decoding waits until the frames before a packet are out),
    /// full queues, the scratch for the longest packet, every stream with a G.722 decoder.
    pub fn memory_bound(&self) -> usize {
        let max_frames = |d: i64| usize::try_from(d.saturating_mul(16_000) / 1_000_000).unwrap_or(usize::MAX);
        let ring = max_frames(self.opts.max_packet.0) * std::mem::size_of::<Slot>();
        let scratch = max_frames(self.opts.max_packet.0) * std::mem::size_of::<i16>();
        let queue = MAX_QUEUED_PER_LEG * std::mem::size_of::<Queued>() + self.queue_byte_cap();
        let streams = MAX_STREAMS_PER_LEG * (std::mem::size_of::<Stream>() + std::mem::size_of::<G722Decoder>());
        std::mem::size_of::<Self>() + ring + scratch + 2 * (queue + streams) + 16
    }

    /// Feed one RTP packet of `leg`, which arrived at packet time `at`. `codec` is what the
    /// SDP said the packet's payload type is. Commits what has become due first.
    pub fn push(&mut self, at: Ts, leg: Leg, pkt: &RtpPacket<'_>, codec: &Codec, out: &mut Vec<MediaOut>) {
        if self.finished {
            self.counters.after_finish += 1;
            return;
        }
        self.advance(at, out);
        match codec {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => {
                if let Some(kind) = Decodable::of(codec) {
                    self.place(at, leg, pkt, kind);
                }
            }
            // Silence: the gap until the next audio packet is filled anyway.
            Codec::Cn => self.counters.comfort_noise += 1,
            Codec::Other { .. } if codec.is_telephone_event() => self.counters.events_ignored += 1,
            Codec::Other { .. } => {
                self.counters.raw_packets += 1;
                if !self.undecodable.contains(&pkt.payload_type) && self.undecodable.len() < 16 {
                    self.undecodable.push(pkt.payload_type);
                }
                out.push(MediaOut::Raw {
                    leg,
                    at,
                    pt: pkt.payload_type,
                    ssrc: pkt.ssrc,
                    seq: pkt.seq,
                    timestamp: pkt.timestamp,
                    marker: pkt.marker,
                    payload: pkt.payload.to_vec(),
                });
            }
        }
    }

    /// Packet time has reached `now` (a packet of any call, or a timer): commit what is
    /// more than the window old, even when this call's legs are silent.
    pub fn advance(&mut self, now: Ts, out: &mut Vec<MediaOut>) {
        if self.finished {
            return;
        }
        self.now = self.now.max(now);
        if self.origin.is_none() {
            return;
        }
        let target = self.arrival_frame(self.now).saturating_sub(self.window_frames());
        self.commit_to(target, out);
    }

    /// The earliest packet time at which `advance` has audio to commit: when the oldest
    /// queued packet's start falls `window` behind. `None` while nothing is queued (held
    /// silence needs no timer). For the engine's timer table, so that silent legs are
    /// written without calling `advance` on every call for every packet.
    pub fn poll_timeout(&self) -> Option<Ts> {
        if self.finished {
            return None;
        }
        let first = self.legs.iter().filter_map(|l| l.queue.front().map(|q| q.at_frame)).min()?;
        // Smallest t with arrival_frame(t) - window > first.
        let frame = i128::from(first) + i128::from(self.window_frames()) + 1;
        let us = -((-frame * 1_000_000).div_euclid(i128::from(self.hz())));
        let origin = i128::from(self.origin?.0);
        Some(Ts((origin + us).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64))
    }

    /// The call ended: commit everything placed, up to the end of the last audio.
    /// Silence after it is not emitted. Later pushes are counted and ignored.
    pub fn finish(&mut self, out: &mut Vec<MediaOut>) {
        if self.finished {
            return;
        }
        if let Some(end) = self.legs.iter().filter_map(|l| l.placed_end).max() {
            self.commit_to(end, out);
        }
        self.held_silence = 0;
        for l in &mut self.legs {
            l.gap_pending = 0;
        }
        self.finished = true;
    }

    fn hz(&self) -> i64 {
        i64::from(self.rate.map_or(8000, SampleRate::hz))
    }

    fn dur_frames(&self, d: Dur) -> i64 {
        d.0.saturating_mul(self.hz()) / 1_000_000
    }

    fn window_frames(&self) -> i64 {
        self.dur_frames(self.opts.window)
    }

    /// Frame at which packet time `at` falls (floor).
    fn arrival_frame(&self, at: Ts) -> i64 {
        let Some(origin) = self.origin else { return 0 };
        let us = i128::from(at.0) - i128::from(origin.0);
        let f = (us * i128::from(self.hz())).div_euclid(1_000_000);
        f.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    fn frame_time(&self, frame: i64) -> Ts {
        let origin = self.origin.unwrap_or(Ts::EPOCH);
        let us = i128::from(frame) * 1_000_000 / i128::from(self.hz());
        origin.saturating_add(Dur(us.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64))
    }

    fn place(&mut self, at: Ts, leg: Leg, pkt: &RtpPacket<'_>, codec: Decodable) {
        let rate = *self.rate.get_or_insert(match codec {
            Decodable::G722 => SampleRate::Hz16000,
            Decodable::Pcmu | Decodable::Pcma => SampleRate::Hz8000,
        });
        if self.origin.is_none() {
            self.origin = Some(at);
            // Room before frame 0 for packets of the first window that arrive reordered.
            self.head = -self.window_frames();
            self.now = self.now.max(at);
        }
        let n_frames = (pkt.payload.len() as i64).saturating_mul(rate.frames_per_tick());
        if n_frames > self.dur_frames(self.opts.max_packet) {
            self.counters.out_of_range += 1;
            return;
        }
        let a = self.arrival_frame(at);
        let tol = self.dur_frames(self.opts.tolerance);
        let head = self.head;
        // Ahead of the commit point, no further than a re-anchored packet could go.
        let limit =
            self.arrival_frame(self.now).saturating_add(tol).saturating_add(self.dur_frames(self.opts.max_packet));
        let fpt = rate.frames_per_tick();
        let byte_cap = self.queue_byte_cap();

        let li = leg_index(leg);
        let Some(ls) = self.legs.get_mut(li) else { return };
        // A new stream starts at its arrival, or where the leg's audio ends if that is a
        // little later (no overlap with the previous stream, no drift at an SSRC change).
        let fresh = match ls.placed_end {
            Some(end) => end.clamp(a, a.saturating_add(tol)),
            None => a,
        };
        let p = match ls.streams.iter().position(|s| s.ssrc == pkt.ssrc) {
            None => {
                if !ls.streams.is_empty() {
                    self.counters.reanchors += 1;
                }
                if ls.streams.len() >= MAX_STREAMS_PER_LEG {
                    if let Some(old) = (0..ls.streams.len()).min_by_key(|&i| ls.streams.get(i).map(|s| s.last_at)) {
                        ls.streams.swap_remove(old);
                    }
                }
                self.counters.streams += 1;
                ls.streams.push(Stream::new(pkt.ssrc, pkt.seq, pkt.timestamp, fresh, at));
                fresh
            }
            Some(idx) => {
                let Some(st) = ls.streams.get_mut(idx) else { return };
                st.last_at = at;
                match st.classify(pkt.seq) {
                    SeqClass::Duplicate => {
                        self.counters.duplicates += 1;
                        return;
                    }
                    SeqClass::Stale => {
                        st.restart(pkt.seq, pkt.timestamp, fresh);
                        self.counters.reanchors += 1;
                        fresh
                    }
                    SeqClass::Newest(ext_seq) => {
                        let ext_ts = st.extend_ts_newest(pkt.timestamp);
                        let p = st.position(ext_seq, ext_ts, fpt);
                        if a.saturating_sub(p).saturating_abs() > tol {
                            st.reanchor(ext_seq, ext_ts, a);
                            self.counters.reanchors += 1;
                            a
                        } else {
                            p
                        }
                    }
                    SeqClass::Older(ext_seq) => st.position(ext_seq, st.extend_ts(pkt.timestamp), fpt),
                }
            }
        };
        let end = p.saturating_add(n_frames);
        if end <= head {
            self.counters.too_late += 1;
            return;
        }
        if end > limit || ls.queue.len() >= MAX_QUEUED_PER_LEG || ls.queued_bytes + pkt.payload.len() > byte_cap {
            self.counters.out_of_range += 1;
            return;
        }
        let skip = if p < head {
            self.counters.truncated += 1;
            usize::try_from(head - p).unwrap_or(usize::MAX)
        } else {
            0
        };
        let Some(ls) = self.legs.get_mut(li) else { return };
        let q = Queued { at_frame: p.max(head), skip, ssrc: pkt.ssrc, codec, payload: pkt.payload.to_vec() };
        // Keep the queue ordered by position; equal positions keep arrival order.
        let pos = ls.queue.partition_point(|e| e.at_frame <= q.at_frame);
        ls.queued_bytes += q.payload.len();
        ls.queue.insert(pos, q);
        ls.placed_end = Some(ls.placed_end.map_or(end, |e| e.max(end)));
        self.counters.packets_placed += 1;
    }

    /// Bytes of encoded audio a leg may hold queued: twice the span a packet can be placed
    /// in (one byte per 8 kHz tick for both G.711 and G.722).
    fn queue_byte_cap(&self) -> usize {
        let span = self.opts.window.0 + self.opts.tolerance.0 + self.opts.max_packet.0;
        usize::try_from(span.saturating_mul(8000) / 1_000_000 * 2).unwrap_or(0)
    }

    /// Commit every frame before `target`: queued packets that start before it are
    /// decoded one at a time in position order, and the frames before each one's start are
    /// emitted first, so the ring never holds more than one packet's span.
    fn commit_to(&mut self, target: i64, out: &mut Vec<MediaOut>) {
        if target <= self.head {
            return;
        }
        let Some(rate) = self.rate else { return };
        let mut block = Block::default();
        loop {
            let next = (0..2)
                .filter_map(|li| self.legs.get(li)?.queue.front().map(|q| (q.at_frame, li)))
                .filter(|&(f, _)| f < target)
                .min();
            let Some((start, li)) = next else { break };
            self.emit_to(start, rate, &mut block, out);
            self.decode_front(li, rate);
        }
        self.emit_to(target, rate, &mut block, out);
        block.flush(&mut self.out_pos, out);
    }

    /// Emit the frames before `target` (held silence stays held; audio goes to `block`).
    fn emit_to(&mut self, target: i64, rate: SampleRate, block: &mut Block, out: &mut Vec<MediaOut>) {
        if target <= self.head {
            return;
        }
        let span = usize::try_from(target - self.head).unwrap_or(usize::MAX);
        let mut in_ring = span.min(self.ring.len());
        if self.base.is_none() {
            // Nothing emitted yet: skip the silence before the first audio.
            match self.ring.iter().take(in_ring).position(|s| s.written != 0) {
                None => {
                    self.ring.drain(..in_ring);
                    self.head = target;
                    return;
                }
                Some(first) => {
                    self.ring.drain(..first);
                    self.head += first as i64;
                    in_ring -= first;
                    self.base = Some(self.head);
                    out.push(MediaOut::Start { rate, at: self.frame_time(self.head) });
                }
            }
        }

        let [left, right] = &mut self.legs;
        for slot in self.ring.drain(..in_ring) {
            for (ch, l) in [(0u8, &mut *left), (1u8, &mut *right)] {
                if slot.written & (1 << ch) != 0 {
                    l.gap_frames += l.gap_pending;
                    l.gap_pending = 0;
                    l.audio_seen = true;
                } else if l.audio_seen {
                    l.gap_pending += 1;
                }
            }
            if slot.written == 0 {
                block.flush(&mut self.out_pos, out);
                self.held_silence += 1;
            } else {
                if block.samples.is_empty() {
                    if self.held_silence > 0 {
                        out.push(MediaOut::Silence { start_frame: self.out_pos, frames: self.held_silence });
                        self.out_pos += self.held_silence;
                        self.held_silence = 0;
                    }
                    block.start = self.out_pos;
                }
                block.samples.extend_from_slice(&slot.s);
            }
        }
        self.head += in_ring as i64;
        // Past the ring: nothing was written there, both channels are silent.
        let beyond = u64::try_from(target - self.head).unwrap_or(0);
        if beyond > 0 {
            block.flush(&mut self.out_pos, out);
            self.held_silence += beyond;
            for l in &mut self.legs {
                if l.audio_seen {
                    l.gap_pending += beyond;
                }
            }
            self.head = target;
        }
        self.counters.gap_frames_left = self.legs[0].gap_frames;
        self.counters.gap_frames_right = self.legs[1].gap_frames;
    }

    /// Decode the first queued packet of leg `li` into the ring. It starts at or after the
    /// ring's first frame (it was placed at or after the commit point then).
    fn decode_front(&mut self, li: usize, rate: SampleRate) {
        let head = self.head;
        let Some(ls) = self.legs.get_mut(li) else { return };
        let Some(q) = ls.queue.pop_front() else { return };
        ls.queued_bytes = ls.queued_bytes.saturating_sub(q.payload.len());
        self.scratch.clear();
        // Exact, so the scratch never holds more than the longest packet allowed.
        self.scratch.reserve_exact(q.payload.len() * 2);
        match ls.streams.iter_mut().find(|s| s.ssrc == q.ssrc) {
            Some(st) => st.decode(q.codec, &q.payload, rate, &mut self.scratch),
            // The stream was forgotten (more SSRCs than we keep): a fresh decoder.
            None => Stream::new(q.ssrc, 0, 0, 0, Ts::EPOCH).decode(q.codec, &q.payload, rate, &mut self.scratch),
        }
        let Ok(offset) = usize::try_from(q.at_frame - head) else { return };
        let samples = self.scratch.get(q.skip..).unwrap_or(&[]);
        let end = offset + samples.len();
        if self.ring.len() < end {
            // Exact: the ring's capacity is its high-water mark, not the next doubling.
            self.ring.reserve_exact(end - self.ring.len());
            self.ring.resize(end, Slot::default());
        }
        let bit = 1u8 << li;
        for (slot, &v) in self.ring.range_mut(offset..end).zip(samples) {
            if let Some(s) = slot.s.get_mut(li) {
                *s = v;
            }
            slot.written |= bit;
        }
    }
}

/// The audio block being gathered during one commit: contiguous written frames.
#[derive(Default)]
struct Block {
    start: u64,
    samples: Vec<i16>,
}

impl Block {
    fn flush(&mut self, out_pos: &mut u64, out: &mut Vec<MediaOut>) {
        if !self.samples.is_empty() {
            *out_pos += (self.samples.len() / 2) as u64;
            out.push(MediaOut::Audio(AudioBlock {
                start_frame: self.start,
                samples: std::mem::take(&mut self.samples),
            }));
        }
    }
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;
