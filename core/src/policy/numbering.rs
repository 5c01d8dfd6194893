//! The numbering plan: dialled digits → normalised number and `Class`, as DESIGN.md
//! ("Number classification") orders it. Owns the prefix tables compiled from `[site]` and
//! `[numbers]`; may use `config` only. Invariants: classification is a pure function of the
//! plan and its two inputs; it never panics and never allocates (the normalised number is
//! a borrowed slice of the input plus at most a static lead of "0" or "00"); every input
//! string gets exactly one class.
//!
//! The steps, in order:
//! 1. take the user part of what was dialled (`sip:`/`tel:` scheme, `@host`, `;params`
//!    and a trailing `#` / `%23` "dial now" key removed);
//! 2. an extension of ours (`[site].extensions` or any group's) is `internal`, before any
//!    stripping — so an extension that starts with the outside prefix stays internal;
//! 3. what is not a telephone number cannot reach the PSTN: `*`/`#` feature codes and
//!    the empty user stay on the PBX and are `internal` (cost 0); a SIP user name
//!    (`sip:alice@pbx.example`) is `internal` only when its host is one of
//!    `[site].domains`, otherwise — another domain, no host, or no domains configured —
//!    `sip-uri` (a call out over the internet; never internal by default);
//! 4. `+cc…` is absolute (no prefix is stripped); otherwise the outside-line prefix is
//!    stripped once, only when the number starts with it, something follows it, and the
//!    caller is one of our extensions (only our phones dial it: on a trunk leg a leading
//!    0 is the national trunk prefix, not an outside line);
//! 5. a carrier-select / IP-call prefix is stripped when a national number (0…) or a
//!    mobile number follows it (a mobile number such as 179 1112 3456 is not a prefix);
//! 6. +86 / 0086 / 86-with-11-digits become national form (a fixed line gets its trunk 0
//!    back: +86 21 1234 5678 → 021 1234 5678), and the site's own area code is dropped
//!    (021 1234 5678 dialled in Shanghai is the local 1234 5678, and 021 168… is as
//!    premium as 168…);
//! 7. then the first match of: emergency (exact) · internal · premium (a restricted
//!    prefix not covered by an allowed one) · toll-free · HK/Macau (00852/00853) · Taiwan
//!    (00886) · international (00 + a non-zero digit; "000…" has no country code) ·
//!    mobile (1[3-9] + 9 digits, exactly 11) · long distance (0 + a non-zero digit, other
//!    than the site's own code alone) · local.
//!
//! China's area codes are prefix-free (010, 02x, 0xxx), so "starts with the site's code"
//! decides local vs long distance without a table of codes.

use super::Class;
use crate::config::{ExtensionSet, Numbers, Site};
use std::fmt;

/// A set of digit prefixes as a small trie over the dial-pad alphabet.
///
/// Written here rather than taken from a crate: the sets hold a handful of short digit
/// strings and the lookups sit on the 10 M numbers/s path, where a fixed 13-way node walk
/// beats the general-purpose tries (`prefix-trie` is built for IP prefixes, `fst` and
/// `aho-corasick` carry automaton set-up costs per search that dominate at this size).
#[derive(Clone, Debug, Default)]
pub struct PrefixSet {
    /// Node 0 is the root; a child index of 0 means "no child" (the root is nobody's child).
    nodes: Vec<TrieNode>,
    len: usize,
}

#[derive(Clone, Debug, Default)]
struct TrieNode {
    next: [u32; ALPHABET],
    end: bool,
}

/// 0-9, `*`, `#`, `+`.
const ALPHABET: usize = 13;

fn symbol(b: u8) -> Option<usize> {
    match b {
        b'0'..=b'9' => Some(usize::from(b - b'0')),
        b'*' => Some(10),
        b'#' => Some(11),
        b'+' => Some(12),
        _ => None,
    }
}

