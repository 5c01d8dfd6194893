//! One HEP datagram as the listener hands it to the engine.
#![no_main]
use callwarden_core::config::Config;
use callwarden_core::{Engine, Frame, LinkType, Ts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut e) = Engine::new(&Config::default()) else { return };
    e.handle_frame(Frame { ts: Ts::from_micros(1_765_000_000_000_000), link: LinkType::Hep, bytes: data });
    while e.poll_output().is_some() {}
});
