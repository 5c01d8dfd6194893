//! Config parsing and validation: every error with a key and a line, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = callwarden_core::config::Config::parse(text) {
            let _ = callwarden_core::Engine::new(&cfg);
        }
    }
});
