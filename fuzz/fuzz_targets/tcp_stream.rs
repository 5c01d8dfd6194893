//! TCP reassembly and SIP framing: the input is cut into segments of one connection
//! (sequence offset, flags, payload), each wrapped in IPv4/TCP headers and fed in the
//! order given — out of order, overlapping, with gaps, resets and FINs.
#![no_main]
use callwarden_core::config::Config;
use callwarden_core::{Dur, Engine, Frame, LinkType, Ts};
use libfuzzer_sys::fuzz_target;

fn segment(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let total = 40 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    p.extend_from_slice(&5060u16.to_be_bytes());
    p.extend_from_slice(&5060u16.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0x50, flags & 0x3f, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    p
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut e) = Engine::new(&Config::default()) else { return };
    let mut ts = Ts::from_micros(1_765_000_000_000_000);
    let base = 1_000_000u32;
    let mut rest = data;
    while rest.len() >= 4 {
        let off = u32::from(u16::from_le_bytes([rest[0], rest[1]]));
        let flags = rest[2];
        let len = usize::from(rest[3]).min(rest.len() - 4);
        let pkt = segment(base.wrapping_add(off), flags, &rest[4..4 + len]);
        rest = &rest[4 + len..];
        ts = ts.saturating_add(Dur::from_millis(10));
        e.handle_frame(Frame { ts, link: LinkType::Ipv4, bytes: &pkt });
        while e.poll_output().is_some() {}
    }
    e.handle_timeout(ts.saturating_add(Dur::from_secs(3600)));
    while e.poll_output().is_some() {}
});
