//! Mirror tunnels: GRE (RFC 2784 with the RFC 2890 key and sequence fields) carrying IP,
//! MPLS or Ethernet (0x6558, transparent Ethernet bridging), ERSPAN type I/II (GRE 0x88BE)
//! and type III (GRE 0x22EB, with or without its platform sub-header), VXLAN (RFC 7348, on
//! `DecodeConfig::vxlan_ports`) and TZSP (on `DecodeConfig::tzsp_ports`). Switches and cloud
//! networks send port mirrors this way; the packet inside goes back through `link`/`ip`.
//! Headers are read here by fixed offsets (etherparse has none of them).
//! May use: `link`, `ip` (through `Decoder::ip`), `counters`. Invariants: every parser is a
//! checked view that never panics; a malformed header is one `Bad*` drop for its kind; each
//! layer removed is counted once in `Counters::tunnels` and deepens `Via`, so nesting is
//! bounded by `MAX_TUNNEL_DEPTH` (`DropReason::TunnelTooDeep`).

use super::link::{self, L3};
use super::{DatagramOut, Decoder, LinkType};
use crate::counters::{DropReason, Tunnel};
use crate::time::Ts;
use etherparse::EtherType;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// Tunnels inside tunnels followed at most (ERSPAN in GRE in IPv4 is two).
pub(crate) const MAX_TUNNEL_DEPTH: u8 = 4;

/// How a packet reached us: how deep in tunnels, and a fingerprint of the tunnel chain
/// (kinds, outer endpoints, session/VNI/key), so that the mirror deduplication can tell two
/// copies that came different ways from a packet that was simply sent twice.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Via {
    pub depth: u8,
    pub path: u64,
}

impl Via {
    /// Not in any tunnel (a SPAN port, a local interface).
    pub const OUTSIDE: Via = Via { depth: 0, path: 0 };
}

impl Decoder {
    /// Enter one more tunnel layer: counts its kind and extends the path fingerprint.
    pub(super) fn enter(
        &self,
        via: Via,
        kind: Tunnel,
        outer: (IpAddr, IpAddr),
        tag: u32,
        sink: &mut DatagramOut<'_>,
    ) -> Result<Via, DropReason> {
        if via.depth >= MAX_TUNNEL_DEPTH {
            return Err(DropReason::TunnelTooDeep);
        }
        sink.counters.tunnel(kind);
        let h = foldhash::fast::FixedState::with_seed(0x7e11).hash_one((via.path, kind, outer, tag));
        // 0 is reserved for "outside any tunnel".
        Ok(Via { depth: via.depth + 1, path: h | 1 })
    }

    /// A link-layer frame found inside a tunnel (or read from a capture): strip its
    /// header, count the Q-in-Q and MPLS on the way, decode the IP packet.
    pub(super) fn link_ip(
        &mut self,
        ts: Ts,
        link: LinkType,
        bytes: &[u8],
        via: Via,
        sink: &mut DatagramOut<'_>,
    ) -> Result<(), DropReason> {
        let l3 = link::parse(link, bytes)?;
        self.l3(ts, l3, via, sink)
    }

    fn l3(&mut self, ts: Ts, l3: L3<'_>, via: Via, sink: &mut DatagramOut<'_>) -> Result<(), DropReason> {
        if l3.qinq {
            sink.counters.tunnel(Tunnel::Qinq);
        }
        if l3.mpls {
            sink.counters.tunnel(Tunnel::Mpls);
        }
        self.ip(ts, l3, via, sink)
    }

