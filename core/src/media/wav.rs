//! The byte-level repair of a recording's WAV file (RIFF/WAVE, 16-bit PCM, as hound writes
//! it) that a crash left half-written: from the first bytes of the file and its length,
//! `plan_repair` decides what the file becomes — cut to whole frames with its RIFF and
//! data sizes set to the bytes present (`Plan::Patch`), rewritten as an empty WAV when it
//! ends inside its own header (`Plan::Empty`), or left alone (`WavError`).
//! Pure (bytes in, a plan out): the daemon's recorder applies the plan to the file; it
//! lives here so that the fuzz target runs the very code the daemon runs, in memory, at
//! full speed, without building the daemon crate (SQLite, libpcap, the HTTP stack) under
//! the fuzzer.
//! Invariants: a header is accepted only when hound would read it the same way (the same
//! fmt chunk sizes, no odd-sized or `fact` chunk that hound would walk differently), so a
//! patched file always opens with hound; the data keeps every byte it had up to the last
//! whole frame and never grows; a file that is not a WAV is never touched.

/// How many bytes at the start of a file `plan_repair` reads: the recorder's header is
/// 44 bytes; a header longer than this is not one of ours.
pub const HEAD_BYTES: usize = 4096;

/// KSDATAFORMAT_SUBTYPE_PCM, the sub-format GUID of a WAVE_FORMAT_EXTENSIBLE PCM file.
const SUBTYPE_PCM: [u8; 16] =
    [0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a WAV file (no RIFF/WAVE header): left as it is")]
    NotWav,
    #[error("unsupported WAV header: {0}")]
    Unsupported(String),
}

/// What to do to the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The file ends inside its header (a crash before the first flush reached the disk):
    /// it holds no sample; rewrite it as an empty WAV.
    Empty,
    Patch(Patch),
}

/// Cut the file to `new_len` bytes, then write `writes()`: the RIFF size and the data size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub sample_rate: u32,
    pub channels: u16,
    pub block_align: u16,
    /// Where the samples start (just after the data chunk's size field).
    pub data_offset: u64,
    /// Frames the header said, and frames in the file after the repair.
    pub header_frames: u64,
    pub frames: u64,
    pub new_len: u64,
}

impl Patch {
    /// Data bytes after the repair (whole frames only).
    pub fn data_bytes(&self) -> u64 {
        self.new_len - self.data_offset
    }

