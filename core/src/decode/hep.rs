//! HEP (Homer Encapsulation Protocol) envelopes: HEPv3 (magic "HEP3", then chunks) and the
//! older fixed HEPv1/v2 header. The inner datagram takes the HEP's addresses, ports and
//! timestamp; the proto-type chunk becomes the payload hint.
//! Written here rather than with the sipcapture `hep` crate, which panics on malformed
//! input. smoltcp-style: `parse` checks every length once and builds a small `Hep` view
//! of borrowed slices; nothing after it indexes unchecked.
//! May use: flate2 (in memory, output capped at `MAX_INFLATED`). Invariants: a HEP packet
//! yields at most one datagram; malformed → `BadHep`, capture id not allowed →
//! `HepCaptureId`, logs / JSON reports / other protocols → `HepOtherPayload`.
//!
//! HEPv3 chunk types used (vendor 0): 1 IP family, 2 IP protocol, 3/4 IPv4 source /
//! destination, 5/6 IPv6 source / destination, 7/8 ports, 9/10 timestamp seconds /
//! microseconds, 11 protocol type, 12 capture id, 15 payload, 16 zlib/gzip payload.
//! Chunk 17 (correlation id) is passed on with the datagram for leg linking. Others (14
//! auth key, vendor chunks) are skipped.
//!
//! HEPv1/v2 (Kamailio/OpenSIPS `siptrace`, captagent): version, header length, family,
//! protocol, source and destination port (network order), the two addresses; v2 then a
//! 12-byte time header (seconds, microseconds, capture id, padding). Senders write the
//! time header in host order (Kamailio: explicitly little-endian), so it is read
//! little-endian unless that gives an impossible microsecond value and big-endian does not.

use super::{Datagram, DatagramOut, Decoder, PayloadHint, Transport};
use crate::counters::DropReason;
use crate::time::Ts;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub(crate) const HEP3_MAGIC: &[u8] = b"HEP3";

/// Largest decompressed payload accepted (a zip bomb stops here).
pub(crate) const MAX_INFLATED: usize = 256 * 1024;