    /// IP protocol 47.
    pub(super) fn gre(
        &mut self,
        ts: Ts,
        outer: (IpAddr, IpAddr),
        bytes: &[u8],
        via: Via,
        sink: &mut DatagramOut<'_>,
    ) -> Result<(), DropReason> {
        let g = parse_gre(bytes)?;
        match g.proto {
            GRE_ERSPAN_II => {
                // Type I has no ERSPAN header and no sequence number; type II has both.
                let (session, frame) = if g.seq.is_some() { parse_erspan2(g.payload)? } else { (0, g.payload) };
                let via = self.enter(via, Tunnel::ErspanII, outer, session, sink)?;
                self.link_ip(ts, LinkType::Ethernet, frame, via, sink)
            }
            GRE_ERSPAN_III => {
                let e = parse_erspan3(g.payload)?;
                let via = self.enter(via, Tunnel::ErspanIII, outer, e.session, sink)?;
                let link = if e.ip { LinkType::RawIp } else { LinkType::Ethernet };
                self.link_ip(ts, link, e.frame, via, sink)
            }
            GRE_TEB => {
                let via = self.enter(via, Tunnel::Gre, outer, g.key.unwrap_or(0), sink)?;
                self.link_ip(ts, LinkType::Ethernet, g.payload, via, sink)
            }
            proto => {
                let via = self.enter(via, Tunnel::Gre, outer, g.key.unwrap_or(0), sink)?;
                let l3 = link::after_ethertype(EtherType(proto), g.payload)?;
                self.l3(ts, l3, via, sink)
            }
        }
    }

