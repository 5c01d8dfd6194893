//! Groups of extensions and what they may do: limits (falling back to `[limits]`), mode,
//! the classes they may dial, calling windows, the duty roster, daily targets, budgets,
//! recording and retention; approvals; the holiday calendar; and the site's time zone in
//! which every time of day is judged. May use: `config`, `time`, and the numbering plan's
//! `PrefixSet`. Invariants: everything here is compiled once per config and read-only
//! after; a `Ts` outside the calendar's range is never "inside" a shift or window and
//! never panics.

use super::numbering::PrefixSet;
use super::Class;
use crate::config::{self, Config, ExtensionSet, GroupMode, RecordMode};
use crate::time::Ts;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use std::collections::BTreeSet;

/// The site's zone: packet time ↔ local calendar time.
#[derive(Clone, Debug)]
pub struct Zone {
    tz: TimeZone,
    name: String,
}

impl Zone {
    pub fn new(name: &str) -> Result<Zone, String> {
        let tz = TimeZone::get(name).map_err(|e| format!("site.timezone: \"{name}\": {e}"))?;
        Ok(Zone { tz, name: name.to_string() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Local civil time of a packet time; `None` outside the calendar's range.
    pub fn local(&self, at: Ts) -> Option<DateTime> {
        let t = jiff::Timestamp::from_microsecond(at.as_micros()).ok()?;
        Some(self.tz.to_datetime(t))
    }

    /// The first instant of a local date (the earlier one where midnight is repeated, the
    /// first after the gap where it is skipped).
    pub fn start_of(&self, date: Date) -> Option<Ts> {
        let t = self.tz.to_ambiguous_timestamp(date.to_datetime(jiff::civil::Time::midnight())).compatible().ok()?;
        Some(Ts::from_micros(t.as_microsecond()))
    }

    /// `[start, end)` of the local day holding `at`, with its date.
    pub fn day_of(&self, at: Ts) -> Option<(Date, Ts, Ts)> {
        let date = self.local(at)?.date();
        let start = self.start_of(date)?;
        let end = self.start_of(date.tomorrow().ok()?)?;
        Some((date, start, end))
    }

    /// "YYYY-MM" of the local month holding `at`.
    pub fn month_of(&self, at: Ts) -> Option<String> {
        let d = self.local(at)?.date();
        Some(format!("{:04}-{:02}", d.year(), d.month()))
    }
}

/// "HH:MM" → minutes since midnight; "24:00" is the end of the day.
pub fn parse_hhmm(s: &str) -> Result<u16, String> {
    let bad = || format!("\"{s}\" is not a time like \"08:00\"");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !digits(h) || !digits(m) {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A span of the day, `[from, to)` in minutes. `to <= from` crosses midnight (17:00-08:00);
/// `to == from` is the whole day starting at `from`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub from: u16,
    pub to: u16,
}

impl Span {
    pub fn new(from: &str, to: &str) -> Result<Span, String> {
        let (from, to) = (parse_hhmm(from)?, parse_hhmm(to)?);
        // 24:00 as a start is the next midnight: the same as 00:00.
        Ok(Span { from: from % 1440, to: if to == 1440 && from % 1440 == 0 { 1440 } else { to % 1440 } })
    }

    /// "10:00-12:00".
    pub fn parse(s: &str) -> Result<Span, String> {
        let (a, b) = s.split_once('-').ok_or_else(|| format!("\"{s}\" is not a window like \"10:00-12:00\""))?;
        Span::new(a, b)
    }

    pub fn crosses_midnight(&self) -> bool {
        self.to <= self.from
    }

    /// Whether minute `m` of a day is in the part of the span that started that day.
    pub fn holds_same_day(&self, m: u16) -> bool {
        if self.crosses_midnight() {
            m >= self.from
        } else {
            self.from <= m && m < self.to
        }
    }

    /// Whether minute `m` of a day is in the part of the span that started the day before.
    pub fn holds_from_previous_day(&self, m: u16) -> bool {
        self.crosses_midnight() && m < self.to
    }

    pub fn holds(&self, m: u16) -> bool {
        self.holds_same_day(m) || self.holds_from_previous_day(m)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}-{:02}:{:02}", self.from / 60, self.from % 60, self.to / 60, self.to % 60)
    }
}

/// Minutes since local midnight.
pub fn minute_of(dt: &DateTime) -> u16 {
    // hour 0..=23, minute 0..=59: always fits.
    (dt.hour() as u16) * 60 + dt.minute() as u16
}

/// Bit of a weekday, Monday = bit 0.
fn weekday_bit(d: jiff::civil::Weekday) -> u8 {
    1u8 << d.to_monday_zero_offset()
}

fn parse_days(key: &str, days: &[String]) -> Result<u8, String> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    const FULL: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let mut mask = 0u8;
    for d in days {
        let l = d.trim().to_ascii_lowercase();
        let Some(i) = NAMES.iter().zip(FULL).position(|(s, f)| l == *s || l == f) else {
            return Err(format!("{key}: \"{d}\" is not a weekday (mon..sun)"));
        };
        mask |= 1 << i;
    }
    Ok(mask)
}

/// One `[[shift]]` of a rostered group.
#[derive(Clone, Debug)]
pub struct ShiftRule {
    /// `None`: every extension of the group.
    pub extensions: Option<ExtensionSet>,
    pub span: Span,
    /// Weekday bits (Monday = bit 0) the shift starts on; 0 = every day.
    pub days: u8,
    pub staff: String,
}

impl ShiftRule {
    fn starts_on(&self, d: Date) -> bool {
        self.days == 0 || self.days & weekday_bit(d.weekday()) != 0
    }

    fn covers(&self, ext: &str) -> bool {
        self.extensions.as_ref().is_none_or(|s| s.contains(ext))
    }

    /// Is `ext` on this shift at local time `t`? A shift that crosses midnight belongs to
    /// the day it started, for the `days` filter.
    pub fn on_duty(&self, ext: &str, t: &DateTime) -> bool {
        if !self.covers(ext) {
            return false;
        }
        let m = minute_of(t);
        let date = t.date();
        (self.span.holds_same_day(m) && self.starts_on(date))
            || (self.span.holds_from_previous_day(m) && date.yesterday().is_ok_and(|y| self.starts_on(y)))
    }
}

/// A set of classes (the `may_dial` list).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassSet(u16);

impl ClassSet {
    pub fn contains(self, c: Class) -> bool {
        self.0 & (1 << c as u16) != 0
    }
    pub fn insert(&mut self, c: Class) {
        self.0 |= 1 << c as u16;
    }
}

/// Per-extension limits: the group's, each falling back to `[limits]`. A limit of 0
/// switches its rule off.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AppliedLimits {
    pub max_rings: u32,
    /// `max_rings` is the group's own (ANS-2), not `[limits]`'s (ANS-1): decided by where
    /// the value came from, never by comparing it with the default.
    pub max_rings_own: bool,
    pub max_talk_s: u32,
    pub personal_max_talk_s: u32,
    pub internal_max_talk_s: u32,
    pub effective_min_talk_s: u32,
}

impl AppliedLimits {
    pub fn defaults(l: &config::Limits) -> AppliedLimits {
        AppliedLimits {
            max_rings: l.max_rings,
            max_rings_own: false,
            max_talk_s: l.max_talk_s,
            personal_max_talk_s: l.personal_max_talk_s,
            internal_max_talk_s: l.internal_max_talk_s,
            effective_min_talk_s: l.effective_min_talk_s,
        }
    }

