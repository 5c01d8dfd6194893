//! Capture files: classic pcap (both byte orders, micro- and nanosecond stamps) and
//! pcapng (per-interface link type, `if_tsresol` and `if_tsoffset`; enhanced, simple and
//! obsolete packet blocks), via the `pcap-file` crate, which reads through an 8 MB buffer.
//! A truncated or corrupt file yields every complete frame before the damage, then one
//! error that names the file, the frame number and what is wrong; after it, the end.
//! May use: core `Frame`/`LinkType`/`Ts`. Invariants: no allocation per frame (classic
//! pcap frames borrow the reader's buffer; pcapng frames are copied into one reused
//! buffer, because the block has to be read before we know it is a packet); link types we
//! do not decode come back as `LinkType::Other(n)` for the engine to count.
//! Records are read raw (`next_raw_packet`): pcap-file's checked variant rejects records
//! whose original length exceeds the snap length, which is every record of a capture
//! taken with a small snap length.

use callwarden_core::{Dur, Frame, LinkType, Ts};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{PcapError, TsResolution};
use std::borrow::Cow;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a pcap or pcapng capture file")]
    NotCapture { path: PathBuf },
    #[error("{path}: frame {frame}: {what}")]
    Corrupt { path: PathBuf, frame: u64, what: String },
}

/// Largest record accepted (libpcap's MAXIMUM_SNAPLEN); more means a corrupt length.
const MAX_RECORD: usize = 262_144;

/// Bytes handed to pcap-file per read. Its buffer is 8 MB and it asks to fill all of it;
/// fed in smaller pieces it parses from the start of that buffer only, so the bytes the
/// kernel copies are still in the core's cache when the frames are decoded (8 MB reads
/// wrote the whole buffer back to memory and read it in again: the kernel copy was the
/// largest cost of a replay after the tracker).
const READ_CHUNK: usize = 256 * 1024;

/// The file, read at most `READ_CHUNK` bytes at a time.
struct Chunked(File);

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(READ_CHUNK);
        let (head, _) = buf.split_at_mut(n); // n <= buf.len(): cannot panic
        self.0.read(head)
    }
}

/// A capture file opened for reading, frame by frame, on its own clock (`next_frame`).
pub struct FileCapture {
    raw: Raw,
    /// The time of the last frame returned.
    clock: Option<Ts>,
    /// A frame after a jump, copied out of the reader to read the one after it.
    jump: Vec<u8>,
    /// A frame read ahead to judge a jump, returned next (its bytes in `held_buf`).
    held: Option<(Ts, LinkType)>,
    held_buf: Vec<u8>,
    /// An error met while reading ahead, returned after the frame before it.
    held_err: Option<CaptureError>,
    /// Frames whose stamp was a lone jump, taken at the file's clock instead.
    clamped: u64,
    /// No stamp after this is believed (`BAR_AHEAD` past the wall clock at open).
    bar: Ts,
}

/// How far past the wall clock (when the file is opened) a stamp may be and still be
/// vouched for by the frames after it: a file is written before it is read, so later
/// stamps are forged; a day leaves room for a recorder whose clock is off by a time zone.
const BAR_AHEAD: Dur = Dur::from_secs(86_400);

/// A frame stamped more than this after the file's clock is a jump, judged by the frame
/// after it. Timers as short as the INVITE transaction's (32 s) must not fire on one bad
/// stamp, so the bar is low; a real pause in a quiet capture costs only the copies of the
/// two frames around it.
const JUMP: Dur = Dur::from_secs(10);

/// The wall clock as a `Ts` (the daemon crate may read it; core may not).
fn wall_clock() -> Ts {
    let us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    Ts::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
}

/// The reader of the file's records, as they are.
struct Raw {
    path: PathBuf,
    format: Format,
    frames: u64,
    /// Set after the end or an error: every later call returns `Ok(None)`.
    done: bool,
    /// pcapng frames are copied here (reused, so no allocation once warm).
    scratch: Vec<u8>,
    /// Frames captured shorter than they were on the wire (snap length), and the longest
    /// captured length among them (the snap length in effect).
    cut: u64,
    cut_len: usize,
}

enum Format {
    Pcap { reader: PcapReader<Chunked>, link: LinkType, nanos: bool },
    PcapNg { reader: PcapNgReader<Chunked>, ifaces: Vec<Iface>, last_ts: Ts },
}

