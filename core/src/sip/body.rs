//! Message framing and bodies: where the head ends, how much body Content-Length gives, and
//! finding the SDP — the whole body (application/sdp, or no Content-Type and a body that
//! starts with `v=0`) or one part of a multipart body (RFC 2046 §5.1, nested at most
//! `MAX_DEPTH` deep).
//! Hand-written rather than a crate: the multipart crates are HTTP-server oriented (async
//! readers, Content-Disposition form fields) and the media-type crates reject forms PBXes
//! send; we need the essence and one parameter, tolerantly.
//! May use: `sdp`. Invariant: total functions over untrusted bytes, no panics.

use super::sdp::{self, Sdp};

const MAX_DEPTH: usize = 3;

/// Split at the first empty line: the head (start line and headers, with the last header's
/// line end) and what follows the empty line. Without an empty line the head is everything
/// and the body empty. Accepts `\r\n` and bare `\n` line ends.
pub(crate) fn split_head(bytes: &[u8]) -> (&[u8], &[u8]) {
    let mut from = 0;
    while let Some(off) = bytes.get(from..).and_then(|s| s.iter().position(|&b| b == b'\n')) {
        let after = from + off + 1;
        match (bytes.get(after), bytes.get(after + 1)) {
            (Some(b'\n'), _) => return (bytes.get(..after).unwrap_or(bytes), bytes.get(after + 1..).unwrap_or(&[])),
            (Some(b'\r'), Some(b'\n')) => {
                return (bytes.get(..after).unwrap_or(bytes), bytes.get(after + 2..).unwrap_or(&[]))
            }
            _ => from = after,
        }
    }
    (bytes, &[])
}

/// The body: `content_length` bytes when that many are there, else all that is there
/// (a missing, unreadable or too large Content-Length; see sip-invalid-content-length.pcap).
pub(crate) fn body(after_head: &[u8], content_length: Option<usize>) -> &[u8] {
    match content_length {
        Some(n) => after_head.get(..n).unwrap_or(after_head),
        None => after_head,
    }
}

/// The media type's `type/subtype`, trimmed (case kept; compare with `eq_ignore_ascii_case`).
fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// A media-type parameter value (any case), unquoted.
fn media_param<'a>(content_type: &'a str, name: &str) -> Option<&'a str> {
    let (_, params) = content_type.split_once(';')?;
    let v = super::value::param(params, name)?;
    Some(v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v))
}

/// The SDP in a body, if there is one.
pub(crate) fn find_sdp(content_type: Option<&str>, body: &[u8]) -> Option<Sdp> {
    find_sdp_at(content_type, body, 0)
}

fn find_sdp_at(content_type: Option<&str>, body: &[u8], depth: usize) -> Option<Sdp> {
    match content_type {
        None => body.starts_with(b"v=0").then(|| sdp::parse(body)).flatten(),
        Some(ct) => {
            let ess = essence(ct);
            if ess.eq_ignore_ascii_case("application/sdp") {
                sdp::parse(body)
            } else if ess.len() > 10 && ess.get(..10).is_some_and(|m| m.eq_ignore_ascii_case("multipart/")) {
                if depth >= MAX_DEPTH {
                    return None;
                }
                let boundary = media_param(ct, "boundary")?;
                multipart_parts(body, boundary.as_bytes()).find_map(|part| {
                    let (head, part_body) = split_head(part);
                    let part_ct = part_content_type(head);
                    // A part without Content-Type is text/plain (RFC 2046 §5.1): never SDP.
                    part_ct.and_then(|pct| find_sdp_at(Some(&pct), part_body, depth + 1))
                })
            } else {
                None
            }
        }
    }
}

/// Content-Type of a MIME part head (lines of `Name: value`; compact `c` accepted).
fn part_content_type(head: &[u8]) -> Option<String> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let name = line.get(..colon)?.trim_ascii();
        let is_ct = name.eq_ignore_ascii_case(b"Content-Type") || name.eq_ignore_ascii_case(b"c");
        is_ct.then(|| String::from_utf8_lossy(line.get(colon + 1..).unwrap_or(b"").trim_ascii()).into_owned())
    })
}

