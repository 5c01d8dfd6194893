//! The repository's shell scripts find the release binary wherever cargo puts it: with
//! `CARGO_TARGET_DIR` set to a temporary folder, `scripts/target-dir` names that folder and
//! the benchmark scripts look for `<that>/release/callwarden` (they refuse with its path when
//! it is not there). No release build is made here: CI time stays small; `scripts/run` and
//! `scripts/build-deb` take the binary from the same `scripts/target-dir`. And what
//! `scripts/build-deb` packages from the binary: man pages and shell completions.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a script of scripts/ with CARGO_TARGET_DIR set; (exit code, stdout, stderr).
fn script(name: &str, args: &[&str], target: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(repo().join("scripts").join(name))
        .args(args)
        .env("CARGO_TARGET_DIR", target)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the script runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn target_dir_follows_cargo_target_dir() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (code, out, err) = script("target-dir", &[], tmp.path());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim_end(), tmp.path().to_str().expect("utf-8 temp path"));
}

#[test]
fn target_dir_without_override_is_the_workspace_target() {
    let out = Command::new(repo().join("scripts/target-dir"))
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("the script runs");
    // The test binary itself lives under cargo's target dir: whatever it is, the script
    // must name the same folder cargo used for this build.
    let exe = std::env::current_exe().expect("test exe path");
    let said = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    assert!(out.status.success());
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        assert!(exe.starts_with(&said), "{} not under {said}", exe.display());
    }
}

#[test]
fn bench_scripts_look_for_the_binary_under_cargo_target_dir() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let want = tmp.path().join("release/callwarden");
    let want = want.to_str().expect("utf-8 temp path");
    // Each stops at its binary check, before it starts anything (no daemon, no capture).
    for (name, args) in
        [("bench-hep", &["-s", "1"][..]), ("bench-load", &["-s", "1"][..]), ("bench-record", &["--no-build"][..])]
    {
        let (code, _, err) = script(name, args, tmp.path());
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(err.contains(want), "{name} did not look for {want}: {err}");
    }
}

#[test]
fn generate_writes_man_pages_and_completions_from_the_cli() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let bin = env!("CARGO_BIN_EXE_callwarden");
    for what in ["man", "completions"] {
        let out = Command::new(bin).args(["generate", what]).arg(tmp.path().join(what)).output().expect("runs");
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let read = |rel: &str| std::fs::read_to_string(tmp.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let top = read("man/callwarden.1");
    assert!(top.contains(".TH callwarden 1") && top.contains("callwarden\\-calls"), "{top}");
    let calls = read("man/callwarden-calls.1");
    // The global options are on every subcommand's page, and the help text is there.
    assert!(calls.contains("\\-\\-db") && calls.contains("\\-\\-group") && calls.contains("transit"), "{calls}");
    assert!(!tmp.path().join("man/callwarden-generate.1").exists(), "the hidden command has no page");
    assert!(!tmp.path().join("man/callwarden-help.1").exists());
    assert!(read("completions/callwarden.bash").contains("--group"));
    assert!(read("completions/_callwarden").contains("#compdef callwarden"));
    assert!(read("completions/callwarden.fish").contains("complete -c callwarden"));
}
