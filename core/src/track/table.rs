//! The call table: every tracked call (active or lingering) in a slab, found by its slot
//! (what the address map keeps, so an RTP packet costs one hash probe, not two) or by
//! its key (SIP, timers).
//! Keys are handed out in increasing order, so the insertion order (`order`, a queue of
//! keys with lazy deletion) is also start order: the oldest call is found in amortised
//! O(1) when the table is full and one must go.
//! May use: `call`. Invariants: `index` maps exactly the keys of the occupied slots, each
//! to its own slot; a call's `slot` field is the slot it is in; freed slots are reused;
//! `order` holds every key of `index`, ascending, plus at most about as many removed ones.

use super::call::Call;
use super::CallKey;
use foldhash::HashMap;
use std::collections::VecDeque;

#[derive(Default)]
pub(crate) struct CallTable {
    slots: Vec<Option<Call>>,
    free: Vec<u32>,
    index: HashMap<CallKey, u32>,
    /// Keys in insertion order; removed keys stay until they reach the front or the queue
    /// is compacted.
    order: VecDeque<CallKey>,
}

impl CallTable {
    /// The slot the next `insert` uses.
    pub(crate) fn vacant(&self) -> u32 {
        self.free.last().copied().unwrap_or(self.slots.len() as u32)
    }

    /// Put a call built for `vacant()` in its slot.
    pub(crate) fn insert(&mut self, call: Call) {
        debug_assert_eq!(call.slot, self.vacant());
        let slot = call.slot;
        self.index.insert(call.key, slot);
        debug_assert!(self.order.back().is_none_or(|&k| k < call.key));
        self.order.push_back(call.key);
        match self.slots.get_mut(slot as usize) {
            Some(entry) => {
                if self.free.last() == Some(&slot) {
                    self.free.pop();
                } else {
                    self.free.retain(|&s| s != slot);
                }
                *entry = Some(call);
            }
            None => self.slots.push(Some(call)),
        }
    }

    pub(crate) fn get(&self, key: CallKey) -> Option<&Call> {
        let slot = *self.index.get(&key)?;
        self.slots.get(slot as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, key: CallKey) -> Option<&mut Call> {
        let slot = *self.index.get(&key)?;
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// The call in `slot`, if it is the call `key` (the RTP path: no hash probe).
    pub(crate) fn at_mut(&mut self, slot: u32, key: CallKey) -> Option<&mut Call> {
        self.slots.get_mut(slot as usize)?.as_mut().filter(|c| c.key == key)
    }

    pub(crate) fn remove(&mut self, key: CallKey) -> Option<Call> {
        let slot = self.index.remove(&key)?;
        let call = self.slots.get_mut(slot as usize)?.take();
        self.free.push(slot);
        // The last call gone (a flood has timed out): give the slab's memory back rather
        // than keep room for the peak. Stale slots elsewhere fail `at_mut`'s key check.
        if self.index.is_empty() && self.slots.len() > 1024 {
            *self = CallTable::default();
        } else if self.order.len() > 2 * self.index.len() + 64 {
            // Removed keys outnumber the live ones: drop them (amortised over as many
            // removals as the queue is long).
            let index = &self.index;
            self.order.retain(|k| index.contains_key(k));
            if self.order.capacity() > 4 * self.order.len() + 1024 {
                self.order.shrink_to_fit();
            }
        }
        call
    }

    /// The oldest call tracked (the first inserted of those still here).
    pub(crate) fn oldest(&mut self) -> Option<CallKey> {
        while let Some(&key) = self.order.front() {
            if self.index.contains_key(&key) {
                return Some(key);
            }
            self.order.pop_front();
        }
        None
    }

    /// Slots held (occupied or free), for the memory test.
    #[cfg(test)]
    pub(crate) fn slots_held(&self) -> usize {
        self.slots.capacity()
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Call> {
        self.slots.iter().flatten()
    }
}
