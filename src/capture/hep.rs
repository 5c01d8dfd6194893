//! The HEP listener: a UDP socket that receives HEPv3 (and HEPv2) packets mirrored by a
//! PBX or proxy (Kamailio/OpenSIPS siptrace, FreeSWITCH, Asterisk res_hep, captagent) and
//! hands each one, unparsed, to the driver as a `LinkType::Hep` frame. The engine's own
//! decoder (core `decode::hep`, written to be panic-free on any input) unwraps it, checks
//! the capture-id allow-list and counts what is malformed (`DropReason::BadHep`), so a flood of
//! garbage costs one copy per packet and never stops the listener.
//! HEP carries no authentication of its own, so the listener decides who may send it: only
//! senders inside `[capture].hep_allow` (default loopback) and, when `hep_auth_key` is set,
//! only HEPv3 datagrams whose auth-key chunk (type 14) holds it; the rest are counted
//! (`refused`) and never reach the engine.
//! May use: `capture::live` plumbing, socket2 (receive buffer), core `Cidr`. Invariants:
//! never blocks on the pipeline (full queue → counted drop); the frame's time is the time of
//! receipt (the datagram inside takes the HEP header's own timestamp when the engine
//! believes it); stops within one read timeout of its stop flag.

use super::live::{FrameTx, READ_TIMEOUT};
use callwarden_core::config::{Capture, Cidr};
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

/// Who may send HEP: from `[capture]` (`hep_allow`, `hep_auth_key`).
#[derive(Clone, Debug)]
pub struct HepGate {
    allow: Vec<Cidr>,
    auth_key: Option<Vec<u8>>,
}

impl HepGate {
    /// The config was validated: a block that does not parse (impossible after
    /// `Config::parse`) admits nobody rather than everybody.
    pub fn from_config(c: &Capture) -> HepGate {
        HepGate {
            allow: c.hep_allow.iter().filter_map(|b| Cidr::parse(b)).collect(),
            auth_key: (!c.hep_auth_key.is_empty()).then(|| c.hep_auth_key.as_bytes().to_vec()),
        }
    }

    pub fn admits(&self, peer: SocketAddr, data: &[u8]) -> bool {
        if !self.allow.iter().any(|b| b.contains(peer.ip())) {
            return false;
        }
        match &self.auth_key {
            None => true,
            Some(key) => auth_key_chunk(data).is_some_and(|k| k == key.as_slice()),
        }
    }
}

