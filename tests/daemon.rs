//! `callwarden run` end to end, with real peers on loopback: SIPp UAC → UAS captured live
//! on `lo` (compared with tcpdump's capture of the same calls, replayed), the same calls
//! through Kamailio seen only as its siptrace HEPv3, SIGTERM while calls are up, and a
//! flood of malformed HEP. Everything that puts traffic on `lo` holds the shared lock
//! (/tmp/callwarden-lo.lock, flock(2)), which also serialises these tests among
//! themselves. Live capture needs CAP_NET_RAW: these tests run as root here and in CI, and
//! fail (never skip) when the daemon cannot open `lo`. Every wait is bounded; only the
//! pids these tests start are signalled.

mod hep_support;

use hep_support::{hep_datagrams, restamp};
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_callwarden");

/// Ports of scripts/peers (UAC 5070, UAS 5080, proxy 5060, RTP 20000+/30000+).
const BPF: &str = "udp and (port 5060 or port 5070 or port 5080 or portrange 20000-20099 or portrange 30000-30099)";

/// One answered call (2 rings at the 5 s cadence), a premium number, busy, cancelled.
const CALLS: &str = "SEQUENTIAL\n\
1001;2001;answer;6000;1000;\n\
1003;16800123;answer;2000;1000;\n\
1005;2005;busy;2000;0;\n\
1006;2006;cancel;3000;0;\n";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared loopback lock, held until the returned file is dropped.
fn lo_lock() -> File {
    let f = File::options().create(true).append(true).open("/tmp/callwarden-lo.lock").unwrap();
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock /tmp/callwarden-lo.lock");
    f
}

struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Start `callwarden run --config cfg` and wait (at most 15 s) for READY.
    fn start(cfg: &Path, dir: &Path) -> Daemon {
        Daemon::start_with(cfg, dir, &[])
    }

    /// The same, with more environment (e.g. systemd's NOTIFY_SOCKET).
    fn start_with(cfg: &Path, dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = dir.join("daemon.log");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(cfg)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut d = Daemon { child: Some(child), log };
        let t = Instant::now();
        while !d.log_text().contains("; ready") {
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited ({st}) before READY:\n{}", d.log_text());
            }
            assert!(t.elapsed() < Duration::from_secs(15), "no READY in 15 s:\n{}", d.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address logged after `key=` on the first line containing `what`.
    fn logged_addr(&self, what: &str, key: &str) -> String {
        let text = self.log_text();
        let line = text.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no {what:?} in\n{text}"));
        let at = line.find(key).unwrap() + key.len();
        line[at..].split_whitespace().next().unwrap().to_string()
    }

    fn http(&self) -> String {
        self.logged_addr("serving /metrics", "listen=")
    }

    /// SIGTERM; wait at most 10 s. Returns the exit status and how long it took.
    fn term(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().unwrap();
        let t = Instant::now();
        // SAFETY: signalling the pid of the child we started and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st, t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no exit 10 s after SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The value of an unlabelled or labelled sample line, e.g. `callwarden_drops_total{reason="bad-hep"}`.
fn metric(text: &str, sample: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no {sample} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn write_config(dir: &Path, name: &str, capture: &str, db: &str) -> PathBuf {
    let p = dir.join(name);
    let text = format!(
        "[site]\nextensions = [\"1000-2999\"]\n[capture]\n{capture}\n[store]\npath = {:?}\n[recordings]\ndir = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n\
         [[group]]\nname = \"dispatch\"\nextensions = [\"1001\"]\nrecord = \"always\"\n",
        dir.join(db),
        dir.join(format!("rec-{}", name.trim_end_matches(".toml"))),
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// `callwarden calls --json`, sorted by Call-ID.
fn stored_calls(cfg: &Path) -> Vec<Value> {
    let out = Command::new(BIN).args(["calls", "--json", "--config"]).arg(cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.sort_by(|a, b| a["call_id"].as_str().cmp(&b["call_id"].as_str()));
    v
}

/// Run a scripts/peers script (bounded by `timeout`), fail with its output if it fails.
fn peers(script: &str, args: &[&str], limit_s: u32) {
    let out = Command::new("timeout")
        .args(["-k", "5", &limit_s.to_string(), "bash"])
        .arg(repo().join("scripts/peers").join(script))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The scenario's calls, by caller: (rings, ring_ms wanted, end reason).
fn check_scenario(calls: &[Value]) {
    assert_eq!(calls.len(), 4, "{calls:#?}");
    let by =
        |caller: &str| calls.iter().find(|c| c["caller"] == caller).unwrap_or_else(|| panic!("no call from {caller}"));
    for (caller, rings, ring_ms, end) in [
        ("1001", 2, 6000, "caller-bye"),
        ("1003", 1, 2000, "caller-bye"),
        ("1005", 1, 2000, "busy"),
        ("1006", 1, 3000, "cancelled"),
    ] {
        let c = by(caller);
        assert_eq!(c["rings"], rings, "{c:#}");
        assert_eq!(c["end_reason"], end, "{c:#}");
        let got = c["ring_ms"].as_i64().unwrap();
        // The UAS rings ring_ms after its 180; ±50 ms for the peers' own scheduling.
        assert!((got - ring_ms).abs() <= 50, "ring_ms {got} vs {ring_ms}: {c:#}");
    }
    for caller in ["1001", "1003"] {
        let talk = by(caller)["talk_ms"].as_i64().unwrap();
        // talk_ms 1000 of the CSV, plus the DTMF digit and the BYE round trip (~300 ms).
        assert!((1000..=1500).contains(&talk), "talk {talk} for {caller}");
    }
    let premium = by("1003");
    assert!(premium["violations"].to_string().contains("OUT-1"), "{premium:#}");
}

/// Fields that legitimately differ between a live capture and tcpdump's copy of the same
/// packets: the kernel stamps each packet socket separately (a few µs apart).
const TIME_FIELDS: [&str; 4] = ["started_at", "ringing_at", "answered_at", "ended_at"];

fn micros(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    let t: jiff::Timestamp = s.parse().ok()?;
    Some(t.as_microsecond())
}

/// The status and interleaved samples of the one recording (the call from 1001).
fn recording_of_1001(cfg: &Path, dir: &Path) -> (String, Vec<i16>) {
    let out = Command::new(BIN).args(["recordings", "list", "--json", "--config"]).arg(cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0]["caller"], "1001");
    let name = cfg.file_stem().unwrap().to_str().unwrap();
    let wav = dir.join(format!("rec-{name}")).join(v[0]["path"].as_str().unwrap());
    let samples = hound::WavReader::open(&wav).unwrap().samples::<i16>().map(Result::unwrap).collect();
    (v[0]["status"].as_str().unwrap().to_string(), samples)
}

#[test]
fn live_capture_on_lo_matches_the_scenario_and_the_replay_of_tcpdump() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("calls.csv"), CALLS).unwrap();
    let live = write_config(d, "live.toml", &format!("interfaces = [\"lo\"]\nbpf = {BPF:?}"), "live.db");
    let replay = write_config(d, "replay.toml", "", "replay.db");

    let _lock = lo_lock();
    let mut daemon = Daemon::start(&live, d);
    let pcap = d.join("tcpdump.pcap");
    peers(
        "calls.sh",
        &["-c", d.join("calls.csv").to_str().unwrap(), "-r", "4", "-o", pcap.to_str().unwrap(), "-F", BPF],
        90,
    );
    std::thread::sleep(Duration::from_millis(500));
    let http = daemon.http();
    let health = http_get(&http, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let m = http_get(&http, "/metrics");
    assert_eq!(metric(&m, "callwarden_drops_total{reason=\"kernel\"}"), 0.0);
    assert_eq!(metric(&m, "callwarden_drops_total{reason=\"queue-full\"}"), 0.0);
    assert_eq!(metric(&m, "callwarden_calls_ended_total{reason=\"busy\"}"), 1.0);
    assert!(metric(&m, "callwarden_capture_packets_total{source=\"pcap:lo\"}") > 100.0);
    // The API and page are served by the same listener (local mode: no tokens, loopback).
    let api = http_get(&http, "/api/calls?limit=10");
    assert!(api.starts_with("HTTP/1.1 200") && api.contains("16800123"), "{api}");
    let page = http_get(&http, "/");
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("<html"), "{}", &page[..page.len().min(300)]);
    let (st, took) = daemon.term();
    assert!(st.success(), "{st}:\n{}", daemon.log_text());
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(_lock);

    let out = Command::new(BIN).args(["replay", "--quiet", "--config"]).arg(&replay).arg(&pcap).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (a, b) = (stored_calls(&live), stored_calls(&replay));
    check_scenario(&a);
    // The dispatch phone's call was recorded live, and its WAV holds exactly the samples
    // the replay of the same packets gives.
    let (ra, rb) = (recording_of_1001(&live, d), recording_of_1001(&replay, d));
    assert_eq!(ra.0, "complete");
    assert!(ra.1.len() > 8000 * 2, "{} samples", ra.1.len());
    assert_eq!(ra, rb, "live and replayed recordings differ");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let (xo, yo) = (x.as_object().unwrap(), y.as_object().unwrap());
        assert_eq!(xo.keys().collect::<Vec<_>>(), yo.keys().collect::<Vec<_>>());
        for (k, xv) in xo {
            let yv = &yo[k];
            if k == "recording" {
                // An id of the recording row; both exist (compared above).
                assert_eq!(xv.is_null(), yv.is_null(), "{k}");
            } else if k == "legs" {
                // Each leg's own times: the two clocks stamp the same packets a few µs apart.
                let (xl, yl) = (xv.as_array().unwrap(), yv.as_array().unwrap());
                assert_eq!(xl.len(), yl.len(), "legs of {}", x["call_id"]);
                for (p, q) in xl.iter().zip(yl) {
                    for (lk, pv) in p.as_object().unwrap() {
                        match (micros(pv), micros(&q[lk])) {
                            (Some(a), Some(b)) if lk.ends_with("_at") => assert!((a - b).abs() <= 1000, "leg {lk}"),
                            _ => assert_eq!(pv, &q[lk], "leg {lk} of {}", x["call_id"]),
                        }
                    }
                }
            } else if TIME_FIELDS.contains(&k.as_str()) {
                match (micros(xv), micros(yv)) {
                    (Some(p), Some(q)) => assert!((p - q).abs() <= 1000, "{k}: live {xv} vs replay {yv}"),
                    _ => assert_eq!(xv, yv, "{k}"),
                }
            } else if k.ends_with("_ms") {
                // Durations in whole ms from times a few µs apart may round 1 ms apart.
                let (p, q) = (xv.as_i64().unwrap_or(-9), yv.as_i64().unwrap_or(9));
                assert!((p - q).abs() <= 1, "{k}: live {xv} vs replay {yv} for {}", x["call_id"]);
            } else {
                assert_eq!(xv, yv, "{k} differs for {}", x["call_id"]);
            }
        }
    }
}

#[test]
fn hep_from_kamailio_alone_gives_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("calls.csv"), CALLS).unwrap();
    // scripts/peers/kamailio/kamailio.cfg mirrors to 127.0.0.1:9060.
    let cfg = write_config(d, "hep.toml", "hep_listen = \"127.0.0.1:9060\"", "hep.db");
    let _lock = lo_lock();
    let mut daemon = Daemon::start(&cfg, d);
    let work = d.join("kam");
    // The script starts Kamailio in the foreground and stops it by its pid.
    peers("kamailio.sh", &["-c", d.join("calls.csv").to_str().unwrap(), "-r", "4", "-d", work.to_str().unwrap()], 120);
    std::thread::sleep(Duration::from_millis(500));
    let m = http_get(&daemon.http(), "/metrics");
    let (st, _) = daemon.term();
    assert!(st.success(), "{st}:\n{}", daemon.log_text());
    drop(_lock);
    assert!(metric(&m, "callwarden_hep_packets_total") >= 40.0, "{m}");
    assert_eq!(
        metric(&m, "callwarden_capture_packets_total{source=\"hep:127.0.0.1:9060\"}"),
        metric(&m, "callwarden_packets_total")
    );
    // Both legs (UAC↔proxy, proxy↔UAS) carry the same Call-ID: still one call each.
    check_scenario(&stored_calls(&cfg));
}

#[test]
fn sigterm_during_calls_stores_them_as_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One call talking and one ringing when SIGTERM comes.
    std::fs::write(d.join("calls.csv"), "SEQUENTIAL\n1001;2001;answer;1000;6000;\n1002;2002;cancel;9000;0;\n").unwrap();
    let cfg = write_config(d, "live.toml", &format!("interfaces = [\"lo\"]\nbpf = {BPF:?}"), "live.db");
    let _lock = lo_lock();
    let mut daemon = Daemon::start(&cfg, d);
    let csv = d.join("calls.csv");
    let pcap = d.join("t.pcap");
    let mut peers = Command::new("timeout")
        .args(["-k", "5", "60", "bash"])
        .arg(repo().join("scripts/peers/calls.sh"))
        .args(["-c", csv.to_str().unwrap(), "-r", "4", "-o", pcap.to_str().unwrap(), "-F", BPF])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let (st, took) = daemon.term();
    let log = daemon.log_text();
    assert!(st.success(), "{st}:\n{log}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let calls = stored_calls(&cfg);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(calls.iter().all(|c| c["end_reason"] == "shutdown"), "{calls:#?}");
    let talking = calls.iter().find(|c| c["caller"] == "1001").unwrap();
    assert!(talking["answered_at"].is_string() && talking["talk_ms"].as_i64().unwrap() > 1000, "{talking:#}");
    // The peers finish their calls by themselves (bounded by `timeout`).
    let _ = peers.wait();
    drop(_lock);
}

/// The calls `replay` stores from tests/fixtures/sipp/kamailio-hep.pcap, for comparison.
fn replayed_kamailio_hep(d: &Path) -> Vec<Value> {
    let r = write_config(d, "replay.toml", "", "replay.db");
    let out = Command::new(BIN)
        .args(["replay", "--quiet", "--config"])
        .arg(&r)
        .arg(repo().join("tests/fixtures/sipp/kamailio-hep.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    stored_calls(&r)
}

#[test]
fn a_forged_future_hep_datagram_does_not_end_live_calls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "hep.toml", "hep_listen = \"127.0.0.1:0\"", "hep.db");
    let good = hep_datagrams();
    let _lock = lo_lock();
    let mut daemon = Daemon::start(&cfg, d);
    let hep = daemon.logged_addr("receiving HEP", "listen=");
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send_now = |p: &[u8]| {
        // An honest agent: stamped as it is sent.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let mut p = p.to_vec();
        restamp(&mut p, now.as_secs() as u32, now.subsec_micros());
        tx.send_to(&p, &hep).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    };
    let half = good.len() / 2;
    for g in &good[..half] {
        send_now(g);
    }
    std::thread::sleep(Duration::from_millis(300));
    let live_before = metric(&http_get(&daemon.http(), "/metrics"), "callwarden_active_calls");
    assert!(live_before >= 1.0, "calls are up when the forgery comes");
    // The forgery: a copy of a real packet stamped at the end of 32-bit time (2106), and
    // one from 1970.
    let mut forged = good[0].clone();
    restamp(&mut forged, u32::MAX, 0);
    tx.send_to(&forged, &hep).unwrap();
    restamp(&mut forged, 1, 0);
    tx.send_to(&forged, &hep).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let m = http_get(&daemon.http(), "/metrics");
    assert_eq!(metric(&m, "callwarden_active_calls"), live_before, "no call ended on the forgery:\n{m}");
    assert_eq!(metric(&m, "callwarden_drops_total{reason=\"time-clamped\"}"), 2.0, "{m}");
    for g in &good[half..] {
        send_now(g);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (st, _) = daemon.term();
    assert!(st.success(), "{st}:\n{}", daemon.log_text());
    drop(_lock);
    let calls = stored_calls(&cfg);
    let replayed = replayed_kamailio_hep(d);
    let ends =
        |v: &[Value]| v.iter().map(|c| (c["call_id"].to_string(), c["end_reason"].to_string())).collect::<Vec<_>>();
    assert_eq!(ends(&calls), ends(&replayed), "the same calls, ended the same way, as without the forgery");
    let year_2100 = 4_102_444_800_000_000i64;
    for c in &calls {
        for f in TIME_FIELDS {
            assert!(micros(&c[f]).is_none_or(|t| t > 1_000_000_000_000_000 && t < year_2100), "{f}: {c:#}");
        }
    }
}

#[test]
fn a_flood_of_malformed_hep_does_not_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "hep.toml", "hep_listen = \"127.0.0.1:0\"", "hep.db");
    let good = hep_datagrams();
    assert!(good.len() > 10);
    let _lock = lo_lock();
    let mut daemon = Daemon::start(&cfg, d);
    let hep = daemon.logged_addr("receiving HEP", "listen=");
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Garbage of every kind: random bytes, a bare magic, chunks with lengths that overrun,
    // zero-length chunks, HEPv2-looking headers, the good packets cut short.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut sent = 0u64;
    for i in 0..20_000u32 {
        let mut p: Vec<u8> = match i % 5 {
            0 => (0..(next() % 1500)).map(|_| next() as u8).collect(),
            1 => b"HEP3".to_vec(),
            2 => {
                let mut v = b"HEP3\xff\xff".to_vec();
                v.extend((0..64).map(|_| next() as u8));
                v
            }
            3 => vec![2, 16, 2, 17, 0x13, 0xc4, 0x13, 0xc4, 127, 0, 0, 1, 127, 0, 0],
            _ => {
                let g = &good[(next() as usize) % good.len()];
                // Cut within the header chunks (a cut after the SIP payload chunk would be a
                // good packet, out of its order).
                g[..(next() as usize) % g.len().min(40)].to_vec()
            }
        };
        if i % 7 == 0 && i % 5 != 4 && p.len() > 8 {
            // Flip bytes in a chunk header.
            let at = 6 + (next() as usize) % (p.len() - 6);
            p[at] ^= 0xff;
        }
        tx.send_to(&p, &hep).unwrap();
        sent += 1;
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(2)); // stay within the socket buffer
        }
    }
    for g in &good {
        tx.send_to(g, &hep).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let http = daemon.http();
    assert!(http_get(&http, "/healthz").starts_with("HTTP/1.1 200"));
    let m = http_get(&http, "/metrics");
    let src = format!("callwarden_capture_packets_total{{source=\"hep:{hep}\"}}");
    assert_eq!(metric(&m, &src), (sent + good.len() as u64) as f64, "every datagram read");
    assert!(metric(&m, "callwarden_drops_total{reason=\"bad-hep\"}") > 1000.0, "{m}");
    let (st, _) = daemon.term();
    assert!(st.success(), "{st}:\n{}", daemon.log_text());
    drop(_lock);
    // The good packets after the flood still make their calls.
    let calls = stored_calls(&cfg);
    let replayed = replayed_kamailio_hep(d);
    assert!(!replayed.is_empty());
    let ids = |v: &[Value]| v.iter().map(|c| c["call_id"].to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&calls), ids(&replayed));
}

