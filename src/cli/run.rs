//! `callwarden run`: the daemon (see `crate::daemon`). Loads and validates the settings
//! like every subcommand, then runs until SIGTERM/SIGINT. Exit 0 after a clean shutdown;
//! 1 with one line when it cannot start (interface, port, database) or could not store
//! what it captured; 2 for an invalid config.

use super::Common;
use crate::daemon;
use crate::settings::Settings;
use std::process::ExitCode;

/// `run` has only the options every command takes (`--config`, `--db`).
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(common.config.as_deref(), common.db.as_deref())?;
    match &settings.config_path {
        Some(p) => tracing::info!(config = %p.display(), "starting"),
        None => tracing::info!("starting with the embedded default config"),
    }
    // Every sink (store, alerts, recorder, metrics, log, the API's live events) and the
    // HTTP server (API, web page, /metrics, /healthz) are set up in `daemon::run`.
    daemon::run(settings)?;
    Ok(ExitCode::SUCCESS)
}
