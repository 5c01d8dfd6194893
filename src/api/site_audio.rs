//! Audio of a recording that stays at its site, for the central `serve --store
//! postgres://...`: fetched from the site's own API (`[[api.site]]`: its URL and a file
//! with one of its auditor tokens), checked against the SHA-256 the central store holds
//! for it, and only then served. The site logs the fetch in its own playback log (as the
//! token's name); the central API logs who listened centrally.
//! May use: ureq (blocking; called from a blocking task), sha2, the config.
//! Invariants: bytes whose hash differs from the stored one are never served; a recording
//! without a stored hash is refused; a site not configured, unreachable or refusing is a
//! clear error naming the site, never a hang (bounded by `TIMEOUT`) and never a panic;
//! tokens are read from their files at each fetch (rotated without a restart) and never
//! logged.

use callwarden_core::config::SiteApi;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest a fetch may take, connection to last byte.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The largest recording fetched (a WAV of ~7 h of 8 kHz stereo 16-bit; the recorder
/// splits nothing, so this bounds what a misbehaving site can make the central buffer).
pub const MAX_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("site {0:?} has no [[api.site]] entry here: its recordings cannot be played centrally")]
    NoSite(String),
    #[error("recording {0} has no stored SHA-256: it cannot be checked, so it is not served")]
    NoHash(String),
    #[error("site {site:?} cannot be reached: {why}")]
    Unreachable { site: String, why: String },
    #[error("site {site:?} answered {status} for recording {id}")]
    Refused { site: String, id: String, status: u16 },
    #[error("site {site:?} sent recording {id} with SHA-256 {got}, but the central store holds {want}: not served")]
    Altered { site: String, id: String, want: String, got: String },
    #[error("token file for site {site:?}: {why}")]
    Token { site: String, why: String },
}

/// The sites this central API can fetch from.
#[derive(Clone, Debug, Default)]
pub struct SiteAudio {
    sites: HashMap<String, (String, PathBuf)>,
}

impl SiteAudio {
    /// From `[[api.site]]`, token files relative to `base`.
    pub fn new(sites: &[SiteApi], base: &Path) -> SiteAudio {
        SiteAudio {
            sites: sites
                .iter()
                .map(|s| {
                    (
                        s.name.trim().to_string(),
                        (s.url.trim_end_matches('/').to_string(), base.join(s.token_file.trim())),
                    )
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// GET `path` (already encoded) from `site`'s API with its token: the body, at most
    /// `max` bytes, of a 200 answer.
    fn get(&self, site: &str, id: &str, path: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let (base, token_file) = self.sites.get(site).ok_or_else(|| FetchError::NoSite(site.to_string()))?;
        let token = std::fs::read_to_string(token_file)
            .map_err(|e| FetchError::Token { site: site.into(), why: format!("{}: {e}", token_file.display()) })?;
        let token = token.trim();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .user_agent(concat!("callwarden-central/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let url = format!("{base}{path}");
        let unreachable = |why: String| FetchError::Unreachable { site: site.into(), why };
        let mut resp = agent
            .get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(FetchError::Refused { site: site.into(), id: id.into(), status });
        }
        let mut bytes = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| unreachable(format!("reading recording {id}: {e}")))?;
        if bytes.len() as u64 > max {
            return Err(unreachable(format!("recording {id}: more than {max} bytes")));
        }
        Ok(bytes)
    }

    /// Recording `id` of `site`, its bytes checked against `sha256` (lower-case hex).
    pub fn fetch(&self, site: &str, id: &str, sha256: Option<&str>) -> Result<Vec<u8>, FetchError> {
        let want = sha256.filter(|h| !h.is_empty()).ok_or_else(|| FetchError::NoHash(id.to_string()))?;
        // The id is ours (a hex recording id from the store), but encode it anyway: a
        // path is built from it.
        let bytes = self.get(site, id, &format!("/api/recordings/{}/audio", encode(id)), MAX_BYTES)?;
        let got = hex(&Sha256::digest(&bytes));
        if !got.eq_ignore_ascii_case(want) {
            return Err(FetchError::Altered { site: site.into(), id: id.into(), want: want.into(), got });
        }
        Ok(bytes)
    }

    /// The waveform peaks of recording `id` as its site computes them (`n` buckets): the
    /// site checks the file against its stored hash before it reads it, and answers
    /// 409 when it differs (passed on as `Refused`). The JSON as the site sent it.
    pub fn peaks(&self, site: &str, id: &str, n: usize, sha256: Option<&str>) -> Result<Vec<u8>, FetchError> {
        sha256.filter(|h| !h.is_empty()).ok_or_else(|| FetchError::NoHash(id.to_string()))?;
        self.get(site, id, &format!("/api/recordings/{}/peaks?n={n}", encode(id)), MAX_PEAKS_BYTES)
    }
}

/// The largest peaks answer taken from a site (the page asks for 800 buckets: ~20 KB).
const MAX_PEAKS_BYTES: u64 = 4 << 20;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Percent-encode everything but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_it_cannot_check_or_reach() {
        let audio = SiteAudio::new(
            &[SiteApi { name: "b".into(), url: "http://127.0.0.1:1/".into(), token_file: "/nonexistent".into() }],
            Path::new("/"),
        );
        assert_eq!(audio.fetch("b", "r1", None), Err(FetchError::NoHash("r1".into())));
        assert_eq!(audio.fetch("c", "r1", Some("ab")), Err(FetchError::NoSite("c".into())));
        assert!(matches!(audio.fetch("b", "r1", Some("ab")), Err(FetchError::Token { .. })));
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
