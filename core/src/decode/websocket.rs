//! SIP over WebSocket (RFC 7118) and TLS recognition on a reassembled TCP stream. Owns the
//! WebSocket frame header (RFC 6455 §5.2: FIN, opcode, mask, 7/16/64-bit length, masking
//! key), the HTTP Upgrade handshake test, and the test for a TLS record, which callwarden
//! cannot read passively (WSS, SIP over TLS).
//! Written here: the WebSocket crates (tungstenite, ...) own a socket and its I/O; a
//! passive reader needs only the header view and the XOR unmasking.
//! May use: `sip_frame`. Invariants: pure functions over a slice; never index past it; a
//! frame length over 2^63 or reserved bits set (an extension such as permessage-deflate,
//! which we cannot follow) is `Bad`.

/// What the bytes at the start of a WebSocket stream hold.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum WsFrame {
    /// A frame header: the payload follows at `header`, `len` bytes long.
    Frame { fin: bool, opcode: u8, header: usize, len: u64, mask: Option<[u8; 4]> },
    /// Not enough bytes for the header.
    Incomplete,
    /// Not a frame we can read (reserved bits, reserved opcode, oversized control frame).
    Bad,
}

pub(crate) const OP_CONTINUATION: u8 = 0;
#[cfg(test)]
pub(crate) const OP_TEXT: u8 = 1;
#[cfg(test)]
pub(crate) const OP_BINARY: u8 = 2;

