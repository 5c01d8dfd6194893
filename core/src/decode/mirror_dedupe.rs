//! Two mirrors of one packet: a site that mirrors a PBX port over a tunnel (GRE, ERSPAN,
//! VXLAN) and also through a SPAN port, or from two switches, hands us every packet twice.
//! This remembers a fingerprint of each whole IP packet for a short window of packet time
//! and reports a copy that arrives again within the window *by another path* (`Via::path`)
//! so the decoder drops it (`DropReason::MirrorDuplicate`) before it can double a call's SIP, RTP
//! counts or recording samples.
//! May use: `time`, foldhash. Invariants: a packet seen again by the same path is never a
//! duplicate (UDP retransmissions, `tcpdump -i any` seeing lo twice, TCP retransmissions
//! stay what they were); the TTL/hop limit and IPv4 header checksum are left out of the
//! fingerprint, since a copy taken one router further differs only there; state is bounded
//! (`SLOTS`) and judged on packet time, never a clock; a window of 0 disables it.

use crate::time::{Dur, Ts};
use std::hash::{BuildHasher, Hasher};

/// Slots of the fingerprint table (24 bytes each: 1.5 MiB), in sets of `WAYS`.
const SLOTS: usize = 1 << 16;
/// Slots per set. A packet's fingerprint picks a set, and a new packet takes the set's
/// oldest slot, so a copy is missed only when `WAYS` other packets landed in its set
/// within the window. With one slot per set (direct-mapped) any one did: on
/// `scripts/bench-tunnel`'s two-mirror capture (500 calls, 378,368 packets each seen
/// twice) 1,174 copies (0.31 %) were missed and doubled their RTP counts; with 4 ways, 0.
const WAYS: usize = 4;
const SETS: usize = SLOTS / WAYS;

type Fixed = foldhash::fast::FixedState;

/// One remembered packet: its fingerprint, when (`Ts` micros) and by which path it was
/// seen. A tuple of integers rather than a struct so `vec![(0, 0, 0); SLOTS]` is a zeroed
/// allocation (calloc: untouched pages are never written) instead of a 1.5 MiB fill; an
/// all-zero slot is what `Default` gave, and the oldest of any set.
type Slot = (u64, i64, u64);

/// A small set-associative table rather than a map with an expiry queue: one hash and one
/// set of adjacent slots per packet, nothing to expire (a slot's time says whether it is
/// still in the window). Its cost is the fingerprint of every packet: about 0.07 of the
/// 0.40 CPU seconds of a plain 1.1 M-packet replay (`scripts/bench-tunnel`; a 4x smaller
/// table was no faster, so the hashing, not cache misses, dominates).
/// The table is allocated on the first packet, not in `new`: an engine built and dropped
/// without seeing an IP packet (config checks, one fuzz input per engine) never pays for it.
pub(crate) struct MirrorDedupe {
    window: Dur,
    slots: Vec<Slot>,
}

impl MirrorDedupe {
    pub(crate) fn new(window: Dur) -> MirrorDedupe {
        MirrorDedupe { window, slots: Vec::new() }
    }

    /// Whether `packet` (a whole IP packet) is a copy, by another path, of one seen within
    /// the window. Remembers it otherwise.
    pub(crate) fn is_duplicate(&mut self, ts: Ts, packet: &[u8], path: u64) -> bool {
        if self.window <= Dur::ZERO {
            return false;
        }
        if self.slots.is_empty() {
            self.slots = vec![(0, 0, 0); SLOTS];
        }
        let key = fingerprint(packet);
        let first = (key as usize % SETS) * WAYS;
        let Some(set) = self.slots.get_mut(first..first + WAYS) else { return false };
        let now = ts.as_micros();
        let window = self.window.as_micros();
        // The slot to write: this packet's own when it is in the set (a resend by the
        // same path is remembered afresh), else the oldest.
        let mut take = 0;
        let mut oldest = i64::MAX;
        for (i, &(seen_key, seen_ts, seen_path)) in set.iter().enumerate() {
            if seen_key == key && now.saturating_sub(seen_ts).saturating_abs() <= window {
                if seen_path != path {
                    return true;
                }
                take = i;
                break;
            }
            if seen_ts < oldest {
                oldest = seen_ts;
                take = i;
            }
        }
        if let Some(slot) = set.get_mut(take) {
            *slot = (key, now, path);
        }
        false
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
        // Old entries are out of the window.
        assert!(!d.is_duplicate(Ts(1_000_000), &other, 6));
    }

    #[test]
    fn a_copy_is_found_although_other_packets_share_its_set() {
        let mut d = MirrorDedupe::new(Dur::from_millis(10));
        // Packets until WAYS - 1 others have landed in the first one's set.
        let p = |i: u32| ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, &i.to_be_bytes());
        let set = |i: u32| fingerprint(&p(i)) as usize % SETS;
        let crowd: Vec<u32> = (1..).filter(|&i| set(i) == set(0)).take(WAYS - 1).collect();
        assert!(!d.is_duplicate(Ts(1_000), &p(0), 0));
        for &i in &crowd {
            assert!(!d.is_duplicate(Ts(1_100), &p(i), 0));
        }
        // Each one's copy by the other path, the first one's included.
        assert!(d.is_duplicate(Ts(2_000), &p(0), 1));
        for &i in &crowd {
            assert!(d.is_duplicate(Ts(2_000), &p(i), 1));
        }
        // One more packet in the set takes the oldest slot (the first packet's).
        let extra = (crowd[WAYS - 2] + 1..).find(|&i| set(i) == set(0)).unwrap();
        assert!(!d.is_duplicate(Ts(2_100), &p(extra), 0));
        assert!(!d.is_duplicate(Ts(2_200), &p(0), 1), "evicted: not known any more");
    }

    #[test]
    fn the_table_is_allocated_by_the_first_packet() {
        let mut d = MirrorDedupe::new(Dur::from_millis(10));
        assert!(d.slots.is_empty());
        let p = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"x");
        assert!(!d.is_duplicate(Ts(1), &p, 0));
        assert_eq!(d.slots.len(), SLOTS);
    }

    #[test]
    fn zero_window_disables() {
        let mut off = MirrorDedupe::new(Dur::ZERO);
        let p = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"x");
        assert!(!off.is_duplicate(Ts(1), &p, 0));
        assert!(!off.is_duplicate(Ts(1), &p, 1));
        assert!(off.slots.is_empty(), "a disabled table is never allocated");
    }
}