    /// A `[[group]]`'s limits, each it does not set falling back to `defaults`.
    pub fn of_group(g: &config::Group, defaults: AppliedLimits) -> AppliedLimits {
        let pick = |o: Option<u32>, d: u32| o.unwrap_or(d);
        AppliedLimits {
            max_rings: pick(g.max_rings, defaults.max_rings),
            max_rings_own: g.max_rings.is_some(),
            max_talk_s: pick(g.max_talk_s, defaults.max_talk_s),
            personal_max_talk_s: pick(g.personal_max_talk_s, defaults.personal_max_talk_s),
            internal_max_talk_s: pick(g.internal_max_talk_s, defaults.internal_max_talk_s),
            effective_min_talk_s: pick(g.effective_min_talk_s, defaults.effective_min_talk_s),
        }
    }

    /// The limits `cfg` gives the group named `group`: `[limits]` for none, or for a name
    /// the config has no `[[group]]` of (the store's backfill of old calls).
    pub fn resolve(cfg: &Config, group: Option<&str>) -> AppliedLimits {
        let defaults = AppliedLimits::defaults(&cfg.limits);
        match group.and_then(|name| cfg.groups.iter().find(|g| g.name == name)) {
            Some(g) => AppliedLimits::of_group(g, defaults),
            None => defaults,
        }
    }
}

/// A compiled `[[group]]`.
#[derive(Clone, Debug)]
pub struct GroupPolicy {
    pub name: String,
    pub extensions: ExtensionSet,
    /// The patterns as written, to enumerate small groups (STA-1).
    patterns: Vec<String>,
    pub record: RecordMode,
    pub mode: GroupMode,
    /// `None`: every class.
    pub may_dial: Option<ClassSet>,
    /// Numbers an alarm-only phone may dial besides emergency numbers.
    pub allow: PrefixSet,
    pub limits: AppliedLimits,
    pub roster: bool,
    pub shifts: Vec<ShiftRule>,
    /// Empty: no calling windows (WHO-2 off for this group).
    pub windows: Vec<Span>,
    pub daily_target: u32,
    /// 0 = none.
    pub monthly_budget_fen: i64,
    pub retention_days: u32,
}

/// Enumerate a group only up to this many extensions (STA-1 judges all of a small group).
pub const SMALL_GROUP: u64 = 100;

impl GroupPolicy {
    /// May `ext` of this group dial now, by the roster? Groups without `roster` always.
    pub fn on_duty(&self, ext: &str, t: &DateTime) -> bool {
        !self.roster || self.shifts.iter().any(|s| s.on_duty(ext, t))
    }

