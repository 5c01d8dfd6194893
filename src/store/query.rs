//! Query types shared by the CLI and the HTTP API, and the parsing of what users type
//! into them: `--from`/`--to` (a date in the site's zone, inclusive, or an RFC 3339
//! instant), class names, keyset cursors, `--by`.
//! Invariants: a time range is half-open, [from, to); a date as `to` covers its whole day
//! (the bound becomes the next midnight); parsing never panics and every error names the
//! parameter and the value.

use callwarden_core::config::DateOrInstant;
use callwarden_core::policy::Class;
use callwarden_core::Ts;
use jiff::tz::TimeZone;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{param}: {value:?} is not a date YYYY-MM-DD or an RFC 3339 instant such as 2026-03-02T08:00:00+08:00")]
    Time { param: &'static str, value: String },
    #[error("{param}: {value:?} is not a class; one of {names}")]
    Class { param: &'static str, value: String, names: String },
    #[error("{param}: {value:?} is not a cursor")]
    Cursor { param: &'static str, value: String },
    #[error("{param}: {value:?} is not one of ext, group, day, month, site")]
    By { param: &'static str, value: String },
    #[error("{param}: {value:?} is not a month YYYY-MM")]
    Month { param: &'static str, value: String },
}

/// The start of a range: midnight of a date in `tz`, or an instant.
pub fn range_start(param: &'static str, value: &str, tz: &TimeZone) -> Result<Ts, QueryError> {
    DateOrInstant::parse(value).and_then(|d| d.start(tz)).ok_or_else(|| QueryError::Time { param, value: value.into() })
}

/// The (exclusive) end of a range: the midnight after a date in `tz` (the date is
/// included), or an instant.
pub fn range_end(param: &'static str, value: &str, tz: &TimeZone) -> Result<Ts, QueryError> {
    DateOrInstant::parse(value).and_then(|d| d.end(tz)).ok_or_else(|| QueryError::Time { param, value: value.into() })
}

/// A month as users type it and the database keeps it (`calls.month`): `YYYY-MM`, four
/// digits, a dash, two digits, a real month. Returns its first day.
pub fn parse_month(month: &str) -> Option<jiff::civil::Date> {
    let b = month.as_bytes();
    let shape = b.len() == 7 && b[4] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit());
    shape.then(|| format!("{month}-01").parse().ok()).flatten()
}

/// A month `YYYY-MM` → [its first midnight, the next month's first midnight) in `tz`: the
/// same bounds as `--from YYYY-MM-01 --to <its last day>`.
pub fn month_range(param: &'static str, month: &str, tz: &TimeZone) -> Result<(Ts, Ts), QueryError> {
    let bad = || QueryError::Month { param, value: month.into() };
    let first = parse_month(month.trim()).ok_or_else(bad)?;
    let next = first.checked_add(jiff::Span::new().months(1)).map_err(|_| bad())?;
    let midnight = |d: jiff::civil::Date| DateOrInstant::Date(d).start(tz).ok_or_else(bad);
    Ok((midnight(first)?, midnight(next)?))
}

/// A class name as `calls` prints it.
pub fn class_name(param: &'static str, value: &str) -> Result<String, QueryError> {
    match Class::parse(value) {
        Some(c) => Ok(c.as_str().to_string()),
        None => Err(QueryError::Class {
            param,
            value: value.into(),
            names: Class::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Position after a row, for keyset paging: rows are ordered by (`at_us`, `key`, `site`)
/// — a call by (start, Call-ID), a violation by (detection time, id), a recording by (its
/// call's start, id), then by site where rows of several sites are listed (the central
/// store: a key is only unique within its site). Written `at_us:key`, or
/// `at_us~site:key` for a row that carries its site (a site name has no `:` or `~`, so
/// a Call-ID with either still reads back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub at_us: i64,
    pub key: String,
    pub site: Option<String>,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.site {
            Some(site) => write!(f, "{}~{site}:{}", self.at_us, self.key),
            None => write!(f, "{}:{}", self.at_us, self.key),
        }
    }
}

impl FromStr for Cursor {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, QueryError> {
        let bad = || QueryError::Cursor { param: "after", value: s.into() };
        let (head, key) = s.split_once(':').ok_or_else(bad)?;
        let (us, site) = match head.split_once('~') {
            Some((us, site)) if !site.is_empty() => (us, Some(site.to_string())),
            Some(_) => return Err(bad()),
            None => (head, None),
        };
        Ok(Cursor { at_us: us.parse().map_err(|_| bad())?, key: key.to_string(), site })
    }
}

/// Which calls, violations or recordings: every filter that is set must hold. One type for
/// the three listings (and `stats`), so a question asked of one is asked the same way of
/// the others. For violations and recordings the time bounds apply to the start of the
/// call they are about (a violation about no call: its detection time), so a day's calls
/// and a day's violations agree, and `group`, `class` and `number` are those of that call.
/// `direction` applies to calls only; `status` and `month` to recordings only;
/// `newest_first` to calls and recordings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Calls that started at or after this instant ...
    pub from: Option<Ts>,
    /// ... and before this one.
    pub to: Option<Ts>,
    /// One of our extensions on the call (caller or callee).
    pub ext: Option<String>,
    pub group: Option<String>,
    /// A class name ("mobile", ...).
    pub class: Option<String>,
    /// With a violation of this rule id ("OUT-1") or kind ("premium-rate").
    pub rule: Option<String>,
    /// Dialled or normalised number contains this.
    pub number: Option<String>,
    /// "inbound" | "outbound" | "internal" | "transit".
    pub direction: Option<String>,
    /// A recording's status.
    pub status: Option<super::recordings::RecordingStatus>,
    /// 'YYYY-MM' of a recording's call start in the site's zone.
    pub month: Option<String>,
    pub limit: Option<usize>,
    /// Keyset paging: only rows after this one in the order.
    pub after: Option<Cursor>,
    /// Newest first (the API's default view) instead of oldest first.
    pub newest_first: bool,
    /// Rows of this site only (`[site] name`). A site's own store holds one site's rows:
    /// asked for another, it answers with nothing.
    pub site: Option<String>,
}

impl Filter {
    /// The same selection without paging (the violations of the calls a page lists are
    /// those of all the calls the filter selects).
    pub fn unpaged(&self) -> Filter {
        Filter { limit: None, after: None, newest_first: false, ..self.clone() }
    }
}

/// How `stats` groups calls into rows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum StatsBy {
    /// One row per extension of ours; a call counts for each of our extensions on it.
    #[default]
    Ext,
    Group,
    Day,
    Month,
    /// One row per site (`[site] name`; null for a site store without a name).
    Site,
}

impl StatsBy {
    pub fn as_str(self) -> &'static str {
        match self {
            StatsBy::Ext => "ext",
            StatsBy::Group => "group",
            StatsBy::Day => "day",
            StatsBy::Month => "month",
            StatsBy::Site => "site",
        }
    }
}

impl FromStr for StatsBy {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, QueryError> {
        match s {
            "ext" => Ok(StatsBy::Ext),
            "group" => Ok(StatsBy::Group),
            "day" => Ok(StatsBy::Day),
            "month" => Ok(StatsBy::Month),
            "site" => Ok(StatsBy::Site),
            _ => Err(QueryError::By { param: "by", value: s.into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn dates_are_whole_days_in_the_zone() {
        let tz = shanghai();
        // 2026-03-02 00:00 +08:00 = 2026-03-01T16:00Z.
        assert_eq!(range_start("from", "2026-03-02", &tz), Ok(Ts(1_772_380_800_000_000)));
        assert_eq!(range_end("to", "2026-03-02", &tz), Ok(Ts(1_772_380_800_000_000 + 86_400_000_000)));
        assert_eq!(range_start("from", "2026-03-02", &TimeZone::UTC), Ok(Ts(1_772_409_600_000_000)));
        // An instant is used as is, whatever its offset.
        assert_eq!(range_end("to", "2026-03-02T08:00:00+08:00", &tz), Ok(Ts(1_772_409_600_000_000)));
        assert_eq!(range_start("from", "2026-03-02T00:00:00Z", &tz), Ok(Ts(1_772_409_600_000_000)));
        let e = range_start("from", "02/03/2026", &tz).unwrap_err();
        assert!(e.to_string().starts_with("from: \"02/03/2026\""), "{e}");
    }

    #[test]
    fn months_are_whole_local_months() {
        let tz = shanghai();
        let (a, b) = month_range("month", "2026-11", &tz).unwrap();
        // 2026-11-01 00:00 +08:00 = 2026-10-31T16:00Z; 30 days later.
        assert_eq!(a, Ts(1_793_462_400_000_000));
        assert_eq!(b.0 - a.0, 30 * 86_400_000_000);
        let (a, b) = month_range("month", "2026-12", &tz).unwrap();
        assert_eq!((a, b), (range_start("f", "2026-12-01", &tz).unwrap(), range_end("t", "2026-12-31", &tz).unwrap()));
        let (a, b) = month_range("month", "2028-02", &tz).unwrap();
        assert_eq!(b.0 - a.0, 29 * 86_400_000_000, "leap February");
        // A DST zone: March 2026 in New York is an hour short.
        let ny = TimeZone::get("America/New_York").unwrap();
        let (a, b) = month_range("month", "2026-03", &ny).unwrap();
        assert_eq!(b.0 - a.0, 31 * 86_400_000_000 - 3_600_000_000);
        for bad in
            ["2026-13", "2026-00", "2026-1", "202611", "2026-11-01", "", "abcd-ef", "2026-1x", "+026-11", "２０２６-11"]
        {
            let e = month_range("--month", bad, &tz).unwrap_err();
            assert_eq!(e, QueryError::Month { param: "--month", value: bad.into() });
            assert!(parse_month(bad).is_none(), "{bad}");
        }
        assert_eq!(
            month_range("month", "2026-1", &tz).unwrap_err().to_string(),
            "month: \"2026-1\" is not a month YYYY-MM"
        );
        assert_eq!(parse_month("2026-03").map(|d| d.to_string()), Some("2026-03-01".into()));
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { at_us: 1_772_407_800_000_000, key: "abc:def@host".into(), site: None };
        assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
        let c = Cursor { at_us: 1_772_407_800_000_000, key: "a~b:def@host".into(), site: Some("hq-1.b_2".into()) };
        assert_eq!(c.to_string(), "1772407800000000~hq-1.b_2:a~b:def@host");
        assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
        assert!("5~:x".parse::<Cursor>().is_err());
        assert!("x:y".parse::<Cursor>().is_err());
        assert!("".parse::<Cursor>().is_err());
        let v = Cursor { at_us: -5, key: "7".into(), site: None };
        assert_eq!(v.to_string().parse::<Cursor>(), Ok(v));
        assert!("x5:7".parse::<Cursor>().is_err());
    }

    #[test]
    fn class_and_by() {
        assert_eq!(class_name("class", "long-distance"), Ok("long-distance".into()));
        let e = class_name("class", "longdistance").unwrap_err().to_string();
        assert!(e.contains("hk-macau"), "{e}");
        assert_eq!("month".parse::<StatsBy>(), Ok(StatsBy::Month));
        assert!("week".parse::<StatsBy>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn time_parsing_never_panics(s in "\\PC{0,40}") {
            let tz = shanghai();
            if let (Ok(a), Ok(b)) = (range_start("from", &s, &tz), range_end("to", &s, &tz)) {
                proptest::prop_assert!(a <= b);
            }
            let _ = s.parse::<Cursor>();
            let _ = s.parse::<Cursor>();
            let _ = month_range("month", &s, &tz);
        }

        #[test]
        fn any_valid_date_is_one_day_or_dst_day(y in 1971i16..2100, m in 1i8..=12, d in 1i8..=28) {
            let s = format!("{y:04}-{m:02}-{d:02}");
            for tz in [shanghai(), TimeZone::get("Europe/London").unwrap()] {
                let a = range_start("from", &s, &tz).unwrap();
                let b = range_end("to", &s, &tz).unwrap();
                let hours = (b.0 - a.0) / 3_600_000_000;
                proptest::prop_assert!((23..=25).contains(&hours), "{} {}", s, hours);
            }
        }
    }
}
