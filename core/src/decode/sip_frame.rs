//! SIP message framing on a byte stream (RFC 3261 §18.3): a message is its start line and
//! header block up to the first empty line, plus `Content-Length` (compact form `l`)
//! bytes of body. Header names are matched case-insensitively; bare LF line ends are
//! tolerated. Also finds the next SIP start line when a stream must resynchronise.
//! Written here (after ezk's `StreamingDecoder`) because it needs only a few byte scans,
//! no header parsing, and must not allocate or depend on the SIP parser downstream.
//! May use: nothing. Invariant: pure functions over a slice; never index past it.

/// A start line longer than this is not believed (request URIs are far shorter).
pub(crate) const MAX_START_LINE: usize = 4096;

/// A Content-Length larger than this is treated as corrupt: the stream resynchronises on
/// the next start line instead of skipping that many bytes.
const MAX_BELIEVED_LENGTH: usize = 16 * 1024 * 1024;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// A whole message of this many bytes starts the buffer.
    Complete(usize),
    /// More bytes needed; `Some(total)` once the header block is complete.
    Incomplete(Option<usize>),
    /// Larger than the cap: `Some(total)` when its length is known (skip exactly that),
    /// `None` when even the header block does not fit.
    TooBig(Option<usize>),
    /// The buffer does not start with a SIP start line.
    NotSip,
}

/// Bytes of CR/LF at the start (keep-alives "\r\n\r\n" and "\r\n" between messages).
pub(crate) fn leading_newlines(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count()
}

/// Frame the message at the start of `b` (which starts with something other than CR/LF).
/// `known_total`: what an earlier call said for this same message, to skip the rescan.
pub(crate) fn frame(b: &[u8], max: usize, known_total: Option<usize>) -> Framing {
    if let Some(total) = known_total {
        return if b.len() >= total { Framing::Complete(total) } else { Framing::Incomplete(Some(total)) };
    }
    if !b.first().is_some_and(|c| c.is_ascii_uppercase()) {
        return Framing::NotSip;
    }
    let Some(eol) = b.iter().position(|&c| c == b'\n') else {
        return if b.len() > MAX_START_LINE { Framing::NotSip } else { Framing::Incomplete(None) };
    };
    if !is_start_line(b.get(..eol).unwrap_or_default()) {
        return Framing::NotSip;
    }
    let Some(head_end) = header_end(b) else {
        return if b.len() > max { Framing::TooBig(None) } else { Framing::Incomplete(None) };
    };
    let body = content_length(b.get(..head_end).unwrap_or_default());
    let total = match body.and_then(|l| head_end.checked_add(l)) {
        Some(t) if t <= MAX_BELIEVED_LENGTH => t,
        _ => return Framing::TooBig(None),
    };
    if total > max {
        Framing::TooBig(Some(total))
    } else if b.len() < total {
        Framing::Incomplete(Some(total))
    } else {
        Framing::Complete(total)
    }
}

/// The offset just after the empty line that ends the header block.
pub(crate) fn header_end(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = b.get(from..)?.iter().position(|&c| c == b'\n') {
        let at = from + i + 1;
        match b.get(at..) {
            Some([b'\n', ..]) => return Some(at + 1),
            Some([b'\r', b'\n', ..]) => return Some(at + 2),
            _ => from = at,
        }
    }
    None
}

/// The body length from the header block: `Some(0)` when absent or unreadable (the body,
/// if any, is then resynchronised over), `None` when it overflows.
fn content_length(head: &[u8]) -> Option<usize> {
    for line in head.split(|&c| c == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&c| c == b':') else { continue };
        let name = line.get(..colon).unwrap_or_default().trim_ascii_end();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = line.get(colon + 1..).unwrap_or_default().trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Some(0);
            }
            return value.iter().try_fold(0usize, |n, d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')));
        }
    }
    Some(0)
}

/// Is `line` (without its LF) a SIP request or status line?
pub(crate) fn is_start_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_START_LINE {
        return false;
    }
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        return matches!(rest, [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit())
            && matches!(rest.get(3), None | Some(b' '));
    }
    let mut parts = line.split(|&c| c == b' ');
    let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    (1..=32).contains(&method.len())
        && method.iter().all(|c| c.is_ascii_uppercase() || *c == b'-' || *c == b'_')
        && !uri.is_empty()
        && uri.contains(&b':')
        && version.eq_ignore_ascii_case(b"SIP/2.0")
}

