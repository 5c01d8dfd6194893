//! The rules of RULES.md as pure functions of one compiled config (`RuleBook`) and one
//! call: what is known at the INVITE (OUT-1/2/4/5, WHO-1 for the caller, WHO-2) and what
//! needs the whole call (ANS-1/2/3, DUR-1/2/3, WHO-1 for an answering callee, OUT-1's
//! fine, the cost). May use: the other policy modules, `config`, `time`, `track`'s record
//! types. Invariants: no state — the per-call and per-day memory lives in `Policy`; one
//! offence, one fine (alarm-only / receive-only > premium-rate > unauthorised-class, only
//! the first applies); emergency numbers are never flagged by any outbound or time rule.
//!
//! Who and what each violation names, and when it is detected:
//! - outbound rules (OUT-1/2/4/5, WHO-2, WHO-1 of a caller) apply when the caller is one of
//!   our extensions and the class is not internal (WHO-1: internal calls too); they name
//!   the caller and the normalised number, detected at the INVITE. OUT-1 is raised with no
//!   fine there and again, same identity, at the end with `multiplier × charge + fixed`.
//!   Approvals lift OUT-2 only. Emergency numbers are exempt from all of them, WHO-1 and
//!   OUT-5 included: nobody is fined for calling 110 from the wrong phone or shift.
//! - ANS-1/2/3 apply to calls that rang one of our extensions (inbound and internal), by
//!   that callee's group; they name the callee and the caller's number. Missed = busy,
//!   rejected or no answer; cancelled or timed out only if it rang (a caller who hung up
//!   before the phone rang was not missed by anybody); a call cut by the end of the
//!   capture is not judged.
//! - DUR-1/2/3 apply to answered calls, by the group of our extension on the call (the
//!   caller's, else the callee's): DUR-2 when the other party is in `[numbers].personal`,
//!   DUR-3 extension to extension, DUR-1 otherwise. Talk over the limit (not equal) breaks
//!   it; a limit (or `max_rings`) of 0 turns the rule off.
//! - WHO-1 of a callee: answering a rostered phone off shift is using it; judged at the
//!   answer time, raised at the end. A phone that only rang is not used.
//! - Rules judged at the end are detected at the call's end (`ended_at`): that is when
//!   policy sees the record.
//! - The record's `number`/`class` are those of the number dialled, whatever the
//!   direction (an inbound call to an extension is class `internal`; the outside party is
//!   the record's `caller`).

use super::cost::{fen, premium_fine_fen, Tariffs};
use super::groups::{holidays, minute_of, AppliedLimits, ApprovalRule, GroupPolicy, Groups, Zone};
use super::numbering::{NumberingPlan, PrefixSet};
use super::{Class, Violation, ViolationKind};
use crate::config::{Config, Fines, GroupMode, RecordMode};
use crate::time::Ts;
use crate::track::{AnswerJudged, CallRecord, EffectiveJudged, EndReason, TalkJudged};
use jiff::civil::Date;
use std::collections::BTreeSet;

/// One config, compiled: everything a rule reads.
#[derive(Debug)]
pub struct RuleBook {
    pub plan: NumberingPlan,
    pub groups: Groups,
    pub defaults: AppliedLimits,
    pub zone: Zone,
    pub holidays: BTreeSet<Date>,
    pub approvals: Vec<ApprovalRule>,
    pub fines: Fines,
    pub tariffs: Tariffs,
    pub personal: PrefixSet,
    pub record: PrefixSet,
    pub retention_days: u32,
}

/// What the rules need of a call's first INVITE.
#[derive(Copy, Clone, Debug)]
pub struct Invite<'a> {
    /// Empty for a hypothetical call (`Policy::check`).
    pub call_id: &'a str,
    /// From tag of the INVITE (empty if none).
    pub from_tag: &'a str,
    pub at: Ts,
    pub caller: &'a str,
    pub callee: &'a str,
    pub dialled: &'a str,
    /// The Request-URI's host when `dialled` is a name (`[site].domains` classes it).
    pub dialled_domain: Option<&'a str>,
}

/// The INVITE's verdict, kept with the call until it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub number: String,
    pub class: Class,
    pub caller_ours: bool,
    /// Group of our extension on the call (the caller's, else the callee's).
    pub group: Option<String>,
    /// Raised at the INVITE, in order.
    pub violations: Vec<Violation>,
    /// Index in `violations` of an OUT-1 whose fine waits for the charge.
    pub premium: Option<usize>,
}

