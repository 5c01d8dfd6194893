//! Audio of a recording that stays at its site, for the central `serve --store
//! postgres://...`: fetched from the site's own API (`[[api.site]]`: its URL and a file
//! with one of its auditor tokens), or read from the site's recordings folder where it is
//! mounted here (`[[api.site]] dir`), checked against the SHA-256 the central store holds
//! for it, and only then served. The site logs an API fetch in its own playback log (as
//! the token's name); the central API logs who listened centrally.
//! May use: ureq (blocking; called from a blocking task), sha2, the config.
//! Invariants: bytes whose hash differs from the stored one are never served; a recording
//! without a stored hash is refused; a path from the central store is read only inside
//! the site's mounted folder (a site's row cannot point the central API at other files); a site not configured, unreachable or refusing is a
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
    #[error("site {site:?}'s recording {id}: {why}")]
    Folder { site: String, id: String, why: String },
}

/// How the central API gets at a site's recordings.
#[derive(Clone, Debug)]
enum Source {
    /// The site's API and a file with one of its auditor tokens.
    Api { url: String, token_file: PathBuf },
    /// The site's recordings folder, mounted here.
    Dir(PathBuf),
}

/// The sites this central API can fetch from.
#[derive(Clone, Debug, Default)]
pub struct SiteAudio {
    sites: HashMap<String, Source>,
}

