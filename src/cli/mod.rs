//! The command line: clap definitions and dispatch, one file per subcommand. Raw
//! arguments become validated `Settings` here, then the subcommand runs. Exit codes:
//! 0 ok, 1 the job failed (bad input file, I/O), 2 bad usage or an invalid config.

mod approve;
mod callbacks;
mod calls;
mod config_cmd;
mod filter;
mod recordings;
pub mod register;
mod replay;
mod run;
mod serve;
mod stats;
mod violations;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "callwarden",
    version,
    about = "Watches a PBX's SIP and RTP, keeps call records, enforces telephone rules"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Config file (default: config/callwarden.toml, then /etc/callwarden/callwarden.toml,
    /// then the embedded defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// SQLite database (overrides [store].path).
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: live capture and HEP, store, alerts, recordings, API and web page, /metrics; until SIGTERM.
    Run(run::Args),
    /// Run the pipeline over capture files (pcap, pcapng) and store the calls.
    Replay(replay::Args),
    /// List call records.
    Calls(calls::Args),
    /// Call statistics by extension or day.
    Stats(stats::Args),
    /// List violations.
    Violations(violations::Args),
    /// Check a config file.
    Config(config_cmd::Args),
    /// Register, list or revoke prior approvals for restricted classes (OUT-2).
    Approve(approve::Args),
    /// Export a month's long-distance register as CSV (OUT-3).
    Register(register::Args),
    /// Monthly call-back report: calls made vs planned, answered rate (STA-3).
    Callbacks(callbacks::Args),
    /// Recordings: list, play, export, verify, sample, log, expire (REC-1..4).
    Recordings(recordings::Args),
    /// Serve the HTTP API and web page over an existing database (no capture).
    Serve(serve::Args),
}

/// Parse arguments, run, map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(if matches!(cli.command, Command::Run(_)) { "info" } else { "warn" });
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Calls(a) => calls::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Violations(a) => violations::run(a),
        Command::Config(a) => config_cmd::run(a),
        Command::Approve(a) => approve::run(a),
        Command::Register(a) => register::run(a),
        Command::Callbacks(a) => callbacks::run(a),
        Command::Recordings(a) => recordings::run(a),
        Command::Serve(a) => serve::run(a),
    };
    match result {
        Ok(code) => code,
        // `callwarden calls | head`: the reader went away, which is not our error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line per cause: what was wrong and where.
            eprintln!("callwarden: {e:#}");
            if e.downcast_ref::<crate::settings::ConfigErrors>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Logs go to stderr, journald-friendly (no colours when not a terminal); level from
/// `RUST_LOG` (default `warn` for commands; the daemon raises it to `info`). Under
/// systemd (`JOURNAL_STREAM` set) the journal stamps each line, so ours are left out.
fn init_logging(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}
