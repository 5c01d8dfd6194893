//! The tolerant reader, for what rsip rejects: bare-LF line ends, folded (continuation)
//! header lines, whitespace before the colon, non-UTF-8 bytes (read lossily), IPv6 and tel:
//! Request-URIs, unknown methods, quoted strings holding `<`, `,` or `;`, parameters in any
//! case, a head that runs to the end of the buffer.
//! May use: `value` (the same text helpers the rsip reader uses, so fields mean the same),
//! `compact`. No rsip.
//! Invariant: never panics; a start line that is neither a request line ending in
//! `SIP/2.0` nor a `SIP/2.0 NNN` status line is `NotSip`; header lines it cannot read are
//! skipped, and `parse` then decides whether the headers it needs are there.

use super::value::{display_name, name_addr_text, param, parse_uri, split_top_level, status_parts, via_text};
use super::{compact, CSeq, Method, NameAddr, Parts, SipError, StartLine};
use std::borrow::Cow;

/// Read a head (start line and header lines, without the empty line).
pub(crate) fn read(head: &[u8]) -> Result<(StartLine, Parts), SipError> {
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.by_ref().find(|l| !l.is_empty()).ok_or(SipError::NotSip)?;
    let start = start_line(&String::from_utf8_lossy(first))?;

    // Unfold first (RFC 3261 §7.3.1: a line starting with SP/HT continues the previous one).
    let mut headers: Vec<(&[u8], Cow<'_, str>)> = Vec::with_capacity(16);
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let Some((_, v)) = headers.last_mut() {
                let cont = String::from_utf8_lossy(line);
                let v = v.to_mut();
                v.push(' ');
                v.push_str(cont.trim());
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = line.get(..colon).unwrap_or(b"").trim_ascii();
        let value = line.get(colon + 1..).unwrap_or(b"").trim_ascii();
        if !name.is_empty() {
            headers.push((name, String::from_utf8_lossy(value)));
        }
    }

    let mut p = Parts::default();
    for (name, value) in &headers {
        let value = value.trim();
        let name: Cow<'_, str> = match compact::expand(name) {
            Some(full) => Cow::Borrowed(full),
            None => String::from_utf8_lossy(name),
        };
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("Call-ID") {
            set_once(&mut p.call_id, || value.to_string());
        } else if is("From") {
            set_once(&mut p.from, || name_addr(value));
        } else if is("To") {
            set_once(&mut p.to, || name_addr(value));
        } else if is("CSeq") {
            if p.cseq.is_none() {
                p.cseq = Some(cseq(value).ok_or_else(|| SipError::Malformed(format!("bad CSeq {value:?}")))?);
            }
        } else if is("Via") {
            for part in split_top_level(value, b',') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let (sent_by, branch) = via_text(part);
                if p.via_branches.is_empty() {
                    p.via_sent_by = sent_by;
                }
                p.via_branches.push(branch);
            }
        } else if is("Contact") {
            let c = split_top_level(value, b',').next().unwrap_or("").trim();
            if c != "*" && !c.is_empty() {
                set_once(&mut p.contact, || name_addr(c));
            }
        } else if is("P-Asserted-Identity") {
            set_once(&mut p.p_asserted_identity, || name_addr(split_top_level(value, b',').next().unwrap_or("")));
        } else if is("User-Agent") {
            set_once(&mut p.user_agent, || value.to_string());
        } else if is("Reason") {
            set_once(&mut p.reason, || value.to_string());
        } else if is("Content-Type") {
            set_once(&mut p.content_type, || value.to_string());
        } else if is("Content-Length") && !p.content_length_seen {
            p.content_length_seen = true;
            p.content_length = value.parse().ok();
        }
    }
    Ok((start, p))
}

fn set_once<T>(slot: &mut Option<T>, f: impl FnOnce() -> T) {
    if slot.is_none() {
        *slot = Some(f());
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn start_line(line: &str) -> Result<StartLine, SipError> {
    let line = line.trim();
    if line.len() >= 4 && line.get(..4).is_some_and(|v| v.eq_ignore_ascii_case("SIP/")) {
        let (code, reason) = status_parts(line);
        let status = code
            .parse::<u16>()
            .ok()
            .filter(|s| code.len() == 3 && (100..=699).contains(s))
            .ok_or_else(|| SipError::Malformed(format!("bad status code {code:?}")))?;
        return Ok(StartLine::Response { status, reason: reason.to_string() });
    }
    let (method, rest) = line.split_once(char::is_whitespace).ok_or(SipError::NotSip)?;
    let (uri, version) = rest.trim().rsplit_once(char::is_whitespace).ok_or(SipError::NotSip)?;
    if !version.eq_ignore_ascii_case("SIP/2.0") || method.is_empty() || !method.bytes().all(is_token) {
        return Err(SipError::NotSip);
    }
    let uri = uri.trim();
    if uri.is_empty() {
        return Err(SipError::Malformed("empty Request-URI".into()));
    }
    Ok(StartLine::Request { method: Method::parse(method), uri: parse_uri(uri) })
}

fn cseq(v: &str) -> Option<CSeq> {
    let mut it = v.split_whitespace();
    let seq = it.next()?.parse().ok()?;
    let method = it.next()?;
    Some(CSeq { seq, method: Method::parse(method) })
}

pub(crate) fn name_addr(v: &str) -> NameAddr {
    let t = name_addr_text(v);
    NameAddr {
        display: t.display.and_then(display_name),
        uri: parse_uri(t.uri),
        tag: param(t.params, "tag").filter(|t| !t.is_empty()).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines() {
        assert_eq!(
            start_line("SIP/2.0 180 Ringing"),
            Ok(StartLine::Response { status: 180, reason: "Ringing".into() })
        );
        assert_eq!(start_line("SIP/2.0 200"), Ok(StartLine::Response { status: 200, reason: String::new() }));
        assert!(matches!(start_line("SIP/2.0 2000 OK"), Err(SipError::Malformed(_))));
        assert!(matches!(start_line("SIP/2.0 099 x"), Err(SipError::Malformed(_))));
        assert_eq!(start_line("GET / HTTP/1.1"), Err(SipError::NotSip));
        assert_eq!(start_line("hello"), Err(SipError::NotSip));
        assert_eq!(start_line("INV(TE sip:a SIP/2.0"), Err(SipError::NotSip));
        match start_line("FOO-BAR  sip:[2001:db8::1]:5060  SIP/2.0") {
            Ok(StartLine::Request { method, uri }) => {
                assert_eq!(method, Method::Other("FOO-BAR".into()));
                assert_eq!(uri.host.as_deref(), Some("2001:db8::1"));
                assert_eq!(uri.port, Some(5060));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cseqs() {
        assert_eq!(cseq("  42   INVITE "), Some(CSeq { seq: 42, method: Method::Invite }));
        assert_eq!(cseq("7 foo"), Some(CSeq { seq: 7, method: Method::Other("foo".into()) }));
        assert_eq!(cseq("x INVITE"), None);
        assert_eq!(cseq("1"), None);
        assert_eq!(cseq("4294967296 ACK"), None);
    }
}
