//! How long `sip::parse` and `rtp::classify` take, on the SIP and RTP of real captures.
//! `cargo bench -p callwarden-core --bench sip_parse` prints ns per message. A plain timing
//! loop (no criterion: one figure for the report is all we need, and it builds in seconds).

use callwarden_core::{rtp, sip};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

/// UDP payloads of an Ethernet/IPv4 pcap in tests/fixtures/public/.
fn udp_payloads(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/public").join(name);
    let bytes = std::fs::read(&path).expect("fixture");
    let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).expect("pcap");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.expect("packet");
        let payload = match etherparse::SlicedPacket::from_ethernet(&p.data) {
            Ok(etherparse::SlicedPacket { transport: Some(etherparse::TransportSlice::Udp(u)), .. }) => {
                u.payload().to_vec()
            }
            _ => continue,
        };
        out.push(payload);
    }
    out
}

fn time<T>(label: &str, items: &[T], rounds: usize, mut f: impl FnMut(&T)) {
    for it in items {
        f(it); // warm up
    }
    let start = Instant::now();
    for _ in 0..rounds {
        for it in items {
            f(it);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (rounds * items.len()) as f64;
    println!("{label:<48} {:>6} msgs  {ns:>8.0} ns/msg", items.len());
}

fn main() {
    let mut all = Vec::new();
    for c in [
        "gen-sipp-mixed-calls-udp.pcap",
        "sip-register-invite-cancel-auth-g711a.pcap",
        "sip-t38-fax-calls-g711a-rtp.pcap",
    ] {
        all.extend(udp_payloads(c).into_iter().filter(|p| sip::looks_like_sip(p)));
    }
    let with_sdp: Vec<_> = all.iter().filter(|p| sip::parse(p).is_ok_and(|m| m.sdp.is_some())).cloned().collect();
    let fallback: Vec<_> = all.iter().map(|p| String::from_utf8_lossy(p).replace("\r\n", "\n").into_bytes()).collect();
    assert!(fallback.iter().all(|p| sip::parse(p).is_ok_and(|m| m.parsed_by == sip::ParsedBy::Fallback)));
    let rounds = 200;
    time("sip::parse, real messages (rsip reader)", &all, rounds, |p| {
        black_box(sip::parse(black_box(p)).ok());
    });
    time("sip::parse, real messages with SDP (rsip reader)", &with_sdp, rounds, |p| {
        black_box(sip::parse(black_box(p)).ok());
    });
    time("sip::parse, same messages with LF ends (fallback)", &fallback, rounds, |p| {
        black_box(sip::parse(black_box(p)).ok());
    });
    let rtp: Vec<_> = udp_payloads("sipp-g711a-rtp-only.pcap");
    time("rtp::classify, G.711 packets", &rtp, 20_000, |p| {
        black_box(rtp::classify(black_box(p)));
    });
}