/// Read the frame header at the start of `b`.
pub(crate) fn parse_frame(b: &[u8]) -> WsFrame {
    let (Some(&b0), Some(&b1)) = (b.first(), b.get(1)) else { return WsFrame::Incomplete };
    let opcode = b0 & 0x0f;
    if b0 & 0x70 != 0 || !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
        return WsFrame::Bad;
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => match b.get(2..4) {
            Some(l) => (u64::from(u16::from_be_bytes([l[0], l[1]])), 4),
            None => return WsFrame::Incomplete,
        },
        127 => match b.get(2..10).and_then(|l| <[u8; 8]>::try_from(l).ok()) {
            Some(l) => (u64::from_be_bytes(l), 10),
            None => return WsFrame::Incomplete,
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 || (opcode >= 8 && (len > 125 || b0 & 0x80 == 0)) {
        return WsFrame::Bad;
    }
    let mask = if masked {
        match b.get(at..at + 4) {
            Some(m) => {
                at += 4;
                Some([m[0], m[1], m[2], m[3]])
            }
            None => return WsFrame::Incomplete,
        }
    } else {
        None
    };
    WsFrame::Frame { fin: b0 & 0x80 != 0, opcode, header: at, len, mask }
}

/// Append `payload` to `out`, unmasked with `mask` (RFC 6455 §5.3).
pub(crate) fn unmask_into(payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// Whether the first bytes of a stream look like a WebSocket data or control frame (for a
/// stream whose handshake was not captured). SIP and HTTP start with ASCII letters, which
/// have reserved bits set when read as a frame header, so they never match. A header cut
/// by the segment's end counts (its first byte already said enough).
pub(crate) fn looks_like_frame(b: &[u8]) -> bool {
    !b.is_empty() && parse_frame(b) != WsFrame::Bad
}

/// Whether an HTTP header block is a WebSocket upgrade: a request with `Upgrade:
/// websocket`, or the `101 Switching Protocols` answer.
pub(crate) fn is_upgrade(head: &[u8]) -> bool {
    if head.starts_with(b"HTTP/1.1 101") || head.starts_with(b"HTTP/1.0 101") {
        return true;
    }
    head.starts_with(b"GET ")
        && head.split(|&c| c == b'\n').any(|line| {
            let line = line.to_ascii_lowercase();
            line.starts_with(b"upgrade:") && line.windows(9).any(|w| w == b"websocket")
        })
}

/// What a TLS record at the start of a stream is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tls {
    /// A ClientHello: the other end of this direction is the server.
    ClientHello,
    /// Another handshake or record: TLS, but not the client's first flight.
    Other,
}

/// A TLS record header (content type 20..=23, version 3.x) at the start of `b`.
pub(crate) fn tls_record(b: &[u8]) -> Option<Tls> {
    match b {
        [22, 3, 0..=4, _, _, 1, ..] => Some(Tls::ClientHello),
        [20..=23, 3, 0..=4, ..] => Some(Tls::Other),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod build {
    /// A WebSocket frame as a browser (masked) or a server (unmasked) sends it.
    pub fn frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![u8::from(fin) << 7 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => v.push(m | n as u8),
            n if n <= 0xffff => {
                v.push(m | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(m | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                v.extend_from_slice(&k);
                v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => v.extend_from_slice(payload),
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn headers_lengths_and_bad_frames() {
        let f = build::frame(true, OP_TEXT, Some([1, 2, 3, 4]), b"abc");
        assert_eq!(
            parse_frame(&f),
            WsFrame::Frame { fin: true, opcode: 1, header: 6, len: 3, mask: Some([1, 2, 3, 4]) }
        );
        let mut out = Vec::new();
        unmask_into(&f[6..], [1, 2, 3, 4], &mut out);
        assert_eq!(out, b"abc");
        let big = build::frame(false, OP_BINARY, None, &[7; 70_000]);
        assert_eq!(parse_frame(&big), WsFrame::Frame { fin: false, opcode: 2, header: 10, len: 70_000, mask: None });
        assert_eq!(parse_frame(&build::frame(true, 1, None, &[0; 300])[..3]), WsFrame::Incomplete);
        assert_eq!(parse_frame(&[0x81]), WsFrame::Incomplete);
        // RSV1 (permessage-deflate), opcode 3, a fragmented or long ping.
        assert_eq!(parse_frame(&[0xc1, 0]), WsFrame::Bad);
        assert_eq!(parse_frame(&[0x83, 0]), WsFrame::Bad);
        assert_eq!(parse_frame(&[0x09, 0]), WsFrame::Bad);
        assert_eq!(parse_frame(&[0x89, 126, 0, 200]), WsFrame::Bad);
        assert!(!looks_like_frame(b"INVITE sip:x SIP/2.0"));
        assert!(!looks_like_frame(b"GET /ws HTTP/1.1"));
    }

    #[test]
    fn upgrade_and_tls() {
        assert!(is_upgrade(
            b"GET /ws HTTP/1.1\r\nHost: pbx\r\nUPGRADE: WebSocket\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
        ));
        assert!(is_upgrade(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"));
        assert!(!is_upgrade(b"GET /index.html HTTP/1.1\r\nHost: pbx\r\n\r\n"));
        assert_eq!(tls_record(&[22, 3, 1, 0, 200, 1, 0]), Some(Tls::ClientHello));
        assert_eq!(tls_record(&[23, 3, 3, 0, 20]), Some(Tls::Other));
        assert_eq!(tls_record(b"INVITE"), None);
    }

    proptest! {
        #[test]
        fn frames_round_trip(fin in any::<bool>(), opcode in prop::sample::select(vec![0u8, 1, 2]),
                             mask in any::<Option<[u8; 4]>>(), payload in proptest::collection::vec(any::<u8>(), 0..400)) {
            let f = build::frame(fin, opcode, mask, &payload);
            let WsFrame::Frame { fin: g, opcode: o, header, len, mask: m } = parse_frame(&f) else {
                return Err(TestCaseError::fail("not a frame"));
            };
            prop_assert_eq!((g, o, m, len as usize, header + payload.len()), (fin, opcode, mask, payload.len(), f.len()));
            let mut out = Vec::new();
            match m {
                Some(k) => unmask_into(&f[header..], k, &mut out),
                None => out.extend_from_slice(&f[header..]),
            }
            prop_assert_eq!(out, payload);
        }

        #[test]
        fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = parse_frame(&b);
            let _ = is_upgrade(&b);
            let _ = tls_record(&b);
        }
    }
}
