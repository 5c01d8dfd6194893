//! Config validation: TOML text → `Config`, or every problem found, each located by its
//! dotted key (`group[1].windows[0]`) and 1-based line.
//! May use: the `toml` crate's spanned document (`DeTable`), serde, jiff's bundled tzdb,
//! `class::Class` for class names. Invariants: never panics on any text; a `Config` is
//! returned only when there is no error at all; an error is never reported twice, and a
//! value that could not be read is not judged again by the semantic checks (its default
//! stands in, and errors under its key are suppressed).
//!
//! How errors are gathered: serde stops at the first error, so after a whole-document
//! parse fails, each section (and each `[[group]]`, `[[shift]]`, `[[approval]]` element)
//! is deserialized on its own; after each error the offending entry is removed from that
//! section's copy and the section is tried again, so one run reports every bad key.
//! Paths are found by walking the spanned document; `serde_path_to_error` would give the
//! path of the first error only, which is not what `config check` needs.

use super::{parse_date, parse_hhmm, parse_window, Config, ConfigError, DateOrInstant, ExtensionSet, WEEKDAYS};
use crate::class::Class;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use toml::de::{DeArray, DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

type Node<'i> = Spanned<DeValue<'i>>;

/// Top-level keys and what they are. Kept in step with `Config`'s fields by a unit test.
const SECTIONS: [&str; 15] = [
    "site",
    "capture",
    "ringing",
    "limits",
    "numbers",
    "fines",
    "tariffs",
    "group",
    "shift",
    "approval",
    "holidays",
    "store",
    "recordings",
    "api",
    "alerts",
];

/// Upper bound on retries within one section (each removes one entry, so a section of n
/// entries needs at most n); a guard, not a limit anyone should meet.
const MAX_ERRORS_PER_SECTION: usize = 256;

pub(super) fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let doc = match DeTable::parse(text) {
        Ok(t) => Spanned::new(t.span(), DeValue::Table(t.into_inner())),
        Err(e) => return Err(vec![syntax_error(text, &e)]),
    };
    let mut rd = Reader { text, doc: &doc, errors: Vec::new(), failed: Vec::new() };
    let cfg = match toml::from_str::<Config>(text) {
        Ok(cfg) => cfg,
        Err(whole) => {
            let cfg = rd.by_section();
            if rd.errors.is_empty() {
                // Sections read one by one but not together: report what serde said, and
                // judge nothing else (the default config stands in for all of it).
                let off = whole.span().map(|s| s.start);
                let key = off.and_then(|o| path_at(&doc, o)).unwrap_or_else(|| "toml".into());
                rd.errors.push(ConfigError {
                    key,
                    line: line_of(text, off.unwrap_or(0)),
                    message: whole.message().to_string(),
                });
                rd.failed.push(String::new());
            }
            cfg
        }
    };
    let failed_group = rd.failed.iter().any(|f| under(f, "group"));
    let mut chk = Checker {
        cfg: &cfg,
        errors: Vec::new(),
        // A [[group]] that could not be read still has a name shifts may refer to.
        extra_group_names: if failed_group { raw_group_names(&doc) } else { Vec::new() },
    };
    chk.run();
    let Reader { mut errors, failed, .. } = rd;
    for (key, message) in chk.errors {
        if failed.iter().any(|f| under(&key, f)) {
            continue;
        }
        errors.push(ConfigError { line: line_of(text, locate(&doc, &key)), key, message });
    }
    if errors.is_empty() {
        Ok(cfg)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let off = e.span().map(|s| s.start).unwrap_or(0);
    // The partial document the parser recovers tells which key the error is in.
    let (partial, _) = DeTable::parse_recoverable(text);
    let partial = Spanned::new(partial.span(), DeValue::Table(partial.into_inner()));
    ConfigError {
        key: path_at(&partial, off).or_else(|| key_on_line(text, off)).unwrap_or_else(|| "toml".into()),
        line: line_of(text, off),
        message: e.message().to_string(),
    }
}

/// When the parser recovered nothing at the error (a broken value), the key written on
/// the error's line, under the last `[section]` / `[[section]]` header above it.
fn key_on_line(text: &str, off: usize) -> Option<String> {
    let start = text.get(..off)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return None;
    }
    let section = text.get(..start)?.lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")).or_else(|| l.strip_prefix('[')?.strip_suffix(']'))
    });
    Some(match section {
        Some(s) => format!("{}.{key}", s.trim()),
        None => key.to_string(),
    })
}

/// Reads sections one at a time to collect every serde error.
struct Reader<'a, 'i> {
    text: &'a str,
    doc: &'a Node<'i>,
    errors: Vec<ConfigError>,
    /// Keys whose value could not be read (their default stands in).
    failed: Vec<String>,
}

