//! IP fragment reassembly (IPv4 and IPv6), bounded and expired on packet time.
//! The per-datagram hole tracking is etherparse's `IpDefragBuf`; the pool around it is
//! ours because `etherparse::defrag::IpDefragPool` has no bound on entries or bytes, no
//! way to ask for the earliest deadline (the driver needs `next_expiry`), restarts an
//! entry's clock on every fragment, and keeps an entry after a conflicting fragment.
//! May use: etherparse. Invariants: at most `MAX_ENTRIES` datagrams and `MAX_BYTES` bytes
//! in reassembly; an entry lives at most `timeout` after its first fragment; every entry
//! that is given up counts exactly one drop (`FragmentTimeout`, or `BadFragment` for a
//! fragment that conflicts with the ones before it).

use super::deadlines::Deadlines;
use crate::counters::{Counters, DropReason};
use crate::time::{Dur, Ts};
use etherparse::defrag::{IpDefragBuf, IpFragRange};
use etherparse::{IpFragOffset, IpNumber};
use std::collections::HashMap;

/// Datagrams in reassembly at once.
const MAX_ENTRIES: usize = 1024;
/// Bytes held in reassembly at once (a datagram is at most 64 KiB).
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// Buffers kept for reuse after a reassembly completes.
const MAX_FREE: usize = 16;

/// Identifies the fragments of one datagram (RFC 791 / RFC 8200).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FragKey {
    V4 { src: [u8; 4], dst: [u8; 4], id: u16, proto: u8 },
    V6 { src: [u8; 16], dst: [u8; 16], id: u32 },
}

/// A reassembled payload; hand it back with `recycle` when done.
pub(crate) struct Reassembled {
    pub data: Vec<u8>,
    /// IPv4: the protocol; IPv6: the Next Header of the Fragment header.
    pub proto: u8,
    sections: Vec<IpFragRange>,
}

struct Entry {
    buf: IpDefragBuf,
    deadline: Ts,
    gen: u64,
}

pub(crate) struct DefragPool {
    timeout: Dur,
    active: HashMap<FragKey, Entry>,
    /// When each entry gives up (stale once the entry completed).
    deadlines: Deadlines<FragKey>,
    next_gen: u64,
    bytes: usize,
    free_data: Vec<Vec<u8>>,
    free_sections: Vec<Vec<IpFragRange>>,
}

