//! The site's configuration as validated types. Every key is optional; the defaults here
//! are the China defaults of RULES.md and must match `config/callwarden.toml`.
//! May use: serde/toml for parsing a string (no file reading here: the daemon reads the
//! file and hands the text over). Invariant: a `Config` that `parse` returns has passed
//! `validate`, so consumers may rely on ranges, times and names being well-formed.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub site: Site,
    pub capture: Capture,
    pub ringing: Ringing,
    pub limits: Limits,
    pub numbers: Numbers,
    pub fines: Fines,
    pub tariffs: Tariffs,
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
    #[serde(rename = "shift")]
    pub shifts: Vec<Shift>,
    #[serde(rename = "approval")]
    pub approvals: Vec<Approval>,
    pub holidays: Holidays,
    pub store: Store,
    pub recordings: Recordings,
    pub api: Api,
    pub alerts: Alerts,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Site {
    /// IANA zone in which times of day (shifts, windows, days, months) are judged.
    pub timezone: String,
    /// The site's own area code, with its leading 0 ("021").
    pub area_code: String,
    /// Digit(s) dialled for an outside line, stripped before classification.
    pub outside_prefix: String,
    /// Internal extensions: "8000-8999" ranges or single numbers.
    pub extensions: Vec<String>,
    /// Carrier-select / IP-call prefixes stripped after the outside prefix.
    pub carrier_prefixes: Vec<String>,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            timezone: "Asia/Shanghai".into(),
            area_code: "021".into(),
            outside_prefix: "0".into(),
            extensions: vec!["8000-8999".into()],
            carrier_prefixes: ["17909", "17951", "12593", "10193", "17911", "96688"].map(String::from).to_vec(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capture {
    /// Live libpcap capture interfaces, e.g. ["eth0"].
    pub interfaces: Vec<String>,
    pub bpf: String,
    pub snaplen: u32,
    /// Kernel capture buffer in MiB.
    pub buffer_mib: u32,
    /// "" = no HEP listener; e.g. "127.0.0.1:9060".
    pub hep_listen: String,
    /// Accept HEP only from these capture ids (empty: all).
    pub hep_capture_ids: Vec<u32>,
    /// UDP ports on which HEP inside a capture file is unwrapped (HEP3 is also found by
    /// its magic on any port).
    pub hep_ports: Vec<u16>,
    /// Largest SIP message accepted on a TCP stream, bytes.
    pub tcp_max_message: usize,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            interfaces: Vec::new(),
            bpf: "udp or tcp".into(),
            snaplen: 65535,
            buffer_mib: 64,
            hep_listen: String::new(),
            hep_capture_ids: Vec::new(),
            hep_ports: vec![9060],
            tcp_max_message: 65536,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ringing {
    /// One ring cycle (China: 1 s on + 4 s off).
    pub cycle_ms: u32,
}

impl Default for Ringing {
    fn default() -> Self {
        Ringing { cycle_ms: 5000 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_rings: u32,
    pub max_talk_s: u32,
    pub personal_max_talk_s: u32,
    pub internal_max_talk_s: u32,
    /// A dialog with no BYE (or no final answer) ends after this.
    pub call_timeout_s: u32,
    pub effective_min_talk_s: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rings: 3,
            max_talk_s: 180,
            personal_max_talk_s: 120,
            internal_max_talk_s: 180,
            call_timeout_s: 7200,
            effective_min_talk_s: 30,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Numbers {
    pub restricted_prefixes: Vec<String>,
    pub allowed: Vec<String>,
    pub emergency: Vec<String>,
    pub toll_free: Vec<String>,
    /// DUR-2: numbers (or prefixes) that are personal, not business.
    pub personal: Vec<String>,
    /// REC-1: numbers/extensions whose calls are always recorded, whatever the group.
    pub record: Vec<String>,
}

impl Default for Numbers {
    fn default() -> Self {
        Numbers {
            restricted_prefixes: vec!["168".into(), "9".into()],
            allowed: vec!["95".into(), "96".into()],
            emergency: ["110", "119", "120", "122"].map(String::from).to_vec(),
            toll_free: vec!["400".into(), "800".into()],
            personal: Vec::new(),
            record: Vec::new(),
        }
    }
}

/// Fines in yuan (as the rules state them); stored as fen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fines {
    pub premium_multiplier: u32,
    pub premium_fixed: u32,
    pub long_distance: u32,
    pub hk_macau: u32,
    pub taiwan: u32,
    pub international: u32,
    pub alarm_only: u32,
    pub receive_only: u32,
    pub off_duty: u32,
    pub outside_window: u32,
    pub below_target_per_call: u32,
    /// ANS-1/ANS-2, per slow answer.
    pub slow_answer: u32,
    /// ANS-3, per missed call.
    pub missed: u32,
    /// DUR-1/2/3, per long call.
    pub long_call: u32,
}

impl Default for Fines {
    fn default() -> Self {
        Fines {
            premium_multiplier: 20,
            premium_fixed: 50,
            long_distance: 50,
            hk_macau: 100,
            taiwan: 100,
            international: 500,
            alarm_only: 0,
            receive_only: 0,
            off_duty: 0,
            outside_window: 0,
            below_target_per_call: 0,
            slow_answer: 0,
            missed: 0,
            long_call: 0,
        }
    }
}

/// Fen per started minute, by class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tariffs {
    pub local: u32,
    pub mobile: u32,
    pub long_distance: u32,
    pub hk_macau: u32,
    pub taiwan: u32,
    pub international: u32,
    pub premium: u32,
    /// Billing unit in seconds (60 = per started minute).
    pub unit_s: u32,
}

impl Default for Tariffs {
    fn default() -> Self {
        Tariffs {
            local: 10,
            mobile: 15,
            long_distance: 30,
            hk_macau: 200,
            taiwan: 200,
            international: 800,
            premium: 300,
            unit_s: 60,
        }
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordMode {
    #[default]
    Never,
    Always,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupMode {
    #[default]
    Normal,
    AlarmOnly,
    ReceiveOnly,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub extensions: Vec<String>,
    pub record: RecordMode,
    pub mode: GroupMode,
    /// Class names this group may dial; `None` = every class.
    pub may_dial: Option<Vec<String>>,
    /// Numbers (prefixes) an alarm-only group may dial besides emergency numbers.
    pub allow: Vec<String>,
    pub max_rings: Option<u32>,
    pub max_talk_s: Option<u32>,
    pub personal_max_talk_s: Option<u32>,
    pub internal_max_talk_s: Option<u32>,
    pub effective_min_talk_s: Option<u32>,
    pub roster: bool,
    /// "HH:MM-HH:MM" windows in which outbound calls are allowed (WHO-2).
    pub windows: Vec<String>,
    pub daily_target: u32,
    /// Yuan per month, 0 = none (OUT-6).
    pub monthly_budget: u32,
    /// Days to keep recordings of this group; `None` = `[recordings].retention_days`.
    pub retention_days: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Shift {
    pub group: String,
    pub extensions: Vec<String>,
    /// Who is on duty (for the record).
    pub staff: String,
    /// "HH:MM"; `to` < `from` crosses midnight.
    pub from: String,
    pub to: String,
    /// Weekdays ("mon".."sun"); empty = every day.
    pub days: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Approval {
    pub extension: String,
    /// A class name as `calls` prints it ("long-distance", "international", ...).
    pub class: String,
    /// Dates "YYYY-MM-DD" (inclusive) or RFC 3339 instants.
    pub from: String,
    pub until: String,
    pub approver: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Holidays {
    pub dates: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Store {
    /// Relative paths are relative to the config file's folder.
    pub path: String,
}

impl Default for Store {
    fn default() -> Self {
        Store { path: "callwarden.db".into() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recordings {
    pub dir: String,
    pub retention_days: u32,
}

impl Default for Recordings {
    fn default() -> Self {
        Recordings { dir: "recordings".into(), retention_days: 365 }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Supervisor,
    Auditor,
    Admin,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: String,
    pub token: String,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Api {
    pub listen: String,
    #[serde(rename = "token")]
    pub tokens: Vec<Token>,
}

impl Default for Api {
    fn default() -> Self {
        Api { listen: "127.0.0.1:8080".into(), tokens: Vec::new() }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alerts {
    /// URLs that receive each violation as a JSON POST.
    pub webhooks: Vec<String>,
}

/// One problem found in a config text: the dotted key, the 1-based line, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}

impl Config {
    /// Parse and validate a TOML text. Every error found is returned, each with its key
    /// and line, so `config check` can list them all at once.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        let _ = text;
        todo!("config helper")
    }
}

/// A set of extensions from "8000-8999" ranges and single numbers. Ranges compare
/// numerically over strings of the same length as their bounds, so "8000-8999" holds
/// "8123" but not "812" or "08123".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtensionSet {
    ranges: Vec<(u64, u64, usize)>,
    singles: Vec<String>,
}

impl ExtensionSet {
    /// Compile the patterns; `Err` names the first pattern that is not a number or range.
    pub fn parse(patterns: &[String]) -> Result<ExtensionSet, String> {
        let mut set = ExtensionSet::default();
        for p in patterns {
            let p = p.trim();
            if let Some((a, b)) = p.split_once('-') {
                let (a, b) = (a.trim(), b.trim());
                let ok = !a.is_empty() && a.len() == b.len() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit());
                let (Ok(lo), Ok(hi)) = (a.parse::<u64>(), b.parse::<u64>()) else {
                    return Err(format!("\"{p}\" is not a range of digits like \"8000-8999\""));
                };
                if !ok || lo > hi {
                    return Err(format!("\"{p}\" is not a range of digits like \"8000-8999\""));
                }
                set.ranges.push((lo, hi, a.len()));
            } else if !p.is_empty()
                && p.bytes()
                    .all(|c| c.is_ascii_digit() || c == '*' as u8 || c == '#' as u8 || c.is_ascii_alphanumeric())
            {
                set.singles.push(p.to_string());
            } else {
                return Err(format!("\"{p}\" is not an extension number or range"));
            }
        }
        Ok(set)
    }

    pub fn contains(&self, ext: &str) -> bool {
        if self.singles.iter().any(|s| s == ext) {
            return true;
        }
        if ext.is_empty() || !ext.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
        let Ok(n) = ext.parse::<u64>() else {
            return false;
        };
        self.ranges.iter().any(|&(lo, hi, len)| ext.len() == len && (lo..=hi).contains(&n))
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.singles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_set() {
        let s = ExtensionSet::parse(&["8000-8999".into(), "100".into()]).unwrap();
        assert!(s.contains("8000") && s.contains("8999") && s.contains("100"));
        assert!(!s.contains("7999") && !s.contains("9000") && !s.contains("800") && !s.contains("08000"));
        assert!(!s.contains("") && !s.contains("1001"));
        assert!(ExtensionSet::parse(&["8999-8000".into()]).is_err());
        assert!(ExtensionSet::parse(&["80-8999".into()]).is_err());
        assert!(ExtensionSet::parse(&["a b".into()]).is_err());
    }
}
