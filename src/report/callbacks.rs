//! The monthly call-back report (STA-3), for `callwarden callbacks` and `GET
//! /api/callbacks`. Per group (every `[[group]]` of the config, in its order, or the one
//! asked for), over the outbound calls of the group that started in the month (site zone):
//! - `made`: outbound calls; `numbers`: distinct numbers called (the store's normalised
//!   `number`); `answered`: of those calls, answered; `answered_rate` = answered / made
//!   (a share, null when nothing was made);
//! - `effective`: answered calls with talk ≥ the group's `effective_min_talk_s` (as STA-1
//!   and `stats` count them).
//!
//! With a plan (the CLI's `--plan FILE`, needs one group): the numbers to call back that
//! month, one a line, as a plain list or a CSV whose first column is the number (`,`, `;`
//! or tab separated), with an optional header line. Spaces, dashes, dots and brackets
//! inside a number are ignored; each is then normalised as `Policy::normalise_written`
//! does (national form, `+86` removed, the site's own area code dropped, no outside-line
//! prefix stripped), the form the store keeps in `number`. A planned number is reached
//! when a call of the month has that `number`, or was dialled exactly as written (a list
//! copied from the `dialled` column, outside-line prefix included). Figures: `planned`
//! (distinct), `reached`, `answered` (reached with at least one answered call),
//! `completion_rate` = reached / planned, and `never_called` (the planned numbers not
//! reached, in the file's order).
//!
//! Uses the reader and the config only; reads no file (the CLI reads the plan).
//! Invariants: the figures come from the same calls `calls --group G --month` lists with
//! `direction = outbound`; a bad plan line is an error naming the line, never skipped.

use super::ReportError;
use crate::store::query;
use crate::store::{CallRow, Filter, Store};
use callwarden_core::config::Config;
use serde::Serialize;
use std::collections::HashSet;

/// The report of `month` for `group` (all groups when None), over `site`'s calls (every
/// site's when None: over the central store the groups are the company's), with `plan`
/// (its name and numbers) checked against each group's calls. `param` names the
/// parameters in errors (`--month`/`--group` for the CLI, `month`/`group` for the API).
pub fn report(
    reader: &dyn Store,
    cfg: &Config,
    month: &str,
    group: Option<&str>,
    site: Option<&str>,
    plan: Option<(&str, &[Planned])>,
    param: (&'static str, &'static str),
) -> Result<Report, ReportError> {
    let (from, to) = query::month_range(param.0, month, reader.timezone())?;
    let groups: Vec<&str> = match group {
        Some(g) if cfg.groups.iter().any(|x| x.name == g) => vec![g],
        Some(g) => {
            let names: Vec<&str> = cfg.groups.iter().map(|x| x.name.as_str()).collect();
            return Err(ReportError::Group { param: param.1, group: g.to_string(), names: names.join(", ") });
        }
        None => cfg.groups.iter().map(|g| g.name.as_str()).collect(),
    };
    let mut report = Report { month: month.trim().to_string(), groups: Vec::new() };
    for g in groups {
        let q = Filter {
            from: Some(from),
            to: Some(to),
            group: Some(g.to_string()),
            direction: Some("outbound".into()),
            site: site.map(str::to_string),
            ..Filter::default()
        };
        let calls = reader.calls(&q)?;
        let min_talk_s = cfg.groups.iter().find(|x| x.name == g).and_then(|x| x.effective_min_talk_s);
        let mut figures = tally(g, &calls, min_talk_s.unwrap_or(cfg.limits.effective_min_talk_s));
        figures.plan = plan.map(|(file, p)| plan_figures(file, p, &calls));
        report.groups.push(figures);
    }
    Ok(report)
}

/// The report (`--json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub month: String,
    pub groups: Vec<GroupFigures>,
}

/// One group's month.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupFigures {
    pub group: String,
    pub made: u64,
    pub numbers: u64,
    pub answered: u64,
    pub answered_rate: Option<f64>,
    pub effective: u64,
    pub effective_min_talk_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanFigures>,
}