/// A checked HEP packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hep<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub ts: Option<Ts>,
    pub proto_type: Option<u8>,
    pub capture_id: Option<u32>,
    /// Chunk 17, the correlation id an agent gives a packet (a B2BUA's other leg's
    /// Call-ID, or an id shared by its legs).
    pub correlation: Option<&'a [u8]>,
    pub payload: Payload<'a>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Payload<'a> {
    Plain(&'a [u8]),
    Compressed(&'a [u8]),
}

/// HEP protocol types (HEP3 rev. 12).
const PT_SIP: u8 = 1;
const PT_RTP: u8 = 4;
const PT_RTCP: u8 = 5;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Cheap pre-check for the magic-less HEPv1/v2 header.
pub(crate) fn may_be_hep2(b: &[u8]) -> bool {
    matches!(b, [1 | 2, _, AF_INET | AF_INET6, ..])
}

/// Check and view one HEP packet. `allow_v2`: also accept the HEPv1/v2 header.
pub(crate) fn parse(b: &[u8], allow_v2: bool) -> Result<Hep<'_>, DropReason> {
    if b.starts_with(HEP3_MAGIC) {
        parse_v3(b)
    } else if allow_v2 && may_be_hep2(b) {
        parse_v2(b)
    } else {
        Err(DropReason::BadHep)
    }
}

fn be16(s: &[u8]) -> Result<u16, DropReason> {
    Ok(u16::from_be_bytes(s.try_into().map_err(|_| DropReason::BadHep)?))
}
fn be32(s: &[u8]) -> Result<u32, DropReason> {
    Ok(u32::from_be_bytes(s.try_into().map_err(|_| DropReason::BadHep)?))
}
fn one(s: &[u8]) -> Result<u8, DropReason> {
    match s {
        [v] => Ok(*v),
        _ => Err(DropReason::BadHep),
    }
}

fn parse_v3(b: &[u8]) -> Result<Hep<'_>, DropReason> {
    let total = usize::from(be16(b.get(4..6).ok_or(DropReason::BadHep)?)?);
    if total < 6 || total > b.len() {
        return Err(DropReason::BadHep);
    }
    let mut family = None;
    let mut ip_proto = None;
    let (mut src4, mut dst4, mut src6, mut dst6) = (None, None, None, None);
    let (mut sport, mut dport) = (None, None);
    let (mut secs, mut usecs) = (None, None);
    let mut proto_type = None;
    let mut capture_id = None;
    let (mut plain, mut compressed) = (None, None);
    let mut correlation = None;

    let mut at = 6usize;
    while at < total {
        let head = b.get(at..at + 6).ok_or(DropReason::BadHep)?;
        let vendor = be16(&head[..2])?;
        let kind = be16(&head[2..4])?;
        let len = usize::from(be16(&head[4..6])?);
        let end = at.checked_add(len).filter(|&e| len >= 6 && e <= total).ok_or(DropReason::BadHep)?;
        let body = b.get(at + 6..end).ok_or(DropReason::BadHep)?;
        at = end;
        if vendor != 0 {
            continue;
        }
        match kind {
            1 => family = Some(one(body)?),
            2 => ip_proto = Some(one(body)?),
            3 => src4 = Some(Ipv4Addr::from(be32(body)?)),
            4 => dst4 = Some(Ipv4Addr::from(be32(body)?)),
            5 => src6 = Some(Ipv6Addr::from(<[u8; 16]>::try_from(body).map_err(|_| DropReason::BadHep)?)),
            6 => dst6 = Some(Ipv6Addr::from(<[u8; 16]>::try_from(body).map_err(|_| DropReason::BadHep)?)),
            7 => sport = Some(be16(body)?),
            8 => dport = Some(be16(body)?),
            9 => secs = Some(be32(body)?),
            10 => usecs = Some(be32(body)?),
            11 => proto_type = Some(one(body)?),
            12 => {
                capture_id = Some(match body.len() {
                    2 => u32::from(be16(body)?),
                    _ => be32(body)?,
                })
            }
            15 => plain = Some(body),
            17 if !body.is_empty() => correlation = Some(body),
            16 => compressed = Some(body),
            _ => {}
        }
    }

    let (src, dst): (IpAddr, IpAddr) = match (family, src4, dst4, src6, dst6) {
        (Some(AF_INET6), _, _, Some(s), Some(d)) => (s.into(), d.into()),
        (_, Some(s), Some(d), _, _) => (s.into(), d.into()),
        (_, _, _, Some(s), Some(d)) => (s.into(), d.into()),
        _ => return Err(DropReason::BadHep),
    };
    let (Some(sport), Some(dport)) = (sport, dport) else {
        return Err(DropReason::BadHep);
    };
    let payload = match (plain, compressed) {
        (Some(p), _) => Payload::Plain(p),
        (None, Some(z)) => Payload::Compressed(z),
        (None, None) => return Err(DropReason::BadHep),
    };
    let ts = match (secs, usecs) {
        (Some(s), Some(us)) => Some(Ts(i64::from(s) * 1_000_000 + i64::from(us))),
        (Some(s), None) => Some(Ts(i64::from(s) * 1_000_000)),
        _ => None,
    };
    Ok(Hep {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        transport: transport(ip_proto),
        ts,
        proto_type,
        capture_id,
        correlation,
        payload,
    })
}

fn transport(ip_proto: Option<u8>) -> Transport {
    match ip_proto {
        Some(6) => Transport::Tcp,
        Some(132) => Transport::Sctp,
        _ => Transport::Udp,
    }
}

