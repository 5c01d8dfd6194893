//! The decoder over the real captures in tests/fixtures/public/ (see the README there).
//! Expected counts come from tshark 4.0 (`-Y sip -T fields -e sip.CSeq`) and from
//! shared/peers/hep_dump.py, not from this decoder.

use super::test_util::{Harness, Owned};
use super::{DecodeConfig, LinkType, PayloadHint, Transport};
use crate::counters::DropReason;
use crate::time::Ts;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::fs::File;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/public").join(name)
}

/// Every frame of a pcap or pcapng file (timestamps in µs; pcapng resolution ignored:
/// these tests do not look at capture time).
fn frames(name: &str) -> Vec<(Ts, LinkType, Vec<u8>)> {
    let path = fixture(name);
    let mut out = Vec::new();
    if name.ends_with(".pcapng") {
        let mut r = PcapNgReader::new(File::open(&path).unwrap()).unwrap();
        let mut links = Vec::new();
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => links.push(LinkType::from_number(u32::from(i.linktype))),
                Block::EnhancedPacket(p) => {
                    let link = links[p.interface_id as usize];
                    out.push((Ts(p.timestamp.as_nanos() as i64), link, p.data.to_vec()));
                }
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
        let link = LinkType::from_number(u32::from(r.header().datalink));
        let nanos = r.header().ts_resolution == pcap_file::TsResolution::NanoSecond;
        while let Some(p) = r.next_raw_packet() {
            let p = p.unwrap();
            out.push((Ts::from_parts(i64::from(p.ts_sec), p.ts_frac, nanos), link, p.data.to_vec()));
        }
    }
    out
}

/// Decode a whole file, checking the per-frame accounting on the way: a frame yields
/// datagrams or at most one drop (none only for the documented TCP/fragment cases).
fn run(name: &str, cfg: DecodeConfig) -> Harness {
    let mut h = Harness::with_config(cfg);
    for (ts, link, bytes) in frames(name) {
        let drops = h.counters.total_drops();
        let n = h.feed(link, ts.0, &bytes);
        let d = h.counters.total_drops() - drops;
        assert!(d <= 1, "{name}: a frame counted {d} drops");
        assert!(n == 0 || d == 0, "{name}: a frame both delivered and dropped");
    }
    h.decoder.expire(Ts::MAX, &mut h.counters);
    assert_eq!(h.decoder.pending(), (0, 0), "{name}: state left after expire(MAX)");
    assert_eq!(h.decoder.next_expiry(), None);
    h
}

fn is_sip_start(d: &Owned) -> bool {
    let line = d.payload.split(|&c| c == b'\n').next().unwrap_or_default();
    super::sip_frame::is_start_line(line)
}

fn cseq(d: &Owned) -> String {
    let text = String::from_utf8_lossy(&d.payload);
    let line = text.lines().find(|l| l.to_ascii_lowercase().starts_with("cseq:")).unwrap_or("");
    line[5..].trim().to_string()
}

#[test]
fn every_fixture_decodes() {
    let dir = fixture("");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert!(names.len() >= 22, "fixtures missing: {names:?}");
    for name in names {
        let n_frames = frames(&name).len() as u64;
        let h = run(&name, DecodeConfig::default());
        assert!(!h.out.is_empty(), "{name}: nothing decoded");
        assert!(h.counters.total_drops() < n_frames, "{name}: {:?}", h.counters.drops);
    }
}

#[test]
fn ipv6_fragments_reassembled() {
    let h = run("sip-ipv6-fragmented-udp-prack-update.pcap", DecodeConfig::default());
    let sip: Vec<&Owned> = h.out.iter().filter(|d| is_sip_start(d)).collect();
    assert_eq!(sip.len(), 32);
    assert_eq!(h.out.len(), 32);
    assert!(sip.iter().all(|d| d.src.is_ipv6()));
    // The two fragmented messages are the large INVITEs with SDP.
    assert!(sip.iter().any(|d| d.payload.len() > 1500 && d.payload.starts_with(b"INVITE ")));
    assert_eq!(h.counters.total_drops(), 0);
    assert_eq!(cseq(sip[5]), "2 PRACK");
}