/// What a pcapng interface says about its packets.
#[derive(Copy, Clone, Debug)]
struct Iface {
    link: LinkType,
    snaplen: u32,
    /// if_tsresol: bit 7 clear = 10^-n s per tick, set = 2^-n s per tick.
    tsresol: u8,
    /// if_tsoffset, seconds added to every timestamp.
    offset_secs: i64,
}

impl Iface {
    fn from_idb(idb: &InterfaceDescriptionBlock<'_>) -> Iface {
        let mut iface = Iface {
            link: LinkType::from_number(u32::from(idb.linktype)),
            snaplen: idb.snaplen,
            tsresol: 6,
            offset_secs: 0,
        };
        for opt in &idb.options {
            match opt {
                InterfaceDescriptionOption::IfTsResol(r) => iface.tsresol = *r,
                InterfaceDescriptionOption::IfTsOffset(o) => iface.offset_secs = i64::try_from(*o).unwrap_or(0),
                _ => {}
            }
        }
        iface
    }

    /// Timestamp ticks → packet time.
    fn ts(&self, ticks: u64) -> Ts {
        let ticks = u128::from(ticks);
        let micros: u128 = if self.tsresol & 0x80 == 0 {
            let n = u32::from(self.tsresol);
            if n <= 6 {
                ticks.saturating_mul(10u128.pow(6 - n))
            } else if n - 6 <= 38 {
                ticks / 10u128.pow(n - 6)
            } else {
                0
            }
        } else {
            let n = u32::from(self.tsresol & 0x7f);
            ticks.saturating_mul(1_000_000) >> n
        };
        let micros = i64::try_from(micros).unwrap_or(i64::MAX);
        Ts(self.offset_secs.saturating_mul(1_000_000).saturating_add(micros))
    }
}

/// Which reader a file needs, from its first four bytes.
fn sniff(magic: [u8; 4]) -> Option<bool> {
    match magic {
        // pcap µs and ns, either byte order.
        [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] | [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => {
            Some(false)
        }
        // pcapng Section Header Block.
        [0x0a, 0x0d, 0x0d, 0x0a] => Some(true),
        _ => None,
    }
}

fn describe(e: &PcapError) -> String {
    match e {
        PcapError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
            "record cut short (file truncated, or its length field is corrupt)".to_string()
        }
        PcapError::IncompleteBuffer => "record cut short".to_string(),
        PcapError::IoError(io) => format!("read error: {io}"),
        other => format!("corrupt record: {other}"),
    }
}

