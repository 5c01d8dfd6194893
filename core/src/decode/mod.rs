//! Frame → Datagram. Owns link-layer decoding (Ethernet with 802.1Q/QinQ tags and MPLS,
//! Linux SLL/SLL2, raw IP, BSD NULL/LOOP), IPv4/IPv6 (extension headers, IP-in-IP
//! decapsulation, fragment reassembly), mirror tunnels (GRE, ERSPAN, VXLAN, TZSP) and the
//! deduplication of packets mirrored twice, UDP, TCP stream reassembly with SIP framing,
//! and HEPv2/v3 unwrapping. One file per stage: `link` → `ip` (+ `ip_defrag`,
//! `mirror_dedupe`, `tunnel` back into `link`/`ip`) → `udp` (+ `hep`, `tunnel`) or
//! `tcp_stream` (+ `sip_frame`).
//! May use: `time`, `counters`, `config`. Nothing downstream.
//!
//! Invariants:
//! - Never panics on any input: every view checks its lengths once, then reads with
//!   checked accessors.
//! - Each frame either yields datagrams or bumps exactly one `DropReason` counter, with these
//!   documented exceptions, none of which loses data:
//!   * a TCP segment without payload (handshake, pure ACK, FIN) or whose bytes were all
//!     seen before (a retransmission) counts nothing;
//!   * a TCP segment whose bytes are buffered (part of a message, or out of order) counts
//!     nothing when it arrives; the message is delivered by the segment that completes it,
//!     and if it never completes, one `TcpStream` is counted when the stream is freed
//!     (by FIN, RST, idle expiry or eviction), for the stream rather than a frame;
//!   * an IP fragment held for reassembly counts nothing; a reassembly that never
//!     completes counts one `FragmentTimeout` when it expires or is evicted, for the
//!     whole group (a fragment that conflicts with the group is its frame's `BadFragment`).
//! - State (fragments, TCP streams) is bounded in entries and bytes and expires on packet
//!   time via `expire(now)`, never on a clock.
//! - The UDP path does not allocate: datagrams borrow the frame's bytes.

mod deadlines;
mod hep;
mod ip;
mod ip_defrag;
mod link;
mod mirror_dedupe;
mod sip_frame;
mod tcp_stream;
mod tunnel;
mod udp;
mod websocket;

#[cfg(test)]
mod fixtures_test;
#[cfg(test)]
mod test_util;

use crate::counters::{Counters, DropReason};
use crate::time::{Dur, Ts};
use std::net::SocketAddr;

/// The link type of a captured frame (pcap LINKTYPE_* values map onto these).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1), also `tcpdump -i lo` on Linux (zero MACs).
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113): `tcpdump -i any`.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
    /// LINKTYPE_RAW (101) / DLT_RAW (12 or 14 on some BSDs): starts at the IP header.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_NULL (0): 4-byte host-order address family, BSD loopback.
    Null,
    /// LINKTYPE_LOOP (108): 4-byte network-order address family (OpenBSD).
    Loop,
    /// A HEPv2/v3 packet as received by the HEP listener (not from a capture file).
    Hep,
    /// Any other pcap link type: returned by capture sources so the engine can count it
    /// (`DropReason::UnknownLink`); carries the LINKTYPE_* number.
    Other(u32),
}

impl LinkType {
    /// Map a pcap/pcapng link-type number; `None` for link types we do not decode.
    pub fn from_linktype(n: u32) -> Option<LinkType> {
        Some(match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// Like `from_linktype`, but an unknown number becomes `Other(n)`.
    pub fn from_number(n: u32) -> LinkType {
        LinkType::from_linktype(n).unwrap_or(LinkType::Other(n))
    }
}

/// One captured frame: the only input of the engine. Borrowed, so a capture source can
/// hand its buffer over without a copy.
#[derive(Copy, Clone, Debug)]
pub struct Frame<'a> {
    pub ts: Ts,
    pub link: LinkType,
    pub bytes: &'a [u8],
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    /// SIP over WebSocket (RFC 7118), read from a TCP stream after its HTTP Upgrade.
    Ws,
}

/// One application message: a UDP payload, or one framed SIP message from a TCP stream,
/// or the inner packet of a HEP envelope. `ts` is the packet time of the packet that
/// completed it (for HEP: the HEP timestamp).
#[derive(Copy, Clone, Debug)]
pub struct Datagram<'a> {
    pub ts: Ts,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub payload: &'a [u8],
    /// What the payload is known to be, when the carrier said so (HEP proto type);
    /// `Unknown` means "sniff it".
    pub hint: PayloadHint,
    /// HEP's correlation id (chunk 17), when the datagram came in HEP and had one.
    pub correlation: Option<&'a [u8]>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PayloadHint {
    Unknown,
    Sip,
    Rtp,
    Rtcp,
}

