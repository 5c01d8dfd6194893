//! The primary reader: rsip tokenizes the (compact-expanded) head and parses the typed
//! headers callwarden uses; this file maps rsip's types onto callwarden's `Parts`.
//! May use: rsip (the only place in the project), `value` for what rsip does not do
//! (percent-decoding, display-name unquoting, comma-joined values) and for checking rsip.
//! Invariant: it answers `None` — and the tolerant fallback reads the message — whenever
//! rsip rejects the message or one header we keep, and also where rsip misreads rather
//! than rejects (found by testing the two readers against each other): a version with
//! trailing characters, `<` or `>` inside a quoted display name, a tag, a Via sent-by or
//! branch, or a URI user, host or port that differs from the text, non-SIP URI schemes
//! (tel:), and framing that `compact::prepare_for_rsip` refuses. So whichever reader
//! answers, the fields mean the same.

use super::value::{self, angle_inside_quotes, host_port, name_addr_text, param, split_top_level};
use super::{compact, CSeq, Method, NameAddr, Parts, StartLine, Uri};
use rsip::common::uri::param::Param;
use rsip::prelude::*;
use rsip::Header;

/// Read a head (start line and headers, without the empty line) with rsip.
pub(crate) fn read(head: &[u8]) -> Option<(StartLine, Parts)> {
    let buf = compact::prepare_for_rsip(head)?;
    let msg = rsip::SipMessage::try_from(buf.as_slice()).ok()?;
    let first_line = buf.split(|&b| b == b'\r').next()?;
    let first_line = std::str::from_utf8(first_line).ok()?;
    // rsip accepts a version with trailing characters ("SIP/2.05"); the fallback calls that
    // not SIP, and so must we.
    let version = match &msg {
        rsip::SipMessage::Request(_) => first_line.rsplit(' ').next(),
        rsip::SipMessage::Response(_) => first_line.split(' ').next(),
    };
    if !version.is_some_and(|v| v.eq_ignore_ascii_case("SIP/2.0")) {
        return None;
    }
    let start = match &msg {
        rsip::SipMessage::Request(r) => {
            let raw_uri = first_line.split(' ').nth(1)?;
            StartLine::Request { method: Method::parse(&r.method.to_string()), uri: uri(&r.uri, raw_uri)? }
        }
        rsip::SipMessage::Response(r) => {
            let status = r.status_code.code();
            if !(100..=699).contains(&status) {
                return None;
            }
            // The reason phrase as written (rsip replaces known ones by its own text).
            let reason = value::status_parts(first_line).1.to_string();
            StartLine::Response { status, reason }
        }
    };
    let mut p = Parts::default();
    for h in msg.headers().iter() {
        match h {
            Header::CallId(v) => set(&mut p.call_id, || Some(v.value().trim().to_string()))?,
            Header::From(v) => set(&mut p.from, || name_addr(v.value()))?,
            Header::To(v) => set(&mut p.to, || name_addr(v.value()))?,
            Header::CSeq(v) => set(&mut p.cseq, || {
                let c = v.typed().ok()?;
                Some(CSeq { seq: c.seq, method: Method::parse(&c.method.to_string()) })
            })?,
            Header::Via(v) => {
                for part in split_top_level(v.value(), b',') {
                    let part = part.trim();
                    if part.is_empty() {
                        continue;
                    }
                    let via = rsip::headers::Via::new(part).typed().ok()?;
                    let branch = branch_of(&via.params).unwrap_or_default();
                    let sent_by = host_port(&host(&via.uri), port(&via.uri));
                    // rsip drops what it cannot tokenize (a parameter, part of a host) without
                    // saying so: its reading must match the text, or the fallback reads it.
                    if value::via_text(part) != (Some(sent_by.clone()), branch.clone()) {
                        return None;
                    }
                    if p.via_branches.is_empty() {
                        p.via_sent_by = Some(sent_by);
                    }
                    p.via_branches.push(branch);
                }
            }
            Header::Contact(v) => {
                let first = split_top_level(v.value(), b',').next().unwrap_or("").trim();
                // `Contact: *` (REGISTER removing all bindings) names nobody.
                if first != "*" && !first.is_empty() {
                    set(&mut p.contact, || name_addr(first))?;
                }
            }
            Header::UserAgent(v) => set(&mut p.user_agent, || Some(v.value().trim().to_string()))?,
            Header::ContentType(v) => set(&mut p.content_type, || Some(v.value().trim().to_string()))?,
            Header::ContentLength(v) if !p.content_length_seen => {
                p.content_length_seen = true;
                p.content_length = v.value().trim().parse().ok();
            }
            Header::Other(name, v) if name.eq_ignore_ascii_case("P-Asserted-Identity") => {
                let first = split_top_level(v, b',').next().unwrap_or("");
                set(&mut p.p_asserted_identity, || name_addr(first))?;
            }
            Header::Other(name, v) if name.eq_ignore_ascii_case("Reason") => {
                set(&mut p.reason, || Some(v.trim().to_string()))?;
            }
            _ => {}
        }
    }
    Some((start, p))
}