impl FileCapture {
    pub fn open(path: &Path) -> Result<FileCapture, CaptureError> {
        let open_err = |source| CaptureError::Open { path: path.to_path_buf(), source };
        let mut file = File::open(path).map_err(open_err)?;
        let mut magic = [0u8; 4];
        match file.read_exact(&mut magic) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(CaptureError::NotCapture { path: path.to_path_buf() })
            }
            Err(e) => return Err(open_err(e)),
        }
        let ng = sniff(magic).ok_or_else(|| CaptureError::NotCapture { path: path.to_path_buf() })?;
        file.seek(SeekFrom::Start(0)).map_err(open_err)?;
        let header_err = |e: PcapError| CaptureError::Corrupt {
            path: path.to_path_buf(),
            frame: 0,
            what: format!("file header: {}", describe(&e)),
        };
        let format = if ng {
            Format::PcapNg {
                reader: PcapNgReader::new(Chunked(file)).map_err(header_err)?,
                ifaces: Vec::new(),
                last_ts: Ts::EPOCH,
            }
        } else {
            let reader = PcapReader::new(Chunked(file)).map_err(header_err)?;
            let h = reader.header();
            // Bits 26-31 of the link-type field are FCS flags, not the link type.
            let link = LinkType::from_number(u32::from(h.datalink) & 0x03ff_ffff);
            Format::Pcap { reader, link, nanos: h.ts_resolution == TsResolution::NanoSecond }
        };
        let raw =
            Raw { path: path.to_path_buf(), format, frames: 0, done: false, scratch: Vec::new(), cut: 0, cut_len: 0 };
        Ok(FileCapture {
            raw,
            clock: None,
            jump: Vec::new(),
            held: None,
            held_buf: Vec::new(),
            held_err: None,
            clamped: 0,
            bar: wall_clock().saturating_add(BAR_AHEAD),
        })
    }

    /// The next record as the file has it, `Ok(None)` at the clean end of the file; its
    /// stamp untouched. Frames with a link type the engine does not decode are still
    /// returned (the engine counts them). For feeding the engine use `next_frame_with`,
    /// which keeps the file's clock; do not mix the two on one file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        self.raw.read()
    }

    /// The next frame on the file's own clock, given to `use_frame`; `Ok(None)` at the
    /// clean end of the file.
    ///
    /// One frame cannot move the clock far: a frame stamped more than `JUMP` after the
    /// clock, or the file's first frame (which sets it), is judged by the frame after it. When that one is back near the clock, the
    /// stamp was a lone glitch or forgery (a 2106 stamp would otherwise time out every call
    /// in progress, and stall the merge of a rotated set) and the frame is taken at the
    /// clock instead and counted (`time_clamped`). When the frames after it go on from the
    /// new time, the pause was real and is kept, unless the stamp is past the wall clock's
    /// bar (`BAR_AHEAD`): then nothing vouches for it (two or more forged stamps in a row).
    /// A jump on the file's last frame has nothing after it to vouch for it: it is clamped. Frames within `JUMP` come straight
    /// from the reader's buffer, no copy. (A callback rather than a returned frame: the
    /// borrow checker cannot return the reader's frame on one path and read again on the
    /// other.)
    pub fn next_frame_with<R>(&mut self, use_frame: impl FnOnce(Frame<'_>) -> R) -> Result<Option<R>, CaptureError> {
        let clock = self.clock;
        let (ts, link) = if let Some((ts, link)) = self.held.take() {
            // The frame read ahead to judge the last jump is judged like any other: it may
            // be a jump itself (the second of two forged stamps in a row).
            if clock.is_some_and(|c| ts <= c + JUMP) {
                self.clock = clock.map(|c| c.max(ts));
                return Ok(Some(use_frame(Frame { ts, link, bytes: &self.held_buf })));
            }
            std::mem::swap(&mut self.jump, &mut self.held_buf);
            (ts, link)
        } else {
            if let Some(e) = self.held_err.take() {
                return Err(e);
            }
            match self.raw.read()? {
                None => return Ok(None),
                Some(f) if clock.is_some_and(|c| f.ts <= c + JUMP) => {
                    let ts = f.ts;
                    let r = use_frame(f);
                    self.clock = clock.map(|c| c.max(ts));
                    return Ok(Some(r));
                }
                Some(f) => {
                    self.jump.clear();
                    self.jump.extend_from_slice(f.bytes);
                    (f.ts, f.link)
                }
            }
        };
        let next = match self.raw.read() {
            Ok(Some(g)) => {
                self.held_buf.clear();
                self.held_buf.extend_from_slice(g.bytes);
                self.held = Some((g.ts, g.link));
                Some(g.ts)
            }
            Ok(None) => None,
            Err(e) => {
                self.held_err = Some(e);
                None
            }
        };
        let taken = match (clock, next) {
            // A jump: lone unless the next frame goes on from the new time; past the wall
            // clock's bar no frame vouches for it (two forged stamps in a row).
            (Some(c), next) => {
                if ts > self.bar || next.is_none_or(|n| (n.as_micros() - c.as_micros()).abs() <= JUMP.as_micros()) {
                    c
                } else {
                    ts
                }
            }
            // The first frame sets the clock, so it is judged too: followed by a frame
            // stamped more than `JUMP` before it, or past the bar when that frame is not,
            // it is the lone jump (a forged first stamp would otherwise set the clock in
            // 2106) and is taken at that frame's time.
            (None, Some(n)) if n + JUMP < ts || (ts > self.bar && n <= self.bar) => n,
            (None, _) => ts,
        };
        if taken != ts {
            self.clamped += 1;
        }
        self.clock = Some(clock.map_or(taken, |c| c.max(taken)));
        Ok(Some(use_frame(Frame { ts: taken, link, bytes: &self.jump })))
    }

    /// Frames whose lone jump in time was taken at the file's clock (see `next_frame`).
    pub fn time_clamped(&self) -> u64 {
        self.clamped
    }

    /// Frames cut short by the snap length so far, and that snap length (the longest
    /// captured length among them); `None` when every frame was whole.
    pub fn cut_frames(&self) -> Option<(u64, usize)> {
        (self.raw.cut > 0).then_some((self.raw.cut, self.raw.cut_len))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.raw.path
    }

    /// Frames read so far.
    // Part of the capture API (replay progress, stats); no caller in the binary yet.
    #[allow(dead_code)]
    pub fn frames_read(&self) -> u64 {
        self.raw.frames
    }
}

