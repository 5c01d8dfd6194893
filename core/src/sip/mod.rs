//! SIP bytes → callwarden's own `SipMsg`. The only user of rsip in the project: compact
//! header names are expanded first, rsip parses what it can, and a tolerant fallback reads
//! what rsip rejects (folded lines, space before the colon, non-UTF-8 display names, IPv6
//! Request-URIs, unknown methods, comma-joined Vias). SDP bodies are read for media.
//! May use: nothing but `time`-free helpers; no state, no counters (the caller counts).
//! Invariant: `parse` never panics; it returns `Err` with a reason for what neither
//! parser can read. Only what the tracker and the ladder need is kept, owned.

use serde::Serialize;
use std::net::IpAddr;

pub mod sdp;

/// SIP request methods; `Other` keeps unknown ones (they still belong to a dialog).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Prack,
    Update,
    Info,
    Refer,
    Notify,
    Subscribe,
    Message,
    Publish,
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s.to_ascii_uppercase().as_str() {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            _ => Method::Other(s.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum StartLine {
    Request { method: Method, uri: Uri },
    Response { status: u16, reason: String },
}

/// The parts of a SIP/SIPS/TEL URI callwarden uses. `user` is percent-decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Uri {
    /// The URI as written (for display and the ladder).
    pub raw: String,
    /// "sip", "sips", "tel", or whatever the scheme was.
    pub scheme: String,
    /// User part (digits as dialled for a phone number), if any.
    pub user: Option<String>,
    /// Host (IPv6 without brackets), if any.
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// A From/To/Contact/P-Asserted-Identity value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NameAddr {
    /// Display name, lossily decoded if it was not UTF-8.
    pub display: Option<String>,
    pub uri: Uri,
    pub tag: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// Which parser read the message (counted, so a drift to the fallback shows).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParsedBy {
    Rsip,
    Fallback,
}

/// One SIP message, owned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SipMsg {
    pub start: StartLine,
    pub call_id: String,
    pub from: NameAddr,
    pub to: NameAddr,
    pub cseq: CSeq,
    /// Via branch parameters, topmost first (one per Via value, comma-joined ones split).
    pub via_branches: Vec<String>,
    /// Host:port of the topmost Via's sent-by, when present.
    pub via_sent_by: Option<String>,
    pub contact: Option<NameAddr>,
    pub p_asserted_identity: Option<NameAddr>,
    pub user_agent: Option<String>,
    /// `Reason` header (e.g. Q.850 cause on a BYE/CANCEL), as written.
    pub reason: Option<String>,
    pub content_type: Option<String>,
    /// Declared Content-Length (which may disagree with the body actually present).
    pub content_length: Option<usize>,
    pub body_len: usize,
    pub sdp: Option<sdp::Sdp>,
    pub parsed_by: ParsedBy,
}

impl SipMsg {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }
    /// "INVITE" for requests, "180" for responses: the key of `Counters::sip_by_kind`.
    pub fn kind_label(&self) -> String {
        match &self.start {
            StartLine::Request { method, .. } => method.as_str().to_string(),
            StartLine::Response { status, .. } => status.to_string(),
        }
    }
    pub fn top_branch(&self) -> Option<&str> {
        self.via_branches.first().map(String::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("not a SIP start line")]
    NotSip,
    #[error("unreadable SIP message: {0}")]
    Malformed(String),
    #[error("missing {0} header")]
    MissingHeader(&'static str),
}

/// Cheap check on the first line: request line ending in "SIP/2.0" or a status line
/// starting with it. Used to demultiplex UDP payloads before a full parse.
pub fn looks_like_sip(payload: &[u8]) -> bool {
    let line_end = payload.iter().take(2048).position(|&b| b == b'\n');
    let Some(end) = line_end else { return false };
    let line = payload[..end].strip_suffix(b"\r").unwrap_or(&payload[..end]);
    line.starts_with(b"SIP/2.0 ") || line.ends_with(b" SIP/2.0")
}

/// Parse one complete SIP message (one UDP payload, or one framed TCP message).
pub fn parse(bytes: &[u8]) -> Result<SipMsg, SipError> {
    let _ = bytes;
    todo!("sip helper")
}

/// Address of media announced in an SDP: connection address and port.
pub fn media_addr(sdp: &sdp::Sdp) -> Option<(IpAddr, u16)> {
    sdp.media.iter().find(|m| m.kind == "audio" && m.port != 0).and_then(|m| Some((m.conn.or(sdp.conn)?, m.port)))
}
