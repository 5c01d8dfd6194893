//! The one loop shared by `replay` and `run`: owns the `Engine`, feeds it frames and
//! timeouts in packet-time order, and drains its outputs to the sinks after every call.
//! Replay and live capture differ only in where frames come from and in how idle time is
//! fed (end-of-file vs. the system clock), so both give the same records.
//! May use: core, `sink`. Invariant: `poll_output` is drained to `None` after every
//! engine call, so outputs reach the sinks in the order they became known.

use crate::sink::Sink;
use callwarden_core::track::EndReason;
use callwarden_core::{Engine, Frame, Output, Ts};

pub struct Driver {
    engine: Engine,
    sinks: Vec<Box<dyn Sink + Send>>,
    /// Sink errors seen (each is also logged).
    pub sink_errors: u64,
}

impl Driver {
    pub fn new(engine: Engine, sinks: Vec<Box<dyn Sink + Send>>) -> Driver {
        Driver { engine, sinks, sink_errors: 0 }
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
        while let Some(out) = self.engine.poll_output() {
            self.dispatch(&out);
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
