//! Two mirrors of one packet: a site that mirrors a PBX port over a tunnel (GRE, ERSPAN,
//! VXLAN) and also through a SPAN port, or from two switches, hands us every packet twice.
//! This remembers a fingerprint of each whole IP packet for a short window of packet time
//! and reports a copy that arrives again within the window *by another path* (`Via::path`)
//! so the decoder drops it (`Drop::MirrorDuplicate`) before it can double a call's SIP, RTP
//! counts or recording samples.
//! May use: `time`, foldhash. Invariants: a packet seen again by the same path is never a
//! duplicate (UDP retransmissions, `tcpdump -i any` seeing lo twice, TCP retransmissions
//! stay what they were); the TTL/hop limit and IPv4 header checksum are left out of the
//! fingerprint, since a copy taken one router further differs only there; state is bounded
//! (`MAX_ENTRIES`) and forgotten on packet time, never a clock; a window of 0 disables it.

use crate::time::{Dur, Ts};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

/// Fingerprints kept at most (about 1.5 MiB): more than a 10 ms window holds at 1 Mpps.
const MAX_ENTRIES: usize = 65_536;

type Fixed = foldhash::fast::FixedState;

pub(crate) struct MirrorDedupe {
    window: Dur,
    /// Fingerprint → (when, by which path) it was last seen.
    seen: HashMap<u64, (Ts, u64), Fixed>,
    /// Fingerprints in arrival order, to forget them when they leave the window.
    order: VecDeque<(Ts, u64)>,
}

impl MirrorDedupe {
    pub(crate) fn new(window: Dur) -> MirrorDedupe {
        MirrorDedupe { window, seen: HashMap::with_hasher(Fixed::with_seed(0x3d)), order: VecDeque::new() }
    }

    /// Whether `packet` (a whole IP packet) is a copy, by another path, of one seen within
    /// the window. Remembers it otherwise.
    pub(crate) fn is_duplicate(&mut self, ts: Ts, packet: &[u8], path: u64) -> bool {
        if self.window <= Dur::ZERO {
            return false;
        }
        while let Some(&(t, key)) = self.order.front() {
            if ts.since(t) <= self.window && self.order.len() < MAX_ENTRIES {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&key).is_some_and(|e| e.0 == t) {
                self.seen.remove(&key);
            }
        }
        let key = fingerprint(packet);
        if let Some(&(t, p)) = self.seen.get(&key) {
            if p != path && ts.since(t).as_micros().saturating_abs() <= self.window.as_micros() {
                return true;
            }
        }
        self.seen.insert(key, (ts, path));
        self.order.push_back((ts, key));
        false
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

/// A hash of the IP packet without the fields a router changes on the way.
fn fingerprint(p: &[u8]) -> u64 {
    let mut h = Fixed::with_seed(0x51).build_hasher();
    match p.first().map(|b| b >> 4) {
        Some(4) if p.len() >= 20 => {
            h.write(&p[..8]);
            h.write(&p[9..10]);
            h.write(&p[12..]);
        }
        Some(6) if p.len() >= 40 => {
            h.write(&p[..7]);
            h.write(&p[8..]);
        }
        _ => h.write(p),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::test_util::ipv4_udp;

    #[test]
    fn another_path_within_the_window_is_a_duplicate() {
        let mut d = MirrorDedupe::new(Dur::from_millis(10));
        let p = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"INVITE");
        assert!(!d.is_duplicate(Ts(1_000), &p, 0));
        // The tunnel copy 2 ms later, one hop further (TTL and checksum differ).
        let mut q = p.clone();
        q[8] -= 1;
        q[10] ^= 0x55;
        assert!(d.is_duplicate(Ts(3_000), &q, 77));
        // The same path again is a real second send (a retransmission), kept.
        assert!(!d.is_duplicate(Ts(4_000), &p, 0));
        // Out of the window: kept.
        assert!(!d.is_duplicate(Ts(30_000), &q, 77));
        // Another packet is never a duplicate.
        let other = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"INVITF");
        assert!(!d.is_duplicate(Ts(30_001), &other, 5));
        // Old entries are forgotten.
        assert!(!d.is_duplicate(Ts(1_000_000), &other, 6));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn zero_window_disables_and_state_is_bounded() {
        let mut off = MirrorDedupe::new(Dur::ZERO);
        let p = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"x");
        assert!(!off.is_duplicate(Ts(1), &p, 0));
        assert!(!off.is_duplicate(Ts(1), &p, 1));
        let mut d = MirrorDedupe::new(Dur::from_secs(1000));
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            d.is_duplicate(Ts(1), &i.to_be_bytes(), 0);
        }
        assert!(d.len() <= MAX_ENTRIES);
    }
}