#[test]
fn cannot_open_an_interface_or_bind_the_port_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "bad.toml", "interfaces = [\"cw-nosuch0\"]", "x.db");
    let out = Command::new(BIN).args(["run", "--config"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("cannot capture on interface \"cw-nosuch0\""), "{err}");
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = write_config(d, "bad2.toml", &format!("hep_listen = \"{}\"", taken.local_addr().unwrap()), "x.db");
    let out = Command::new(BIN).args(["run", "--config"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().last().unwrap_or_default().contains("cannot listen for HEP on"), "{err}");
}

#[test]
fn runs_with_no_source_at_all_and_serves_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "api.toml", "", "api.db");
    let mut daemon = Daemon::start(&cfg, d);
    let http = daemon.http();
    let t = Instant::now();
    // /healthz turns 200 once the pipeline first reports (~250 ms).
    while !http_get(&http, "/healthz").starts_with("HTTP/1.1 200") {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = http_get(&http, "/metrics");
    assert!(m.contains("text/plain; version=0.0.4"), "{m}");
    assert_eq!(metric(&m, "callwarden_active_calls"), 0.0);
    let (st, took) = daemon.term();
    assert!(st.success());
    assert!(took < Duration::from_secs(5));
}

#[test]
fn config_edits_and_sighup_reload_and_a_bad_edit_keeps_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "api.toml", "", "api.db");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let mut daemon = Daemon::start(&cfg, d);
    let http = daemon.http();
    let reloads = |result: &str| {
        metric(&http_get(&http, "/metrics"), &format!("callwarden_config_reloads_total{{result=\"{result}\"}}"))
    };
    let wait_for = |what: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !what() {
            assert!(t.elapsed() < Duration::from_secs(10), "timed out");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // A broken edit, seen by the file watcher: counted, logged, nothing applied.
    std::fs::write(&cfg, good.replace("extensions = [\"1000-2999\"]", "extensions = [\"1000-29\"]")).unwrap();
    wait_for(&|| reloads("error") >= 1.0);
    assert_eq!(reloads("ok"), 0.0);
    assert!(daemon.log_text().contains("config reload failed"), "{}", daemon.log_text());
    // SIGHUP re-reads it: still broken, counted again.
    let before = reloads("error");
    let pid = daemon.child.as_ref().unwrap().id() as i32;
    // SAFETY: signalling the pid of the child we started and have not reaped.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_for(&|| reloads("error") > before);
    // A good edit (a different policy) applies.
    std::fs::write(&cfg, good.replace("extensions = [\"1000-2999\"]", "extensions = [\"1000-3999\"]")).unwrap();
    wait_for(&|| reloads("ok") >= 1.0);
    assert!(daemon.log_text().contains("config reloaded"));
    let (st, _) = daemon.term();
    assert!(st.success());
}