/// Planned against made (`--plan`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanFigures {
    pub file: String,
    pub planned: u64,
    pub reached: u64,
    pub answered: u64,
    pub completion_rate: Option<f64>,
    pub never_called: Vec<String>,
}

/// One planned number: as written (cleaned of separators) and normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub written: String,
    pub number: String,
}

fn share(n: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| n as f64 / of as f64)
}

/// The figures of one group over its outbound calls of the month.
/// `effective` counts the calls judged effective when they ended (stored with them);
/// `effective_min_talk_s` is the minimum the config sets today, shown beside it.
pub fn tally(group: &str, calls: &[CallRow], effective_min_talk_s: u32) -> GroupFigures {
    let outbound: Vec<&CallRow> = calls.iter().filter(|c| c.direction == "outbound").collect();
    let made = outbound.len() as u64;
    let numbers = outbound.iter().map(|c| c.number.as_str()).collect::<HashSet<_>>().len() as u64;
    let answered = outbound.iter().filter(|c| c.answered).count() as u64;
    let effective = outbound.iter().filter(|c| c.answered && c.effective == Some(true)).count() as u64;
    GroupFigures {
        group: group.to_string(),
        made,
        numbers,
        answered,
        answered_rate: share(answered, made),
        effective,
        effective_min_talk_s: f64::from(effective_min_talk_s),
        plan: None,
    }
}

/// The planned numbers of a plan file's text, distinct by normalised number, in order.
/// `normalise` is `Policy::normalise_written`. Err: "line N: ..." for a line that is not a
/// number (a header is allowed on the first non-empty line only).
pub fn parse_plan(text: &str, normalise: impl Fn(&str) -> String) -> Result<Vec<Planned>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<Planned> = Vec::new();
    let mut seen = HashSet::new();
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let field = line.split([',', ';', '\t']).next().unwrap_or("").trim().trim_matches('"').trim();
        if field.is_empty() {
            continue;
        }
        let cleaned: String = field.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        let digits = cleaned.strip_prefix('+').unwrap_or(&cleaned);
        let is_number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        let header = first && !field.bytes().any(|b| b.is_ascii_digit());
        first = false;
        if header {
            continue;
        }
        if !is_number {
            return Err(format!("line {}: not a telephone number: {field:?}", i + 1));
        }
        let number = normalise(&cleaned);
        if seen.insert(number.clone()) {
            out.push(Planned { written: cleaned, number });
        }
    }
    Ok(out)
}