impl PrefixSet {
    /// Compile `items`; `Err` names the first one that is empty or not dial-pad characters.
    pub fn new<S: AsRef<str>>(items: &[S]) -> Result<PrefixSet, String> {
        let mut set = PrefixSet { nodes: vec![TrieNode::default()], len: 0 };
        for item in items {
            let p = item.as_ref().trim();
            if p.is_empty() {
                return Err("an empty prefix".to_string());
            }
            let mut at = 0usize;
            for b in p.bytes() {
                let Some(sym) = symbol(b) else {
                    return Err(format!("\"{p}\" is not a number (digits, '*', '#', '+')"));
                };
                let child = set.nodes.get(at).map_or(0, |n| n.next[sym]);
                at = if child == 0 {
                    let idx = set.nodes.len();
                    let Ok(idx32) = u32::try_from(idx) else {
                        return Err("too many prefixes".to_string());
                    };
                    set.nodes.push(TrieNode::default());
                    if let Some(n) = set.nodes.get_mut(at) {
                        n.next[sym] = idx32;
                    }
                    idx
                } else {
                    child as usize
                };
            }
            if let Some(n) = set.nodes.get_mut(at) {
                if !n.end {
                    set.len += 1;
                }
                n.end = true;
            }
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Length of the longest member that `s` starts with.
    pub fn longest_prefix(&self, s: impl IntoIterator<Item = u8>) -> Option<usize> {
        let mut at = 0usize;
        let mut best = None;
        for (i, b) in s.into_iter().enumerate() {
            let Some(sym) = symbol(b) else { break };
            let next = match self.nodes.get(at) {
                Some(n) => n.next[sym],
                None => 0,
            };
            if next == 0 {
                break;
            }
            at = next as usize;
            if self.nodes.get(at).is_some_and(|n| n.end) {
                best = Some(i + 1);
            }
        }
        best
    }

    /// Whether `s` is exactly a member.
    pub fn contains(&self, s: impl IntoIterator<Item = u8>) -> bool {
        let mut at = 0usize;
        for b in s {
            let Some(sym) = symbol(b) else { return false };
            let next = match self.nodes.get(at) {
                Some(n) => n.next[sym],
                None => 0,
            };
            if next == 0 {
                return false;
            }
            at = next as usize;
        }
        at != 0 && self.nodes.get(at).is_some_and(|n| n.end)
    }
}

/// A number as normalised: a static lead ("", "0" or "00") the plan put back in front of
/// a slice of the input. Copy, no allocation: the hot path returns this.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Num<'a> {
    lead: &'static str,
    rest: &'a str,
}

impl<'a> Num<'a> {
    fn plain(rest: &'a str) -> Num<'a> {
        Num { lead: "", rest }
    }
    pub fn len(&self) -> usize {
        self.lead.len() + self.rest.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> impl Iterator<Item = u8> + 'a {
        self.lead.bytes().chain(self.rest.bytes())
    }
    fn byte(&self, i: usize) -> Option<u8> {
        let l = self.lead.as_bytes();
        match l.get(i) {
            Some(&b) => Some(b),
            None => self.rest.as_bytes().get(i - l.len()).copied(),
        }
    }
    fn starts_with(&self, p: &str) -> bool {
        if self.lead.is_empty() {
            return self.rest.as_bytes().starts_with(p.as_bytes());
        }
        p.len() <= self.len() && p.bytes().zip(self.bytes()).all(|(a, b)| a == b)
    }
    /// Drop the first `k` characters (k ≤ len).
    fn strip(self, k: usize) -> Num<'a> {
        if k <= self.lead.len() {
            Num { lead: self.lead.get(k..).unwrap_or(""), rest: self.rest }
        } else {
            Num { lead: "", rest: self.rest.get(k - self.lead.len()..).unwrap_or("") }
        }
    }
    /// The parts, lead first: concatenated they are the normalised number.
    pub fn parts(&self) -> (&'static str, &'a str) {
        (self.lead, self.rest)
    }
    pub fn eq_str(&self, s: &str) -> bool {
        s.len() == self.len() && self.starts_with(s)
    }
    /// The first `k` characters as a String (for details).
    pub(crate) fn head(&self, k: usize) -> String {
        self.bytes().take(k).map(char::from).collect()
    }
}

impl fmt::Display for Num<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lead)?;
        f.write_str(self.rest)
    }
}

/// The result of classifying one dialled string, borrowed from it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Classified<'a> {
    pub class: Class,
    pub number: Num<'a>,
    /// Length of the restricted prefix that made it premium (for the violation detail).
    pub premium_prefix: Option<usize>,
}

impl Classified<'_> {
    /// The normalised number as an owned String.
    pub fn number_string(&self) -> String {
        let (a, b) = self.number.parts();
        let mut s = String::with_capacity(a.len() + b.len());
        s.push_str(a);
        s.push_str(b);
        s
    }
}

/// The compiled numbering plan of one config.
#[derive(Clone, Debug)]
pub struct NumberingPlan {
    extensions: ExtensionSet,
    /// Bit n set: some extension is n characters long (bit 63: 63 or more). A cheap
    /// reject before `ExtensionSet::contains`, which parses the number.
    ext_lengths: u64,
    outside_prefix: String,
    carrier: PrefixSet,
    /// With its trunk 0 ("021"); empty = no own area (every 0… number is long distance).
    area_code: String,
    emergency: PrefixSet,
    restricted: PrefixSet,
    allowed: PrefixSet,
    toll_free: PrefixSet,
    /// `[site].domains`, lower case: the hosts at which a SIP user name is ours.
    domains: Vec<String>,
}

fn digits_only(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn is_mobile(n: &Num<'_>) -> bool {
    n.len() == 11 && n.byte(0) == Some(b'1') && matches!(n.byte(1), Some(b'3'..=b'9'))
}

/// A user part that is a name, not a number or a feature code: it has a character no
/// dial pad has.
fn is_name(user: &str) -> bool {
    user.bytes().any(|b| !(b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'+')))
}

/// The host of a dialled string (`alice@pbx.example;transport=tcp` → `pbx.example`), if
/// it has one: after the '@', before any port, parameters or headers.
fn host_part(dialled: &str) -> Option<&str> {
    let (_, rest) = dialled.trim().split_once('@')?;
    let end = rest.bytes().position(|b| matches!(b, b';' | b'?' | b'>' | b':')).unwrap_or(rest.len());
    rest.get(..end).filter(|h| !h.is_empty())
}

