//! The whole engine over a few frames of any link type: the first byte of each record
//! picks the link type, two bytes the time step, two the length. Decode, SIP, RTP, the
//! tracker, policy and the recording timeline all run; nothing may panic.
#![no_main]
use callwarden_core::config::Config;
use callwarden_core::{Dur, Engine, Frame, LinkType, Ts};
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkType; 10] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Hep,
    LinkType::Other(147),
];

fuzz_target!(|data: &[u8]| {
    let Ok(mut e) = Engine::new(&Config::default()) else { return };
    let mut ts = Ts::from_micros(1_765_000_000_000_000);
    let mut rest = data;
    while rest.len() >= 5 {
        let link = LINKS[usize::from(rest[0]) % LINKS.len()];
        ts = ts.saturating_add(Dur::from_millis(i64::from(u16::from_le_bytes([rest[1], rest[2]]))));
        let len = usize::from(u16::from_le_bytes([rest[3], rest[4]])).min(rest.len() - 5);
        let bytes = &rest[5..5 + len];
        rest = &rest[5 + len..];
        let f = e.believe(Frame { ts, link, bytes });
        while let Some(due) = e.poll_timeout().filter(|&d| d <= f.ts) {
            e.handle_timeout(due);
            while e.poll_output().is_some() {}
        }
        e.handle_frame(f);
        while e.poll_output().is_some() {}
    }
    e.finish(callwarden_core::track::EndReason::CaptureEnded);
    while e.poll_output().is_some() {}
});
