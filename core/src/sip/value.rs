//! Header-value helpers shared by the rsip reader and the tolerant fallback, so that both
//! turn the same text into the same `Uri`/`NameAddr` fields: splitting comma-joined values,
//! display names, the URI text of a name-addr, parameters in any case, percent-decoding and
//! RFC 3966 visual separators.
//! May use: nothing but `std` and `percent-encoding`. Invariant: every function is total
//! (no panics, no indexing that can fail); all slicing happens at ASCII delimiters found in
//! the same string, so it is always on a char boundary.

use super::Uri;
use std::borrow::Cow;

/// Split `s` at `sep` bytes that are outside quoted strings (with `\` escapes) and outside
/// `<...>`. Used for comma-joined Via/Contact values and for `;` parameter lists.
pub(crate) fn split_top_level(s: &str, sep: u8) -> SplitTop<'_> {
    SplitTop { s, pos: 0, done: false, sep }
}

pub(crate) struct SplitTop<'a> {
    s: &'a str,
    pos: usize,
    done: bool,
    sep: u8,
}

impl<'a> Iterator for SplitTop<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let rest = self.s.get(self.pos..)?;
        match find_top_level(rest, self.sep) {
            Some(i) => {
                let item = rest.get(..i)?;
                self.pos += i + 1;
                Some(item)
            }
            None => {
                self.done = true;
                Some(rest)
            }
        }
    }
}

/// Tracks whether a byte is inside a quoted string. A `"` opens one only when it is not
/// preceded by `\` — real phones write `\"name\"` outside quotes (see the compact-header
/// capture), and tshark reads that as plain text too; inside, `\` escapes the next byte.
#[derive(Default)]
struct Quotes {
    in_quote: bool,
    escaped: bool,
    prev_backslash: bool,
}

impl Quotes {
    /// Feed one byte; true when the byte is outside any quoted string (and not a quote).
    fn outside(&mut self, b: u8) -> bool {
        let prev_backslash = std::mem::replace(&mut self.prev_backslash, b == b'\\');
        if self.in_quote {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_quote = false;
            }
            return false;
        }
        if b == b'"' && !prev_backslash {
            self.in_quote = true;
            return false;
        }
        true
    }
}

/// Index of the first `sep` outside quotes and angle brackets.
pub(crate) fn find_top_level(s: &str, sep: u8) -> Option<usize> {
    let mut q = Quotes::default();
    let mut in_angle = false;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if !q.outside(b) {
            continue;
        }
        match b {
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            _ if b == sep && !in_angle => return Some(i),
            _ => {}
        }
    }
    None
}

/// True when a quoted string inside `s` holds `<` or `>` — rsip splits name-addrs at the
/// first `<` without looking at quotes, so such values must go to the fallback.
pub(crate) fn angle_inside_quotes(s: &str) -> bool {
    let mut q = Quotes::default();
    s.as_bytes().iter().any(|&b| !q.outside(b) && q.in_quote && (b == b'<' || b == b'>'))
}

/// Index of the first `<` outside quoted strings.
fn find_laquot(s: &str) -> Option<usize> {
    let mut q = Quotes::default();
    s.as_bytes().iter().position(|&b| q.outside(b) && b == b'<')
}

/// A display name as callwarden keeps it: trimmed, a quoted-string unquoted and unescaped,
/// `None` when empty.
pub(crate) fn display_name(raw: &str) -> Option<String> {
    let t = raw.trim();
    let inner = t.strip_prefix('"').and_then(|x| x.strip_suffix('"')).filter(|_| t.len() >= 2);
    let out = match inner {
        Some(q) => {
            let mut s = String::with_capacity(q.len());
            let mut chars = q.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                } else {
                    s.push(c);
                }
            }
            s
        }
        None => t.to_string(),
    };
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// The pieces of a From/To/Contact-style value: display text (raw), the URI text, and the
/// header parameters after it. In the addr-spec form (no `<>`) parameters after the first
/// `;` belong to the header, not the URI (RFC 3261 §20).
pub(crate) struct NameAddrText<'a> {
    pub display: Option<&'a str>,
    pub uri: &'a str,
    pub params: &'a str,
}