impl Raw {
    /// The next record as the file has it.
    fn read(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let frame_no = self.frames + 1;
        let path = &self.path;
        let corrupt = |what: String| CaptureError::Corrupt { path: path.clone(), frame: frame_no, what };
        let (cut, cut_len) = (&mut self.cut, &mut self.cut_len);
        let mut note_cut = |captured: usize, orig: u32| {
            if (orig as usize) > captured {
                *cut += 1;
                *cut_len = (*cut_len).max(captured);
            }
        };
        let result = match &mut self.format {
            Format::Pcap { reader, link, nanos } => match reader.next_raw_packet() {
                None => Ok(None),
                Some(Err(e)) => Err(corrupt(describe(&e))),
                Some(Ok(p)) if p.data.len() > MAX_RECORD => {
                    Err(corrupt(format!("record length {} is over {MAX_RECORD}", p.data.len())))
                }
                Some(Ok(p)) => {
                    note_cut(p.data.len(), p.orig_len);
                    let ts = Ts::from_parts(i64::from(p.ts_sec), p.ts_frac, *nanos);
                    let bytes: &[u8] = match p.data {
                        Cow::Borrowed(b) => b,
                        Cow::Owned(v) => {
                            self.scratch = v;
                            &self.scratch
                        }
                    };
                    Ok(Some(Frame { ts, link: *link, bytes }))
                }
            },
            Format::PcapNg { reader, ifaces, last_ts } => {
                match next_ng_packet(reader, ifaces, &mut self.scratch) {
                    Ok(None) => Ok(None),
                    Err(what) => Err(corrupt(what)),
                    Ok(Some((ts, link, orig))) => {
                        note_cut(self.scratch.len(), orig);
                        // A simple packet block has no timestamp: it takes the last one.
                        let ts = ts.unwrap_or(*last_ts);
                        *last_ts = ts;
                        Ok(Some(Frame { ts, link, bytes: &self.scratch }))
                    }
                }
            }
        };
        match result {
            Ok(Some(f)) => {
                self.frames += 1;
                Ok(Some(f))
            }
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }
}

/// Read pcapng blocks up to the next packet; copy its bytes into `out`.
fn next_ng_packet(
    reader: &mut PcapNgReader<Chunked>,
    ifaces: &mut Vec<Iface>,
    out: &mut Vec<u8>,
) -> Result<Option<(Option<Ts>, LinkType, u32)>, String> {
    loop {
        let block = match reader.next_block() {
            None => return Ok(None),
            Some(Err(e)) => return Err(describe(&e)),
            Some(Ok(b)) => b,
        };
        let (iface_id, ticks, data, orig_len) = match &block {
            Block::SectionHeader(_) => {
                ifaces.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                ifaces.push(Iface::from_idb(idb));
                continue;
            }
            Block::EnhancedPacket(p) => (p.interface_id, Some(p.timestamp.as_nanos() as u64), &p.data, p.original_len),
            Block::Packet(p) => (u32::from(p.interface_id), Some(p.timestamp), &p.data, p.original_len),
            Block::SimplePacket(p) => (0, None, &p.data, p.original_len),
            _ => continue,
        };
        let iface =
            ifaces.get(iface_id as usize).ok_or_else(|| format!("packet for undeclared interface {iface_id}"))?;
        let mut len = data.len();
        if matches!(block, Block::SimplePacket(_)) {
            // The block's data is padded to 4 bytes; the packet is the original length,
            // or the snap length when that is smaller.
            len = len.min(orig_len as usize);
            if iface.snaplen > 0 {
                len = len.min(iface.snaplen as usize);
            }
        }
        if len > MAX_RECORD {
            return Err(format!("record length {len} is over {MAX_RECORD}"));
        }
        out.clear();
        out.extend_from_slice(data.get(..len).unwrap_or_default());
        return Ok(Some((ticks.map(|t| iface.ts(t)), iface.link, orig_len)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/public").join(name)
    }

    type Frames = Vec<(Ts, LinkType, Vec<u8>)>;

    fn read_all(path: &Path) -> (Frames, Option<CaptureError>) {
        let mut cap = FileCapture::open(path).unwrap();
        let mut frames = Vec::new();
        loop {
            match cap.next_frame() {
                Ok(Some(f)) => frames.push((f.ts, f.link, f.bytes.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(cap.next_frame(), Ok(None)), "nothing after the error");
                    assert_eq!(cap.frames_read(), frames.len() as u64);
                    return (frames, Some(e));
                }
            }
        }
        assert_eq!(cap.frames_read(), frames.len() as u64);
        (frames, None)
    }

    fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
    }

    /// A classic pcap file, byte order and resolution chosen, with the given records.
    fn pcap_bytes(big: bool, nanos: bool, link: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut b = Vec::new();
        b.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        b.extend_from_slice(&w16(2));
        b.extend_from_slice(&w16(4));
        b.extend_from_slice(&w32(0));
        b.extend_from_slice(&w32(0));
        b.extend_from_slice(&w32(96));
        b.extend_from_slice(&w32(link));
        for (s, frac, data) in records {
            b.extend_from_slice(&w32(*s));
            b.extend_from_slice(&w32(*frac));
            b.extend_from_slice(&w32(data.len() as u32));
            // Original length larger than the snap length: a truncated capture.
            b.extend_from_slice(&w32(data.len() as u32 + 1000));
            b.extend_from_slice(data);
        }
        b
    }

    #[test]
    fn classic_pcap_both_orders_and_resolutions() {
        for big in [false, true] {
            for nanos in [false, true] {
                let recs: [(u32, u32, &[u8]); 2] = [(100, 999_999_999, b"abc"), (101, 5_000, b"")];
                let recs: Vec<(u32, u32, &[u8])> =
                    recs.iter().map(|(s, f, d)| (*s, if nanos { *f } else { f / 1000 }, *d)).collect();
                let f = write_tmp(&pcap_bytes(big, nanos, 113, &recs));
                let (frames, err) = read_all(f.path());
                assert!(err.is_none(), "{err:?}");
                assert_eq!(frames.len(), 2);
                assert_eq!(frames[0].0, Ts(100_999_999));
                assert_eq!(frames[1].0, Ts(101_000_005));
                assert_eq!(frames[0].1, LinkType::LinuxSll);
                assert_eq!(frames[0].2, b"abc");
            }
        }
    }

    #[test]
    fn unknown_link_and_fcs_bits() {
        let f = write_tmp(&pcap_bytes(false, false, 147, &[(1, 0, b"x")]));
        assert_eq!(read_all(f.path()).0[0].1, LinkType::Other(147));
        // Ethernet with the "FCS present" flag bits set.
        let f = write_tmp(&pcap_bytes(false, false, 1 | 0x1400_0000, &[(1, 0, b"x")]));
        assert_eq!(read_all(f.path()).0[0].1, LinkType::Ethernet);
    }

    #[test]
    fn not_a_capture_and_missing_file() {
        let f = write_tmp(b"hello, this is text\n");
        assert!(matches!(FileCapture::open(f.path()), Err(CaptureError::NotCapture { .. })));
        let f = write_tmp(b"ab");
        assert!(matches!(FileCapture::open(f.path()), Err(CaptureError::NotCapture { .. })));
        let e = FileCapture::open(Path::new("/nonexistent/x.pcap")).err().unwrap();
        assert!(matches!(e, CaptureError::Open { .. }));
        assert!(e.to_string().starts_with("/nonexistent/x.pcap: "));
        // Right magic, header cut short: corrupt at frame 0.
        let f = write_tmp(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]);
        assert!(matches!(FileCapture::open(f.path()), Err(CaptureError::Corrupt { frame: 0, .. })));
    }

    #[test]
    fn real_pcap_and_pcapng_read() {
        let (frames, err) = read_all(&fixture("sip-register-401-200.pcapng"));
        assert!(err.is_none());
        assert_eq!(frames.len(), 30);
        assert!(frames.iter().all(|f| f.1 == LinkType::Ethernet));
        // tshark: frame.time_epoch 1645515834.707950000 (µs resolution).
        assert_eq!(frames[0].0.to_string(), "1645515834.707950");

        // Nanosecond if_tsresol, Linux cooked: tshark 1502941090.317366997.
        let (frames, err) = read_all(&fixture("hep3-compressed-payload.pcapng"));
        assert!(err.is_none());
        assert_eq!(frames.len(), 21);
        assert_eq!(frames[0].1, LinkType::LinuxSll);
        assert_eq!(frames[0].0.to_string(), "1502941090.317366");

        let (frames, err) = read_all(&fixture("sip-tcp-invite-64k-body-segmented.pcap"));
        assert!(err.is_none());
        assert_eq!(frames.len(), 16);
        assert_eq!(frames[0].1, LinkType::Null);
        let (frames, _) = read_all(&fixture("sip-ipip-register-401-invite-403.pcap"));
        assert_eq!(frames[0].1, LinkType::RawIp);
    }

    /// Record boundaries of a classic pcap: (start, end) byte offsets.
    fn record_spans(b: &[u8]) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let mut at = 24;
        while at + 16 <= b.len() {
            let incl = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
            spans.push((at, at + 16 + incl));
            at += 16 + incl;
        }
        spans
    }

