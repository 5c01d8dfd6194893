//! Test builders: SIP messages, SDP and RTP packets made directly as values (the SIP
//! parser is written on another branch), so each tracker test reads like a ladder; and a
//! minimal reader of RTP from the RTP-only public captures (Ethernet/IPv4/UDP, nothing
//! else), which need no SIP.

use crate::rtp::RtpPacket;
use crate::sip::sdp::{Direction as SdpDirection, Media, RtpMap, Sdp};
use crate::sip::{CSeq, Method, NameAddr, ParsedBy, SipMsg, StartLine, Uri};
use std::net::{IpAddr, SocketAddr};

pub(crate) fn uri(user: &str) -> Uri {
    Uri {
        raw: format!("sip:{user}@pbx.example"),
        scheme: "sip".into(),
        user: (!user.is_empty()).then(|| user.to_string()),
        host: Some("pbx.example".into()),
        port: None,
    }
}

pub(crate) fn name_addr(user: &str, tag: Option<&str>) -> NameAddr {
    NameAddr { display: None, uri: uri(user), tag: tag.map(str::to_string) }
}

/// An audio SDP: PCMA (8) and telephone-event (101) at `ip:port`.
pub(crate) fn sdp(ip: &str, port: u16) -> Sdp {
    Sdp {
        conn: Some(ip.parse().unwrap()),
        direction: None,
        media: vec![Media {
            kind: "audio".into(),
            port,
            proto: "RTP/AVP".into(),
            formats: vec![8, 101],
            rtpmap: vec![
                RtpMap { pt: 8, encoding: "PCMA".into(), clock_rate: 8000, channels: None },
                RtpMap { pt: 101, encoding: "telephone-event".into(), clock_rate: 8000, channels: None },
            ],
            conn: None,
            direction: None,
            ptime_ms: Some(20),
            rtcp_port: None,
        }],
    }
}

pub(crate) fn sdp_dir(ip: &str, port: u16, dir: SdpDirection) -> Sdp {
    let mut s = sdp(ip, port);
    s.direction = Some(dir);
    s
}

/// A message under construction.
#[derive(Clone, Debug)]
pub(crate) struct Msg(pub SipMsg);

// Builder methods named after the header they set (`to_tag`, `from_tag`), as on a ladder.
#[allow(clippy::wrong_self_convention)]
impl Msg {
    pub fn sdp(mut self, sdp: Sdp) -> Msg {
        self.0.content_type = Some("application/sdp".into());
        self.0.sdp = Some(sdp);
        self
    }
    pub fn to_tag(mut self, tag: &str) -> Msg {
        self.0.to.tag = Some(tag.to_string());
        self
    }
    pub fn no_to_tag(mut self) -> Msg {
        self.0.to.tag = None;
        self
    }
    pub fn from_tag(mut self, tag: &str) -> Msg {
        self.0.from.tag = Some(tag.to_string());
        self
    }
    pub fn display(mut self, name: &str) -> Msg {
        self.0.from.display = Some(name.to_string());
        self
    }
    pub fn pai(mut self, user: &str) -> Msg {
        self.0.p_asserted_identity = Some(name_addr(user, None));
        self
    }
    pub fn ruri(mut self, user: &str) -> Msg {
        if let StartLine::Request { uri: u, .. } = &mut self.0.start {
            *u = uri(user);
        }
        self
    }
    /// As a proxy forwards it: one more Via on top.
    pub fn via(mut self, branch: &str) -> Msg {
        self.0.via_branches.insert(0, branch.to_string());
        self
    }
    pub fn build(self) -> SipMsg {
        self.0
    }
}

fn base(start: StartLine, call_id: &str, from: NameAddr, to: NameAddr, seq: u32, method: Method) -> Msg {
    Msg(SipMsg {
        start,
        call_id: call_id.to_string(),
        from,
        to,
        cseq: CSeq { seq, method },
        via_branches: vec![format!("z9hG4bK-{call_id}-{seq}")],
        via_sent_by: None,
        contact: None,
        p_asserted_identity: None,
        user_agent: None,
        reason: None,
        content_type: None,
        content_length: Some(0),
        body_len: 0,
        sdp: None,
        link_headers: Vec::new(),
        parsed_by: ParsedBy::Rsip,
    })
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        401 => "Unauthorized",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        600 => "Busy Everywhere",
        _ => "Whatever",
    }
}

/// One dialog: the caller (tag "a" unless changed) calls `callee`; the callee answers
/// with tag "b" unless a response says otherwise.
#[derive(Clone, Debug)]
pub(crate) struct Dialog {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub caller_tag: String,
    pub callee_tag: String,
}

impl Dialog {
    pub fn new(call_id: &str, caller: &str, callee: &str) -> Dialog {
        Dialog {
            call_id: call_id.into(),
            caller: caller.into(),
            callee: callee.into(),
            caller_tag: "a".into(),
            callee_tag: "b".into(),
        }
    }

