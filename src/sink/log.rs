//! The log sink: each ended call to the log at debug level (violations are logged by the
//! alerts sink). May use: core's outputs, tracing. Invariant: never fails.

use super::Sink;
use callwarden_core::track::CallEvent;
use callwarden_core::Output;

/// Ended calls to the log at debug level (violations are logged by the alerts sink).
pub struct LogSink;

impl Sink for LogSink {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        if let Output::Call(CallEvent::Ended(r)) = out {
            tracing::debug!(
                call_id = %r.call_id,
                caller = %r.caller,
                callee = %r.callee,
                reason = r.end_reason.as_str(),
                talk_ms = r.talk_ms,
                "call ended"
            );
        }
        Ok(())
    }
}
