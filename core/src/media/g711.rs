//! G.711 μ-law (PCMU) and A-law (PCMA) → 16-bit linear PCM at 8 kHz, by lookup table.
//! Owns the two 256-entry tables, built at compile time from the ITU-T G.711 expansion
//! rules (the same arithmetic as Sun's reference `g711.c`, which sox uses).
//! May use: nothing. Invariants: total functions; one byte in, one sample out; a `u8`
//! index into a 256-entry table cannot go out of bounds.
//!
//! Why no crate: the decoder is two 256-entry tables; a dependency would add more than it
//! saves. Every one of the 512 entries is checked against sox in the tests below.

/// μ-law code → linear sample (range ±32124).
pub static ULAW_TO_LINEAR: [i16; 256] = build(false);
/// A-law code → linear sample (range ±32256).
pub static ALAW_TO_LINEAR: [i16; 256] = build(true);

const fn build(a_law: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if a_law { alaw_to_linear(i as u8) } else { ulaw_to_linear(i as u8) };
        i += 1;
    }
    t
}

/// G.711 μ-law expansion: codes are stored inverted; the 4-bit mantissa plus the bias
/// 0x84 is shifted by the 3-bit segment, then the bias is taken off again.
const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mantissa = ((u & 0x0f) as i32) << 3;
    let segment = ((u & 0x70) >> 4) as u32;
    let t = (mantissa + 0x84) << segment;
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

/// G.711 A-law expansion: even bits are inverted on the line (XOR 0x55); segment 0 is
/// linear, the others carry an implied leading one (0x100) and are shifted by segment-1.
/// The sign bit set means positive.
const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0f) as i32) << 4;
    let segment = ((a & 0x70) >> 4) as u32;
    if segment == 0 {
        t += 8;
    } else {
        t = (t + 0x108) << (segment - 1);
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

#[inline]
pub fn ulaw(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

#[inline]
pub fn alaw(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

/// Decode a μ-law payload, appending one sample per byte.
pub fn decode_ulaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&c| ulaw(c)));
}

/// Decode an A-law payload, appending one sample per byte.
pub fn decode_alaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&c| alaw(c)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<i16> {
        let path = format!("{}/tests/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(bytes.len() % 2, 0);
        bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
    }

    #[test]
    fn ulaw_all_256_codes_equal_sox() {
        let sox = fixture("ulaw-codes.s16");
        assert_eq!(sox.len(), 256);
        let mut ours = Vec::new();
        decode_ulaw(&(0..=255u8).collect::<Vec<_>>(), &mut ours);
        for code in 0..256 {
            assert_eq!(ours[code], sox[code], "μ-law code {code:#04x}");
        }
    }

    #[test]
    fn alaw_all_256_codes_equal_sox() {
        let sox = fixture("alaw-codes.s16");
        assert_eq!(sox.len(), 256);
        let mut ours = Vec::new();
        decode_alaw(&(0..=255u8).collect::<Vec<_>>(), &mut ours);
        for code in 0..256 {
            assert_eq!(ours[code], sox[code], "A-law code {code:#04x}");
        }
    }

    #[test]
    fn well_known_codes() {
        // Silence codes on the line: μ-law 0xFF/0x7F, A-law 0xD5/0x55.
        assert_eq!(ulaw(0xff), 0);
        assert_eq!(ulaw(0x7f), 0);
        assert_eq!(ulaw(0x00), -32124);
        assert_eq!(ulaw(0x80), 32124);
        assert_eq!(alaw(0xd5), 8);
        assert_eq!(alaw(0x55), -8);
        assert_eq!(alaw(0xaa), 32256);
        assert_eq!(alaw(0x2a), -32256);
    }

    #[test]
    fn sign_symmetric_and_monotone() {
        // Flipping the sign bit negates the value; within one sign, larger magnitude
        // codes decode to larger magnitudes (μ-law codes count down, A-law codes are
        // monotone after undoing the 0x55 inversion).
        for c in 0..=255u8 {
            assert_eq!(ulaw(c ^ 0x80), -ulaw(c), "μ-law {c:#04x}");
            assert_eq!(alaw(c ^ 0x80), -alaw(c), "A-law {c:#04x}");
        }
        for c in 0x80..0xffu8 {
            assert!(ulaw(c) > ulaw(c + 1), "μ-law {c:#04x}");
        }
        for m in 0..0x7fu8 {
            let (lo, hi) = ((m | 0x80) ^ 0x55, ((m + 1) | 0x80) ^ 0x55);
            assert!(alaw(lo) < alaw(hi), "A-law {lo:#04x}");
        }
    }
}
