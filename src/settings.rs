//! Settings shared by every subcommand: which config file, which database, read and
//! validated once. Config lookup order: `--config F`, then `config/callwarden.toml`, then
//! `/etc/callwarden/callwarden.toml`; with none found, the embedded defaults (the same
//! text as `config/callwarden.toml`, compiled in) are used. Relative paths in the config
//! (`[store].path`, `[recordings].dir`) are relative to the config file's folder, except
//! for the two places the folder would be wrong to write in:
//! - the embedded defaults are `config/callwarden.toml` of the repository, whose paths
//!   (`../callwarden.db`) point from `config/` to the repository's top: they are read as if
//!   that file were `./config/callwarden.toml`, so the database is `./callwarden.db` in
//!   the current directory (not `./../callwarden.db`);
//! - a config in `/etc/callwarden/` (the package's) has its relative paths under the
//!   service's state directory `/var/lib/callwarden` (the unit makes /etc read-only).

use anyhow::{anyhow, Context, Result};
use callwarden_core::config::{Config, ConfigError};
use std::path::{Path, PathBuf};

/// The default config, compiled in so the binary works with no files around it.
pub const EMBEDDED_CONFIG: &str = include_str!("../config/callwarden.toml");

/// Where the config came from, and what it says.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config: Config,
    /// The file read, or `None` for the embedded defaults.
    pub config_path: Option<PathBuf>,
    /// Folder that relative paths in the config are relative to.
    pub base_dir: PathBuf,
    pub db_path: PathBuf,
    pub recordings_dir: PathBuf,
    /// `--store postgres://...`: the read commands and `serve` ask the central store of
    /// all sites instead of `db_path` (None: the SQLite file).
    pub read_store: Option<String>,
}

/// Errors of a config text, each with file, line and key: printed one per line.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}: {}: {}", self.file, e.line, e.key, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Find the config file to use: the explicit one (must exist), else the defaults.
pub fn locate_config(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    ["config/callwarden.toml", "/etc/callwarden/callwarden.toml"].iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Read and validate a config file.
pub fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read config", path.display()))?;
    Config::parse(&text).map_err(|errors| anyhow!(ConfigErrors { file: path.display().to_string(), errors }))
}

/// The installed config's folder, and where its relative paths go instead.
const ETC_DIR: &str = "/etc/callwarden";
const STATE_DIR: &str = "/var/lib/callwarden";

/// The folder relative paths of a config at `config_path` are relative to (`None`: the
/// embedded config), and a prefix they are read under before joining it (see the module
/// doc): `(base, virtual folder)`.
fn path_base(config_path: Option<&Path>) -> (PathBuf, &'static str) {
    match config_path {
        None => (PathBuf::from("."), "config"),
        Some(p) => {
            let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
            if parent == Path::new(ETC_DIR) {
                (PathBuf::from(STATE_DIR), "")
            } else if parent.as_os_str().is_empty() {
                (PathBuf::from("."), "")
            } else {
                (parent, "")
            }
        }
    }
}

/// `base` joined with `virtual_dir/rel`, the `..` of `rel` taken lexically against
/// `virtual_dir` (which need not exist); an absolute `rel` is itself.
fn resolve(base: &Path, virtual_dir: &str, rel: &str) -> PathBuf {
    use std::path::Component;
    let rel = Path::new(rel);
    if rel.is_absolute() {
        return rel.to_path_buf();
    }
    let mut inside: Vec<Component<'_>> = Path::new(virtual_dir).components().collect();
    let mut up = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::ParentDir if inside.is_empty() => up.push(".."),
            Component::ParentDir => {
                inside.pop();
            }
            Component::CurDir => {}
            other => inside.push(other),
        }
    }
    let mut out = base.join(up);
    out.extend(inside);
    out
}

impl Settings {
    pub fn load(config: Option<&Path>, db: Option<&Path>) -> Result<Settings> {
        let config_path = locate_config(config);
        let cfg = match &config_path {
            Some(p) => load_config(p)?,
            None => Config::parse(EMBEDDED_CONFIG)
                .map_err(|errors| anyhow!(ConfigErrors { file: "<embedded config>".into(), errors }))?,
        };
        let (base_dir, virtual_dir) = path_base(config_path.as_deref());
        let db_path = match db {
            Some(p) => p.to_path_buf(),
            None => resolve(&base_dir, virtual_dir, &cfg.store.path),
        };
        let recordings_dir = resolve(&base_dir, virtual_dir, &cfg.recordings.dir);
        Ok(Settings { config: cfg, config_path, base_dir, db_path, recordings_dir, read_store: None })
    }
}

impl Settings {
    /// Commands that write the service's data (`replay`, `approve`, `recordings expire`)
    /// refuse to run as root over data another user owns: root-owned day folders, WAVs or
    /// database journals in `/var/lib/callwarden` would be files the daemon (user
    /// `callwarden`) can no longer write or expire. The error says how to run it instead.
    pub fn check_data_owner(&self, command: &str) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(()); // another user simply gets "permission denied" from the files
        }
        let owned = |p: &Path| std::fs::metadata(p).ok().map(|m| m.uid()).filter(|&uid| uid != 0);
        let db_dir = self.db_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        for p in [self.db_path.as_path(), self.recordings_dir.as_path(), db_dir] {
            if let Some(uid) = owned(p) {
                let user = user_name(uid).unwrap_or_else(|| uid.to_string());
                return Err(anyhow!(
                    "{}: owned by {user}; running `{command}` as root would leave root-owned files the \
                     service cannot write: run it as that user (sudo -u {user} callwarden {command} ...)",
                    p.display()
                ));
            }
        }
        Ok(())
    }
}

/// The login name of `uid` from the passwd database, if it has one.
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_puts_the_database_in_the_current_directory() {
        let (base, v) = path_base(None);
        assert_eq!(resolve(&base, v, "../callwarden.db"), Path::new("./callwarden.db"));
        assert_eq!(resolve(&base, v, "../recordings"), Path::new("./recordings"));
        // A path that stays inside config/ keeps it; one that climbs further keeps climbing.
        assert_eq!(resolve(&base, v, "x.db"), Path::new("./config/x.db"));
        assert_eq!(resolve(&base, v, "../../x.db"), Path::new("./../x.db"));
    }

    #[test]
    fn a_config_file_s_paths_are_relative_to_its_folder() {
        let (base, v) = path_base(Some(Path::new("/srv/site/conf/cw.toml")));
        assert_eq!(resolve(&base, v, "../callwarden.db"), Path::new("/srv/site/conf/../callwarden.db"));
        assert_eq!(resolve(&base, v, "data/cw.db"), Path::new("/srv/site/conf/data/cw.db"));
        assert_eq!(resolve(&base, v, "/var/x.db"), Path::new("/var/x.db"));
        let (base, v) = path_base(Some(Path::new("cw.toml")));
        assert_eq!(resolve(&base, v, "cw.db"), Path::new("./cw.db"));
    }

    #[test]
    fn the_installed_config_s_relative_paths_go_to_the_state_directory() {
        let (base, v) = path_base(Some(Path::new("/etc/callwarden/callwarden.toml")));
        assert_eq!(resolve(&base, v, "callwarden.db"), Path::new("/var/lib/callwarden/callwarden.db"));
        assert_eq!(resolve(&base, v, "recordings"), Path::new("/var/lib/callwarden/recordings"));
    }
}
