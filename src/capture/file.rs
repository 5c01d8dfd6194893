//! Capture files: classic pcap (both byte orders, micro- and nanosecond stamps) and
//! pcapng (per-interface link type and timestamp resolution), via the `pcap-file` crate.
//! A truncated or corrupt file yields every complete frame before the damage, then one
//! error that names the file, the frame number and what is wrong.

use callwarden_core::{Frame, LinkType, Ts};
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

/// A capture file opened for reading, frame by frame.
pub struct FileCapture {
    path: PathBuf,
}

impl FileCapture {
    pub fn open(path: &Path) -> Result<FileCapture, CaptureError> {
        let _ = path;
        todo!("decode helper")
    }

    /// The next frame, `Ok(None)` at the clean end of the file. Frames with a link type
    /// the engine does not decode are still returned (the engine counts them).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        let _ = (&self.path, LinkType::Ethernet, Ts::EPOCH);
        todo!("decode helper")
    }

    /// Frames read so far.
    pub fn frames_read(&self) -> u64 {
        0
    }
}
