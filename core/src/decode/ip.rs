//! Network layer: IPv4 and IPv6 (with extension headers), IP-in-IP decapsulation and the
//! hand-off of fragments to `ip_defrag`. Fixed headers are sliced with etherparse. The
//! IPv6 extension chain is walked here: etherparse keeps parsing "extension headers" after
//! a Fragment header even in non-first fragments, where those bytes are fragment data, and
//! we need the exact offset at which the fragmentable part starts.
//! May use: `link`, `ip_defrag`, `udp`, `tcp_stream`. Invariants: IPv4 `total_len` and
//! IPv6 `payload_length` bound the payload (Ethernet padding is cut off); a length of 0
//! (segmentation offload, jumbograms) means "the rest of the frame"; tunnels nest at most
//! `tunnel::MAX_TUNNEL_DEPTH` deep; every whole IP packet (outer or inner) passes the
//! mirror deduplication once before its payload is used.

use super::ip_defrag::FragKey;
use super::link::{IpVersion, L3};
use super::tunnel::Via;
use super::{DatagramOut, Decoder};
use crate::counters::{DropReason, Tunnel};
use crate::time::Ts;
use etherparse::err::{ipv4, ipv6};
use etherparse::{IpFragOffset, Ipv4HeaderSlice, Ipv6Header, Ipv6HeaderSlice};
use std::net::IpAddr;

const PROTO_IPV4: u8 = 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_IPV6: u8 = 41;
const PROTO_GRE: u8 = 47;

impl Decoder {
    /// Decode an IP packet (the version nibble must agree with what the link announced).
    pub(super) fn ip(&mut self, ts: Ts, l3: L3<'_>, via: Via, sink: &mut DatagramOut<'_>) -> Result<(), DropReason> {
        let first = *l3.bytes.first().ok_or(DropReason::Truncated)?;
        let version = match first >> 4 {
            4 => IpVersion::V4,
            6 => IpVersion::V6,
            _ => return Err(if l3.version.is_none() { DropReason::NotIp } else { DropReason::BadIp }),
        };
        if l3.version.is_some_and(|v| v != version) {
            return Err(DropReason::BadIp);
        }
        match version {
            IpVersion::V4 => self.ipv4(ts, l3.bytes, via, sink),
            IpVersion::V6 => self.ipv6(ts, l3.bytes, via, sink),
        }
    }

    fn ipv4(&mut self, ts: Ts, bytes: &[u8], via: Via, sink: &mut DatagramOut<'_>) -> Result<(), DropReason> {
        let h = Ipv4HeaderSlice::from_slice(bytes).map_err(|e| match e {
            ipv4::HeaderSliceError::Len(_) => DropReason::Truncated,
            ipv4::HeaderSliceError::Content(_) => DropReason::BadIp,
        })?;
        let header_len = h.slice().len();
        let total = usize::from(h.total_len());
        let end = if total == 0 {
            // Captured before the NIC filled the length in (TSO): the frame is the packet.
            bytes.len()
        } else if total < header_len {
            return Err(DropReason::BadIp);
        } else if total > bytes.len() {
            return Err(cut_short(h.protocol().0, bytes.get(header_len..).unwrap_or_default()));
        } else {
            total
        };
        let payload = bytes.get(header_len..end).ok_or(DropReason::Truncated)?;
        if !self.carries_tunnel(h.protocol().0, payload)
            && self.mirror_duplicate(ts, bytes.get(..end).unwrap_or(bytes), via)
        {
            return Err(DropReason::MirrorDuplicate);
        }
        let (src, dst) = (IpAddr::V4(h.source_addr()), IpAddr::V4(h.destination_addr()));
        let proto = h.protocol().0;
        let offset = h.fragments_offset();
        if h.more_fragments() || offset.value() != 0 {
            let key = FragKey::V4 { src: h.source(), dst: h.destination(), id: h.identification(), proto };
            return match self.defrag.add(ts, key, offset, h.more_fragments(), payload, proto, sink.counters)? {
                None => Ok(()),
                Some(whole) => {
                    let r = self.ip_payload(ts, src, dst, whole.proto, &whole.data, via, sink);
                    self.defrag.recycle(whole);
                    r
                }
            };
        }
        self.ip_payload(ts, src, dst, proto, payload, via, sink)
    }

