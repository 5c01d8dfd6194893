//! SIP bytes → callwarden's own `SipMsg`. The only user of rsip in the project: compact
//! header names are expanded first, rsip parses what it can, and a tolerant fallback reads
//! what rsip rejects (folded lines, space before the colon, non-UTF-8 display names, IPv6
//! Request-URIs, tel: URIs, unknown methods, bare-LF line ends). SDP bodies are read for
//! media, also inside multipart bodies. `ParsedBy` says which reader answered.
//! May use: rsip and percent-encoding; no other core module, no state, no counters (the
//! caller counts).
//! Invariants: `parse` never panics; it returns `Err` with a reason for what neither reader
//! can read (`MissingHeader` when Call-ID, CSeq, From or To is absent). Whichever reader
//! answers, every field means the same: rsip's answer is kept only where it matches the
//! text (rsip skips what it does not understand instead of failing), else the fallback
//! reads the message. Single-valued headers: the first one wins. Only what the tracker and
//! the ladder need is kept, owned.
//!
//! Layout: `body` (framing, Content-Length, SDP and multipart), `compact` (compact names,
//! the head handed to rsip), `rsip_reader` (rsip → `Parts`), `fallback` (tolerant reader →
//! `Parts`), `value` (the text helpers both readers share), `sdp`. The two readers are
//! tested against each other on every real capture, on generated and on mutated messages.

use serde::Serialize;
use std::net::IpAddr;

mod body;
mod compact;
mod fallback;
#[cfg(test)]
pub(crate) mod pcap_fixture;
mod rsip_reader;
pub mod sdp;
#[cfg(test)]
mod tests;
mod value;

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
    /// Via branch parameters, topmost first (one per Via value, comma-joined ones split);
    /// "" for a Via without a branch (RFC 2543 peers), so positions still match the Vias.
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
    /// The headers that tie a B2BUA's legs together: every `X-` header and those named in
    /// `LINK_HEADERS`, as (lower-case name, trimmed value), in order, at most
    /// `MAX_LINK_HEADERS`. Empty (no allocation) on most messages.
    pub link_headers: Vec<(String, String)>,
    pub parsed_by: ParsedBy,
}

/// Standard headers kept in `SipMsg::link_headers` (besides every `X-` header): RFC 7989
/// Session-ID, and REFER's Refer-To/Referred-By and Replaces (RFC 3515, 3891, 3892).
pub const LINK_HEADERS: [&str; 4] = ["session-id", "replaces", "refer-to", "referred-by"];
/// More link headers than this on one message are not kept (a flood of X- headers).
pub const MAX_LINK_HEADERS: usize = 16;

