//! The one loop shared by `replay` and `run`: owns the `Engine`, feeds it frames and
//! timeouts in packet-time order, and drains its outputs to the sinks after every call.
//! Replay and live capture differ only in where frames come from and in how idle time is
//! fed (end-of-file vs. the system clock), so both give the same records.
//! May use: core, `sink`. Invariant: `poll_output` is drained to `None` after every
//! engine call, so outputs reach the sinks in the order they became known; during a
//! warm-up (`warm_up`) the outputs about what an earlier replay already stored are
//! dropped here, before any sink; the recording of a call an earlier replay stored cut
//! (`completes`) is marked `resumed` here, so the recorder records it whole in place of
//! the part that replay recorded.

use crate::sink::Sink;
use callwarden_core::media::RecordingEvent;
use callwarden_core::track::{CallEvent, CallKey, EndReason};
use callwarden_core::{Engine, Frame, Output, Ts};
use std::collections::HashSet;

pub struct Driver {
    engine: Engine,
    sinks: Vec<Box<dyn Sink + Send>>,
    /// Sink errors seen (each is also logged).
    pub sink_errors: u64,
    warm_up: Option<WarmUp>,
    /// Calls an earlier replay stored cut that this one completes: Call-ID, From tag,
    /// start (µs); and the keys they got here.
    completes: HashSet<(String, String, i64)>,
    completing: HashSet<CallKey>,
}

/// Re-reading the end of an earlier replay's files to resume the calls it left open: of
/// what happened before `from` (the first packet of the new files) only those calls are
/// passed on; every other call that started before it was stored by that replay, as were
/// the violations detected before it (per-day ones included: the engine sees only part of
/// those days now).
struct WarmUp {
    from: Ts,
    /// The calls resumed: Call-ID, From tag, start (µs).
    resumed: HashSet<(String, String, i64)>,
    /// Calls whose every output is dropped.
    held: HashSet<CallKey>,
}

impl Driver {
    pub fn new(engine: Engine, sinks: Vec<Box<dyn Sink + Send>>) -> Driver {
        Driver { engine, sinks, sink_errors: 0, warm_up: None, completes: HashSet::new(), completing: HashSet::new() }
    }

    /// Calls (Call-ID, From tag, start in µs) an earlier replay stored cut and recorded in
    /// part, which this one reads to their end: their recordings are marked `resumed`.
    pub fn completes(&mut self, calls: HashSet<(String, String, i64)>) {
        self.completes.extend(calls);
    }

    /// Pass on, of what happened before `from`, only the `resumed` calls (Call-ID, From
    /// tag, start in µs) — see `WarmUp`.
    pub fn warm_up(&mut self, from: Ts, resumed: HashSet<(String, String, i64)>) {
        self.warm_up = Some(WarmUp { from, resumed, held: HashSet::new() });
    }

    /// Fire the timers due at or before `ts`, then feed the frame.
    pub fn feed(&mut self, frame: Frame<'_>) {
        let frame = self.engine.believe(frame);
        self.run_timers_until(frame.ts);
        self.engine.handle_frame(frame);
        self.drain();
    }

    /// Live, when no packet arrived before the next deadline: feed the system time.
    pub fn idle(&mut self, now: Ts) {
        self.run_timers_until(now);
    }

