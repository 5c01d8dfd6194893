//! Allocations per packet (issue 20: "no allocation per packet in the steady state"), run
//! by hand: `cargo bench --bench alloc [-- FILE.pcap]` (default: the 100-call synthetic
//! capture in tests/fixtures/public). A counting global allocator wraps the system one;
//! the capture is replayed through the real `FileCapture` and `Engine` (no sinks: what the
//! pipeline itself allocates), and the allocations are counted apart for reading frames
//! and for the engine, after a warm-up of the first tenth of the frames. Prints
//! allocations and bytes per packet, and per packet kind (SIP / RTP / other) for the
//! engine. Then the engine's memory per tracked call: the live heap (bytes allocated and
//! not yet freed) above what it was before the first frame, at the moment the most calls
//! were tracked (in progress or lingering after their end), divided by those calls. Run it
//! on a capture with many calls at once (`scripts/bench-replay` makes one of 10,000).

use callwarden::capture::file::FileCapture;
use callwarden::pipeline::Driver;
use callwarden_core::config::Config;
use callwarden_core::Engine;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not freed.
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counts() -> (u64, u64) {
    (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed))
}

#[derive(Default)]
struct Tally {
    packets: u64,
    allocs: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, before: (u64, u64), after: (u64, u64)) {
        self.packets += 1;
        self.allocs += after.0 - before.0;
        self.bytes += after.1 - before.1;
    }
    fn line(&self, what: &str) {
        let per = |v: u64| v as f64 / self.packets.max(1) as f64;
        println!(
            "  {what:<16} {:>9} packets  {:>8.2} allocations/packet  {:>9.1} bytes/packet",
            self.packets,
            per(self.allocs),
            per(self.bytes)
        );
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; the capture is the first argument that is a path.
    let path = std::env::args().skip(1).find(|a| !a.starts_with("--")).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/public/gen-synth-100-calls.pcap")
    });
    let mut frames = 0u64;
    let mut cap = FileCapture::open(&path)?;
    while cap.next_frame()?.is_some() {
        frames += 1;
    }
    let warm = frames / 10;

    let mut driver = Driver::new(Engine::new(&Config::default())?, Vec::new());
    let mut cap = FileCapture::open(&path)?;
    let (mut read, mut sip, mut rtp, mut other) =
        (Tally::default(), Tally::default(), Tally::default(), Tally::default());
    let mut n = 0u64;
    // The live heap before the first frame (engine built, capture open), and at the most
    // calls tracked so far.
    let live0 = LIVE.load(Ordering::Relaxed);
    let (mut peak_calls, mut peak_live) = (0usize, live0);
    loop {
        let before = counts();
        let Some(frame) = cap.next_frame()? else { break };
        let after_read = counts();
        let c = driver.engine().counters();
        let (sip0, rtp0) = (c.sip_messages, c.rtp_packets);
        // The driver as replay runs it (timers, then the frame, then its outputs drained),
        // with no sink: what the pipeline itself allocates.
        driver.feed(frame);
        let after = counts();
        let tracked = driver.engine().tracked_calls();
        if tracked > peak_calls {
            (peak_calls, peak_live) = (tracked, LIVE.load(Ordering::Relaxed));
        }
        n += 1;
        if n <= warm {
            continue;
        }
        read.add(before, after_read);
        let c = driver.engine().counters();
        let kind = if c.sip_messages > sip0 {
            &mut sip
        } else if c.rtp_packets > rtp0 {
            &mut rtp
        } else {
            &mut other
        };
        kind.add(after_read, after);
    }
    println!("allocations per packet, {} after a warm-up of {warm} frames: {}", n - warm, path.display());
    read.line("reading frames");
    sip.line("engine: SIP");
    rtp.line("engine: RTP");
    other.line("engine: other");
    let grown = peak_live - live0;
    println!(
        "memory per tracked call: {:.0} bytes ({:.1} MiB of heap more than before the first frame at the peak of {peak_calls} calls tracked at once)",
        grown as f64 / peak_calls.max(1) as f64,
        grown as f64 / 1048576.0
    );
    Ok(())
}
