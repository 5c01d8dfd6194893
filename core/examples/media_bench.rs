//! Benchmark of the recording timeline: N concurrent two-way calls from generated packets,
//! fed interleaved in packet-time order as the engine would, outputs drained as a recorder
//! would. Prints call-seconds of audio per CPU second (× real time, one core) and the
//! memory per active `CallAudio`, both as the timeline accounts it and as the allocator
//! sees it.
//!
//! `cargo run --release -p callwarden-core --example media_bench -- [calls] [seconds] [g711|g722]`
//!
//! This is a measuring tool outside the library: it reads the thread's CPU time
//! (/proc/thread-self/schedstat, else the monotonic clock), which the core never does.

use callwarden_core::media::{CallAudio, Codec, MediaOut};
use callwarden_core::rtp::RtpPacket;
use callwarden_core::time::Ts;
use callwarden_core::track::Leg;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes, to measure memory independently of `memory_bytes()`.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time of this thread in nanoseconds, or wall time if the kernel does not say.
fn cpu_ns(wall: &std::time::Instant) -> (u128, &'static str) {
    match std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|f| f.parse::<u128>().ok()))
    {
        Some(ns) => (ns, "thread CPU time"),
        None => (wall.elapsed().as_nanos(), "wall time"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let calls: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let codec = match args.get(3).map(String::as_str) {
        Some("g722") => Codec::G722,
        _ => Codec::Pcma,
    };
    let pt = if codec == Codec::G722 { 9 } else { 8 };

    // A pool of 20 ms payloads (160 bytes: G.711 or G.722 at 64 kbit/s), generated once.
    let pool: Vec<Vec<u8>> =
        (0..64u32).map(|k| (0..160u32).map(|j| ((k * 37 + j * 11) % 251) as u8 ^ 0x55).collect()).collect();
    let packets_per_leg = seconds * 50;
    let t0: i64 = 1_700_000_000_000_000;

    let live_before = LIVE.load(Ordering::Relaxed);
    let mut audio: Vec<CallAudio> = (0..calls).map(|_| CallAudio::default()).collect();
    let mut out: Vec<MediaOut> = Vec::with_capacity(64);
    let mut frames_out: u64 = 0;
    let mut mid = None;

    let wall = std::time::Instant::now();
    let (start_ns, clock) = cpu_ns(&wall);
    for i in 0..packets_per_leg {
        for (c, a) in audio.iter_mut().enumerate() {
            // Calls are spread over the 20 ms packet interval; the callee leg 7 ms later.
            let base = t0 + i as i64 * 20_000 + (c as i64 * 20_000) / calls as i64;
            for (leg, off, ssrc) in [(Leg::CallerToCallee, 0, 0x1000 + c as u32), (Leg::CalleeToCaller, 7_000, 0x2000)]
            {
                let payload = &pool[(i as usize + c + off as usize) % pool.len()];
                let pkt = RtpPacket {
                    payload_type: pt,
                    marker: false,
                    seq: (i as u16).wrapping_add(c as u16),
                    timestamp: (i as u32).wrapping_mul(160).wrapping_add(c as u32 * 1000),
                    ssrc,
                    payload,
                };
                a.push(Ts(base + off), leg, &pkt, &codec, &mut out);
                for o in out.drain(..) {
                    match o {
                        MediaOut::Audio(b) => frames_out += b.frames(),
                        MediaOut::Silence { frames, .. } => frames_out += frames,
                        _ => {}
                    }
                }
            }
        }
        if i == packets_per_leg / 2 {
            let accounted: usize = audio.iter().map(CallAudio::memory_bytes).sum();
            mid = Some((accounted, LIVE.load(Ordering::Relaxed) - live_before));
        }
    }
    for a in &mut audio {
        a.finish(&mut out);
        for o in out.drain(..) {
            if let MediaOut::Audio(b) = o {
                frames_out += b.frames();
            }
        }
    }
    let (end_ns, _) = cpu_ns(&wall);
    let cpu_s = (end_ns - start_ns) as f64 / 1e9;

    let rate = audio.first().and_then(|a| a.rate()).map_or(8000, |r| r.hz());
    let audio_s = frames_out as f64 / f64::from(rate);
    let call_s = (calls as u64 * seconds) as f64;
    let (accounted, live) = mid.unwrap_or((0, 0));
    println!("codec {} at {} Hz: {calls} concurrent calls × {seconds} s, both legs, 20 ms packets", codec.name(), rate);
    println!("  packets pushed        {}", calls as u64 * packets_per_leg * 2);
    println!("  recording length      {:.1} s per call (expected {seconds} s + 7 ms)", audio_s / calls as f64);
    println!("  CPU ({clock})  {cpu_s:.3} s");
    println!(
        "  speed                 {:.0} × real time per core ({:.0} call-seconds per CPU second)",
        call_s / cpu_s,
        call_s / cpu_s
    );
    println!("  packets per CPU second {:.0}", (calls as u64 * packets_per_leg * 2) as f64 / cpu_s);
    println!(
        "  memory per active call {} bytes (memory_bytes), {} bytes (allocator, live heap / calls)",
        accounted / calls,
        live / calls
    );
    if let Some(a) = audio.first() {
        println!("  worst-case bound       {} bytes per call (memory_bound: any input)", a.memory_bound());
    }
    let c = audio.first().map(|a| a.counters().clone()).unwrap_or_default();
    println!("  call 0 counters       {c:?}");
}
