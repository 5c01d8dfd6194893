//! Settings shared by every subcommand: which config file, which database, read and
//! validated once. Config lookup order: `--config F`, then `config/callwarden.toml`, then
//! `/etc/callwarden/callwarden.toml`; with none found, the embedded defaults (the same
//! text as `config/callwarden.toml`, compiled in) are used. Relative paths in the config
//! (`[store].path`, `[recordings].dir`) are relative to the config file's folder.

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

impl Settings {
    pub fn load(config: Option<&Path>, db: Option<&Path>) -> Result<Settings> {
        let config_path = locate_config(config);
        let (cfg, base_dir) = match &config_path {
            Some(p) => {
                let cfg = load_config(p)?;
                let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (cfg, if base.as_os_str().is_empty() { PathBuf::from(".") } else { base })
            }
            None => {
                let cfg = Config::parse(EMBEDDED_CONFIG)
                    .map_err(|errors| anyhow!(ConfigErrors { file: "<embedded config>".into(), errors }))?;
                (cfg, PathBuf::from("."))
            }
        };
        let db_path = match db {
            Some(p) => p.to_path_buf(),
            None => base_dir.join(&cfg.store.path),
        };
        let recordings_dir = base_dir.join(&cfg.recordings.dir);
        Ok(Settings { config: cfg, config_path, base_dir, db_path, recordings_dir })
    }
}
