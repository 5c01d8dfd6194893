//! Frame → Datagram. Owns link-layer decoding (Ethernet, 802.1Q VLAN, Linux SLL/SLL2,
//! raw IP, BSD NULL/loopback), IPv4/IPv6 (with IP-in-IP decapsulation and fragment
//! reassembly), UDP, TCP stream reassembly with SIP framing, and HEPv2/3 unwrapping.
//! May use: `time`, `counters`, `config`. Nothing downstream.
//! Invariants: never panics on any input; each frame either yields datagrams or bumps
//! exactly one `Drop` counter; state (fragments, TCP streams) is bounded and expires on
//! packet time via `expire(now)`, never on a clock.

use crate::counters::Counters;
use crate::time::Ts;
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
    /// Largest SIP message accepted on a TCP stream; more is dropped (`Drop::TcpStream`).
    pub tcp_max_message: usize,
    /// Idle time after which a TCP stream's state is freed.
    pub tcp_idle: crate::time::Dur,
    /// Time after which incomplete IP fragments are dropped.
    pub fragment_timeout: crate::time::Dur,
    /// Unwrap HEP found inside UDP captures (magic "HEP3", or HEPv2 on these ports).
    pub hep_ports: Vec<u16>,
    /// When non-empty, only HEP packets with these capture ids are used.
    pub hep_capture_ids: Vec<u32>,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            tcp_max_message: 64 * 1024,
            tcp_idle: crate::time::Dur::from_secs(300),
            fragment_timeout: crate::time::Dur::from_secs(30),
            hep_ports: vec![9060],
            hep_capture_ids: Vec::new(),
        }
    }
}

/// Stateful decoder: fragments and TCP streams live here.
pub struct Decoder {
    cfg: DecodeConfig,
}

impl Decoder {
    pub fn new(cfg: DecodeConfig) -> Decoder {
        Decoder { cfg }
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
        let _ = (&self.cfg, frame, counters, out);
        todo!("decode helper")
    }

    /// Free fragment and TCP state older than its timeout at packet time `now`.
    pub fn expire(&mut self, now: Ts, counters: &mut Counters) {
        let _ = (now, counters);
    }

    /// The earliest packet time at which `expire` has something to do.
    pub fn next_expiry(&self) -> Option<Ts> {
        None
    }
}
