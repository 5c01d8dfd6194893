//! RTP / RTCP told apart and read.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = callwarden_core::rtp::classify(data);
});
