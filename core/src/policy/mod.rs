//! Policy: the numbering plan (dialled digits → normalised number and class), groups and
//! permissions, and the rules of RULES.md turned into violations with rule ids and fines.
//! May use: `time`, `config`, `track` (it judges `CallStart`s and `CallRecord`s).
//! Invariants: pure — the same config and call give the same violations; times of day are
//! judged in the site's zone from config; one offence, one fine (DESIGN.md precedence).
//!
//! Split by stage: `numbering` (classification), `groups` (groups, roster, windows,
//! approvals, the zone), `rules` (a compiled config and the per-call rules), `cost`
//! (tariffs, money), `daily` (STA-1 per-day counts and their timer). This file keeps the
//! state: the current rule book, the rule book and verdict of each call in progress (so a
//! reload never changes how a started call is judged), and the approvals from the store.

use serde::Serialize;

pub mod cost;
mod daily;
pub mod groups;
pub mod numbering;
pub mod rules;

#[cfg(test)]
pub(crate) mod tests;

pub use crate::class::Class;

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
    /// From tag of that call's first INVITE (`None` for no call, or a call without one):
    /// tells apart two calls that share a Call-ID.
    pub call_from_tag: Option<String>,
    pub extension: String,
    pub number: String,
    /// Packet time at which it became known (the INVITE's time for premium-rate).
    pub detected_at: crate::time::Ts,
    /// Fine in fen; `None` while it depends on a charge not yet known.
    pub fine_fen: Option<i64>,
    pub detail: String,
}

use crate::config::{Approval, Config};
use crate::time::Ts;
use crate::track::{CallKey, CallRecord, CallStart, EndReason};
use groups::{ApprovalRule, GroupPolicy};
use numbering::Classified;
use rules::{Invite, RuleBook, Verdict};
use std::collections::HashMap;
use std::sync::Arc;

/// A call in progress: the rule book it started under and what its INVITE decided.
#[derive(Debug)]
struct OpenCall {
    book: Arc<RuleBook>,
    verdict: Verdict,
    /// Local day of an outbound call counted for STA-1.
    day: Option<jiff::civil::Date>,
}

/// What `Policy::check` answers: may `from` dial `to` at that time, and why not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub number: String,
    pub class: Class,
    pub group: Option<String>,
    /// Empty: allowed. Premium-rate carries `fine_fen: None` (it depends on the charge).
    pub violations: Vec<Violation>,
}

/// The compiled policy of one config. The engine asks it about every call twice: at the
/// INVITE (violations knowable then are raised at once) and at the end (class, cost,
/// duration and answer rules); and lets it run per-day rules on packet-time timers.
pub struct Policy {
    book: Arc<RuleBook>,
    /// Approvals from the store (`callwarden approve`), as given and as compiled.
    stored_approvals: Vec<Approval>,
    approvals: Vec<ApprovalRule>,
    open: HashMap<CallKey, OpenCall>,
    daily: daily::Daily,
}

impl Policy {
    pub fn new(cfg: &Config) -> Result<Policy, String> {
        Ok(Policy {
            book: Arc::new(RuleBook::compile(cfg)?),
            stored_approvals: Vec::new(),
            approvals: Vec::new(),
            open: HashMap::new(),
            daily: daily::Daily::default(),
        })
    }

    /// Take a new config. On error nothing changes. Calls in progress keep the rule book
    /// they started with and are judged by it at their end; new calls, day ends and
    /// stored approvals (recompiled in the new zone) use the new one.
    pub fn reload(&mut self, cfg: &Config) -> Result<(), String> {
        let book = Arc::new(RuleBook::compile(cfg)?);
        self.book = book;
        let stored = std::mem::take(&mut self.stored_approvals);
        // Stored approvals were valid when set; a zone change cannot make a date invalid.
        let _ = self.set_approvals(stored);
        Ok(())
    }

    /// Replace the approvals from the store. Those that cannot be used are left out and
    /// described in the returned list (empty when all are good); the others apply.
    #[must_use]
    pub fn set_approvals(&mut self, approvals: Vec<Approval>) -> Vec<String> {
        let mut errors = Vec::new();
        self.approvals.clear();
        for a in &approvals {
            match ApprovalRule::compile(a, &self.book.zone) {
                Ok(r) => self.approvals.push(r),
                Err(e) => errors.push(e),
            }
        }
        self.stored_approvals = approvals;
        errors
    }

    /// The normalised number and class of what `caller` dialled (`caller` decides whether
    /// the outside-line prefix is stripped: only our extensions dial it; "" counts as ours).
    pub fn classify(&self, dialled: &str, caller: &str) -> (String, Class) {
        let c = self.book.plan.classify(dialled, caller);
        (c.number_string(), c.class)
    }

