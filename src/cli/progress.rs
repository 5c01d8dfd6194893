//! The progress line of a long `replay` on a terminal: the file being read, bytes of the
//! input done out of the total, packets per second, calls so far. Silent (never drawn,
//! nothing written) when stderr is not a terminal, so scripts, pipes and the journal see
//! only the summary. May use: indicatif (drawing, rate-limited redraws), the engine's
//! counters. Invariants: costs one branch per frame (updates every `EVERY` frames); the
//! line is cleared before the summary is printed.

use callwarden_core::Counters;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Frames between two updates: often enough to move smoothly at millions of packets/s,
/// rare enough to cost nothing.
const EVERY: u64 = 4096;
/// Each pcap record's header: counted so the position tracks the file's bytes.
const RECORD_HEADER: u64 = 16;

pub struct Progress {
    bar: Option<ProgressBar>,
    files: Vec<PathBuf>,
    started: Instant,
    next_update: u64,
}

impl Progress {
    /// A progress line over `files` (their sizes summed), drawn only on a terminal.
    pub fn new(files: &[PathBuf]) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            // A template of our own words; a bad one falls back to the default look.
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {percent}% eta {eta}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress { bar, files: files.to_vec(), started: Instant::now(), next_update: 0 }
    }

    /// After a frame of file `file` (its index in the list): redraw every `EVERY` frames.
    #[inline]
    pub fn frame(&mut self, file: usize, c: &Counters) {
        if self.bar.is_some() && c.frames >= self.next_update {
            self.next_update = c.frames + EVERY;
            self.update(file, c);
        }
    }

    fn update(&self, file: usize, c: &Counters) {
        let Some(bar) = &self.bar else { return };
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let name = self.files.get(file).map(|p| short(p)).unwrap_or_default();
        bar.set_position(c.bytes + c.frames * RECORD_HEADER);
        bar.set_message(format!(
            "{name}: {} packets ({:.0}/s), {} calls",
            c.frames,
            c.frames as f64 / secs,
            c.calls_started
        ));
    }

    /// Clear the line (the summary follows).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn short(p: &Path) -> String {
    p.file_name().unwrap_or(p.as_os_str()).to_string_lossy().into_owned()
}