    fn ipv6(&mut self, ts: Ts, bytes: &[u8], via: Via, sink: &mut DatagramOut<'_>) -> Result<(), DropReason> {
        let h = Ipv6HeaderSlice::from_slice(bytes).map_err(|e| match e {
            ipv6::HeaderSliceError::Len(_) => DropReason::Truncated,
            ipv6::HeaderSliceError::Content(_) => DropReason::BadIp,
        })?;
        let len = usize::from(h.payload_length());
        let end = if len == 0 {
            // Jumbogram or offloaded segment: the rest of the frame.
            bytes.len()
        } else {
            match Ipv6Header::LEN.checked_add(len).filter(|&e| e <= bytes.len()) {
                Some(end) => end,
                // Extension headers are not walked for this: SIP right after the fixed
                // header is the case the snap length cuts.
                None => return Err(cut_short(h.next_header().0, bytes.get(Ipv6Header::LEN..).unwrap_or_default())),
            }
        };
        let body = bytes.get(Ipv6Header::LEN..end).ok_or(DropReason::Truncated)?;
        if !self.carries_tunnel(h.next_header().0, body)
            && self.mirror_duplicate(ts, bytes.get(..end).unwrap_or(bytes), via)
        {
            return Err(DropReason::MirrorDuplicate);
        }
        let (src, dst) = (IpAddr::V6(h.source_addr()), IpAddr::V6(h.destination_addr()));
        match walk_extensions(h.next_header().0, body)? {
            Ext::Upper { proto, start } => {
                let payload = body.get(start..).ok_or(DropReason::BadIp)?;
                self.ip_payload(ts, src, dst, proto, payload, via, sink)
            }
            Ext::Fragment { next, start, offset, more, id } => {
                let data = body.get(start..).ok_or(DropReason::BadIp)?;
                let key = FragKey::V6 { src: h.source(), dst: h.destination(), id };
                let offset = IpFragOffset::try_new(offset).map_err(|_| DropReason::BadFragment)?;
                match self.defrag.add(ts, key, offset, more, data, next, sink.counters)? {
                    None => Ok(()),
                    Some(whole) => {
                        // The reassembled fragmentable part may itself start with
                        // extension headers (destination options) before the upper layer.
                        let r = match walk_extensions(whole.proto, &whole.data) {
                            Ok(Ext::Upper { proto, start }) => match whole.data.get(start..) {
                                Some(p) => self.ip_payload(ts, src, dst, proto, p, via, sink),
                                None => Err(DropReason::BadIp),
                            },
                            Ok(Ext::Fragment { .. }) => Err(DropReason::BadFragment),
                            Err(e) => Err(e),
                        };
                        self.defrag.recycle(whole);
                        r
                    }
                }
            }
        }
    }

    /// Whether this IP packet is a tunnel's carrier (GRE, IP-in-IP, VXLAN or TZSP by
    /// port): the packet inside it is what the mirror deduplication compares, so the
    /// carrier is not fingerprinted too (that doubled its cost for tunnelled traffic).
    fn carries_tunnel(&self, proto: u8, payload: &[u8]) -> bool {
        match proto {
            PROTO_IPV4 | PROTO_IPV6 | PROTO_GRE => true,
            PROTO_UDP => payload.get(2..4).is_some_and(|p| {
                let dport = u16::from_be_bytes([p[0], p[1]]);
                self.cfg.vxlan_ports.contains(&dport) || self.cfg.tzsp_ports.contains(&dport)
            }),
            _ => false,
        }
    }

    /// The transport (or tunnelled IP) inside one whole IP packet.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ip_payload(
        &mut self,
        ts: Ts,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        payload: &[u8],
        via: Via,
        sink: &mut DatagramOut<'_>,
    ) -> Result<(), DropReason> {
        match proto {
            PROTO_UDP => self.udp(ts, src, dst, payload, via, sink),
            PROTO_TCP => self.tcp(ts, src, dst, payload, sink),
            PROTO_IPV4 | PROTO_IPV6 => {
                let (version, kind) = if proto == PROTO_IPV4 {
                    (IpVersion::V4, Tunnel::IpInIp)
                } else {
                    (IpVersion::V6, Tunnel::Ipv6InIp)
                };
                let via = self.enter(via, kind, (src, dst), 0, sink)?;
                self.ip(ts, L3::new(Some(version), payload), via, sink)
            }
            PROTO_GRE => self.gre(ts, (src, dst), payload, via, sink),
            _ => Err(DropReason::OtherProtocol),
        }
    }
}

