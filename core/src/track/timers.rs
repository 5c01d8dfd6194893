//! The tracker's timer table: at most one deadline per call, ordered by packet time, in the
//! sans-IO habit of str0m / quinn-proto (the owner asks for the earliest deadline and is
//! told to fire what is due; nothing here reads a clock or runs by itself).
//! May use: `time`. Invariants: a call has at most one entry; `set` replaces it exactly
//! (no stale entries pile up, so the table is as big as the set of tracked calls).
//! Callers do not re-key on every RTP packet: a call's silence deadline is armed at
//! last-activity + timeout and checked against the real last activity when it fires.

use super::CallKey;
use crate::time::Ts;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    by_time: BTreeSet<(Ts, CallKey)>,
    by_key: HashMap<CallKey, Ts>,
    /// `by_time.first()`, kept at hand: `next` is asked before every packet.
    first: Option<(Ts, CallKey)>,
}

impl TimerTable {
    /// Give memory back after a flood (see `shrink_sparse`).
    pub(crate) fn shrink(&mut self) {
        super::shrink_sparse(&mut self.by_key);
    }

    /// Arm (or re-arm, or with `None` disarm) the call's one deadline.
    pub(crate) fn set(&mut self, key: CallKey, at: Option<Ts>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
        if let Some(at) = at {
            self.by_key.insert(key, at);
            self.by_time.insert((at, key));
        }
        self.first = self.by_time.first().copied();
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Ts> {
        self.first.map(|(at, _)| at)
    }

    /// Remove and return the earliest entry if it is due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Ts) -> Option<(Ts, CallKey)> {
        let (at, key) = self.first?;
        if at > now {
            return None;
        }
        self.by_time.remove(&(at, key));
        self.by_key.remove(&key);
        self.first = self.by_time.first().copied();
        Some((at, key))
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.by_key.capacity()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rearm_replaces_and_pops_in_time_order() {
        let mut t = TimerTable::default();
        t.set(CallKey(1), Some(Ts(50)));
        t.set(CallKey(2), Some(Ts(20)));
        t.set(CallKey(1), Some(Ts(10)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(), Some(Ts(10)));
        assert_eq!(t.pop_due(Ts(5)), None);
        assert_eq!(t.pop_due(Ts(30)), Some((Ts(10), CallKey(1))));
        assert_eq!(t.pop_due(Ts(30)), Some((Ts(20), CallKey(2))));
        assert_eq!(t.pop_due(Ts(30)), None);
        assert_eq!(t.next(), None);
        t.set(CallKey(3), Some(Ts(7)));
        t.set(CallKey(3), None);
        assert_eq!((t.len(), t.next()), (0, None));
    }
}
