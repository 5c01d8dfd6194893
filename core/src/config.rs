//! The site's configuration as validated types. Every key is optional; the defaults here
//! are the China defaults of RULES.md and must match `config/callwarden.toml`.
//! May use: serde/toml for parsing a string (no file reading here: the daemon reads the
//! file and hands the text over). Invariant: a `Config` that `parse` returns has passed
//! `validate`, so consumers may rely on ranges, times and names being well-formed.

use serde::{Deserialize, Serialize};

mod validate;
pub use validate::central_url_problem;

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
    /// The site's name in a company of several (`[store] central`): stamped on every row
    /// it forwards, one name per site database. Letters, digits, `.`, `_`, `-`; required
    /// once a central store is configured, optional otherwise.
    pub name: String,
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
    /// Addresses or CIDRs of the PBX (a B2BUA: several for a cluster). Legs the PBX starts
    /// are linked to the leg that arrived at it (see `track::link`). Empty: no inference.
    pub pbx: Vec<String>,
    /// Headers a PBX adds to tie its legs together (e.g. "X-CID", "X-Asterisk-Call-ID"):
    /// their values are compared with the other legs' Call-IDs and with each other.
    pub correlation_headers: Vec<String>,
    /// How long after a leg arrives at the PBX a leg the PBX starts may be its onward leg.
    pub link_window_ms: u32,
    /// Feature codes that pick up a ringing call (e.g. "*8"): an INVITE to one, while a
    /// call rings, continues that call.
    pub pickup_codes: Vec<String>,
    /// The site's own SIP domains (host names, lower case): a call to a name at one of
    /// them (`sip:alice@pbx.example`) is `internal`, to a name anywhere else `sip-uri`.
    pub domains: Vec<String>,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            name: String::new(),
            timezone: "Asia/Shanghai".into(),
            area_code: "021".into(),
            outside_prefix: "0".into(),
            extensions: vec!["8000-8999".into()],
            carrier_prefixes: ["17909", "17951", "12593", "10193", "17911", "96688"].map(String::from).to_vec(),
            pbx: Vec::new(),
            correlation_headers: Vec::new(),
            link_window_ms: 2000,
            pickup_codes: Vec::new(),
            domains: Vec::new(),
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
    /// How long the kernel may gather captured packets into a block before handing it
    /// over, ms; 0 = immediate mode (one wake-up per packet).
    pub batch_ms: u32,
    /// "" = no HEP listener; e.g. "127.0.0.1:9060".
    pub hep_listen: String,
    /// Accept HEP only from these capture ids (empty: all).
    pub hep_capture_ids: Vec<u32>,
    /// Accept HEP datagrams only from these networks ("10.1.2.0/24", "::1/128", or a bare
    /// address); default: loopback only. HEP is unauthenticated, so who may send it is
    /// decided here.
    pub hep_allow: Vec<String>,
    /// When not empty, a HEPv3 datagram must carry this in its auth-key chunk (type 14).
    pub hep_auth_key: String,
    /// UDP ports on which HEP inside a capture file is unwrapped (HEP3 is also found by
    /// its magic on any port).
    pub hep_ports: Vec<u16>,
    /// Largest SIP message accepted on a TCP stream, bytes.
    pub tcp_max_message: usize,
    /// UDP destination ports on which VXLAN mirror traffic is unwrapped.
    pub vxlan_ports: Vec<u16>,
    /// UDP destination ports on which TZSP mirror traffic is unwrapped.
    pub tzsp_ports: Vec<u16>,
    /// The same IP packet arriving again by another mirror path within this many ms is a
    /// copy and is used once; 0 = off.
    pub mirror_dedupe_ms: u32,
    /// TCP ports on which SIP over WebSocket (RFC 7118) is read.
    pub ws_ports: Vec<u16>,
    /// Memory caps: past each, the oldest entry is evicted and counted
    /// (`callwarden_evictions_total{table}`). Calls tracked at once, in progress or
    /// lingering after their end; an evicted call in progress ends `evicted`.
    pub max_calls: usize,
    /// Legs arriving at the PBX kept as candidates for leg linking.
    pub max_pending_legs: usize,
    /// TCP streams followed at once.
    pub max_tcp_streams: usize,
    /// Bytes buffered over all TCP streams, MiB.
    pub max_tcp_buffer_mib: u32,
    /// Datagrams in IP fragment reassembly at once.
    pub max_fragments: usize,
}

