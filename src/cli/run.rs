//! `callwarden run`: the daemon (see `crate::daemon`). Loads and validates the settings
//! like every subcommand, then runs until SIGTERM/SIGINT. Exit 0 after a clean shutdown;
//! 1 with one line when it cannot start (interface, port, database) or could not store
//! what it captured; 2 for an invalid config.

use super::Common;
use crate::daemon::{self, Extras};
use crate::settings::Settings;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(a.common.config.as_deref(), a.common.db.as_deref())?;
    match &settings.config_path {
        Some(p) => tracing::info!(config = %p.display(), "starting"),
        None => tracing::info!("starting with the embedded default config"),
    }
    // THE place where sinks and routes beyond the built-in ones are added (the store,
    // alerts, metrics and log sinks and /metrics + /healthz are built in `daemon::run`):
    // the recorder sink and the API's events sink go into `sinks` (they run on the
    // pipeline thread, after the built-in ones, in this order), the API's router into
    // `router` (merged beside /metrics and /healthz on [api].listen), and `on_metrics`
    // hands the metrics handle to whoever needs it (e.g. `AppState::with_metrics`).
    let extras = Extras { sinks: Vec::new(), router: None, on_metrics: None };
    daemon::run(settings, extras)?;
    Ok(ExitCode::SUCCESS)
}