/// Knobs of the decoder (from `[capture]` in the config).
#[derive(Clone, Debug)]
pub struct DecodeConfig {
    /// Largest SIP message accepted on a TCP stream; more is dropped (`DropReason::TcpStream`).
    pub tcp_max_message: usize,
    /// Idle time after which a TCP stream's state is freed.
    pub tcp_idle: crate::time::Dur,
    /// How long a hole in a TCP stream may stay open before the bytes after it are used
    /// anyway (checked when the stream's next segment arrives).
    pub tcp_gap_timeout: crate::time::Dur,
    /// Time after which incomplete IP fragments are dropped.
    pub fragment_timeout: crate::time::Dur,
    /// Unwrap HEP found inside UDP captures (magic "HEP3", or HEPv2 on these ports).
    pub hep_ports: Vec<u16>,
    /// When non-empty, only HEP packets with these capture ids are used.
    pub hep_capture_ids: Vec<u32>,
    /// UDP destination ports carrying VXLAN (cloud traffic mirroring).
    pub vxlan_ports: Vec<u16>,
    /// UDP destination ports carrying TZSP (MikroTik packet sniffer streaming).
    pub tzsp_ports: Vec<u16>,
    /// Window within which the same IP packet arriving by another mirror path is a copy
    /// (`DropReason::MirrorDuplicate`); zero turns the deduplication off.
    pub mirror_dedupe: crate::time::Dur,
    /// TCP ports on which a stream may be SIP over WebSocket (HTTP Upgrade, then frames).
    pub ws_ports: Vec<u16>,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            tcp_max_message: 64 * 1024,
            tcp_idle: Dur::from_secs(300),
            tcp_gap_timeout: Dur::from_secs(2),
            fragment_timeout: Dur::from_secs(30),
            hep_ports: vec![9060],
            hep_capture_ids: Vec::new(),
            vxlan_ports: vec![4789],
            tzsp_ports: vec![37008],
            mirror_dedupe: Dur::from_millis(10),
            ws_ports: vec![80, 5066, 8080, 8088],
        }
    }
}

/// Where decoded datagrams go: the caller's callback plus a count of what this frame
/// produced, so a stage can tell "delivered something" from "dropped".
pub(crate) struct DatagramOut<'s> {
    counters: &'s mut Counters,
    out: &'s mut dyn FnMut(&mut Counters, Datagram<'_>),
    emitted: usize,
}

impl DatagramOut<'_> {
    fn emit(&mut self, d: Datagram<'_>) {
        self.emitted += 1;
        (self.out)(self.counters, d);
    }
}

/// Stateful decoder: fragments and TCP streams live here.
pub struct Decoder {
    cfg: DecodeConfig,
    defrag: ip_defrag::DefragPool,
    tcp: tcp_stream::TcpStreams,
    /// Reused output buffer for HEP compressed payloads (no allocation once warm).
    hep_buf: Vec<u8>,
    inflater: flate2::Decompress,
    mirror: mirror_dedupe::MirrorDedupe,
}

impl Decoder {
    pub fn new(cfg: DecodeConfig) -> Decoder {
        Decoder {
            defrag: ip_defrag::DefragPool::new(cfg.fragment_timeout),
            tcp: tcp_stream::TcpStreams::new(),
            hep_buf: Vec::new(),
            inflater: flate2::Decompress::new(true),
            mirror: mirror_dedupe::MirrorDedupe::new(cfg.mirror_dedupe),
            cfg,
        }
    }

