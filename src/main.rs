//! callwarden: the daemon and its command line. `main` parses arguments with clap, turns
//! them into validated settings, runs one subcommand and maps its outcome to an exit code
//! (0 ok, 1 failure, 2 bad usage or config). All I/O lives in this crate; the engine is in
//! `callwarden-core`.

mod capture;
mod cli;
mod driver;
mod settings;
mod sink;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
