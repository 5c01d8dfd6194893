//! G.722 (ITU-T G.722, 64 kbit/s mode) → 16-bit linear PCM at 16 kHz: two ADPCM sub-bands
//! (lower 6 bits: low band, upper 2 bits: high band) recombined by the receive QMF.
//! Owns the decoder state of one RTP stream. May use: nothing.
//! Invariants: every byte decodes to exactly two samples; any byte sequence is valid input
//! (all table indexes are masked to their table's size and every intermediate is limited
//! as the Recommendation limits it, so nothing can overflow or panic).
//!
//! Why not a crate: the two maintained Rust decoders did not fit the core crate.
//! `ezk-g722` pulls in the ezk media framework and tokio (the core has no async runtime);
//! `audio-codec` needs Rust 1.89 (the workspace builds with 1.85) and brings SIMD and
//! codec dependencies along. The algorithm below follows the block structure of the
//! Recommendation (block names in the comments, as in SpanDSP's public-domain decoder);
//! its output is checked sample for sample against FFmpeg's decoder, which FFmpeg states
//! passes the ITU-T test sequences.
//!
//! Only the 64 kbit/s mode is decoded: RTP G.722 (RFC 3551 payload type 9) is that mode.

/// Inverse quantiser for the 6-bit low-band code (INVQBL, Table 6/G.722, scaled).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360, -8576,
    -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688, -1360, -1040,
    -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
    4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Inverse quantiser for the 4-bit truncated low-band code (INVQAL), used for prediction.
const QM4: [i32; 16] =
    [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0];
/// Inverse quantiser for the 2-bit high-band code (INVQAH).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// 4-bit low-band code → magnitude class for the log scale factor (LOGSCL).
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Log scale factor multipliers, low band.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// 2-bit high-band code → magnitude class (LOGSCH).
const RH2: [usize; 4] = [2, 1, 2, 1];
/// Log scale factor multipliers, high band.
const WH: [i32; 3] = [0, -214, 798];
/// Inverse log2 table for the scale factor (SCALEL / SCALEH).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025,
    3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Receive QMF coefficients (half of the symmetric 24-tap filter).
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

#[inline]
fn sat16(v: i32) -> i32 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// The adaptive predictor and scale factor of one sub-band.
#[derive(Clone, Debug)]
struct Band {
    /// Signal estimate (pole + zero predictor output).
    s: i32,
    /// Pole section output.
    sp: i32,
    /// Zero section output.
    sz: i32,
    /// Reconstructed signal, current and two past.
    r: [i32; 3],
    /// Pole coefficients (index 1, 2 used), and their next values.
    a: [i32; 3],
    ap: [i32; 3],
    /// Partially reconstructed signal, current and two past.
    p: [i32; 3],
    /// Quantised difference signal, current and six past.
    d: [i32; 7],
    /// Zero coefficients (index 1..=6 used), and their next values.
    b: [i32; 7],
    bp: [i32; 7],
    /// Signs (as 0 / -1) used by the coefficient updates.
    sg: [i32; 7],
    /// Log scale factor.
    nb: i32,
    /// Scale factor.
    det: i32,
}

