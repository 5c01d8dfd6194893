//! Below-target (STA-1): effective calls per extension per local day, judged when packet
//! time passes the end of the day. May use: the rule book (groups, zone, holidays, fines)
//! and `time`. Invariants: only whole days are judged — the policy must have been
//! watching since the day began (or the daemon restored the day's counts from the store)
//! and packet time must really have passed its end (`handle_timeout(Ts::MAX)`, the end of
//! a capture, is not the end of a day); a day waits for its calls still in progress;
//! after `handle_timeout(now)` no timer at or before `now` remains, so the driver's loop
//! always moves on.
//!
//! Which extensions are judged, for each group with `daily_target > 0`, on a day on which
//! the group worked (at least one of its extensions made an outbound call) and that is not
//! a `[holidays]` date: every extension that made an outbound call that day, plus every
//! extension of the group when the group holds at most `groups::SMALL_GROUP` numbers (or
//! those listed singly, for large ranges) — so a telemarketer who made no call at all on a
//! working day is short by the whole target, while the unused numbers of a big block are
//! not. Days without any work (weekends, leave of the whole team) are not judged.

use super::cost::fen;
use super::rules::RuleBook;
use super::{Violation, ViolationKind};
use crate::time::Ts;
use jiff::civil::Date;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
struct Day {
    start: Ts,
    end: Ts,
    /// Outbound calls of target groups started this day and not yet ended.
    open: u32,
    /// Packet time passed `end` while calls were open: judge when the last one ends.
    due: bool,
    /// A call of the day was cut short by the end of the capture before it counted.
    partial: bool,
    /// Counts restored from the store: the day is whole though we started late.
    restored: bool,
    effective: BTreeMap<String, u32>,
    /// Extensions that made an outbound call this day.
    active: BTreeSet<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Daily {
    /// Earliest packet time seen: days that began before it are not whole.
    observed_from: Option<Ts>,
    days: BTreeMap<Date, Day>,
}

impl Daily {
    pub fn observe(&mut self, at: Ts) {
        if at != Ts::MAX && at != Ts::MIN {
            self.observed_from = Some(self.observed_from.map_or(at, |o| o.min(at)));
        }
    }

    fn day(&mut self, book: &RuleBook, at: Ts) -> Option<(Date, &mut Day)> {
        let (date, start, end) = book.zone.day_of(at)?;
        let day = self.days.entry(date).or_insert_with(|| Day { start, end, ..Day::default() });
        Some((date, day))
    }

    /// An outbound call of a target group started (its local day is returned, to close it).
    pub fn opened(&mut self, book: &RuleBook, ext: &str, at: Ts) -> Option<Date> {
        let (date, day) = self.day(book, at)?;
        day.open += 1;
        day.active.insert(ext.to_string());
        Some(date)
    }

    /// The call opened on `date` ended. `effective` per STA-1; `cut` if the capture or
    /// the daemon ended it.
    #[allow(clippy::too_many_arguments)]
    pub fn closed(
        &mut self,
        book: &RuleBook,
        date: Option<Date>,
        ext: &str,
        started: Ts,
        effective: bool,
        cut: bool,
        ended_at: Ts,
        out: &mut Vec<Violation>,
    ) {
        let date = match date {
            Some(d) => d,
            // Never opened (no `Started` seen): count it on its own day.
            None => match self.day(book, started) {
                Some((d, day)) => {
                    day.open += 1;
                    day.active.insert(ext.to_string());
                    d
                }
                None => return,
            },
        };
        let Some(day) = self.days.get_mut(&date) else { return };
        day.open = day.open.saturating_sub(1);
        if effective {
            *day.effective.entry(ext.to_string()).or_default() += 1;
        } else if cut {
            day.partial = true;
        }
        if day.due && day.open == 0 {
            if let Some(day) = self.days.remove(&date) {
                self.judge(book, date, &day, ended_at, out);
            }
        }
    }

    /// The daemon's counts for the day holding `at`, from calls stored before it started.
    pub fn restore(&mut self, book: &RuleBook, ext: &str, at: Ts, count: u32) {
        if let Some((_, day)) = self.day(book, at) {
            day.restored = true;
            if count > 0 {
                *day.effective.entry(ext.to_string()).or_default() += count;
                day.active.insert(ext.to_string());
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Ts> {
        self.days.values().filter(|d| !d.due).map(|d| d.end).min()
    }

    pub fn handle_timeout(&mut self, book: &RuleBook, now: Ts, out: &mut Vec<Violation>) {
        self.observe(now);
        let ended: Vec<Date> = self.days.iter().filter(|(_, d)| !d.due && d.end <= now).map(|(k, _)| *k).collect();
        for date in ended {
            if now == Ts::MAX {
                // The end of the capture, not of the day: a partial day is not judged.
                self.days.remove(&date);
                continue;
            }
            let Some(day) = self.days.get_mut(&date) else { continue };
            if day.open > 0 {
                day.due = true;
            } else if let Some(day) = self.days.remove(&date) {
                let at = day.end;
                self.judge(book, date, &day, at, out);
            }
        }
    }

    fn judge(&self, book: &RuleBook, date: Date, day: &Day, detected_at: Ts, out: &mut Vec<Violation>) {
        let whole = day.restored || self.observed_from.is_some_and(|o| o <= day.start);
        if !whole || day.partial || book.holidays.contains(&date) {
            return;
        }
        for g in book.groups.iter().filter(|g| g.daily_target > 0) {
            let active: BTreeSet<&String> = day.active.iter().filter(|e| g.extensions.contains(e)).collect();
            if active.is_empty() {
                continue;
            }
            let mut judged: BTreeSet<String> = g.members_if_small().into_iter().collect();
            judged.extend(active.into_iter().cloned());
            for ext in judged {
                // An extension listed here but belonging first to another group is that
                // group's to judge.
                if book.groups.of(&ext).map(|o| o.name.as_str()) != Some(g.name.as_str()) {
                    continue;
                }
                let got = day.effective.get(&ext).copied().unwrap_or(0);
                if got >= g.daily_target {
                    continue;
                }
                let short = g.daily_target - got;
                out.push(Violation {
                    rule: "STA-1".to_string(),
                    kind: ViolationKind::BelowTarget,
                    call_id: None,
                    call_started_at: None,
                    call_from_tag: None,
                    extension: ext.clone(),
                    number: String::new(),
                    detected_at,
                    fine_fen: Some(i64::from(short).saturating_mul(fen(book.fines.below_target_per_call))),
                    detail: format!(
                        "{date}: {got} effective calls (answered, talk ≥ {} s) of the {} a day of group {}; short by {short}",
                        g.limits.effective_min_talk_s, g.daily_target, g.name
                    ),
                });
            }
        }
    }
}