/// The user part of a dialled string: no scheme, host, parameters or "dial now" key.
fn user_part(dialled: &str) -> &str {
    let mut s = dialled.trim();
    if matches!(s.as_bytes().first(), Some(b's' | b'S' | b't' | b'T')) {
        for scheme in ["sip:", "sips:", "tel:"] {
            if s.get(..scheme.len()).is_some_and(|p| p.eq_ignore_ascii_case(scheme)) {
                s = s.get(scheme.len()..).unwrap_or("");
                break;
            }
        }
    }
    if let Some(end) = s.bytes().position(|b| b == b'@' || b == b';') {
        s = s.get(..end).unwrap_or("");
    }
    // The "dial now" key ends a number; on anything else ("*72#") it is part of a code.
    let number_before = |t: &str| {
        let t = t.strip_prefix('+').unwrap_or(t);
        !t.is_empty() && digits_only(t)
    };
    if let Some(t) = s.strip_suffix('#').filter(|t| number_before(t)) {
        s = t;
    } else if s.len() > 3 && s.get(s.len() - 3..).is_some_and(|t| t.eq_ignore_ascii_case("%23")) {
        if let Some(t) = s.get(..s.len() - 3).filter(|t| number_before(t)) {
            s = t;
        }
    }
    s
}

impl NumberingPlan {
    /// Our extensions are `[site].extensions` plus `more_extensions` (the groups').
    pub fn new(site: &Site, numbers: &Numbers, more_extensions: &[String]) -> Result<NumberingPlan, String> {
        let patterns: Vec<String> = site.extensions.iter().chain(more_extensions).cloned().collect();
        let extensions = ExtensionSet::parse(&patterns).map_err(|e| format!("site.extensions: {e}"))?;
        let ext_lengths = patterns.iter().fold(0u64, |m, p| {
            let p = p.trim();
            let len = p.split_once('-').map_or(p.len(), |(a, _)| a.trim().len());
            m | 1u64 << len.min(63)
        });
        let outside_prefix = site.outside_prefix.trim().to_string();
        if !digits_only(&outside_prefix) {
            return Err(format!("site.outside_prefix: \"{outside_prefix}\" is not digits"));
        }
        let mut area_code = site.area_code.trim().to_string();
        if !digits_only(&area_code) || area_code.starts_with("00") {
            return Err(format!("site.area_code: \"{area_code}\" is not an area code like \"021\""));
        }
        if !area_code.is_empty() && !area_code.starts_with('0') {
            // "21" and "021" mean the same; the plan compares national forms.
            area_code.insert(0, '0');
        }
        let digit_list = |key: &str, v: &[String]| -> Result<PrefixSet, String> {
            if let Some(bad) = v.iter().find(|p| !digits_only(p.trim())) {
                return Err(format!("{key}: \"{bad}\" is not digits"));
            }
            PrefixSet::new(v).map_err(|e| format!("{key}: {e}"))
        };
        Ok(NumberingPlan {
            extensions,
            ext_lengths,
            outside_prefix,
            carrier: digit_list("site.carrier_prefixes", &site.carrier_prefixes)?,
            area_code,
            emergency: digit_list("numbers.emergency", &numbers.emergency)?,
            restricted: digit_list("numbers.restricted_prefixes", &numbers.restricted_prefixes)?,
            allowed: digit_list("numbers.allowed", &numbers.allowed)?,
            toll_free: digit_list("numbers.toll_free", &numbers.toll_free)?,
            domains: site.domains.iter().map(|d| d.trim().to_ascii_lowercase()).filter(|d| !d.is_empty()).collect(),
        })
    }

    pub fn is_extension(&self, s: &str) -> bool {
        self.ext_lengths & (1u64 << s.len().min(63)) != 0 && self.extensions.contains(s)
    }