/// The call a violation is about: its identity in the store.
struct Ctx {
    call_id: Option<String>,
    from_tag: Option<String>,
    started_at: Ts,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    fn violation(
        &self,
        rule: &str,
        kind: ViolationKind,
        extension: &str,
        number: &str,
        detected_at: Ts,
        fine_fen: Option<i64>,
        detail: String,
    ) -> Violation {
        Violation {
            rule: rule.to_string(),
            kind,
            call_id: self.call_id.clone(),
            call_started_at: self.call_id.as_ref().map(|_| self.started_at),
            call_from_tag: self.call_id.as_ref().and(self.from_tag.clone()),
            extension: extension.to_string(),
            number: number.to_string(),
            detected_at,
            fine_fen,
            detail,
        }
    }
}

fn fmt_secs(ms: i64) -> String {
    format!("{}.{} s", ms / 1000, (ms % 1000).abs() / 100)
}

/// "1 ring", "0 rings", "4 rings": the count as a supervisor reads it in a violation.
fn fmt_rings(n: u32) -> String {
    if n == 1 {
        "1 ring".into()
    } else {
        format!("{n} rings")
    }
}

impl RuleBook {
    pub fn compile(cfg: &Config) -> Result<RuleBook, String> {
        let groups = Groups::compile(cfg)?;
        let group_extensions: Vec<String> = groups.patterns().cloned().collect();
        let zone = Zone::new(&cfg.site.timezone)?;
        let approvals = cfg.approvals.iter().map(|a| ApprovalRule::compile(a, &zone)).collect::<Result<Vec<_>, _>>()?;
        Ok(RuleBook {
            plan: NumberingPlan::new(&cfg.site, &cfg.numbers, &group_extensions)?,
            groups,
            defaults: AppliedLimits::defaults(&cfg.limits),
            holidays: holidays(&cfg.holidays)?,
            approvals,
            zone,
            fines: cfg.fines.clone(),
            tariffs: Tariffs::new(&cfg.tariffs)?,
            personal: PrefixSet::new(&cfg.numbers.personal).map_err(|e| format!("numbers.personal: {e}"))?,
            record: PrefixSet::new(&cfg.numbers.record).map_err(|e| format!("numbers.record: {e}"))?,
            retention_days: cfg.recordings.retention_days,
        })
    }

    pub fn is_ours(&self, ext: &str) -> bool {
        !ext.is_empty() && self.plan.is_extension(ext)
    }

    pub fn limits(&self, g: Option<&GroupPolicy>) -> AppliedLimits {
        g.map_or(self.defaults, |g| g.limits)
    }

    /// Our extension that the call rang: the To user, else the Request-URI user.
    fn our_callee<'a>(&self, callee: &'a str, dialled: &'a str) -> Option<&'a str> {
        [callee, dialled].into_iter().find(|e| self.is_ours(e))
    }

    /// The other party of a call seen from outside (inbound caller), normalised.
    fn remote(&self, who: &str) -> String {
        self.plan.classify_as(who, false).number_string()
    }

    fn local_text(&self, at: Ts) -> String {
        match self.zone.local(at) {
            Some(t) => {
                format!("{} {:02}:{:02} {} ({})", t.date(), t.hour(), t.minute(), t.weekday_short(), self.zone.name())
            }
            None => format!("{at}"),
        }
    }

