//! Policy: the numbering plan (dialled digits → normalised number and class), groups and
//! permissions, and the rules of RULES.md turned into violations with rule ids and fines.
//! May use: `time`, `config`, `track` (it judges `CallStart`s and `CallRecord`s).
//! Invariants: pure — the same config and call give the same violations; times of day are
//! judged in the site's zone from config; one offence, one fine (DESIGN.md precedence).

use serde::Serialize;

/// The class of a dialled number. `as_str` gives the names `calls --json` prints.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Internal,
    Emergency,
    Premium,
    TollFree,
    HkMacau,
    Taiwan,
    International,
    Mobile,
    LongDistance,
    Local,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::Internal,
        Class::Emergency,
        Class::Premium,
        Class::TollFree,
        Class::HkMacau,
        Class::Taiwan,
        Class::International,
        Class::Mobile,
        Class::LongDistance,
        Class::Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Internal => "internal",
            Class::Emergency => "emergency",
            Class::Premium => "premium",
            Class::TollFree => "toll-free",
            Class::HkMacau => "hk-macau",
            Class::Taiwan => "taiwan",
            Class::International => "international",
            Class::Mobile => "mobile",
            Class::LongDistance => "long-distance",
            Class::Local => "local",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    SlowAnswer,
    Missed,
    LongCall,
    PremiumRate,
    UnauthorisedClass,
    AlarmOnly,
    ReceiveOnly,
    OffDutyUse,
    OutsideWindow,
    BelowTarget,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::SlowAnswer => "slow-answer",
            ViolationKind::Missed => "missed",
            ViolationKind::LongCall => "long-call",
            ViolationKind::PremiumRate => "premium-rate",
            ViolationKind::UnauthorisedClass => "unauthorised-class",
            ViolationKind::AlarmOnly => "alarm-only",
            ViolationKind::ReceiveOnly => "receive-only",
            ViolationKind::OffDutyUse => "off-duty-use",
            ViolationKind::OutsideWindow => "outside-window",
            ViolationKind::BelowTarget => "below-target",
        }
    }
}

/// One breach of a rule, as stored and alerted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Rule id from RULES.md ("OUT-1", "ANS-1", ...).
    pub rule: String,
    pub kind: ViolationKind,
    /// The call it is about (absent for per-day rules such as below-target).
    pub call_id: Option<String>,
    /// Start of that call: with `call_id`, the call's identity in the store.
    pub call_started_at: Option<crate::time::Ts>,
    pub extension: String,
    pub number: String,
    /// Packet time at which it became known (the INVITE's time for premium-rate).
    pub detected_at: crate::time::Ts,
    /// Fine in fen; `None` while it depends on a charge not yet known.
    pub fine_fen: Option<i64>,
    pub detail: String,
}

use crate::config::Config;
use crate::time::Ts;
use crate::track::{CallRecord, CallStart};

/// The compiled policy of one config. The engine asks it about every call twice: at the
/// INVITE (violations knowable then are raised at once) and at the end (class, cost,
/// duration and answer rules); and lets it run per-day rules on packet-time timers.
pub struct Policy {}

impl Policy {
    pub fn new(cfg: &Config) -> Result<Policy, String> {
        let _ = cfg;
        Ok(Policy {})
    }

    /// Judge a call at its first INVITE. Violations go to `out` immediately.
    pub fn on_start(&mut self, start: &CallStart, out: &mut Vec<Violation>) {
        let _ = (start, out);
    }

    /// Judge a finished call: fill `number`, `class`, `group`, `cost_fen`; raise the
    /// violations that needed the whole call; complete fines that depend on the charge.
    pub fn on_end(&mut self, rec: &mut CallRecord, out: &mut Vec<Violation>) {
        let _ = (rec, out);
    }

    pub fn handle_timeout(&mut self, now: Ts, out: &mut Vec<Violation>) {
        let _ = (now, out);
    }

    pub fn poll_timeout(&self) -> Option<Ts> {
        None
    }
}