/// First one wins (as in the fallback); `None` from `f` means rsip could not read it.
fn set<T>(slot: &mut Option<T>, f: impl FnOnce() -> Option<T>) -> Option<()> {
    if slot.is_none() {
        *slot = Some(f()?);
    }
    Some(())
}

fn name_addr(v: &str) -> Option<NameAddr> {
    if angle_inside_quotes(v) {
        return None;
    }
    // From's grammar is the name-addr/addr-spec grammar shared by To, Contact and PAI.
    let typed = rsip::headers::From::new(v).typed().ok()?;
    let text = name_addr_text(v);
    let tag = typed.params.iter().find_map(|p| match p {
        Param::Tag(t) => Some(t.value().to_string()),
        Param::Other(n, Some(val)) if n.value().eq_ignore_ascii_case("tag") => Some(val.value().to_string()),
        _ => None,
    });
    let tag = tag.filter(|t| !t.is_empty());
    if tag.as_deref() != param(text.params, "tag").filter(|t| !t.is_empty()) {
        return None;
    }
    Some(NameAddr {
        display: typed.display_name.as_deref().and_then(value::display_name),
        uri: uri(&typed.uri, text.uri)?,
        tag,
    })
}

fn branch_of(params: &[Param]) -> Option<String> {
    params
        .iter()
        .find_map(|p| match p {
            Param::Branch(b) => Some(b.value().to_string()),
            Param::Other(n, Some(v)) if n.value().eq_ignore_ascii_case("branch") => Some(v.value().to_string()),
            _ => None,
        })
        .filter(|b| !b.is_empty())
}

fn host(u: &rsip::Uri) -> String {
    match &u.host_with_port.host {
        rsip::Host::Domain(d) => d.to_string(),
        rsip::Host::IpAddr(ip) => ip.to_string(),
    }
}

fn port(u: &rsip::Uri) -> Option<u16> {
    u.host_with_port.port.as_ref().map(|p| *p.value())
}

/// rsip's URI in callwarden's terms; `None` for schemes rsip does not really parse.
fn uri(u: &rsip::Uri, raw: &str) -> Option<Uri> {
    let scheme = match &u.scheme {
        Some(rsip::Scheme::Sip) => "sip",
        Some(rsip::Scheme::Sips) => "sips",
        _ => return None,
    };
    let user_phone = u.params.iter().any(|p| match p {
        Param::User(x) => x.value().eq_ignore_ascii_case("phone"),
        Param::Other(n, Some(v)) => n.value().eq_ignore_ascii_case("user") && v.value().eq_ignore_ascii_case("phone"),
        _ => false,
    });
    let host = host(u);
    let uri = Uri {
        raw: raw.trim().to_string(),
        scheme: scheme.to_string(),
        user: u.auth.as_ref().map(|a| value::sip_user(&a.user, user_phone)).filter(|s| !s.is_empty()),
        host: (!host.is_empty()).then_some(host),
        port: port(u),
    };
    // rsip skips what it does not understand inside a URI (a user part ending in '.' becomes
    // part of the host, text after a space is dropped). The dialled number decides the
    // fines, so rsip's reading must match the text exactly, or the fallback reads it all.
    (value::parse_uri(raw) == uri).then_some(uri)
}