    /// The violations knowable at the INVITE, and what the end will need.
    pub fn at_invite(&self, inv: &Invite<'_>, more_approvals: &[ApprovalRule]) -> Verdict {
        let ctx = Ctx {
            call_id: (!inv.call_id.is_empty()).then(|| inv.call_id.to_string()),
            from_tag: (!inv.from_tag.is_empty()).then(|| inv.from_tag.to_string()),
            started_at: inv.at,
        };
        let caller_ours = self.is_ours(inv.caller);
        // A name is classed with its host: put them together for the plan (names only,
        // so numbers never allocate here).
        let with_host;
        let dialled = match inv.dialled_domain {
            Some(h) => {
                with_host = format!("{}@{h}", inv.dialled);
                with_host.as_str()
            }
            None => inv.dialled,
        };
        let cl = self.plan.classify_as(dialled, caller_ours);
        let number = cl.number_string();
        let caller_group = if caller_ours { self.groups.of(inv.caller) } else { None };
        let group = caller_group.or_else(|| self.our_callee(inv.callee, inv.dialled).and_then(|e| self.groups.of(e)));
        let mut v = Verdict {
            number,
            class: cl.class,
            caller_ours,
            group: group.map(|g| g.name.clone()),
            violations: Vec::new(),
            premium: None,
        };
        if !caller_ours || cl.class == Class::Emergency {
            return v;
        }
        let ext = inv.caller;
        let n = v.number.as_str();
        let dial = if inv.dialled.trim() == n {
            format!("dialled {n}")
        } else {
            format!("dialled {} → {n}", inv.dialled.trim())
        };
        let group_name = caller_group.map_or("-", |g| g.name.as_str());
        let outbound = cl.class != Class::Internal;
        if outbound {
            let mode = caller_group.map_or(GroupMode::Normal, |g| g.mode);
            let allowed = caller_group.is_some_and(|g| g.allow.longest_prefix(cl.number.bytes()).is_some());
            if mode == GroupMode::AlarmOnly && !allowed {
                v.violations.push(ctx.violation(
                    "OUT-4",
                    ViolationKind::AlarmOnly,
                    ext,
                    n,
                    inv.at,
                    Some(fen(self.fines.alarm_only)),
                    format!("{dial} ({}) from alarm-only phone of group {group_name}", cl.class.as_str()),
                ));
            } else if mode == GroupMode::ReceiveOnly {
                v.violations.push(ctx.violation(
                    "OUT-5",
                    ViolationKind::ReceiveOnly,
                    ext,
                    n,
                    inv.at,
                    Some(fen(self.fines.receive_only)),
                    format!("{dial} ({}) from receive-only phone of group {group_name}", cl.class.as_str()),
                ));
            } else if cl.class == Class::Premium {
                let prefix = cl.number.head(cl.premium_prefix.unwrap_or(0));
                v.premium = Some(v.violations.len());
                v.violations.push(ctx.violation(
                    "OUT-1",
                    ViolationKind::PremiumRate,
                    ext,
                    n,
                    inv.at,
                    None,
                    format!("{dial}, premium-rate prefix {prefix}"),
                ));
            } else if let Some(may) = caller_group.and_then(|g| g.may_dial) {
                let approved = self.approvals.iter().chain(more_approvals).any(|a| a.covers(ext, cl.class, inv.at));
                if !may.contains(cl.class) && !approved {
                    let yuan = match cl.class {
                        Class::LongDistance => self.fines.long_distance,
                        Class::HkMacau => self.fines.hk_macau,
                        Class::Taiwan => self.fines.taiwan,
                        Class::International => self.fines.international,
                        _ => 0,
                    };
                    v.violations.push(ctx.violation(
                        "OUT-2",
                        ViolationKind::UnauthorisedClass,
                        ext,
                        n,
                        inv.at,
                        Some(fen(yuan)),
                        format!(
                            "{dial}: {} is not in may_dial of group {group_name} and no approval covers {}",
                            cl.class.as_str(),
                            self.local_text(inv.at)
                        ),
                    ));
                }
            }
            if let (Some(g), Some(t)) = (caller_group.filter(|g| !g.windows.is_empty()), self.zone.local(inv.at)) {
                let why = if self.holidays.contains(&t.date()) {
                    Some(format!("{dial} on holiday {}", t.date()))
                } else if !g.in_window(minute_of(&t)) {
                    Some(format!(
                        "{dial} at {} outside the calling windows {} of group {}",
                        self.local_text(inv.at),
                        g.windows_text(),
                        g.name
                    ))
                } else {
                    None
                };
                if let Some(why) = why {
                    v.violations.push(ctx.violation(
                        "WHO-2",
                        ViolationKind::OutsideWindow,
                        ext,
                        n,
                        inv.at,
                        Some(fen(self.fines.outside_window)),
                        why,
                    ));
                }
            }
        }
        if let (Some(g), Some(t)) = (caller_group.filter(|g| g.roster), self.zone.local(inv.at)) {
            if !g.on_duty(ext, &t) {
                v.violations.push(ctx.violation(
                    "WHO-1",
                    ViolationKind::OffDutyUse,
                    ext,
                    n,
                    inv.at,
                    Some(fen(self.fines.off_duty)),
                    format!("{dial}: {ext} is not on a shift of group {} at {}", g.name, self.local_text(inv.at)),
                ));
            }
        }
        v
    }