    /// End of input: end the calls still open with `reason`, drain everything.
    pub fn finish(&mut self, reason: EndReason) {
        self.engine.finish(reason);
        self.drain();
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn into_sinks(self) -> Vec<Box<dyn Sink + Send>> {
        self.sinks
    }

    fn run_timers_until(&mut self, ts: Ts) {
        // Each timer fires at its own due time, so a timeout's end is stamped when it fell
        // due, not when the next packet happened to arrive.
        let mut last = Ts::MIN;
        while let Some(due) = self.engine.poll_timeout() {
            if due > ts || due <= last && last != Ts::MIN {
                break;
            }
            last = due;
            self.engine.handle_timeout(due);
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(mut out) = self.engine.poll_output() {
            if self.warm_up.as_mut().is_some_and(|w| w.holds(&out)) {
                continue;
            }
            if !self.completes.is_empty() {
                self.mark_resumed(&mut out);
            }
            self.dispatch(&out);
        }
    }

    /// A recording begun for a call in `completes` is marked `resumed` (the engine emits
    /// it after the call's start, or after the leg link that made it recorded).
    fn mark_resumed(&mut self, out: &mut Output) {
        match out {
            Output::Call(CallEvent::Started(s))
                if self.completes.contains(&(s.call_id.clone(), s.from_tag.clone(), s.at.as_micros())) =>
            {
                self.completing.insert(s.key);
            }
            Output::Recording(RecordingEvent::Begin(info)) => {
                info.resumed |= self.completing.contains(&info.key);
            }
            Output::Call(CallEvent::Ended(r)) => {
                self.completing.remove(&r.key);
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &Output) {
        for sink in &mut self.sinks {
            if let Err(e) = sink.accept(out) {
                self.sink_errors += 1;
                tracing::error!(error = %e, "sink failed");
            }
        }
    }
}

impl WarmUp {
    fn stored_before(&self, call_id: &str, from_tag: &str, at: Ts) -> bool {
        at < self.from && !self.resumed.contains(&(call_id.to_string(), from_tag.to_string(), at.as_micros()))
    }

    /// Whether `out` is about what the earlier replay stored already.
    fn holds(&mut self, out: &Output) -> bool {
        let key = match out {
            Output::Call(CallEvent::Started(s)) => {
                if self.stored_before(&s.call_id, &s.from_tag, s.at) {
                    self.held.insert(s.key);
                }
                s.key
            }
            Output::Call(CallEvent::Ended(r)) => {
                let held = self.held.remove(&r.key);
                return held || self.stored_before(&r.call_id, &r.from_tag, r.started_at);
            }
            Output::Call(CallEvent::Ringing { key, .. })
            | Output::Call(CallEvent::Answered { key, .. })
            | Output::Call(CallEvent::Dtmf { key, .. })
            | Output::Call(CallEvent::LegLinked { key, .. }) => *key,
            Output::Violation(v) => return v.detected_at < self.from,
            Output::Recording(RecordingEvent::Begin(info)) => info.key,
            Output::Recording(RecordingEvent::Media { key, .. }) => *key,
            Output::Recording(RecordingEvent::End { key, .. }) => *key,
        };
        self.held.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::{call, violation, T0};
    use callwarden_core::policy::ViolationKind;
    use callwarden_core::track::{CallKey, Direction};

    /// Of what happened before `from`, only the resumed call passes; after it, everything.
    #[test]
    fn warm_up_passes_only_the_resumed_calls_and_what_follows() {
        let from = Ts(T0 + 60_000_000);
        let mut resumed = call("open@h", T0 + 10_000_000, "8001", "13800138000", Direction::Outbound);
        resumed.key = CallKey(1);
        let mut stored = call("done@h", T0 + 20_000_000, "8002", "13800138000", Direction::Outbound);
        stored.key = CallKey(2);
        let mut w = WarmUp {
            from,
            resumed: HashSet::from([(
                resumed.call_id.clone(),
                resumed.from_tag.clone(),
                resumed.started_at.as_micros(),
            )]),
            held: HashSet::new(),
        };
        let started = |r: &callwarden_core::track::CallRecord| {
            Output::Call(CallEvent::Started(callwarden_core::track::CallStart {
                key: r.key,
                call_id: r.call_id.clone(),
                from_tag: r.from_tag.clone(),
                at: r.started_at,
                caller: r.caller.clone(),
                caller_display: None,
                callee: r.callee.clone(),
                dialled: r.dialled.clone(),
                dialled_domain: None,
                direction: r.direction,
                src: "127.0.0.1:5060".parse().unwrap(),
                dst: "127.0.0.1:5080".parse().unwrap(),
            }))
        };
        assert!(!w.holds(&started(&resumed)));
        assert!(w.holds(&started(&stored)));
        assert!(w.holds(&Output::Call(CallEvent::Answered { key: stored.key, at: from })));
        assert!(!w.holds(&Output::Call(CallEvent::Answered { key: resumed.key, at: from })));
        // A violation the earlier replay raised already; one raised now, at the end.
        assert!(w.holds(&Output::Violation(violation(&resumed, "OUT-1", ViolationKind::PremiumRate, "8001", 0, None))));
        let late = violation(&resumed, "ANS-1", ViolationKind::SlowAnswer, "8001", 60_000, Some(100));
        assert!(!w.holds(&Output::Violation(late)));
        assert!(w.holds(&Output::Call(CallEvent::Ended(Box::new(stored.clone())))));
        assert!(!w.holds(&Output::Call(CallEvent::Ended(Box::new(resumed)))));
        // A call that starts after `from` is the new files' own.
        let mut new = call("new@h", from.as_micros() + 1, "8003", "13800138000", Direction::Outbound);
        new.key = CallKey(3);
        assert!(!w.holds(&started(&new)));
        assert!(!w.holds(&Output::Call(CallEvent::Ended(Box::new(new)))));
    }
}
