//! `callwarden serve`: the HTTP API and web page over an existing database (e.g. after
//! `replay`), without capture. Listens on `[api].listen` (or `--listen`), stops on Ctrl-C
//! or SIGTERM. Nothing is captured, so the live view is empty; the API writes only the
//! playback log (every audio fetch) and, for admins, approvals.

use super::Common;
use crate::api::{self, AppState};
use crate::settings::Settings;
use crate::store::reader::{open_error, Reader};
use anyhow::Context;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (overrides [api].listen), e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub fn run(a: Args, common: &Common) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(common.config.as_deref(), common.db.as_deref())?;
    // Fail now, with the file's name, rather than on every request.
    Reader::open(&settings.db_path).map_err(|e| open_error(&settings.db_path, e))?;
    let state = AppState::new(settings.db_path.clone(), &settings)?;
    let listen = a.listen.unwrap_or_else(|| settings.config.api.listen.clone());
    if settings.config.api.tokens.is_empty() && listen_is_loopback(&listen) {
        eprintln!(
            "callwarden: no [[api.token]] in the config: local mode, the API and page answer only clients on this \
             machine (loopback), as admin \"local\""
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        // `api::serve` refuses this too; saying it before "serving" keeps the output honest.
        if settings.config.api.tokens.is_empty() && !addr.ip().is_loopback() {
            anyhow::bail!("no [[api.token]] in the config: refusing to listen on {addr}; use a loopback address or configure tokens");
        }
        eprintln!("callwarden: serving {} on http://{addr}/", settings.db_path.display());
        api::serve(listener, state, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM on Unix (what systemd and `kill` send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Whether `listen` (as given) names a loopback address: only to choose what to say;
/// the bound address is what is checked.
fn listen_is_loopback(listen: &str) -> bool {
    listen.parse::<std::net::SocketAddr>().map_or(listen.starts_with("localhost:"), |a| a.ip().is_loopback())
}
