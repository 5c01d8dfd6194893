//! One RTP stream of a call (one leg, one SSRC): sequence numbers extended and checked for
//! duplicates, timestamps extended across wrap-around, the anchor that maps the extended
//! timestamp onto the call's timeline, and the decoder state (G.722 ADPCM, the upsampler's
//! last sample) that must see the stream's packets in order.
//! May use: `g711`, `g722`. Placement policy (when to re-anchor) is the timeline's.
//! Invariants: fixed size per stream (a 256-bit duplicate window, one G.722 state when the
//! stream carries G.722); extension is by signed 16/32-bit difference, so it never
//! overflows and wraps continue seamlessly.
//!
//! The extension is private here rather than `rtp::SeqExtender`/`TsExtender`: those are
//! written in parallel by another helper, and the timeline needs the duplicate window
//! and the "is this the newest packet" answer from the same state anyway.

use super::g711;
use super::g722::G722Decoder;
use super::{Codec, SampleRate};
use crate::time::Ts;

/// The codecs a stream decodes (what a queued packet needs to remember: one byte).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decodable {
    Pcmu,
    Pcma,
    G722,
}

impl Decodable {
    pub fn of(codec: &Codec) -> Option<Decodable> {
        match codec {
            Codec::Pcmu => Some(Decodable::Pcmu),
            Codec::Pcma => Some(Decodable::Pcma),
            Codec::G722 => Some(Decodable::G722),
            Codec::Cn | Codec::Other { .. } => None,
        }
    }
}

/// Sequence numbers remembered for duplicate detection, behind the newest.
pub(crate) const SEQ_WINDOW: i64 = 256;

/// How a packet's sequence number relates to what the stream has seen.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum SeqClass {
    /// Past every sequence number seen: the latest packet sent (gaps mean loss).
    Newest(i64),
    /// Within the window behind the newest, not seen before: reordered or late.
    Older(i64),
    /// Seen before (retransmission, mirror copy).
    Duplicate,
    /// More than the window behind the newest: the sender restarted its numbering.
    Stale,
}

/// Extended RTP timestamp `ext_ts` is at timeline frame `frame`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub ext_ts: i64,
    pub frame: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct Stream {
    pub ssrc: u32,
    /// Newest extended sequence number, and the seen-bits of the window behind it.
    max_seq: i64,
    seen: [u64; 4],
    /// Timestamp of the newest packet, raw and extended: the reference for extension.
    ts_raw: u32,
    ts_ext: i64,
    /// Anchor for packets from `anchor_seq` on; `prev` for the ones sent before the last
    /// re-anchor that arrive late.
    anchor: Anchor,
    anchor_seq: i64,
    prev: Option<Anchor>,
    /// Packet time of the last packet, to evict the stream unused longest.
    pub last_at: Ts,
    g722: Option<Box<G722Decoder>>,
    /// Last G.711 sample, for the 2× upsampler on a 16 kHz recording.
    last_sample: i16,
}

impl Stream {
    pub fn new(ssrc: u32, seq: u16, ts: u32, frame: i64, at: Ts) -> Stream {
        let mut s = Stream {
            ssrc,
            max_seq: i64::from(seq),
            seen: [0; 4],
            ts_raw: ts,
            ts_ext: i64::from(ts),
            anchor: Anchor { ext_ts: i64::from(ts), frame },
            anchor_seq: i64::from(seq),
            prev: None,
            last_at: at,
            g722: None,
            last_sample: 0,
        };
        s.mark(i64::from(seq));
        s
    }

    /// Start over from this packet (sequence restart): new numbering, new anchor. The
    /// decoder state is kept: the sender's audio goes on.
    pub fn restart(&mut self, seq: u16, ts: u32, frame: i64) {
        let (g722, last_sample, last_at) = (self.g722.take(), self.last_sample, self.last_at);
        *self = Stream::new(self.ssrc, seq, ts, frame, last_at);
        self.g722 = g722;
        self.last_sample = last_sample;
    }

    fn bit(ext: i64) -> (usize, u64) {
        let i = ext.rem_euclid(SEQ_WINDOW) as usize;
        ((i / 64) & 3, 1u64 << (i % 64))
    }