    /// The two size fields to write, as (offset, little-endian bytes).
    pub fn writes(&self) -> [(u64, [u8; 4]); 2] {
        // Both fit in u32: `plan_repair` keeps new_len <= u32::MAX.
        let riff = u32::try_from(self.new_len - 8).unwrap_or(u32::MAX);
        let data = u32::try_from(self.data_bytes()).unwrap_or(u32::MAX);
        [(4, riff.to_le_bytes()), (self.data_offset - 4, data.to_le_bytes())]
    }
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// Where the samples start and how a frame is laid out.
struct Layout {
    data_offset: u64,
    data_size_field: u64,
    channels: u16,
    rate: u32,
    block_align: u16,
}

fn unsupported(what: impl Into<String>) -> WavError {
    WavError::Unsupported(what.into())
}

/// Check a fmt chunk's body the way hound's reader does, for 16-bit integer PCM only.
/// Returns (channels, rate, block align).
fn check_fmt(body: &[u8], size: u32) -> Result<(u16, u32, u16), WavError> {
    let field16 = |at| le16(body, at).ok_or_else(|| unsupported("fmt chunk cut short"));
    let field32 = |at| le32(body, at).ok_or_else(|| unsupported("fmt chunk cut short"));
    let (tag, channels, rate, byte_rate, block_align, bits) =
        (field16(0)?, field16(2)?, field32(4)?, field32(8)?, field16(12)?, field16(14)?);
    // 1 = PCM (hound reads a 16, 18 or 40-byte chunk), 0xFFFE = WAVE_FORMAT_EXTENSIBLE
    // (exactly 40 bytes: hound reads 40 and does not skip the rest).
    let extensible = match (tag, size) {
        (1, 16 | 18 | 40) => false,
        (0xFFFE, 40) => true,
        _ => return Err(unsupported(format!("format {tag:#x} with a {size}-byte fmt chunk"))),
    };
    if bits != 16 || channels == 0 || rate == 0 {
        return Err(unsupported(format!("{channels} channel(s), {rate} Hz, {bits} bits")));
    }
    if u32::from(block_align) != u32::from(channels) * 2 {
        return Err(unsupported(format!("block align {block_align} for {channels} channels")));
    }
    if Some(byte_rate) != u32::from(block_align).checked_mul(rate) {
        return Err(unsupported(format!("byte rate {byte_rate} for {rate} Hz × {block_align}")));
    }
    if extensible {
        let (cb_size, valid_bits) = (field16(16)?, field16(18)?);
        // hound takes the valid bits, when not 0, as the sample size.
        if cb_size != 22 || !(valid_bits == 0 || valid_bits == 16) || body.get(24..40) != Some(&SUBTYPE_PCM[..]) {
            return Err(unsupported("WAVE_FORMAT_EXTENSIBLE other than 16-bit PCM"));
        }
    }
    Ok((channels, rate, block_align))
}

/// Walk the chunks of a RIFF/WAVE header up to the `data` chunk. `Ok(None)`: the bytes
/// end before the data chunk's header does.
fn parse_header(head: &[u8]) -> Result<Option<Layout>, WavError> {
    let magic = b"RIFF\0\0\0\0WAVE";
    let known = |r: std::ops::Range<usize>| head.get(r.clone()).map(|h| h == &magic[r]);
    // A file shorter than 12 bytes is a header cut short only if it starts like one.
    let n = head.len().min(12);
    if known(0..n.min(4)) == Some(false) || (n > 8 && known(8..n) == Some(false)) {
        return Err(WavError::NotWav);
    }
    if head.len() < 12 {
        return Ok(None);
    }
    let mut pos = 12usize;
    let mut fmt: Option<(u16, u32, u16)> = None;
    loop {
        let (Some(id), Some(size)) = (head.get(pos..pos + 4), le32(head, pos + 4)) else { return Ok(None) };
        let body = pos + 8;
        if id == b"data" {
            let Some((channels, rate, block_align)) = fmt else {
                return Err(unsupported("data chunk before the fmt chunk"));
            };
            return Ok(Some(Layout {
                data_offset: body as u64,
                data_size_field: u64::from(size),
                channels,
                rate,
                block_align,
            }));
        }
        if id == b"fmt " {
            if size > 40 {
                return Err(unsupported(format!("a {size}-byte fmt chunk")));
            }
            // Cut inside the fmt chunk: a header cut short, not a bad one.
            let Some(bytes) = head.get(body..body + size as usize) else { return Ok(None) };
            fmt = Some(check_fmt(bytes, size)?);
        } else if id == b"fact" && size != 4 {
            // hound reads 4 bytes of a fact chunk and goes on after them, whatever its size.
            return Err(unsupported(format!("a {size}-byte fact chunk")));
        } else if size % 2 == 1 {
            // RIFF pads an odd chunk to even; hound does not skip the pad byte.
            return Err(unsupported(format!("an odd-sized ({size}) chunk before the data")));
        }
        match body.checked_add(size as usize) {
            Some(n) => pos = n,
            None => return Ok(None),
        }
    }
}

/// What the repair of a file of `len` bytes whose first bytes are `head` (the first
/// `min(len, HEAD_BYTES)` bytes) must do.
pub fn plan_repair(head: &[u8], len: u64) -> Result<Plan, WavError> {
    let whole = head.len() as u64 >= len;
    let layout = match parse_header(head)? {
        Some(l) => l,
        // The whole file is a prefix of a header: no sample was ever on disk.
        None if whole => return Ok(Plan::Empty),
        None => return Err(unsupported(format!("no data chunk in the first {} bytes", head.len()))),
    };
    let align = u64::from(layout.block_align);
    // hound counts data bytes in a u32, as the RIFF header does.
    let max_data = (u64::from(u32::MAX) - layout.data_offset) / align * align;
    let data = (len.saturating_sub(layout.data_offset) / align * align).min(max_data);
    Ok(Plan::Patch(Patch {
        sample_rate: layout.rate,
        channels: layout.channels,
        block_align: layout.block_align,
        data_offset: layout.data_offset,
        header_frames: layout.data_size_field / align,
        frames: data / align,
        new_len: layout.data_offset + data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The 44-byte header hound writes for stereo 16-bit PCM.
    fn header(rate: u32, data: u32) -> Vec<u8> {
        let mut h = b"RIFF".to_vec();
        h.extend((36 + data).to_le_bytes());
        h.extend(b"WAVEfmt ");
        h.extend(16u32.to_le_bytes());
        h.extend(1u16.to_le_bytes());
        h.extend(2u16.to_le_bytes());
        h.extend(rate.to_le_bytes());
        h.extend((rate * 4).to_le_bytes());
        h.extend(4u16.to_le_bytes());
        h.extend(16u16.to_le_bytes());
        h.extend(b"data");
        h.extend(data.to_le_bytes());
        h
    }

    #[test]
    fn a_crashed_file_is_cut_to_whole_frames() {
        let h = header(8000, 0);
        let plan = plan_repair(&h, 44 + 4 * 100 + 3).unwrap();
        let Plan::Patch(p) = plan else { panic!("{plan:?}") };
        assert_eq!((p.sample_rate, p.channels, p.header_frames, p.frames, p.new_len), (8000, 2, 0, 100, 444));
        assert_eq!(p.writes(), [(4, 436u32.to_le_bytes()), (40, 400u32.to_le_bytes())]);
    }

    #[test]
    fn a_prefix_of_a_header_is_empty_and_garbage_is_not_a_wav() {
        let h = header(16000, 0);
        for n in 0..44 {
            assert_eq!(plan_repair(&h[..n], n as u64), Ok(Plan::Empty), "cut at {n}");
        }
        assert_eq!(plan_repair(b"hello", 5), Err(WavError::NotWav));
        assert_eq!(plan_repair(b"RIFF\0\0\0\0AVI ", 12), Err(WavError::NotWav));
        // Not the whole file: a header longer than we read is not ours.
        assert!(matches!(plan_repair(&h[..30], 1_000_000), Err(WavError::Unsupported(_))));
    }

    #[test]
    fn headers_hound_would_read_otherwise_are_refused() {
        let mut h = header(8000, 0);
        h[16] = 20; // a 20-byte fmt chunk: hound refuses it
        assert!(matches!(plan_repair(&h, 100), Err(WavError::Unsupported(_))));
        let mut h = header(8000, 0);
        h[28] ^= 1; // byte rate inconsistent with rate × block align
        assert!(matches!(plan_repair(&h, 100), Err(WavError::Unsupported(_))));
    }

    proptest! {
        /// Never panics; a patch never grows the data and keeps whole frames.
        #[test]
        fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), riff in any::<bool>(), extra in 0u64..10_000) {
            let mut b = bytes;
            if riff && b.len() >= 12 {
                b[..4].copy_from_slice(b"RIFF");
                b[8..12].copy_from_slice(b"WAVE");
            }
            let len = b.len() as u64 + extra;
            if let Ok(Plan::Patch(p)) = plan_repair(&b, len) {
                prop_assert!(p.new_len <= len && p.data_bytes() % u64::from(p.block_align) == 0);
            }
        }
    }
}