/// Find the first line in `b` that is a SIP start line (candidates: offset 0 and every
/// offset after a LF). `Err(keep)`: none yet; bytes from `keep` on are an unfinished last
/// line worth keeping for the next call (none if it is already too long to be one).
pub(crate) fn find_start_line(b: &[u8]) -> Result<usize, usize> {
    let mut start = 0;
    loop {
        let Some(rest) = b.get(start..) else { return Err(b.len()) };
        match rest.iter().position(|&c| c == b'\n') {
            Some(i) => {
                if is_start_line(rest.get(..i).unwrap_or_default()) {
                    return Ok(start);
                }
                start += i + 1;
            }
            None => {
                return Err(if rest.len() > MAX_START_LINE { b.len() } else { start });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn start_lines() {
        assert!(is_start_line(b"INVITE sip:bob@example.com SIP/2.0\r"));
        assert!(is_start_line(b"SIP/2.0 200 OK"));
        assert!(is_start_line(b"SIP/2.0 100"));
        assert!(is_start_line(b"ACK tel:+8613800000000 sip/2.0"));
        assert!(!is_start_line(b"SIP/2.0 20 OK"));
        assert!(!is_start_line(b"GET / HTTP/1.1"));
        assert!(!is_start_line(b"invite sip:x SIP/2.0"));
        assert!(!is_start_line(b"INVITE nocolon SIP/2.0"));
        assert!(!is_start_line(b"INVITE sip:a SIP/2.0 extra"));
        assert!(!is_start_line(b"Via: SIP/2.0/TCP host"));
    }

    #[test]
    fn frames_with_full_and_compact_length() {
        assert_eq!(frame(INVITE, 65536, None), Framing::Complete(INVITE.len()));
        let compact = b"BYE sip:a@b SIP/2.0\r\nl : 2\r\ni: x\r\n\r\nxyNEXT";
        assert_eq!(frame(compact, 65536, None), Framing::Complete(compact.len() - 4));
        let upper = b"SIP/2.0 200 OK\r\nCONTENT-LENGTH:3\r\n\r\nabc";
        assert_eq!(frame(upper, 65536, None), Framing::Complete(upper.len()));
        // No Content-Length: no body. Bare LF line ends.
        let lf = b"OPTIONS sip:a@b SIP/2.0\nCall-ID: 1\n\nREST";
        assert_eq!(frame(lf, 65536, None), Framing::Complete(lf.len() - 4));
        // A header whose name merely ends in "l" is not Content-Length.
        let tricky = b"SIP/2.0 200 OK\r\nUrl: 7\r\n\r\n";
        assert_eq!(frame(tricky, 65536, None), Framing::Complete(tricky.len()));
    }

    #[test]
    fn incomplete_and_too_big() {
        assert_eq!(frame(&INVITE[..20], 65536, None), Framing::Incomplete(None));
        let head = INVITE.len() - 4;
        assert_eq!(frame(&INVITE[..head + 2], 65536, None), Framing::Incomplete(Some(INVITE.len())));
        assert_eq!(frame(&INVITE[..head + 2], 65536, Some(INVITE.len())), Framing::Incomplete(Some(INVITE.len())));
        assert_eq!(frame(&INVITE[..60], 40, None), Framing::TooBig(None));
        assert_eq!(frame(INVITE, 40, None), Framing::TooBig(Some(INVITE.len())));
        assert_eq!(frame(INVITE, head + 1, None), Framing::TooBig(Some(INVITE.len())));
        let huge = b"SIP/2.0 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(frame(huge, 65536, None), Framing::TooBig(None));
        assert_eq!(frame(b"HTTP/1.1 200 OK\r\n\r\n", 65536, None), Framing::NotSip);
        assert_eq!(frame(b"\x16\x03\x01", 65536, None), Framing::NotSip);
    }

    #[test]
    fn finds_start_lines() {
        let mut b = b"tail of a body\r\nmore\r\n".to_vec();
        let at = b.len();
        b.extend_from_slice(INVITE);
        assert_eq!(find_start_line(&b), Ok(at));
        assert_eq!(find_start_line(b"no newline yet"), Err(0));
        assert_eq!(find_start_line(b"line\r\nINVITE sip:x SIP"), Err(6));
        assert_eq!(find_start_line(&vec![b'x'; MAX_START_LINE + 1]), Err(MAX_START_LINE + 1));
        assert_eq!(leading_newlines(b"\r\n\r\nINVITE"), 4);
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..400), max in 0usize..500) {
            let _ = frame(&b, max, None);
            let _ = find_start_line(&b);
            let _ = leading_newlines(&b);
        }

        #[test]
        fn complete_is_within_the_buffer(extra in proptest::collection::vec(any::<u8>(), 0..50)) {
            let mut b = INVITE.to_vec();
            b.extend_from_slice(&extra);
            match frame(&b, 65536, None) {
                Framing::Complete(n) => prop_assert_eq!(n, INVITE.len()),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