impl<'i> Reader<'_, 'i> {
    fn by_section(&mut self) -> Config {
        let mut cfg = Config::default();
        let DeValue::Table(root) = self.doc.get_ref() else {
            return cfg;
        };
        for (k, v) in root.iter() {
            let name: &str = k.get_ref();
            match name {
                "site" => cfg.site = self.read(v, name),
                "capture" => cfg.capture = self.read(v, name),
                "ringing" => cfg.ringing = self.read(v, name),
                "limits" => cfg.limits = self.read(v, name),
                "numbers" => cfg.numbers = self.read(v, name),
                "fines" => cfg.fines = self.read(v, name),
                "tariffs" => cfg.tariffs = self.read(v, name),
                "group" => cfg.groups = self.read_each(v, name),
                "shift" => cfg.shifts = self.read_each(v, name),
                "approval" => cfg.approvals = self.read_each(v, name),
                "holidays" => cfg.holidays = self.read(v, name),
                "store" => cfg.store = self.read(v, name),
                "recordings" => cfg.recordings = self.read(v, name),
                "api" => cfg.api = self.read(v, name),
                "alerts" => cfg.alerts = self.read(v, name),
                _ => {
                    self.errors.push(ConfigError {
                        key: push_key(String::new(), name),
                        line: line_of(self.text, k.span().start),
                        message: format!("unknown section `{name}`, expected one of {}", SECTIONS.join(", ")),
                    });
                }
            }
        }
        cfg
    }

    /// `[[group]]`-style arrays: each element on its own, so one bad group does not hide
    /// the next, and indices stay those of the file.
    fn read_each<T: DeserializeOwned + Default>(&mut self, v: &Node<'i>, name: &str) -> Vec<T> {
        match v.get_ref() {
            DeValue::Array(items) => {
                items.iter().enumerate().map(|(i, item)| self.read(item, &format!("{name}[{i}]"))).collect()
            }
            _ => self.read(v, name),
        }
    }

    /// Deserialize one section; after each error drop the entry it points at and retry.
    fn read<T: DeserializeOwned + Default>(&mut self, v: &Node<'i>, base: &str) -> T {
        let mut v = v.clone();
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..MAX_ERRORS_PER_SECTION {
            let e = match T::deserialize(ValueDeserializer::from(v.clone())) {
                Ok(t) => return t,
                Err(e) => e,
            };
            let off = e.span().map(|s| s.start);
            let key = off.and_then(|o| path_at(self.doc, o)).filter(|k| under(k, base)).unwrap_or_else(|| base.into());
            // A required key we removed for being wrong is now "missing": already said.
            let echo = e
                .message()
                .strip_prefix("missing field `")
                .and_then(|m| m.split_once('`'))
                .is_some_and(|(field, _)| removed.iter().any(|r| *r == push_key(key.clone(), field)));
            if !echo {
                self.errors.push(ConfigError {
                    line: line_of(self.text, off.unwrap_or(v.span().start)),
                    key: key.clone(),
                    message: e.message().to_string(),
                });
            }
            // (For an echo the error points at the table that lacks the key: dropping
            // the table lets the rest of the section be read.)
            let progressed = key != base && off.is_some_and(|o| remove_at(&mut v, o));
            // Dropping an array element shifts the later ones: the typed array no longer
            // lines up with the file, so nothing in it is judged further.
            if let Some(array) = key.strip_suffix(']').and_then(|k| k.rsplit_once('[')).map(|(a, _)| a) {
                self.failed.push(array.to_string());
            }
            removed.push(key.clone());
            self.failed.push(key);
            if !progressed {
                break;
            }
        }
        self.failed.push(base.into());
        T::default()
    }
}

/// Is `key` equal to `prefix` or below it (`group[1]` is under `group`; `groups` is not)?
/// An empty prefix covers everything.
fn under(key: &str, prefix: &str) -> bool {
    prefix.is_empty() || key.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn push_key(mut path: String, key: &str) -> String {
    if !path.is_empty() {
        path.push('.');
    }
    let bare = !key.is_empty() && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if bare {
        path.push_str(key);
    } else {
        path.push_str(&format!("{key:?}"));
    }
    path
}

/// The dotted path of the deepest key or value whose span holds byte `off`.
fn path_at(root: &Node<'_>, off: usize) -> Option<String> {
    fn walk(v: &Node<'_>, off: usize, path: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::Table(t) => t.iter().find_map(|(k, vv)| {
                let p = push_key(path.to_string(), k.get_ref());
                walk(vv, off, &p).or_else(|| (k.span().contains(&off) || vv.span().contains(&off)).then_some(p))
            }),
            DeValue::Array(a) => a.iter().enumerate().find_map(|(i, vv)| {
                let p = format!("{path}[{i}]");
                walk(vv, off, &p).or_else(|| vv.span().contains(&off).then_some(p))
            }),
            _ => None,
        }
    }
    walk(root, off, "")
}

/// Remove the deepest table entry or array element whose span holds byte `off`.
fn remove_at(v: &mut Node<'_>, off: usize) -> bool {
    match v.get_mut() {
        DeValue::Table(t) => remove_in_table(t, off),
        DeValue::Array(a) => remove_in_array(a, off),
        _ => false,
    }
}

fn remove_in_table(t: &mut DeTable<'_>, off: usize) -> bool {
    let mut hit = None;
    for (k, vv) in t.iter_mut() {
        if remove_at(vv, off) {
            return true;
        }
        if k.span().contains(&off) || vv.span().contains(&off) {
            hit = Some(AsRef::<str>::as_ref(k.get_ref()).to_string());
            break;
        }
    }
    match hit {
        Some(key) => t.remove(key.as_str()).is_some(),
        None => false,
    }
}

fn remove_in_array(a: &mut DeArray<'_>, off: usize) -> bool {
    let mut hit = None;
    for (i, vv) in a.iter_mut().enumerate() {
        if remove_at(vv, off) {
            return true;
        }
        if vv.span().contains(&off) {
            hit = Some(i);
            break;
        }
    }
    let Some(hit) = hit else {
        return false;
    };
    let mut kept = DeArray::new();
    for (i, vv) in a.iter().enumerate() {
        if i != hit {
            kept.push(vv.clone());
        }
    }
    *a = kept;
    true
}

/// One step of a dotted path: a key or an array index.
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some((idx, after)) = rest.split_once(']') {
            if let Ok(i) = idx.parse() {
                out.push(Step::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// Byte offset of the key at `path`, or of the nearest ancestor present in the text (a
/// key left at its default has no line of its own: its table's header stands in).
fn locate(root: &Node<'_>, path: &str) -> usize {
    let mut node = root;
    let mut off = 0;
    for step in steps(path) {
        let next = match (step, node.get_ref()) {
            (Step::Key(k), DeValue::Table(t)) => {
                t.iter().find(|(kk, _)| AsRef::<str>::as_ref(kk.get_ref()) == k).map(|(kk, vv)| (kk.span().start, vv))
            }
            (Step::Index(i), DeValue::Array(a)) => a.get(i).map(|vv| (vv.span().start, vv)),
            _ => None,
        };
        match next {
            Some((o, vv)) => {
                off = o;
                node = vv;
            }
            None => break,
        }
    }
    off
}

/// 1-based line of byte `off`.
fn line_of(text: &str, off: usize) -> usize {
    let end = off.min(text.len());
    text.as_bytes().get(..end).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) + 1
}

fn raw_group_names(doc: &Node<'_>) -> Vec<String> {
    let DeValue::Table(root) = doc.get_ref() else {
        return Vec::new();
    };
    let Some((_, groups)) = root.iter().find(|(k, _)| AsRef::<str>::as_ref(k.get_ref()) == "group") else {
        return Vec::new();
    };
    let DeValue::Array(items) = groups.get_ref() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|g| match g.get_ref() {
            DeValue::Table(t) => t
                .iter()
                .find(|(k, _)| AsRef::<str>::as_ref(k.get_ref()) == "name")
                .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string)),
            _ => None,
        })
        .collect()
}

/// The semantic checks on a deserialized config; each error is (dotted key, message).
struct Checker<'a> {
    cfg: &'a Config,
    errors: Vec<(String, String)>,
    extra_group_names: Vec<String>,
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

