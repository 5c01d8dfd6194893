//! Call charges (OUT-6) and money. Owns the tariff table by class and the rounding rule;
//! may use `config` and `Class`. Invariants: money is integer fen, never float; arithmetic
//! saturates, so a hostile talk time cannot overflow; emergency, toll-free and internal
//! calls cost 0.
//!
//! Tariffs are fen per minute by class; calls are billed in whole units of
//! `tariffs.unit_s` seconds (60 = per started minute), and a part-fen total is rounded up:
//! `cost = ceil(ceil(talk / unit) × unit × tariff / 60 s)`. With the default 60 s unit this
//! is simply started minutes × tariff.

use super::Class;
use crate::config;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tariffs {
    /// Fen per minute, indexed by `Class as usize`.
    per_minute: [u32; Class::ALL.len()],
    unit_s: u32,
}

impl Tariffs {
    pub fn new(t: &config::Tariffs) -> Result<Tariffs, String> {
        if t.unit_s == 0 {
            return Err("tariffs.unit_s: must be at least 1 second".to_string());
        }
        let mut per_minute = [0u32; Class::ALL.len()];
        for c in Class::ALL {
            per_minute[c as usize] = match c {
                // A SIP URI goes over the internet, not a carrier: no tariff applies.
                Class::Internal | Class::Emergency | Class::TollFree | Class::SipUri => 0,
                Class::Premium => t.premium,
                Class::HkMacau => t.hk_macau,
                Class::Taiwan => t.taiwan,
                Class::International => t.international,
                Class::Mobile => t.mobile,
                Class::LongDistance => t.long_distance,
                Class::Local => t.local,
            };
        }
        Ok(Tariffs { per_minute, unit_s: t.unit_s })
    }

    pub fn per_minute(&self, class: Class) -> u32 {
        self.per_minute.get(class as usize).copied().unwrap_or(0)
    }

    /// Billing units (of `unit_s`) for a talk time: started units, 0 for no talk.
    pub fn units(&self, talk_ms: i64) -> i64 {
        let unit_ms = i64::from(self.unit_s) * 1000;
        if talk_ms <= 0 {
            0
        } else {
            talk_ms.saturating_add(unit_ms - 1) / unit_ms
        }
    }

    pub fn unit_s(&self) -> u32 {
        self.unit_s
    }

    /// What a call of `class` with `talk_ms` of talk costs, in fen.
    pub fn cost_fen(&self, class: Class, talk_ms: i64) -> i64 {
        let tariff = i64::from(self.per_minute(class));
        let billed_s = self.units(talk_ms).saturating_mul(i64::from(self.unit_s));
        let fen_x60 = billed_s.saturating_mul(tariff);
        fen_x60.saturating_add(59) / 60
    }
}

/// Yuan (as the rules state fines) to fen.
pub fn fen(yuan: u32) -> i64 {
    i64::from(yuan) * 100
}

/// OUT-1: `multiplier × charge + fixed`, in fen.
pub fn premium_fine_fen(multiplier: u32, fixed_yuan: u32, charge_fen: i64) -> i64 {
    i64::from(multiplier).saturating_mul(charge_fen.max(0)).saturating_add(fen(fixed_yuan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t() -> Tariffs {
        Tariffs::new(&config::Tariffs::default()).unwrap()
    }

    #[test]
    fn started_minutes_times_tariff() {
        let t = t();
        assert_eq!(t.cost_fen(Class::Local, 0), 0);
        assert_eq!(t.cost_fen(Class::Local, 1), 10);
        assert_eq!(t.cost_fen(Class::Local, 60_000), 10);
        assert_eq!(t.cost_fen(Class::Local, 60_001), 20);
        assert_eq!(t.cost_fen(Class::Mobile, 125_000), 45);
        assert_eq!(t.cost_fen(Class::LongDistance, 180_000), 90);
        assert_eq!(t.cost_fen(Class::HkMacau, 30_000), 200);
        assert_eq!(t.cost_fen(Class::Taiwan, 30_000), 200);
        assert_eq!(t.cost_fen(Class::International, 61_000), 1600);
        assert_eq!(t.cost_fen(Class::Premium, 45_000), 300);
        for free in [Class::Emergency, Class::TollFree, Class::Internal] {
            assert_eq!(t.cost_fen(free, 600_000), 0);
        }
        assert_eq!(t.cost_fen(Class::Local, -5), 0);
    }

    #[test]
    fn six_second_units_keep_per_minute_tariffs() {
        let t = Tariffs::new(&config::Tariffs { unit_s: 6, ..config::Tariffs::default() }).unwrap();
        // 61 s → 11 units = 66 s at 15 fen/min = 16.5 → 17 fen.
        assert_eq!(t.units(61_000), 11);
        assert_eq!(t.cost_fen(Class::Mobile, 61_000), 17);
        assert_eq!(t.cost_fen(Class::Local, 60_000), 10);
        assert!(Tariffs::new(&config::Tariffs { unit_s: 0, ..config::Tariffs::default() }).is_err());
    }

    #[test]
    fn premium_fine_default() {
        // 20 × 300 fen + 50 yuan.
        assert_eq!(premium_fine_fen(20, 50, 300), 11_000);
        assert_eq!(premium_fine_fen(20, 50, 0), 5_000);
        assert_eq!(fen(500), 50_000);
    }

    proptest! {
        #[test]
        fn cost_is_monotonic_and_never_overflows(a in any::<i64>(), b in any::<i64>(), unit in 1u32..=3600, tariff in any::<u32>()) {
            let t = Tariffs::new(&config::Tariffs { unit_s: unit, local: tariff, ..config::Tariffs::default() }).unwrap();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (cl, ch) = (t.cost_fen(Class::Local, lo), t.cost_fen(Class::Local, hi));
            prop_assert!(cl >= 0 && cl <= ch);
        }
    }
}
