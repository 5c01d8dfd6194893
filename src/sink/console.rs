//! Console sink for `replay`: prints each violation the moment the engine raises it, with
//! the packet time it was detected at (in the site's zone), so an operator sees a premium
//! call flagged at its INVITE, long before the call's end is replayed.

use crate::sink::Sink;
use callwarden_core::Output;

pub struct ConsoleSink {
    tz: jiff::tz::TimeZone,
}

impl ConsoleSink {
    pub fn new(tz: &str) -> ConsoleSink {
        ConsoleSink { tz: jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC) }
    }
}

/// RFC 3339 with the zone's offset, millisecond precision.
pub fn format_ts(ts: callwarden_core::Ts, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_microsecond(ts.as_micros()) {
        Ok(t) => t.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        Err(_) => ts.to_string(),
    }
}

impl Sink for ConsoleSink {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        if let Output::Violation(v) = out {
            let fine = match v.fine_fen {
                Some(f) => format!("fine {}.{:02} yuan", f / 100, f % 100),
                None => "fine pending".to_string(),
            };
            println!(
                "{}  {:<6} {:<19} ext {:<8} number {:<14} {}  {}",
                format_ts(v.detected_at, &self.tz),
                v.rule,
                v.kind.as_str(),
                v.extension,
                v.number,
                fine,
                v.detail
            );
        }
        Ok(())
    }
}