/// Planned numbers against the group's calls of the month.
pub fn plan_figures(file: &str, plan: &[Planned], calls: &[CallRow]) -> PlanFigures {
    let outbound: Vec<&CallRow> = calls.iter().filter(|c| c.direction == "outbound").collect();
    let mut reached = 0;
    let mut answered = 0;
    let mut never_called = Vec::new();
    for p in plan {
        let hits: Vec<&&CallRow> = outbound.iter().filter(|c| c.number == p.number || c.dialled == p.written).collect();
        if hits.is_empty() {
            never_called.push(p.number.clone());
            continue;
        }
        reached += 1;
        if hits.iter().any(|c| c.answered) {
            answered += 1;
        }
    }
    let planned = plan.len() as u64;
    PlanFigures {
        file: file.to_string(),
        planned,
        reached,
        answered,
        completion_rate: share(reached, planned),
        never_called,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callwarden_core::policy::Policy;

    fn row(number: &str, dialled: &str, direction: &str, answered: bool, talk_ms: i64) -> CallRow {
        CallRow {
            site: None,
            call_id: format!("{dialled}-{talk_ms}"),
            caller: "8052".into(),
            callee: number.into(),
            dialled: dialled.into(),
            number: number.into(),
            direction: direction.into(),
            class: Some("mobile".into()),
            group: Some("callback".into()),
            started_at: String::new(),
            ringing_at: None,
            answered_at: None,
            ended_at: String::new(),
            rings: 1,
            ring_ms: 1000,
            talk_ms,
            answered,
            end_reason: "bye".into(),
            sip_status: Some(200),
            cost_fen: None,
            recording: None,
            violations: vec![],
            answered_by: None,
            transferred_to: None,
            wait_ms: 0,
            link: None,
            legs: vec![],
            started_us: 0,
            // As judged at the end against a 3 s minimum.
            effective: answered.then_some(talk_ms >= 3000),
        }
    }

    #[test]
    fn tally_counts_outbound_only() {
        let calls = [
            row("13812340001", "013812340001", "outbound", true, 3000),
            row("13812340001", "013812340001", "outbound", false, 0),
            row("13812340002", "013812340002", "outbound", true, 2999),
            row("8106", "8106", "internal", true, 9000),
        ];
        let f = tally("callback", &calls, 3);
        assert_eq!((f.made, f.numbers, f.answered, f.effective), (3, 2, 2, 1));
        assert_eq!(f.answered_rate, Some(2.0 / 3.0));
        assert_eq!(f.effective_min_talk_s, 3.0);
        let none = tally("x", &[], 3);
        assert_eq!((none.made, none.answered_rate), (0, None));
    }

    fn policy() -> Policy {
        let cfg = callwarden_core::config::Config::parse(
            "[site]\ntimezone = \"Asia/Shanghai\"\narea_code = \"021\"\noutside_prefix = \"0\"\nextensions = [\"8000-8999\"]\n",
        )
        .unwrap();
        Policy::new(&cfg).unwrap()
    }

    #[test]
    fn written_numbers_normalise_to_the_stored_form() {
        let p = policy();
        for (written, stored) in [
            ("13812340004", "13812340004"),
            ("+8613812340004", "13812340004"),
            ("008613812340004", "13812340004"),
            ("01012345678", "01012345678"),
            ("+861012345678", "01012345678"),
            ("02112345678", "12345678"),
            ("12345678", "12345678"),
            ("0085298765432", "0085298765432"),
        ] {
            assert_eq!(p.normalise_written(written), stored, "{written}");
            // The stored form is a fixed point.
            assert_eq!(p.normalise_written(stored), stored, "{stored}");
        }
    }

    #[test]
    fn plan_files_list_or_csv_with_optional_header() {
        let p = policy();
        let n = |s: &str| p.normalise_written(s);
        let text =
            "\u{feff}号码,姓名\r\n138 1234-0004,张三\r\n\r\n+86 (138) 1234 0004;dup\n\"010-1234 5678\"\n013812340005\n";
        let plan = parse_plan(text, n).unwrap();
        let got: Vec<(&str, &str)> = plan.iter().map(|x| (x.written.as_str(), x.number.as_str())).collect();
        assert_eq!(
            got,
            [("13812340004", "13812340004"), ("01012345678", "01012345678"), ("013812340005", "013812340005")]
        );
        assert_eq!(parse_plan("13812340004\nnumber\n", n).unwrap_err(), "line 2: not a telephone number: \"number\"");
        assert_eq!(parse_plan("13812340004\n138x\n", n).unwrap_err(), "line 2: not a telephone number: \"138x\"");
        assert!(parse_plan("", n).unwrap().is_empty());
        assert!(parse_plan("number\n", n).unwrap().is_empty());
    }

    #[test]
    fn plan_against_calls() {
        let calls = [
            row("13812340004", "013812340004", "outbound", true, 3000),
            row("13812340005", "013812340005", "outbound", false, 0),
            row("13812340006", "013812340006", "outbound", false, 0),
            row("13812340006", "013812340006", "outbound", true, 100),
        ];
        let plan = [
            Planned { written: "13812340004".into(), number: "13812340004".into() },
            // Written as dialled: matched on `dialled`.
            Planned { written: "013812340005".into(), number: "013812340005".into() },
            Planned { written: "13812340006".into(), number: "13812340006".into() },
            Planned { written: "13800000000".into(), number: "13800000000".into() },
        ];
        let f = plan_figures("plan.csv", &plan, &calls);
        assert_eq!((f.planned, f.reached, f.answered), (4, 3, 2));
        assert_eq!(f.completion_rate, Some(0.75));
        assert_eq!(f.never_called, ["13800000000"]);
        let empty = plan_figures("p", &[], &calls);
        assert_eq!((empty.planned, empty.completion_rate), (0, None));
    }
}
