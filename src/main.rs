//! callwarden: the daemon and its command line. See the library (`src/lib.rs`) for the
//! layout; `main` only maps the outcome of `cli::main` to the process's exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    callwarden::cli::main()
}
