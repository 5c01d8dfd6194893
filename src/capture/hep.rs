//! The HEP listener: a UDP socket that receives HEPv3 (and HEPv2) packets mirrored by a
//! PBX or proxy (Kamailio/OpenSIPS siptrace, FreeSWITCH, Asterisk res_hep, captagent) and
//! hands each one, unparsed, to the driver as a `LinkType::Hep` frame. The engine's own
//! decoder (core `decode::hep`, written to be panic-free on any input) unwraps it, checks
//! the capture-id allow-list and counts what is malformed (`Drop::BadHep`), so a flood of
//! garbage costs one copy per packet and never stops the listener.
//! May use: `capture::live` plumbing, socket2 (receive buffer). Invariants: never blocks on
//! the pipeline (full queue → counted drop); the frame's time is the time of receipt (the
//! datagram inside takes the HEP header's own timestamp when it has one); stops within
//! one read timeout of its stop flag.

use super::live::{FrameTx, READ_TIMEOUT};
use callwarden_core::{LinkType, Ts};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

/// Socket receive buffer asked for: a burst of mirrored SIP (a proxy restarting, a
/// registration storm) waits here while the pipeline catches up.
const RCVBUF: usize = 8 * 1024 * 1024;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Why the listener could not start: one line naming the address.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for HEP on {addr}: {what}")]
pub struct BindError {
    pub addr: String,
    pub what: String,
}

/// A bound HEP socket, not yet reading.
pub struct HepListener {
    socket: UdpSocket,
    local: SocketAddr,
}

impl HepListener {
    /// Bind `addr` ("127.0.0.1:9060", "[::]:9060").
    pub fn bind(addr: &str) -> Result<HepListener, BindError> {
        let fail = |what: String| BindError { addr: addr.to_string(), what };
        let sa: SocketAddr = addr.parse().map_err(|e| fail(format!("not an address:port ({e})")))?;
        let domain = socket2::Domain::for_address(sa);
        let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
            .map_err(|e| fail(e.to_string()))?;
        // A smaller buffer than asked (net.core.rmem_max) is fine; the kernel caps it.
        if let Err(e) = sock.set_recv_buffer_size(RCVBUF) {
            tracing::debug!(error = %e, "cannot enlarge the HEP socket's receive buffer");
        }
        sock.bind(&sa.into()).map_err(|e| fail(e.to_string()))?;
        let socket: UdpSocket = sock.into();
        socket.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| fail(e.to_string()))?;
        let local = socket.local_addr().map_err(|e| fail(e.to_string()))?;
        Ok(HepListener { socket, local })
    }

    /// The address actually bound (the port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn name(&self) -> String {
        format!("hep:{}", self.local)
    }

    pub fn spawn(self, out: FrameTx, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new().name("capture-hep".into()).spawn(move || self.run(&out, &stop))
    }

    fn run(self, out: &FrameTx, stop: &AtomicBool) {
        tracing::info!(listen = %self.local, "receiving HEP");
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !stop.load(Ordering::Relaxed) {
            match self.socket.recv_from(&mut buf) {
                Ok((n, _peer)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if !out.send(received_at(), LinkType::Hep, data) {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                // ICMP errors surface as ECONNREFUSED on some kernels; nothing to do.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    tracing::error!(listen = %self.local, error = %e, "HEP receive error");
                    std::thread::sleep(READ_TIMEOUT);
                }
            }
        }
        tracing::info!(
            listen = %self.local,
            packets = out.stats().packets.load(Ordering::Relaxed),
            queue_full = out.stats().queue_full.load(Ordering::Relaxed),
            "HEP listener stopped"
        );
    }
}

/// Time of receipt: the frame's stamp (used only when the HEP header has no time of its
/// own). Read from the system clock, as libpcap's stamps are.
fn received_at() -> Ts {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => Ts(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        Err(_) => Ts::EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::live::{OwnedFrame, SourceStats};
    use std::time::Duration;

    #[test]
    fn bind_errors_are_one_line() {
        let e = HepListener::bind("not-an-address").err().unwrap();
        assert!(e.to_string().starts_with("cannot listen for HEP on not-an-address: not an address:port"), "{e}");
        let first = HepListener::bind("127.0.0.1:0").unwrap();
        let taken = first.local_addr().to_string();
        let e = HepListener::bind(&taken).err().unwrap();
        assert!(e.to_string().starts_with(&format!("cannot listen for HEP on {taken}: ")), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn datagrams_become_hep_frames_and_stop_is_prompt() {
        let l = HepListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr();
        let (tx, rx) = crossbeam_channel::bounded(16);
        let stats = Arc::new(SourceStats::new(l.name(), false));
        let stop = Arc::new(AtomicBool::new(false));
        let h = l.spawn(FrameTx::new(tx, stats.clone()), stop.clone()).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = received_at();
        peer.send_to(b"HEP3 not really", addr).unwrap();
        peer.send_to(&[], addr).unwrap();
        let f: OwnedFrame = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((f.link, f.bytes.as_slice()), (LinkType::Hep, &b"HEP3 not really"[..]));
        assert!(f.ts >= before && f.ts <= received_at());
        let empty = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(empty.bytes.is_empty(), "an empty datagram is passed on for the engine to count");
        let t = std::time::Instant::now();
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        assert!(t.elapsed() < READ_TIMEOUT * 5);
        assert_eq!(stats.packets.load(Ordering::Relaxed), 2);
    }
}