fn class_names() -> String {
    Class::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

impl Checker<'_> {
    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push((key.into(), message.into()));
    }

    fn run(&mut self) {
        self.site();
        self.capture();
        self.scalars();
        self.numbers();
        let groups = self.groups();
        self.shifts(&groups);
        self.approvals();
        self.holidays();
        self.api();
        self.alerts();
    }

    fn site(&mut self) {
        let s = &self.cfg.site;
        if jiff::tz::TimeZone::get(&s.timezone).is_err() {
            self.err(
                "site.timezone",
                format!("unknown time zone {:?} (an IANA name such as \"Asia/Shanghai\")", s.timezone),
            );
        }
        if !(s.area_code.len() >= 2 && s.area_code.starts_with('0') && digits(&s.area_code)) {
            self.err(
                "site.area_code",
                format!("{:?} is not an area code: 0 followed by digits, like \"021\"", s.area_code),
            );
        }
        if !s.outside_prefix.is_empty() && !digits(&s.outside_prefix) {
            self.err(
                "site.outside_prefix",
                format!("{:?} is not a prefix: digits, or \"\" for none", s.outside_prefix),
            );
        }
        if s.extensions.is_empty() {
            self.err("site.extensions", "no extensions: every call would be transit (give e.g. [\"8000-8999\"])");
        }
        let errs: Vec<_> = ext_errors(&s.extensions, "site.extensions");
        self.errors.extend(errs);
        for (i, p) in s.carrier_prefixes.iter().enumerate() {
            if !digits(p) {
                self.err(format!("site.carrier_prefixes[{i}]"), format!("{p:?} is not a prefix of digits"));
            }
        }
        for (i, p) in s.pbx.iter().enumerate() {
            if let Err(e) = super::parse_net(p) {
                self.err(format!("site.pbx[{i}]"), e);
            }
        }
        for (i, h) in s.correlation_headers.iter().enumerate() {
            if let Err(e) = super::check_correlation_header(h) {
                self.err(format!("site.correlation_headers[{i}]"), e);
            }
        }
        if !(100..=600_000).contains(&s.link_window_ms) {
            self.err(
                "site.link_window_ms",
                format!("{} ms is out of range: 100 to 600000 (default 2000)", s.link_window_ms),
            );
        }
        for (i, c) in s.pickup_codes.iter().enumerate() {
            if c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') {
                self.err(format!("site.pickup_codes[{i}]"), format!("{c:?} is not a feature code (digits, * and #)"));
            }
        }
        for (i, d) in s.domains.iter().enumerate() {
            if let Err(e) = check_domain(d) {
                self.err(format!("site.domains[{i}]"), e);
            }
        }
    }

    fn capture(&mut self) {
        let c = &self.cfg.capture;
        if c.tcp_max_message < 1024 {
            self.err(
                "capture.tcp_max_message",
                format!("{} bytes is too small: at least 1024 (a SIP INVITE with SDP is ~1 KiB)", c.tcp_max_message),
            );
        }
        // Memory caps: 0 would evict every entry at once; past the upper bounds the cap no
        // longer bounds anything a host can hold.
        let caps: [(&str, usize, usize, usize, &str); 5] = [
            ("capture.max_calls", c.max_calls, 1_000, 10_000_000, "default 50000"),
            ("capture.max_pending_legs", c.max_pending_legs, 100, 10_000_000, "default 65536"),
            ("capture.max_tcp_streams", c.max_tcp_streams, 16, 1_000_000, "default 16384"),
            ("capture.max_tcp_buffer_mib", c.max_tcp_buffer_mib as usize, 1, 16_384, "default 64"),
            ("capture.max_fragments", c.max_fragments, 16, 1_000_000, "default 1024"),
        ];
        for (key, v, lo, hi, default) in caps {
            if !(lo..=hi).contains(&v) {
                self.err(key, format!("{v} is out of range: {lo} to {hi} ({default})"));
            }
        }
        if c.mirror_dedupe_ms > 1000 {
            self.err(
                "capture.mirror_dedupe_ms",
                format!(
                    "{} ms is too long: at most 1000 (a longer window would swallow SIP retransmissions sent 500 ms apart by another path)",
                    c.mirror_dedupe_ms
                ),
            );
        }
        if !c.hep_listen.is_empty() && c.hep_listen.parse::<std::net::SocketAddr>().is_err() {
            self.err(
                "capture.hep_listen",
                format!("{:?} is not a socket address like \"127.0.0.1:9060\" (or \"\" for none)", c.hep_listen),
            );
        }
        for (i, name) in c.interfaces.iter().enumerate() {
            if name.trim().is_empty() {
                self.err(format!("capture.interfaces[{i}]"), "empty interface name");
            }
        }
        for (i, block) in c.hep_allow.iter().enumerate() {
            if super::Cidr::parse(block).is_none() {
                self.err(
                    format!("capture.hep_allow[{i}]"),
                    format!("{block:?} is not an address or network like \"10.0.0.0/8\" or \"::1/128\""),
                );
            }
        }
        if c.batch_ms > 1000 {
            self.err("capture.batch_ms", format!("{} ms: at most 1000 (alerts wait for it)", c.batch_ms));
        }
        if c.snaplen == 0 {
            self.err("capture.snaplen", "must be > 0 bytes");
        }
    }

    fn scalars(&mut self) {
        let cfg = self.cfg;
        if cfg.ringing.cycle_ms == 0 {
            self.err("ringing.cycle_ms", "must be > 0 ms (one ring cycle; China: 5000)");
        }
        if cfg.limits.call_timeout_s == 0 {
            self.err("limits.call_timeout_s", "must be > 0 s");
        }
        if cfg.tariffs.unit_s == 0 {
            self.err("tariffs.unit_s", "must be > 0 s (60 = per started minute)");
        }
        if cfg.store.path.trim().is_empty() {
            self.err("store.path", "empty path");
        }
        let name = &cfg.site.name;
        let name_ok = name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            self.err("site.name", format!("{name:?} is not a site name (up to 64 letters, digits, '.', '_', '-')"));
        }
        let central = cfg.store.central.trim();
        if !central.is_empty() {
            if name.is_empty() {
                self.err("site.name", "required with [store] central: every forwarded row carries its site's name");
            }
            if let Err(e) = central_url_problem(central) {
                self.err("store.central", e);
            }
        }
        let replica = cfg.store.central_read.trim();
        if !replica.is_empty() {
            // A replica of nothing: the readers take it for `central`'s URL only.
            if central.is_empty() {
                self.err("store.central_read", "needs [store] central, the store it is a replica of");
            }
            if let Err(e) = central_url_problem(replica) {
                self.err("store.central_read", e);
            }
        }
        if cfg.store.forward_batch == 0 {
            self.err("store.forward_batch", "must be > 0 rows");
        }
        if cfg.store.approvals_pull_s == 0 {
            self.err("store.approvals_pull_s", "must be > 0 s");
        }
        if cfg.recordings.dir.trim().is_empty() {
            self.err("recordings.dir", "empty path");
        }
    }

    fn numbers(&mut self) {
        let n = &self.cfg.numbers;
        let lists = [
            ("restricted_prefixes", &n.restricted_prefixes),
            ("allowed", &n.allowed),
            ("emergency", &n.emergency),
            ("toll_free", &n.toll_free),
        ];
        let mut errs = Vec::new();
        for (name, list) in lists {
            for (i, p) in list.iter().enumerate() {
                if !digits(p) {
                    errs.push((format!("numbers.{name}[{i}]"), format!("{p:?} is not a number prefix of digits")));
                }
            }
        }
        for (name, list) in [("personal", &n.personal), ("record", &n.record)] {
            for (i, p) in list.iter().enumerate() {
                if p.trim().is_empty() {
                    errs.push((format!("numbers.{name}[{i}]"), "empty number".to_string()));
                }
            }
        }
        self.errors.extend(errs);
    }

    /// Checks every group; returns the extension sets by group name, for the shifts.
    fn groups(&mut self) -> HashMap<String, Option<ExtensionSet>> {
        let mut seen: HashMap<String, Option<ExtensionSet>> = HashMap::new();
        let mut first_at: HashMap<&str, usize> = HashMap::new();
        for (i, g) in self.cfg.groups.iter().enumerate() {
            let at = format!("group[{i}]");
            if g.name.trim().is_empty() {
                self.err(format!("{at}.name"), "a group needs a name");
            } else if let Some(j) = first_at.get(g.name.as_str()) {
                self.err(format!("{at}.name"), format!("duplicate group name {:?} (also group[{j}])", g.name));
            } else {
                first_at.insert(&g.name, i);
            }
            let errs = ext_errors(&g.extensions, &format!("{at}.extensions"));
            let set = if errs.is_empty() { ExtensionSet::parse(&g.extensions).ok() } else { None };
            self.errors.extend(errs);
            seen.entry(g.name.clone()).or_insert(set);
            for (k, c) in g.may_dial.iter().flatten().enumerate() {
                if Class::parse(c).is_none() {
                    self.err(format!("{at}.may_dial[{k}]"), format!("unknown class {c:?}; one of {}", class_names()));
                }
            }
            for (k, w) in g.windows.iter().enumerate() {
                if parse_window(w).is_none() {
                    self.err(
                        format!("{at}.windows[{k}]"),
                        format!("{w:?} is not a window \"HH:MM-HH:MM\" (to may be 24:00; from ≠ to)"),
                    );
                }
            }
            for (k, p) in g.allow.iter().enumerate() {
                if !digits(p) {
                    self.err(format!("{at}.allow[{k}]"), format!("{p:?} is not a number prefix of digits"));
                }
            }
        }
        seen
    }

    fn shifts(&mut self, groups: &HashMap<String, Option<ExtensionSet>>) {
        for (i, s) in self.cfg.shifts.iter().enumerate() {
            let at = format!("shift[{i}]");
            let group = groups.get(&s.group);
            if s.group.trim().is_empty() {
                self.err(format!("{at}.group"), "a shift needs the name of its [[group]]");
            } else if group.is_none() && !self.extra_group_names.contains(&s.group) {
                self.err(format!("{at}.group"), format!("no [[group]] named {:?}", s.group));
            }
            let errs = ext_errors(&s.extensions, &format!("{at}.extensions"));
            let ext_ok = errs.is_empty();
            self.errors.extend(errs);
            if let (true, Some(Some(set))) = (ext_ok, group) {
                for (k, p) in s.extensions.iter().enumerate() {
                    let ends: Vec<&str> = p.split('-').map(str::trim).collect();
                    if !ends.iter().all(|e| set.contains(e)) {
                        self.err(
                            format!("{at}.extensions[{k}]"),
                            format!("{p:?} is not within the extensions of group {:?}", s.group),
                        );
                    }
                }
            }
            let from = parse_hhmm(&s.from, false);
            let to = parse_hhmm(&s.to, true);
            if from.is_none() {
                self.err(format!("{at}.from"), format!("{:?} is not a time \"HH:MM\" (00:00 to 23:59)", s.from));
            }
            if to.is_none() {
                self.err(format!("{at}.to"), format!("{:?} is not a time \"HH:MM\" (00:00 to 24:00)", s.to));
            }
            if from.is_some() && from == to {
                self.err(
                    format!("{at}.to"),
                    "a shift must not end when it starts (use 00:00 to 24:00 for a whole day)",
                );
            }
            for (k, d) in s.days.iter().enumerate() {
                if !WEEKDAYS.contains(&d.as_str()) {
                    self.err(format!("{at}.days[{k}]"), format!("{d:?} is not a day; one of {}", WEEKDAYS.join(", ")));
                }
            }
        }
    }

    fn approvals(&mut self) {
        let tz = jiff::tz::TimeZone::get(&self.cfg.site.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        for (i, a) in self.cfg.approvals.iter().enumerate() {
            let at = format!("approval[{i}]");
            if a.extension.trim().is_empty() {
                self.err(format!("{at}.extension"), "an approval needs the extension it is for");
            } else if let Err(e) = ExtensionSet::parse(std::slice::from_ref(&a.extension)) {
                self.err(format!("{at}.extension"), e);
            }
            if Class::parse(&a.class).is_none() {
                self.err(format!("{at}.class"), format!("unknown class {:?}; one of {}", a.class, class_names()));
            }
            let from = DateOrInstant::parse(&a.from);
            let until = DateOrInstant::parse(&a.until);
            for (field, val, parsed) in [("from", &a.from, from), ("until", &a.until, until)] {
                if parsed.is_none() {
                    self.err(
                        format!("{at}.{field}"),
                        format!("{val:?} is not a date \"YYYY-MM-DD\" or an RFC 3339 instant"),
                    );
                }
            }
            if let (Some(f), Some(u)) = (from, until) {
                // `until` is inclusive: a date covers its whole day.
                if let (Some(start), Some(end)) = (f.start(&tz), u.end(&tz)) {
                    let empty = match u {
                        DateOrInstant::Date(_) => start >= end,
                        DateOrInstant::Instant(_) => start > end,
                    };
                    if empty {
                        self.err(format!("{at}.until"), format!("{:?} is before from {:?}", a.until, a.from));
                    }
                }
            }
        }
    }

    fn holidays(&mut self) {
        for (i, d) in self.cfg.holidays.dates.iter().enumerate() {
            if parse_date(d).is_none() {
                self.err(format!("holidays.dates[{i}]"), format!("{d:?} is not a date \"YYYY-MM-DD\""));
            }
        }
    }

    fn api(&mut self) {
        let api = &self.cfg.api;
        match api.listen.parse::<std::net::SocketAddr>() {
            Err(_) => {
                self.err("api.listen", format!("{:?} is not a socket address like \"127.0.0.1:8080\"", api.listen));
            }
            // Decided here so that `config check` refuses what `run` would (same words).
            Ok(addr) if api.tokens.is_empty() && !addr.ip().is_loopback() => self.err(
                "api.listen",
                format!(
                    "refusing to serve the API on {addr} with no [[api.token]] in the config: without tokens it is \
                     for this machine only; listen on 127.0.0.1 or configure tokens"
                ),
            ),
            Ok(_) => {}
        }
        let mut site_at: HashMap<&str, usize> = HashMap::new();
        for (i, s) in api.sites.iter().enumerate() {
            let at = format!("api.site[{i}]");
            if s.name.trim().is_empty() {
                self.err(format!("{at}.name"), "the site's [site] name is needed");
            } else if let Some(j) = site_at.insert(s.name.trim(), i) {
                self.err(format!("{at}.name"), format!("{:?} is also api.site[{j}]", s.name));
            }
            if !s.dir.trim().is_empty() {
                // A shared folder instead of the site's API: one way to a site's files.
                if !s.url.trim().is_empty() || !s.token_file.trim().is_empty() {
                    self.err(format!("{at}.dir"), "either dir (a shared folder) or url and token_file, not both");
                }
                continue;
            }
            if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
                self.err(format!("{at}.url"), format!("{:?} is not an http:// or https:// URL", s.url));
            }
            if s.token_file.trim().is_empty() {
                self.err(format!("{at}.token_file"), "a file with an auditor token of that site is needed");
            }
        }
        let mut first_at: HashMap<&str, usize> = HashMap::new();
        for (i, t) in api.tokens.iter().enumerate() {
            let at = format!("api.token[{i}]");
            if t.name.trim().is_empty() {
                self.err(format!("{at}.name"), "a token needs a name (it is logged with each request)");
            } else if let Some(j) = first_at.get(t.name.as_str()) {
                self.err(format!("{at}.name"), format!("duplicate token name {:?} (also api.token[{j}])", t.name));
            } else {
                first_at.insert(&t.name, i);
            }
            if t.token.trim().is_empty() {
                self.err(format!("{at}.token"), "empty token");
            }
        }
    }

    fn alerts(&mut self) {
        for (i, url) in self.cfg.alerts.webhooks.iter().enumerate() {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len() {
                self.err(format!("alerts.webhooks[{i}]"), format!("{url:?} is not an http:// or https:// URL"));
            }
        }
    }
}