/// The body of a HEPv3 datagram's auth-key chunk (vendor 0, type 14), if it has one.
/// A short walk of the chunk headers only: the engine's decoder does the full parse later.
fn auth_key_chunk(data: &[u8]) -> Option<&[u8]> {
    if data.get(..4)? != b"HEP3" {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([*data.get(4)?, *data.get(5)?])).min(data.len());
    let mut at = 6;
    while at + 6 <= total {
        let field = |i: usize| data.get(at + i..at + i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let (vendor, kind, len) = (field(0)?, field(2)?, usize::from(field(4)?));
        if len < 6 || at + len > total {
            return None;
        }
        if vendor == 0 && kind == 14 {
            return data.get(at + 6..at + len);
        }
        at += len;
    }
    None
}

/// A bound HEP socket, not yet reading.
pub struct HepListener {
    socket: UdpSocket,
    local: SocketAddr,
    gate: HepGate,
}

impl HepListener {
    /// Bind `addr` ("127.0.0.1:9060", "[::]:9060").
    pub fn bind(addr: &str, gate: HepGate) -> Result<HepListener, BindError> {
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
        Ok(HepListener { socket, local, gate })
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
                Ok((n, peer)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if !self.gate.admits(peer, data) {
                        out.stats().refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
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
            refused = out.stats().refused.load(Ordering::Relaxed),
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

    /// A listener on 127.0.0.1:<any> reading into a channel, and a peer to send from.
    struct Running {
        addr: SocketAddr,
        rx: crossbeam_channel::Receiver<OwnedFrame>,
        stats: Arc<SourceStats>,
        stop: Arc<AtomicBool>,
        h: JoinHandle<()>,
        peer: UdpSocket,
    }

    fn running(gate: HepGate) -> Running {
        let l = HepListener::bind("127.0.0.1:0", gate).unwrap();
        let addr = l.local_addr();
        let (tx, rx) = crossbeam_channel::bounded(16);
        let stats = Arc::new(SourceStats::new(l.name(), false));
        let stop = Arc::new(AtomicBool::new(false));
        let h = l.spawn(FrameTx::new(tx, stats.clone()), stop.clone()).unwrap();
        Running { addr, rx, stats, stop, h, peer: UdpSocket::bind("127.0.0.1:0").unwrap() }
    }

    fn loopback() -> HepGate {
        HepGate::from_config(&Capture::default())
    }

    fn hep3(chunks: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, b) in chunks {
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(b.len() as u16 + 6).to_be_bytes());
            body.extend_from_slice(b);
        }
        let mut p = b"HEP3".to_vec();
        p.extend_from_slice(&(body.len() as u16 + 6).to_be_bytes());
        p.extend_from_slice(&body);
        p
    }

    #[test]
    fn the_gate_admits_allowed_senders_with_the_key() {
        let peer = |s: &str| s.parse::<SocketAddr>().unwrap();
        let d = hep3(&[(1, &[2]), (14, b"s3cret"), (15, b"INVITE")]);
        let g = loopback();
        assert!(g.admits(peer("127.0.0.1:5000"), &d) && g.admits(peer("[::1]:5000"), b"anything"));
        assert!(!g.admits(peer("10.0.0.1:5000"), &d), "default: loopback only");
        let keyed = HepGate::from_config(&Capture {
            hep_allow: vec!["10.0.0.0/8".into()],
            hep_auth_key: "s3cret".into(),
            ..Capture::default()
        });
        assert!(keyed.admits(peer("10.9.9.9:5000"), &d));
        assert!(!keyed.admits(peer("127.0.0.1:5000"), &d), "not in the allowed networks");
        assert!(!keyed.admits(peer("10.9.9.9:5000"), &hep3(&[(1, &[2]), (14, b"wrong"), (15, b"x")])));
        assert!(!keyed.admits(peer("10.9.9.9:5000"), &hep3(&[(1, &[2]), (15, b"x")])), "no key chunk");
        assert!(!keyed.admits(peer("10.9.9.9:5000"), &d[..22]), "cut inside the key chunk");
        assert!(!keyed.admits(peer("10.9.9.9:5000"), b"\x02\x10\x02\x11"), "HEPv2 has no key");
        // A vendor's chunk 14 is not the key.
        let mut vendor = hep3(&[(14, b"s3cret")]);
        vendor[7] = 7;
        assert!(!keyed.admits(peer("10.9.9.9:5000"), &vendor));
    }

    #[test]
    fn refused_senders_never_reach_the_pipeline() {
        let gate = HepGate::from_config(&Capture { hep_allow: vec!["10.0.0.0/8".into()], ..Capture::default() });
        let Running { addr, rx, stats, stop, h, peer } = running(gate);
        for _ in 0..3 {
            peer.send_to(b"HEP3 from loopback", addr).unwrap();
        }
        let t = std::time::Instant::now();
        while stats.refused.load(Ordering::Relaxed) < 3 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        assert_eq!(stats.refused.load(Ordering::Relaxed), 3);
        assert!(rx.try_recv().is_err(), "nothing was passed on");
    }

    #[test]
    fn bind_errors_are_one_line() {
        let e = HepListener::bind("not-an-address", loopback()).err().unwrap();
        assert!(e.to_string().starts_with("cannot listen for HEP on not-an-address: not an address:port"), "{e}");
        let first = HepListener::bind("127.0.0.1:0", loopback()).unwrap();
        let taken = first.local_addr().to_string();
        let e = HepListener::bind(&taken, loopback()).err().unwrap();
        assert!(e.to_string().starts_with(&format!("cannot listen for HEP on {taken}: ")), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn datagrams_become_hep_frames_and_stop_is_prompt() {
        let Running { addr, rx, stats, stop, h, peer } = running(loopback());
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
