//! WAV repair (`callwarden_core::media::wav::plan_repair`, which the recorder applies to a
//! file a crash left half-written): the input is the whole file. The plan is applied in
//! memory as `sink::recorder::wav::repair` applies it to the file (cut to `new_len`, then
//! the two size fields). The plan lives in core, not in the daemon crate, so that this
//! target neither builds the daemon (SQLite, libpcap, the HTTP stack) under the fuzzer nor
//! pays a temporary file per execution. Checked: never a panic; a patched file opens with
//! hound with the format the plan names; its data is whole frames, never more than the
//! input had, byte for byte the input's; a second repair changes nothing.
#![no_main]
use callwarden_core::media::wav::{plan_repair, Plan, HEAD_BYTES};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let head = &data[..data.len().min(HEAD_BYTES)];
    let p = match plan_repair(head, len) {
        // Refused: the daemon leaves the file as it is.
        Err(_) => return,
        // Only a file wholly read, ending inside its header, is rewritten as empty.
        Ok(Plan::Empty) => {
            assert!(data.len() <= HEAD_BYTES);
            return;
        }
        Ok(Plan::Patch(p)) => p,
    };
    assert!(p.new_len <= len, "the repair never grows a file");
    assert!(p.data_offset <= p.new_len);
    let align = u64::from(p.block_align);
    assert_eq!(p.data_bytes() % align, 0, "whole frames only");
    assert_eq!(p.data_bytes() / align, p.frames);
    let mut out = data[..p.new_len as usize].to_vec();
    for (at, bytes) in p.writes() {
        out[at as usize..at as usize + 4].copy_from_slice(&bytes);
    }
    let mut r = match hound::WavReader::new(Cursor::new(&out[..])) {
        Ok(r) => r,
        Err(e) => panic!("hound refuses the repaired file: {e} ({p:?})"),
    };
    let spec = r.spec();
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (p.channels, p.sample_rate, 16));
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_eq!(u64::from(r.len()), p.frames * u64::from(p.channels));
    // The samples are the input's bytes, untouched.
    let input = &data[p.data_offset as usize..p.new_len as usize];
    for (i, s) in r.samples::<i16>().enumerate() {
        let s = s.expect("a sample of the repaired file");
        assert_eq!(s.to_le_bytes(), [input[2 * i], input[2 * i + 1]]);
    }
    // A repaired file is whole: repairing it again is a no-op.
    let again = plan_repair(&out[..out.len().min(HEAD_BYTES)], out.len() as u64);
    match again {
        Ok(Plan::Patch(q)) => {
            assert_eq!((q.new_len, q.frames, q.header_frames), (p.new_len, p.frames, p.frames))
        }
        other => panic!("a repaired file repairs to {other:?}"),
    }
});
