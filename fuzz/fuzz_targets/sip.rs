//! The SIP parser (rsip, then the tolerant fallback).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = callwarden_core::sip::looks_like_sip(data);
    if let Ok(m) = callwarden_core::sip::parse(data) {
        let _ = (m.kind_label(), m.top_branch(), m.status());
    }
});
