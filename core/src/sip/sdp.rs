//! SDP (RFC 4566/8866) reading: session and media connection addresses, ports, payload
//! formats with rtpmap, direction attributes, ptime and rtcp port. Tolerant: unknown lines
//! are skipped; a body that is not SDP yields `None`.
//! Hand-written rather than a crate: the SDP crates (sdp-rs, sdp-types, webrtc-sdp) reject a
//! whole body for one line they dislike (an FQDN or `0.0.0.0` in `c=`, a missing `s=`/`t=`,
//! a stray attribute) and want UTF-8; captured PBX traffic bends those rules, and we need
//! six line types, read line by line.
//! May use: nothing. Invariants: never panics; `c=` addresses are kept as written (an old
//! style hold `c=IN IP4 0.0.0.0` stays `0.0.0.0`); after `parse`, every `Media::direction`
//! is resolved (media attribute, else the session's, else sendrecv).

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
    let mut sdp = Sdp::default();
    let mut seen_v = false;
    // Session-level ptime: not in RFC 4566, but some PBXes write it there for all media.
    let mut session_ptime = None;
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else { continue };
        let line = line.trim_end();
        if !seen_v {
            // RFC 4566 §5: v= comes first; anything else before it means this is not SDP.
            if line.starts_with("v=") {
                seen_v = true;
                continue;
            }
            if line.trim_start().is_empty() {
                continue;
            }
            return None;
        }
        let Some((kind, value)) = line.split_once('=') else { continue };
        match kind {
            "c" => {
                let addr = connection(value);
                match sdp.media.last_mut() {
                    Some(m) => {
                        if m.conn.is_none() {
                            m.conn = addr;
                        }
                    }
                    None => {
                        if sdp.conn.is_none() {
                            sdp.conn = addr;
                        }
                    }
                }
            }
            "m" => {
                if let Some(m) = media_line(value) {
                    sdp.media.push(m);
                } else {
                    // Keep later a= lines from landing on the previous m= section.
                    sdp.media.push(Media { kind: String::new(), ..Media::default() });
                }
            }
            "a" => attribute(value, &mut sdp, &mut session_ptime),
            _ => {}
        }
    }
    // Unreadable m= lines were placeholders.
    sdp.media.retain(|m| !m.kind.is_empty());
    if !seen_v || (sdp.conn.is_none() && sdp.media.is_empty()) {
        return None;
    }
    for m in &mut sdp.media {
        m.direction = Some(m.direction.or(sdp.direction).unwrap_or(Direction::SendRecv));
        if m.ptime_ms.is_none() {
            m.ptime_ms = session_ptime;
        }
    }
    Some(sdp)
}

/// `IN IP4 192.0.2.1`, `IN IP6 2001:db8::1`, with an optional `/ttl[/count]` suffix. An FQDN
/// (allowed by RFC 4566) has no address we can match packets against: `None`.
fn connection(value: &str) -> Option<IpAddr> {
    let mut it = value.split_whitespace();
    let _net = it.next()?;
    let _addrtype = it.next()?;
    let addr = it.next()?.split('/').next()?;
    addr.parse().ok()
}

/// `audio 49170[/2] RTP/AVP 0 8 101`.
fn media_line(value: &str) -> Option<Media> {
    let mut it = value.split_whitespace();
    let kind = it.next()?.to_string();
    let port = it.next()?.split('/').next()?.parse().ok()?;
    let proto = it.next()?.to_string();
    // Only 0..=127 are RTP payload types; other formats ("t38", "*") are skipped.
    let formats = it.filter_map(|f| f.parse::<u8>().ok()).filter(|pt| *pt <= 127).collect();
    Some(Media { kind, port, proto, formats, ..Media::default() })
}

fn attribute(value: &str, sdp: &mut Sdp, session_ptime: &mut Option<u32>) {
    let (name, arg) = match value.split_once(':') {
        Some((n, a)) => (n.trim(), a.trim()),
        None => (value.trim(), ""),
    };
    let dir = match name.to_ascii_lowercase().as_str() {
        "sendrecv" => Some(Direction::SendRecv),
        "sendonly" => Some(Direction::SendOnly),
        "recvonly" => Some(Direction::RecvOnly),
        "inactive" => Some(Direction::Inactive),
        _ => None,
    };
    let media = sdp.media.last_mut();
    if let Some(d) = dir {
        match media {
            Some(m) => m.direction = Some(d),
            None => sdp.direction = Some(d),
        }
        return;
    }
    match (name.to_ascii_lowercase().as_str(), media) {
        ("rtpmap", Some(m)) => {
            if let Some(r) = rtpmap(arg) {
                // The first rtpmap for a payload type wins.
                if !m.rtpmap.iter().any(|x| x.pt == r.pt) {
                    m.rtpmap.push(r);
                }
            }
        }
        ("ptime", m) => {
            // Some phones write fractional ptime ("20.0"); keep whole milliseconds.
            let ms = arg.parse::<u32>().ok().or_else(|| {
                arg.parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e6).map(|f| f as u32)
            });
            match m {
                Some(m) => m.ptime_ms = ms.or(m.ptime_ms),
                None => *session_ptime = ms,
            }
        }
        ("rtcp", Some(m)) => m.rtcp_port = arg.split_whitespace().next().and_then(|p| p.parse().ok()),
        _ => {}
    }
}

