//! The command line: clap definitions and dispatch, one file per subcommand. Raw
//! arguments become validated `Settings` here, then the subcommand runs. Exit codes:
//! 0 ok, 1 the job failed (bad input file, I/O), 2 bad usage or an invalid config.

mod approve;
mod callbacks;
mod calls;
mod config_cmd;
mod filter;
mod generate;
mod progress;
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
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes, before or after its name (`callwarden --db X calls`
/// and `callwarden calls --db X`): defined once here, `global` hands them down.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Config file (default: config/callwarden.toml, then /etc/callwarden/callwarden.toml,
    /// then the embedded defaults).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Config and database (before or after the command)"
    )]
    pub config: Option<PathBuf>,
    /// SQLite database (overrides [store].path; relative paths in a config are relative
    /// to its folder, ./callwarden.db with the embedded defaults, /var/lib/callwarden for
    /// a config in /etc/callwarden).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Config and database (before or after the command)"
    )]
    pub db: Option<PathBuf>,
    /// Read the company's central store instead of the SQLite database:
    /// postgres://user@host/db (password from PGPASSWORD or [store] central_password_file;
    /// [store] central's URL reads its replica [store] central_read when one is set).
    /// For `serve` and the read commands (calls, stats, violations, register, callbacks,
    /// recordings list|log).
    #[arg(long, global = true, value_name = "URL", help_heading = "Config and database (before or after the command)")]
    pub store: Option<String>,
}

/// `Settings::load` with the common options (`--store` included: `main` lets it through
/// only for the commands that read).
pub fn load_settings(common: &Common) -> anyhow::Result<crate::settings::Settings> {
    let mut settings = crate::settings::Settings::load(common.config.as_deref(), common.db.as_deref())?;
    settings.read_store = common.store.as_deref().map(str::trim).filter(|u| !u.is_empty()).map(str::to_string);
    Ok(settings)
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: live capture and HEP, store, alerts, recordings, API and web page, /metrics; until SIGTERM.
    Run(run::Args),
    /// Run the pipeline over capture files (pcap, pcapng) and store the calls.
    Replay(replay::Args),
    /// List call records.
    ///
    /// Direction, from [site].extensions (the site's own extensions): `internal` (both
    /// ends ours), `outbound` (ours called outside), `inbound` (outside called ours),
    /// `transit` (neither end ours: a call that enters and leaves through the PBX, such as a
    /// trunk-to-trunk forward, or extensions missing from [site].extensions). No rule
    /// applies to a transit call. See docs/rules.md.
    Calls(calls::Args),
    /// Call statistics per extension, group, day or month (STA-2, ANS, DUR, OUT-6).
    ///
    /// One row per `--by` value over the calls the filters select: calls (inbound,
    /// outbound, internal), answered, missed, answered within the group's max rings,
    /// rings before answer (0/1/2/3/4/5+), talk time (mean, p50, p90, max), effective and
    /// long calls, violations per rule, cost; `--json` for every figure.
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
    /// Write shell completions or man pages (for packaging: scripts/build-deb).
    #[command(hide = true)]
    Generate(generate::Args),
}

/// Parse arguments, run, map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Calls(_)
            | Command::Stats(_)
            | Command::Violations(_)
            | Command::Register(_)
            | Command::Callbacks(_)
            | Command::Config(_)
    ) {
        default_sigpipe();
    }
    init_logging(if matches!(cli.command, Command::Run(_)) { "info" } else { "warn" });
    let reads = match &cli.command {
        Command::Calls(_)
        | Command::Stats(_)
        | Command::Violations(_)
        | Command::Register(_)
        | Command::Callbacks(_)
        | Command::Serve(_)
        // Approvals made centrally: registered in the central store, copied by the sites.
        | Command::Approve(_) => true,
        Command::Recordings(r) => r.reads_only(),
        _ => false,
    };
    if cli.common.store.is_some() && !reads {
        eprintln!(
            "callwarden: --store: only serve, approve and the read commands (calls, stats, violations, register, \
             callbacks, recordings list|log) use the central store"
        );
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Run(a) => run::run(a, &cli.common),
        Command::Replay(a) => replay::run(a, &cli.common),
        Command::Calls(a) => calls::run(a, &cli.common),
        Command::Stats(a) => stats::run(a, &cli.common),
        Command::Violations(a) => violations::run(a, &cli.common),
        Command::Config(a) => config_cmd::run(a, &cli.common),
        Command::Approve(a) => approve::run(a, &cli.common),
        Command::Register(a) => register::run(a, &cli.common),
        Command::Callbacks(a) => callbacks::run(a, &cli.common),
        Command::Recordings(a) => recordings::run(a, &cli.common),
        Command::Serve(a) => serve::run(a, &cli.common),
        Command::Generate(a) => generate::run(a),
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

/// `callwarden violations --json | head`: the reader went away; end quietly, as `cat`
/// does, by the default SIGPIPE action (Rust ignores SIGPIPE, so every later `println!`
/// would panic with "Broken pipe"). Only for the commands that read the store and print:
/// the daemon, `serve`, `replay` (webhooks) and `recordings` (files it deletes or writes)
/// keep SIGPIPE ignored and get EPIPE as an error (handled in `main`).
fn default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