pub(crate) fn name_addr_text(value: &str) -> NameAddrText<'_> {
    let v = value.trim();
    // '<' outside quotes starts the URI of a name-addr.
    let lt = find_laquot(v);
    match lt {
        Some(i) => {
            let display = v.get(..i).map(str::trim).filter(|d| !d.is_empty());
            let after = v.get(i + 1..).unwrap_or("");
            let (uri, params) = match after.find('>') {
                Some(j) => (after.get(..j).unwrap_or(""), after.get(j + 1..).unwrap_or("")),
                // An unclosed '<': take the rest as the URI, tolerantly.
                None => (after, ""),
            };
            NameAddrText { display, uri: uri.trim(), params }
        }
        None => {
            let (uri, params) = match v.find(';') {
                Some(j) => (v.get(..j).unwrap_or(""), v.get(j..).unwrap_or("")),
                None => (v, ""),
            };
            NameAddrText { display: None, uri: uri.trim(), params }
        }
    }
}

/// Value of the parameter `name` (any case) in a `;a=b;c` list; `Some("")` for a flag.
pub(crate) fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    split_top_level(params, b';').find_map(|p| {
        let p = p.trim();
        let (n, v) = match p.find('=') {
            Some(i) => (p.get(..i).unwrap_or(""), p.get(i + 1..).unwrap_or("")),
            None => (p, ""),
        };
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Percent-decode a URI user part; invalid UTF-8 after decoding is replaced, not an error.
pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A telephone-subscriber as RFC 3966 compares it: the number before any `;parameter`, with
/// the visual separators `-` `.` `(` `)` removed (§5.1.1: they carry no meaning). `+`, digits,
/// `*`, `#` and hex digits of local numbers are kept.
pub(crate) fn tel_number(s: &str) -> String {
    let number = s.split(';').next().unwrap_or("");
    number.chars().filter(|c| !matches!(c, '-' | '.' | '(' | ')')).collect()
}

/// `host` or `host:port`, IPv6 hosts in brackets, as a sent-by is written.
pub(crate) fn host_port(host: &str, port: Option<u16>) -> String {
    let h: Cow<'_, str> = if host.contains(':') { Cow::Owned(format!("[{host}]")) } else { Cow::Borrowed(host) };
    match port {
        Some(p) => format!("{h}:{p}"),
        None => h.into_owned(),
    }
}

/// Split `host[:port]` / `[v6][:port]`; the host comes back without brackets. A port that
/// is not a number makes `port` `None` (tolerant) but keeps the host.
pub(crate) fn split_host_port(hp: &str) -> (&str, Option<u16>) {
    let hp = hp.trim();
    if let Some(rest) = hp.strip_prefix('[') {
        return match rest.find(']') {
            Some(i) => {
                let host = rest.get(..i).unwrap_or("");
                let port = rest.get(i + 1..).and_then(|r| r.strip_prefix(':')).and_then(|p| p.trim().parse().ok());
                (host, port)
            }
            None => (rest, None),
        };
    }
    // A bare IPv6 address (several colons) has no port.
    if hp.bytes().filter(|&b| b == b':').count() > 1 {
        return (hp, None);
    }
    match hp.split_once(':') {
        Some((h, p)) => (h, p.trim().parse().ok()),
        None => (hp, None),
    }
}

/// The user part callwarden keeps for a `sip:`/`sips:` URI: percent-decoded, and for
/// `user=phone` URIs read as a telephone-subscriber (RFC 3261 §19.1.1 → RFC 3966).
pub(crate) fn sip_user(raw_user: &str, user_phone: bool) -> String {
    let decoded = percent_decode(raw_user);
    if user_phone {
        tel_number(&decoded)
    } else {
        decoded
    }
}

/// The status code and reason phrase of a status line (`SIP/2.0 SP code SP reason`), split
/// at runs of whitespace; the reason as written, trimmed.
pub(crate) fn status_parts(line: &str) -> (&str, &str) {
    let rest = line.trim().split_once(char::is_whitespace).map_or("", |(_, r)| r.trim_start());
    let (code, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    (code, reason.trim())
}

/// Parse URI text into callwarden's `Uri`. Total: an unknown scheme or odd text yields a
/// `Uri` with what could be read (`raw` always as written).
pub(crate) fn parse_uri(text: &str) -> Uri {
    let raw = text.trim();
    let mut uri = Uri { raw: raw.to_string(), ..Uri::default() };
    let Some((scheme, rest)) = raw.split_once(':') else {
        return uri;
    };
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
        return uri;
    }
    uri.scheme = scheme.to_ascii_lowercase();
    match uri.scheme.as_str() {
        "sip" | "sips" => {
            // URI headers (`?...`) are not part of the address.
            let rest = rest.split('?').next().unwrap_or("");
            // An unescaped '@' cannot occur in userinfo nor in URI parameters (RFC 3261 §25).
            let (userinfo, hostpart) = match rest.find('@') {
                Some(i) => (rest.get(..i), rest.get(i + 1..).unwrap_or("")),
                None => (None, rest),
            };
            let (hostport, params) = match hostpart.find(';') {
                Some(i) => (hostpart.get(..i).unwrap_or(""), hostpart.get(i..).unwrap_or("")),
                None => (hostpart, ""),
            };
            let (host, port) = split_host_port(hostport);
            uri.host = (!host.is_empty()).then(|| host.to_string());
            uri.port = port;
            let user_phone = param(params, "user").is_some_and(|u| u.eq_ignore_ascii_case("phone"));
            uri.user = userinfo
                .map(|ui| ui.split(':').next().unwrap_or(""))
                .map(|u| sip_user(u, user_phone))
                .filter(|u| !u.is_empty());
        }
        "tel" => {
            let number = tel_number(&percent_decode(rest.trim()));
            uri.user = (!number.is_empty()).then_some(number);
        }
        _ => {}
    }
    uri
}

/// One Via value: `SIP / 2.0 / UDP sent-by *(;param)` (LWS allowed around the slashes).
/// Returns the sent-by as `host[:port]` and the branch ("" when there is none).
pub(crate) fn via_text(part: &str) -> (Option<String>, String) {
    let (head, params) = match part.find(';') {
        Some(i) => (part.get(..i).unwrap_or(""), part.get(i..).unwrap_or("")),
        None => (part, ""),
    };
    let branch = param(params, "branch").unwrap_or("").to_string();
    // Skip "SIP/2.0/" and the transport token; what follows is the sent-by.
    let sent_by = head
        .splitn(3, '/')
        .nth(2)
        .map(str::trim_start)
        .and_then(|rest| rest.split_once(char::is_whitespace).map(|(_, s)| s.trim()))
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (h, p) = split_host_port(s);
            host_port(h, p)
        });
    (sent_by, branch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        let v: Vec<_> = split_top_level(r#""Doe, \"J\"" <sip:a@b;x=1,2>;tag=1, <sip:c@d>"#, b',').collect();
        assert_eq!(v, vec![r#""Doe, \"J\"" <sip:a@b;x=1,2>;tag=1"#, " <sip:c@d>"]);
        assert_eq!(split_top_level("a", b',').collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(split_top_level("", b',').collect::<Vec<_>>(), vec![""]);
        assert_eq!(split_top_level("a,,b", b',').collect::<Vec<_>>(), vec!["a", "", "b"]);
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name(r#" "Alice, A" "#).as_deref(), Some("Alice, A"));
        assert_eq!(display_name(r#""a \"q\" b""#).as_deref(), Some(r#"a "q" b"#));
        assert_eq!(display_name("Bob Smith").as_deref(), Some("Bob Smith"));
        assert_eq!(display_name(r#""""#), None);
        assert_eq!(display_name("  "), None);
        // A lone quote is not a quoted-string: kept as written.
        assert_eq!(display_name("\"").as_deref(), Some("\""));
        // The compact-header capture writes \"arik\": not a quoted-string either.
        assert_eq!(display_name(r#"\"arik\""#).as_deref(), Some(r#"\"arik\""#));
    }

    #[test]
    fn name_addr_forms() {
        let n = name_addr_text(r#""a <b>, c" <sip:x@y;user=phone>;tag=9;foo"#);
        assert_eq!(n.display, Some(r#""a <b>, c""#));
        assert_eq!(n.uri, "sip:x@y;user=phone");
        assert_eq!(param(n.params, "tag"), Some("9"));
        assert_eq!(param(n.params, "foo"), Some(""));
        let n = name_addr_text("sip:x@y;tag=1");
        assert_eq!((n.display, n.uri, param(n.params, "TAG")), (None, "sip:x@y", Some("1")));
        let n = name_addr_text("<sip:x@y");
        assert_eq!(n.uri, "sip:x@y");
        assert!(angle_inside_quotes(r#""a<b" <sip:x>"#));
        assert!(!angle_inside_quotes(r#""ab" <sip:x>"#));
    }

    #[test]
    fn params_any_case() {
        assert_eq!(param(";Branch=z9hG4bK1;RPORT", "branch"), Some("z9hG4bK1"));
        assert_eq!(param(";branch = x ", "BRANCH"), Some("x"));
        assert_eq!(param(";rport", "branch"), None);
        assert_eq!(param(r#";reason="a;b";tag=2"#, "tag"), Some("2"));
    }

    #[test]
    fn uris() {
        let u = parse_uri("sip:%2B8613800138000@[2001:DB8::1]:5070;transport=tcp?X=y");
        assert_eq!(u.scheme, "sip");
        assert_eq!(u.user.as_deref(), Some("+8613800138000"));
        assert_eq!(u.host.as_deref(), Some("2001:DB8::1"));
        assert_eq!(u.port, Some(5070));
        let u = parse_uri("SIPS:alice:secret@example.com");
        assert_eq!((u.scheme.as_str(), u.user.as_deref(), u.port), ("sips", Some("alice"), None));
        let u = parse_uri("tel:+86-21-(1234).5678;phone-context=example.com");
        assert_eq!((u.scheme.as_str(), u.user.as_deref(), u.host.as_deref()), ("tel", Some("+862112345678"), None));
        // Visual separators are only stripped where RFC 3966 applies.
        assert_eq!(parse_uri("sip:0-21-1234@h").user.as_deref(), Some("0-21-1234"));
        assert_eq!(parse_uri("sip:0-21-1234;phone-context=x@h;user=phone").user.as_deref(), Some("0211234"));
        let u = parse_uri("sip:[2001:db8::1]");
        assert_eq!((u.user, u.host.as_deref()), (None, Some("2001:db8::1")));
        let u = parse_uri("urn:service:sos");
        assert_eq!((u.scheme.as_str(), u.user, u.host), ("urn", None, None));
        assert_eq!(parse_uri("*").scheme, "");
        assert_eq!(parse_uri("sip:h:notaport").port, None);
    }

    #[test]
    fn via_values() {
        assert_eq!(
            via_text("SIP/2.0/UDP 10.0.0.1:5060;rport;Branch=z9hG4bK1"),
            (Some("10.0.0.1:5060".into()), "z9hG4bK1".into())
        );
        assert_eq!(
            via_text("SIP / 2.0 / TCP  [2001:db8::1]:5061 ;branch=x"),
            (Some("[2001:db8::1]:5061".into()), "x".into())
        );
        assert_eq!(via_text("SIP/2.0/UDP host"), (Some("host".into()), String::new()));
        assert_eq!(via_text("garbage"), (None, String::new()));
    }

    #[test]
    fn host_ports() {
        assert_eq!(host_port("2001:db8::1", Some(5060)), "[2001:db8::1]:5060");
        assert_eq!(host_port("h", None), "h");
        assert_eq!(split_host_port("[::1]:5"), ("::1", Some(5)));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("a.b:99999"), ("a.b", None));
    }
}
