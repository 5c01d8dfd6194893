//! Live sources: what every live capture thread shares (`OwnedFrame`, `SourceStats`, the
//! bounded `FrameTx` into the driver) and libpcap capture on an interface
//! (`PcapSource`: block or immediate mode, BPF filter, snap length, kernel buffer size, kernel drop
//! counters). The HEP listener (`hep.rs`) uses the same plumbing.
//! May use: core `LinkType`/`Ts`, the pcap crate, crossbeam-channel. Invariants: a capture
//! thread never blocks on the pipeline: when the channel is full the frame is dropped and
//! counted (`queue_full`); the frame's time is the kernel's capture stamp, never a clock
//! read here; a source stops within one read timeout (`READ_TIMEOUT`) of its stop flag
//! (libpcap sources also need their `breaker()` used: see there).

use callwarden_core::{Frame, LinkType, Ts};
use crossbeam_channel::{Sender, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a capture thread waits for a packet before it looks at its stop flag.
pub const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// How often the kernel's counters are read while capturing.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// A frame copied out of the capture buffer, to cross into the driver thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedFrame {
    pub ts: Ts,
    pub link: LinkType,
    pub bytes: Vec<u8>,
}

impl OwnedFrame {
    pub fn as_frame(&self) -> Frame<'_> {
        Frame { ts: self.ts, link: self.link, bytes: &self.bytes }
    }
}

/// Counters of one source, written by its thread, read by `/metrics`.
#[derive(Debug)]
pub struct SourceStats {
    /// "pcap:eth0", "hep:127.0.0.1:9060".
    pub name: String,
    /// Packets read from the source (whether or not the queue took them).
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Frames dropped because the driver's channel was full.
    pub queue_full: AtomicU64,
    /// Datagrams refused at the door (HEP: sender not allowed, or a wrong auth key).
    pub refused: AtomicU64,
    /// libpcap's ps_recv / ps_drop / ps_ifdrop, widened to 64 bits.
    pub kernel_received: AtomicU64,
    pub kernel_dropped: AtomicU64,
    pub if_dropped: AtomicU64,
    /// Whether the kernel counters mean anything for this source (libpcap only).
    has_kernel_stats: bool,
}

impl SourceStats {
    pub fn new(name: impl Into<String>, has_kernel_stats: bool) -> SourceStats {
        SourceStats {
            name: name.into(),
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            kernel_received: AtomicU64::new(0),
            kernel_dropped: AtomicU64::new(0),
            if_dropped: AtomicU64::new(0),
            has_kernel_stats,
        }
    }

    pub fn kernel_stats(&self) -> bool {
        self.has_kernel_stats
    }
}

/// The sending side of the capture → driver channel, with the source's counters.
#[derive(Clone)]
pub struct FrameTx {
    tx: Sender<OwnedFrame>,
    stats: Arc<SourceStats>,
}

impl FrameTx {
    pub fn new(tx: Sender<OwnedFrame>, stats: Arc<SourceStats>) -> FrameTx {
        FrameTx { tx, stats }
    }

    pub fn stats(&self) -> &Arc<SourceStats> {
        &self.stats
    }