    /// `classify` without allocating: the number is borrowed from `dialled`.
    pub fn classify_borrowed<'a>(&self, dialled: &'a str, caller: &str) -> Classified<'a> {
        self.book.plan.classify(dialled, caller)
    }

    /// The normalised form of a number as people write it on a list (national form,
    /// `+86 …`): no outside-line prefix is stripped, as for a number a trunk carries. The
    /// `number` the store keeps is a fixed point of this, so a number copied from `calls`
    /// normalises to itself (STA-3 call-back plans are matched this way).
    pub fn normalise_written(&self, number: &str) -> String {
        self.book.plan.classify_as(number, false).number_string()
    }

    /// Would `from` dialling `to` at `at` break a rule known at the INVITE? For the HTTP
    /// API's `/api/policy/check`; changes no state.
    pub fn check(&self, from: &str, to: &str, at: Ts) -> Check {
        let inv = Invite { call_id: "", from_tag: "", at, caller: from, callee: to, dialled: to, dialled_domain: None };
        let v = self.book.at_invite(&inv, &self.approvals);
        Check { number: v.number, class: v.class, group: v.group, violations: v.violations }
    }

    /// The group `ext` belongs to (the first that lists it).
    pub fn group_of(&self, ext: &str) -> Option<&GroupPolicy> {
        self.book.groups.of(ext)
    }

    /// Is `ext` one of ours (`[site].extensions` or any group's)?
    pub fn is_extension(&self, ext: &str) -> bool {
        self.book.is_ours(ext)
    }

    /// REC-1: should a call between these two be recorded?
    pub fn records(&self, caller: &str, callee: &str) -> bool {
        self.book.records(caller, callee)
    }

    /// Days to keep a recording of a call of `group` (`None`: no group).
    pub fn retention_days(&self, group: Option<&str>) -> u32 {
        group.and_then(|g| self.book.groups.by_name(g)).map_or(self.book.retention_days, |g| g.retention_days)
    }

    /// OUT-6 charge of an answered outbound call, in fen.
    pub fn cost_fen(&self, class: Class, talk_ms: i64) -> i64 {
        self.book.tariffs.cost_fen(class, talk_ms)
    }

    /// The local month ("2026-11") a packet time falls in, for monthly budgets.
    pub fn month_of(&self, at: Ts) -> Option<String> {
        self.book.zone.month_of(at)
    }

    /// OUT-6: a group's monthly budget in fen (`None`: no budget).
    pub fn monthly_budget_fen(&self, group: &str) -> Option<i64> {
        self.book.groups.by_name(group).map(|g| g.monthly_budget_fen).filter(|&b| b > 0)
    }

    /// OUT-6: by how many fen `spent_fen` in a month exceeds the group's budget.
    pub fn over_budget_fen(&self, group: &str, spent_fen: i64) -> Option<i64> {
        self.monthly_budget_fen(group).map(|b| spent_fen.saturating_sub(b)).filter(|&o| o > 0)
    }

    /// STA-1 after a restart: `count` effective calls `ext` already made on the local day
    /// holding `at` (from the store). Marks that day as whole, so it is judged.
    pub fn restore_effective(&mut self, ext: &str, at: Ts, count: u32) {
        self.daily.restore(&self.book, ext, at, count);
    }

    /// Calls started and not yet ended.
    pub fn open_calls(&self) -> usize {
        self.open.len()
    }

    /// Judge a call at its first INVITE. Violations go to `out` immediately.
    pub fn on_start(&mut self, start: &CallStart, out: &mut Vec<Violation>) {
        self.daily.observe(start.at);
        let book = Arc::clone(&self.book);
        let inv = Invite {
            call_id: &start.call_id,
            from_tag: &start.from_tag,
            at: start.at,
            caller: &start.caller,
            callee: &start.callee,
            dialled: &start.dialled,
            dialled_domain: start.dialled_domain.as_deref(),
        };
        let verdict = book.at_invite(&inv, &self.approvals);
        out.extend(verdict.violations.iter().cloned());
        let day = match book.groups.of(&start.caller) {
            Some(g) if g.daily_target > 0 && verdict.caller_ours && verdict.class != Class::Internal => {
                self.daily.opened(&book, &start.caller, start.at)
            }
            _ => None,
        };
        if let Some(old) = self.open.insert(start.key, OpenCall { book, verdict, day }) {
            // A second `Started` for one key (the tracker promises none): release the
            // first one's place in its day so the day is not held open for ever.
            if old.day.is_some() {
                let mut judged = Vec::new();
                self.daily.closed(&old.book, old.day, &start.caller, start.at, false, false, start.at, &mut judged);
                out.extend(judged);
            }
        }
    }

    /// Judge a finished call: fill `number`, `class`, `group`, `cost_fen`; raise the
    /// violations that needed the whole call; complete fines that depend on the charge.
    pub fn on_end(&mut self, rec: &mut CallRecord, out: &mut Vec<Violation>) {
        let open = self.open.remove(&rec.key);
        // After a flood the map would keep room for its peak.
        crate::track::shrink_sparse(&mut self.open);
        let open = match open {
            Some(o) => o,
            None => {
                // No `Started` was seen for it: judge the INVITE now, at its own time.
                let book = Arc::clone(&self.book);
                let inv = Invite {
                    call_id: &rec.call_id,
                    from_tag: &rec.from_tag,
                    at: rec.started_at,
                    caller: &rec.caller,
                    callee: &rec.callee,
                    dialled: &rec.dialled,
                    dialled_domain: rec.dialled_domain.as_deref(),
                };
                let verdict = book.at_invite(&inv, &self.approvals);
                let pending = verdict.premium;
                out.extend(
                    verdict.violations.iter().enumerate().filter(|(i, _)| Some(*i) != pending).map(|(_, v)| v.clone()),
                );
                OpenCall { book, verdict, day: None }
            }
        };
        out.extend(open.book.at_end(rec, &open.verdict));
        if let Some(effective) = open.book.effective(rec, &open.verdict) {
            let cut = matches!(rec.end_reason, EndReason::CaptureEnded | EndReason::Shutdown | EndReason::Evicted);
            self.daily.closed(&open.book, open.day, &rec.caller, rec.started_at, effective, cut, rec.ended_at, out);
        }
    }

    pub fn handle_timeout(&mut self, now: Ts, out: &mut Vec<Violation>) {
        self.daily.handle_timeout(&self.book, now, out);
    }

    pub fn poll_timeout(&self) -> Option<Ts> {
        self.daily.poll_timeout()
    }

    /// Packet time has reached `at` (the engine calls this for every frame): a day that
    /// began before the first packet seen is not whole, so STA-1 does not judge it.
    pub fn observe(&mut self, at: Ts) {
        self.daily.observe(at);
    }
}