impl Band {
    fn new(det: i32) -> Band {
        Band {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 3],
            a: [0; 3],
            ap: [0; 3],
            p: [0; 3],
            d: [0; 7],
            b: [0; 7],
            bp: [0; 7],
            sg: [0; 7],
            nb: 0,
            det,
        }
    }

    /// Scale factor adaptation (LOGSCL/LOGSCH then SCALEL/SCALEH): `wl` is the multiplier
    /// for this code, `limit` the top of the log scale factor, `shift` 8 (low) or 10 (high).
    fn adapt_scale(&mut self, wl: i32, limit: i32, shift: i32) {
        let nb = ((self.nb * 127) >> 7) + wl;
        self.nb = nb.clamp(0, limit);
        // nb ≤ 22528, so nb >> 11 ≤ 11 and the shift stays within -1..=10.
        let mant = ILB[((self.nb >> 6) & 31) as usize];
        let sh = shift - (self.nb >> 11);
        let wd3 = if sh < 0 { mant << -sh } else { mant >> sh };
        self.det = wd3 << 2;
    }

    /// Block 4: reconstruction, pole and zero predictor adaptation and prediction, with
    /// the quantised difference `d` of this sample.
    fn block4(&mut self, d: i32) {
        // RECONS and PARREC
        self.d[0] = d;
        self.r[0] = sat16(self.s + d);
        self.p[0] = sat16(self.sz + d);

        // UPPOL2: second pole coefficient
        for i in 0..3 {
            self.sg[i] = self.p[i] >> 15;
        }
        let wd1 = sat16(self.a[1] << 2);
        let wd2 = if self.sg[0] == self.sg[1] { -wd1 } else { wd1 }.min(32767);
        let mut wd3 = (wd2 >> 7) + if self.sg[0] == self.sg[2] { 128 } else { -128 };
        wd3 += (self.a[2] * 32512) >> 15;
        self.ap[2] = wd3.clamp(-12288, 12288);

        // UPPOL1: first pole coefficient, limited by the second
        self.sg[0] = self.p[0] >> 15;
        self.sg[1] = self.p[1] >> 15;
        let wd1 = if self.sg[0] == self.sg[1] { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        let lim = sat16(15360 - self.ap[2]);
        self.ap[1] = sat16(wd1 + wd2).clamp(-lim, lim);

        // UPZERO: zero coefficients
        let step = if d == 0 { 0 } else { 128 };
        self.sg[0] = d >> 15;
        for i in 1..7 {
            self.sg[i] = self.d[i] >> 15;
            let wd2 = if self.sg[i] == self.sg[0] { step } else { -step };
            let wd3 = (self.b[i] * 32640) >> 15;
            self.bp[i] = sat16(wd2 + wd3);
        }

        // DELAYA: shift the delay lines, take the new coefficients
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
            self.b[i] = self.bp[i];
        }
        for i in (1..3).rev() {
            self.r[i] = self.r[i - 1];
            self.p[i] = self.p[i - 1];
            self.a[i] = self.ap[i];
        }

        // FILTEP: pole section
        let wd1 = (self.a[1] * sat16(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * sat16(self.r[2] + self.r[2])) >> 15;
        self.sp = sat16(wd1 + wd2);

        // FILTEZ: zero section
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * sat16(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = sat16(sz);

        // PREDIC
        self.s = sat16(self.sp + self.sz);
    }
}

/// G.722 decoder for one stream (64 kbit/s, 16 kHz output).
#[derive(Clone, Debug)]
pub struct G722Decoder {
    low: Band,
    high: Band,
    /// Receive QMF delay line: pairs of (rlow + rhigh, rlow - rhigh), oldest first.
    x: [i32; 24],
}

impl Default for G722Decoder {
    fn default() -> Self {
        G722Decoder::new()
    }
}

impl G722Decoder {
    pub fn new() -> G722Decoder {
        G722Decoder { low: Band::new(32), high: Band::new(8), x: [0; 24] }
    }

    /// Decode one byte (one 8 kHz codeword) into two 16 kHz samples, in time order.
    pub fn decode_byte(&mut self, code: u8) -> [i16; 2] {
        let ilow = usize::from(code & 0x3f);
        let ihigh = usize::from(code >> 6);

        // Low band: INVQBL (6-bit) for the output, RECONS, LIMIT
        let dlow = (self.low.det * QM6[ilow]) >> 15;
        let rlow = (self.low.s + dlow).clamp(-16384, 16383);
        // INVQAL (4-bit) for the predictor, then LOGSCL/SCALEL and block 4
        let ilow4 = ilow >> 2;
        let dlowt = (self.low.det * QM4[ilow4]) >> 15;
        self.low.adapt_scale(WL[RL42[ilow4]], 18432, 8);
        self.low.block4(dlowt);

        // High band: INVQAH, RECONS, LIMIT, LOGSCH/SCALEH and block 4
        let dhigh = (self.high.det * QM2[ihigh]) >> 15;
        let rhigh = (dhigh + self.high.s).clamp(-16384, 16383);
        self.high.adapt_scale(WH[RH2[ihigh]], 22528, 10);
        self.high.block4(dhigh);

        // Receive QMF: two output samples from the 24-tap filter
        self.x.copy_within(2.., 0);
        self.x[22] = rlow + rhigh;
        self.x[23] = rlow - rhigh;
        let (mut xout1, mut xout2) = (0i32, 0i32);
        for i in 0..12 {
            xout2 += self.x[2 * i] * QMF[i];
            xout1 += self.x[2 * i + 1] * QMF[11 - i];
        }
        [sat16(xout1 >> 11) as i16, sat16(xout2 >> 11) as i16]
    }

    /// Decode a payload, appending two samples per byte.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &c in payload {
            out.extend_from_slice(&self.decode_byte(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn pcm(name: &str) -> Vec<i16> {
        read(name).chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
    }

    fn check_against_ffmpeg(bitstream: &str, reference: &str) {
        let bits = read(bitstream);
        let want = pcm(reference);
        assert_eq!(want.len(), bits.len() * 2, "reference length");
        let mut got = Vec::new();
        G722Decoder::new().decode(&bits, &mut got);
        assert_eq!(got.len(), want.len());
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!("{bitstream}: first difference at sample {i}: ours {} ffmpeg {}", got[i], want[i]);
        }
    }

    #[test]
    fn speech_bit_exact_with_ffmpeg() {
        check_against_ffmpeg("speech.g722", "speech-g722-ffmpeg.s16");
    }

    #[test]
    fn random_bitstream_bit_exact_with_ffmpeg() {
        check_against_ffmpeg("random.g722", "random-g722-ffmpeg.s16");
    }

    #[test]
    fn decoding_in_pieces_equals_decoding_at_once() {
        let bits = read("speech.g722");
        let mut whole = Vec::new();
        G722Decoder::new().decode(&bits, &mut whole);
        let mut pieces = Vec::new();
        let mut dec = G722Decoder::new();
        for chunk in bits.chunks(160) {
            dec.decode(chunk, &mut pieces);
        }
        assert_eq!(whole, pieces);
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut out = Vec::new();
            G722Decoder::new().decode(&bytes, &mut out);
            prop_assert_eq!(out.len(), bytes.len() * 2);
        }
    }
}
