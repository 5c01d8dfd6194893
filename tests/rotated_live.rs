//! A rotated capture set made the way a capture box makes one: tcpdump on `lo` rotating
//! every second (`-G 1`) while SIPp places the standard mix of calls (rings of several
//! seconds, so most calls span several files). The set replayed as a folder, file by file
//! in separate runs, and through `replay --follow` gives exactly the records of one file
//! holding the same packets (`mergecap` of the set). Needs root (tcpdump on lo), sipp and
//! mergecap (scripts/install-test-deps installs them); fails, never skips.

mod peers_support;

use peers_support::{lo_lock, repo};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_callwarden");
const BPF: &str = "host 127.0.0.1 and udp";

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(root: &Path) -> Site {
        let dir = tempfile::tempdir_in(root).unwrap();
        std::fs::write(
            dir.path().join("cw.toml"),
            "[site]\nextensions = [\"1000-2999\"]\n[store]\npath = \"cw.db\"\n[recordings]\ndir = \"rec\"\n",
        )
        .unwrap();
        Site { dir }
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("cw.toml")
    }
    fn replay(&self, files: &[&Path]) {
        let out =
            Command::new(BIN).args(["replay", "--quiet", "--config"]).arg(self.config()).args(files).output().unwrap();
        assert!(out.status.success(), "replay {files:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    /// `calls --json`, each call's fields as printed, sorted by Call-ID.
    fn calls(&self) -> Vec<Value> {
        let out = Command::new(BIN).args(["calls", "--json", "--config"]).arg(self.config()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        for c in &mut v {
            // The id of a recording row differs between databases; there are no recordings here.
            c.as_object_mut().unwrap().remove("recording");
        }
        v.sort_by(|a, b| a["call_id"].as_str().cmp(&b["call_id"].as_str()));
        v
    }
}

#[test]
fn a_set_tcpdump_rotated_during_calls_replays_like_one_file() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    let set = d.join("set");
    std::fs::create_dir(&set).unwrap();

    let lock = lo_lock();
    // -G 1: a new file each second a packet arrives in; -U: each packet written at once;
    // -Z root: keep writing into the test's folder.
    let mut dump = Command::new("tcpdump")
        .args(["-i", "lo", "-n", "-s", "0", "-U", "-Z", "root", "-G", "1", "-w"])
        .arg(set.join("cap-%s.pcap"))
        .arg(BPF)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(1000));
    let out = Command::new("timeout")
        .args(["-k", "5", "120", "bash"])
        .arg(repo().join("scripts/peers/calls.sh"))
        .args(["-r", "4", "-d"])
        .arg(d.join("work"))
        .args(["-o"])
        .arg(d.join("calls.pcap"))
        .args(["-F", BPF])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "calls.sh: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: SIGTERM to the tcpdump this test started; it flushes and exits.
    unsafe { libc::kill(dump.id() as libc::pid_t, libc::SIGTERM) };
    let t = Instant::now();
    while dump.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "tcpdump did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(lock);

    let mut files: Vec<PathBuf> = std::fs::read_dir(&set).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    assert!(files.len() >= 5, "{} files rotated: too few to cut calls", files.len());
    let one = d.join("one.pcap");
    let st = Command::new("mergecap").arg("-w").arg(&one).args(&files).status().expect("mergecap");
    assert!(st.success());

    let whole = Site::new(d);
    whole.replay(&[&one]);
    let want = whole.calls();
    assert!(want.len() >= 6, "{} calls", want.len());
    assert!(want.iter().all(|c| c["end_reason"] != "capture-ended"), "{want:#?}");

    let folder = Site::new(d);
    folder.replay(&[&set]);
    assert_eq!(folder.calls(), want, "replay DIR");

    let separate = Site::new(d);
    let mut cut = 0;
    for f in &files {
        separate.replay(&[f]);
        cut += separate.calls().iter().filter(|c| c["end_reason"] == "capture-ended").count();
    }
    // Calls spanning files: the set only tests continuation if some were cut on the way.
    assert!(cut >= 3, "{cut} calls left open by a file's end along the way");
    assert_eq!(separate.calls(), want, "file by file, one run each");

    let follow = Site::new(d);
    let spool = follow.dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let child = Command::new(BIN)
        .args(["replay", "--follow", "--quiet", "--config"])
        .arg(follow.config())
        .arg(&spool)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for f in &files {
        std::fs::copy(f, spool.join(f.file_name().unwrap())).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: SIGTERM to the replay this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(follow.calls(), want, "replay --follow");
}
