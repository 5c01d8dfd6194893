//! Query-string parameters shared by the listing endpoints, and their translation into
//! the store's query types. Names follow the CLI's filters: `from`, `to` (a date in the
//! site's zone, inclusive, or an RFC 3339 instant), `month` (YYYY-MM, a shorthand for
//! the month's first and last day), `ext`, `group`, `class`, `rule`, `number`,
//! `direction`, `site`; and `limit`, `after` (keyset cursor), `order`, `format` (`json`|`csv`),
//! `bom` (CSV with a UTF-8 byte-order mark, for spreadsheet programs).
//! Invariants: every bad value is a 400 naming the parameter; limits are capped.

use super::ApiError;
use crate::store::{query, Filter};
use callwarden_core::Ts;
use jiff::tz::TimeZone;
use serde::Deserialize;

/// Default and largest page of a listing.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct FilterParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub month: Option<String>,
    pub ext: Option<String>,
    pub group: Option<String>,
    pub class: Option<String>,
    pub rule: Option<String>,
    pub number: Option<String>,
    pub direction: Option<String>,
    /// One site's rows (`[site] name`): over the central store, a site of the company.
    pub site: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Paging {
    pub limit: Option<usize>,
    pub after: Option<String>,
    pub order: Option<String>,
    pub format: Option<String>,
    pub bom: Option<String>,
}

/// Empty strings (an empty search box) mean "no filter".
pub fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The first instant of a month ("2026-11") and of the next one, in `tz`.
pub fn month_range(month: &str, tz: &TimeZone) -> Result<(Ts, Ts), ApiError> {
    Ok(query::month_range("month", month, tz)?)
}

/// The instants `from` (inclusive) and `to` (exclusive) of the `from`, `to` and `month`
/// parameters; a month with `from` or `to` is their intersection.
pub fn time_range(
    from: &Option<String>,
    to: &Option<String>,
    month: &Option<String>,
    tz: &TimeZone,
) -> Result<(Option<Ts>, Option<Ts>), ApiError> {
    let mut start = nonempty(from).map(|s| query::range_start("from", &s, tz)).transpose()?;
    let mut end = nonempty(to).map(|s| query::range_end("to", &s, tz)).transpose()?;
    if let Some(m) = nonempty(month) {
        let (a, b) = month_range(&m, tz)?;
        start = Some(start.map_or(a, |f| f.max(a)));
        end = Some(end.map_or(b, |t| t.min(b)));
    }
    Ok((start, end))
}

impl FilterParams {
    pub fn call_query(&self, tz: &TimeZone) -> Result<Filter, ApiError> {
        let (from, to) = time_range(&self.from, &self.to, &self.month, tz)?;
        let direction = nonempty(&self.direction);
        if let Some(d) = &direction {
            if !matches!(d.as_str(), "inbound" | "outbound" | "internal" | "transit") {
                return Err(ApiError::bad_request(format!(
                    "direction: {d:?} is not one of inbound, outbound, internal, transit"
                )));
            }
        }
        Ok(Filter {
            from,
            to,
            ext: nonempty(&self.ext),
            group: nonempty(&self.group),
            class: nonempty(&self.class).map(|c| query::class_name("class", &c)).transpose()?,
            rule: nonempty(&self.rule),
            number: nonempty(&self.number),
            direction,
            site: nonempty(&self.site),
            ..Filter::default()
        })
    }

    pub fn violation_query(&self, tz: &TimeZone) -> Result<Filter, ApiError> {
        Ok(self.call_query(tz)?.unpaged())
    }
}

impl Paging {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(0) => Err(ApiError::bad_request("limit: must be at least 1")),
            Some(n) if n > MAX_LIMIT => Err(ApiError::bad_request(format!("limit: at most {MAX_LIMIT}"))),
            Some(n) => Ok(n),
        }
    }

    pub fn after(&self) -> Option<&str> {
        self.after.as_deref().filter(|s| !s.is_empty())
    }

    /// Newest first unless `order=asc`.
    pub fn newest_first(&self) -> Result<bool, ApiError> {
        match self.order.as_deref() {
            None | Some("") | Some("desc") => Ok(true),
            Some("asc") => Ok(false),
            Some(o) => Err(ApiError::bad_request(format!("order: {o:?} is not asc or desc"))),
        }
    }

    pub fn csv(&self) -> Result<bool, ApiError> {
        match self.format.as_deref() {
            None | Some("") | Some("json") => Ok(false),
            Some("csv") => Ok(true),
            Some(f) => Err(ApiError::bad_request(format!("format: {f:?} is not json or csv"))),
        }
    }

    pub fn bom(&self) -> bool {
        matches!(self.bom.as_deref(), Some("1" | "true" | "yes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn month_errors_name_the_parameter() {
        let e = month_range("2026-3", &tz()).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("month: \"2026-3\" is not a month YYYY-MM"), "{}", e.message);
    }

    #[test]
    fn month_and_range_intersect() {
        let f =
            FilterParams { month: Some("2026-03".into()), from: Some("2026-03-10".into()), ..FilterParams::default() };
        let q = f.call_query(&tz()).unwrap();
        let (a, b) = month_range("2026-03", &tz()).unwrap();
        assert_eq!(q.from, Some(Ts(a.0 + 9 * 86_400_000_000)));
        assert_eq!(q.to, Some(b));
    }

    #[test]
    fn empty_means_no_filter_and_bad_values_name_the_parameter() {
        let f = FilterParams { ext: Some(" ".into()), class: Some("".into()), ..FilterParams::default() };
        assert_eq!(f.call_query(&tz()).unwrap(), Filter::default());
        let f = FilterParams { class: Some("longdistance".into()), ..FilterParams::default() };
        assert!(f.call_query(&tz()).unwrap_err().message.starts_with("class:"));
        let f = FilterParams { direction: Some("up".into()), ..FilterParams::default() };
        assert!(f.call_query(&tz()).unwrap_err().message.starts_with("direction:"));
        let p = Paging { limit: Some(MAX_LIMIT + 1), ..Paging::default() };
        assert!(p.limit().is_err());
        assert_eq!(Paging::default().limit().unwrap(), DEFAULT_LIMIT);
        assert!(Paging { order: Some("up".into()), ..Paging::default() }.newest_first().is_err());
    }

    proptest::proptest! {
        #[test]
        fn filters_never_panic(from in "\\PC{0,30}", month in "\\PC{0,10}", class in "\\PC{0,12}") {
            let f = FilterParams { from: Some(from), month: Some(month), class: Some(class), ..FilterParams::default() };
            let _ = f.call_query(&tz());
        }
    }
}
