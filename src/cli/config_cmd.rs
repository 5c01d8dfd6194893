//! `callwarden config check [FILE]`: validate a config file; every error with its key
//! and line; exit 2 when it is invalid.

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

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let _ = a;
    todo!("store helper")
}
