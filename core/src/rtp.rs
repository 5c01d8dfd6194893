//! RTP and RTCP: tells them apart (RFC 5761 §4: RTCP packet types 192–223 in the second
//! byte), reads the RTP fixed header through rtp-rs, and extends 16-bit sequence numbers
//! and 32-bit timestamps to 64 bits across wrap-around.
//! May use: nothing stateful but the extenders, which belong to one stream each.
//! Invariant: `classify` never panics and borrows the payload; it does not allocate.
//! Extended values start one wrap-cycle up (seq 65536 + s, ts 2^32 + t), so a packet that
//! arrives late, before the first one seen, still maps to a value ≥ 0.

/// One RTP packet, borrowed from the datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Payload after the header, CSRCs, extension and padding.
    pub payload: &'a [u8],
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Media<'a> {
    Rtp(RtpPacket<'a>),
    /// An RTCP (compound) packet; the first packet type and the sender SSRC.
    Rtcp {
        packet_type: u8,
        ssrc: u32,
    },
    /// Not RTP version 2 / too short.
    Neither,
}

/// RTCP common header (RFC 3550 §6.4): V=2, P, count, PT, length in 32-bit words minus one.
const RTCP_HEADER: usize = 4;
/// The smallest RTCP packet we accept carries the sender SSRC after the common header.
const RTCP_MIN: usize = 8;
/// RFC 5761 §4: second byte 192..=223 is RTCP (RTP payload types 64..=95 with the marker
/// bit set would collide, which is why those payload types must not be used with rtcp-mux).
const RTCP_TYPES: std::ops::RangeInclusive<u8> = 192..=223;

/// Classify a UDP payload as RTP, RTCP or neither.
pub fn classify(payload: &[u8]) -> Media<'_> {
    let (Some(&b0), Some(&b1)) = (payload.first(), payload.get(1)) else {
        return Media::Neither;
    };
    if b0 >> 6 != 2 {
        return Media::Neither;
    }
    if RTCP_TYPES.contains(&b1) {
        return rtcp(payload);
    }
    match rtp_rs::RtpReader::new(payload) {
        Ok(r) => Media::Rtp(RtpPacket {
            payload_type: r.payload_type(),
            marker: r.mark(),
            seq: r.sequence_number().into(),
            timestamp: r.timestamp(),
            ssrc: r.ssrc(),
            payload: r.payload(),
        }),
        Err(_) => Media::Neither,
    }
}

/// Validate an RTCP compound packet (RFC 3550 A.2, tolerant of SRTCP's trailer and of
/// reduced-size RTCP): the first packet must be whole and carry an SSRC; each following
/// packet header that fits must be version 2 with an RTCP type and must not overrun.
fn rtcp(payload: &[u8]) -> Media<'_> {
    let Some(first_len) = rtcp_len(payload) else { return Media::Neither };
    if first_len < RTCP_MIN || first_len > payload.len() {
        return Media::Neither;
    }
    let (Some(&packet_type), Some(ssrc)) =
        (payload.get(1), payload.get(4..8).and_then(|s| <[u8; 4]>::try_from(s).ok()))
    else {
        return Media::Neither;
    };
    let mut off = first_len;
    while let Some(rest) = payload.get(off..).filter(|r| r.len() >= RTCP_HEADER) {
        let (Some(&b0), Some(&b1)) = (rest.first(), rest.get(1)) else { break };
        if b0 >> 6 != 2 || !RTCP_TYPES.contains(&b1) {
            // SRTCP appends its index and tag after the (encrypted) compound: stop here.
            break;
        }
        match rtcp_len(rest) {
            Some(n) if n <= rest.len() => off += n,
            _ => return Media::Neither,
        }
    }
    Media::Rtcp { packet_type, ssrc: u32::from_be_bytes(ssrc) }
}

/// Length in bytes of the RTCP packet starting at `p`, from its header.
fn rtcp_len(p: &[u8]) -> Option<usize> {
    let words = u16::from_be_bytes([*p.get(2)?, *p.get(3)?]);
    Some((usize::from(words) + 1) * 4)
}