fn parse_v2(b: &[u8]) -> Result<Hep<'_>, DropReason> {
    let head: &[u8; 8] = b.get(..8).and_then(|h| h.try_into().ok()).ok_or(DropReason::BadHep)?;
    let version = head[0];
    let hdr_len = usize::from(head[1]);
    let ip_len = if head[2] == AF_INET { 8 } else { 32 };
    if hdr_len < 8 + ip_len {
        return Err(DropReason::BadHep);
    }
    let addrs = b.get(8..8 + ip_len).ok_or(DropReason::BadHep)?;
    let (src, dst): (IpAddr, IpAddr) = if ip_len == 8 {
        (Ipv4Addr::from(be32(&addrs[..4])?).into(), Ipv4Addr::from(be32(&addrs[4..])?).into())
    } else {
        let s: [u8; 16] = addrs[..16].try_into().map_err(|_| DropReason::BadHep)?;
        let d: [u8; 16] = addrs[16..].try_into().map_err(|_| DropReason::BadHep)?;
        (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into())
    };
    let (mut ts, mut capture_id, mut at) = (None, None, hdr_len);
    if version == 2 {
        let t: &[u8; 12] = b.get(hdr_len..hdr_len + 12).and_then(|t| t.try_into().ok()).ok_or(DropReason::BadHep)?;
        let le = (u32::from_le_bytes([t[0], t[1], t[2], t[3]]), u32::from_le_bytes([t[4], t[5], t[6], t[7]]));
        let be = (u32::from_be_bytes([t[0], t[1], t[2], t[3]]), u32::from_be_bytes([t[4], t[5], t[6], t[7]]));
        let big = le.1 >= 1_000_000 && be.1 < 1_000_000;
        let (s, us) = if big { be } else { le };
        ts = Some(Ts(i64::from(s) * 1_000_000 + i64::from(us)));
        let id = if big { u16::from_be_bytes([t[8], t[9]]) } else { u16::from_le_bytes([t[8], t[9]]) };
        capture_id = Some(u32::from(id));
        at += 12;
    }
    let payload = b.get(at..).filter(|p| !p.is_empty()).ok_or(DropReason::BadHep)?;
    Ok(Hep {
        src: SocketAddr::new(src, be16(&head[4..6])?),
        dst: SocketAddr::new(dst, be16(&head[6..8])?),
        transport: transport(Some(head[3])),
        ts,
        // HEPv1/v2 only ever carried SIP.
        proto_type: Some(PT_SIP),
        capture_id,
        correlation: None,
        payload: Payload::Plain(payload),
    })
}

/// The payload hint for a HEP protocol type, or `HepOtherPayload` for what we do not use.
/// Type 4 is RTP and 5 RTCP, but many agents send JSON reports under them: only payloads
/// that look like RTP version 2 (and for RTCP a packet type 200..=204) are kept.
pub(crate) fn hint(proto_type: Option<u8>, payload: &[u8]) -> Result<PayloadHint, DropReason> {
    let rtp_v2 = payload.first().is_some_and(|b| b & 0xc0 == 0x80);
    match proto_type {
        None => Ok(PayloadHint::Unknown),
        Some(PT_SIP) => Ok(PayloadHint::Sip),
        Some(PT_RTP) if rtp_v2 => Ok(PayloadHint::Rtp),
        Some(PT_RTCP) if rtp_v2 && payload.get(1).is_some_and(|pt| (200..=204).contains(pt)) => Ok(PayloadHint::Rtcp),
        Some(_) => Err(DropReason::HepOtherPayload),
    }
}

/// Decompress a chunk-16 payload into `out` (zlib, or gzip by its magic), at most `cap`
/// bytes; anything else, a truncated stream or more output is `BadHep`.
pub(crate) fn inflate(
    z: &mut flate2::Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
) -> Result<(), DropReason> {
    out.clear();
    if input.starts_with(&[0x1f, 0x8b]) {
        // gzip is rare in HEP; the reader allocates its own state, which is fine here.
        use std::io::Read;
        let mut r = flate2::read::GzDecoder::new(input).take(cap as u64 + 1);
        r.read_to_end(out).map_err(|_| DropReason::BadHep)?;
        return if out.len() > cap { Err(DropReason::BadHep) } else { Ok(()) };
    }
    z.reset(true);
    out.reserve(cap);
    let status = z.decompress_vec(input, out, flate2::FlushDecompress::Finish).map_err(|_| DropReason::BadHep)?;
    match status {
        flate2::Status::StreamEnd if out.len() <= cap => Ok(()),
        _ => Err(DropReason::BadHep),
    }
}