/// `8 PCMA/8000[/1]`.
fn rtpmap(arg: &str) -> Option<RtpMap> {
    let (pt, enc) = arg.split_once(char::is_whitespace)?;
    let pt = pt.trim().parse::<u8>().ok().filter(|pt| *pt <= 127)?;
    let mut parts = enc.trim().split('/');
    let encoding = parts.next()?.trim().to_string();
    if encoding.is_empty() {
        return None;
    }
    let clock_rate = parts.next()?.trim().parse().ok()?;
    let channels = parts.next().and_then(|c| c.trim().parse().ok());
    Some(RtpMap { pt, encoding, clock_rate, channels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn offer_with_session_connection() {
        let s = parse(
            b"v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
              m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000/1\r\n\
              a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=rtcp:4005\r\n",
        )
        .unwrap();
        assert_eq!(s.conn, ip("10.0.0.1"));
        assert_eq!(s.direction, None);
        let m = &s.media[0];
        assert_eq!((m.kind.as_str(), m.port, m.proto.as_str()), ("audio", 4000, "RTP/AVP"));
        assert_eq!(m.formats, vec![8, 0, 101]);
        assert_eq!(
            m.rtpmap,
            vec![
                RtpMap { pt: 8, encoding: "PCMA".into(), clock_rate: 8000, channels: None },
                RtpMap { pt: 0, encoding: "PCMU".into(), clock_rate: 8000, channels: Some(1) },
                RtpMap { pt: 101, encoding: "telephone-event".into(), clock_rate: 8000, channels: None },
            ]
        );
        assert_eq!((m.conn, m.ptime_ms, m.rtcp_port), (None, Some(20), Some(4005)));
        assert_eq!(m.direction, Some(Direction::SendRecv));
        assert_eq!(crate::sip::media_addr(&s), Some((ip("10.0.0.1").unwrap(), 4000)));
    }

    #[test]
    fn media_connection_ipv6_and_override() {
        let s = parse(
            b"v=0\nc=IN IP6 2001:db8::1\nm=audio 5000 RTP/AVP 0\nc=IN IP6 2001:DB8::2/127\n\
              m=video 0 RTP/AVP 96\nm=audio 5002 RTP/SAVP 8\n",
        )
        .unwrap();
        assert_eq!(s.conn, ip("2001:db8::1"));
        assert_eq!(s.media.len(), 3);
        assert_eq!(s.media[0].conn, ip("2001:db8::2"));
        assert_eq!(s.media[1].conn, None);
        assert_eq!(s.media[2].proto, "RTP/SAVP");
        assert_eq!(crate::sip::media_addr(&s), Some((ip("2001:db8::2").unwrap(), 5000)));
    }

    #[test]
    fn directions_session_default_media_override() {
        let s = parse(b"v=0\r\nc=IN IP4 1.2.3.4\r\na=sendonly\r\nm=audio 1 RTP/AVP 0\r\nm=audio 2 RTP/AVP 0\r\na=inactive\r\nm=audio 3 RTP/AVP 0\r\na=recvonly\r\nm=audio 4 RTP/AVP 0\r\na=sendrecv\r\n").unwrap();
        assert_eq!(s.direction, Some(Direction::SendOnly));
        let d: Vec<_> = s.media.iter().map(|m| m.direction).collect();
        assert_eq!(
            d,
            vec![
                Some(Direction::SendOnly),
                Some(Direction::Inactive),
                Some(Direction::RecvOnly),
                Some(Direction::SendRecv)
            ]
        );
    }

    #[test]
    fn old_style_hold_kept_as_is() {
        let s = parse(b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 8\r\n").unwrap();
        assert_eq!(s.conn, ip("0.0.0.0"));
        assert_eq!(crate::sip::media_addr(&s), Some((ip("0.0.0.0").unwrap(), 4000)));
    }

    #[test]
    fn t38_image_and_odd_lines() {
        let s = parse(
            b"v=0\r\nc=IN IP4 fax.example.com\r\nm=image 6000 udptl t38\r\na=T38FaxVersion:0\r\n\
              m=audio port RTP/AVP 0\r\na=sendonly\r\nm=audio 7000/2 RTP/AVP 0 300 x 127\r\na=ptime:20.0\r\n\
              a=rtpmap:bad\r\na=rtpmap:0 PCMU\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:0 G729/8000\r\ngarbage\r\n",
        )
        .unwrap();
        // An FQDN in c= cannot be matched against packets.
        assert_eq!(s.conn, None);
        assert_eq!(s.media.len(), 2, "the unreadable m= line is dropped with its attributes");
        assert_eq!((s.media[0].kind.as_str(), s.media[0].proto.as_str()), ("image", "udptl"));
        assert!(s.media[0].formats.is_empty());
        let m = &s.media[1];
        assert_eq!((m.port, m.formats.clone(), m.ptime_ms), (7000, vec![0, 127], Some(20)));
        assert_eq!(m.direction, Some(Direction::SendRecv), "the sendonly belonged to the dropped m= line");
        assert_eq!(m.rtpmap.len(), 1);
        assert_eq!(m.rtpmap[0].encoding, "PCMU", "first rtpmap for a payload type wins");
    }

    #[test]
    fn session_ptime_is_a_default() {
        let s = parse(b"v=0\r\na=ptime:30\r\nm=audio 1 RTP/AVP 8\r\nm=audio 2 RTP/AVP 8\r\na=ptime:20\r\n").unwrap();
        assert_eq!(s.media.iter().map(|m| m.ptime_ms).collect::<Vec<_>>(), vec![Some(30), Some(20)]);
    }

    #[test]
    fn not_sdp() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"hello\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n"), None);
        assert_eq!(parse(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n"), None, "no media, no address");
        assert!(parse(b"\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n").is_some(), "blank lines first are fine");
        // A line that is not UTF-8 is skipped, the rest read.
        let s = parse(b"v=0\r\ns=\xff\xfe\r\nm=audio 9 RTP/AVP 0\r\n").unwrap();
        assert_eq!(s.media[0].port, 9);
    }

    /// A media section for the round-trip property.
    fn arb_media() -> impl Strategy<Value = (u16, Vec<u8>, Option<Direction>, Option<IpAddr>, Option<u32>)> {
        (
            any::<u16>(),
            proptest::collection::vec(0u8..=127, 0..6),
            proptest::option::of(prop_oneof![
                Just(Direction::SendRecv),
                Just(Direction::SendOnly),
                Just(Direction::RecvOnly),
                Just(Direction::Inactive)
            ]),
            proptest::option::of(any::<IpAddr>()),
            proptest::option::of(1u32..1000),
        )
    }

    fn dir_name(d: Direction) -> &'static str {
        match d {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn conn_line(a: IpAddr) -> String {
        match a {
            IpAddr::V4(v) => format!("c=IN IP4 {v}\r\n"),
            IpAddr::V6(v) => format!("c=IN IP6 {v}\r\n"),
        }
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&b);
            let mut v = b"v=0\r\n".to_vec();
            v.extend_from_slice(&b);
            let _ = parse(&v);
        }

        #[test]
        fn round_trip(conn in proptest::option::of(any::<IpAddr>()),
                      sdir in proptest::option::of(prop_oneof![Just(Direction::SendOnly), Just(Direction::Inactive)]),
                      media in proptest::collection::vec(arb_media(), 1..4)) {
            let mut text = String::from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n");
            if let Some(c) = conn { text.push_str(&conn_line(c)); }
            text.push_str("t=0 0\r\n");
            if let Some(d) = sdir { text.push_str(&format!("a={}\r\n", dir_name(d))); }
            for (port, fmts, dir, mconn, ptime) in &media {
                let f: Vec<String> = fmts.iter().map(u8::to_string).collect();
                text.push_str(&format!("m=audio {port} RTP/AVP {}\r\n", f.join(" ")));
                if let Some(c) = mconn { text.push_str(&conn_line(*c)); }
                for pt in fmts { text.push_str(&format!("a=rtpmap:{pt} X{pt}/8000\r\n")); }
                if let Some(d) = dir { text.push_str(&format!("a={}\r\n", dir_name(*d))); }
                if let Some(p) = ptime { text.push_str(&format!("a=ptime:{p}\r\n")); }
            }
            let s = parse(text.as_bytes()).unwrap();
            prop_assert_eq!(s.conn, conn);
            prop_assert_eq!(s.direction, sdir);
            prop_assert_eq!(s.media.len(), media.len());
            for (m, (port, fmts, dir, mconn, ptime)) in s.media.iter().zip(&media) {
                prop_assert_eq!(m.port, *port);
                prop_assert_eq!(&m.formats, fmts);
                prop_assert_eq!(m.conn, *mconn);
                prop_assert_eq!(m.ptime_ms, *ptime);
                prop_assert_eq!(m.direction, Some(dir.or(sdir).unwrap_or(Direction::SendRecv)));
                // Duplicate payload types keep their first rtpmap.
                let mut want: Vec<u8> = Vec::new();
                for pt in fmts { if !want.contains(pt) { want.push(*pt); } }
                prop_assert_eq!(m.rtpmap.iter().map(|r| r.pt).collect::<Vec<_>>(), want);
            }
        }
    }
}