/// Default of `[capture].max_calls`: tracked calls (active + lingering) at once; a new
/// call past it evicts the oldest. ~4.5 KB each while tracked over the whole daemon
/// (scripts/flood-invite: ~250 MB at 50,000), room for 10,000 calls in progress plus the
/// ones lingering after they ended. Here, not in `track`, so config stays below it.
pub const DEFAULT_MAX_CALLS: usize = 50_000;
/// Default of `[capture].max_pending_legs`: recent arriving legs kept as candidates for
/// leg linking by inference; more evicts the oldest (counted).
pub const DEFAULT_MAX_PENDING_LEGS: usize = 65_536;

impl Default for Capture {
    fn default() -> Self {
        Capture {
            interfaces: Vec::new(),
            bpf: "udp or tcp".into(),
            snaplen: 65535,
            buffer_mib: 64,
            batch_ms: 10,
            hep_listen: String::new(),
            hep_capture_ids: Vec::new(),
            hep_allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            hep_auth_key: String::new(),
            hep_ports: vec![9060],
            tcp_max_message: 65536,
            vxlan_ports: vec![4789],
            tzsp_ports: vec![37008],
            mirror_dedupe_ms: 10,
            ws_ports: vec![80, 5066, 8080, 8088],
            max_calls: DEFAULT_MAX_CALLS,
            max_pending_legs: DEFAULT_MAX_PENDING_LEGS,
            max_tcp_streams: 16 * 1024,
            max_tcp_buffer_mib: 64,
            max_fragments: 1024,
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
    /// What a commit survives (README, "Durability").
    pub durability: Durability,
    /// The company's central PostgreSQL (`postgres://user@host/db?sslmode=require`): the
    /// site commits locally first and forwards committed rows there. "" = a site alone.
    /// A password in the URL is refused; it comes from `central_password_file` or PGPASSWORD.
    pub central: String,
    /// A read replica of `central` for queries: `--store` with `central`'s URL (the CLI's
    /// readers, `serve --store`) reads here instead, with the same login (password file
    /// or PGPASSWORD, CA file). "" = read `central` itself. Needs `central`; no password.
    pub central_read: String,
    /// A file holding the central store's password (one line). Relative to the config.
    pub central_password_file: String,
    /// A PEM file of CA certificates for the central store's TLS, beside the public roots.
    pub central_ca_file: String,
    /// Rows per forwarded batch (one PostgreSQL transaction).
    pub forward_batch: u32,
    /// How often (s) a site copies the approvals made centrally.
    pub approvals_pull_s: u32,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            path: "callwarden.db".into(),
            durability: Durability::Full,
            central: String::new(),
            central_read: String::new(),
            central_password_file: String::new(),
            central_ca_file: String::new(),
            forward_batch: 500,
            approvals_pull_s: 60,
        }
    }
}

/// What a committed call or violation survives. Both survive the process being killed
/// (`kill -9`, a crash): SQLite's write-ahead log has the commit before it returns.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Every commit is on the disk before it returns (the log is fsynced each time): a
    /// power cut loses nothing committed.
    #[default]
    Full,
    /// The log is fsynced at checkpoints, not at each commit: a power cut (or a kernel
    /// crash) may lose the last commits, never corrupts the database. Faster on a slow disk.
    Normal,
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
    /// For `serve --store postgres://...`: the sites whose recordings it plays, each with
    /// its API and an auditor token (recordings stay at their site).
    #[serde(rename = "site")]
    pub sites: Vec<SiteApi>,
}

impl Default for Api {
    fn default() -> Self {
        Api { listen: "127.0.0.1:8080".into(), tokens: Vec::new(), sites: Vec::new() }
    }
}

/// Another site's API, as the central `serve` reaches it for a recording's audio.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteApi {
    /// The site's `[site] name`.
    pub name: String,
    /// Its API's base URL, e.g. "https://branch-2.example:8443".
    pub url: String,
    /// A file holding a token of that site's with the auditor role (relative to the config).
    pub token_file: String,
    /// Instead of `url` and `token_file`: the site's recordings folder as mounted here
    /// (NFS, an object-store mount), read directly; the same hash check before serving.
    pub dir: String,
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

#[cfg(test)]
mod site_api_tests {
    use super::Config;

