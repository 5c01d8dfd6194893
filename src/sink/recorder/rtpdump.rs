//! RTP of a codec we do not decode, kept as it came in the rtptools `rtpdump` format, so
//! it can be replayed into a decoder later (`rtpplay`, Wireshark, `rtpdump -F`): a text
//! line `#!rtpplay1.0 address/port\n`, a 16-byte file header (start time, source,
//! port), then per packet an 8-byte record header (record length, RTP length, ms since
//! the start) and the RTP packet (12-byte header rebuilt from the fields the core kept,
//! then the payload). All numbers big-endian, as rtptools writes them.
//! The source address is not known here (the core binds packets to a call and a leg,
//! not to an address): it is written as 0.0.0.0/0.
//! Invariants: records are whole (a torn last record after a crash is cut by `repair`);
//! a record longer than rtpdump's 16-bit length keeps its first 65,535 bytes and says
//! the full RTP length in its header, as rtpdump itself does for a short snap length.

use callwarden_core::Ts;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub const MAGIC_LINE: &[u8] = b"#!rtpplay1.0 0.0.0.0/0\n";
const FILE_HEADER: usize = 16;
const RECORD_HEADER: usize = 8;
const RTP_HEADER: usize = 12;
/// Write buffer per open rtpdump file.
pub const WRITE_BUFFER: usize = 4096;

/// One RTP packet as the core hands it over (`MediaOut::Raw`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawPacket<'a> {
    pub at: Ts,
    pub pt: u8,
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

pub struct RtpDumpWriter {
    w: BufWriter<File>,
    start: Ts,
    packets: u64,
}

impl RtpDumpWriter {
    /// Create the file; `start` (the first packet's time) is the time offsets count from.
    pub fn create(path: &Path, start: Ts) -> io::Result<RtpDumpWriter> {
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, File::create(path)?);
        let us = start.as_micros().max(0);
        let secs = u32::try_from(us / 1_000_000).unwrap_or(u32::MAX);
        let usecs = (us % 1_000_000) as u32;
        w.write_all(MAGIC_LINE)?;
        let mut hdr = [0u8; FILE_HEADER];
        hdr[..4].copy_from_slice(&secs.to_be_bytes());
        hdr[4..8].copy_from_slice(&usecs.to_be_bytes());
        // source address, port, padding: zero.
        w.write_all(&hdr)?;
        w.flush()?;
        Ok(RtpDumpWriter { w, start, packets: 0 })
    }

    pub fn write(&mut self, p: &RawPacket<'_>) -> io::Result<()> {
        let offset_ms = u32::try_from(p.at.since(self.start).as_micros().max(0) / 1000).unwrap_or(u32::MAX);
        let rtp_len = RTP_HEADER + p.payload.len();
        let kept = rtp_len.min(usize::from(u16::MAX) - RECORD_HEADER);
        let mut rec = [0u8; RECORD_HEADER + RTP_HEADER];
        rec[..2].copy_from_slice(&((RECORD_HEADER + kept) as u16).to_be_bytes());
        rec[2..4].copy_from_slice(&(rtp_len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
        rec[4..8].copy_from_slice(&offset_ms.to_be_bytes());
        rec[8] = 0x80; // version 2, no padding, no extension, no CSRC
        rec[9] = (u8::from(p.marker) << 7) | (p.pt & 0x7f);
        rec[10..12].copy_from_slice(&p.seq.to_be_bytes());
        rec[12..16].copy_from_slice(&p.timestamp.to_be_bytes());
        rec[16..20].copy_from_slice(&p.ssrc.to_be_bytes());
        self.w.write_all(&rec)?;
        self.w.write_all(p.payload.get(..kept - RTP_HEADER).unwrap_or(p.payload))?;
        self.packets += 1;
        Ok(())
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Flush and fsync; the file is final.
    pub fn finish(mut self) -> io::Result<u64> {
        self.w.flush()?;
        self.w.get_ref().sync_all()?;
        Ok(self.packets)
    }
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset_ms: u32,
    pub rtp: Vec<u8>,
}

/// Read a whole rtpdump file (for tests and tools): the start time and the records.
pub fn read(path: &Path) -> io::Result<(Ts, Vec<Record>)> {
    let bytes = std::fs::read(path)?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("rtpdump: {what}"));
    let nl = bytes.iter().position(|&b| b == b'\n').ok_or_else(|| bad("no #!rtpplay line"))?;
    if !bytes.starts_with(b"#!rtpplay1.0 ") {
        return Err(bad("no #!rtpplay1.0 line"));
    }
    let hdr = bytes.get(nl + 1..nl + 1 + FILE_HEADER).ok_or_else(|| bad("short file header"))?;
    let be32 = |b: &[u8], i: usize| b.get(i..i + 4).and_then(|s| s.try_into().ok()).map(u32::from_be_bytes);
    let secs = be32(hdr, 0).ok_or_else(|| bad("header"))?;
    let usecs = be32(hdr, 4).ok_or_else(|| bad("header"))?;
    let start = Ts(i64::from(secs) * 1_000_000 + i64::from(usecs));
    let mut pos = nl + 1 + FILE_HEADER;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let h = bytes.get(pos..pos + RECORD_HEADER).ok_or_else(|| bad("torn record header"))?;
        let len = usize::from(u16::from_be_bytes([h[0], h[1]]));
        let offset_ms = be32(h, 4).ok_or_else(|| bad("record header"))?;
        if len < RECORD_HEADER {
            return Err(bad("record shorter than its header"));
        }
        let rtp = bytes.get(pos + RECORD_HEADER..pos + len).ok_or_else(|| bad("torn record"))?;
        out.push(Record { offset_ms, rtp: rtp.to_vec() });
        pos += len;
    }
    Ok((start, out))
}