    fn mark(&mut self, ext: i64) {
        let (w, b) = Stream::bit(ext);
        if let Some(word) = self.seen.get_mut(w) {
            *word |= b;
        }
    }

    fn is_marked(&self, ext: i64) -> bool {
        let (w, b) = Stream::bit(ext);
        self.seen.get(w).is_some_and(|word| word & b != 0)
    }

    /// Classify a sequence number and extend it (RFC 3550 A.1 style: by the signed
    /// 16-bit distance from the newest). Marks it seen.
    pub fn classify(&mut self, seq: u16) -> SeqClass {
        let d = i64::from(seq.wrapping_sub(self.max_seq as u16) as i16);
        let ext = self.max_seq + d;
        if d > 0 {
            if d >= SEQ_WINDOW {
                self.seen = [0; 4];
            } else {
                for s in self.max_seq + 1..ext {
                    let (w, b) = Stream::bit(s);
                    if let Some(word) = self.seen.get_mut(w) {
                        *word &= !b;
                    }
                }
            }
            let (w, b) = Stream::bit(ext);
            if let Some(word) = self.seen.get_mut(w) {
                // The newest's own bit may hold a number 256 back: overwrite it.
                *word |= b;
            }
            self.max_seq = ext;
            SeqClass::Newest(ext)
        } else if d > -SEQ_WINDOW {
            if self.is_marked(ext) {
                SeqClass::Duplicate
            } else {
                self.mark(ext);
                SeqClass::Older(ext)
            }
        } else {
            SeqClass::Stale
        }
    }

    /// Extend a timestamp by its signed 32-bit distance from the newest packet's.
    pub fn extend_ts(&self, ts: u32) -> i64 {
        self.ts_ext.saturating_add(i64::from(ts.wrapping_sub(self.ts_raw) as i32))
    }

    /// Extend the newest packet's timestamp and make it the reference.
    pub fn extend_ts_newest(&mut self, ts: u32) -> i64 {
        let ext = self.extend_ts(ts);
        self.ts_raw = ts;
        self.ts_ext = ext;
        ext
    }

    /// Timeline frame of a packet; `frames_per_tick` converts 8 kHz RTP ticks to frames.
    pub fn position(&self, ext_seq: i64, ext_ts: i64, frames_per_tick: i64) -> i64 {
        let a = match self.prev {
            Some(prev) if ext_seq < self.anchor_seq => prev,
            _ => self.anchor,
        };
        a.frame.saturating_add(ext_ts.saturating_sub(a.ext_ts).saturating_mul(frames_per_tick))
    }

    /// Put this packet (the newest) at `frame`; later packets follow from it.
    pub fn reanchor(&mut self, ext_seq: i64, ext_ts: i64, frame: i64) {
        self.prev = Some(self.anchor);
        self.anchor = Anchor { ext_ts, frame };
        self.anchor_seq = ext_seq;
    }

    /// Decode a payload at the recording's rate, appending samples:
    /// one per 8 kHz tick at 8 kHz, two at 16 kHz. G.711 on a 16 kHz recording is
    /// upsampled by linear interpolation (the half-way sample between the last and this);
    /// G.722 on an 8 kHz recording is downsampled by averaging each pair (a two-tap
    /// low-pass; a mixed call should be recorded at 16 kHz, see `AudioOptions::rate`).
    pub fn decode(&mut self, codec: Decodable, payload: &[u8], rate: SampleRate, out: &mut Vec<i16>) {
        let law: fn(u8) -> i16 = match codec {
            Decodable::Pcmu => g711::ulaw,
            Decodable::Pcma => g711::alaw,
            Decodable::G722 => {
                let dec = self.g722.get_or_insert_with(Box::default);
                match rate {
                    SampleRate::Hz16000 => dec.decode(payload, out),
                    SampleRate::Hz8000 => out.extend(payload.iter().map(|&c| {
                        let [a, b] = dec.decode_byte(c);
                        ((i32::from(a) + i32::from(b)) >> 1) as i16
                    })),
                }
                return;
            }
        };
        match rate {
            SampleRate::Hz8000 => out.extend(payload.iter().map(|&c| law(c))),
            SampleRate::Hz16000 => {
                out.reserve(payload.len() * 2);
                for &c in payload {
                    let x = law(c);
                    out.push(((i32::from(self.last_sample) + i32::from(x)) >> 1) as i16);
                    out.push(x);
                    self.last_sample = x;
                }
            }
        }
    }