impl SipMsg {
    /// The first value of the link header `name` (lower-case).
    pub fn link_header(&self, name: &str) -> Option<&str> {
        self.link_headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

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
    /// The topmost Via's branch; `None` when there is no Via or it has no branch.
    pub fn top_branch(&self) -> Option<&str> {
        self.via_branches.first().map(String::as_str).filter(|b| !b.is_empty())
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
    // A start line begins with a method token or "SIP/2.0"; RTP and RTCP begin with
    // 0x80..=0xBF. Rejecting on the first byte keeps the per-RTP-packet cost at one compare.
    if !payload.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let line_end = payload.iter().take(2048).position(|&b| b == b'\n');
    let Some(end) = line_end else { return false };
    let line = payload[..end].strip_suffix(b"\r").unwrap_or(&payload[..end]);
    line.starts_with(b"SIP/2.0 ") || line.ends_with(b" SIP/2.0")
}

/// What a reader (rsip or the fallback) got from the head; `parse` checks it and adds the
/// body. Single-valued headers: the first occurrence wins, in both readers.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    call_id: Option<String>,
    from: Option<NameAddr>,
    to: Option<NameAddr>,
    cseq: Option<CSeq>,
    via_branches: Vec<String>,
    via_sent_by: Option<String>,
    contact: Option<NameAddr>,
    p_asserted_identity: Option<NameAddr>,
    user_agent: Option<String>,
    reason: Option<String>,
    content_type: Option<String>,
    content_length: Option<usize>,
    /// A Content-Length header was there (readable or not): later ones are ignored.
    content_length_seen: bool,
}

/// Parse one complete SIP message (one UDP payload, or one framed TCP message).
pub fn parse(bytes: &[u8]) -> Result<SipMsg, SipError> {
    let (head, after_head) = frame(bytes);
    // When rsip reads the head but a needed header is missing, the fallback gets its chance
    // too (and gives the same answer unless rsip lost something).
    if let Some(Ok(msg)) = read_rsip(head, after_head) {
        return Ok(msg);
    }
    read_fallback(head, after_head)
}

/// The head and what follows its empty line.
fn frame(bytes: &[u8]) -> (&[u8], &[u8]) {
    // CRLF keep-alives in front of a message (RFC 5626 §4.4.1) are not part of it.
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(bytes.len());
    body::split_head(bytes.get(start..).unwrap_or(&[]))
}

fn read_rsip(head: &[u8], after_head: &[u8]) -> Option<Result<SipMsg, SipError>> {
    let (start, parts) = rsip_reader::read(head)?;
    Some(assemble(start, parts, head, after_head, ParsedBy::Rsip))
}

fn read_fallback(head: &[u8], after_head: &[u8]) -> Result<SipMsg, SipError> {
    let (start, parts) = fallback::read(head)?;
    assemble(start, parts, head, after_head, ParsedBy::Fallback)
}

/// One reader only (tests compare the two): `None` when rsip declines the message.
#[cfg(test)]
pub(crate) fn parse_with(bytes: &[u8], by: ParsedBy) -> Option<Result<SipMsg, SipError>> {
    let (head, after_head) = frame(bytes);
    match by {
        ParsedBy::Rsip => read_rsip(head, after_head),
        ParsedBy::Fallback => Some(read_fallback(head, after_head)),
    }
}

fn assemble(
    start: StartLine,
    p: Parts,
    head: &[u8],
    after_head: &[u8],
    parsed_by: ParsedBy,
) -> Result<SipMsg, SipError> {
    let call_id = p.call_id.filter(|c| !c.is_empty()).ok_or(SipError::MissingHeader("Call-ID"))?;
    let cseq = p.cseq.ok_or(SipError::MissingHeader("CSeq"))?;
    let from = p.from.ok_or(SipError::MissingHeader("From"))?;
    let to = p.to.ok_or(SipError::MissingHeader("To"))?;
    let body = body::body(after_head, p.content_length);
    let sdp = body::find_sdp(p.content_type.as_deref(), body);
    let link_headers = link_headers(head);
    Ok(SipMsg {
        start,
        call_id,
        from,
        to,
        cseq,
        via_branches: p.via_branches,
        via_sent_by: p.via_sent_by,
        contact: p.contact,
        p_asserted_identity: p.p_asserted_identity,
        user_agent: p.user_agent,
        reason: p.reason,
        content_type: p.content_type,
        content_length: p.content_length,
        body_len: body.len(),
        sdp,
        link_headers,
        parsed_by,
    })
}

/// The link headers of a head, read straight from its lines (both readers share this, so
/// they cannot disagree). Compact forms: `r` Refer-To, `b` Referred-By. Folded
/// continuation lines are joined.
fn link_headers(head: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut last_kept = false;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let (true, Some((_, v))) = (last_kept, out.last_mut()) {
                v.push(' ');
                v.push_str(String::from_utf8_lossy(line).trim());
            }
            continue;
        }
        last_kept = false;
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = line.get(..colon).unwrap_or(b"").trim_ascii();
        let name = match name {
            b"r" | b"R" => "refer-to".to_string(),
            b"b" | b"B" => "referred-by".to_string(),
            n => String::from_utf8_lossy(n).to_ascii_lowercase(),
        };
        if !(name.starts_with("x-") || LINK_HEADERS.contains(&name.as_str())) || out.len() >= MAX_LINK_HEADERS {
            continue;
        }
        let value = String::from_utf8_lossy(line.get(colon + 1..).unwrap_or(b"")).trim().to_string();
        out.push((name, value));
        last_kept = true;
    }
    out
}

/// The dialog a Replaces header names (RFC 3891): an attended transfer or a take-over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: Option<String>,
    pub from_tag: String,
}

/// Read a Replaces value (`call-id;to-tag=a;from-tag=b`); `None` without a Call-ID or from-tag.
pub fn parse_replaces(v: &str) -> Option<Replaces> {
    let (call_id, params) = v.split_once(';').unwrap_or((v, ""));
    let call_id = call_id.trim();
    let from_tag = value::param(params, "from-tag").filter(|t| !t.is_empty())?;
    (!call_id.is_empty()).then(|| Replaces {
        call_id: call_id.to_string(),
        to_tag: value::param(params, "to-tag").filter(|t| !t.is_empty()).map(str::to_string),
        from_tag: from_tag.to_string(),
    })
}

/// A Refer-To value (RFC 3515): the user part of its URI (the transfer target) and, for an
/// attended transfer, the Replaces carried in the URI's headers (`?Replaces=...`,
/// percent-decoded).
pub fn parse_refer_to(v: &str) -> (Option<String>, Option<Replaces>) {
    let uri = value::name_addr_text(v).uri;
    let replaces = uri.split_once('?').and_then(|(_, headers)| {
        headers.split('&').find_map(|h| {
            let (k, val) = h.split_once('=')?;
            k.trim().eq_ignore_ascii_case("replaces").then(|| value::percent_decode(val))
        })
    });
    (value::parse_uri(uri).user, replaces.as_deref().and_then(parse_replaces))
}

/// Address of media announced in an SDP: connection address and port.
pub fn media_addr(sdp: &sdp::Sdp) -> Option<(IpAddr, u16)> {
    sdp.media.iter().find(|m| m.kind == "audio" && m.port != 0).and_then(|m| Some((m.conn.or(sdp.conn)?, m.port)))
}
