//! `callwarden config check [FILE]`: validate a config file; every error with its key
//! and line; exit 2 when it is invalid.

use super::Common;
use crate::settings::{locate_config, EMBEDDED_CONFIG};
use callwarden_core::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Validate a config file (default: the one `run` would use).
    Check { file: Option<PathBuf> },
}

/// What `check` prints: `FILE: ok`, or one `FILE:LINE: KEY: message` per error.
pub fn check_text(name: &str, text: &str) -> Result<String, Vec<String>> {
    match Config::parse(text) {
        Ok(_) => Ok(format!("{name}: ok")),
        Err(errors) => Err(errors.iter().map(|e| format!("{name}:{}: {}: {}", e.line, e.key, e.message)).collect()),
    }
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let Action::Check { file } = a.action;
    // `--config` given to the top level names the file too when FILE is left out.
    let (name, text) = match file.or_else(|| locate_config(common.config.as_deref())) {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("{}: cannot read config: {e}", path.display()))?;
            (path.display().to_string(), text)
        }
        None => ("<embedded config>".to_string(), EMBEDDED_CONFIG.to_string()),
    };
    match check_text(&name, &text) {
        Ok(line) => {
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Err(lines) => {
            for l in lines {
                eprintln!("{l}");
            }
            Ok(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_output_lines() {
        assert_eq!(check_text("a.toml", EMBEDDED_CONFIG), Ok("a.toml: ok".to_string()));
        let errs = check_text("b.toml", "[ringing]\ncycle_ms = 0\n\n[api]\nlisten = \"x\"\n").unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with("b.toml:2: ringing.cycle_ms: "), "{errs:?}");
        assert!(errs[1].starts_with("b.toml:5: api.listen: "), "{errs:?}");
    }
}