    /// Whether minute `m` is inside a calling window (true when the group has none).
    pub fn in_window(&self, m: u16) -> bool {
        self.windows.is_empty() || self.windows.iter().any(|w| w.holds(m))
    }

    pub fn windows_text(&self) -> String {
        self.windows.iter().map(Span::to_string).collect::<Vec<_>>().join(", ")
    }

    /// Every extension of the group when it holds at most `SMALL_GROUP` numbers in all;
    /// otherwise only the ones listed singly (ranges that large are numbering blocks, not
    /// a list of staffed phones).
    pub fn members_if_small(&self) -> Vec<String> {
        let mut total = 0u64;
        let mut ranges = Vec::new();
        let mut singles = Vec::new();
        for p in &self.patterns {
            match p.trim().split_once('-') {
                Some((a, b)) => {
                    let (Ok(lo), Ok(hi)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) else { continue };
                    total = total.saturating_add(hi.saturating_sub(lo).saturating_add(1));
                    ranges.push((lo, hi, a.trim().len()));
                }
                None => {
                    total = total.saturating_add(1);
                    singles.push(p.trim().to_string());
                }
            }
        }
        if total <= SMALL_GROUP {
            for (lo, hi, width) in ranges {
                singles.extend((lo..=hi).map(|n| format!("{n:0width$}")));
            }
        }
        singles.sort();
        singles.dedup();
        singles
    }
}

/// All groups, in config order (an extension belongs to the first group listing it).
#[derive(Clone, Debug, Default)]
pub struct Groups {
    list: Vec<GroupPolicy>,
}

impl Groups {
    pub fn compile(cfg: &Config) -> Result<Groups, String> {
        let defaults = AppliedLimits::defaults(&cfg.limits);
        let mut list: Vec<GroupPolicy> = Vec::new();
        for (i, g) in cfg.groups.iter().enumerate() {
            let key = format!("group[{i}] \"{}\"", g.name);
            if g.name.trim().is_empty() {
                return Err(format!("group[{i}].name: empty"));
            }
            if list.iter().any(|o| o.name == g.name) {
                return Err(format!("{key}: a second group with this name"));
            }
            let extensions = ExtensionSet::parse(&g.extensions).map_err(|e| format!("{key}.extensions: {e}"))?;
            let may_dial = match &g.may_dial {
                None => None,
                Some(names) => {
                    let mut set = ClassSet::default();
                    for n in names {
                        let c = Class::parse(n.trim())
                            .ok_or_else(|| format!("{key}.may_dial: \"{n}\" is not a class name"))?;
                        set.insert(c);
                    }
                    Some(set)
                }
            };
            let windows = g
                .windows
                .iter()
                .map(|w| Span::parse(w))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{key}.windows: {e}"))?;
            list.push(GroupPolicy {
                name: g.name.clone(),
                extensions,
                patterns: g.extensions.clone(),
                record: g.record,
                mode: g.mode,
                may_dial,
                allow: PrefixSet::new(&g.allow).map_err(|e| format!("{key}.allow: {e}"))?,
                limits: AppliedLimits::of_group(g, defaults),
                roster: g.roster,
                shifts: Vec::new(),
                windows,
                daily_target: g.daily_target,
                monthly_budget_fen: i64::from(g.monthly_budget) * 100,
                retention_days: g.retention_days.unwrap_or(cfg.recordings.retention_days),
            });
        }
        for (i, s) in cfg.shifts.iter().enumerate() {
            let key = format!("shift[{i}]");
            let Some(g) = list.iter_mut().find(|g| g.name == s.group) else {
                return Err(format!("{key}.group: no group named \"{}\"", s.group));
            };
            let extensions = if s.extensions.is_empty() {
                None
            } else {
                Some(ExtensionSet::parse(&s.extensions).map_err(|e| format!("{key}.extensions: {e}"))?)
            };
            g.shifts.push(ShiftRule {
                extensions,
                span: Span::new(&s.from, &s.to).map_err(|e| format!("{key}.from/to: {e}"))?,
                days: parse_days(&format!("{key}.days"), &s.days)?,
                staff: s.staff.clone(),
            });
        }
        Ok(Groups { list })
    }

