//! What the engine saw and what it could not use. Every stage that drops or ignores a
//! packet bumps exactly one `DropReason` here, so "nothing is lost silently" can be
//! checked: packets in = packets used + sum of drops. Names are stable (kebab-case),
//! since `/metrics`, the replay summary and scripts print them.
//! Plain counters, no atomics: the engine is single-threaded and the driver copies a
//! snapshot out.

use serde::Serialize;
use std::collections::BTreeMap;

/// Why a packet (or a message inside one) was not used.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// Frame shorter than its link header, or cut short by the snap length.
    Truncated,
    /// A link type we do not decode.
    UnknownLink,
    /// Not IP (ARP, LLDP, ...).
    NotIp,
    /// IPv4/IPv6 header malformed (bad version, length, checksum-independent checks).
    BadIp,
    /// IP protocol other than UDP/TCP/IP-in-IP (ICMP, SCTP, ...).
    OtherProtocol,
    /// IP fragment that could not be reassembled (overlap, too big, conflicting end).
    BadFragment,
    /// Fragments still incomplete when they expired.
    FragmentTimeout,
    /// UDP header malformed.
    BadUdp,
    /// TCP header malformed.
    BadTcp,
    /// TCP bytes discarded: stream buffer over the cap, or a gap that never filled.
    TcpStream,
    /// TCP payload that is not SIP (we only follow SIP over TCP).
    TcpNotSip,
    /// HEP packet malformed (bad chunk lengths, missing mandatory chunks, bad zlib).
    BadHep,
    /// HEP payload that is not SIP/RTP (logs, JSON RTCP reports, QoS).
    HepOtherPayload,
    /// HEP capture id not in the allow-list.
    HepCaptureId,
    /// Looked like SIP but neither rsip nor the tolerant parser could read it.
    BadSip,
    /// SIP message without a header the tracker needs (Call-ID, CSeq, From, To).
    SipMissingHeader,
    /// UDP payload that is neither SIP, RTP nor RTCP (DNS, STUN, keep-alives, ...).
    NotSipOrRtp,
    /// RTP/RTCP on a port no call's SDP announced.
    RtpNoCall,
    /// RTP for a call that has already ended (phones keep sending briefly after BYE).
    RtpAfterEnd,
    /// A packet stamped before the engine's current time (counted, still used).
    TimeBackwards,
    /// A stamp not believed (counted, still used at the trusted time): a frame later than
    /// the wall clock, live; a HEP stamp far from its frame's (forged or a broken clock).
    TimeClamped,
    /// A channel between stages was full (driver side; counted here for one view).
    QueueFull,
    /// GRE header malformed (routing bit, unknown version, cut short).
    BadGre,
    /// ERSPAN header malformed (wrong version for its GRE type, unknown frame type).
    BadErspan,
    /// VXLAN header malformed (I flag missing) on a VXLAN port.
    BadVxlan,
    /// TZSP header malformed (tag list running past the packet, not Ethernet inside).
    BadTzsp,
    /// MPLS label stack without a bottom of stack, or a payload that is not IP/Ethernet.
    BadMpls,
    /// Tunnels nested deeper than the decoder follows.
    TunnelTooDeep,
    /// The same inner IP packet seen again within the dedupe window through another
    /// mirror (a tunnel copy and a SPAN copy): used once.
    MirrorDuplicate,
    /// TCP bytes of a TLS stream (SIP over TLS, WSS): encrypted, cannot be read passively.
    TlsNotReadable,
    /// A SIP message cut short by the capture's snap length (a `truncated` frame whose
    /// UDP/TCP payload starts with a SIP start line): capture with a larger snap length.
    SipTruncated,
}