#[test]
fn ip_in_ip_yields_the_inner_sip() {
    let h = run("sip-ipip-tunnel-invite-183-bye.pcap", DecodeConfig::default());
    assert_eq!(h.out.len(), 4);
    assert!(h.out.iter().all(is_sip_start));
    let h = run("sip-ipip-register-401-invite-403.pcap", DecodeConfig::default());
    assert_eq!(h.out.len(), 8);
    assert!(h.out.iter().all(is_sip_start));
    assert_eq!(h.out.iter().filter(|d| d.payload.starts_with(b"REGISTER ")).count(), 3);
}

#[test]
fn tcp_register_split_over_two_segments() {
    let h = run("sip-tcp-register-200.pcap", DecodeConfig::default());
    assert_eq!(h.out.len(), 2);
    assert!(h.out[0].payload.starts_with(b"REGISTER sip:"));
    assert!(h.out[1].payload.starts_with(b"SIP/2.0 200"));
    assert!(h.out.iter().all(|d| d.transport == Transport::Tcp));
    assert_eq!(cseq(&h.out[0]), cseq(&h.out[1]));
    assert_eq!(h.counters.total_drops(), 0);
}

/// The INVITE is 65,793 bytes (257 of headers, Content-Length 65536): over the default
/// 64 KiB cap it is skipped (counted `TcpStream` for each segment that only carried its
/// bytes) and the stream resyncs for the 100 Trying. With a larger cap it is delivered
/// whole.
#[test]
fn tcp_64k_invite_and_the_cap() {
    let h = run("sip-tcp-invite-64k-body-segmented.pcap", DecodeConfig::default());
    assert_eq!(h.out.len(), 1);
    assert!(h.out[0].payload.starts_with(b"SIP/2.0 100"));
    assert_eq!(h.counters.dropped(DropReason::TcpStream), 5);

    let cfg = DecodeConfig { tcp_max_message: 128 * 1024, ..DecodeConfig::default() };
    let h = run("sip-tcp-invite-64k-body-segmented.pcap", cfg);
    assert_eq!(h.out.len(), 2);
    assert!(h.out[0].payload.starts_with(b"INVITE "));
    assert_eq!(h.out[0].payload.len(), 65_793);
    assert!(h.out[1].payload.starts_with(b"SIP/2.0 100"));
    assert_eq!(h.counters.total_drops(), 0);
}

/// tshark -r gen-sipp-mixed-calls-tcp.pcap -Y sip -T fields -e sip.CSeq
const SIPP_TCP_CSEQ: &str = "1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|\
1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 ACK|1 ACK|\
1 INVITE|1 INVITE|1 INVITE|1 INVITE|1 ACK|1 INVITE|1 ACK|2 BYE|2 BYE|2 BYE|2 BYE|2 BYE|2 BYE|1 CANCEL|1 CANCEL|\
1 INVITE|1 ACK|1 INVITE|1 ACK|1 INVITE|1 ACK|2 BYE|2 BYE|2 BYE|2 BYE";

#[test]
fn sipp_over_tcp_one_datagram_per_message() {
    let h = run("gen-sipp-mixed-calls-tcp.pcap", DecodeConfig::default());
    let tcp: Vec<&Owned> = h.out.iter().filter(|d| d.transport == Transport::Tcp).collect();
    assert_eq!(tcp.len(), 47);
    let got: Vec<String> = tcp.iter().map(|d| cseq(d)).collect();
    assert_eq!(got.join("|"), SIPP_TCP_CSEQ);
    assert!(tcp.iter().all(|d| is_sip_start(d) && d.hint == PayloadHint::Sip));
    assert_eq!(h.counters.dropped(DropReason::TcpStream) + h.counters.dropped(DropReason::TcpNotSip), 0);
}

