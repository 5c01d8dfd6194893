//! One recording's WAV file: stereo, 16-bit PCM at the recording's rate, written with
//! hound as the audio comes (`WavFile`), its header brought up to date at every flush so
//! that a crash leaves a file that plays up to the last flush; the repair of a file left
//! half-written (`repair`, which applies the plan of `callwarden_core::media::wav`); and
//! the SHA-256 of a finished file (`sha256_file`).
//! Invariants: the data chunk holds whole frames only; the file never passes hound's
//! 4 GiB limit (audio beyond `MAX_FRAMES` is refused and counted by the caller); memory
//! per file is the write buffer (`WRITE_BUFFER`) plus hound's sample buffer for at most
//! `CHUNK_FRAMES` frames, whatever the size of the blocks written.

use callwarden_core::media::wav::{plan_repair, Plan, WavError, HEAD_BYTES};
use hound::{SampleFormat, WavSpec, WavWriter};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes buffered before a write to the file.
pub const WRITE_BUFFER: usize = 8192;
/// Frames handed to hound at a time (its sample buffer grows to this, never more).
pub const CHUNK_FRAMES: usize = 1024;
/// Bytes per stereo 16-bit frame.
pub const FRAME_BYTES: u64 = 4;
/// The most frames a file takes: hound counts data bytes in a u32 (as the RIFF header
/// does); some room is left for the header. About 37 hours at 8 kHz, 18 at 16 kHz.
pub const MAX_FRAMES: u64 = (u32::MAX as u64 - 4096) / FRAME_BYTES;
/// Bytes hound writes before the data for a 2-channel 16-bit file (RIFF, fmt, data).
pub const HEADER_BYTES: u64 = 44;

pub fn spec(rate: u32) -> WavSpec {
    WavSpec { channels: 2, sample_rate: rate, bits_per_sample: 16, sample_format: SampleFormat::Int }
}

/// A WAV being written.
pub struct WavFile {
    w: WavWriter<BufWriter<File>>,
    frames: u64,
    last_flush: Instant,
    dirty: bool,
}

impl WavFile {
    /// Create (or truncate) the file and put a valid, empty header on disk at once, so a
    /// crash at any point after this leaves a file the repair can read.
    pub fn create(path: &Path, rate: u32) -> hound::Result<WavFile> {
        let file = File::create(path)?;
        let mut w = WavWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file), spec(rate))?;
        w.flush()?;
        Ok(WavFile { w, frames: 0, last_flush: Instant::now(), dirty: false })
    }

    /// Frames in the file so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// How many of `want` more frames still fit under `MAX_FRAMES`.
    fn room(&self, want: u64) -> u64 {
        want.min(MAX_FRAMES.saturating_sub(self.frames))
    }

    /// Append interleaved stereo samples (a trailing odd sample is ignored). Returns the
    /// frames written: fewer than given only at the size limit.
    pub fn write_interleaved(&mut self, samples: &[i16]) -> hound::Result<u64> {
        let frames = self.room((samples.len() / 2) as u64);
        let Some(samples) = samples.get(..(frames as usize) * 2) else { return Ok(0) };
        for chunk in samples.chunks(CHUNK_FRAMES * 2) {
            let mut sw = self.w.get_i16_writer(chunk.len() as u32);
            for &s in chunk {
                sw.write_sample(s);
            }
            sw.flush()?;
        }
        self.frames += frames;
        self.dirty |= frames > 0;
        Ok(frames)
    }

    /// Append `frames` frames of silence on both channels. Returns the frames written.
    pub fn write_silence(&mut self, frames: u64) -> hound::Result<u64> {
        let frames = self.room(frames);
        let mut left = frames;
        while left > 0 {
            let n = left.min(CHUNK_FRAMES as u64);
            let mut sw = self.w.get_i16_writer((n * 2) as u32);
            for _ in 0..n * 2 {
                sw.write_sample(0i16);
            }
            sw.flush()?;
            left -= n;
        }
        self.frames += frames;
        self.dirty |= frames > 0;
        Ok(frames)
    }

    /// Update the header and hand the buffered audio to the kernel when `interval` has
    /// passed since the last time and there is something new: a crash (of the process)
    /// then loses at most `interval` of audio.
    pub fn flush_if_due(&mut self, interval: Duration) -> hound::Result<bool> {
        if !self.dirty || self.last_flush.elapsed() < interval {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    pub fn flush(&mut self) -> hound::Result<()> {
        self.w.flush()?;
        self.last_flush = Instant::now();
        self.dirty = false;
        Ok(())
    }

    /// Write the final header and flush. The caller then fsyncs and hashes the file.
    pub fn finish(self) -> hound::Result<u64> {
        let frames = self.frames;
        self.w.finalize()?;
        Ok(frames)
    }
}

/// What `repair` found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repaired {
    pub sample_rate: u32,
    pub channels: u16,
    /// Frames the header said before the repair, and frames in the data now.
    pub header_frames: u64,
    pub frames: u64,
    /// File size after the repair.
    pub bytes: u64,
    /// Bytes of a torn last frame cut off the end.
    pub cut_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("not a WAV file (no RIFF/WAVE header): left as it is")]
    NotWav,
    #[error("unsupported WAV header: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Hound(#[from] hound::Error),
}