    /// A host (IPv6 brackets included or not) at which a SIP user name is ours; no host
    /// is nobody's.
    fn is_our_domain(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
            self.domains.iter().any(|d| d.eq_ignore_ascii_case(h))
        })
    }

    pub fn is_emergency(&self, n: &Num<'_>) -> bool {
        self.emergency.contains(n.bytes())
    }

    /// Classify what `caller` dialled. Never allocates; see the module doc for the steps.
    /// An empty `caller` (a check without one) counts as one of ours.
    pub fn classify<'a>(&self, dialled: &'a str, caller: &str) -> Classified<'a> {
        let ours = caller.is_empty() || self.is_extension(user_part(caller));
        self.classify_as(dialled, ours)
    }

    /// Classify with the caller already known to be ours (it dials the outside prefix)
    /// or not.
    pub fn classify_as<'a>(&self, dialled: &'a str, caller_ours: bool) -> Classified<'a> {
        let internal = |n: Num<'a>| Classified { class: Class::Internal, number: n, premium_prefix: None };
        let user = user_part(dialled);
        if self.is_extension(user) {
            return internal(Num::plain(user));
        }
        let (plus, digits) = match user.strip_prefix('+') {
            Some(d) => (true, d),
            None => (false, user),
        };
        if digits.is_empty() || !digits_only(digits) {
            // Not routable to the PSTN: a name is ours only at one of our domains; a
            // feature code or nothing stays on the PBX.
            if is_name(user) && !self.is_our_domain(host_part(dialled)) {
                return Classified { class: Class::SipUri, number: Num::plain(user), premium_prefix: None };
            }
            return internal(Num::plain(user));
        }
        let mut n = Num::plain(digits);
        if plus {
            n = if n.starts_with("86") && n.len() > 2 {
                self.national(n.strip(2))
            } else {
                Num { lead: "00", rest: digits }
            };
        } else {
            let op = self.outside_prefix.as_str();
            if caller_ours && !op.is_empty() && n.len() > op.len() && n.starts_with(op) {
                n = n.strip(op.len());
            }
            if let Some(k) = self.carrier.longest_prefix(n.rest.bytes()) {
                let rest = n.strip(k);
                if rest.byte(0) == Some(b'0') || is_mobile(&rest) {
                    n = rest;
                }
            }
        }
        // Each step shortens the number, so this ends; looping makes the result a fixed
        // point (the normalised number classifies to itself, as a trunk leg carries it).
        let ac = self.area_code.as_str();
        loop {
            if n.starts_with("0086") && n.len() > 4 {
                n = self.national(n.strip(4));
            } else if n.len() == 13 && n.starts_with("86") {
                n = self.national(n.strip(2));
            } else if !ac.is_empty() && n.len() > ac.len() && n.starts_with(ac) {
                n = n.strip(ac.len());
            } else {
                break;
            }
        }
        // Unchanged by normalisation: already known not to be an extension.
        let checked = n.lead.is_empty() && n.rest.len() == user.len();
        self.class_of(n, !checked)
    }

    /// A number written after +86 / 0086 / 86: back to national form. Fixed lines
    /// (area code without its 0 + a 7–8 digit subscriber: 9 to 11 digits, not 1… except
    /// Beijing's 10, not toll-free) get the trunk 0 back; mobiles, 1xx services, toll-free and short
    /// service numbers stand as they are.
    fn national<'a>(&self, n: Num<'a>) -> Num<'a> {
        let ("", r) = n.parts() else { return n };
        // Beijing's code is 10; other 1… numbers are mobiles and services.
        let fixed = (9..=11).contains(&r.len())
            && !r.starts_with('0')
            && (!r.starts_with('1') || r.starts_with("10"))
            && self.toll_free.longest_prefix(r.bytes()).is_none();
        if fixed {
            Num { lead: "0", rest: r }
        } else {
            n
        }
    }

    fn class_of<'a>(&self, n: Num<'a>, check_extension: bool) -> Classified<'a> {
        let class = |c: Class| Classified { class: c, number: n, premium_prefix: None };
        // One contiguous view for the table walks: the input itself, or (only after +86
        // put a 0 back) a copy on the stack.
        let mut buf = [0u8; 48];
        let b: &[u8] = match n.parts() {
            ("", r) => r.as_bytes(),
            _ if n.len() <= buf.len() => {
                for (slot, x) in buf.iter_mut().zip(n.bytes()) {
                    *slot = x;
                }
                buf.get(..n.len()).unwrap_or(&[])
            }
            _ => return class(Class::Local),
        };
        if self.emergency.contains(b.iter().copied()) {
            return class(Class::Emergency);
        }
        if check_extension && std::str::from_utf8(b).is_ok_and(|s| self.is_extension(s)) {
            return class(Class::Internal);
        }
        if let Some(k) = self.restricted.longest_prefix(b.iter().copied()) {
            if self.allowed.longest_prefix(b.iter().copied()).is_none() {
                return Classified { class: Class::Premium, number: n, premium_prefix: Some(k) };
            }
        }
        if self.toll_free.longest_prefix(b.iter().copied()).is_some() {
            return class(Class::TollFree);
        }
        if n.starts_with("00") && n.len() > 2 {
            return if n.starts_with("00852") || n.starts_with("00853") {
                class(Class::HkMacau)
            } else if n.starts_with("00886") {
                class(Class::Taiwan)
            } else if n.byte(2) == Some(b'0') {
                // "000…" has no country code: not a number the international gateway takes.
                class(Class::Local)
            } else {
                class(Class::International)
            };
        }
        if is_mobile(&n) {
            return class(Class::Mobile);
        }
        if n.byte(0) == Some(b'0') && matches!(n.byte(1), Some(b'1'..=b'9')) {
            // The own area code alone (nothing after it) is not another city.
            let own = !self.area_code.is_empty() && n.eq_str(&self.area_code);
            return class(if own { Class::Local } else { Class::LongDistance });
        }
        class(Class::Local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan_with(outside: &str, area: &str) -> NumberingPlan {
        let site = Site { outside_prefix: outside.into(), area_code: area.into(), ..Site::default() };
        NumberingPlan::new(&site, &Numbers::default(), &[]).unwrap()
    }

    fn plan() -> NumberingPlan {
        plan_with("0", "021")
    }

    /// (normalised, class) as dialled by extension 8001.
    fn c(p: &NumberingPlan, dialled: &str) -> (String, Class) {
        let r = p.classify(dialled, "8001");
        (r.number_string(), r.class)
    }

    fn s(n: &str, class: Class) -> (String, Class) {
        (n.to_string(), class)
    }

    #[test]
    fn prefix_set_longest_and_exact() {
        let p = PrefixSet::new(&["9", "95", "168"]).unwrap();
        assert_eq!(p.longest_prefix("95588".bytes()), Some(2));
        assert_eq!(p.longest_prefix("91234".bytes()), Some(1));
        assert_eq!(p.longest_prefix("16800123".bytes()), Some(3));
        assert_eq!(p.longest_prefix("16".bytes()), None);
        assert_eq!(p.longest_prefix("".bytes()), None);
        assert!(p.contains("95".bytes()) && p.contains("9".bytes()));
        assert!(!p.contains("16".bytes()) && !p.contains("1680".bytes()) && !p.contains("".bytes()));
        assert!(!p.is_empty());
        assert!(PrefixSet::new(&[""]).is_err());
        assert!(PrefixSet::new(&["12a"]).is_err());
        assert!(PrefixSet::new::<&str>(&[]).unwrap().is_empty());
        assert_eq!(PrefixSet::new(&["*7"]).unwrap().longest_prefix("*72".bytes()), Some(2));
    }

    #[test]
    fn emergency_every_number_and_with_outside_prefix() {
        let p = plan();
        for n in ["110", "119", "120", "122"] {
            assert_eq!(c(&p, n), s(n, Class::Emergency));
            assert_eq!(c(&p, &format!("0{n}")), s(n, Class::Emergency), "0{n}");
        }
        // Exact, not a prefix.
        assert_ne!(c(&p, "1100").1, Class::Emergency);
        assert_ne!(c(&p, "11").1, Class::Emergency);
        // The own area code in front is still the local emergency line.
        assert_eq!(c(&p, "0021110"), s("110", Class::Emergency));
        assert_eq!(p.classify("021110", "trunk").class, Class::Emergency);
    }

    #[test]
    fn internal_before_any_stripping() {
        let p = plan();
        assert_eq!(c(&p, "8001"), s("8001", Class::Internal));
        assert_eq!(c(&p, "sip:8999@pbx.example;user=phone"), s("8999", Class::Internal));
        // Outside prefix + an extension is still ours after stripping.
        assert_eq!(c(&p, "08001"), s("8001", Class::Internal));
        // An extension that starts with the outside prefix is not stripped.
        let site = Site { outside_prefix: "9".into(), extensions: vec!["9000-9099".into()], ..Site::default() };
        let p9 = NumberingPlan::new(&site, &Numbers::default(), &[]).unwrap();
        assert_eq!(c(&p9, "9001"), s("9001", Class::Internal));
        // ... while 9 + a premium number is stripped and premium.
        let r = p9.classify("916800123", "9001");
        assert_eq!((r.number_string(), r.class), s("16800123", Class::Premium));
        // Outside the range: 7999, 80001 are not extensions.
        assert_ne!(c(&p, "7999").1, Class::Internal);
    }

    fn plan_for_domains(domains: &[&str]) -> NumberingPlan {
        let site = Site { domains: domains.iter().map(|d| d.to_string()).collect(), ..Site::default() };
        NumberingPlan::new(&site, &Numbers::default(), &[]).unwrap()
    }

    #[test]
    fn feature_codes_and_the_empty_user_are_internal() {
        let p = plan();
        assert_eq!(c(&p, ""), s("", Class::Internal));
        assert_eq!(c(&p, "   "), s("", Class::Internal));
        assert_eq!(c(&p, "*72"), s("*72", Class::Internal));
        assert_eq!(c(&p, "#31#13912345678"), s("#31#13912345678", Class::Internal));
        assert_eq!(c(&p, "+"), s("+", Class::Internal));
    }

    /// Issue 19 point 5: a name is never internal by default.
    #[test]
    fn a_name_without_our_domains_is_a_sip_uri() {
        let p = plan();
        assert_eq!(c(&p, "alice"), s("alice", Class::SipUri), "no host: nobody's");
        assert_eq!(c(&p, "alice@pbx.example"), s("alice", Class::SipUri), "no domains configured");
        assert_eq!(c(&p, "sip:francisco@bestel.com:55060"), s("francisco", Class::SipUri));
        assert_eq!(c(&p, "1391234567x"), s("1391234567x", Class::SipUri));
        assert_eq!(c(&p, "061963177-ikhuuep5bi123"), s("061963177-ikhuuep5bi123", Class::SipUri));
        assert_eq!(c(&p, "1391２345678"), s("1391２345678", Class::SipUri), "full-width digits are not digits");
    }

    #[test]
    fn a_name_is_internal_at_our_domain_and_a_sip_uri_elsewhere() {
        let p = plan_for_domains(&["pbx.example", "corp.example"]);
        assert_eq!(c(&p, "alice@pbx.example"), s("alice", Class::Internal));
        assert_eq!(c(&p, "sip:bob@PBX.Example;transport=tcp"), s("bob", Class::Internal), "hosts compare in any case");
        assert_eq!(c(&p, "sip:bob@corp.example:5060"), s("bob", Class::Internal));
        assert_eq!(c(&p, "alice@pbx.example."), s("alice", Class::Internal), "a rooted name is the same host");
        assert_eq!(c(&p, "alice@evil.example"), s("alice", Class::SipUri));
        assert_eq!(c(&p, "alice@sub.pbx.example"), s("alice", Class::SipUri), "a subdomain is another domain");
        assert_eq!(c(&p, "alice"), s("alice", Class::SipUri), "a name without host is not ours");
        assert_eq!(c(&p, "*72@pbx.example"), s("*72", Class::Internal));
    }

    #[test]
    fn numbers_are_classed_by_digits_whatever_the_domain() {
        let ours = plan_for_domains(&["pbx.example"]);
        let none = plan();
        for p in [&ours, &none] {
            assert_eq!(c(p, "sip:8001@evil.example"), s("8001", Class::Internal));
            assert_eq!(c(p, "sip:013912345678@pbx.example"), s("13912345678", Class::Mobile));
            assert_eq!(c(p, "sip:016800123@evil.example"), s("16800123", Class::Premium));
            assert_eq!(c(p, "sip:+85223456789@pbx.example"), s("0085223456789", Class::HkMacau));
        }
    }

    #[test]
    fn dial_now_key_and_uri_forms() {
        let p = plan();
        assert_eq!(c(&p, "13912345678#"), s("13912345678", Class::Mobile));
        assert_eq!(c(&p, "13912345678%23"), s("13912345678", Class::Mobile));
        assert_eq!(c(&p, "tel:+8613912345678"), s("13912345678", Class::Mobile));
        assert_eq!(c(&p, "SIP:016800123@10.0.0.1"), s("16800123", Class::Premium));
        assert_eq!(c(&p, "#"), s("#", Class::Internal));
        assert_eq!(c(&p, "*72#"), s("*72#", Class::Internal));
        assert_eq!(c(&p, "##"), s("##", Class::Internal));
        assert_eq!(c(&p, "+8613912345678#"), s("13912345678", Class::Mobile));
    }

    #[test]
    fn premium_restricted_prefixes_minus_allowed() {
        let p = plan();
        assert_eq!(c(&p, "016800123"), s("16800123", Class::Premium));
        assert_eq!(c(&p, "16800123"), s("16800123", Class::Premium));
        assert_eq!(c(&p, "091234"), s("91234", Class::Premium));
        assert_eq!(c(&p, "9"), s("9", Class::Premium));
        // Allow-listed 95xxx/96xxx service numbers.
        assert_eq!(c(&p, "95588"), s("95588", Class::Local));
        assert_eq!(c(&p, "095588"), s("95588", Class::Local));
        assert_eq!(c(&p, "96110"), s("96110", Class::Local));
        assert_eq!(c(&p, "95123456"), s("95123456", Class::Local));
        // 199… is a mobile, not a 9… premium line.
        assert_eq!(c(&p, "19912345678"), s("19912345678", Class::Mobile));
        assert_eq!(c(&p, "019912345678"), s("19912345678", Class::Mobile));
        assert_eq!(c(&p, "16912345678"), s("16912345678", Class::Mobile));
        // 168 + 8 digits looks like a mobile too: premium comes first in the order.
        assert_eq!(c(&p, "16812345678"), s("16812345678", Class::Premium));
        assert_eq!(c(&p, "16"), s("16", Class::Local));
        // Own area code in front of a premium line is the same premium line.
        assert_eq!(c(&p, "002116800123"), s("16800123", Class::Premium));
        // Another city's 168 line is long distance unless listed (prefixes match the
        // normalised national form).
        assert_eq!(c(&p, "0075516800123"), s("075516800123", Class::LongDistance));
        assert_eq!(p.classify("016800123", "8001").premium_prefix, Some(3));
    }

    #[test]
    fn toll_free() {
        let p = plan();
        assert_eq!(c(&p, "04008123456"), s("4008123456", Class::TollFree));
        assert_eq!(c(&p, "8008123456"), s("8008123456", Class::TollFree));
        // An extension in 8000-8999 is internal, not an 800 number.
        assert_eq!(c(&p, "8008"), s("8008", Class::Internal));
        assert_eq!(c(&p, "+864008123456"), s("4008123456", Class::TollFree));
    }

    #[test]
    fn hong_kong_macau_taiwan_international() {
        let p = plan();
        assert_eq!(c(&p, "00085212345678"), s("0085212345678", Class::HkMacau));
        assert_eq!(c(&p, "0008532812345"), s("008532812345", Class::HkMacau));
        assert_eq!(c(&p, "000886212345678"), s("00886212345678", Class::Taiwan));
        assert_eq!(c(&p, "0001202555012"), s("001202555012", Class::International));
        assert_eq!(c(&p, "+85212345678"), s("0085212345678", Class::HkMacau));
        assert_eq!(c(&p, "+3908351673002"), s("003908351673002", Class::International));
        assert_eq!(c(&p, "+886212345678"), s("00886212345678", Class::Taiwan));
        // With no outside prefix, 00852… as dialled is Hong Kong.
        let p_none = plan_with("", "021");
        assert_eq!(c(&p_none, "0085212345678"), s("0085212345678", Class::HkMacau));
        assert_eq!(c(&p_none, "00852"), s("00852", Class::HkMacau));
        assert_eq!(c(&p_none, "0085"), s("0085", Class::International));
        assert_eq!(c(&p_none, "001"), s("001", Class::International));
        // "00" alone and "000…" have no country code.
        assert_eq!(c(&p_none, "00"), s("00", Class::Local));
        assert_eq!(c(&p_none, "000123"), s("000123", Class::Local));
        // With outside prefix 0, 00852… is 0 + 0852… = Zunyi (Guizhou) long distance.
        assert_eq!(c(&p, "0085212345678"), s("085212345678", Class::LongDistance));
    }

    #[test]
    fn plus_86_and_0086_normalised() {
        let p = plan();
        assert_eq!(c(&p, "+8613912345678"), s("13912345678", Class::Mobile));
        assert_eq!(c(&p, "0008613912345678"), s("13912345678", Class::Mobile));
        assert_eq!(c(&p, "08613912345678"), s("13912345678", Class::Mobile));
        // Fixed lines get their trunk 0 back; the own area code then drops.
        assert_eq!(c(&p, "+8675512345678"), s("075512345678", Class::LongDistance));
        assert_eq!(c(&p, "+861012345678"), s("01012345678", Class::LongDistance));
        assert_eq!(c(&p, "+862112345678"), s("12345678", Class::Local));
        assert_eq!(c(&p, "000862112345678"), s("12345678", Class::Local));
        // 86 + 11 digits (a Shenzhen fixed line written without +).
        assert_eq!(c(&p, "08675512345678"), s("075512345678", Class::LongDistance));
        // 86 + something not 11 digits is left alone.
        assert_eq!(c(&p, "0861234567"), s("861234567", Class::Local));
        // Short service numbers after +86 stay as they are.
        assert_eq!(c(&p, "+8695588"), s("95588", Class::Local));
        assert_eq!(c(&p, "+86110"), s("110", Class::Emergency));
        assert_eq!(c(&p, "+8616800123"), s("16800123", Class::Premium));
        assert_eq!(c(&p, "+86"), s("0086", Class::International));
    }

    #[test]
    fn mobile_lengths() {
        let p = plan();
        for pre in 3..=9 {
            let n = format!("1{pre}912345678");
            assert_eq!(c(&p, &n), s(&n, Class::Mobile));
        }
        assert_eq!(c(&p, "12912345678"), s("12912345678", Class::Local));
        assert_eq!(c(&p, "1391234567"), s("1391234567", Class::Local));
        assert_eq!(c(&p, "139123456789"), s("139123456789", Class::Local));
    }

    #[test]
    fn long_distance_and_local() {
        let p = plan();
        assert_eq!(c(&p, "0075512345678"), s("075512345678", Class::LongDistance));
        assert_eq!(c(&p, "001012345678"), s("01012345678", Class::LongDistance));
        // The site's own area code dialled with 0 is local.
        assert_eq!(c(&p, "002112345678"), s("12345678", Class::Local));
        // 0 + own code with nothing after stays as dialled.
        assert_eq!(c(&p, "0021"), s("021", Class::Local));
        assert_eq!(c(&p, "012345678"), s("12345678", Class::Local));
        assert_eq!(c(&p, "12345678"), s("12345678", Class::Local));
        assert_eq!(c(&p, "0"), s("0", Class::Local), "a lone outside prefix is not stripped to nothing");
        assert_eq!(c(&p, "00"), s("0", Class::Local));
        assert_eq!(c(&p, "114"), s("114", Class::Local));
        // From a Shenzhen site, 0755 is local and 021 is long distance.
        let sz = plan_with("9", "0755");
        assert_eq!(c(&sz, "9075512345678"), s("12345678", Class::Local));
        assert_eq!(c(&sz, "902112345678"), s("02112345678", Class::LongDistance));
        assert_eq!(c(&sz, "0755123"), s("123", Class::Local));
        // 0755 is long distance from a Shanghai site with outside prefix 9.
        let sh9 = plan_with("9", "021");
        assert_eq!(c(&sh9, "9075512345678"), s("075512345678", Class::LongDistance));
        assert_eq!(c(&sh9, "075512345678"), s("075512345678", Class::LongDistance));
        // Area code without its 0 in config means the same.
        assert_eq!(c(&plan_with("0", "21"), "002112345678"), s("12345678", Class::Local));
    }

    #[test]
    fn carrier_select_prefixes() {
        let p = plan();
        assert_eq!(c(&p, "017951075512345678"), s("075512345678", Class::LongDistance));
        assert_eq!(c(&p, "01790913912345678"), s("13912345678", Class::Mobile));
        assert_eq!(c(&p, "0179510085212345678"), s("0085212345678", Class::HkMacau));
        // A mobile that starts like a carrier prefix is a mobile.
        assert_eq!(c(&p, "17911234567"), s("17911234567", Class::Mobile));
        // A carrier prefix before a local number is not stripped (no such routing).
        assert_eq!(c(&p, "1795112345678"), s("1795112345678", Class::Local));
        // The prefix alone is a (service) number.
        assert_eq!(c(&p, "96688"), s("96688", Class::Local));
    }

    #[test]
    fn outside_prefix_only_for_our_callers() {
        let p = plan();
        // A trunk leg: the leading 0 is the national trunk prefix, not an outside line.
        let r = p.classify("02012345678", "13912345678");
        assert_eq!((r.number_string(), r.class), s("02012345678", Class::LongDistance));
        let r = p.classify("02012345678", "8001");
        assert_eq!((r.number_string(), r.class), s("2012345678", Class::Local));
        // Unknown caller (API check without `from`): treated as ours.
        let r = p.classify("016800123", "");
        assert_eq!(r.class, Class::Premium);
        let r = p.classify("016800123", "sip:8001@pbx");
        assert_eq!(r.class, Class::Premium);
    }

    #[test]
    fn bad_plan_rejected() {
        let site = Site { outside_prefix: "x".into(), ..Site::default() };
        assert!(NumberingPlan::new(&site, &Numbers::default(), &[]).is_err());
        let site = Site { area_code: "0a1".into(), ..Site::default() };
        assert!(NumberingPlan::new(&site, &Numbers::default(), &[]).is_err());
        let numbers = Numbers { restricted_prefixes: vec!["16x".into()], ..Numbers::default() };
        let e = NumberingPlan::new(&Site::default(), &numbers, &[]).unwrap_err();
        assert!(e.contains("numbers.restricted_prefixes"), "{e}");
    }

    /// Real Request-URI users from the public captures, classified with the default plan
    /// (the generated calls dial from extensions 1001-1006).
    #[test]
    fn request_uri_users_of_the_public_captures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/public");
        let site = Site { extensions: vec!["1000-1099".into()], ..Site::default() };
        let p = NumberingPlan::new(&site, &Numbers::default(), &[]).unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for f in [
            "gen-sipp-mixed-calls-udp.pcap",
            "sip-ipip-register-401-invite-403.pcap",
            "sip-invite-180-200-ack-register.pcap",
            "sip-t38-fax-calls-g711a-rtp.pcap",
        ] {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            let needle = b"INVITE sip:";
            let mut i = 0;
            while let Some(pos) = bytes[i..].windows(needle.len()).position(|w| w == needle) {
                let start = i + pos + needle.len();
                let end = bytes[start..].iter().position(|&b| b == b'@' || b == b' ').map_or(start, |e| start + e);
                let user = String::from_utf8_lossy(&bytes[start..end]).into_owned();
                let r = p.classify(&user, "1001");
                let value = (r.number_string(), r.class);
                seen.insert(user, value);
                i = end;
            }
        }
        let want = |u: &str, n: &str, cl: Class| assert_eq!(seen.get(u), Some(&(n.to_string(), cl)), "{u}");
        want("16800123", "16800123", Class::Premium);
        want("2001", "2001", Class::Local);
        want("+3908351673002", "003908351673002", Class::International);
        // Names without their host (cut at '@' above) and no [site].domains: never internal.
        want("francisco", "francisco", Class::SipUri);
        want("061963177", "61963177", Class::Local);
        want("unavailable", "unavailable", Class::SipUri);
        assert!(seen.len() >= 8, "{seen:?}");
    }

    proptest! {
        #[test]
        fn never_panics_and_is_deterministic(dialled in ".{0,40}", caller in ".{0,12}") {
            let p = plan();
            let a = p.classify(&dialled, &caller);
            let b = p.classify(&dialled, &caller);
            prop_assert_eq!(a, b);
            prop_assert!(a.number.len() <= dialled.len() + 2);
        }

        #[test]
        fn digit_strings_classify_consistently(
            d in prop_oneof!["[+0-9*#]{0,24}", "(\\+86|\\+|0086|00|0|017951|086|021|0021)?[0-9]{0,15}"]
        ) {
            let p = plan();
            let r = p.classify(&d, "8001");
            let n = r.number_string();
            prop_assert!(n.bytes().all(|b| b.is_ascii_digit() || b"+*#".contains(&b)));
            // The normalised number is a fixed point: classified again as a trunk leg
            // carries it (no outside prefix), it gives itself and the same class.
            let again = p.classify(&n, "trunk");
            prop_assert_eq!((again.number_string(), again.class), (n.clone(), r.class), "{}", d);
        }
    }
}