    #[test]
    fn a_site_is_reached_by_its_api_or_by_a_mounted_folder_not_both() {
        let keys = |site: &str| -> Vec<String> {
            match Config::parse(&format!("[api]\n[[api.site]]\nname = \"b\"\n{site}")) {
                Ok(_) => vec![],
                Err(errs) => errs.into_iter().map(|e| e.key).collect(),
            }
        };
        assert_eq!(keys("dir = \"/mnt/b/rec\"\n"), Vec::<String>::new());
        assert_eq!(keys("url = \"https://b:8443\"\ntoken_file = \"b.token\"\n"), Vec::<String>::new());
        assert_eq!(keys("dir = \"/mnt/b\"\nurl = \"https://b:8443\"\n"), ["api.site[0].dir"]);
        assert_eq!(keys(""), ["api.site[0].url", "api.site[0].token_file"]);
    }
}

#[cfg(test)]
mod cidr_tests {
    use super::Cidr;

    #[test]
    fn blocks_hold_their_addresses_only() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let lo = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains(ip("127.0.0.1")) && lo.contains(ip("127.255.0.9")) && lo.contains(ip("::ffff:127.0.0.1")));
        assert!(!lo.contains(ip("128.0.0.1")) && !lo.contains(ip("::1")));
        let one = Cidr::parse("10.1.2.3").unwrap();
        assert!(one.contains(ip("10.1.2.3")) && !one.contains(ip("10.1.2.4")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("::1/128").unwrap().contains(ip("::1")));
        for bad in ["10.0.0.0/33", "::/129", "localhost", "10.0.0/8", "10.0.0.0/x", ""] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}

impl Config {
    /// Parse and validate a TOML text. Every error found is returned, each with its key
    /// and line, so `config check` can list them all at once; they come sorted by line.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        validate::parse(text)
    }
}

/// An address block of `[capture].hep_allow`: "10.0.0.0/8", "::1/128", or one address.
/// Hand-written (a dozen lines over std's `IpAddr`) since core takes no network crates.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: std::net::IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a.parse::<std::net::IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (s.trim().parse::<std::net::IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net: addr, bits })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        // An IPv4 sender on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        let masked = |a: u128, width: u32| {
            let bits = u32::from(self.bits);
            if bits == 0 {
                0
            } else {
                a >> (width - bits)
            }
        };
        match (self.net, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                masked(u128::from(u32::from(n)), 32) == masked(u128::from(u32::from(a)), 32)
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                masked(u128::from(n), 128) == masked(u128::from(a), 128)
            }
            _ => false,
        }
    }
}

/// The weekday names `[[shift]].days` accepts, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// "HH:MM" (two digits each) → minutes since midnight. "24:00" (= 1440, the end of the
/// day) only when `allow_24`, for the end of a shift or window.
/// Hand-written rather than jiff's `civil::Time` parser, which also takes seconds and
/// fractions and never "24:00": the config's form is exactly this one.
pub fn parse_hhmm(s: &str, allow_24: bool) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 5 || b.get(2) != Some(&b':') {
        return None;
    }
    let two = |i: usize| -> Option<u16> {
        let (h, l) = (*b.get(i)?, *b.get(i + 1)?);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| u16::from(h - b'0') * 10 + u16::from(l - b'0'))
    };
    let (h, m) = (two(0)?, two(3)?);
    match (h, m) {
        (24, 0) if allow_24 => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// "HH:MM-HH:MM" → (from, to) in minutes since midnight. `to` may be "24:00"; `to` < `from`
/// crosses midnight; `from` == `to` is refused (empty or whole day: ambiguous).
pub fn parse_window(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.trim().split_once('-')?;
    let (from, to) = (parse_hhmm(a.trim(), false)?, parse_hhmm(b.trim(), true)?);
    (from != to).then_some((from, to))
}

/// A calendar date "YYYY-MM-DD" (strictly that form).
pub fn parse_date(s: &str) -> Option<jiff::civil::Date> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shape {
        return None;
    }
    s.parse().ok()
}

/// A bound as config (approvals) and query filters write it: a whole date in the site's
/// zone, or an RFC 3339 instant with its offset.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DateOrInstant {
    Date(jiff::civil::Date),
    Instant(crate::time::Ts),
}

