//! A real B2BUA as the PBX: the Sippy B2BUA (pip `sippy`, scripts/peers/b2bua.sh) between
//! SIPp "phones" on 127.0.0.2 and a SIPp "trunk" on 127.0.0.3, so the PBX is 127.0.0.1 and
//! every call is two SIP dialogs with different Call-IDs. `callwarden run` captures it live
//! on `lo` with `[site] pbx = ["127.0.0.1"]`; tcpdump's capture of the same run is replayed;
//! and the same calls placed directly (no PBX, tests/fixtures/public/gen-sipp-mixed-calls-udp.pcap,
//! made by the same scenarios) are replayed. All three must give the same records: one per
//! call, with the same figures. Holds the loopback lock (/tmp/callwarden-lo.lock) like
//! tests/daemon.rs; needs root (tcpdump and live capture on lo) and fails, never skips,
//! without it. Bounded: b2bua.sh stops its peers by pid; the daemon is stopped by its pid.

mod peers_support;

use peers_support::{lo_lock, peer_script, repo};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_callwarden");

fn config(dir: &Path, name: &str, pbx: bool, live: bool) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    let capture = if live {
        "interfaces = [\"lo\"]\nbpf = \"udp and (port 5060 or port 5070 or port 5080 or portrange 20000-20099 or portrange 30000-30099)\"\n"
    } else {
        ""
    };
    let text = format!(
        "[site]\nextensions = [\"1000-2999\"]\n{}\n[capture]\n{capture}[store]\npath = {:?}\n[recordings]\ndir = {:?}\n\
         [api]\nlisten = \"127.0.0.1:0\"\n",
        if pbx { "pbx = [\"127.0.0.1\"]" } else { "" },
        dir.join(format!("{name}.db")),
        dir.join(format!("{name}-rec")),
    );
    std::fs::write(&p, text).expect("write config");
    p
}

fn run(args: &[&str], cfg: &Path) -> String {
    let out = Command::new(BIN).args(args).arg("--config").arg(cfg).output().expect("callwarden");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn calls(cfg: &Path) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(&run(&["calls", "--json"], cfg)).expect("calls --json")
}

/// A call's figures that do not depend on when or through what it was placed.
fn figures(c: &Value) -> String {
    let rules: Vec<String> = c["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| format!("{} {}", v["rule"].as_str().unwrap_or("?"), v["kind"].as_str().unwrap_or("?")))
        .collect();
    format!(
        "{} → {} dialled {} {} {} rings {} answered {} by {} {} {} {:?}",
        c["caller"],
        c["callee"],
        c["dialled"],
        c["direction"],
        c["class"],
        c["rings"],
        c["answered"],
        c["answered_by"],
        c["end_reason"],
        c["sip_status"],
        rules
    )
}

fn ms(c: &Value, k: &str) -> i64 {
    c[k].as_i64().unwrap_or(-1)
}

struct Daemon(Option<Child>, PathBuf);

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
    fn term(&mut self) {
        let Some(mut child) = self.0.take() else { return };
        // SAFETY: signalling the pid of the child we started and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                assert!(st.success(), "daemon exit {st}:\n{}", self.log());
                return;
            }
            if t.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no exit 15 s after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn calls_through_a_real_b2bua_live_replayed_and_direct_give_the_same_records() {
    let _lo = lo_lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let live_cfg = config(dir.path(), "live", true, true);
    let log = dir.path().join("daemon.log");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&live_cfg)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("log"))
        .spawn()
        .expect("start daemon");
    let mut daemon = Daemon(Some(child), log);
    let t = Instant::now();
    while !daemon.log().contains("; ready") {
        assert!(t.elapsed() < Duration::from_secs(15), "no READY:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    let work = dir.path().join("b2b");
    peer_script("b2bua.sh", &work, &[("UAC_IP", "127.0.0.2"), ("UAS_IP", "127.0.0.3")]);
    // The last BYE's late RTP and the daemon's own batching: let the capture settle.
    std::thread::sleep(Duration::from_millis(500));
    daemon.term();

    let live = calls(&live_cfg);
    let replay_cfg = config(dir.path(), "replay", true, false);
    run(&["replay", "-q", "--no-webhooks", work.join("sip.pcap").to_str().expect("path")], &replay_cfg);
    let replayed = calls(&replay_cfg);
    let direct_cfg = config(dir.path(), "direct", false, false);
    let direct_pcap = repo().join("tests/fixtures/public/gen-sipp-mixed-calls-udp.pcap");
    run(&["replay", "-q", "--no-webhooks", direct_pcap.to_str().expect("path")], &direct_cfg);
    let direct = calls(&direct_cfg);

    // Without the PBX configured the same B2BUA capture is two records a call.
    let nolink_cfg = config(dir.path(), "nolink", false, false);
    run(&["replay", "-q", "--no-webhooks", work.join("sip.pcap").to_str().expect("path")], &nolink_cfg);
    assert_eq!(calls(&nolink_cfg).len(), 14, "two dialogs a call without [site] pbx");

    assert_eq!(direct.len(), 7);
    assert_eq!(live.len(), 7, "live: {:#?}", live.iter().map(figures).collect::<Vec<_>>());
    assert_eq!(replayed.len(), 7);
    for ((l, r), d) in live.iter().zip(&replayed).zip(&direct) {
        assert_eq!(figures(l), figures(r), "live vs replay");
        assert_eq!(figures(r), figures(d), "through the B2BUA vs direct");
        assert_eq!(l["legs"].as_array().map(Vec::len), Some(2), "{l:#}");
        assert_eq!(l["link"], "inferred");
        // Live and tcpdump stamp the same packets within a few hundred µs.
        for k in ["ring_ms", "talk_ms"] {
            assert!((ms(l, k) - ms(r, k)).abs() <= 5, "{k}: live {} replay {}", ms(l, k), ms(r, k));
            // The direct run was placed on another day by the same scenario: SIPp's own
            // timers, so within a few hundred ms.
            assert!((ms(r, k) - ms(d, k)).abs() <= 400, "{k}: b2bua {} direct {}", ms(r, k), ms(d, k));
        }
    }
}