impl From<WavError> for RepairError {
    fn from(e: WavError) -> Self {
        match e {
            WavError::NotWav => RepairError::NotWav,
            WavError::Unsupported(s) => RepairError::Unsupported(s),
        }
    }
}

/// Fix the header of a WAV left half-written by a crash so that it describes the data
/// actually in the file: the RIFF size and the data size, and a torn last frame cut off.
/// Written by hand: hound can only write a file from the start or append to one whose
/// header is already right (its reader takes the data size from the header, which after
/// a crash says the size at the last flush, or 0), and a repair must keep every byte.
/// What to write is decided by `callwarden_core::media::wav::plan_repair` (pure, fuzzed:
/// fuzz/fuzz_targets/wav_repair.rs); this applies it to the file.
/// A file cut inside its own header (a crash before the first flush reached the disk)
/// holds no audio: it is rewritten as an empty WAV at `fallback_rate`.
pub fn repair(path: &Path, fallback_rate: u32) -> Result<Repaired, RepairError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file).take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    let patch = match plan_repair(&head, len)? {
        Plan::Patch(p) => p,
        Plan::Empty => {
            drop(file);
            let w = WavWriter::create(path, spec(fallback_rate))?;
            w.finalize()?;
            File::open(path)?.sync_all()?;
            return Ok(Repaired {
                sample_rate: fallback_rate,
                channels: 2,
                header_frames: 0,
                frames: 0,
                bytes: std::fs::metadata(path)?.len(),
                cut_bytes: len,
            });
        }
    };
    if patch.new_len < len {
        file.set_len(patch.new_len)?;
    }
    for (at, bytes) in patch.writes() {
        file.seek(SeekFrom::Start(at))?;
        file.write_all(&bytes)?;
    }
    file.sync_all()?;
    Ok(Repaired {
        sample_rate: patch.sample_rate,
        channels: patch.channels,
        header_frames: patch.header_frames,
        frames: patch.frames,
        bytes: patch.new_len,
        cut_bytes: len - patch.new_len,
    })
}