#[test]
fn kamailio_hep3_yields_94_sip_messages() {
    let h = run("gen-kamailio-hep3-only-udp9060.pcap", DecodeConfig::default());
    assert_eq!(h.out.len(), 94);
    assert_eq!(h.counters.hep_packets, 94);
    assert!(h.out.iter().all(|d| d.hint == PayloadHint::Sip && is_sip_start(d)));
    let invites = h.out.iter().filter(|d| d.payload.starts_with(b"INVITE ")).count();
    assert_eq!(invites, 14);
    // The inner addresses, not the HEP transport's (127.0.0.1:5062 -> 9060).
    assert!(h.out.iter().all(|d| d.dst.port() != 9060));
    assert_eq!(h.counters.total_drops(), 0);

    // The same run with the proxy's own traffic: 94 SIP messages on the wire + 94 in HEP.
    let h = run("gen-kamailio-proxy-calls-udp-with-hep3.pcap", DecodeConfig::default());
    assert_eq!(h.counters.hep_packets, 94);
    assert_eq!(h.out.iter().filter(|d| d.hint == PayloadHint::Sip).count(), 94);
    assert_eq!(h.out.iter().filter(|d| is_sip_start(d)).count(), 188);
}

#[test]
fn hep3_sample_with_logs_and_reports() {
    let h = run("hep3-sip-rtcp-log-udp9060.pcap", DecodeConfig::default());
    assert_eq!(h.out.len(), 6);
    assert!(h.out.iter().all(|d| d.hint == PayloadHint::Sip));
    assert_eq!(h.counters.dropped(DropReason::HepOtherPayload), 2);
    assert_eq!(h.out[0].ts, Ts(1_481_455_196_000_100));
    assert_eq!(h.out[0].src.to_string(), "192.168.1.1:5060");
    // Only capture id 2001 is in this file.
    let cfg = DecodeConfig { hep_capture_ids: vec![1], ..DecodeConfig::default() };
    let h = run("hep3-sip-rtcp-log-udp9060.pcap", cfg);
    assert_eq!(h.counters.dropped(DropReason::HepCaptureId), 8);
}

#[test]
fn hep3_compressed_payloads() {
    let h = run("hep3-compressed-payload.pcapng", DecodeConfig::default());
    assert_eq!(h.out.len(), 21);
    assert!(h.out.iter().all(|d| d.hint == PayloadHint::Sip && is_sip_start(d)));
    assert_eq!(h.counters.total_drops(), 0);
}

#[test]
fn pcapng_register() {
    let h = run("sip-register-401-200.pcapng", DecodeConfig::default());
    assert_eq!(h.out.iter().filter(|d| is_sip_start(d)).count(), 8);
    assert_eq!(h.out.len(), 30);
}

#[test]
fn classic_capture_counts() {
    // 691 frames: 44 ARP are not IP, 28 TCP segments (FTP control) are not SIP or carry
    // nothing; every UDP datagram is delivered (SIP, DNS, NBNS, RTP, ...).
    let h = run("sip-register-invite-cancel-auth-g711a.pcap", DecodeConfig::default());
    assert_eq!(h.out.iter().filter(|d| is_sip_start(d)).count(), 81);
    assert_eq!(h.counters.dropped(DropReason::NotIp), 44);
    let h = run("gen-synth-100-calls.pcap", DecodeConfig::default());
    assert_eq!(h.out.len(), 2700);
    assert_eq!(h.out.iter().filter(|d| is_sip_start(d)).count(), 700);
}

/// Cutting frames short anywhere, or flipping bytes, never panics and keeps the
/// one-drop-at-most accounting.
#[test]
fn damaged_frames_never_panic() {
    for name in
        ["sip-tcp-register-200.pcap", "sip-ipv6-fragmented-udp-prack-update.pcap", "hep3-compressed-payload.pcapng"]
    {
        let all = frames(name);
        let mut h = Harness::default();
        for (i, (ts, link, bytes)) in all.iter().enumerate() {
            for cut in (0..bytes.len()).step_by(7) {
                let before = h.counters.total_drops();
                let n = h.feed(*link, ts.0, &bytes[..cut]);
                assert!(h.counters.total_drops() - before <= 1 && (n == 0 || h.counters.total_drops() == before));
            }
            let mut flipped = bytes.clone();
            for j in (0..flipped.len()).step_by(5) {
                flipped[j] ^= (i + j) as u8 | 1;
            }
            h.feed(*link, ts.0, &flipped);
        }
        h.decoder.expire(Ts::MAX, &mut h.counters);
    }
}
