//! Shared by the tests that put real peers on loopback through scripts/peers (the B2BUA,
//! the media relay): the repository root, the loopback lock every such test holds
//! (/tmp/callwarden-lo.lock, flock(2), as tests/daemon.rs), and running a peer script with
//! a time bound.
#![allow(dead_code, reason = "each test file uses a different part of this module")]

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared loopback lock, held until the returned file is dropped.
pub fn lo_lock() -> File {
    let f = File::options().create(true).append(true).open("/tmp/callwarden-lo.lock").expect("lock file");
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock /tmp/callwarden-lo.lock");
    f
}

/// `scripts/peers/SCRIPT -d WORK` under `timeout 150`, with `env`; panics with its output
/// unless it succeeded.
pub fn peer_script(script: &str, work: &Path, env: &[(&str, &str)]) {
    let out = Command::new("timeout")
        .args(["150", "bash"])
        .arg(repo().join("scripts/peers").join(script))
        .arg("-d")
        .arg(work)
        .envs(env.iter().copied())
        .output()
        .expect("run the peer script");
    assert!(
        out.status.success(),
        "{script}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
