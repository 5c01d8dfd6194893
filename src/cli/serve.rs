//! `callwarden serve`: the HTTP API and web page over an existing database (e.g. after
//! `replay`), without capture. Listens on `[api].listen` (or `--listen`), stops on Ctrl-C
//! or SIGTERM. Nothing is captured, so the live view is empty; the API writes only the
//! playback log (every audio fetch) and, for admins, approvals. The server is the
//! daemon's (`daemon::serve`).

use super::Common;
use crate::daemon;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (overrides [api].listen), e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = super::load_settings(common)?;
    let listen = a.listen.unwrap_or_else(|| settings.config.api.listen.clone());
    daemon::serve(settings, &listen)?;
    Ok(ExitCode::SUCCESS)
}
