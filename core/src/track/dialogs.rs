//! The dialog index: which tracked call a SIP message belongs to.
//! A call is keyed by Call-ID + the From tag of its initial INVITE. Proxies keep both, so
//! the copies of a dialog seen on two hops map to one call; a B2BUA makes a new From tag
//! (or Call-ID) per leg, so its legs are separate calls. The caller's requests (and the
//! responses to them) carry the caller's tag in From; the callee's requests carry it in To.
//! May use: nothing but `CallKey`. Invariants: lookups do not allocate; an entry exists
//! exactly as long as its call is tracked (active or lingering); at most
//! `MAX_CALLS_PER_CALL_ID` calls share one Call-ID, so a scan stays short.

use super::CallKey;
use std::collections::HashMap;

/// More calls than this under one Call-ID are refused (a real PBX makes one or two).
pub(crate) const MAX_CALLS_PER_CALL_ID: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct Dialogs {
    by_call_id: HashMap<String, Vec<(String, CallKey)>>,
}

impl Dialogs {
    /// Give memory back after a flood (see `shrink_sparse`).
    pub(crate) fn shrink(&mut self) {
        super::shrink_sparse(&mut self.by_call_id);
    }

    /// The call whose caller tag is the message's From tag (a caller request, or a
    /// response to one), else its To tag (a callee request, or a response to one). The
    /// newest call wins: a new attempt with the same tags replaces a lingering one.
    pub(crate) fn find(&self, call_id: &str, from_tag: &str, to_tag: Option<&str>) -> Option<CallKey> {
        let calls = self.by_call_id.get(call_id)?;
        calls
            .iter()
            .rev()
            .find(|(tag, _)| tag == from_tag)
            .or_else(|| to_tag.and_then(|to| calls.iter().rev().find(|(tag, _)| tag == to)))
            .map(|&(_, key)| key)
    }

    /// The newest call under `call_id` for which `pred` holds (a challenged call waiting
    /// for its retry).
    pub(crate) fn challenged(&self, call_id: &str, pred: impl Fn(CallKey) -> bool) -> Option<CallKey> {
        self.by_call_id.get(call_id)?.iter().rev().map(|&(_, k)| k).find(|&k| pred(k))
    }

    pub(crate) fn calls_with(&self, call_id: &str) -> usize {
        self.by_call_id.get(call_id).map_or(0, Vec::len)
    }

    pub(crate) fn insert(&mut self, call_id: &str, caller_tag: &str, key: CallKey) {
        self.by_call_id.entry(call_id.to_string()).or_default().push((caller_tag.to_string(), key));
    }

    pub(crate) fn remove(&mut self, call_id: &str, key: CallKey) {
        if let Some(calls) = self.by_call_id.get_mut(call_id) {
            calls.retain(|&(_, k)| k != key);
            if calls.is_empty() {
                self.by_call_id.remove(call_id);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.by_call_id.capacity()
    }

    /// Number of Call-IDs indexed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_call_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_either_tag_and_forgets() {
        let mut d = Dialogs::default();
        d.insert("c1", "a", CallKey(1));
        d.insert("c1", "b2bua-leg", CallKey(2));
        assert_eq!(d.find("c1", "a", None), Some(CallKey(1)));
        assert_eq!(d.find("c1", "callee", Some("a")), Some(CallKey(1)));
        assert_eq!(d.find("c1", "b2bua-leg", Some("x")), Some(CallKey(2)));
        assert_eq!(d.find("c1", "zzz", Some("yyy")), None);
        assert_eq!(d.find("c2", "a", None), None);
        assert_eq!(d.calls_with("c1"), 2);
        d.insert("c1", "a", CallKey(3));
        assert_eq!(d.find("c1", "a", None), Some(CallKey(3)), "the newest attempt wins");
        d.remove("c1", CallKey(3));
        d.remove("c1", CallKey(1));
        assert_eq!(d.find("c1", "a", None), None);
        d.remove("c1", CallKey(2));
        assert_eq!(d.len(), 0);
    }
}