    /// The first group that lists `ext`.
    pub fn of(&self, ext: &str) -> Option<&GroupPolicy> {
        self.list.iter().find(|g| g.extensions.contains(ext))
    }

    pub fn by_name(&self, name: &str) -> Option<&GroupPolicy> {
        self.list.iter().find(|g| g.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &GroupPolicy> {
        self.list.iter()
    }

    /// Every group's patterns, for the plan's "ours" set.
    pub fn patterns(&self) -> impl Iterator<Item = &String> {
        self.list.iter().flat_map(|g| g.patterns.iter())
    }
}

/// A compiled approval: `extension` may dial `class` in `[from, until)` (packet time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRule {
    pub extension: String,
    extensions: ExtensionSet,
    pub class: Class,
    pub from: Ts,
    pub until: Ts,
    pub approver: String,
}

impl ApprovalRule {
    /// Dates are whole local days (both inclusive); RFC 3339 instants are exact (`until`
    /// inclusive).
    pub fn compile(a: &config::Approval, zone: &Zone) -> Result<ApprovalRule, String> {
        let who = format!("approval for \"{}\"", a.extension);
        let extensions =
            ExtensionSet::parse(std::slice::from_ref(&a.extension)).map_err(|e| format!("{who}: extension: {e}"))?;
        let class =
            Class::parse(a.class.trim()).ok_or_else(|| format!("{who}: \"{}\" is not a class name", a.class))?;
        if class == Class::Premium {
            return Err(format!("{who}: premium-rate lines are barred by OUT-1; approvals lift OUT-2 only"));
        }
        let from = instant(&a.from, zone, false).map_err(|e| format!("{who}: from: {e}"))?;
        let until = instant(&a.until, zone, true).map_err(|e| format!("{who}: until: {e}"))?;
        if until <= from {
            return Err(format!("{who}: until is before from"));
        }
        Ok(ApprovalRule {
            extension: a.extension.clone(),
            extensions,
            class,
            from,
            until,
            approver: a.approver.clone(),
        })
    }