impl DateOrInstant {
    pub fn parse(s: &str) -> Option<DateOrInstant> {
        let s = s.trim();
        if let Some(d) = parse_date(s) {
            return Some(DateOrInstant::Date(d));
        }
        // RFC 3339 needs a 'T' (or space) between date and time and an offset; jiff's
        // Timestamp parser insists on the offset, which is what makes an instant exact.
        let ts: jiff::Timestamp = s.parse().ok()?;
        Some(DateOrInstant::Instant(crate::time::Ts(ts.as_microsecond())))
    }

    /// The first instant covered: midnight starting the date in `tz`, or the instant.
    pub fn start(self, tz: &jiff::tz::TimeZone) -> Option<crate::time::Ts> {
        match self {
            DateOrInstant::Date(d) => midnight(d, tz),
            DateOrInstant::Instant(t) => Some(t),
        }
    }

    /// The first instant no longer covered: midnight after the date in `tz` (so a date is
    /// inclusive), or the instant itself (exclusive).
    pub fn end(self, tz: &jiff::tz::TimeZone) -> Option<crate::time::Ts> {
        match self {
            DateOrInstant::Date(d) => midnight(d.tomorrow().ok()?, tz),
            DateOrInstant::Instant(t) => Some(t),
        }
    }
}

/// The instant a date begins in `tz` (the first valid time when a DST gap eats midnight).
fn midnight(d: jiff::civil::Date, tz: &jiff::tz::TimeZone) -> Option<crate::time::Ts> {
    let z = d.to_zoned_datetime(tz.clone()).ok()?;
    Some(crate::time::Ts(z.timestamp().as_microsecond()))
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
            } else if !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'*' || c == b'#') {
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

    const SHIPPED: &str = include_str!("../../config/callwarden.toml");

    #[test]
    fn shipped_config_is_the_defaults_plus_the_dispatch_example() {
        let cfg = Config::parse(SHIPPED).unwrap_or_else(|e| panic!("config/callwarden.toml: {e:#?}"));
        let d = Config::default();
        assert_eq!(cfg.site, d.site);
        assert_eq!(cfg.capture, d.capture);
        assert_eq!(cfg.ringing, d.ringing);
        assert_eq!(cfg.limits, d.limits);
        assert_eq!(cfg.numbers, d.numbers);
        assert_eq!(cfg.fines, d.fines);
        assert_eq!(cfg.tariffs, d.tariffs);
        assert_eq!(cfg.approvals, d.approvals);
        assert_eq!(cfg.holidays, d.holidays);
        // The shipped file points at the repository's top level (it lives in config/).
        assert_eq!(cfg.store, Store { path: "../callwarden.db".into(), ..Store::default() });
        assert_eq!(cfg.recordings, Recordings { dir: "../recordings".into(), ..d.recordings.clone() });
        assert_eq!(cfg.api, d.api);
        assert_eq!(cfg.alerts, d.alerts);
        let dispatch = Group {
            name: "dispatch".into(),
            extensions: vec!["8001-8009".into()],
            record: RecordMode::Always,
            mode: GroupMode::Normal,
            may_dial: Some(["internal", "local", "mobile", "emergency", "toll-free"].map(String::from).to_vec()),
            max_rings: Some(3),
            roster: true,
            ..Group::default()
        };
        assert_eq!(cfg.groups, vec![dispatch]);
        let shift = |staff: &str, from: &str, to: &str| Shift {
            group: "dispatch".into(),
            extensions: vec!["8001-8009".into()],
            staff: staff.into(),
            from: from.into(),
            to: to.into(),
            days: Vec::new(),
        };
        assert_eq!(cfg.shifts, vec![shift("day shift", "08:00", "17:00"), shift("night shift", "17:00", "08:00")]);
    }

    /// Every key of every section is written out in the shipped file (not only implied by
    /// the defaults), so the file documents them all.
    #[test]
    fn shipped_config_spells_out_every_key() {
        let file: toml::Table = toml::from_str(SHIPPED).unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let mut missing = Vec::new();
        for (section, value) in &defaults {
            let Some(table) = value.as_table() else { continue };
            for key in table.keys() {
                // [[api.token]] and [[api.site]] are there as commented-out examples (none
                // by default).
                if section == "api" && (key == "token" || key == "site") {
                    continue;
                }
                if file.get(section).and_then(|s| s.get(key)).is_none() {
                    missing.push(format!("{section}.{key}"));
                }
            }
        }
        let group = toml::Table::try_from(Group::default()).unwrap();
        let shift = toml::Table::try_from(Shift::default()).unwrap();
        for (section, keys) in [("group", &group), ("shift", &shift)] {
            let first = file.get(section).and_then(|g| g.as_array()).and_then(|a| a.first()).and_then(|g| g.as_table());
            for key in keys.keys() {
                if first.is_none_or(|t| !t.contains_key(key)) {
                    missing.push(format!("{section}[0].{key}"));
                }
            }
        }
        assert!(missing.is_empty(), "keys not written in config/callwarden.toml: {missing:?}");
        // The optional keys are there as comments.
        for key in
            ["max_talk_s", "personal_max_talk_s", "internal_max_talk_s", "effective_min_talk_s", "retention_days"]
        {
            assert!(SHIPPED.contains(&format!("# {key} = ")), "{key} not shown in the [[group]] example");
        }
        for example in ["# [[approval]]", "# [[api.token]]", "# [[api.site]]"] {
            assert!(SHIPPED.contains(example), "{example} example missing");
        }
    }

    #[test]
    fn time_helpers() {
        assert_eq!(parse_hhmm("00:00", false), Some(0));
        assert_eq!(parse_hhmm("23:59", false), Some(1439));
        assert_eq!(parse_hhmm("24:00", false), None);
        assert_eq!(parse_hhmm("24:00", true), Some(1440));
        assert_eq!(parse_hhmm("24:01", true), None);
        assert_eq!(parse_hhmm("8:00", true), None);
        assert_eq!(parse_hhmm("08:00:00", true), None);
        assert_eq!(parse_window("17:00-08:00"), Some((1020, 480)));
        assert_eq!(parse_window("00:00-24:00"), Some((0, 1440)));
        assert_eq!(parse_window("10:00-10:00"), None);
        assert_eq!(parse_date("2026-02-29"), None);
        assert!(parse_date("2028-02-29").is_some());
        assert_eq!(parse_date("2026-1-01"), None);
        let sh = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let d = DateOrInstant::parse("2026-03-02").unwrap();
        // Midnight in Shanghai is 16:00 UTC the day before.
        assert_eq!(d.start(&sh), Some(crate::time::Ts(1_772_380_800_000_000)));
        assert_eq!(d.end(&sh), Some(crate::time::Ts(1_772_380_800_000_000 + 86_400_000_000)));
        let i = DateOrInstant::parse("2026-03-01T23:30:00Z").unwrap();
        assert_eq!(i, DateOrInstant::Instant(crate::time::Ts(1_772_407_800_000_000)));
        assert_eq!(i.start(&sh), i.end(&sh));
        assert_eq!(DateOrInstant::parse("2026-03-01T23:30:00"), None, "an instant needs its offset");
        assert_eq!(DateOrInstant::parse("yesterday"), None);
    }

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

/// `[site].pbx`: the PBX's addresses, compiled. An address is ours if any net holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetSet {
    nets: Vec<ipnet::IpNet>,
}

