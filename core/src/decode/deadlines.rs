//! A lazy deadline queue shared by the fragment pool and the TCP streams: entries are
//! armed with (deadline, generation, key); an entry whose owner is gone or was replaced
//! (another generation) is stale and skipped, never searched for and removed.
//! May use: `time`. Invariant: `next()` is the earliest armed deadline; after `trim`
//! with the owner's liveness test it belongs to a live owner.

use crate::time::Ts;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub(crate) struct Deadlines<K: Ord + Copy> {
    heap: BinaryHeap<Reverse<(Ts, u64, K)>>,
}

impl<K: Ord + Copy> Deadlines<K> {
    pub fn new() -> Deadlines<K> {
        Deadlines { heap: BinaryHeap::new() }
    }

    pub fn arm(&mut self, at: Ts, gen: u64, key: K) {
        self.heap.push(Reverse((at, gen, key)));
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Ts> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Take the earliest entry if it is due at `now`: (generation, key).
    pub fn pop_due(&mut self, now: Ts) -> Option<(u64, K)> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => self.heap.pop().map(|Reverse((_, gen, key))| (gen, key)),
            _ => None,
        }
    }

    /// Take the earliest entry, due or not: (deadline, generation, key).
    pub fn pop(&mut self) -> Option<(Ts, u64, K)> {
        self.heap.pop().map(|Reverse(e)| e)
    }

    /// Drop stale entries from the front, so `next()` is a live owner's deadline.
    pub fn trim(&mut self, live: impl Fn(&K, u64) -> bool) {
        while let Some(Reverse((_, gen, key))) = self.heap.peek() {
            if live(key, *gen) {
                break;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_stale_trimmed() {
        let mut d = Deadlines::new();
        d.arm(Ts(30), 1, 'a');
        d.arm(Ts(10), 2, 'b');
        d.arm(Ts(20), 3, 'c');
        assert_eq!(d.next(), Some(Ts(10)));
        assert_eq!(d.pop_due(Ts(9)), None);
        assert_eq!(d.pop_due(Ts(10)), Some((2, 'b')));
        // 'c' is gone: trimming leaves 'a' in front.
        d.trim(|k, _| *k != 'c');
        assert_eq!(d.next(), Some(Ts(30)));
        d.trim(|_, _| false);
        assert_eq!(d.next(), None);
    }
}