/// Why an IP packet longer than the captured bytes is dropped: `SipTruncated` when what
/// was captured of its UDP or TCP payload starts with a SIP start line (the snap length cut
/// a SIP message), otherwise `Truncated`.
fn cut_short(proto: u8, l4: &[u8]) -> DropReason {
    let start = match proto {
        PROTO_UDP => 8,
        PROTO_TCP => l4.get(12).map_or(usize::MAX, |b| usize::from(b >> 4) * 4),
        _ => return DropReason::Truncated,
    };
    let payload = l4.get(start..).unwrap_or_default();
    let line = payload.split(|&c| c == b'\n').next().unwrap_or_default();
    if !line.is_empty() && super::sip_frame::is_start_line(line) {
        DropReason::SipTruncated
    } else {
        DropReason::Truncated
    }
}

/// Where the IPv6 extension chain ends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ext {
    /// An upper-layer protocol (or one we do not walk) starts at `start`.
    Upper { proto: u8, start: usize },
    /// A Fragment header of a real fragment: its data starts at `start`; `next` is the
    /// protocol of the reassembled fragmentable part, `offset` in 8-byte units.
    Fragment { next: u8, start: usize, offset: u16, more: bool, id: u32 },
}

const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AUTH: u8 = 51;
const EXT_DEST_OPTS: u8 = 60;
const EXT_MOBILITY: u8 = 135;
const EXT_HIP: u8 = 139;
const EXT_SHIM6: u8 = 140;