/// What a sysadmin saw: after SIGHUP (or `cat` of the config) the watcher reloaded the
/// unchanged file every 300 ms forever, and every start logged an ERROR about the
/// watchdog. Under a notify socket with the watchdog on, as systemd runs it: READY and
/// watchdog pings arrive, no ERROR is logged, one SIGHUP gives one "config unchanged",
/// reading the file (and `config check`) gives none.
#[test]
fn quiet_under_systemd_after_sighup_and_reads_of_the_config() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "quiet.toml", "", "quiet.db");
    let sock_path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut daemon =
        Daemon::start_with(&cfg, d, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "2000000")]);
    // READY=1, then WATCHDOG=1 (pinged at half the 2 s period once the pipeline reports).
    let mut seen = String::new();
    let t = Instant::now();
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        assert!(t.elapsed() < Duration::from_secs(15), "notifications so far: {seen:?}");
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("{e}; so far {seen:?}:\n{}", daemon.log_text()));
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    let pid = daemon.child.as_ref().unwrap().id() as i32;
    // SAFETY: signalling the pid of the child we started and have not reaped.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let unchanged = |text: &str| text.lines().filter(|l| l.contains("config unchanged")).count();
    let t = Instant::now();
    while unchanged(&daemon.log_text()) == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "no reload after SIGHUP:\n{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Read the file as `cat` would, and as `config check` does.
    for _ in 0..3 {
        std::fs::read_to_string(&cfg).unwrap();
    }
    let check = Command::new(BIN).args(["config", "check"]).arg(&cfg).output().unwrap();
    assert!(check.status.success());
    // Well past the watcher's debounce (300 ms): the loop logged ~7 lines in this time.
    std::thread::sleep(Duration::from_secs(2));
    let log = daemon.log_text();
    assert_eq!(unchanged(&log), 1, "one SIGHUP, one reload; reads are not edits:\n{log}");
    assert!(!log.contains("ERROR"), "a normal start and reload log no error:\n{log}");
    let (st, _) = daemon.term();
    assert!(st.success());
}