/// The parts of a multipart body: what lies between `--boundary` delimiter lines, without
/// the line end before each delimiter; stops at the close delimiter `--boundary--`. A body
/// cut short before its close delimiter still yields its last part (tolerance for
/// truncated captures).
fn multipart_parts<'a>(body: &'a [u8], boundary: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut delims = Vec::new();
    if !boundary.is_empty() {
        let mut i = 0;
        while let Some(off) = find(body.get(i..).unwrap_or(&[]), b"--", boundary) {
            let at = i + off;
            // A delimiter starts a line (or the body).
            if at == 0 || body.get(at - 1) == Some(&b'\n') {
                delims.push(at);
            }
            i = at + 2 + boundary.len();
        }
    }
    let ends: Vec<usize> = delims.iter().skip(1).copied().chain(std::iter::once(body.len())).collect();
    delims.into_iter().zip(ends).map_while(move |(start, end)| {
        let after_delim = start + 2 + boundary.len();
        // The close delimiter ends the body.
        if body.get(after_delim..after_delim + 2) == Some(b"--") {
            return None;
        }
        let seg = body.get(after_delim..end)?;
        // Rest of the delimiter line (transport padding), then the part up to the CRLF
        // that belongs to the next delimiter.
        let seg = match seg.iter().position(|&b| b == b'\n') {
            Some(nl) => seg.get(nl + 1..)?,
            None => &[],
        };
        let seg = seg.strip_suffix(b"\n").unwrap_or(seg);
        Some(seg.strip_suffix(b"\r").unwrap_or(seg))
    })
}

/// Position of `a` immediately followed by `b` in `hay`.
fn find(hay: &[u8], a: &[u8], b: &[u8]) -> Option<usize> {
    let n = a.len() + b.len();
    if hay.len() < n {
        return None;
    }
    (0..=hay.len() - n).find(|&i| hay.get(i..i + a.len()) == Some(a) && hay.get(i + a.len()..i + n) == Some(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_split() {
        assert_eq!(split_head(b"A\r\nB: c\r\n\r\nbody"), (&b"A\r\nB: c\r\n"[..], &b"body"[..]));
        assert_eq!(split_head(b"A\nB: c\n\nbody"), (&b"A\nB: c\n"[..], &b"body"[..]));
        assert_eq!(split_head(b"A\r\nB: c\r\n"), (&b"A\r\nB: c\r\n"[..], &b""[..]));
        assert_eq!(split_head(b"A\r\nB: c"), (&b"A\r\nB: c"[..], &b""[..]));
        assert_eq!(split_head(b"A\r\n\r\n"), (&b"A\r\n"[..], &b""[..]));
        assert_eq!(split_head(b""), (&b""[..], &b""[..]));
    }

    #[test]
    fn body_lengths() {
        assert_eq!(body(b"0123456789", Some(4)), b"0123");
        assert_eq!(body(b"0123456789", Some(10)), b"0123456789");
        assert_eq!(body(b"0123", Some(99)), b"0123");
        assert_eq!(body(b"0123", None), b"0123");
        assert_eq!(body(b"0123", Some(0)), b"");
    }

    #[test]
    fn media_type_params() {
        assert_eq!(media_param("multipart/mixed;boundary=abc", "boundary"), Some("abc"));
        assert_eq!(media_param("multipart/mixed; Boundary=\"a b\" ; x=y", "boundary"), Some("a b"));
        assert_eq!(media_param("multipart/mixed", "boundary"), None);
        assert_eq!(essence(" Application/SDP ; charset=utf-8"), "Application/SDP");
    }

    const SDP: &str =
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";

    #[test]
    fn sdp_by_content_type() {
        assert!(find_sdp(Some("application/sdp"), SDP.as_bytes()).is_some());
        assert!(find_sdp(Some("APPLICATION/SDP; charset=x"), SDP.as_bytes()).is_some());
        assert!(find_sdp(None, SDP.as_bytes()).is_some());
        assert!(find_sdp(Some("text/plain"), SDP.as_bytes()).is_none());
        assert!(find_sdp(None, b"hello").is_none());
    }

    #[test]
    fn sdp_in_multipart() {
        let body = format!(
            "preamble\r\n--b1\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\n\x01\x02\r\n--b1 \r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b1--\r\nepilogue"
        );
        let sdp = find_sdp(Some("multipart/mixed;boundary=b1"), body.as_bytes()).expect("sdp part");
        assert_eq!(sdp.media.first().map(|m| m.port), Some(4000));
        // Boundary text inside a part that is not at a line start is not a delimiter.
        let body = format!("--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}a=x:--b1\r\n--b1--");
        let sdp = find_sdp(Some("multipart/mixed; boundary=\"b1\""), body.as_bytes()).expect("sdp part");
        assert_eq!(sdp.media.len(), 1);
        // Nested multipart.
        let inner = format!("--in\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--in--");
        let body = format!("--out\r\nContent-Type: multipart/alternative;boundary=in\r\n\r\n{inner}\r\n--out--");
        assert!(find_sdp(Some("multipart/mixed;boundary=out"), body.as_bytes()).is_some());
        // No SDP part, no boundary, unterminated.
        let body = format!("--b1\r\nContent-Type: text/plain\r\n\r\n{SDP}\r\n--b1--");
        assert!(find_sdp(Some("multipart/mixed;boundary=b1"), body.as_bytes()).is_none());
        assert!(find_sdp(Some("multipart/mixed"), body.as_bytes()).is_none());
        // A body cut before its close delimiter still gives its last part.
        let body = format!("--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}");
        assert!(find_sdp(Some("multipart/mixed;boundary=b1"), body.as_bytes()).is_some());
    }
}