    #[test]
    fn truncated_real_pcap_gives_complete_frames_then_corrupt() {
        let full = std::fs::read(fixture("sip-tcp-register-200.pcap")).unwrap();
        let spans = record_spans(&full);
        assert_eq!(spans.len(), 11);
        assert_eq!(spans.last().unwrap().1, full.len());
        let (all, _) = read_all(&fixture("sip-tcp-register-200.pcap"));
        for cut in [25, 24 + 8, spans[3].0 + 10, spans[6].1 - 1, spans[10].0 + 16, full.len() - 1] {
            let f = write_tmp(&full[..cut]);
            let (frames, err) = read_all(f.path());
            let complete = spans.iter().filter(|s| s.1 <= cut).count();
            assert_eq!(frames.len(), complete, "cut at {cut}");
            assert_eq!(frames, all[..complete].to_vec());
            match err {
                Some(CaptureError::Corrupt { frame, ref what, .. }) => {
                    assert_eq!(frame, complete as u64 + 1, "cut at {cut}: {what}");
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // Cut exactly at a record boundary: a clean end.
        let f = write_tmp(&full[..spans[4].1]);
        let (frames, err) = read_all(f.path());
        assert_eq!((frames.len(), err.is_none()), (5, true));
    }

    #[test]
    fn truncated_pcapng_gives_complete_frames_then_corrupt() {
        let full = std::fs::read(fixture("sip-register-401-200.pcapng")).unwrap();
        let (all, _) = read_all(&fixture("sip-register-401-200.pcapng"));
        for cut in [full.len() / 3, full.len() / 2, full.len() - 3] {
            let f = write_tmp(&full[..cut]);
            let (frames, err) = read_all(f.path());
            assert!(frames.len() < all.len());
            assert_eq!(frames, all[..frames.len()].to_vec());
            assert!(
                matches!(err, Some(CaptureError::Corrupt { frame, .. }) if frame == frames.len() as u64 + 1),
                "cut at {cut}: {err:?}"
            );
        }
    }

    #[test]
    fn corrupt_record_length() {
        let mut b = pcap_bytes(false, false, 1, &[(1, 0, b"first"), (2, 0, b"second")]);
        // The second record claims 3 GB.
        let at = 24 + 16 + 5 + 8;
        b[at..at + 4].copy_from_slice(&3_000_000_000u32.to_le_bytes());
        let f = write_tmp(&b);
        let (frames, err) = read_all(f.path());
        assert_eq!(frames.len(), 1);
        assert!(matches!(err, Some(CaptureError::Corrupt { frame: 2, .. })));
        let msg = err.unwrap().to_string();
        assert!(msg.contains("frame 2: "), "{msg}");
    }

    #[test]
    fn tsresol_conversions() {
        let i = |r: u8| Iface { link: LinkType::Ethernet, snaplen: 0, tsresol: r, offset_secs: 0 };
        assert_eq!(i(6).ts(1_500_000), Ts(1_500_000));
        assert_eq!(i(9).ts(1_500_000_123), Ts(1_500_000));
        assert_eq!(i(3).ts(1_500), Ts(1_500_000));
        assert_eq!(i(0x80 | 10).ts(1024), Ts(1_000_000));
        assert_eq!(i(100).ts(u64::MAX), Ts(0));
        assert_eq!(Iface { offset_secs: 10, ..i(6) }.ts(1), Ts(10_000_001));
    }

    #[test]
    fn damaged_files_never_panic() {
        // Flip bytes all over real files of both formats: frames then at most one error.
        for name in ["sip-register-401-200.pcapng", "hep3-compressed-payload.pcapng", "sip-tcp-register-200.pcap"] {
            let full = std::fs::read(fixture(name)).unwrap();
            for step in [3usize, 7, 13, 31] {
                for phase in 0..step {
                    let mut b = full.clone();
                    for j in (phase..b.len()).step_by(step * 17) {
                        b[j] = b[j].wrapping_add(0x5a);
                    }
                    let f = write_tmp(&b);
                    if let Ok(mut cap) = FileCapture::open(f.path()) {
                        let mut n = 0;
                        while let Ok(Some(_)) = cap.next_frame() {
                            n += 1;
                            assert!(n < 100_000);
                        }
                    }
                }
            }
        }
    }
}