impl SiteAudio {
    /// From `[[api.site]]`, token files relative to `base`.
    pub fn new(sites: &[SiteApi], base: &Path) -> SiteAudio {
        SiteAudio {
            sites: sites
                .iter()
                .map(|s| {
                    let source = if s.dir.trim().is_empty() {
                        Source::Api {
                            url: s.url.trim_end_matches('/').to_string(),
                            token_file: base.join(s.token_file.trim()),
                        }
                    } else {
                        Source::Dir(base.join(s.dir.trim()))
                    };
                    (s.name.trim().to_string(), source)
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
        let (base, token_file) = match self.sites.get(site) {
            Some(Source::Api { url, token_file }) => (url, token_file),
            _ => return Err(FetchError::NoSite(site.to_string())),
        };
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

    /// The file at `rel` (the recording's path in the central store) inside `dir`, the
    /// site's mounted recordings folder: a relative path of plain names only, and once
    /// resolved (symbolic links followed) still inside the folder.
    fn read_inside(site: &str, id: &str, dir: &Path, rel: &str) -> Result<Vec<u8>, FetchError> {
        let bad = |why: String| FetchError::Folder { site: site.into(), id: id.into(), why };
        let rel_path = Path::new(rel);
        if rel.is_empty() || !rel_path.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
            return Err(bad(format!("{rel:?} is not a path inside the recordings folder")));
        }
        let root = dir.canonicalize().map_err(|e| bad(format!("{}: {e}", dir.display())))?;
        let file = root.join(rel_path).canonicalize().map_err(|e| bad(format!("{rel}: {e}")))?;
        if !file.starts_with(&root) {
            return Err(bad(format!("{rel:?} leads outside {}", root.display())));
        }
        let f = std::fs::File::open(&file).map_err(|e| bad(format!("{}: {e}", file.display())))?;
        let mut bytes = Vec::new();
        f.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(|e| bad(format!("{}: {e}", file.display())))?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(bad(format!("larger than {MAX_BYTES} bytes")));
        }
        Ok(bytes)
    }

    /// Recording `id` of `site` (at `path` in its recordings folder), its bytes checked
    /// against `sha256` (lower-case hex).
    pub fn fetch(&self, site: &str, id: &str, path: &str, sha256: Option<&str>) -> Result<Vec<u8>, FetchError> {
        let want = sha256.filter(|h| !h.is_empty()).ok_or_else(|| FetchError::NoHash(id.to_string()))?;
        let bytes = match self.sites.get(site) {
            Some(Source::Dir(dir)) => Self::read_inside(site, id, dir, path)?,
            // The id is ours (a hex recording id from the store), but encode it anyway: a
            // path is built from it.
            _ => self.get(site, id, &format!("/api/recordings/{}/audio", encode(id)), MAX_BYTES)?,
        };
        let got = hex(&Sha256::digest(&bytes));
        if !got.eq_ignore_ascii_case(want) {
            return Err(FetchError::Altered { site: site.into(), id: id.into(), want: want.into(), got });
        }
        Ok(bytes)
    }

    /// The waveform peaks of recording `id` as its site computes them (`n` buckets): the
    /// site checks the file against its stored hash before it reads it, and answers
    /// 409 when it differs (passed on as `Refused`). The JSON as the site sent it.
    /// From a mounted folder the peaks are made here, of the bytes the hash check passed.
    pub fn peaks(
        &self,
        site: &str,
        id: &str,
        path: &str,
        n: usize,
        sha256: Option<&str>,
    ) -> Result<Vec<u8>, FetchError> {
        sha256.filter(|h| !h.is_empty()).ok_or_else(|| FetchError::NoHash(id.to_string()))?;
        if let Some(Source::Dir(_)) = self.sites.get(site) {
            let bytes = self.fetch(site, id, path, sha256)?;
            let bad = |why: String| FetchError::Folder { site: site.into(), id: id.into(), why };
            let peaks = super::recordings::peaks_from(std::io::Cursor::new(bytes), id, n).map_err(bad)?;
            return serde_json::to_vec(&peaks).map_err(|e| bad(e.to_string()));
        }
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
            &[SiteApi {
                name: "b".into(),
                url: "http://127.0.0.1:1/".into(),
                token_file: "/nonexistent".into(),
                dir: String::new(),
            }],
            Path::new("/"),
        );
        assert_eq!(audio.fetch("b", "r1", "x.wav", None), Err(FetchError::NoHash("r1".into())));
        assert_eq!(audio.fetch("c", "r1", "x.wav", Some("ab")), Err(FetchError::NoSite("c".into())));
        assert!(matches!(audio.fetch("b", "r1", "x.wav", Some("ab")), Err(FetchError::Token { .. })));
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn a_mounted_folder_is_read_inside_itself_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rec");
        std::fs::create_dir_all(dir.join("2026/03")).unwrap();
        // A one-second 8 kHz mono 16-bit WAV.
        let wav = dir.join("2026/03/r1.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).unwrap();
        (0..8000).for_each(|i| w.write_sample(((i % 100) * 100) as i16).unwrap());
        w.finalize().unwrap();
        std::fs::write(tmp.path().join("secret"), b"not a recording").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), dir.join("2026/03/link.wav")).unwrap();
        let bytes = std::fs::read(&wav).unwrap();
        let sha = hex(&Sha256::digest(&bytes));
        let secret_sha = hex(&Sha256::digest(b"not a recording"));
        let audio =
            SiteAudio::new(&[SiteApi { name: "b".into(), dir: "rec".into(), ..SiteApi::default() }], tmp.path());
        assert_eq!(audio.fetch("b", "r1", "2026/03/r1.wav", Some(&sha)).unwrap(), bytes);
        assert!(matches!(audio.fetch("b", "r1", "2026/03/r1.wav", Some(&secret_sha)), Err(FetchError::Altered { .. })));
        // A path from the store that leads out of the folder is never read, whatever hash
        // the row claims.
        for evil in ["../secret", "/etc/passwd", "2026/03/link.wav", "", "2026/../../secret"] {
            assert!(
                matches!(audio.fetch("b", "r1", evil, Some(&secret_sha)), Err(FetchError::Folder { .. })),
                "{evil:?}"
            );
        }
        let peaks: serde_json::Value =
            serde_json::from_slice(&audio.peaks("b", "r1", "2026/03/r1.wav", 10, Some(&sha)).unwrap()).unwrap();
        assert_eq!(peaks["frames"], 8000);
        assert_eq!(peaks["peaks"][0].as_array().map(Vec::len), Some(10));
    }
}