    /// Decode one frame, calling `out` for every datagram it completes (zero, one, or —
    /// for a TCP segment holding several SIP messages — many). Bad input bumps a counter.
    /// `out` gets the counters back so later stages can count what they drop.
    pub fn decode(
        &mut self,
        frame: Frame<'_>,
        counters: &mut Counters,
        out: &mut dyn FnMut(&mut Counters, Datagram<'_>),
    ) {
        let mut sink = DatagramOut { counters, out, emitted: 0 };
        if let Err(why) = self.decode_frame(frame, &mut sink) {
            sink.counters.drop(why);
        }
    }

    fn decode_frame(&mut self, frame: Frame<'_>, sink: &mut DatagramOut<'_>) -> Result<(), DropReason> {
        match frame.link {
            LinkType::Hep => self.hep(frame.ts, frame.bytes, true, sink),
            LinkType::Other(_) => Err(DropReason::UnknownLink),
            link => self.link_ip(frame.ts, link, frame.bytes, tunnel::Via::OUTSIDE, sink),
        }
    }

    /// See `mirror_dedupe`: whether this whole IP packet is a second mirror's copy.
    fn mirror_duplicate(&mut self, ts: Ts, packet: &[u8], via: tunnel::Via) -> bool {
        self.mirror.is_duplicate(ts, packet, via.path)
    }

    /// Free fragment and TCP state older than its timeout at packet time `now`.
    pub fn expire(&mut self, now: Ts, counters: &mut Counters) {
        self.defrag.expire(now, counters);
        self.tcp.expire(now, self.cfg.tcp_idle, counters);
    }

    /// The earliest packet time at which `expire` has something to do. It may name a
    /// time at which nothing turns out to be due (a TCP stream that was active since);
    /// `expire` then re-arms it, so after `expire(t)` this is always later than `t`.
    pub fn next_expiry(&self) -> Option<Ts> {
        match (self.defrag.next_expiry(), self.tcp.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reassembly state held right now: (IP datagrams being reassembled, TCP streams).
    pub fn pending(&self) -> (usize, usize) {
        (self.defrag.len(), self.tcp.len())
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn link_type_numbers() {
        assert_eq!(LinkType::from_number(1), LinkType::Ethernet);
        assert_eq!(LinkType::from_number(276), LinkType::LinuxSll2);
        assert_eq!(LinkType::from_number(12), LinkType::RawIp);
        assert_eq!(LinkType::from_number(147), LinkType::Other(147));
        assert_eq!(LinkType::from_linktype(147), None);
    }

    #[test]
    fn unknown_link_is_counted() {
        let mut h = Harness::default();
        h.feed(LinkType::Other(147), 1, &[1, 2, 3]);
        assert!(h.out.is_empty());
        assert_eq!(h.counters.dropped(DropReason::UnknownLink), 1);
    }

    /// One valid frame per link type (and per interesting payload) to mutate.
    fn valid_frames() -> Vec<(LinkType, Vec<u8>)> {
        let sip = b"INVITE sip:8001@pbx SIP/2.0\r\nContent-Length: 3\r\n\r\nabc".to_vec();
        let v4 = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, &sip);
        let v6 = ipv6_udp([0x20; 16], [0x21; 16], 5060, 5060, &sip);
        let tcp = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, 1, TcpFlags::ACK, &sip);
        let hep = super::hep::build::hep3_v4(1, 1, super::hep::build::chunk(15, &sip));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&v4);
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&v6);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&v4);
        let mut lo = 24u32.to_be_bytes().to_vec();
        lo.extend_from_slice(&v6);
        let mut qinq = vec![0u8; 12];
        qinq.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        qinq.extend_from_slice(&tcp);
        let mut frames = vec![
            (LinkType::Ethernet, ethernet(0x0800, &v4)),
            (LinkType::Ethernet, qinq),
            (LinkType::LinuxSll, sll),
            (LinkType::LinuxSll2, sll2),
            (LinkType::RawIp, v6.clone()),
            (LinkType::Ipv4, tcp),
            (LinkType::Ipv6, v6.clone()),
            (LinkType::Null, null),
            (LinkType::Loop, lo),
            (LinkType::Hep, hep.clone()),
            (LinkType::Ipv4, ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 9, 9060, &hep)),
            (LinkType::Ipv4, ipv4_wrap([1, 1, 1, 1], [2, 2, 2, 2], 41, &v6)),
        ];
        let big = ipv6_udp([0x20; 16], [0x21; 16], 5060, 5060, &[b'a'; 3000]);
        for f in ipv6_fragments(&big, 1232, 5) {
            frames.push((LinkType::Ipv6, f));
        }
        frames
    }

    #[test]
    fn every_valid_frame_decodes() {
        let mut h = Harness::default();
        // A second apart: the IPv6 packet alone and inside IPv4 are not mirror copies.
        for (i, (link, bytes)) in valid_frames().into_iter().enumerate() {
            h.feed(link, i as i64 * 1_000_000, &bytes);
        }
        assert_eq!(h.counters.total_drops(), 0, "{:?}", h.counters.drops);
        // 11 single frames + one reassembled IPv6 datagram.
        assert_eq!(h.out.len(), 12);
    }

    proptest! {
        #[test]
        fn random_bytes_on_every_link_never_panic(which in 0usize..10, bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let links = [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp, LinkType::Ipv4,
                LinkType::Ipv6, LinkType::Null, LinkType::Loop, LinkType::Hep, LinkType::Other(9)];
            let mut h = Harness::default();
            let n = h.feed(links[which], 1, &bytes);
            prop_assert!(n <= 1);
            prop_assert!(n + h.counters.total_drops() as usize <= 1);
        }

        #[test]
        fn mutated_valid_frames_never_panic(
            which in 0usize..15,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let frames = valid_frames();
            let (link, mut bytes) = frames[which % frames.len()].clone();
            for (at, v) in edits {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            bytes.truncate(cut % (bytes.len() + 1) + bytes.len() / 2);
            let mut h = Harness::default();
            let n = h.feed(link, 1, &bytes);
            prop_assert!(n <= 1 && (n == 0 || h.counters.total_drops() == 0));
            prop_assert!(h.counters.total_drops() <= 1);
            h.decoder.expire(Ts::MAX, &mut h.counters);
            prop_assert_eq!(h.decoder.pending(), (0, 0));
        }
    }
}