    /// Judge the finished call: fill `number`, `class`, `group`, `cost_fen`; return the
    /// violations that needed the whole call, and OUT-1 with its fine.
    pub fn at_end(&self, rec: &mut CallRecord, verdict: &Verdict) -> Vec<Violation> {
        rec.number = verdict.number.clone();
        rec.class = Some(verdict.class.as_str().to_string());
        let ctx = Ctx {
            call_id: (!rec.call_id.is_empty()).then(|| rec.call_id.clone()),
            from_tag: (!rec.from_tag.is_empty()).then(|| rec.from_tag.clone()),
            started_at: rec.started_at,
        };
        // A call through a B2BUA may reach one of ours only on a later leg (an inbound call
        // to the DID rings a group's phones): who answered, else the first phone that rang,
        // is the callee the answering rules judge — one call, one judgement.
        let callee_ext = self
            .our_callee(&rec.callee, &rec.dialled)
            .map(str::to_string)
            .or_else(|| rec.linking.answered_by.clone().filter(|e| self.is_ours(e)))
            .or_else(|| rec.linking.legs.iter().skip(1).find(|l| self.is_ours(&l.to)).map(|l| l.to.clone()));
        rec.group = verdict
            .group
            .clone()
            .or_else(|| callee_ext.as_deref().and_then(|e| self.groups.of(e)).map(|g| g.name.clone()));
        let class = verdict.class;
        let outbound = verdict.caller_ours && class != Class::Internal;
        let cost = if outbound && rec.answered { self.tariffs.cost_fen(class, rec.talk_ms) } else { 0 };
        rec.cost_fen = (verdict.caller_ours || callee_ext.is_some()).then_some(cost);
        let mut out = Vec::new();

        if let Some(mut p) = verdict.premium.and_then(|i| verdict.violations.get(i)).cloned() {
            let fine = premium_fine_fen(self.fines.premium_multiplier, self.fines.premium_fixed, cost);
            let charge = if rec.answered {
                format!(
                    "charge {cost} fen ({} × {} s of talk {} at {} fen/min)",
                    self.tariffs.units(rec.talk_ms),
                    self.tariffs.unit_s(),
                    fmt_secs(rec.talk_ms),
                    self.tariffs.per_minute(class)
                )
            } else {
                "not answered, charge 0 fen".to_string()
            };
            p.detail = format!(
                "{}; {charge}; fine {} × {cost} + {} = {fine} fen",
                p.detail,
                self.fines.premium_multiplier,
                fen(self.fines.premium_fixed)
            );
            p.fine_fen = Some(fine);
            out.push(p);
        }

        if rec.answered {
            let min_talk_s =
                self.limits(rec.group.as_deref().and_then(|g| self.groups.by_name(g))).effective_min_talk_s;
            let effective = rec.talk_ms >= i64::from(min_talk_s) * 1000;
            rec.judged.effective = Some(EffectiveJudged { min_talk_s, effective });
        }

        let caller_number = if verdict.caller_ours { rec.caller.clone() } else { self.remote(&rec.caller) };
        if let Some(ext) = callee_ext.as_deref() {
            let g = self.groups.of(ext);
            let lim = self.limits(g);
            let gname = g.map_or("-", |g| g.name.as_str());
            if rec.answered {
                let rule = if lim.max_rings_own { "ANS-2" } else { "ANS-1" };
                let over = lim.max_rings > 0 && rec.rings > lim.max_rings;
                rec.judged.answer =
                    Some(AnswerJudged { rule: rule.to_string(), max_rings: lim.max_rings, within: !over });
                if over {
                    out.push(ctx.violation(
                        rule,
                        ViolationKind::SlowAnswer,
                        ext,
                        &caller_number,
                        rec.ended_at,
                        Some(fen(self.fines.slow_answer)),
                        format!(
                            "answered after {} (ringing {}) > {} allowed in group {gname}",
                            fmt_rings(rec.rings),
                            fmt_secs(rec.ring_ms),
                            lim.max_rings
                        ),
                    ));
                }
            } else {
                let missed = match rec.end_reason {
                    EndReason::Busy | EndReason::Rejected | EndReason::NoAnswer => true,
                    EndReason::Cancelled | EndReason::Timeout => rec.ringing_at.is_some(),
                    _ => false,
                };
                if missed {
                    let status = rec.sip_status.map(|s| format!(", SIP {s}")).unwrap_or_default();
                    out.push(ctx.violation(
                        "ANS-3",
                        ViolationKind::Missed,
                        ext,
                        &caller_number,
                        rec.ended_at,
                        Some(fen(self.fines.missed)),
                        format!("not answered ({}{status}) after {}", rec.end_reason.as_str(), fmt_rings(rec.rings)),
                    ));
                }
            }
        }

        let ours_on_call = if verdict.caller_ours { Some(rec.caller.clone()) } else { callee_ext.clone() };
        if let (true, Some(ext)) = (rec.answered, ours_on_call.as_deref()) {
            let g = self.groups.of(ext);
            let lim = self.limits(g);
            let (remote_norm, remote_raw) = if verdict.caller_ours {
                (verdict.number.as_str(), rec.dialled.as_str())
            } else {
                (caller_number.as_str(), rec.caller.as_str())
            };
            let personal = !self.personal.is_empty()
                && (self.personal.longest_prefix(remote_norm.bytes()).is_some()
                    || self.personal.longest_prefix(remote_raw.trim().bytes()).is_some());
            // Extension to extension (or to a PBX user / feature code). An inbound call's
            // class is that of the number dialled (our extension: internal), but its other
            // end is outside, so it is a business call.
            let internal = verdict.caller_ours && (class == Class::Internal || callee_ext.is_some());
            let (rule, limit, what) = if personal {
                ("DUR-2", lim.personal_max_talk_s, "personal")
            } else if internal {
                ("DUR-3", lim.internal_max_talk_s, "internal")
            } else {
                ("DUR-1", lim.max_talk_s, "business")
            };
            let over = limit > 0 && rec.talk_ms > i64::from(limit) * 1000;
            rec.judged.talk = Some(TalkJudged { rule: rule.to_string(), limit_s: limit, personal, over });
            if over {
                out.push(ctx.violation(
                    rule,
                    ViolationKind::LongCall,
                    ext,
                    remote_norm,
                    rec.ended_at,
                    Some(fen(self.fines.long_call)),
                    format!(
                        "talk {} > {limit} s ({what} limit of group {})",
                        fmt_secs(rec.talk_ms),
                        g.map_or("-", |g| g.name.as_str())
                    ),
                ));
            }
        }

        // WHO-1 for a rostered phone that answered: answering is using it. Judged at the
        // answer, raised at the end (when policy sees the call).
        if let (Some(ext), Some(answered_at)) = (callee_ext.as_deref(), rec.answered_at.filter(|_| rec.answered)) {
            let same = verdict.caller_ours && ext == rec.caller;
            if let (false, Some(g), Some(t)) =
                (same, self.groups.of(ext).filter(|g| g.roster), self.zone.local(answered_at))
            {
                if !g.on_duty(ext, &t) {
                    out.push(ctx.violation(
                        "WHO-1",
                        ViolationKind::OffDutyUse,
                        ext,
                        &caller_number,
                        rec.ended_at,
                        Some(fen(self.fines.off_duty)),
                        format!(
                            "answered a call from {caller_number}: {ext} is not on a shift of group {} at {}",
                            g.name,
                            self.local_text(answered_at)
                        ),
                    ));
                }
            }
        }
        out
    }

    /// Is `ext` judged for STA-1, and is this call one of its effective calls?
    pub fn effective(&self, rec: &CallRecord, verdict: &Verdict) -> Option<bool> {
        if !verdict.caller_ours || verdict.class == Class::Internal {
            return None;
        }
        let g = self.groups.of(&rec.caller).filter(|g| g.daily_target > 0)?;
        Some(rec.answered && rec.talk_ms >= i64::from(g.limits.effective_min_talk_s) * 1000)
    }

    /// REC-1: is either end in a group recorded always, or a number listed in
    /// `[numbers].record`?
    pub fn records(&self, caller: &str, callee: &str) -> bool {
        [caller, callee].into_iter().any(|e| {
            self.groups.of(e).is_some_and(|g| g.record == RecordMode::Always)
                || (!self.record.is_empty() && self.record.longest_prefix(e.trim().bytes()).is_some())
        })
    }
}

trait WeekdayShort {
    fn weekday_short(&self) -> &'static str;
}

impl WeekdayShort for jiff::civil::DateTime {
    fn weekday_short(&self) -> &'static str {
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .get(self.weekday().to_monday_zero_offset() as usize)
            .copied()
            .unwrap_or("")
    }
}