    /// A UDP datagram to a VXLAN or TZSP port. `Ok(false)`: its first byte says it is not
    /// that protocol after all (RTP/RTCP on a port that happens to match), so the caller
    /// treats it as an ordinary datagram.
    pub(super) fn udp_tunnel(
        &mut self,
        ts: Ts,
        outer: (IpAddr, IpAddr),
        dport: u16,
        payload: &[u8],
        via: Via,
        sink: &mut DatagramOut<'_>,
    ) -> Result<bool, DropReason> {
        if self.cfg.vxlan_ports.contains(&dport) {
            if let Some((vni, frame)) = parse_vxlan(payload)? {
                let via = self.enter(via, Tunnel::Vxlan, outer, vni, sink)?;
                self.link_ip(ts, LinkType::Ethernet, frame, via, sink)?;
                return Ok(true);
            }
        } else if self.cfg.tzsp_ports.contains(&dport) {
            if let Some(frame) = parse_tzsp(payload)? {
                let via = self.enter(via, Tunnel::Tzsp, outer, 0, sink)?;
                self.link_ip(ts, LinkType::Ethernet, frame, via, sink)?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

const GRE_TEB: u16 = 0x6558;
const GRE_ERSPAN_II: u16 = 0x88be;
const GRE_ERSPAN_III: u16 = 0x22eb;

/// A GRE header's fields that matter here.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gre<'a> {
    pub proto: u16,
    pub key: Option<u32>,
    pub seq: Option<u32>,
    pub payload: &'a [u8],
}

/// GRE (RFC 2784, RFC 2890). Version 1 is PPTP's enhanced GRE, which carries PPP, not a
/// mirror: `OtherProtocol`. The routing bit belongs to the obsolete RFC 1701 source routes,
/// which RFC 2784 receivers discard: `BadGre`, as are the other versions.
pub(crate) fn parse_gre(bytes: &[u8]) -> Result<Gre<'_>, DropReason> {
    let head: [u8; 4] = bytes.get(..4).and_then(|h| h.try_into().ok()).ok_or(DropReason::BadGre)?;
    let flags = u16::from_be_bytes([head[0], head[1]]);
    let proto = u16::from_be_bytes([head[2], head[3]]);
    match flags & 0x0007 {
        0 => {}
        1 => return Err(DropReason::OtherProtocol),
        _ => return Err(DropReason::BadGre),
    }
    if flags & 0x4000 != 0 {
        return Err(DropReason::BadGre);
    }
    let mut at = 4usize;
    let mut word = |present: bool| -> Result<Option<u32>, DropReason> {
        if !present {
            return Ok(None);
        }
        let w = bytes.get(at..at + 4).ok_or(DropReason::BadGre)?;
        at += 4;
        Ok(Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
    };
    word(flags & 0x8000 != 0)?; // checksum + reserved1: not verified (see udp.rs)
    let key = word(flags & 0x2000 != 0)?;
    let seq = word(flags & 0x1000 != 0)?;
    let payload = bytes.get(at..).ok_or(DropReason::BadGre)?;
    Ok(Gre { proto, key, seq, payload })
}

/// ERSPAN type II: 8 bytes (version 1, VLAN, CoS, encapsulation, truncated bit, 10-bit
/// session id, index), then the mirrored Ethernet frame. Returns (session, frame).
pub(crate) fn parse_erspan2(bytes: &[u8]) -> Result<(u32, &[u8]), DropReason> {
    let h = bytes.get(..8).ok_or(DropReason::BadErspan)?;
    if h[0] >> 4 != 1 {
        return Err(DropReason::BadErspan);
    }
    let session = u32::from(u16::from_be_bytes([h[2], h[3]]) & 0x03ff);
    Ok((session, bytes.get(8..).unwrap_or(&[])))
}

/// What an ERSPAN type III header says.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Erspan3<'a> {
    pub session: u32,
    /// Frame type 2: the mirrored IP packet without its Ethernet header.
    pub ip: bool,
    pub frame: &'a [u8],
}

/// ERSPAN type III: 12 bytes (version 2, VLAN, CoS, BSO, T, session, timestamp, SGT, P,
/// frame type, hardware id, D, granularity, O), then an 8-byte platform-specific
/// sub-header when O is set, then the frame: Ethernet (frame type 0) or IP (2).
pub(crate) fn parse_erspan3(bytes: &[u8]) -> Result<Erspan3<'_>, DropReason> {
    let h = bytes.get(..12).ok_or(DropReason::BadErspan)?;
    if h[0] >> 4 != 2 {
        return Err(DropReason::BadErspan);
    }
    let session = u32::from(u16::from_be_bytes([h[2], h[3]]) & 0x03ff);
    let frame_type = (h[10] >> 2) & 0x1f;
    let start = if h[11] & 1 == 1 { 20 } else { 12 };
    let frame = bytes.get(start..).ok_or(DropReason::BadErspan)?;
    match frame_type {
        0 => Ok(Erspan3 { session, ip: false, frame }),
        2 => Ok(Erspan3 { session, ip: true, frame }),
        _ => Err(DropReason::BadErspan),
    }
}

/// VXLAN (RFC 7348): flags (I = 0x08), reserved, 24-bit VNI, reserved, then Ethernet.
/// `Ok(None)` when the first byte looks like RTP/RTCP version 2 instead (an RTCP port may
/// be 4789 by chance); any other first byte without the I flag is `BadVxlan`.
pub(crate) fn parse_vxlan(bytes: &[u8]) -> Result<Option<(u32, &[u8])>, DropReason> {
    let first = *bytes.first().ok_or(DropReason::BadVxlan)?;
    if first >> 6 == 2 {
        return Ok(None);
    }
    let h = bytes.get(..8).ok_or(DropReason::BadVxlan)?;
    if first & 0x08 == 0 {
        return Err(DropReason::BadVxlan);
    }
    let vni = u32::from_be_bytes([0, h[4], h[5], h[6]]);
    Ok(Some((vni, bytes.get(8..).unwrap_or(&[]))))
}

const TZSP_RECEIVED: u8 = 0;
const TZSP_TRANSMIT: u8 = 1;
const TZSP_ENCAP_ETHERNET: u16 = 1;
const TZSP_TAG_PADDING: u8 = 0;
const TZSP_TAG_END: u8 = 1;

/// TZSP (MikroTik/Tazmen sniffer protocol): version 1, type, encapsulation, then tagged
/// fields (padding and end are one byte, the others type + length + value) up to the end
/// tag, then the frame. `Ok(None)` when the version is not 1 (not TZSP: treat as ordinary
/// UDP). Control messages (keepalive, port opener) carry no frame: `NotIp`. Encapsulations
/// other than Ethernet (802.11 radio headers) are `UnknownLink`.
pub(crate) fn parse_tzsp(bytes: &[u8]) -> Result<Option<&[u8]>, DropReason> {
    if bytes.first() != Some(&1) {
        return Ok(None);
    }
    let h = bytes.get(..4).ok_or(DropReason::BadTzsp)?;
    if h[1] != TZSP_RECEIVED && h[1] != TZSP_TRANSMIT {
        return Err(DropReason::NotIp);
    }
    if u16::from_be_bytes([h[2], h[3]]) != TZSP_ENCAP_ETHERNET {
        return Err(DropReason::UnknownLink);
    }
    let mut at = 4usize;
    loop {
        match *bytes.get(at).ok_or(DropReason::BadTzsp)? {
            TZSP_TAG_END => return Ok(Some(bytes.get(at + 1..).unwrap_or(&[]))),
            TZSP_TAG_PADDING => at += 1,
            _ => {
                let len = *bytes.get(at + 1).ok_or(DropReason::BadTzsp)?;
                at += 2 + usize::from(len);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod build {
    //! Tunnel headers for tests, written from the RFCs independently of the parsers.

    /// A GRE header: checksum, key and sequence fields when given.
    pub fn gre(proto: u16, csum: bool, key: Option<u32>, seq: Option<u32>, payload: &[u8]) -> Vec<u8> {
        let mut flags = 0u16;
        if csum {
            flags |= 0x8000;
        }
        if key.is_some() {
            flags |= 0x2000;
        }
        if seq.is_some() {
            flags |= 0x1000;
        }
        let mut v = flags.to_be_bytes().to_vec();
        v.extend_from_slice(&proto.to_be_bytes());
        if csum {
            v.extend_from_slice(&[0xab, 0xcd, 0, 0]);
        }
        for w in [key, seq].into_iter().flatten() {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    pub fn erspan2(session: u16, frame: &[u8]) -> Vec<u8> {
        let mut v = vec![0x10, 0x64, (session >> 8) as u8 & 0x03, session as u8, 0, 0, 0, 7];
        v.extend_from_slice(frame);
        v
    }

    pub fn erspan3(session: u16, frame_type: u8, platform: bool, frame: &[u8]) -> Vec<u8> {
        let mut v = vec![0x20, 0x64, (session >> 8) as u8 & 0x03, session as u8];
        v.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        v.extend_from_slice(&[0, 0, (frame_type & 0x1f) << 2, u8::from(platform)]);
        if platform {
            v.extend_from_slice(&[0x0b; 8]);
        }
        v.extend_from_slice(frame);
        v
    }

    pub fn vxlan(vni: u32, frame: &[u8]) -> Vec<u8> {
        let mut v = vec![0x08, 0, 0, 0];
        v.extend_from_slice(&(vni << 8).to_be_bytes());
        v.extend_from_slice(frame);
        v
    }

    pub fn tzsp(frame: &[u8]) -> Vec<u8> {
        // Received frame, Ethernet; a padding tag, an RSSI tag (10, len 1), then end.
        let mut v = vec![1, 0, 0, 1, 0, 10, 1, 0xd0, 1];
        v.extend_from_slice(frame);
        v
    }

    pub fn mpls(labels: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            let bos = u32::from(i + 1 == labels.len());
            v.extend_from_slice(&((l << 12) | (bos << 8) | 64).to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::build;
    use super::*;
    use proptest::prelude::*;

    const SIP: &[u8] = b"OPTIONS sip:100@pbx SIP/2.0\r\n\r\n";

    fn inner_v4() -> Vec<u8> {
        ipv4_udp([192, 168, 1, 10], [192, 168, 1, 20], 5060, 5060, SIP)
    }

    fn inner_eth() -> Vec<u8> {
        ethernet(0x0800, &inner_v4())
    }

    /// The outer IPv4 packet of a tunnel over IP protocol `proto`.
    fn outer(proto: u8, body: &[u8]) -> Vec<u8> {
        ipv4_wrap([10, 9, 9, 1], [10, 9, 9, 2], proto, body)
    }

    fn decoded(h: &Harness) -> Vec<(String, Vec<u8>)> {
        h.out.iter().map(|d| (d.src.to_string(), d.payload.clone())).collect()
    }

    #[test]
    fn gre_every_flag_combination_and_payload() {
        let want = vec![("192.168.1.10:5060".to_string(), SIP.to_vec())];
        for csum in [false, true] {
            for key in [None, Some(7)] {
                for seq in [None, Some(99)] {
                    for (proto, body) in [(0x0800, inner_v4()), (0x6558, inner_eth())] {
                        let mut h = Harness::default();
                        let gre = build::gre(proto, csum, key, seq, &body);
                        h.feed(LinkType::Ethernet, 1, &ethernet(0x0800, &outer(47, &gre)));
                        assert_eq!(decoded(&h), want, "csum {csum} key {key:?} seq {seq:?} proto {proto:#x}");
                        assert_eq!(h.counters.tunnelled(Tunnel::Gre), 1);
                    }
                }
            }
        }
        // IPv6 inside, and MPLS inside.
        let v6 = ipv6_udp([0x20; 16], [0x21; 16], 5060, 5060, SIP);
        let mut h = Harness::default();
        h.feed(LinkType::RawIp, 1, &outer(47, &build::gre(0x86dd, false, None, None, &v6)));
        // A second later: not a mirror copy of the first.
        h.feed(
            LinkType::RawIp,
            1_000_000,
            &outer(47, &build::gre(0x8847, false, None, None, &build::mpls(&[16, 17], &v6))),
        );
        assert_eq!(h.payloads(), vec![SIP.to_vec(), SIP.to_vec()]);
        assert_eq!(h.counters.tunnelled(Tunnel::Mpls), 1);
    }

    #[test]
    fn gre_malformed_is_counted() {
        let mut h = Harness::default();
        // Routing bit, version 7, cut inside the key.
        let mut routed = build::gre(0x0800, false, None, None, &inner_v4());
        routed[0] |= 0x40;
        let mut v7 = build::gre(0x0800, false, None, None, &inner_v4());
        v7[1] |= 7;
        let cut = build::gre(0x0800, false, Some(1), None, &[])[..6].to_vec();
        for g in [routed, v7, cut, vec![0x00]] {
            h.feed(LinkType::RawIp, 1, &outer(47, &g));
        }
        assert_eq!(h.counters.dropped(DropReason::BadGre), 4);
        // PPTP's enhanced GRE is another protocol, not a malformed mirror.
        let mut pptp = build::gre(0x880b, false, None, None, b"ppp");
        pptp[1] = 1;
        h.feed(LinkType::RawIp, 2, &outer(47, &pptp));
        assert_eq!(h.counters.dropped(DropReason::OtherProtocol), 1);
        // A keepalive or other non-IP GRE payload.
        h.feed(LinkType::RawIp, 3, &outer(47, &build::gre(0x0806, false, None, None, b"arp")));
        assert_eq!(h.counters.dropped(DropReason::NotIp), 1);
        assert!(h.out.is_empty());
    }

    #[test]
    fn erspan_types() {
        let mut h = Harness::default();
        // Type I (no sequence, no header), II, III with and without the platform sub-header,
        // III carrying a bare IP packet.
        let frames = [
            build::gre(0x88be, false, None, None, &inner_eth()),
            build::gre(0x88be, false, None, Some(5), &build::erspan2(300, &inner_eth())),
            build::gre(0x22eb, false, None, Some(6), &build::erspan3(301, 0, false, &inner_eth())),
            build::gre(0x22eb, false, None, Some(7), &build::erspan3(302, 0, true, &inner_eth())),
            build::gre(0x22eb, false, None, Some(8), &build::erspan3(303, 2, true, &inner_v4())),
        ];
        for (i, f) in frames.iter().enumerate() {
            h.feed(LinkType::Ethernet, i as i64 * 100_000, &ethernet(0x0800, &outer(47, f)));
        }
        assert_eq!(h.payloads(), vec![SIP.to_vec(); 5]);
        assert_eq!(h.counters.tunnelled(Tunnel::ErspanII), 2);
        assert_eq!(h.counters.tunnelled(Tunnel::ErspanIII), 3);
        assert_eq!(h.counters.tunnelled(Tunnel::Gre), 0);
        // Wrong version nibbles, an unknown frame type, a platform sub-header cut short.
        let mut bad2 = build::erspan2(1, &inner_eth());
        bad2[0] = 0x20;
        let mut bad3 = build::erspan3(1, 0, false, &inner_eth());
        bad3[0] = 0x10;
        for f in [
            build::gre(0x88be, false, None, Some(1), &bad2),
            build::gre(0x22eb, false, None, Some(1), &bad3),
            build::gre(0x22eb, false, None, Some(1), &build::erspan3(1, 3, false, &inner_eth())),
            build::gre(0x22eb, false, None, Some(1), &build::erspan3(1, 0, true, &[])[..15]),
        ] {
            h.feed(LinkType::RawIp, 9, &outer(47, &f));
        }
        assert_eq!(h.counters.dropped(DropReason::BadErspan), 4);
        assert_eq!(h.out.len(), 5);
    }

    #[test]
    fn vxlan_and_tzsp_over_udp() {
        let mut h = Harness::default();
        let vx = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 51000, 4789, &build::vxlan(42, &inner_eth()));
        let tz = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 51000, 37008, &build::tzsp(&inner_eth()));
        h.feed(LinkType::Ethernet, 1, &ethernet(0x0800, &vx));
        h.feed(LinkType::Ethernet, 1_000_000, &ethernet(0x0800, &tz));
        assert_eq!(decoded(&h), vec![("192.168.1.10:5060".to_string(), SIP.to_vec()); 2]);
        assert_eq!((h.counters.tunnelled(Tunnel::Vxlan), h.counters.tunnelled(Tunnel::Tzsp)), (1, 1));
        // RTCP that happens to use these ports is an ordinary datagram.
        let rtcp = [0x81, 0xc8, 0, 6, 1, 2, 3, 4];
        h.feed(LinkType::RawIp, 3, &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 4788, 4789, &rtcp));
        h.feed(LinkType::RawIp, 4, &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 37009, 37008, &rtcp));
        assert_eq!(h.out.len(), 4);
        assert_eq!(h.out[3].payload, rtcp.to_vec());
        // No I flag; a TZSP tag running past the end; a keepalive; 802.11 inside.
        h.feed(LinkType::RawIp, 5, &ipv4_udp([1; 4], [2; 4], 1, 4789, &[0x00; 16]));
        h.feed(LinkType::RawIp, 6, &ipv4_udp([1; 4], [2; 4], 1, 37008, &[1, 0, 0, 1, 10, 9, 0]));
        h.feed(LinkType::RawIp, 7, &ipv4_udp([1; 4], [2; 4], 1, 37008, &[1, 4, 0, 1]));
        h.feed(LinkType::RawIp, 8, &ipv4_udp([1; 4], [2; 4], 1, 37008, &[1, 0, 0, 18, 1]));
        let c = &h.counters;
        assert_eq!(
            (
                c.dropped(DropReason::BadVxlan),
                c.dropped(DropReason::BadTzsp),
                c.dropped(DropReason::NotIp),
                c.dropped(DropReason::UnknownLink)
            ),
            (1, 1, 1, 1)
        );
        // Other ports, configured.
        let cfg = DecodeConfig { vxlan_ports: vec![8472], ..DecodeConfig::default() };
        let mut h = Harness::with_config(cfg);
        h.feed(LinkType::RawIp, 1, &ipv4_udp([1; 4], [2; 4], 1, 8472, &build::vxlan(1, &inner_eth())));
        h.feed(LinkType::RawIp, 1_000_000, &vx[..]);
        assert_eq!(h.out.len(), 2);
        assert_eq!(h.out[1].dst.port(), 4789, "4789 is no longer a VXLAN port");
    }

    #[test]
    fn qinq_and_mpls_on_ethernet() {
        let mut h = Harness::default();
        let mut qinq = vec![0u8; 12];
        qinq.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        qinq.extend_from_slice(&inner_v4());
        h.feed(LinkType::Ethernet, 1, &qinq);
        h.feed(LinkType::Ethernet, 2, &ethernet(0x8847, &build::mpls(&[100, 200, 300], &inner_v4())));
        // A pseudowire: control word, then a whole Ethernet frame.
        let mut pw = vec![0, 0, 0, 1];
        pw.extend_from_slice(&inner_eth());
        h.feed(LinkType::Ethernet, 3, &ethernet(0x8847, &build::mpls(&[100], &pw)));
        assert_eq!(h.payloads(), vec![SIP.to_vec(); 3]);
        assert_eq!((h.counters.tunnelled(Tunnel::Qinq), h.counters.tunnelled(Tunnel::Mpls)), (1, 2));
        // No bottom of stack within the limit; a payload that is neither IP nor a control word.
        h.feed(LinkType::Ethernet, 4, &ethernet(0x8847, &[0, 0, 0, 64].repeat(20)));
        h.feed(LinkType::Ethernet, 5, &ethernet(0x8847, &build::mpls(&[1], &[0x99, 0, 0])));
        assert_eq!(h.counters.dropped(DropReason::BadMpls), 2);
    }

    #[test]
    fn nesting_is_bounded() {
        // VXLAN in GRE in IP-in-IP in ERSPAN ...: each layer is one tunnel.
        let mut p = inner_v4();
        for _ in 0..6 {
            p = outer(47, &build::gre(0x0800, false, None, None, &p));
        }
        let mut h = Harness::default();
        h.feed(LinkType::RawIp, 1, &p);
        assert_eq!(h.counters.dropped(DropReason::TunnelTooDeep), 1);
        assert_eq!(h.counters.tunnelled(Tunnel::Gre), u64::from(MAX_TUNNEL_DEPTH));
        let mut p = inner_v4();
        for _ in 0..MAX_TUNNEL_DEPTH {
            p = outer(47, &build::gre(0x0800, false, None, None, &p));
        }
        h.feed(LinkType::RawIp, 1_000_000, &p);
        assert_eq!(h.out.len(), 1);
    }

    use crate::decode::DecodeConfig;

    #[test]
    fn a_span_copy_and_a_tunnel_copy_are_one_packet() {
        let span = ethernet(0x0800, &inner_v4());
        let mut hop = inner_v4();
        hop[8] -= 1; // one router further: TTL (and checksum) differ
        hop[10] ^= 1;
        let gre = ethernet(0x0800, &outer(47, &build::gre(0x6558, false, Some(3), None, &ethernet(0x0800, &hop))));
        let vx = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 51000, 4789, &build::vxlan(42, &inner_eth()));
        let mut h = Harness::default();
        // Tunnel first, then the SPAN copy 3 ms later, then a VXLAN copy from a cloud mirror.
        h.feed(LinkType::Ethernet, 1_000_000, &gre);
        h.feed(LinkType::Ethernet, 1_003_000, &span);
        h.feed(LinkType::RawIp, 1_004_000, &vx);
        assert_eq!(h.out.len(), 1);
        assert_eq!(h.counters.dropped(DropReason::MirrorDuplicate), 2);
        // The SPAN copy sent again 500 ms later (a SIP retransmission) is used.
        h.feed(LinkType::Ethernet, 1_503_000, &span);
        // And the same packet twice by the same path within the window too.
        h.feed(LinkType::Ethernet, 1_503_001, &span);
        assert_eq!(h.out.len(), 3);
        // Switched off, every copy is used.
        let mut h =
            Harness::with_config(DecodeConfig { mirror_dedupe: crate::time::Dur::ZERO, ..DecodeConfig::default() });
        h.feed(LinkType::Ethernet, 1_000_000, &gre);
        h.feed(LinkType::Ethernet, 1_003_000, &span);
        assert_eq!(h.out.len(), 2);
    }

    proptest! {
        #[test]
        fn header_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_gre(&bytes);
            let _ = parse_erspan2(&bytes);
            let _ = parse_erspan3(&bytes);
            let _ = parse_vxlan(&bytes);
            let _ = parse_tzsp(&bytes);
            let _ = link::mpls_stack(&bytes);
        }

        #[test]
        fn gre_round_trips(proto in any::<u16>(), csum in any::<bool>(), key in any::<Option<u32>>(),
                           seq in any::<Option<u32>>(), body in proptest::collection::vec(any::<u8>(), 0..32)) {
            let wire = build::gre(proto, csum, key, seq, &body);
            prop_assert_eq!(parse_gre(&wire).unwrap(), Gre { proto, key, seq, payload: &body[..] });
        }

        #[test]
        fn erspan_round_trips(session in 0u16..1024, platform in any::<bool>(), ip in any::<bool>(),
                              body in proptest::collection::vec(any::<u8>(), 0..32)) {
            let two = build::erspan2(session, &body);
            prop_assert_eq!(parse_erspan2(&two).unwrap(), (u32::from(session), &body[..]));
            let three = build::erspan3(session, if ip { 2 } else { 0 }, platform, &body);
            prop_assert_eq!(parse_erspan3(&three).unwrap(), Erspan3 { session: u32::from(session), ip, frame: &body[..] });
        }

        #[test]
        fn vxlan_tzsp_mpls_round_trip(vni in 0u32..(1 << 24), labels in proptest::collection::vec(0u32..(1 << 20), 1..8),
                                      body in proptest::collection::vec(any::<u8>(), 0..32)) {
            let vx = build::vxlan(vni, &body);
            prop_assert_eq!(parse_vxlan(&vx).unwrap(), Some((vni, &body[..])));
            let tz = build::tzsp(&body);
            prop_assert_eq!(parse_tzsp(&tz).unwrap(), Some(&body[..]));
            let mut ip = vec![0x45];
            ip.extend_from_slice(&body);
            let stack = build::mpls(&labels, &ip);
            prop_assert_eq!(link::mpls_stack(&stack).unwrap(), link::MplsInner::Ip(&ip[..]));
        }

        #[test]
        fn tunnelled_mutations_never_panic(which in 0usize..6, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
            let bodies = [
                outer(47, &build::gre(0x6558, true, Some(1), Some(2), &inner_eth())),
                outer(47, &build::gre(0x88be, false, None, Some(2), &build::erspan2(3, &inner_eth()))),
                outer(47, &build::gre(0x22eb, false, None, Some(2), &build::erspan3(3, 0, true, &inner_eth()))),
                ipv4_udp([1; 4], [2; 4], 1, 4789, &build::vxlan(9, &inner_eth())),
                ipv4_udp([1; 4], [2; 4], 1, 37008, &build::tzsp(&inner_eth())),
                ethernet(0x8847, &build::mpls(&[5, 6], &inner_v4())),
            ];
            let mut bytes = bodies[which].clone();
            for (at, v) in edits {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let link = if which == 5 { LinkType::Ethernet } else { LinkType::RawIp };
            let mut h = Harness::default();
            let n = h.feed(link, 1, &bytes);
            prop_assert!(n <= 1);
            // A fragment held for reassembly counts nothing until it expires; then every
            // frame has either given its datagram or one drop.
            h.decoder.expire(crate::time::Ts::MAX, &mut h.counters);
            prop_assert!(n + h.counters.total_drops() as usize == 1);
        }
    }
}