/// Walk IPv6 extension headers from `next` over `data`. Every step advances at least 8
/// bytes, so the walk ends; a header running past the data is `BadIp` (the IPv6 payload
/// length was already checked against the frame).
pub(crate) fn walk_extensions(mut next: u8, data: &[u8]) -> Result<Ext, DropReason> {
    let mut at = 0usize;
    loop {
        let len = match next {
            EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_MOBILITY | EXT_HIP | EXT_SHIM6 => {
                let hdr_len = *data.get(at + 1).ok_or(DropReason::BadIp)?;
                (usize::from(hdr_len) + 1) * 8
            }
            EXT_AUTH => {
                let hdr_len = *data.get(at + 1).ok_or(DropReason::BadIp)?;
                (usize::from(hdr_len) + 2) * 4
            }
            EXT_FRAGMENT => {
                let f: &[u8; 8] = data.get(at..at + 8).and_then(|s| s.try_into().ok()).ok_or(DropReason::BadIp)?;
                let off_flags = u16::from_be_bytes([f[2], f[3]]);
                let offset = off_flags >> 3;
                let more = off_flags & 1 == 1;
                let id = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                if offset != 0 || more {
                    return Ok(Ext::Fragment { next: f[0], start: at + 8, offset, more, id });
                }
                // An atomic fragment (offset 0, no more): just a header to skip.
                8
            }
            proto => return Ok(Ext::Upper { proto, start: at }),
        };
        next = *data.get(at).ok_or(DropReason::BadIp)?;
        at += len;
        if at > data.len() {
            return Err(DropReason::BadIp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::decode::LinkType;

    #[test]
    fn extension_walk() {
        // hop-by-hop (8 bytes) → dest opts (16 bytes) → UDP
        let mut d = vec![EXT_DEST_OPTS, 0, 0, 0, 0, 0, 0, 0];
        d.extend_from_slice(&[17, 1]);
        d.extend_from_slice(&[0; 14]);
        d.extend_from_slice(b"udp");
        assert_eq!(walk_extensions(EXT_HOP_BY_HOP, &d), Ok(Ext::Upper { proto: 17, start: 24 }));
        // A fragment header: offset 185 (×8), more set, id 0x01020304.
        let f = [17, 0, 0x05, 0xc9, 1, 2, 3, 4, 0xaa];
        assert_eq!(
            walk_extensions(EXT_FRAGMENT, &f),
            Ok(Ext::Fragment { next: 17, start: 8, offset: 185, more: true, id: 0x0102_0304 })
        );
        // Atomic fragment is skipped.
        let f = [6, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(walk_extensions(EXT_FRAGMENT, &f), Ok(Ext::Upper { proto: 6, start: 8 }));
        // Header longer than the data.
        assert_eq!(walk_extensions(EXT_ROUTING, &[17, 4, 0, 0]), Err(DropReason::BadIp));
        assert_eq!(walk_extensions(EXT_AUTH, &[17]), Err(DropReason::BadIp));
    }

    #[test]
    fn ipv4_lengths() {
        let mut h = Harness::default();
        let mut pkt = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"hello");
        // Ethernet padding after the IP packet is not payload.
        pkt.extend_from_slice(&[0; 6]);
        h.feed(LinkType::RawIp, 1, &pkt);
        assert_eq!(h.payloads(), vec![b"hello".to_vec()]);
        // Cut short by the snap length.
        h.feed(LinkType::RawIp, 2, &pkt[..25]);
        assert_eq!(h.counters.dropped(DropReason::Truncated), 1);
        // A SIP message cut short, over UDP, TCP and IPv6, is counted as such.
        let invite = b"INVITE sip:8001@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\n\r\n";
        let udp = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, invite);
        let tcp = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, 1, TcpFlags::ACK, invite);
        let six = ipv6_udp([0x20; 16], [0x21; 16], 5060, 5060, invite);
        h.feed(LinkType::RawIp, 3, &udp[..60]);
        h.feed(LinkType::RawIp, 4, &tcp[..70]);
        h.feed(LinkType::RawIp, 5, &six[..80]);
        assert_eq!(h.counters.dropped(DropReason::SipTruncated), 3);
        assert_eq!(h.counters.dropped(DropReason::Truncated), 1);
        // total_len 0 (offload): the frame is the packet.
        let mut tso = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"abc");
        tso[2] = 0;
        tso[3] = 0;
        h.feed(LinkType::RawIp, 6, &tso);
        assert_eq!(h.out.len(), 2);
        // total_len smaller than the header.
        let mut bad = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"abc");
        bad[3] = 10;
        h.feed(LinkType::RawIp, 4, &bad);
        assert_eq!(h.counters.dropped(DropReason::BadIp), 1);
        // A version nibble that is neither 4 nor 6 on raw IP is not IP at all.
        h.feed(LinkType::RawIp, 5, &[0x55; 30]);
        assert_eq!(h.counters.dropped(DropReason::NotIp), 1);
        // The link said IPv6 but the packet is IPv4.
        h.feed(LinkType::Ipv6, 6, &pkt);
        assert_eq!(h.counters.dropped(DropReason::BadIp), 2);
    }

    #[test]
    fn other_protocols_are_counted() {
        let mut h = Harness::default();
        let mut icmp = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"x");
        icmp[9] = 1;
        h.feed(LinkType::Ipv4, 1, &icmp);
        assert_eq!(h.counters.dropped(DropReason::OtherProtocol), 1);
        assert!(h.out.is_empty());
    }

    #[test]
    fn ip_in_ip_both_ways() {
        let mut h = Harness::default();
        let inner = ipv4_udp([192, 168, 0, 1], [192, 168, 0, 2], 5060, 5070, b"INNER");
        let outer = ipv4_wrap([1, 1, 1, 1], [2, 2, 2, 2], 4, &inner);
        h.feed(LinkType::RawIp, 1, &outer);
        let inner6 = ipv6_udp([0x20; 16], [0x21; 16], 5060, 5080, b"SIX");
        let outer6 = ipv4_wrap([1, 1, 1, 1], [2, 2, 2, 2], 41, &inner6);
        h.feed(LinkType::RawIp, 2, &outer6);
        assert_eq!(h.payloads(), vec![b"INNER".to_vec(), b"SIX".to_vec()]);
        assert_eq!(h.out[0].src.to_string(), "192.168.0.1:5060");
        assert_eq!(h.out[1].dst.port(), 5080);
        // Nested deeper than we follow.
        let mut p = inner.clone();
        for _ in 0..5 {
            p = ipv4_wrap([1, 1, 1, 1], [2, 2, 2, 2], 4, &p);
        }
        h.feed(LinkType::RawIp, 3_000_000, &p);
        assert_eq!(h.counters.dropped(DropReason::TunnelTooDeep), 1);
        assert_eq!(h.counters.tunnelled(Tunnel::IpInIp), 1 + 4);
        assert_eq!(h.counters.tunnelled(Tunnel::Ipv6InIp), 1);
    }

    #[test]
    fn ipv6_with_extension_headers() {
        let mut h = Harness::default();
        let pkt = ipv6_udp([0x20; 16], [0x21; 16], 5060, 5060, b"v6 payload");
        // Insert a hop-by-hop header in front of UDP.
        let mut with_ext = pkt[..40].to_vec();
        with_ext[6] = 0;
        let plen = u16::from_be_bytes([pkt[4], pkt[5]]) + 8;
        with_ext[4..6].copy_from_slice(&plen.to_be_bytes());
        with_ext.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        with_ext.extend_from_slice(&pkt[40..]);
        h.feed(LinkType::Ipv6, 1, &with_ext);
        assert_eq!(h.payloads(), vec![b"v6 payload".to_vec()]);
        assert_eq!(h.out[0].src.ip().to_string(), "2020:2020:2020:2020:2020:2020:2020:2020");
        // Payload length larger than the frame.
        h.feed(LinkType::Ipv6, 2, &with_ext[..with_ext.len() - 1]);
        assert_eq!(h.counters.dropped(DropReason::Truncated), 1);
    }

    #[test]
    fn ipv4_fragments_reassemble_in_any_order() {
        let body = vec![b'v'; 3000];
        let pkt = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, &body);
        let mut frags = ipv4_fragments(&pkt, 1480, 7);
        assert_eq!(frags.len(), 3);
        frags.swap(0, 2);
        let mut h = Harness::default();
        assert_eq!(h.feed(LinkType::RawIp, 1, &frags[0]), 0);
        assert_eq!(h.feed(LinkType::RawIp, 2, &frags[1]), 0);
        assert_eq!(h.decoder.pending().0, 1);
        assert_eq!(h.feed(LinkType::RawIp, 3, &frags[2]), 1);
        assert_eq!(h.payloads(), vec![body]);
        assert_eq!(h.out[0].ts.0, 3);
        assert_eq!(h.decoder.pending().0, 0);
        assert_eq!(h.counters.total_drops(), 0);
    }

    #[test]
    fn ipv6_fragments_reassemble_and_expire() {
        let body = vec![b's'; 2500];
        let pkt = ipv6_udp([0x20; 16], [0x21; 16], 5060, 5060, &body);
        let frags = ipv6_fragments(&pkt, 1232, 99);
        let mut h = Harness::default();
        for (i, f) in frags.iter().enumerate().rev() {
            h.feed(LinkType::Ipv6, i as i64, f);
        }
        assert_eq!(h.payloads(), vec![body]);
        // A lone first fragment expires 30 s after it arrived, counted once.
        h.feed(LinkType::Ipv6, 1_000_000, &frags[0]);
        assert_eq!(h.decoder.next_expiry(), Some(Ts(31_000_000)));
        h.decoder.expire(Ts(31_000_000), &mut h.counters);
        assert_eq!(h.counters.dropped(DropReason::FragmentTimeout), 1);
        assert_eq!(h.decoder.next_expiry(), None);
    }

    #[test]
    fn fragmented_tunnel_is_reassembled_then_decapsulated() {
        let inner = ipv4_udp([192, 168, 0, 1], [192, 168, 0, 2], 5060, 5060, &[b'i'; 2000]);
        let outer = ipv4_wrap([1, 1, 1, 1], [2, 2, 2, 2], 4, &inner);
        let mut h = Harness::default();
        for f in ipv4_fragments(&outer, 1400, 3) {
            h.feed(LinkType::Ethernet, 1, &ethernet(0x0800, &f));
        }
        assert_eq!(h.payloads(), vec![vec![b'i'; 2000]]);
    }
}