    /// Heap bytes held by this stream beyond its own size.
    pub fn heap_bytes(&self) -> usize {
        self.g722.as_ref().map_or(0, |_| std::mem::size_of::<G722Decoder>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sequence_classes_and_wrap() {
        let mut s = Stream::new(1, 65534, 0, 0, Ts(0));
        assert_eq!(s.classify(65535), SeqClass::Newest(65535));
        assert_eq!(s.classify(0), SeqClass::Newest(65536));
        assert_eq!(s.classify(0), SeqClass::Duplicate);
        assert_eq!(s.classify(3), SeqClass::Newest(65539));
        assert_eq!(s.classify(2), SeqClass::Older(65538));
        assert_eq!(s.classify(2), SeqClass::Duplicate);
        assert_eq!(s.classify(65534), SeqClass::Duplicate);
        assert_eq!(s.classify(65539u32.wrapping_sub(300) as u16), SeqClass::Stale);
        // A jump of more than the window forgets the old bits but keeps the newest's.
        assert_eq!(s.classify(1000), SeqClass::Newest(66536));
        assert_eq!(s.classify(1000), SeqClass::Duplicate);
        assert_eq!(s.classify(999), SeqClass::Older(66535));
    }

    #[test]
    fn timestamp_wrap_extends() {
        let mut s = Stream::new(1, 0, u32::MAX - 159, 0, Ts(0));
        assert_eq!(s.extend_ts_newest(u32::MAX - 159), i64::from(u32::MAX) - 159);
        assert_eq!(s.extend_ts_newest(0), i64::from(u32::MAX) + 1);
        assert_eq!(s.extend_ts(u32::MAX - 159), i64::from(u32::MAX) - 159);
        assert_eq!(s.extend_ts_newest(160), i64::from(u32::MAX) + 161);
    }

    #[test]
    fn late_packets_from_before_a_reanchor_use_the_old_anchor() {
        let mut s = Stream::new(1, 10, 1000, 0, Ts(0));
        assert_eq!(s.position(10, 1000, 1), 0);
        assert_eq!(s.position(11, 1160, 2), 320);
        s.reanchor(20, 50_000, 8000);
        assert_eq!(s.position(21, 50_160, 1), 8160);
        assert_eq!(s.position(19, 2440, 1), 1440);
    }

    proptest! {
        /// Whatever sequence numbers arrive: a number is Duplicate exactly when it was
        /// classified (not Stale) before and is still inside the window.
        #[test]
        fn duplicates_match_a_model(seqs in proptest::collection::vec(any::<u16>(), 1..300),
                                    near in proptest::collection::vec(-40i32..40, 1..300)) {
            let first = seqs[0];
            let mut s = Stream::new(7, first, 0, 0, Ts(0));
            let mut seen = std::collections::HashSet::new();
            seen.insert(i64::from(first));
            let mut max = i64::from(first);
            for (i, d) in near.iter().enumerate() {
                // Mostly small steps around the newest, sometimes a random jump.
                let seq = if i % 17 == 16 { seqs[i % seqs.len()] } else { (max as i32 + d) as u16 };
                let dd = i64::from(seq.wrapping_sub(max as u16) as i16);
                let ext = max + dd;
                let got = s.classify(seq);
                if dd > 0 {
                    prop_assert_eq!(got, SeqClass::Newest(ext));
                    max = ext;
                    seen.insert(ext);
                } else if dd > -SEQ_WINDOW {
                    if seen.contains(&ext) {
                        prop_assert_eq!(got, SeqClass::Duplicate);
                    } else {
                        prop_assert_eq!(got, SeqClass::Older(ext));
                        seen.insert(ext);
                    }
                } else {
                    prop_assert_eq!(got, SeqClass::Stale);
                }
            }
        }
    }
}
