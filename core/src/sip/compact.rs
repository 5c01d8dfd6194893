//! Compact header names (RFC 3261 §7.3.3 and the IANA SIP header registry) and the one pass
//! that prepares a message head for rsip: compact names expanded, strict CRLF framing
//! checked, the head closed with an empty line.
//! May use: nothing. Invariant: `prepare_for_rsip` refuses (returns `None`) every head whose
//! form rsip would misread rather than reject — bare LF or CR line ends (rsip would glue
//! lines into one header value), folded lines and whitespace before the colon — so those go
//! straight to the tolerant fallback.

/// The full name of a one-letter compact header name (any case), if it has one.
pub(crate) fn expand(name: &[u8]) -> Option<&'static str> {
    let [c] = name else { return None };
    Some(match c.to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'n' => "Identity-Info",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => return None,
    })
}

/// Copy `head` (start line and header lines, without the empty line) with compact names
/// expanded and `\r\n\r\n` appended, or `None` when its framing is not one rsip reads
/// faithfully.
pub(crate) fn prepare_for_rsip(head: &[u8]) -> Option<Vec<u8>> {
    // Line ends at the very end (a missing or partial final CRLF) are tolerated here.
    let mut end = head.len();
    while end > 0 && matches!(head.get(end - 1), Some(b'\r' | b'\n')) {
        end -= 1;
    }
    let head = head.get(..end)?;
    let mut out = Vec::with_capacity(head.len() + 64);
    let mut first = true;
    let mut rest = head;
    loop {
        let (line, next) = match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            Some(i) => {
                // Only a CR immediately followed by LF is a line end rsip understands.
                if rest.get(i) != Some(&b'\r') || rest.get(i + 1) != Some(&b'\n') {
                    return None;
                }
                (rest.get(..i)?, rest.get(i + 2..))
            }
            None => (rest, None),
        };
        if first {
            out.extend_from_slice(line);
            first = false;
        } else {
            match line.first() {
                // Folded continuation line, or an empty line inside the head.
                None | Some(b' ' | b'\t') => return None,
                Some(_) => {}
            }
            let colon = line.iter().position(|&b| b == b':')?;
            let name = line.get(..colon)?;
            if name.last().is_some_and(|b| b.is_ascii_whitespace()) {
                return None;
            }
            match expand(name) {
                Some(full) => {
                    out.extend_from_slice(full.as_bytes());
                    out.extend_from_slice(line.get(colon..)?);
                }
                None => out.extend_from_slice(line),
            }
        }
        out.extend_from_slice(b"\r\n");
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compact_name() {
        let table = [
            ("a", "Accept-Contact"),
            ("b", "Referred-By"),
            ("c", "Content-Type"),
            ("d", "Request-Disposition"),
            ("e", "Content-Encoding"),
            ("f", "From"),
            ("i", "Call-ID"),
            ("j", "Reject-Contact"),
            ("k", "Supported"),
            ("l", "Content-Length"),
            ("m", "Contact"),
            ("n", "Identity-Info"),
            ("o", "Event"),
            ("r", "Refer-To"),
            ("s", "Subject"),
            ("t", "To"),
            ("u", "Allow-Events"),
            ("v", "Via"),
            ("x", "Session-Expires"),
            ("y", "Identity"),
        ];
        for (short, long) in table {
            assert_eq!(expand(short.as_bytes()), Some(long), "{short}");
            assert_eq!(expand(short.to_uppercase().as_bytes()), Some(long), "{short}");
        }
        for none in ["g", "h", "p", "q", "w", "z", "", "ab", "To"] {
            assert_eq!(expand(none.as_bytes()), None, "{none}");
        }
    }

    #[test]
    fn expands_and_closes_the_head() {
        let out = prepare_for_rsip(b"INVITE sip:a@b SIP/2.0\r\ni: x\r\nF:<sip:c@d>\r\nTo: <sip:e@f>\r\n").unwrap();
        assert_eq!(out, b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nFrom:<sip:c@d>\r\nTo: <sip:e@f>\r\n\r\n");
        // Missing final CRLF is closed.
        let out = prepare_for_rsip(b"SIP/2.0 200 OK\r\nl: 0").unwrap();
        assert_eq!(out, b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn refuses_what_rsip_would_misread() {
        assert_eq!(prepare_for_rsip(b"OPTIONS sip:a SIP/2.0\nCall-ID: x\r\n"), None);
        assert_eq!(prepare_for_rsip(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\nCSeq: 1 OPTIONS\r\n"), None);
        assert_eq!(prepare_for_rsip(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\rCSeq: 1 OPTIONS\r\n"), None);
        assert_eq!(prepare_for_rsip(b"OPTIONS sip:a SIP/2.0\r\nSubject: a\r\n b\r\n"), None);
        assert_eq!(prepare_for_rsip(b"OPTIONS sip:a SIP/2.0\r\nCall-ID : x\r\n"), None);
        assert_eq!(prepare_for_rsip(b"OPTIONS sip:a SIP/2.0\r\nno colon here\r\n"), None);
    }
}
