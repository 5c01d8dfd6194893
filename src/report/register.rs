//! The long-distance register (OUT-3, 长途电话记录表), one document for `callwarden
//! register` and `GET /api/register`: which calls it lists (`calls`), its rows and
//! columns (`rows`, `HEADER`, `HEADER_ZH`) and its CSV (`write_csv`: UTF-8 with a
//! byte-order mark, CRLF, RFC 4180 quoting by the `csv` crate).
//!
//! One row per outbound call of a long-distance class (`long-distance`, `hk-macau`,
//! `taiwan`, `international`), oldest first; answered calls only unless asked. Columns:
//! `user` (our extension), `callee` (the number as normalised), `start` (answer time; the
//! INVITE's for an unanswered call), `end`, `duration` (talk, H:MM:SS), `class`,
//! `cost_yuan` (2 decimals), `cost_fen`, and `matter` and `outcome` left empty for people
//! to fill in. Times are `YYYY-MM-DD HH:MM:SS` in the site's zone, which spreadsheets read
//! as times. The byte-order mark is for Excel, which reads a CSV without one in the local
//! ANSI code page and garbles any Chinese in it.
//! May use: the store's reader and rows. Invariant: the calls are those `calls
//! --direction outbound --class C` lists for each of the four classes, merged by start.

use super::{yuan, ReportError};
use crate::store::{CallRow, Filter, Store};
use std::io::Write;

/// Classes the register lists: every call that leaves the local and mobile network.
pub const REGISTER_CLASSES: [&str; 4] = ["long-distance", "hk-macau", "taiwan", "international"];

/// The UTF-8 byte-order mark Excel needs to read the file as UTF-8.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

pub const HEADER: [&str; 10] =
    ["user", "callee", "start", "end", "duration", "class", "cost_yuan", "cost_fen", "matter", "outcome"];

/// `HEADER` in Chinese (the API's `lang=zh`).
pub const HEADER_ZH: [&str; 10] =
    ["使用人(分机)", "被叫号码", "开始时间", "结束时间", "通话时长", "类别", "费用(元)", "费用(分)", "事由", "结果"];

/// The register's calls for the filters in `q` (its class, if set, must be a register
/// class), oldest first, unanswered ones included (the caller filters).
pub fn calls(reader: &dyn Store, q: &Filter) -> Result<Vec<CallRow>, ReportError> {
    let classes: Vec<&str> = match q.class.as_deref() {
        None => REGISTER_CLASSES.to_vec(),
        Some(c) if REGISTER_CLASSES.contains(&c) => vec![c],
        Some(c) => return Err(ReportError::NotInRegister { class: c.to_string(), names: REGISTER_CLASSES.join(", ") }),
    };
    let mut all: Vec<CallRow> = Vec::new();
    for class in classes {
        let q = Filter {
            class: Some(class.to_string()),
            direction: Some("outbound".into()),
            limit: None,
            after: None,
            newest_first: false,
            ..q.clone()
        };
        all.extend(reader.calls(&q)?);
    }
    all.sort_by(|a, b| (a.started_us, &a.call_id).cmp(&(b.started_us, &b.call_id)));
    Ok(all)
}

/// The register's rows (without the header) for these calls.
pub fn rows(calls: &[CallRow], class: Option<&str>, unanswered: bool) -> Vec<[String; 10]> {
    calls
        .iter()
        .filter(|c| c.direction == "outbound")
        .filter(|c| match (c.class.as_deref(), class) {
            (Some(k), Some(want)) => k == want,
            (Some(k), None) => REGISTER_CLASSES.contains(&k),
            (None, _) => false,
        })
        .filter(|c| c.answered || unanswered)
        .map(|c| {
            let start = c.answered_at.as_deref().filter(|_| c.answered).unwrap_or(&c.started_at);
            let talk = if c.answered { c.talk_ms } else { 0 };
            let cost = c.cost_fen.unwrap_or(0);
            [
                c.caller.clone(),
                c.number.clone(),
                sheet_time(start),
                sheet_time(&c.ended_at),
                hms(talk),
                c.class.clone().unwrap_or_default(),
                yuan(cost),
                cost.to_string(),
                String::new(),
                String::new(),
            ]
        })
        .collect()
}

/// RFC 3339 from the store → "YYYY-MM-DD HH:MM:SS" (the zone's local time, as stored).
fn sheet_time(rfc3339: &str) -> String {
    super::table_time(rfc3339)
}

/// Milliseconds → "H:MM:SS", whole seconds rounded down (the talk the bill counts from).
pub fn hms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Write the register (BOM, header, rows) as CSV.
pub fn write_csv<W: Write>(mut w: W, rows: &[[String; 10]]) -> anyhow::Result<()> {
    w.write_all(BOM)?;
    let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(w);
    csv.write_record(HEADER)?;
    for r in rows {
        csv.write_record(r)?;
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(hms(0), "0:00:00");
        assert_eq!(hms(3_310), "0:00:03");
        assert_eq!(hms(61_999), "0:01:01");
        assert_eq!(hms(3_600_000 * 2 + 59_000), "2:00:59");
        assert_eq!(hms(-5), "0:00:00");
    }

    #[test]
    fn csv_has_bom_header_and_quotes() {
        let row = [
            "8020".to_string(),
            "01087654321".into(),
            "2026-11-24 14:18:47".into(),
            "2026-11-24 14:18:51".into(),
            "0:00:03".into(),
            "long-distance".into(),
            "0.30".into(),
            "30".into(),
            "客户, \"北京\"".into(),
            String::new(),
        ];
        let mut out = Vec::new();
        write_csv(&mut out, &[row]).unwrap();
        assert!(out.starts_with(BOM));
        let text = String::from_utf8(out[3..].to_vec()).unwrap();
        assert_eq!(
            text,
            "user,callee,start,end,duration,class,cost_yuan,cost_fen,matter,outcome\r\n\
             8020,01087654321,2026-11-24 14:18:47,2026-11-24 14:18:51,0:00:03,long-distance,0.30,30,\"客户, \"\"北京\"\"\",\r\n"
        );
    }
}
