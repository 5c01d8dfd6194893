//! The classes of dialled numbers (internal, mobile, premium, ...): the vocabulary both
//! `config` (class names in `may_dial` and approvals) and `policy` (classification)
//! speak. It sits below both so that config never imports policy.
//! May use: nothing of this crate. Invariant: `as_str` and `parse` are inverse, and the
//! names are those `calls --json` prints.

use serde::Serialize;

/// The class of a dialled number. `as_str` gives the names `calls --json` prints.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Internal,
    Emergency,
    Premium,
    TollFree,
    HkMacau,
    Taiwan,
    International,
    Mobile,
    LongDistance,
    Local,
    /// A SIP URI whose user part is a name, not a number (`sip:alice@example.org`), at a
    /// domain that is not one of `[site].domains`: a call out over the internet.
    SipUri,
}

impl Class {
    pub const ALL: [Class; 11] = [
        Class::Internal,
        Class::Emergency,
        Class::Premium,
        Class::TollFree,
        Class::HkMacau,
        Class::Taiwan,
        Class::International,
        Class::Mobile,
        Class::LongDistance,
        Class::Local,
        Class::SipUri,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Internal => "internal",
            Class::Emergency => "emergency",
            Class::Premium => "premium",
            Class::TollFree => "toll-free",
            Class::HkMacau => "hk-macau",
            Class::Taiwan => "taiwan",
            Class::International => "international",
            Class::Mobile => "mobile",
            Class::LongDistance => "long-distance",
            Class::Local => "local",
            Class::SipUri => "sip-uri",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }
}