impl Decoder {
    /// Unwrap one HEP packet; `ts` is used when it carries no timestamp.
    pub(super) fn hep(
        &mut self,
        ts: Ts,
        bytes: &[u8],
        allow_v2: bool,
        sink: &mut DatagramOut<'_>,
    ) -> Result<(), DropReason> {
        let h = parse(bytes, allow_v2)?;
        sink.counters.hep_packets += 1;
        if !self.cfg.hep_capture_ids.is_empty()
            && !h.capture_id.is_some_and(|id| self.cfg.hep_capture_ids.contains(&id))
        {
            return Err(DropReason::HepCaptureId);
        }
        let payload: &[u8] = match h.payload {
            Payload::Plain(p) => p,
            Payload::Compressed(z) => {
                inflate(&mut self.inflater, z, &mut self.hep_buf, MAX_INFLATED)?;
                &self.hep_buf
            }
        };
        let hint = hint(h.proto_type, payload)?;
        sink.emit(Datagram {
            ts: h.ts.unwrap_or(ts),
            src: h.src,
            dst: h.dst,
            transport: h.transport,
            payload,
            hint,
            correlation: h.correlation,
        });
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod build {
    //! HEP packets for tests.

    pub fn chunk(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut c = vec![0, 0];
        c.extend_from_slice(&kind.to_be_bytes());
        c.extend_from_slice(&(body.len() as u16 + 6).to_be_bytes());
        c.extend_from_slice(body);
        c
    }

    pub fn hep3(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut p = b"HEP3".to_vec();
        p.extend_from_slice(&(body.len() as u16 + 6).to_be_bytes());
        p.extend_from_slice(&body);
        p
    }

    /// A complete IPv4 HEP3 packet with the given proto type, capture id and payload.
    pub fn hep3_v4(proto_type: u8, capture_id: u32, payload_chunk: Vec<u8>) -> Vec<u8> {
        hep3(&[
            chunk(1, &[2]),
            chunk(2, &[17]),
            chunk(3, &[10, 0, 0, 1]),
            chunk(4, &[10, 0, 0, 2]),
            chunk(7, &5060u16.to_be_bytes()),
            chunk(8, &5080u16.to_be_bytes()),
            chunk(9, &1_700_000_000u32.to_be_bytes()),
            chunk(10, &123_456u32.to_be_bytes()),
            chunk(11, &[proto_type]),
            chunk(12, &capture_id.to_be_bytes()),
            chunk(14, b"secret"),
            payload_chunk,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use crate::decode::test_util::*;
    use crate::decode::{DecodeConfig, LinkType};
    use proptest::prelude::*;
    use std::io::Write;

    const SIP: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn hep3_fields() {
        let p = hep3_v4(1, 2001, chunk(15, SIP));
        let h = parse(&p, false).unwrap();
        assert_eq!(h.src.to_string(), "10.0.0.1:5060");
        assert_eq!(h.dst.to_string(), "10.0.0.2:5080");
        assert_eq!(h.ts, Some(Ts(1_700_000_000_123_456)));
        assert_eq!(h.capture_id, Some(2001));
        assert_eq!(h.proto_type, Some(1));
        assert_eq!(h.transport, Transport::Udp);
        assert_eq!(h.payload, Payload::Plain(SIP));
    }

    #[test]
    fn hep3_ipv6_and_vendor_chunks() {
        let mut vendor = chunk(99, b"xx");
        vendor[1] = 7; // vendor 7: skipped whatever its type
        let p = hep3(&[
            chunk(1, &[10]),
            chunk(2, &[6]),
            chunk(5, &[0x20; 16]),
            chunk(6, &[0x21; 16]),
            vendor,
            chunk(7, &1u16.to_be_bytes()),
            chunk(8, &2u16.to_be_bytes()),
            chunk(15, SIP),
        ]);
        let h = parse(&p, false).unwrap();
        assert!(h.src.is_ipv6());
        assert_eq!(h.transport, Transport::Tcp);
        assert_eq!(h.ts, None);
        assert_eq!(h.proto_type, None);
    }

    #[test]
    fn hep3_malformed() {
        let good = hep3_v4(1, 1, chunk(15, SIP));
        // Length field larger than the packet.
        assert_eq!(parse(&good[..good.len() - 1], false), Err(DropReason::BadHep));
        // A chunk whose length is below its own header.
        let mut bad = good.clone();
        bad[10..12].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(parse(&bad, false), Err(DropReason::BadHep));
        // An IPv4 address chunk of the wrong size.
        let p = hep3(&[chunk(3, &[1, 2, 3]), chunk(4, &[1, 2, 3, 4])]);
        assert_eq!(parse(&p, false), Err(DropReason::BadHep));
        // Missing payload / addresses / ports.
        let p = hep3(&[chunk(3, &[1, 2, 3, 4]), chunk(4, &[1, 2, 3, 4]), chunk(7, &[0, 1]), chunk(8, &[0, 2])]);
        assert_eq!(parse(&p, false), Err(DropReason::BadHep));
        let p = hep3(&[chunk(7, &[0, 1]), chunk(8, &[0, 2]), chunk(15, SIP)]);
        assert_eq!(parse(&p, false), Err(DropReason::BadHep));
        let p = hep3(&[chunk(3, &[1, 2, 3, 4]), chunk(4, &[1, 2, 3, 4]), chunk(15, SIP)]);
        assert_eq!(parse(&p, false), Err(DropReason::BadHep));
    }

    fn hep2(version: u8, le_time: bool) -> Vec<u8> {
        let mut p = vec![version, 16, AF_INET, 17];
        p.extend_from_slice(&5060u16.to_be_bytes());
        p.extend_from_slice(&5070u16.to_be_bytes());
        p.extend_from_slice(&[192, 168, 1, 1, 192, 168, 1, 2]);
        if version == 2 {
            let (s, us, id) = (1_600_000_000u32, 250_000u32, 77u16);
            if le_time {
                p.extend_from_slice(&s.to_le_bytes());
                p.extend_from_slice(&us.to_le_bytes());
                p.extend_from_slice(&id.to_le_bytes());
            } else {
                p.extend_from_slice(&s.to_be_bytes());
                p.extend_from_slice(&us.to_be_bytes());
                p.extend_from_slice(&id.to_be_bytes());
            }
            p.extend_from_slice(&[0, 0]);
        }
        p.extend_from_slice(SIP);
        p
    }

    #[test]
    fn hep2_both_byte_orders_and_v1() {
        for le in [true, false] {
            let p = hep2(2, le);
            let h = parse(&p, true).unwrap();
            assert_eq!(h.ts, Some(Ts(1_600_000_000_250_000)), "little-endian: {le}");
            assert_eq!(h.capture_id, Some(77));
            assert_eq!(h.src.to_string(), "192.168.1.1:5060");
            assert_eq!(h.payload, Payload::Plain(SIP));
        }
        let v1 = hep2(1, true);
        let h = parse(&v1, true).unwrap();
        assert_eq!(h.ts, None);
        assert_eq!(h.payload, Payload::Plain(SIP));
        // Not accepted where v2 is not allowed, and a header length too small is bad.
        assert_eq!(parse(&hep2(2, true), false), Err(DropReason::BadHep));
        let mut p = hep2(2, true);
        p[1] = 10;
        assert_eq!(parse(&p, true), Err(DropReason::BadHep));
    }

    #[test]
    fn hints() {
        assert_eq!(hint(Some(1), b"x"), Ok(PayloadHint::Sip));
        assert_eq!(hint(None, b"x"), Ok(PayloadHint::Unknown));
        assert_eq!(hint(Some(4), &[0x80, 8]), Ok(PayloadHint::Rtp));
        assert_eq!(hint(Some(5), &[0x81, 200]), Ok(PayloadHint::Rtcp));
        assert_eq!(hint(Some(5), b"{\"type\":200}"), Err(DropReason::HepOtherPayload));
        assert_eq!(hint(Some(100), b"log line"), Err(DropReason::HepOtherPayload));
        assert_eq!(hint(Some(4), b"{}"), Err(DropReason::HepOtherPayload));
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn compressed_payload_and_cap() {
        let mut z = flate2::Decompress::new(true);
        let mut out = Vec::new();
        inflate(&mut z, &zlib(SIP), &mut out, 1024).unwrap();
        assert_eq!(out, SIP);
        // Same decompressor reused.
        inflate(&mut z, &zlib(b"second"), &mut out, 1024).unwrap();
        assert_eq!(out, b"second");
        // Over the cap (a small bomb) and truncated streams are refused.
        let big = zlib(&vec![b'a'; 100_000]);
        assert_eq!(inflate(&mut z, &big, &mut out, 1000), Err(DropReason::BadHep));
        let good = zlib(SIP);
        assert_eq!(inflate(&mut z, &good[..good.len() / 2], &mut out, 1024), Err(DropReason::BadHep));
        assert_eq!(inflate(&mut z, b"not zlib", &mut out, 1024), Err(DropReason::BadHep));
        // gzip by its magic.
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(SIP).unwrap();
        inflate(&mut z, &g.finish().unwrap(), &mut out, 1024).unwrap();
        assert_eq!(out, SIP);
    }

    #[test]
    fn decoder_unwraps_hep_in_udp_and_from_listener() {
        let mut h = Harness::default();
        let hep = hep3_v4(1, 2001, chunk(16, &zlib(SIP)));
        // HEP3 on an arbitrary port, found by its magic.
        h.feed(LinkType::Ipv4, 5, &ipv4_udp([127, 0, 0, 1], [127, 0, 0, 1], 40000, 12345, &hep));
        // Straight from the HEP listener.
        h.feed(LinkType::Hep, 6, &hep);
        assert_eq!(h.out.len(), 2);
        for d in &h.out {
            assert_eq!(d.payload, SIP.to_vec());
            assert_eq!(d.hint, PayloadHint::Sip);
            assert_eq!(d.ts, Ts(1_700_000_000_123_456));
            assert_eq!(d.src.to_string(), "10.0.0.1:5060");
        }
        assert_eq!(h.counters.hep_packets, 2);
        // HEPv2 only on a HEP port; elsewhere it is an ordinary UDP payload.
        let v2 = hep2(2, true);
        h.feed(LinkType::Ipv4, 7, &ipv4_udp([127, 0, 0, 1], [127, 0, 0, 1], 40000, 9060, &v2));
        h.feed(LinkType::Ipv4, 8, &ipv4_udp([127, 0, 0, 1], [127, 0, 0, 1], 40000, 9999, &v2));
        assert_eq!(h.out.len(), 4);
        assert_eq!(h.out[2].src.to_string(), "192.168.1.1:5060");
        assert_eq!(h.out[3].src.to_string(), "127.0.0.1:40000");
        // Other payloads and malformed packets are counted.
        h.feed(LinkType::Hep, 9, &hep3_v4(100, 1, chunk(15, b"a log line")));
        h.feed(LinkType::Hep, 10, b"HEP3\x00\x07x");
        assert_eq!(h.counters.dropped(DropReason::HepOtherPayload), 1);
        assert_eq!(h.counters.dropped(DropReason::BadHep), 1);
    }

    #[test]
    fn capture_id_filter() {
        let cfg = DecodeConfig { hep_capture_ids: vec![7], ..DecodeConfig::default() };
        let mut h = Harness::with_config(cfg);
        h.feed(LinkType::Hep, 1, &hep3_v4(1, 2001, chunk(15, SIP)));
        h.feed(LinkType::Hep, 2, &hep3_v4(1, 7, chunk(15, SIP)));
        assert_eq!(h.out.len(), 1);
        assert_eq!(h.counters.dropped(DropReason::HepCaptureId), 1);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes, true);
            let mut p = b"HEP3".to_vec();
            p.extend_from_slice(&bytes);
            let _ = parse(&p, false);
        }

        #[test]
        fn mutated_hep3_never_panics(i in 0usize..200, v in any::<u8>()) {
            let mut p = hep3_v4(1, 2001, chunk(15, SIP));
            let n = p.len();
            p[i % n] = v;
            let mut h = Harness::default();
            h.feed(LinkType::Hep, 1, &p);
            prop_assert!(h.out.len() + h.counters.total_drops() as usize == 1);
        }
    }
}