impl DefragPool {
    pub fn new(timeout: Dur) -> DefragPool {
        DefragPool {
            timeout,
            active: HashMap::new(),
            deadlines: Deadlines::new(),
            next_gen: 0,
            bytes: 0,
            free_data: Vec::new(),
            free_sections: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Add one fragment (`offset` in 8-byte units). `Some` when it completed a datagram.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        ts: Ts,
        key: FragKey,
        offset: IpFragOffset,
        more: bool,
        payload: &[u8],
        proto: u8,
        counters: &mut Counters,
    ) -> Result<Option<Reassembled>, DropReason> {
        if !self.active.contains_key(&key) {
            while self.active.len() >= MAX_ENTRIES || (self.bytes > MAX_BYTES && !self.active.is_empty()) {
                self.evict_oldest(counters);
            }
            let data = self.free_data.pop().unwrap_or_default();
            let sections = self.free_sections.pop().unwrap_or_default();
            let gen = self.next_gen;
            self.next_gen += 1;
            let deadline = ts.saturating_add(self.timeout);
            self.active.insert(key, Entry { buf: IpDefragBuf::new(IpNumber(proto), data, sections), deadline, gen });
            self.deadlines.arm(deadline, gen, key);
        }
        let Some(entry) = self.active.get_mut(&key) else {
            return Err(DropReason::BadFragment);
        };
        let before = entry.buf.data().len();
        let added = entry.buf.add(offset, more, payload);
        let after = entry.buf.data().len();
        self.bytes = (self.bytes + after).saturating_sub(before);
        let complete = entry.buf.is_complete();
        if added.is_err() || complete {
            let Some(entry) = self.active.remove(&key) else {
                return Err(DropReason::BadFragment);
            };
            self.bytes = self.bytes.saturating_sub(entry.buf.data().len());
            let proto = entry.buf.ip_number().0;
            let (data, sections) = entry.buf.take_bufs();
            self.trim();
            if added.is_err() {
                self.keep(data, sections);
                return Err(DropReason::BadFragment);
            }
            return Ok(Some(Reassembled { data, proto, sections }));
        }
        Ok(None)
    }

    /// Give a reassembled buffer back for reuse.
    pub fn recycle(&mut self, r: Reassembled) {
        self.keep(r.data, r.sections);
    }

    fn keep(&mut self, mut data: Vec<u8>, mut sections: Vec<IpFragRange>) {
        if self.free_data.len() < MAX_FREE {
            data.clear();
            self.free_data.push(data);
        }
        if self.free_sections.len() < MAX_FREE {
            sections.clear();
            self.free_sections.push(sections);
        }
    }

    fn evict_oldest(&mut self, counters: &mut Counters) {
        let oldest = self.active.iter().min_by_key(|(_, e)| (e.deadline, e.gen)).map(|(k, _)| *k);
        if let Some(key) = oldest {
            self.discard(key, counters);
        }
    }

    fn discard(&mut self, key: FragKey, counters: &mut Counters) {
        if let Some(entry) = self.active.remove(&key) {
            self.bytes = self.bytes.saturating_sub(entry.buf.data().len());
            let (data, sections) = entry.buf.take_bufs();
            self.keep(data, sections);
            counters.drop(DropReason::FragmentTimeout);
        }
        self.trim();
    }

    /// Drop deadlines of entries that are gone, so the earliest one is a live entry's.
    fn trim(&mut self) {
        let active = &self.active;
        self.deadlines.trim(|key, gen| active.get(key).is_some_and(|e| e.gen == gen));
    }

    /// Give up every datagram whose first fragment is `timeout` old at `now`.
    pub fn expire(&mut self, now: Ts, counters: &mut Counters) {
        while let Some((gen, key)) = self.deadlines.pop_due(now) {
            if self.active.get(&key).is_some_and(|e| e.gen == gen) {
                self.discard(key, counters);
            }
        }
        self.trim();
    }

    /// The earliest deadline of an entry still in reassembly.
    pub fn next_expiry(&self) -> Option<Ts> {
        self.deadlines.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        FragKey::V4 { src: [1, 1, 1, 1], dst: [2, 2, 2, 2], id, proto: 17 }
    }
    fn off(units: u16) -> IpFragOffset {
        IpFragOffset::try_new(units).unwrap()
    }

    #[test]
    fn reassembles_out_of_order() {
        let mut c = Counters::default();
        let mut p = DefragPool::new(Dur::from_secs(30));
        let a = [1u8; 16];
        let b = [2u8; 16];
        let z = [3u8; 5];
        assert!(p.add(Ts(0), key(1), off(4), false, &z, 17, &mut c).unwrap().is_none());
        assert!(p.add(Ts(1), key(1), off(0), true, &a, 17, &mut c).unwrap().is_none());
        assert_eq!(p.len(), 1);
        let whole = p.add(Ts(2), key(1), off(2), true, &b, 17, &mut c).unwrap().unwrap();
        assert_eq!(whole.data.len(), 37);
        assert_eq!(&whole.data[16..32], &b);
        assert_eq!(whole.proto, 17);
        p.recycle(whole);
        assert_eq!(p.len(), 0);
        assert_eq!(p.next_expiry(), None);
        assert_eq!(c.total_drops(), 0);
    }

    #[test]
    fn conflicting_end_is_bad_fragment() {
        let mut c = Counters::default();
        let mut p = DefragPool::new(Dur::from_secs(30));
        p.add(Ts(0), key(1), off(0), false, &[0u8; 8], 17, &mut c).unwrap();
        // The last fragment already said the datagram ends at 8 bytes.
        // (offset 0 + no more fragments completes at once, so use a fresh id)
        p.add(Ts(0), key(2), off(1), false, &[0u8; 8], 17, &mut c).unwrap();
        assert_eq!(p.add(Ts(0), key(2), off(2), true, &[0u8; 8], 17, &mut c).err(), Some(DropReason::BadFragment));
        assert_eq!(p.len(), 0);
        // Unaligned middle fragment.
        assert_eq!(p.add(Ts(0), key(3), off(0), true, &[0u8; 7], 17, &mut c).err(), Some(DropReason::BadFragment));
    }

    #[test]
    fn expires_on_packet_time() {
        let mut c = Counters::default();
        let mut p = DefragPool::new(Dur::from_secs(30));
        p.add(Ts(1_000_000), key(1), off(0), true, &[0u8; 8], 17, &mut c).unwrap();
        p.add(Ts(5_000_000), key(2), off(0), true, &[0u8; 8], 17, &mut c).unwrap();
        assert_eq!(p.next_expiry(), Some(Ts(31_000_000)));
        p.expire(Ts(30_999_999), &mut c);
        assert_eq!(p.len(), 2);
        p.expire(Ts(31_000_000), &mut c);
        assert_eq!(p.len(), 1);
        assert_eq!(c.dropped(DropReason::FragmentTimeout), 1);
        let next = p.next_expiry().unwrap();
        assert!(next > Ts(31_000_000));
        p.expire(next, &mut c);
        assert_eq!(p.next_expiry(), None);
        assert_eq!(c.dropped(DropReason::FragmentTimeout), 2);
    }

    #[test]
    fn bounded_entries_evict_the_oldest() {
        let mut c = Counters::default();
        let mut p = DefragPool::new(Dur::from_secs(30));
        for id in 0..(MAX_ENTRIES as u16 + 10) {
            p.add(Ts(i64::from(id)), key(id), off(0), true, &[0u8; 8], 17, &mut c).unwrap();
        }
        assert_eq!(p.len(), MAX_ENTRIES);
        assert_eq!(c.dropped(DropReason::FragmentTimeout), 10);
        // The oldest ten went; id 10 is still there and completes.
        assert!(p.add(Ts(99), key(10), off(1), false, &[1u8; 3], 17, &mut c).unwrap().is_some());
    }
}