/// Extends 16-bit RTP sequence numbers to a monotonic-ish 64-bit index (RFC 3550 A.1
/// style): a jump back of less than half the space is a late packet, not a wrap.
/// Unlike A.1 there is no probation and no resync on a huge jump: one extender belongs to
/// one stream (one SSRC on one 5-tuple); a new SSRC needs a new extender.
#[derive(Clone, Debug, Default)]
pub struct SeqExtender {
    last: Option<u64>,
}

impl SeqExtender {
    pub fn extend(&mut self, seq: u16) -> u64 {
        let (v, last) = extend(self.last, u64::from(seq), 16);
        self.last = Some(last);
        v
    }
}

/// Extends 32-bit RTP timestamps to 64 bits the same way.
#[derive(Clone, Debug, Default)]
pub struct TsExtender {
    last: Option<u64>,
}

impl TsExtender {
    pub fn extend(&mut self, ts: u32) -> u64 {
        let (v, last) = extend(self.last, u64::from(ts), 32);
        self.last = Some(last);
        v
    }
}

/// Place `value` (a `bits`-wide counter) next to `highest`, the highest extended value so
/// far: the signed distance of the low bits decides, so a step back of less than half the
/// space is an earlier value, a step forward a later one (possibly across a wrap).
/// Returns the extended value and the new highest.
fn extend(highest: Option<u64>, value: u64, bits: u32) -> (u64, u64) {
    let span = 1u64 << bits;
    let mask = span - 1;
    let Some(h) = highest else {
        // One cycle up, so an earlier packet arriving next cannot go below zero.
        let v = span + value;
        return (v, v);
    };
    let forward = value.wrapping_sub(h) & mask;
    let v = if forward < span / 2 {
        h.saturating_add(forward)
    } else {
        // Back by (span - forward), which is at most half the space.
        h.saturating_sub(span - forward)
    };
    (v, h.max(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::pcap_fixture::udp_payloads;
    use proptest::prelude::*;

    /// An RTP packet: V=2, the given flags, CSRCs, extension words and padding.
    fn rtp(pt: u8, marker: bool, seq: u16, csrcs: &[u32], ext_words: Option<u16>, body: &[u8], pad: u8) -> Vec<u8> {
        let mut b0 = 0x80 | (csrcs.len() as u8);
        if pad > 0 {
            b0 |= 0x20;
        }
        if ext_words.is_some() {
            b0 |= 0x10;
        }
        let mut v = vec![b0, (u8::from(marker) << 7) | pt];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&0x1122_3344u32.to_be_bytes());
        v.extend_from_slice(&0xDEE0_EE8Fu32.to_be_bytes());
        for c in csrcs {
            v.extend_from_slice(&c.to_be_bytes());
        }
        if let Some(w) = ext_words {
            v.extend_from_slice(&[0xBE, 0xDE]);
            v.extend_from_slice(&w.to_be_bytes());
            v.extend(std::iter::repeat_n(0xAA, usize::from(w) * 4));
        }
        v.extend_from_slice(body);
        if pad > 0 {
            v.extend(std::iter::repeat_n(0, usize::from(pad) - 1));
            v.push(pad);
        }
        v
    }

    fn rtp_of(m: Media<'_>) -> RtpPacket<'_> {
        match m {
            Media::Rtp(p) => p,
            other => panic!("not RTP: {other:?}"),
        }
    }

    #[test]
    fn rtp_fixed_header() {
        let b = rtp(8, true, 0xBEEF, &[], None, &[1, 2, 3], 0);
        let p = rtp_of(classify(&b));
        assert_eq!((p.payload_type, p.marker, p.seq, p.timestamp, p.ssrc), (8, true, 0xBEEF, 0x1122_3344, 0xDEE0_EE8F));
        assert_eq!(p.payload, &[1, 2, 3]);
        // A header with no payload is still RTP (comfort noise may be empty).
        assert_eq!(rtp_of(classify(&rtp(13, false, 1, &[], None, &[], 0))).payload, &[] as &[u8]);
    }

    #[test]
    fn rtp_csrcs_extension_padding() {
        let b = rtp(0, false, 7, &[1, 2, 3], Some(2), &[9, 9, 9, 9, 9], 3);
        let p = rtp_of(classify(&b));
        assert_eq!(p.payload, &[9, 9, 9, 9, 9]);
        assert_eq!(p.seq, 7);
        // Extension of zero length.
        assert_eq!(rtp_of(classify(&rtp(0, false, 7, &[], Some(0), &[5], 0))).payload, &[5]);
    }

    #[test]
    fn rtp_rejects() {
        // Bad padding: zero, or more than there is.
        let mut b = rtp(0, false, 1, &[], None, &[1, 2], 1);
        *b.last_mut().unwrap() = 0;
        assert_eq!(classify(&b), Media::Neither);
        let mut b = rtp(0, false, 1, &[], None, &[1, 2], 1);
        *b.last_mut().unwrap() = 4;
        assert_eq!(classify(&b), Media::Neither);
        // CSRC list or extension running past the end.
        let b = rtp(0, false, 1, &[1, 2], None, &[], 0);
        assert_eq!(classify(&b[..b.len() - 1]), Media::Neither);
        let b = rtp(0, false, 1, &[], Some(3), &[], 0);
        assert_eq!(classify(&b[..b.len() - 1]), Media::Neither);
        // Too short, wrong version, empty.
        assert_eq!(classify(&rtp(0, false, 1, &[], None, &[], 0)[..11]), Media::Neither);
        let mut b = rtp(0, false, 1, &[], None, &[1], 0);
        b[0] = (b[0] & 0x3F) | 0x40;
        assert_eq!(classify(&b), Media::Neither);
        assert_eq!(classify(&[]), Media::Neither);
        assert_eq!(classify(&[0x80]), Media::Neither);
        assert_eq!(classify(b"INVITE sip:a@b SIP/2.0\r\n"), Media::Neither);
    }

    /// One RTCP packet: header with `count`, type, length, then `words` 32-bit words (the
    /// first being the SSRC).
    fn rtcp_pkt(pt: u8, ssrc: u32, extra_words: u16) -> Vec<u8> {
        let mut v = vec![0x81, pt];
        v.extend_from_slice(&(extra_words + 1).to_be_bytes());
        v.extend_from_slice(&ssrc.to_be_bytes());
        v.extend(std::iter::repeat_n(0x55, usize::from(extra_words) * 4));
        v
    }

    #[test]
    fn rtcp_by_rfc5761() {
        let sr = rtcp_pkt(200, 0x5D93_1534, 11);
        assert_eq!(classify(&sr), Media::Rtcp { packet_type: 200, ssrc: 0x5D93_1534 });
        let mut compound = rtcp_pkt(201, 7, 6);
        compound.extend(rtcp_pkt(202, 7, 3));
        compound.extend(rtcp_pkt(203, 7, 0));
        assert_eq!(classify(&compound), Media::Rtcp { packet_type: 201, ssrc: 7 });
        // The edges of the RTCP range; just outside it is RTP with the marker set.
        assert!(matches!(classify(&rtcp_pkt(192, 1, 0)), Media::Rtcp { packet_type: 192, .. }));
        assert!(matches!(classify(&rtcp_pkt(223, 1, 0)), Media::Rtcp { packet_type: 223, .. }));
        let b = rtcp_pkt(191, 1, 2);
        let p = rtp_of(classify(&b));
        assert_eq!((p.payload_type, p.marker), (63, true));
        let b = rtcp_pkt(224, 1, 2);
        let p = rtp_of(classify(&b));
        assert_eq!((p.payload_type, p.marker), (96, true));
    }

    #[test]
    fn rtcp_rejects() {
        // First packet longer than the datagram.
        let sr = rtcp_pkt(200, 1, 6);
        assert_eq!(classify(&sr[..sr.len() - 4]), Media::Neither);
        // A second packet that overruns.
        let mut c = rtcp_pkt(201, 1, 1);
        let sdes = rtcp_pkt(202, 1, 4);
        c.extend_from_slice(&sdes[..sdes.len() - 1]);
        assert_eq!(classify(&c), Media::Neither);
        // Shorter than header + SSRC.
        assert_eq!(classify(&[0x80, 200, 0, 0]), Media::Neither);
        assert_eq!(classify(&[0x80, 200, 0, 0, 1, 2, 3]), Media::Neither);
        // Wrong version.
        let mut b = rtcp_pkt(200, 1, 0);
        b[0] = 0x41;
        assert_eq!(classify(&b), Media::Neither);
        // A trailer that is not RTCP (SRTCP index + tag) does not spoil the compound.
        let mut c = rtcp_pkt(200, 9, 6);
        c.extend_from_slice(&[0x80, 0, 0, 1, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x11, 0x22, 0x33, 0x44]);
        assert_eq!(classify(&c), Media::Rtcp { packet_type: 200, ssrc: 9 });
    }

    #[test]
    fn real_rtp_stream_g711a() {
        let pkts = udp_payloads("sipp-g711a-rtp-only.pcap");
        assert_eq!(pkts.len(), 236);
        let mut seqs = SeqExtender::default();
        let mut tss = TsExtender::default();
        let mut prev: Option<(u64, u64)> = None;
        for u in &pkts {
            let p = rtp_of(classify(&u.payload));
            assert_eq!((p.payload_type, p.ssrc, p.payload.len()), (8, 0xDEE0_EE8F, 240), "frame {}", u.frame);
            let (s, t) = (seqs.extend(p.seq), tss.extend(p.timestamp));
            if let Some((ps, pt)) = prev {
                assert_eq!(s, ps + 1, "frame {}", u.frame);
                assert_eq!(t, pt + 240, "frame {}: 30 ms of 8 kHz per packet", u.frame);
            }
            prev = Some((s, t));
        }
        // tshark: first seq 59133, last 59368.
        let first = rtp_of(classify(&pkts[0].payload)).seq;
        assert_eq!(first, 59133);
        assert_eq!(prev.map(|(s, _)| s), Some(65536 + 59368));
    }

    #[test]
    fn real_rtp_dtmf_repeated_end() {
        let pkts = udp_payloads("sipp-dtmf-2833-digit1.pcap");
        assert_eq!(pkts.len(), 10);
        let mut seqs = SeqExtender::default();
        let got: Vec<(u64, bool)> = pkts
            .iter()
            .map(|u| {
                let p = rtp_of(classify(&u.payload));
                assert_eq!(p.payload_type, 101);
                (seqs.extend(p.seq) - 65536, p.marker)
            })
            .collect();
        // The end of event is sent three times with the same seq (7991): no wrap, no jump.
        let want: Vec<(u64, bool)> = [7984, 7985, 7986, 7987, 7988, 7989, 7990, 7991, 7991, 7991]
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, i == 0))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn real_rtcp_compound() {
        let pkts = udp_payloads("rtcp-compound-several-in-one-datagram.pcap");
        assert_eq!(pkts.len(), 5);
        let got: Vec<Media<'_>> = pkts.iter().map(|u| classify(&u.payload)).collect();
        let sr = Media::Rtcp { packet_type: 200, ssrc: 0x5D93_1534 };
        let rr = Media::Rtcp { packet_type: 201, ssrc: 0x0193_2DB4 };
        assert_eq!(got, vec![sr, rr, sr, rr, sr]);
    }

    #[test]
    fn seq_wraps_forward_and_back() {
        let mut e = SeqExtender::default();
        assert_eq!(e.extend(65534), 65536 + 65534);
        assert_eq!(e.extend(65535), 65536 + 65535);
        assert_eq!(e.extend(0), 2 * 65536);
        assert_eq!(e.extend(1), 2 * 65536 + 1);
        // Late packet from before the wrap.
        assert_eq!(e.extend(65535), 65536 + 65535);
        assert_eq!(e.extend(2), 2 * 65536 + 2);
        // A packet from before the very first one does not go below the start cycle's zero.
        let mut e = SeqExtender::default();
        assert_eq!(e.extend(0), 65536);
        assert_eq!(e.extend(65535), 65535);
        assert_eq!(e.extend(1), 65537);
        // Back by exactly half the space counts as late; forward by less than half as new.
        let mut e = SeqExtender::default();
        assert_eq!(e.extend(40000), 65536 + 40000);
        assert_eq!(e.extend(7232), 65536 + 7232);
        assert_eq!(e.extend(7233), 65536 + 7233);
        // 40000 + 32767 = 72767 = 65536 + 7231: forward by just under half, across the wrap.
        assert_eq!(e.extend(7231), 2 * 65536 + 7231);
    }

    #[test]
    fn ts_wraps_forward_and_back() {
        let mut e = TsExtender::default();
        let base = 1u64 << 32;
        assert_eq!(e.extend(u32::MAX - 159), base + u64::from(u32::MAX - 159));
        assert_eq!(e.extend(0), 2 * base);
        assert_eq!(e.extend(160), 2 * base + 160);
        assert_eq!(e.extend(u32::MAX - 159), base + u64::from(u32::MAX - 159));
        let mut e = TsExtender::default();
        assert_eq!(e.extend(100), base + 100);
        assert_eq!(e.extend(u32::MAX), base - 1);
    }

    proptest! {
        #[test]
        fn classify_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = classify(&b);
        }

        /// Any walk whose steps stay within half the space is recovered exactly.
        #[test]
        fn seq_extension_recovers_walk(start in any::<u16>(), steps in proptest::collection::vec(-32767i64..=32767, 0..200)) {
            let mut e = SeqExtender::default();
            let mut truth = 65536 + i64::from(start);
            let mut highest = truth;
            prop_assert_eq!(e.extend(start) as i64, truth);
            for s in steps {
                // Steps are relative to the highest value so far (what the extender knows).
                truth = highest + s;
                prop_assume!(truth >= 0);
                prop_assert_eq!(e.extend((truth & 0xFFFF) as u16) as i64, truth);
                highest = highest.max(truth);
            }
        }

        #[test]
        fn ts_extension_recovers_walk(start in any::<u32>(), steps in proptest::collection::vec(-(1i64 << 31) + 1..(1i64 << 31), 0..200)) {
            let mut e = TsExtender::default();
            let mut highest = (1i64 << 32) + i64::from(start);
            prop_assert_eq!(e.extend(start) as i64, highest);
            for s in steps {
                let truth = highest + s;
                prop_assert_eq!(e.extend((truth & 0xFFFF_FFFF) as u32) as i64, truth);
                highest = highest.max(truth);
            }
        }

        /// Built packets come back with the fields they were built with.
        #[test]
        fn rtp_round_trip(pt in 0u8..=127, marker: bool, seq: u16, ncsrc in 0usize..16,
                          ext in proptest::option::of(0u16..8), body in proptest::collection::vec(any::<u8>(), 0..64),
                          pad in 0u8..8) {
            // Second bytes 192..=223 are RTCP by RFC 5761, not RTP.
            prop_assume!(!RTCP_TYPES.contains(&((u8::from(marker) << 7) | pt)));
            let csrcs: Vec<u32> = (0..ncsrc as u32).collect();
            let b = rtp(pt, marker, seq, &csrcs, ext, &body, pad);
            let p = rtp_of(classify(&b));
            prop_assert_eq!((p.payload_type, p.marker, p.seq), (pt, marker, seq));
            prop_assert_eq!(p.payload, &body[..]);
        }
    }
}
