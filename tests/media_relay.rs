//! A real media relay: Debian's rtpengine (userspace forwarding) driven by Kamailio's
//! rtpengine module (scripts/peers/rtpengine.sh), between SIPp on 127.0.0.2 and 127.0.0.3.
//! Every call's RTP is on the wire twice (UAC ↔ rtpengine, rtpengine ↔ UAS), so a call's
//! media figures and its recording must come from one copy: they must equal those of the
//! same calls placed directly (tests/fixtures/public/gen-sipp-mixed-calls-udp.pcap, made
//! by the same scenarios). Holds the loopback lock like tests/daemon.rs; needs root
//! (tcpdump on lo) and the packages scripts/install-test-deps installs; fails, never skips.

mod peers_support;

use peers_support::{lo_lock, peer_script, repo};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_callwarden");

/// Replays `pcap` into a fresh database under `dir/name` (1001-1002 recorded as dispatch)
/// and returns (calls, recordings) as JSON.
fn replay(dir: &Path, name: &str, pcap: &Path) -> (Vec<Value>, Vec<Value>) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[site]\nextensions = [\"1000-2999\"]\n[[group]]\nname = \"dispatch\"\nextensions = [\"1001-1002\"]\n\
             record = \"always\"\n[store]\npath = {:?}\n[recordings]\ndir = {:?}\n",
            dir.join(format!("{name}.db")),
            dir.join(format!("{name}-rec"))
        ),
    )
    .expect("config");
    let run = |args: &[&str]| -> String {
        let out = Command::new(BIN).args(args).arg("--config").arg(&cfg).output().expect("callwarden");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["replay", "-q", "--no-webhooks", pcap.to_str().expect("path")]);
    let calls = serde_json::from_str(&run(&["calls", "--json"])).expect("calls json");
    let recs = serde_json::from_str(&run(&["recordings", "list", "--json"])).expect("recordings json");
    (calls, recs)
}

/// Media packets each way of the call `caller` → `callee`, from `GET`-equivalent detail:
/// the stored record via `calls --json` has no media, so read the database directly.
fn media(dir: &Path, name: &str) -> Vec<(String, String, u64, u64)> {
    let conn = rusqlite::Connection::open(dir.join(format!("{name}.db"))).expect("db");
    let mut stmt = conn
        .prepare("SELECT caller, callee, media_caller, media_callee FROM calls ORDER BY caller, callee")
        .expect("select");
    let rows = stmt
        .query_map([], |r| {
            let m = |i: usize| -> rusqlite::Result<u64> {
                let text: String = r.get(i)?;
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                Ok(v["packets"].as_u64().unwrap_or(0))
            };
            Ok((r.get(0)?, r.get(1)?, m(2)?, m(3)?))
        })
        .expect("query");
    rows.collect::<Result<Vec<_>, _>>().expect("rows")
}

#[test]
fn relayed_media_is_counted_and_recorded_once() {
    let _lo = lo_lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("rtpe");
    peer_script("rtpengine.sh", &work, &[]);
    let (relayed_calls, relayed_recs) = replay(dir.path(), "relayed", &work.join("sip.pcap"));
    let (direct_calls, direct_recs) =
        replay(dir.path(), "direct", &repo().join("tests/fixtures/public/gen-sipp-mixed-calls-udp.pcap"));
    assert_eq!(relayed_calls.len(), 7);
    assert_eq!(direct_calls.len(), 7);

    // The relay really put every answered call's media on the wire twice.
    let tshark = Command::new("tshark")
        .arg("-r")
        .arg(work.join("sip.pcap"))
        .args(["-Y", "udp.srcport >= 40000 && udp.srcport <= 40199", "-T", "fields", "-e", "frame.number"])
        .output()
        .expect("tshark");
    let from_relay = String::from_utf8_lossy(&tshark.stdout).lines().count();
    assert!(from_relay > 1000, "packets sent by rtpengine: {from_relay}");

    let relayed = media(dir.path(), "relayed");
    let direct = media(dir.path(), "direct");
    assert_eq!(relayed.len(), direct.len());
    for (r, d) in relayed.iter().zip(&direct) {
        assert_eq!((&r.0, &r.1), (&d.0, &d.1));
        // SIPp's UAS keeps sending up to 2 s after the BYE; a packet more or less at the
        // end is timing, a copy would be double.
        assert!(
            r.2.abs_diff(d.2) <= 2 && r.3.abs_diff(d.3) <= 2,
            "media of {} → {}: relayed {r:?} direct {d:?}",
            r.0,
            r.1
        );
    }
    assert_eq!(relayed_recs.len(), 2, "1001 and 1002 are recorded");
    for (r, d) in relayed_recs.iter().zip(&direct_recs) {
        assert_eq!(r["status"], "complete");
        let (rp, dp) = (r["counters"]["packets_placed"].as_i64(), d["counters"]["packets_placed"].as_i64());
        assert_eq!(rp, dp, "one copy of the media recorded");
        assert_eq!(r["counters"]["duplicates"], 0, "the relay's copies never reach the recording");
        let (rd, dd) = (r["duration_ms"].as_i64().unwrap_or(0), d["duration_ms"].as_i64().unwrap_or(0));
        assert!((rd - dd).abs() <= 60, "duration relayed {rd} direct {dd}");
    }
}
