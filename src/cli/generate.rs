//! `callwarden generate completions|man DIR` (hidden): shell completions (bash, zsh, fish)
//! and man pages written from the clap definition itself, so they never drift from the
//! options the binary takes. `scripts/build-deb` runs it and ships the files.
//! May use: the clap `Cli` definition, clap_complete, clap_mangen, the file system (only
//! DIR). Invariants: writes only under DIR; one man page for the command and one per
//! subcommand (`callwarden-calls.1`, ...), named as `man callwarden-calls` finds them.

use super::Cli;
use anyhow::Context;
use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// callwarden.bash, _callwarden (zsh), callwarden.fish into DIR.
    Completions { dir: PathBuf },
    /// callwarden.1 and callwarden-SUBCOMMAND.1 into DIR.
    Man { dir: PathBuf },
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let written = match &a.what {
        What::Completions { dir } => completions(dir)?,
        What::Man { dir } => man(dir)?,
    };
    for f in written {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the folder", dir.display()))
}

fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use clap_complete::{generate_to, Shell};
    create(dir)?;
    let mut cmd = Cli::command();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|sh| {
            generate_to(sh, &mut cmd, "callwarden", dir)
                .with_context(|| format!("{}: cannot write the {sh} completions", dir.display()))
        })
        .collect()
}

fn man(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    create(dir)?;
    let mut cmd = Cli::command();
    // Built, so the global options (--config, --db) are part of every subcommand's page.
    cmd.build();
    let mut out = Vec::new();
    out.push(page(dir, "callwarden", cmd.clone())?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("callwarden-{}", sub.get_name());
        // Title and NAME `callwarden-calls`, synopsis `callwarden calls [OPTIONS]`.
        let sub = sub.clone().display_name(&name).bin_name(format!("callwarden {}", sub.get_name()));
        out.push(page(dir, &name, sub)?);
    }
    Ok(out)
}

fn page(dir: &Path, name: &str, cmd: clap::Command) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf).with_context(|| format!("{name}: cannot render the man page"))?;
    std::fs::write(&path, buf).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}
