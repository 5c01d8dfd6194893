//! The SDP parser and the media address taken from it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(sdp) = callwarden_core::sip::sdp::parse(data) {
        let _ = callwarden_core::sip::media_addr(&sdp);
    }
});