    /// Count the frame and queue it; a full queue drops it (counted), never waits.
    /// `false` when the driver has gone (the source should stop).
    pub fn send(&self, ts: Ts, link: LinkType, bytes: &[u8]) -> bool {
        self.stats.packets.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        match self.tx.try_send(OwnedFrame { ts, link, bytes: bytes.to_vec() }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// What to capture on one interface (from `[capture]`).
#[derive(Clone, Debug)]
pub struct PcapOptions {
    pub interface: String,
    pub bpf: String,
    pub snaplen: u32,
    pub buffer_mib: u32,
    /// 0: immediate mode; else the kernel's block timeout, ms (see `[capture].batch_ms`).
    pub batch_ms: u32,
}

/// An open, filtered libpcap capture, not yet reading.
pub struct PcapSource {
    opts: PcapOptions,
    cap: pcap::Capture<pcap::Active>,
    link: LinkType,
}

/// Why an interface could not be opened: one line, with a hint when it is permissions.
#[derive(Debug, thiserror::Error)]
#[error("cannot capture on interface {interface:?}: {what}{hint}")]
pub struct OpenError {
    pub interface: String,
    pub what: String,
    hint: &'static str,
}

impl PcapSource {
    /// Open the interface in immediate mode with the filter applied. Fails with one
    /// line naming the interface (unknown device, no permission, bad filter).
    pub fn open(opts: PcapOptions) -> Result<PcapSource, OpenError> {
        let fail = |e: pcap::Error| {
            let what = e.to_string();
            let perm = what.contains("ermission") || what.contains("not permitted");
            OpenError {
                interface: opts.interface.clone(),
                what,
                hint: if perm { " (needs root or the CAP_NET_RAW and CAP_NET_ADMIN capabilities)" } else { "" },
            }
        };
        let snaplen = i32::try_from(opts.snaplen.clamp(64, 262_144)).unwrap_or(65_535);
        let buffer = i32::try_from(u64::from(opts.buffer_mib.max(1)) * 1024 * 1024).unwrap_or(i32::MAX);
        // Immediate mode wakes this thread for every packet; under load that costs more CPU
        // than the work and the kernel ring overflows (measured: scripts/bench-load). In
        // block mode libpcap uses the read timeout as the block's retire timeout.
        let immediate = opts.batch_ms == 0;
        let timeout = if immediate {
            i32::try_from(READ_TIMEOUT.as_millis()).unwrap_or(100)
        } else {
            i32::try_from(opts.batch_ms.min(1000)).unwrap_or(10)
        };
        let mut cap = pcap::Capture::from_device(opts.interface.as_str())
            .map_err(fail)?
            // A mirror (SPAN) port delivers frames for other hosts: promiscuous mode.
            .promisc(true)
            .immediate_mode(immediate)
            .snaplen(snaplen)
            .buffer_size(buffer)
            .timeout(timeout)
            .open()
            .map_err(fail)?;
        if !opts.bpf.trim().is_empty() {
            cap.filter(&opts.bpf, true).map_err(|e| OpenError {
                interface: opts.interface.clone(),
                what: format!("bad BPF filter {:?}: {e}", opts.bpf),
                hint: "",
            })?;
        }
        // libpcap reports DLT_ values; the ones we decode have the same number as
        // their LINKTYPE_ (DLT_RAW's 12/14 are mapped by `from_number`).
        let dlt = cap.get_datalink().0;
        let link = LinkType::from_number(u32::try_from(dlt).unwrap_or(u32::MAX));
        Ok(PcapSource { opts, cap, link })
    }

    pub fn name(&self) -> String {
        format!("pcap:{}", self.opts.interface)
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// What wakes the capture thread when it is told to stop. Needed because libpcap in
    /// immediate mode on Linux (TPACKET_V3) keeps polling past the read timeout while no
    /// packet comes, so the stop flag alone is not seen on a quiet interface;
    /// `pcap_breakloop` wakes its poll (an eventfd) and `pcap_next_ex` returns.
    pub fn breaker(&mut self) -> pcap::BreakLoop {
        self.cap.breakloop_handle()
    }

    /// Read on a thread of its own until `stop` is set or the driver goes away.
    pub fn spawn(self, out: FrameTx, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        let name = format!("capture-{}", self.opts.interface);
        std::thread::Builder::new().name(name).spawn(move || self.run(&out, &stop))
    }

    fn run(mut self, out: &FrameTx, stop: &AtomicBool) {
        let iface = self.opts.interface.clone();
        tracing::info!(interface = %iface, link = ?self.link, bpf = %self.opts.bpf, "capturing");
        let mut kernel = KernelCounters::default();
        let mut last_stats = Instant::now();
        let mut errors = 0u32;
        while !stop.load(Ordering::Relaxed) {
            match self.cap.next_packet() {
                Ok(p) => {
                    errors = 0;
                    let tv = p.header.ts;
                    // tv_usec is below 10^6 from the kernel; clamp rather than trust it.
                    let usec = u32::try_from(tv.tv_usec).unwrap_or(0).min(999_999);
                    // time_t is 32 bits on some targets: widen explicitly.
                    #[allow(clippy::useless_conversion)]
                    let ts = Ts::from_parts(i64::from(tv.tv_sec), usec, false);
                    if !out.send(ts, self.link, p.data) {
                        break;
                    }
                }
                Err(pcap::Error::TimeoutExpired) => {}
                // PCAP_ERROR_BREAK: `breaker()` was used, i.e. we are stopping.
                Err(pcap::Error::NoMorePackets) if stop.load(Ordering::Relaxed) => break,
                Err(e) => {
                    // An interface that went down: say so, back off, keep trying.
                    errors += 1;
                    if errors == 1 || errors.is_power_of_two() {
                        tracing::error!(interface = %iface, error = %e, "capture error");
                    }
                    std::thread::sleep(READ_TIMEOUT);
                }
            }
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = Instant::now();
                self.update_stats(&mut kernel, out.stats());
            }
        }
        self.update_stats(&mut kernel, out.stats());
        tracing::info!(
            interface = %iface,
            packets = out.stats().packets.load(Ordering::Relaxed),
            kernel_drops = out.stats().kernel_dropped.load(Ordering::Relaxed),
            queue_full = out.stats().queue_full.load(Ordering::Relaxed),
            "capture stopped"
        );
    }

    fn update_stats(&mut self, k: &mut KernelCounters, stats: &SourceStats) {
        match self.cap.stats() {
            Ok(s) => k.update(s.received, s.dropped, s.if_dropped, stats),
            Err(e) => tracing::debug!(error = %e, "cannot read capture statistics"),
        }
    }
}

/// libpcap's counters are 32-bit and wrap; keep 64-bit totals from their differences.
#[derive(Default, Debug)]
struct KernelCounters {
    last: Option<(u32, u32, u32)>,
}

impl KernelCounters {
    fn update(&mut self, recv: u32, drop: u32, ifdrop: u32, stats: &SourceStats) {
        let (r0, d0, i0) = self.last.unwrap_or((0, 0, 0));
        stats.kernel_received.fetch_add(u64::from(recv.wrapping_sub(r0)), Ordering::Relaxed);
        stats.kernel_dropped.fetch_add(u64::from(drop.wrapping_sub(d0)), Ordering::Relaxed);
        stats.if_dropped.fetch_add(u64::from(ifdrop.wrapping_sub(i0)), Ordering::Relaxed);
        self.last = Some((recv, drop, ifdrop));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_and_counts_never_blocks() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let stats = Arc::new(SourceStats::new("test", false));
        let out = FrameTx::new(tx, stats.clone());
        for i in 0..5u8 {
            assert!(out.send(Ts(i64::from(i)), LinkType::Ethernet, &[i; 3]));
        }
        assert_eq!(stats.packets.load(Ordering::Relaxed), 5);
        assert_eq!(stats.bytes.load(Ordering::Relaxed), 15);
        assert_eq!(stats.queue_full.load(Ordering::Relaxed), 3);
        let got: Vec<OwnedFrame> = rx.try_iter().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], OwnedFrame { ts: Ts(1), link: LinkType::Ethernet, bytes: vec![1; 3] });
        drop(rx);
        assert!(!out.send(Ts(9), LinkType::Ethernet, &[]), "a gone driver stops the source");
    }

    #[test]
    fn kernel_counters_widen_across_wraps() {
        let stats = SourceStats::new("test", true);
        let mut k = KernelCounters::default();
        k.update(10, 1, 0, &stats);
        k.update(u32::MAX - 5, 2, 0, &stats);
        k.update(4, 3, 1, &stats); // ps_recv wrapped: 10 more packets
        assert_eq!(stats.kernel_received.load(Ordering::Relaxed), u64::from(u32::MAX - 5) + 10);
        assert_eq!(stats.kernel_dropped.load(Ordering::Relaxed), 3);
        assert_eq!(stats.if_dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn unknown_interface_is_one_clear_line() {
        let opts = PcapOptions {
            interface: "cw-no-such0".into(),
            bpf: "udp".into(),
            snaplen: 65535,
            buffer_mib: 1,
            batch_ms: 10,
        };
        let e = PcapSource::open(opts).err().expect("no such interface");
        let msg = e.to_string();
        assert!(msg.starts_with("cannot capture on interface \"cw-no-such0\": "), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn a_quiet_capture_stops_promptly() {
        // Needs CAP_NET_RAW (root here and in CI): failing to open `lo` fails the test.
        // A filter that matches nothing: the thread sits in libpcap's poll until woken.
        let opts = PcapOptions {
            interface: "lo".into(),
            bpf: "udp port 7".into(),
            snaplen: 65535,
            buffer_mib: 1,
            batch_ms: 10,
        };
        let mut src = PcapSource::open(opts).unwrap_or_else(|e| panic!("{e} (this test needs CAP_NET_RAW)"));
        let breaker = src.breaker();
        let (tx, _rx) = crossbeam_channel::bounded(4);
        let stats = Arc::new(SourceStats::new(src.name(), true));
        let stop = Arc::new(AtomicBool::new(false));
        let h = src.spawn(FrameTx::new(tx, stats), stop.clone()).unwrap();
        std::thread::sleep(READ_TIMEOUT * 3);
        let t = Instant::now();
        stop.store(true, Ordering::Relaxed);
        breaker.breakloop();
        // Joined on a helper thread so a capture that does not stop fails the test
        // instead of hanging it.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || done_tx.send(h.join().is_ok()));
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(2)), Ok(true), "the capture did not stop");
        assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    }

    #[test]
    fn bad_filter_is_reported() {
        // `lo` exists everywhere these tests run (root in CI); nothing is read from it.
        let opts = PcapOptions {
            interface: "lo".into(),
            bpf: "udp and (".into(),
            snaplen: 65535,
            buffer_mib: 1,
            batch_ms: 10,
        };
        match PcapSource::open(opts) {
            Err(e) => assert!(e.to_string().contains("bad BPF filter"), "{e}"),
            Ok(_) => panic!("a broken filter was accepted"),
        }
    }
}