/// One `[site].pbx` entry: an address ("10.1.0.2", "fd00::2") or a CIDR ("10.1.0.0/29").
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<ipnet::IpNet>() {
        return Ok(n.trunc());
    }
    t.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("{s:?} is not an IP address or CIDR (e.g. \"10.1.0.2\" or \"10.1.0.0/29\")"))
}

/// A correlation header must be a header name that the SIP reader keeps: an `X-` header,
/// or one of the standard ones that say which call a leg belongs to.
pub fn check_correlation_header(h: &str) -> Result<(), String> {
    let ok_token = !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let lower = h.to_ascii_lowercase();
    if ok_token && (lower.starts_with("x-") || crate::sip::LINK_HEADERS.contains(&lower.as_str())) {
        Ok(())
    } else {
        Err(format!(
            "{h:?} is not a correlation header: an X- header (e.g. \"X-CID\") or one of {}",
            crate::sip::LINK_HEADERS.join(", ")
        ))
    }
}

impl NetSet {
    pub fn parse(entries: &[String]) -> Result<NetSet, String> {
        Ok(NetSet { nets: entries.iter().map(|e| parse_net(e)).collect::<Result<_, _>>()? })
    }
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        // An IPv4 address may come mapped into IPv6 on a dual-stack capture.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}