/// Runs `ip`/`tc` with these arguments; panics with its output when it fails.
fn ip_cmd(prog: &str, args: &[&str]) {
    let out = Command::new(prog).args(args).output().unwrap();
    assert!(out.status.success(), "{prog} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A VXLAN tunnel whose underlay is one end of a veth pair, with everything UDP leaving
/// `lo` mirrored into it (tc mirred): the way a cloud or a switch hands a monitoring box
/// a copy of a PBX's traffic. Removed (filter, qdisc, links) when dropped.
struct VxlanMirror {
    underlay: String,
    vxlan: String,
}

impl VxlanMirror {
    fn new() -> VxlanMirror {
        let n = std::process::id() % 100_000;
        let m = VxlanMirror { underlay: format!("cwu{n}"), vxlan: format!("cwx{n}") };
        let peer = format!("cwp{n}");
        ip_cmd("ip", &["link", "add", &m.underlay, "type", "veth", "peer", "name", &peer]);
        ip_cmd("ip", &["link", "set", &peer, "up"]);
        ip_cmd("ip", &["addr", "add", "10.199.77.1/24", "dev", &m.underlay]);
        ip_cmd("ip", &["link", "set", &m.underlay, "up"]);
        // The far end is a fixed neighbour, not an address of this host: the tunnel's
        // packets leave through the veth and never come back through lo.
        ip_cmd(
            "ip",
            &["neigh", "add", "10.199.77.2", "lladdr", "02:00:00:00:77:02", "dev", &m.underlay, "nud", "permanent"],
        );
        ip_cmd(
            "ip",
            &[
                "link",
                "add",
                &m.vxlan,
                "type",
                "vxlan",
                "id",
                "42",
                "local",
                "10.199.77.1",
                "remote",
                "10.199.77.2",
                "dstport",
                "4789",
                "dev",
                &m.underlay,
            ],
        );
        ip_cmd("ip", &["link", "set", &m.vxlan, "up"]);
        ip_cmd("tc", &["qdisc", "add", "dev", "lo", "clsact"]);
        ip_cmd(
            "tc",
            &[
                "filter", "add", "dev", "lo", "egress", "protocol", "ip", "u32", "match", "ip", "protocol", "17",
                "0xff", "action", "mirred", "egress", "mirror", "dev", &m.vxlan,
            ],
        );
        m
    }
}

impl Drop for VxlanMirror {
    fn drop(&mut self) {
        let _ = Command::new("tc").args(["qdisc", "del", "dev", "lo", "clsact"]).output();
        let _ = Command::new("ip").args(["link", "del", &self.vxlan]).output();
        // Deleting one end of a veth pair deletes both.
        let _ = Command::new("ip").args(["link", "del", &self.underlay]).output();
    }
}

/// The live side of issue 19: the calls are made on lo, the daemon captures only the VXLAN
/// underlay (UDP 4789 on the veth), and stores every call made, as the scenario says.
#[test]
fn live_vxlan_mirror_of_the_calls_gives_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("calls.csv"), CALLS).unwrap();
    let _lock = lo_lock();
    let mirror = VxlanMirror::new();
    let cfg = write_config(
        d,
        "vxlan.toml",
        &format!("interfaces = [{:?}]\nbpf = \"udp port 4789\"", mirror.underlay),
        "vxlan.db",
    );
    let mut daemon = Daemon::start(&cfg, d);
    let pcap = d.join("lo.pcap");
    peers(
        "calls.sh",
        &["-c", d.join("calls.csv").to_str().unwrap(), "-r", "4", "-o", pcap.to_str().unwrap(), "-F", BPF],
        90,
    );
    std::thread::sleep(Duration::from_millis(500));
    let m = http_get(&daemon.http(), "/metrics");
    assert!(metric(&m, "callwarden_tunnels_total{kind=\"vxlan\"}") > 100.0, "{m}");
    let (st, _) = daemon.term();
    assert!(st.success(), "{st}:\n{}", daemon.log_text());
    drop(mirror);
    drop(_lock);
    check_scenario(&stored_calls(&cfg));
}