    pub fn covers(&self, ext: &str, class: Class, at: Ts) -> bool {
        self.class == class && self.from <= at && at < self.until && self.extensions.contains(ext)
    }
}

/// A date (start of that local day, or start of the next for an inclusive end) or an
/// RFC 3339 instant (one microsecond later for an inclusive end).
fn instant(s: &str, zone: &Zone, end: bool) -> Result<Ts, String> {
    let s = s.trim();
    // jiff's `Date` parser also takes a full datetime (keeping its date): a bare date is
    // exactly "YYYY-MM-DD".
    if let Some(d) = parse_date(s) {
        let d = if end { d.tomorrow().map_err(|e| e.to_string())? } else { d };
        return zone.start_of(d).ok_or_else(|| format!("\"{s}\" is out of range"));
    }
    let t: jiff::Timestamp =
        s.parse().map_err(|_| format!("\"{s}\" is neither a date \"2026-11-01\" nor an RFC 3339 time"))?;
    let us = Ts::from_micros(t.as_microsecond());
    Ok(if end { us + crate::time::Dur::from_micros(1) } else { us })
}

/// A bare "YYYY-MM-DD" date.
pub fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    if s.len() == 10 {
        s.parse::<Date>().ok()
    } else {
        None
    }
}

/// The `[holidays]` dates.
pub fn holidays(h: &config::Holidays) -> Result<BTreeSet<Date>, String> {
    h.dates
        .iter()
        .map(|d| parse_date(d).ok_or_else(|| format!("holidays.dates: \"{d}\" is not a date like \"2026-10-01\"")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn sh() -> Zone {
        Zone::new("Asia/Shanghai").unwrap()
    }

    /// Packet time of a Shanghai wall-clock time.
    pub(crate) fn at(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Ts {
        let z = sh();
        let t = z.tz.to_ambiguous_timestamp(date(y, mo, d).at(h, mi, 0, 0)).compatible().unwrap();
        Ts::from_micros(t.as_microsecond())
    }

    #[test]
    fn hhmm_and_spans() {
        assert_eq!(parse_hhmm("08:00"), Ok(480));
        assert_eq!(parse_hhmm("8:05"), Ok(485));
        assert_eq!(parse_hhmm("24:00"), Ok(1440));
        for bad in ["24:01", "12:60", "1200", "", "ab:cd", "12:5", "123:00", "-1:00", "+8:00", "08:+5"] {
            assert!(parse_hhmm(bad).is_err(), "{bad}");
        }
        let day = Span::parse("08:00-17:00").unwrap();
        assert!(!day.crosses_midnight());
        assert!(day.holds(480) && day.holds(1019) && !day.holds(1020) && !day.holds(479));
        let night = Span::parse("17:00-08:00").unwrap();
        assert!(night.crosses_midnight());
        assert!(night.holds_same_day(1020) && night.holds_same_day(1439) && !night.holds_same_day(0));
        assert!(night.holds_from_previous_day(0) && night.holds_from_previous_day(479));
        assert!(!night.holds(480) && !night.holds(1019));
        let whole = Span::parse("00:00-24:00").unwrap();
        assert!(whole.holds(0) && whole.holds(1439) && !whole.crosses_midnight());
        let round = Span::parse("06:00-06:00").unwrap();
        assert!(round.holds(0) && round.holds(359) && round.holds(360) && round.holds(1439));
        assert_eq!(night.to_string(), "17:00-08:00");
        assert!(Span::parse("10:00").is_err());
    }

    #[test]
    fn zone_days_and_months() {
        let z = sh();
        // 2026-11-01 23:59 Shanghai is 15:59 UTC.
        let t = at(2026, 11, 1, 23, 59);
        assert_eq!(t.as_micros(), 1_793_548_740_000_000);
        let (d, start, end) = z.day_of(t).unwrap();
        assert_eq!(d, date(2026, 11, 1));
        assert_eq!(start, at(2026, 11, 1, 0, 0));
        assert_eq!(end, at(2026, 11, 2, 0, 0));
        assert_eq!(end.as_micros() - start.as_micros(), 86_400_000_000);
        assert_eq!(z.month_of(t).as_deref(), Some("2026-11"));
        assert!(z.local(Ts::MAX).is_none() && z.day_of(Ts::MIN).is_none());
        assert!(Zone::new("Mars/Olympus").is_err());
    }

    #[test]
    fn shifts_across_midnight_in_shanghai() {
        let cfg: Config = Config {
            groups: vec![config::Group {
                name: "dispatch".into(),
                extensions: vec!["8001-8009".into()],
                roster: true,
                ..Default::default()
            }],
            shifts: vec![
                config::Shift {
                    group: "dispatch".into(),
                    extensions: vec!["8001".into()],
                    from: "08:00".into(),
                    to: "17:00".into(),
                    ..Default::default()
                },
                config::Shift {
                    group: "dispatch".into(),
                    extensions: vec!["8002".into()],
                    from: "17:00".into(),
                    to: "08:00".into(),
                    days: vec!["fri".into()],
                    ..Default::default()
                },
            ],
            ..Config::default()
        };
        let groups = Groups::compile(&cfg).unwrap();
        let g = groups.of("8001").unwrap();
        let z = sh();
        let local = |t: Ts| z.local(t).unwrap();
        // 2026-11-06 is a Friday.
        assert!(g.on_duty("8001", &local(at(2026, 11, 6, 8, 0))));
        assert!(g.on_duty("8001", &local(at(2026, 11, 6, 16, 59))));
        assert!(!g.on_duty("8001", &local(at(2026, 11, 6, 17, 0))));
        assert!(!g.on_duty("8001", &local(at(2026, 11, 6, 7, 59))));
        // The Friday night shift runs into Saturday morning...
        assert!(g.on_duty("8002", &local(at(2026, 11, 6, 17, 0))));
        assert!(g.on_duty("8002", &local(at(2026, 11, 6, 23, 59))));
        assert!(g.on_duty("8002", &local(at(2026, 11, 7, 0, 0))));
        assert!(g.on_duty("8002", &local(at(2026, 11, 7, 7, 59))));
        assert!(!g.on_duty("8002", &local(at(2026, 11, 7, 8, 0))));
        // ...but Friday morning belongs to Thursday's (absent) shift, and Saturday evening
        // is not a Friday start.
        assert!(!g.on_duty("8002", &local(at(2026, 11, 6, 7, 0))));
        assert!(!g.on_duty("8002", &local(at(2026, 11, 7, 18, 0))));
        // Nobody rostered for 8003.
        assert!(!g.on_duty("8003", &local(at(2026, 11, 6, 12, 0))));
    }

    #[test]
    fn shift_without_extensions_covers_the_group_and_days_parse() {
        assert_eq!(parse_days("k", &["Mon".into(), "sunday".into()]), Ok(0b100_0001));
        assert!(parse_days("k", &["funday".into()]).is_err());
        let rule =
            ShiftRule { extensions: None, span: Span::parse("08:00-17:00").unwrap(), days: 0, staff: String::new() };
        let t = sh().local(at(2026, 11, 8, 9, 0)).unwrap();
        assert!(rule.on_duty("8007", &t));
    }

    #[test]
    fn groups_compile_errors_name_the_key() {
        let mut cfg = Config::default();
        cfg.groups.push(config::Group { name: "a".into(), may_dial: Some(vec!["moon".into()]), ..Default::default() });
        assert!(Groups::compile(&cfg).unwrap_err().contains("may_dial"));
        cfg.groups[0].may_dial = None;
        cfg.groups[0].windows = vec!["10-12".into()];
        assert!(Groups::compile(&cfg).unwrap_err().contains("windows"));
        cfg.groups[0].windows.clear();
        cfg.shifts.push(config::Shift {
            group: "b".into(),
            from: "08:00".into(),
            to: "17:00".into(),
            ..Default::default()
        });
        assert!(Groups::compile(&cfg).unwrap_err().contains("no group named"));
        cfg.shifts.clear();
        cfg.groups.push(config::Group { name: "a".into(), ..Default::default() });
        assert!(Groups::compile(&cfg).unwrap_err().contains("second group"));
    }

    #[test]
    fn first_group_wins_and_limits_fall_back() {
        let cfg = Config {
            groups: vec![
                config::Group {
                    name: "dispatch".into(),
                    extensions: vec!["8001-8009".into()],
                    max_rings: Some(2),
                    ..Default::default()
                },
                config::Group { name: "all".into(), extensions: vec!["8000-8999".into()], ..Default::default() },
            ],
            ..Config::default()
        };
        let groups = Groups::compile(&cfg).unwrap();
        assert_eq!(groups.of("8005").unwrap().name, "dispatch");
        assert_eq!(groups.of("8010").unwrap().name, "all");
        assert!(groups.of("7000").is_none());
        let d = groups.of("8005").unwrap().limits;
        assert_eq!((d.max_rings, d.max_talk_s, d.effective_min_talk_s), (2, 180, 30));
        assert_eq!(groups.by_name("all").unwrap().retention_days, 365);
    }

    #[test]
    fn small_groups_enumerate() {
        let mut g = Groups::compile(&Config {
            groups: vec![config::Group {
                name: "tm".into(),
                extensions: vec!["0801-0803".into(), "8100".into()],
                ..Default::default()
            }],
            ..Config::default()
        })
        .unwrap();
        assert_eq!(g.list[0].members_if_small(), vec!["0801", "0802", "0803", "8100"]);
        g.list[0].patterns = vec!["8000-8999".into(), "7001".into()];
        assert_eq!(g.list[0].members_if_small(), vec!["7001"]);
    }

    #[test]
    fn approvals_dates_inclusive_in_site_zone() {
        let z = sh();
        let a = config::Approval {
            extension: "8020".into(),
            class: "long-distance".into(),
            from: "2026-11-01".into(),
            until: "2026-11-30".into(),
            approver: "manager".into(),
        };
        let r = ApprovalRule::compile(&a, &z).unwrap();
        assert!(r.covers("8020", Class::LongDistance, at(2026, 11, 1, 0, 0)));
        assert!(r.covers("8020", Class::LongDistance, at(2026, 11, 30, 23, 59)));
        assert!(!r.covers("8020", Class::LongDistance, at(2026, 10, 31, 23, 59)));
        assert!(!r.covers("8020", Class::LongDistance, at(2026, 12, 1, 0, 0)));
        assert!(!r.covers("8021", Class::LongDistance, at(2026, 11, 5, 12, 0)));
        assert!(!r.covers("8020", Class::International, at(2026, 11, 5, 12, 0)));
        let exact = config::Approval {
            from: "2026-11-01T09:00:00+08:00".into(),
            until: "2026-11-01T10:00:00+08:00".into(),
            ..a.clone()
        };
        let r = ApprovalRule::compile(&exact, &z).unwrap();
        assert!(r.covers("8020", Class::LongDistance, at(2026, 11, 1, 10, 0)));
        assert!(!r.covers("8020", Class::LongDistance, at(2026, 11, 1, 10, 1)));
        for bad in [
            config::Approval { class: "premium".into(), ..a.clone() },
            config::Approval { class: "moon".into(), ..a.clone() },
            config::Approval { from: "yesterday".into(), ..a.clone() },
            config::Approval { until: "2026-10-01".into(), ..a.clone() },
            config::Approval { extension: "a b".into(), ..a.clone() },
        ] {
            assert!(ApprovalRule::compile(&bad, &z).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn holiday_dates() {
        let h = holidays(&config::Holidays { dates: vec!["2026-10-01".into()] }).unwrap();
        assert!(h.contains(&date(2026, 10, 1)));
        assert!(holidays(&config::Holidays { dates: vec!["10/01".into()] }).is_err());
        assert!(holidays(&config::Holidays { dates: vec!["2026-10-01T00:00:00Z".into()] }).is_err());
    }

    proptest! {
        #[test]
        fn time_parsers_never_panic(s in ".{0,12}", t in "[0-9:\\-]{0,12}") {
            let _ = parse_hhmm(&s);
            let _ = Span::parse(&s);
            if let Ok(span) = Span::parse(&t) {
                prop_assert!(span.from < 1440 && span.to <= 1440);
                // Every minute is in exactly one part, or none, of a span.
                for m in (0..1440).step_by(7) {
                    prop_assert!(!(span.holds_same_day(m) && span.holds_from_previous_day(m)));
                }
            }
        }

        #[test]
        fn zone_never_panics(us in any::<i64>()) {
            let z = Zone::new("Asia/Shanghai").unwrap();
            let _ = z.day_of(Ts::from_micros(us));
            let _ = z.month_of(Ts::from_micros(us));
        }
    }
}
