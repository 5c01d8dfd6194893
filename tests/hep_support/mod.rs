//! HEPv3 datagrams for the daemon tests that feed a live HEP listener (tests/daemon.rs,
//! tests/central.rs): a real Kamailio capture's datagrams moved to the wall clock, and
//! restamping one as an agent (or a forger) would.
#![allow(dead_code, reason = "each test file uses a different part of this module")]

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// HEPv3 datagrams of a real Kamailio capture (tests/fixtures/sipp/kamailio-hep.pcap): the
/// UDP payload of each frame, from its "HEP3" magic on.
pub fn hep_datagrams() -> Vec<Vec<u8>> {
    let mut cap =
        callwarden::capture::file::FileCapture::open(&repo().join("tests/fixtures/sipp/kamailio-hep.pcap")).unwrap();
    let mut out = Vec::new();
    while let Some(f) = cap.next_frame().unwrap() {
        if let Some(at) = f.bytes.windows(4).position(|w| w == b"HEP3") {
            out.push(f.bytes[at..].to_vec());
        }
    }
    // Move the packets' own times (chunks 9: seconds, 10: µs) to now, as a live mirror
    // would stamp them: the daemon's timers run on the wall clock.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let first = out.first().and_then(|p| hep_seconds(p)).unwrap();
    for p in &mut out {
        let mut at = 6;
        while at + 6 <= p.len() {
            let kind = u16::from_be_bytes([p[at + 2], p[at + 3]]);
            let len = usize::from(u16::from_be_bytes([p[at + 4], p[at + 5]]));
            if kind == 9 && len == 10 {
                let old = u32::from_be_bytes(p[at + 6..at + 10].try_into().unwrap());
                p[at + 6..at + 10].copy_from_slice(&(now + old - first).to_be_bytes());
            }
            at += len.max(6);
        }
    }
    out
}

pub fn hep_seconds(p: &[u8]) -> Option<u32> {
    let mut at = 6;
    while at + 6 <= p.len() {
        let kind = u16::from_be_bytes([p[at + 2], p[at + 3]]);
        let len = usize::from(u16::from_be_bytes([p[at + 4], p[at + 5]]));
        if kind == 9 && len == 10 {
            return Some(u32::from_be_bytes(p[at + 6..at + 10].try_into().ok()?));
        }
        at += len.max(6);
    }
    None
}

/// Set a HEP packet's own time (chunks 9 and 10), as an agent stamping it would.
pub fn restamp(p: &mut [u8], secs: u32, usecs: u32) {
    let mut at = 6;
    while at + 6 <= p.len() {
        let kind = u16::from_be_bytes([p[at + 2], p[at + 3]]);
        let len = usize::from(u16::from_be_bytes([p[at + 4], p[at + 5]]));
        match (kind, len) {
            (9, 10) => p[at + 6..at + 10].copy_from_slice(&secs.to_be_bytes()),
            (10, 10) => p[at + 6..at + 10].copy_from_slice(&usecs.to_be_bytes()),
            _ => {}
        }
        at += len.max(6);
    }
}