/// Each pattern on its own, so the error names the element.
/// A host name as `[site].domains` takes it: lower case letters, digits, '-' and '.',
/// labels not empty (what a Request-URI's host is compared with, case-insensitively).
fn check_domain(d: &str) -> Result<(), String> {
    if d.is_empty() {
        return Err("an empty domain".to_string());
    }
    if d.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("{d:?}: write it in lower case ({:?})", d.to_ascii_lowercase()));
    }
    let ok = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !d.split('.').all(ok) {
        return Err(format!("{d:?} is not a host name (letters, digits, '-', labels joined by '.')"));
    }
    Ok(())
}

fn ext_errors(patterns: &[String], at: &str) -> Vec<(String, String)> {
    patterns
        .iter()
        .enumerate()
        .filter_map(|(i, p)| ExtensionSet::parse(std::slice::from_ref(p)).err().map(|e| (format!("{at}[{i}]"), e)))
        .collect()
}

/// What is wrong with a central store URL, if anything: it must be a `postgres://` (or
/// `postgresql://`) URL with a host, and carry no password (passwords go in a file or
/// PGPASSWORD, so the config can be shown and logged).
pub fn central_url_problem(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| format!("{url:?} is not a postgres:// URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((user, _)) = authority.rsplit_once('@') {
        if user.contains(':') {
            return Err("a password in the URL is refused: put it in store.central_password_file or PGPASSWORD".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one error of `text`, as (key, line, message).
    fn one(text: &str) -> (String, usize, String) {
        let errs = Config::parse(text).expect_err("must be refused");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        let e = &errs[0];
        (e.key.clone(), e.line, e.message.clone())
    }

    fn keys(text: &str) -> Vec<(String, usize)> {
        Config::parse(text).expect_err("must be refused").into_iter().map(|e| (e.key, e.line)).collect()
    }

    #[test]
    fn sections_list_matches_config_fields() {
        let t = toml::Table::try_from(Config::default()).unwrap();
        let mut from_type: Vec<&str> = t.keys().map(String::as_str).collect();
        // Empty arrays of tables are serialized too; keep both lists sorted to compare.
        from_type.sort();
        let mut listed = SECTIONS.to_vec();
        listed.sort();
        assert_eq!(from_type, listed);
    }

    #[test]
    fn empty_text_is_the_default() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(Config::parse("# nothing\n\n").unwrap(), Config::default());
    }

    #[test]
    fn syntax_error_has_the_parsers_line() {
        let (key, line, msg) = one("[site]\ntimezone = \"Asia/Shanghai\"\narea_code = 021x\n");
        assert_eq!(line, 3);
        assert_eq!(key, "site.area_code");
        assert!(!msg.is_empty());
        let (_, line, msg) = one("[site]\n[site]\n");
        assert_eq!((line, msg.as_str()), (2, "duplicate key"));
        // A string never closed: the parser recovers nothing there; the line names it.
        assert_eq!(one("[api]\n\nlisten = \"127.0.0.1:0\n").0, "api.listen");
        assert_eq!(one("[[group]]\nname = \"a\nx = 1\n").0, "group.name");
    }

    #[test]
    fn unknown_keys_are_named() {
        let (key, line, msg) = one("[site]\ntimezone = \"UTC\"\ncolour = \"red\"\n");
        assert_eq!((key.as_str(), line), ("site.colour", 3));
        assert!(msg.contains("colour"), "{msg}");
        let (key, line, msg) = one("\n[sight]\ntimezone = \"UTC\"\n");
        assert_eq!((key.as_str(), line), ("sight", 2));
        assert!(msg.contains("sight"), "{msg}");
        let (key, line, _) = one("[[group]]\nname = \"a\"\n\n[[group]]\nname = \"b\"\nrecrd = \"always\"\n");
        assert_eq!((key.as_str(), line), ("group[1].recrd", 6));
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let text = "\
[site]
timezone = \"Mars/Olympus\"
area_code = \"21\"
bogus = 1

[ringing]
cycle_ms = \"fast\"

[[group]]
name = \"a\"
windows = [\"10:00-12:00\", \"25:00-26:00\"]
mode = \"loud\"

[[group]]
name = \"a\"
";
        let got = keys(text);
        assert_eq!(
            got,
            vec![
                ("site.timezone".to_string(), 2),
                ("site.area_code".to_string(), 3),
                ("site.bogus".to_string(), 4),
                ("ringing.cycle_ms".to_string(), 7),
                ("group[0].windows[1]".to_string(), 11),
                ("group[0].mode".to_string(), 12),
                ("group[1].name".to_string(), 15),
            ]
        );
    }

    #[test]
    fn wrong_types_are_located() {
        let (key, line, msg) = one("[limits]\nmax_rings = -1\n");
        assert_eq!((key.as_str(), line), ("limits.max_rings", 2));
        assert!(msg.contains("-1") || msg.contains("invalid"), "{msg}");
        let (key, line, _) = one("[[group]]\nname = \"d\"\nwindows = [\"10:00-12:00\", 3]\n");
        assert_eq!((key.as_str(), line), ("group[0].windows[1]", 3));
        // After a bad element the array is not judged further (its indices would shift),
        // but the rest of the group is.
        let text = "[[group]]\nname = \"d\"\nwindows = [3, \"25:00-26:00\"]\nmay_dial = [\"x\"]\n";
        assert_eq!(keys(text), vec![("group[0].windows[0]".to_string(), 3), ("group[0].may_dial[0]".to_string(), 4)]);
        let (key, line, _) = one("[api]\n[[api.token]]\nname = \"x\"\ntoken = \"t\"\n");
        assert_eq!((key.as_str(), line), ("api.token[0]", 2), "missing role");
        let (key, line, _) = one("group = 3\n");
        assert_eq!((key.as_str(), line), ("group", 1));
    }

    #[test]
    fn site_domains_are_lower_case_host_names() {
        assert!(Config::parse("[site]\ndomains = [\"pbx.example\", \"sip-1.corp.example\"]\n").is_ok());
        assert!(Config::parse("[site]\ndomains = []\n").is_ok());
        for bad in ["\"\"", "\"PBX.example\"", "\"pbx..example\"", "\"pbx example\"", "\"pbx.example:5060\""] {
            let (key, line, _) = one(&format!("[site]\ndomains = [\"ok.example\", {bad}]\n"));
            assert_eq!((key.as_str(), line), ("site.domains[1]", 2), "{bad}");
        }
    }

    #[test]
    fn site_checks() {
        assert_eq!(one("[site]\ntimezone = \"Asia/Shangai\"\n").0, "site.timezone");
        for bad in ["\"21\"", "\"0\"", "\"0a1\"", "\"\""] {
            let (key, line, _) = one(&format!("[site]\n\narea_code = {bad}\n"));
            assert_eq!((key.as_str(), line), ("site.area_code", 3), "{bad}");
        }
        assert_eq!(one("[site]\noutside_prefix = \"9#\"\n").0, "site.outside_prefix");
        assert!(Config::parse("[site]\noutside_prefix = \"\"\n").is_ok(), "no outside prefix is allowed");
        let (key, line, _) = one("[site]\nextensions = [\"8000-8999\",\n  \"80-8999\"]\n");
        assert_eq!((key.as_str(), line), ("site.extensions[1]", 3));
        assert_eq!(one("[site]\nextensions = []\n").0, "site.extensions");
        assert_eq!(one("[site]\ncarrier_prefixes = [\"179x\"]\n").0, "site.carrier_prefixes[0]");
        for tz in ["UTC", "Asia/Shanghai", "Europe/London", "America/New_York"] {
            assert!(Config::parse(&format!("[site]\ntimezone = \"{tz}\"\n")).is_ok(), "{tz}");
        }
    }

    #[test]
    fn scalar_checks() {
        let (key, line, msg) = one("[ringing]\ncycle_ms = 0\n");
        assert_eq!((key.as_str(), line), ("ringing.cycle_ms", 2));
        assert!(msg.contains("> 0"), "{msg}");
        // Each check after a blank line and a comment, so the line is not just "2".
        let cases = [
            ("[limits]", "call_timeout_s = 0", "limits.call_timeout_s"),
            ("[capture]", "tcp_max_message = 1023", "capture.tcp_max_message"),
            ("[capture]", "hep_listen = \"9060\"", "capture.hep_listen"),
            ("[capture]", "snaplen = 0", "capture.snaplen"),
            ("[capture]", "batch_ms = 1001", "capture.batch_ms"),
            ("[capture]", "mirror_dedupe_ms = 1001", "capture.mirror_dedupe_ms"),
            ("[capture]", "max_calls = 0", "capture.max_calls"),
            ("[capture]", "max_calls = 100000000", "capture.max_calls"),
            ("[capture]", "max_pending_legs = 0", "capture.max_pending_legs"),
            ("[capture]", "max_tcp_streams = 0", "capture.max_tcp_streams"),
            ("[capture]", "max_tcp_buffer_mib = 0", "capture.max_tcp_buffer_mib"),
            ("[capture]", "max_tcp_buffer_mib = 1000000", "capture.max_tcp_buffer_mib"),
            ("[capture]", "max_fragments = 0", "capture.max_fragments"),
            ("[capture]", "max_fragments = 2000000", "capture.max_fragments"),
            ("[capture]", "interfaces = [\"\"]", "capture.interfaces[0]"),
            ("[capture]", "hep_allow = [\"::1\", \"10.0.0.0/40\"]", "capture.hep_allow[1]"),
            ("[tariffs]", "unit_s = 0", "tariffs.unit_s"),
            ("[store]", "path = \"\"", "store.path"),
            ("[recordings]", "dir = \" \"", "recordings.dir"),
            ("[numbers]", "restricted_prefixes = [\"168\", \"9x\"]", "numbers.restricted_prefixes[1]"),
            ("[numbers]", "emergency = [\"110\", \"\"]", "numbers.emergency[1]"),
            ("[numbers]", "personal = [\"\"]", "numbers.personal[0]"),
            ("[alerts]", "webhooks = [\"ftp://x\"]", "alerts.webhooks[0]"),
            ("[api]", "listen = \"localhost\"", "api.listen"),
            ("[api]", "listen = \"0.0.0.0:8080\"", "api.listen"),
        ];
        for (section, line, key) in cases {
            let (k, l, _) = one(&format!("{section}\n\n# why\n{line}\n"));
            assert_eq!((k.as_str(), l), (key, 4), "{line}");
        }
        assert!(Config::parse("[capture]\ntcp_max_message = 1024\nhep_listen = \"127.0.0.1:9060\"\n").is_ok());
        let caps = "[capture]\nmax_calls = 1000\nmax_pending_legs = 100\nmax_tcp_streams = 16\nmax_tcp_buffer_mib = 1\nmax_fragments = 16\n";
        assert!(Config::parse(caps).is_ok(), "the smallest caps are allowed");
        // Any address is fine once there are tokens.
        let with_token =
            "[api]\nlisten = \"0.0.0.0:8080\"\n[[api.token]]\nname = \"a\"\ntoken = \"t\"\nrole = \"admin\"\n";
        assert!(Config::parse(with_token).is_ok());
    }

    #[test]
    fn group_checks() {
        let g = |body: &str| format!("[[group]]\nname = \"dispatch\"\nextensions = [\"8001-8009\"]\n{body}");
        assert!(Config::parse(&g("")).is_ok());
        assert_eq!(
            one("[[group]]\nextensions = [\"8001\"]\n"),
            ("group[0].name".into(), 1, "a group needs a name".into())
        );
        let (key, line, _) = one(&format!("{}\n[[group]]\nname = \"dispatch\"\n", g("")));
        assert_eq!((key.as_str(), line), ("group[1].name", 6));
        let (key, line, _) = one("[[group]]\nname = \"x\"\nextensions = [\"8001\", \"80x1-\"]\n");
        assert_eq!((key.as_str(), line), ("group[0].extensions[1]", 3));
        let (key, line, msg) = one(&g("may_dial = [\"local\", \"moblie\"]\n"));
        assert_eq!((key.as_str(), line), ("group[0].may_dial[1]", 4));
        assert!(msg.contains("moblie") && msg.contains("long-distance"), "{msg}");
        for bad in ["10:00-10:00", "9:00-12:00", "10:00-24:01", "24:00-10:00", "10:00", "10:60-11:00"] {
            let (key, line, _) = one(&g(&format!("windows = [\"10:00-12:00\", \"{bad}\"]\n")));
            assert_eq!((key.as_str(), line), ("group[0].windows[1]", 4), "{bad}");
        }
        assert!(Config::parse(&g("windows = [\"15:00-24:00\", \"22:00-06:00\"]\n")).is_ok());
        assert_eq!(one(&g("mode = \"alarm only\"\n")).0, "group[0].mode");
        assert!(Config::parse(&g("mode = \"alarm-only\"\nrecord = \"always\"\n")).is_ok());
        assert_eq!(one(&g("allow = [\"110\", \"x\"]\n")).0, "group[0].allow[1]");
    }

    #[test]
    fn shift_checks() {
        let base = "[[group]]\nname = \"dispatch\"\nextensions = [\"8001-8009\"]\n\n[[shift]]\n";
        let s = |body: &str| format!("{base}{body}");
        assert!(Config::parse(&s("group = \"dispatch\"\nfrom = \"17:00\"\nto = \"08:00\"\n")).is_ok());
        assert!(Config::parse(&s(
            "group = \"dispatch\"\nfrom = \"00:00\"\nto = \"24:00\"\ndays = [\"sat\", \"sun\"]\n"
        ))
        .is_ok());
        let (key, line, _) = one(&s("group = \"dispatsh\"\nfrom = \"08:00\"\nto = \"17:00\"\n"));
        assert_eq!((key.as_str(), line), ("shift[0].group", 6));
        let (key, line, _) = one(&s("group = \"dispatch\"\nfrom = \"24:00\"\nto = \"08:00\"\n"));
        assert_eq!((key.as_str(), line), ("shift[0].from", 7));
        let (key, line, _) = one(&s("group = \"dispatch\"\nfrom = \"08:00\"\nto = \"8:00pm\"\n"));
        assert_eq!((key.as_str(), line), ("shift[0].to", 8));
        let (key, _, _) = one(&s("group = \"dispatch\"\nfrom = \"08:00\"\nto = \"08:00\"\n"));
        assert_eq!(key, "shift[0].to");
        let (key, line, _) =
            one(&s("group = \"dispatch\"\nfrom = \"08:00\"\nto = \"17:00\"\ndays = [\"mon\", \"Tue\"]\n"));
        assert_eq!((key.as_str(), line), ("shift[0].days[1]", 9));
        let (key, line, _) =
            one(&s("group = \"dispatch\"\nextensions = [\"8001\", \"8100\"]\nfrom = \"08:00\"\nto = \"17:00\"\n"));
        assert_eq!((key.as_str(), line), ("shift[0].extensions[1]", 7));
        // The shift's group is named but could not be read: only the group's own error.
        let bad_group = "[[group]]\nname = \"dispatch\"\nmode = 3\n\n[[shift]]\ngroup = \"dispatch\"\nfrom = \"08:00\"\nto = \"17:00\"\n";
        assert_eq!(keys(bad_group), vec![("group[0].mode".to_string(), 3)]);
    }

    #[test]
    fn approval_checks() {
        let a = |body: &str| format!("[[approval]]\nextension = \"8020\"\n{body}");
        assert!(Config::parse(&a("class = \"long-distance\"\nfrom = \"2026-11-01\"\nuntil = \"2026-11-30\"\n")).is_ok());
        assert!(Config::parse(&a("class = \"international\"\nfrom = \"2026-11-01\"\nuntil = \"2026-11-01\"\n")).is_ok());
        assert!(Config::parse(&a(
            "class = \"hk-macau\"\nfrom = \"2026-11-01T09:00:00+08:00\"\nuntil = \"2026-11-01T09:00:00+08:00\"\n"
        ))
        .is_ok());
        let (key, line, _) = one(&a("class = \"long distance\"\nfrom = \"2026-11-01\"\nuntil = \"2026-11-30\"\n"));
        assert_eq!((key.as_str(), line), ("approval[0].class", 3));
        let (key, line, _) = one(&a("class = \"mobile\"\nfrom = \"2026-11-31\"\nuntil = \"2026-12-30\"\n"));
        assert_eq!((key.as_str(), line), ("approval[0].from", 4));
        let (key, line, _) = one(&a("class = \"mobile\"\nfrom = \"2026-11-01\"\nuntil = \"2026/11/30\"\n"));
        assert_eq!((key.as_str(), line), ("approval[0].until", 5));
        let (key, line, _) = one(&a("class = \"mobile\"\nfrom = \"2026-12-01\"\nuntil = \"2026-11-30\"\n"));
        assert_eq!((key.as_str(), line), ("approval[0].until", 5));
        // In Asia/Shanghai the 30th ends at 2026-11-30T16:00Z; 17:00Z is the 1st already.
        let (key, _, _) = one(&a("class = \"mobile\"\nfrom = \"2026-11-30T17:00:00Z\"\nuntil = \"2026-11-30\"\n"));
        assert_eq!(key, "approval[0].until");
        assert!(
            Config::parse(&a("class = \"mobile\"\nfrom = \"2026-11-30T15:59:00Z\"\nuntil = \"2026-11-30\"\n")).is_ok()
        );
        let (key, line, _) = one("[[approval]]\nclass = \"mobile\"\nfrom = \"2026-11-01\"\nuntil = \"2026-11-30\"\n");
        assert_eq!((key.as_str(), line), ("approval[0].extension", 1));
    }

    #[test]
    fn holiday_and_api_checks() {
        let (key, line, _) = one("[holidays]\ndates = [\"2026-10-01\",\n\"2026-10-32\"]\n");
        assert_eq!((key.as_str(), line), ("holidays.dates[1]", 3));
        assert_eq!(one("[api]\nlisten = \"localhost\"\n").0, "api.listen");
        let tok = |n: &str, t: &str| format!("[[api.token]]\nname = \"{n}\"\ntoken = \"{t}\"\nrole = \"auditor\"\n");
        assert!(Config::parse(&format!("{}{}", tok("a", "x"), tok("b", "y"))).is_ok());
        let (key, line, _) = one(&format!("{}{}", tok("a", "x"), tok("a", "y")));
        assert_eq!((key.as_str(), line), ("api.token[1].name", 6));
        let (key, line, _) = one(&format!("{}{}", tok("a", "x"), tok("b", "")));
        assert_eq!((key.as_str(), line), ("api.token[1].token", 7));
        assert_eq!(one(&tok("", "x")).0, "api.token[0].name");
        assert_eq!(one("[[api.token]]\nname = \"a\"\ntoken = \"x\"\nrole = \"root\"\n").0, "api.token[0].role");
        // A token that cannot be read does not hide the rest of [api].
        let text = "[api]\nlisten = \"localhost\"\n[[api.token]]\nname = \"a\"\ntoken = \"x\"\nrole = \"root\"\n";
        assert_eq!(keys(text), vec![("api.listen".to_string(), 2), ("api.token[0].role".to_string(), 6)]);
    }

    #[test]
    fn central_store_and_its_read_replica() {
        let store = |lines: &str| format!("[site]\nname = \"hq\"\n[store]\n{lines}");
        let primary = "central = \"postgres://cw@db.example/cw\"\n";
        let replica = "central_read = \"postgres://cw@replica.example/cw?sslmode=require\"\n";
        let cfg = Config::parse(&store(&format!("{primary}{replica}"))).unwrap();
        assert_eq!(cfg.store.central_read, "postgres://cw@replica.example/cw?sslmode=require");
        assert!(Config::parse(&store(primary)).is_ok(), "a replica is optional");
        // The same rules as `central`: a postgres:// URL, no password in it ...
        let (key, line, msg) = one(&store(&format!("{primary}central_read = \"postgres://cw:pw@replica/cw\"\n")));
        assert_eq!((key.as_str(), line), ("store.central_read", 5));
        assert!(msg.contains("password in the URL is refused"), "{msg}");
        assert_eq!(one(&store(&format!("{primary}central_read = \"mysql://replica/cw\"\n"))).0, "store.central_read");
        assert_eq!(one(&store("central = \"postgres://cw:pw@db/cw\"\n")).0, "store.central");
        // ... and a replica of a configured store only.
        let (key, _, msg) = one(&store(replica));
        assert_eq!(key, "store.central_read");
        assert!(msg.contains("needs [store] central"), "{msg}");
    }

    #[test]
    fn helpers() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
        assert!(under("group[1].name", "group") && under("group", "group") && under("x", ""));
        assert!(!under("groups", "group") && !under("group", "group[1]"));
        assert_eq!(push_key("a".into(), "b c"), "a.\"b c\"");
    }

    proptest::proptest! {
        /// Any text: an answer, never a panic; every error has a key and a real line.
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            if let Err(errs) = Config::parse(&text) {
                proptest::prop_assert!(!errs.is_empty());
                for e in errs {
                    proptest::prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1);
                    proptest::prop_assert!(!e.key.is_empty());
                }
            }
        }

        /// Config-shaped text with random values: still an answer, and the errors point
        /// into the text.
        #[test]
        fn shaped_text_never_panics(
            tz in "[A-Za-z/_]{0,20}",
            code in "[0-9a]{0,5}",
            win in "[0-9:\\-]{0,12}",
            ext in "[0-9\\- ]{0,10}",
            n in proptest::num::i64::ANY,
        ) {
            let text = format!(
                "[site]\ntimezone = {tz:?}\narea_code = {code:?}\nextensions = [{ext:?}]\n\n[ringing]\ncycle_ms = {n}\n\n\
                 [[group]]\nname = \"g\"\nwindows = [{win:?}]\n\n[[shift]]\ngroup = \"g\"\nfrom = {win:?}\nto = \"08:00\"\n"
            );
            let lines = text.lines().count();
            if let Err(errs) = Config::parse(&text) {
                for e in errs {
                    proptest::prop_assert!(e.line >= 1 && e.line <= lines, "{:?}", e);
                }
            }
        }

        #[test]
        fn hhmm_roundtrip(h in 0u16..24, m in 0u16..60) {
            let s = format!("{h:02}:{m:02}");
            proptest::prop_assert_eq!(parse_hhmm(&s, false), Some(h * 60 + m));
        }

        #[test]
        fn hhmm_never_panics(s in "\\PC{0,8}") {
            if let Some(m) = parse_hhmm(&s, true) {
                proptest::prop_assert!(m <= 24 * 60);
            }
            let _ = parse_window(&s);
            let _ = DateOrInstant::parse(&s);
        }
    }
}