    /// The initial INVITE (no To tag) with the caller's SDP.
    pub fn invite(&self, seq: u32) -> Msg {
        base(
            StartLine::Request { method: Method::Invite, uri: uri(&self.callee) },
            &self.call_id,
            name_addr(&self.caller, Some(&self.caller_tag)),
            name_addr(&self.callee, None),
            seq,
            Method::Invite,
        )
    }

    /// A response to the caller's request `seq method`; To tag = the callee's tag
    /// (none for 100 Trying, which is hop-by-hop).
    pub fn resp(&self, status: u16, seq: u32, method: Method) -> Msg {
        let to_tag = (status != 100).then_some(self.callee_tag.as_str());
        base(
            StartLine::Response { status, reason: reason(status).into() },
            &self.call_id,
            name_addr(&self.caller, Some(&self.caller_tag)),
            name_addr(&self.callee, to_tag),
            seq,
            method,
        )
    }

    /// A response to the INVITE.
    pub fn r(&self, status: u16, seq: u32) -> Msg {
        self.resp(status, seq, Method::Invite)
    }

    /// A request from the caller inside the dialog (ACK, BYE, re-INVITE...), or CANCEL.
    pub fn req(&self, method: Method, seq: u32) -> Msg {
        let to_tag = (method != Method::Cancel).then_some(self.callee_tag.as_str());
        base(
            StartLine::Request { method: method.clone(), uri: uri(&self.callee) },
            &self.call_id,
            name_addr(&self.caller, Some(&self.caller_tag)),
            name_addr(&self.callee, to_tag),
            seq,
            method,
        )
    }

    /// A request from the callee (From = callee with its tag, To = caller with "a").
    pub fn callee_req(&self, method: Method, seq: u32) -> Msg {
        base(
            StartLine::Request { method: method.clone(), uri: uri(&self.caller) },
            &self.call_id,
            name_addr(&self.callee, Some(&self.callee_tag)),
            name_addr(&self.caller, Some(&self.caller_tag)),
            seq,
            method,
        )
    }

    /// The caller's response to a callee request.
    pub fn callee_resp(&self, status: u16, seq: u32, method: Method) -> Msg {
        base(
            StartLine::Response { status, reason: reason(status).into() },
            &self.call_id,
            name_addr(&self.callee, Some(&self.callee_tag)),
            name_addr(&self.caller, Some(&self.caller_tag)),
            seq,
            method,
        )
    }
}

const SILENCE: [u8; 160] = [0xd5; 160];

/// An audio RTP packet (20 ms of A-law silence).
pub(crate) fn rtp(pt: u8, seq: u16, ssrc: u32) -> RtpPacket<'static> {
    RtpPacket {
        payload_type: pt,
        marker: false,
        seq,
        timestamp: u32::from(seq).wrapping_mul(160),
        ssrc,
        payload: &SILENCE,
    }
}

/// A telephone-event packet: `payload` must hold the 4-byte event block.
pub(crate) fn rtp_event(pt: u8, seq: u16, timestamp: u32, payload: &'static [u8]) -> RtpPacket<'static> {
    RtpPacket { payload_type: pt, marker: false, seq, timestamp, ssrc: 0xDEE0EE8F, payload }
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One UDP datagram of an RTP-only capture: time (µs), addresses, payload.
pub(crate) struct UdpRecord {
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// Read the UDP payloads of an Ethernet/IPv4 pcap from tests/fixtures/public/.
pub(crate) fn read_udp_pcap(name: &str) -> Vec<UdpRecord> {
    let path = format!("{}/../tests/fixtures/public/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::File::open(&path).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut out = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap();
        let d = &pkt.data[..];
        assert_eq!(&d[12..14], &[0x08, 0x00], "IPv4 over Ethernet expected");
        let ip = &d[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        assert_eq!(ip[9], 17, "UDP expected");
        let v4 = |o: usize| IpAddr::from([ip[o], ip[o + 1], ip[o + 2], ip[o + 3]]);
        let udp = &ip[ihl..];
        let port = |o: usize| u16::from_be_bytes([udp[o], udp[o + 1]]);
        let len = usize::from(port(4));
        out.push(UdpRecord {
            ts_us: pkt.timestamp.as_micros() as i64,
            src: SocketAddr::new(v4(12), port(0)),
            dst: SocketAddr::new(v4(16), port(2)),
            payload: udp[8..len].to_vec(),
        });
    }
    out
}

/// The RTP fixed header of a test capture's payload (no CSRCs or extensions in them).
pub(crate) fn rtp_of(payload: &[u8]) -> RtpPacket<'_> {
    assert_eq!(payload[0] >> 6, 2);
    assert_eq!(payload[0] & 0x1f, 0, "no CSRC or extension expected in the test captures");
    RtpPacket {
        payload_type: payload[1] & 0x7f,
        marker: payload[1] & 0x80 != 0,
        seq: u16::from_be_bytes([payload[2], payload[3]]),
        timestamp: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
        ssrc: u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]),
        payload: &payload[12..],
    }
}
