//! Packet time. `Ts` is microseconds since the Unix epoch as the capture stamped it (pcap
//! record header, libpcap, or a HEP timestamp chunk); `Dur` is a signed span in
//! microseconds. The core never reads a clock: every instant it sees is one of these,
//! so a replay and a live run of the same packets give the same figures.
//! Arithmetic saturates instead of overflowing, so a hostile timestamp cannot panic.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Sub};

/// An instant: microseconds since 1970-01-01T00:00:00Z, from the capture.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ts(pub i64);

/// A span of packet time in microseconds (may be negative).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dur(pub i64);

impl Ts {
    pub const MIN: Ts = Ts(i64::MIN);
    pub const MAX: Ts = Ts(i64::MAX);
    pub const EPOCH: Ts = Ts(0);

    pub const fn from_micros(us: i64) -> Ts {
        Ts(us)
    }
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    /// From a pcap-style (seconds, sub-second) pair; `nanos` says whether the fraction is
    /// in nanoseconds (pcap nanosecond magic, pcapng if_tsresol 9) or microseconds.
    pub fn from_parts(secs: i64, frac: u32, nanos: bool) -> Ts {
        let sub = if nanos { i64::from(frac / 1000) } else { i64::from(frac) };
        Ts(secs.saturating_mul(1_000_000).saturating_add(sub))
    }
    pub fn from_secs_f64(s: f64) -> Ts {
        Ts((s * 1e6).round() as i64)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    /// Whole milliseconds since the epoch (floor).
    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1000)
    }
    pub fn saturating_add(self, d: Dur) -> Ts {
        Ts(self.0.saturating_add(d.0))
    }
    pub fn saturating_sub(self, d: Dur) -> Ts {
        Ts(self.0.saturating_sub(d.0))
    }
    /// `self - earlier`, saturating.
    pub fn since(self, earlier: Ts) -> Dur {
        Dur(self.0.saturating_sub(earlier.0))
    }
}

impl Dur {
    pub const ZERO: Dur = Dur(0);
    pub const fn from_micros(us: i64) -> Dur {
        Dur(us)
    }
    pub const fn from_millis(ms: i64) -> Dur {
        Dur(ms.saturating_mul(1000))
    }
    pub const fn from_secs(s: i64) -> Dur {
        Dur(s.saturating_mul(1_000_000))
    }
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    /// Whole milliseconds, rounded to nearest (figures are reported in ms).
    pub fn as_millis(self) -> i64 {
        self.0.saturating_add(if self.0 >= 0 { 500 } else { -500 }) / 1000
    }
}

impl Add<Dur> for Ts {
    type Output = Ts;
    fn add(self, d: Dur) -> Ts {
        self.saturating_add(d)
    }
}
impl Sub<Dur> for Ts {
    type Output = Ts;
    fn sub(self, d: Dur) -> Ts {
        self.saturating_sub(d)
    }
}
impl Sub<Ts> for Ts {
    type Output = Dur;
    fn sub(self, t: Ts) -> Dur {
        self.since(t)
    }
}
impl Add for Dur {
    type Output = Dur;
    fn add(self, d: Dur) -> Dur {
        Dur(self.0.saturating_add(d.0))
    }
}

impl fmt::Display for Ts {
    /// `seconds.micros` since the epoch: the same form as tshark's frame.time_epoch.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.div_euclid(1_000_000);
        let us = self.0.rem_euclid(1_000_000);
        write!(f, "{s}.{us:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_display() {
        assert_eq!(Ts::from_parts(10, 250, false), Ts(10_000_250));
        assert_eq!(Ts::from_parts(10, 250_999, true), Ts(10_000_250));
        assert_eq!(Ts(-1).to_string(), "-1.999999");
        assert_eq!(Ts(1_700_000_000_123_456).to_string(), "1700000000.123456");
    }

    #[test]
    fn saturating() {
        assert_eq!(Ts::MAX + Dur(5), Ts::MAX);
        assert_eq!(Ts::MIN - Dur(5), Ts::MIN);
        assert_eq!(Ts::MAX - Ts::MIN, Dur(i64::MAX));
        assert_eq!(Dur(1499).as_millis(), 1);
        assert_eq!(Dur(1500).as_millis(), 2);
        assert_eq!(Dur(-1500).as_millis(), -2);
    }
}
