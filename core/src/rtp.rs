//! RTP and RTCP: tells them apart (RFC 5761 §4: RTCP packet types 192–223 in the second
//! byte), reads the RTP fixed header through rtp-rs, and extends 16-bit sequence numbers
//! and 32-bit timestamps to 64 bits across wrap-around.
//! May use: nothing stateful but the extenders, which belong to one stream each.
//! Invariant: `classify` never panics and borrows the payload; it does not allocate.

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

/// Classify a UDP payload as RTP, RTCP or neither.
pub fn classify(payload: &[u8]) -> Media<'_> {
    let _ = payload;
    todo!("sip/rtp helper")
}

/// Extends 16-bit RTP sequence numbers to a monotonic-ish 64-bit index (RFC 3550 A.1
/// style): a jump back of less than half the space is a late packet, not a wrap.
#[derive(Clone, Debug, Default)]
pub struct SeqExtender {
    last: Option<u64>,
}

impl SeqExtender {
    pub fn extend(&mut self, seq: u16) -> u64 {
        let _ = seq;
        todo!("sip/rtp helper")
    }
}

/// Extends 32-bit RTP timestamps to 64 bits the same way.
#[derive(Clone, Debug, Default)]
pub struct TsExtender {
    last: Option<u64>,
}

impl TsExtender {
    pub fn extend(&mut self, ts: u32) -> u64 {
        let _ = ts;
        todo!("sip/rtp helper")
    }
}