/// SHA-256 (lowercase hex) and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// fsync a file by path (any descriptor of it flushes its data).
pub fn sync_path(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// fsync a folder, so the names of the files created in it survive a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(path: &Path) -> (WavSpec, Vec<i16>) {
        let mut r = hound::WavReader::open(path).unwrap();
        let spec = r.spec();
        (spec, r.samples::<i16>().map(Result::unwrap).collect())
    }

    #[test]
    fn write_audio_and_silence_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let mut w = WavFile::create(&p, 8000).unwrap();
        let samples: Vec<i16> = (0..5000i16).collect();
        assert_eq!(w.write_interleaved(&samples).unwrap(), 2500);
        assert_eq!(w.write_silence(3000).unwrap(), 3000);
        assert_eq!(w.write_interleaved(&[7, -7, 9]).unwrap(), 1, "a trailing odd sample is ignored");
        assert_eq!(w.frames(), 5501);
        assert_eq!(w.finish().unwrap(), 5501);
        let (spec, got) = read_all(&p);
        assert_eq!(spec, super::spec(8000));
        assert_eq!(got.len(), 5501 * 2);
        assert_eq!(&got[..5000], &samples[..]);
        assert!(got[5000..11000].iter().all(|&s| s == 0));
        assert_eq!(&got[11000..], &[7, -7]);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), HEADER_BYTES + 5501 * 4);
    }

    #[test]
    fn flush_makes_a_checkpoint_that_plays() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.wav");
        let mut w = WavFile::create(&p, 16000).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), HEADER_BYTES, "the header is on disk at once");
        w.write_interleaved(&[1, 2, 3, 4]).unwrap();
        assert!(!w.flush_if_due(Duration::from_secs(3600)).unwrap(), "not due yet");
        assert!(w.flush_if_due(Duration::ZERO).unwrap());
        assert!(!w.flush_if_due(Duration::ZERO).unwrap(), "nothing new since");
        // Read while the writer is still open, as a crashed process would leave it.
        let (_, got) = read_all(&p);
        assert_eq!(got, [1, 2, 3, 4]);
        drop(w);
    }

    /// A file as a crash leaves it: the header says `header_frames`, `data` frames are
    /// there, plus `torn` bytes of a frame that was being written.
    fn crashed(path: &Path, rate: u32, header_frames: u32, data: &[i16], torn: usize) {
        let mut w = WavWriter::create(path, spec(rate)).unwrap();
        for &s in data {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let mut f = OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(4)).unwrap();
        f.write_all(&(36 + header_frames * 4).to_le_bytes()).unwrap();
        f.seek(SeekFrom::Start(40)).unwrap();
        f.write_all(&(header_frames * 4).to_le_bytes()).unwrap();
        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(&vec![0x55u8; torn]).unwrap();
    }

    #[test]
    fn repair_fixes_header_to_the_data_present() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.wav");
        let data: Vec<i16> = (0..800).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        crashed(&p, 8000, 0, &data, 3);
        // hound believes the header: 0 frames.
        assert_eq!(hound::WavReader::open(&p).unwrap().len(), 0);
        let r = repair(&p, 16000).unwrap();
        assert_eq!(
            r,
            Repaired { sample_rate: 8000, channels: 2, header_frames: 0, frames: 400, bytes: 44 + 1600, cut_bytes: 3 }
        );
        let (spec, got) = read_all(&p);
        assert_eq!(spec.sample_rate, 8000);
        assert_eq!(got, data);
        // A second repair changes nothing.
        let again = repair(&p, 8000).unwrap();
        assert_eq!((again.frames, again.cut_bytes, again.header_frames), (400, 0, 400));
    }

    #[test]
    fn repair_of_a_file_cut_in_its_header_gives_an_empty_wav() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.wav");
        std::fs::write(&p, b"RIFF\0\0\0\0WAVEfmt ").unwrap();
        let r = repair(&p, 16000).unwrap();
        assert_eq!((r.frames, r.sample_rate), (0, 16000));
        let (spec, got) = read_all(&p);
        assert_eq!(spec.sample_rate, 16000);
        assert!(got.is_empty());
        std::fs::write(&p, b"").unwrap();
        assert_eq!(repair(&p, 8000).unwrap().frames, 0);
    }

    #[test]
    fn repair_refuses_what_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.wav");
        std::fs::write(&p, b"ID3\x03 this is an mp3, not a wav file at all").unwrap();
        assert!(matches!(repair(&p, 8000), Err(RepairError::NotWav)));
        assert_eq!(std::fs::read(&p).unwrap(), b"ID3\x03 this is an mp3, not a wav file at all", "untouched");
        let mut w = WavWriter::create(&p, hound::WavSpec { bits_per_sample: 8, ..spec(8000) }).unwrap();
        w.write_sample(1i8).unwrap();
        w.write_sample(1i8).unwrap();
        w.finalize().unwrap();
        assert!(matches!(repair(&p, 8000), Err(RepairError::Unsupported(_))));
    }

    #[test]
    fn sha256_of_known_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_file(&p).unwrap(),
            ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(), 3)
        );
    }

    proptest! {
        /// Whatever a crash leaves (any header count, any data, any torn tail), the
        /// repair gives a file hound reads whole, with exactly the frames present.
        #[test]
        fn repair_any_crash_leftover(
            header_frames in 0u32..5000,
            data in proptest::collection::vec(any::<i16>(), 0..4000).prop_map(|mut v| { v.truncate(v.len() / 2 * 2); v }),
            torn in 0usize..4,
            rate in prop_oneof![Just(8000u32), Just(16000u32)],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("p.wav");
            crashed(&p, rate, header_frames, &data, torn);
            let r = repair(&p, 8000).unwrap();
            prop_assert_eq!(r.frames as usize, data.len() / 2);
            prop_assert_eq!(r.cut_bytes as usize, torn);
            let (spec, got) = read_all(&p);
            prop_assert_eq!(spec.sample_rate, rate);
            prop_assert_eq!(got, data);
        }
    }
}
