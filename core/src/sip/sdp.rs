//! SDP (RFC 4566/8866) reading: session and media connection addresses, ports, payload
//! formats with rtpmap, direction attributes, ptime and rtcp port. Tolerant: unknown lines
//! are skipped; a body that is not SDP yields `None`.

use serde::Serialize;
use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sdp {
    /// Session-level `c=` address.
    pub conn: Option<IpAddr>,
    /// Session-level direction attribute, if any.
    pub direction: Option<Direction>,
    pub media: Vec<Media>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Media {
    /// "audio", "video", "image" (T.38), ...
    pub kind: String,
    pub port: u16,
    /// "RTP/AVP", "RTP/SAVP", "udptl", ...
    pub proto: String,
    /// Payload type numbers in offer order (non-numeric formats skipped).
    pub formats: Vec<u8>,
    pub rtpmap: Vec<RtpMap>,
    /// Media-level `c=` address (overrides the session's).
    pub conn: Option<IpAddr>,
    /// Media-level direction, else the session's, else sendrecv.
    pub direction: Option<Direction>,
    pub ptime_ms: Option<u32>,
    /// `a=rtcp:` port, when not port+1.
    pub rtcp_port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RtpMap {
    pub pt: u8,
    /// Encoding name as written (case kept): "PCMA", "telephone-event", ...
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

/// Parse an SDP body; `None` if it is not SDP (no `v=` line) or has no usable content.
pub fn parse(body: &[u8]) -> Option<Sdp> {
    let _ = body;
    todo!("sip helper")
}