/// Poll `calls --json` until `n` calls are stored (committed), at most `limit`.
fn wait_for_calls(cfg: &Path, n: usize, limit: Duration) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let calls = stored_calls(cfg);
        if calls.len() >= n || t.elapsed() > limit {
            return calls;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_committed_call_survives_kill_9_in_each_durability_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let replayed = replayed_kamailio_hep(d);
    assert!(!replayed.is_empty());
    let _lock = lo_lock();
    for mode in ["full", "normal"] {
        let cfg = write_config(d, &format!("{mode}.toml"), "hep_listen = \"127.0.0.1:0\"", &format!("{mode}.db"));
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, text.replace("[recordings]", &format!("durability = {mode:?}\n[recordings]"))).unwrap();
        let mut daemon = Daemon::start(&cfg, d);
        let hep = daemon.logged_addr("receiving HEP", "listen=");
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for p in hep_datagrams() {
            tx.send_to(&p, &hep).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        // Committed: another process reads them from the database.
        let before = wait_for_calls(&cfg, replayed.len(), Duration::from_secs(20));
        assert_eq!(before.len(), replayed.len(), "{mode}: calls committed before the kill:\n{}", daemon.log_text());
        let mut child = daemon.child.take().unwrap();
        child.kill().unwrap(); // SIGKILL: no shutdown, no flush, no checkpoint
        child.wait().unwrap();
        let after = stored_calls(&cfg);
        assert_eq!(after, before, "{mode}: every committed call is there after kill -9, once");
        // And a daemon started on it again goes on from there.
        let mut again = Daemon::start(&cfg, d);
        let (st, _) = again.term();
        assert!(st.success(), "{mode}: {st}:\n{}", again.log_text());
        assert_eq!(stored_calls(&cfg), before, "{mode}");
    }
}