impl DropReason {
    pub const ALL: [DropReason; 31] = [
        DropReason::Truncated,
        DropReason::UnknownLink,
        DropReason::NotIp,
        DropReason::BadIp,
        DropReason::OtherProtocol,
        DropReason::BadFragment,
        DropReason::FragmentTimeout,
        DropReason::BadUdp,
        DropReason::BadTcp,
        DropReason::TcpStream,
        DropReason::TcpNotSip,
        DropReason::BadHep,
        DropReason::HepOtherPayload,
        DropReason::HepCaptureId,
        DropReason::BadSip,
        DropReason::SipMissingHeader,
        DropReason::NotSipOrRtp,
        DropReason::RtpNoCall,
        DropReason::RtpAfterEnd,
        DropReason::TimeBackwards,
        DropReason::TimeClamped,
        DropReason::QueueFull,
        DropReason::BadGre,
        DropReason::BadErspan,
        DropReason::BadVxlan,
        DropReason::BadTzsp,
        DropReason::BadMpls,
        DropReason::TunnelTooDeep,
        DropReason::MirrorDuplicate,
        DropReason::TlsNotReadable,
        DropReason::SipTruncated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::UnknownLink => "unknown-link",
            DropReason::NotIp => "not-ip",
            DropReason::BadIp => "bad-ip",
            DropReason::OtherProtocol => "other-protocol",
            DropReason::BadFragment => "bad-fragment",
            DropReason::FragmentTimeout => "fragment-timeout",
            DropReason::BadUdp => "bad-udp",
            DropReason::BadTcp => "bad-tcp",
            DropReason::TcpStream => "tcp-stream",
            DropReason::TcpNotSip => "tcp-not-sip",
            DropReason::BadHep => "bad-hep",
            DropReason::HepOtherPayload => "hep-other-payload",
            DropReason::HepCaptureId => "hep-capture-id",
            DropReason::BadSip => "bad-sip",
            DropReason::SipMissingHeader => "sip-missing-header",
            DropReason::NotSipOrRtp => "not-sip-or-rtp",
            DropReason::RtpNoCall => "rtp-no-call",
            DropReason::RtpAfterEnd => "rtp-after-end",
            DropReason::TimeBackwards => "time-backwards",
            DropReason::TimeClamped => "time-clamped",
            DropReason::QueueFull => "queue-full",
            DropReason::BadGre => "bad-gre",
            DropReason::BadErspan => "bad-erspan",
            DropReason::BadVxlan => "bad-vxlan",
            DropReason::BadTzsp => "bad-tzsp",
            DropReason::BadMpls => "bad-mpls",
            DropReason::TunnelTooDeep => "tunnel-too-deep",
            DropReason::MirrorDuplicate => "mirror-duplicate",
            DropReason::TlsNotReadable => "tls-not-readable",
            DropReason::SipTruncated => "sip-truncated",
        }
    }
}

/// An encapsulation the decoder took off to reach the packet inside (one count per layer
/// removed, so a frame inside two tunnels counts both).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tunnel {
    /// GRE (RFC 2784/2890) carrying IP or Ethernet (0x6558).
    Gre,
    /// ERSPAN type I/II (GRE 0x88BE).
    ErspanII,
    /// ERSPAN type III (GRE 0x22EB).
    ErspanIII,
    Vxlan,
    Tzsp,
    /// IPv4 in IPv4 or IPv6 (protocol 4).
    IpInIp,
    /// IPv6 in IPv4 or IPv6 (protocol 41).
    Ipv6InIp,
    /// An MPLS label stack (one count per stack, not per label).
    Mpls,
    /// An 802.1ad service tag (Q-in-Q).
    Qinq,
}

impl Tunnel {
    pub const ALL: [Tunnel; 9] = [
        Tunnel::Gre,
        Tunnel::ErspanII,
        Tunnel::ErspanIII,
        Tunnel::Vxlan,
        Tunnel::Tzsp,
        Tunnel::IpInIp,
        Tunnel::Ipv6InIp,
        Tunnel::Mpls,
        Tunnel::Qinq,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tunnel::Gre => "gre",
            Tunnel::ErspanII => "erspan-ii",
            Tunnel::ErspanIII => "erspan-iii",
            Tunnel::Vxlan => "vxlan",
            Tunnel::Tzsp => "tzsp",
            Tunnel::IpInIp => "ip-in-ip",
            Tunnel::Ipv6InIp => "ipv6-in-ip",
            Tunnel::Mpls => "mpls",
            Tunnel::Qinq => "qinq",
        }
    }
}

/// Running totals for one engine.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    pub frames: u64,
    pub bytes: u64,
    pub datagrams: u64,
    pub hep_packets: u64,
    pub sip_messages: u64,
    /// SIP messages that rsip rejected and the tolerant parser read.
    pub sip_fallback: u64,
    /// SIP requests by method name, responses by status code ("INVITE", "180", ...).
    pub sip_by_kind: BTreeMap<String, u64>,
    pub rtp_packets: u64,
    /// RTP bound to a call of several legs but not taken: the second copy of the same
    /// conversation that a media-anchoring PBX relays on another leg (`track::link`).
    #[serde(skip_serializing_if = "is_zero")]
    pub rtp_relayed_copies: u64,
    pub rtcp_packets: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
    pub violations: u64,
    pub drops: BTreeMap<DropReason, u64>,
    /// Encapsulation layers removed, by kind.
    pub tunnels: BTreeMap<Tunnel, u64>,
    /// TLS connections seen (by their ClientHello), by server address "ip:port": SIP
    /// over TLS or WSS that only HEP from the PBX can show.
    pub tls_servers: BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counters {
    pub fn drop(&mut self, why: DropReason) {
        *self.drops.entry(why).or_default() += 1;
    }
    pub fn dropped(&self, why: DropReason) -> u64 {
        self.drops.get(&why).copied().unwrap_or(0)
    }
    pub fn tunnel(&mut self, kind: Tunnel) {
        *self.tunnels.entry(kind).or_default() += 1;
    }
    pub fn tunnelled(&self, kind: Tunnel) -> u64 {
        self.tunnels.get(&kind).copied().unwrap_or(0)
    }
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }
}