/// After a crash: cut a torn last record (or a torn file header) off the end. Returns
/// the number of whole records and the bytes cut.
pub fn repair(path: &Path) -> io::Result<(u64, u64)> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let header_end = (MAGIC_LINE.len() + FILE_HEADER) as u64;
    let ours = if len < header_end {
        // A header cut short: only a prefix of what `create` writes is ours.
        bytes.get(..MAGIC_LINE.len().min(bytes.len())).is_some_and(|b| MAGIC_LINE.starts_with(b))
    } else {
        bytes.starts_with(MAGIC_LINE)
    };
    if !ours {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not an rtpdump file written by callwarden"));
    }
    let (keep, records) = if len < header_end {
        (0, 0)
    } else {
        let mut pos = header_end as usize;
        let mut n = 0u64;
        while let Some(h) = bytes.get(pos..pos + RECORD_HEADER) {
            let rec = usize::from(u16::from_be_bytes([h[0], h[1]]));
            if rec < RECORD_HEADER || pos + rec > bytes.len() {
                break;
            }
            pos += rec;
            n += 1;
        }
        (pos as u64, n)
    };
    if keep < len {
        file.set_len(keep)?;
        file.seek(SeekFrom::End(0))?;
    }
    file.sync_all()?;
    Ok((records, len - keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pkt(at_us: i64, seq: u16, payload: &[u8]) -> RawPacket<'_> {
        RawPacket {
            at: Ts(at_us),
            pt: 18,
            ssrc: 0x1234_5678,
            seq,
            timestamp: 160 * u32::from(seq),
            marker: seq == 0,
            payload,
        }
    }

    #[test]
    fn write_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.rtpdump");
        let t0 = 1_700_000_000_250_000;
        let mut w = RtpDumpWriter::create(&p, Ts(t0)).unwrap();
        w.write(&pkt(t0, 0, &[1; 20])).unwrap();
        w.write(&pkt(t0 + 20_000, 1, &[2; 20])).unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        let (start, recs) = read(&p).unwrap();
        assert_eq!(start, Ts(t0));
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].offset_ms, 20);
        let r = &recs[0].rtp;
        assert_eq!(r.len(), 32);
        assert_eq!(r[0], 0x80);
        assert_eq!(r[1], 0x80 | 18, "marker + PT 18");
        assert_eq!(&r[8..12], &0x1234_5678u32.to_be_bytes());
        assert_eq!(&r[12..], &[1; 20]);
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.starts_with(b"#!rtpplay1.0 0.0.0.0/0\n"));
        // Record header of the first packet: length 8 + 32, RTP length 32, offset 0.
        let h = MAGIC_LINE.len() + FILE_HEADER;
        assert_eq!(&bytes[h..h + 8], &[0, 40, 0, 32, 0, 0, 0, 0]);
    }

    #[test]
    fn repair_cuts_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.rtpdump");
        let mut w = RtpDumpWriter::create(&p, Ts(0)).unwrap();
        for i in 0..5 {
            w.write(&pkt(i * 20_000, i as u16, &[9; 10])).unwrap();
        }
        w.finish().unwrap();
        let full = std::fs::metadata(&p).unwrap().len();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(full - 7).unwrap();
        assert_eq!(repair(&p).unwrap(), (4, 30 - 7));
        assert_eq!(read(&p).unwrap().1.len(), 4);
        assert_eq!(repair(&p).unwrap(), (4, 0));
    }

    proptest! {
        /// Every packet written is read back as written, whatever the sizes.
        #[test]
        fn round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..20)) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("r.rtpdump");
            let mut w = RtpDumpWriter::create(&p, Ts(5_000_000)).unwrap();
            for (i, pl) in payloads.iter().enumerate() {
                w.write(&pkt(5_000_000 + i as i64 * 30_000, i as u16, pl)).unwrap();
            }
            w.finish().unwrap();
            let (_, recs) = read(&p).unwrap();
            prop_assert_eq!(recs.len(), payloads.len());
            for (i, (r, pl)) in recs.iter().zip(&payloads).enumerate() {
                prop_assert_eq!(&r.rtp[12..], &pl[..]);
                prop_assert_eq!(r.offset_ms as usize, i * 30);
            }
        }

        /// The reader and the repair never panic on garbage.
        #[test]
        fn garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..300), prefix in any::<bool>()) {
            if prefix {
                let mut b = MAGIC_LINE.to_vec();
                b.extend_from_slice(&bytes);
                bytes = b;
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("g.rtpdump");
            std::fs::write(&p, &bytes).unwrap();
            let _ = read(&p);
            match repair(&p) {
                Ok(_) if bytes.len() >= MAGIC_LINE.len() + FILE_HEADER => {
                    prop_assert!(read(&p).is_ok(), "after the repair the file reads");
                }
                Ok(_) => prop_assert_eq!(std::fs::metadata(&p).unwrap().len(), 0),
                Err(_) => prop_assert_eq!(std::fs::read(&p).unwrap(), bytes, "a file not ours is left alone"),
            }
        }
    }
}
