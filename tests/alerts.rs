//! Alerts end to end: the real engine and driver replay the sipp capture of the rule tests
//! with the alerts sink POSTing to small HTTP receivers on 127.0.0.1 (std `TcpListener`
//! threads). Checked: every violation reaches the webhook in the order raised, with the
//! field names of `violations --json`; the premium-rate one is POSTed while its INVITE is
//! processed, stamped with the INVITE packet's time, before any answer; a receiver that
//! fails is retried with backoff; a dead one never blocks the pipeline or panics; a full
//! queue drops and counts.

mod common;

use callwarden::sink::alerts::{AlertStats, AlertsOptions, AlertsSink};
use callwarden::sink::Sink;
use callwarden_core::Ts;
use common::{call, config, reference, replay_with, Step, SITE};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request a receiver got: when, the status it answered, the JSON body.
#[derive(Clone, Debug)]
struct Got {
    at: Instant,
    status: u16,
    body: serde_json::Value,
}

/// An HTTP receiver on 127.0.0.1 answering 503 to the first `fail_first` requests, then 200.
fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<Got>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/alerts", listener.local_addr().expect("addr"));
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&got);
    std::thread::spawn(move || {
        let mut n = 0usize;
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let (mut len, mut line, mut first) = (0usize, String::new(), true);
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if first {
                    assert!(line.starts_with("POST /alerts HTTP/1.1"), "{line}");
                    first = false;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().expect("length");
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).expect("body");
            let at = Instant::now();
            n += 1;
            let status = if n <= fail_first { 503 } else { 200 };
            let body = serde_json::from_slice(&body).expect("JSON body");
            seen.lock().expect("got").push(Got { at, status, body });
            let _ = write!(s, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// A URL nothing listens on.
fn dead_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    format!("http://127.0.0.1:{port}/alerts")
}

fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let until = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Notes the wall-clock time just before each frame in `frames` is fed.
struct FedAt(Vec<(u64, Option<Instant>)>);
impl Step for FedAt {
    fn before(&mut self, n: u64, _d: &mut callwarden::pipeline::Driver) {
        for (f, at) in &mut self.0 {
            if *f == n {
                *at = Some(Instant::now());
            }
        }
    }
}

fn rfc3339(t: Ts) -> String {
    common::local(t).strftime("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
}

fn fast() -> AlertsOptions {
    AlertsOptions {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        timeout: Duration::from_secs(5),
        ..AlertsOptions::default()
    }
}

#[test]
fn premium_rate_alert_is_posted_at_the_invite() {
    let (url, got) = receiver(0);
    let mut sink = AlertsSink::new(std::slice::from_ref(&url), "Asia/Shanghai", fast()).expect("sink");
    let closer = sink.take_closer().expect("closer");
    let counters = sink.counters();
    let r = reference("outbound");
    let c = call(&r, "8001", "016800001234");
    let answer_frame = c.answer_frame.expect("answered");
    // Pause the replay at the premium call's 200 OK until its alert has been delivered:
    // the alert must not need the answer.
    struct Gate {
        fed: FedAt,
        answer_frame: u64,
        got: Arc<Mutex<Vec<Got>>>,
    }
    impl Step for Gate {
        fn before(&mut self, n: u64, d: &mut callwarden::pipeline::Driver) {
            self.fed.before(n, d);
            if n == self.answer_frame {
                let got = Arc::clone(&self.got);
                wait_for("the premium-rate alert before the 200 OK", Duration::from_secs(10), || {
                    got.lock().expect("got").iter().any(|g| g.body["rule"] == "OUT-1")
                });
            }
        }
    }
    let mut gate = Gate { fed: FedAt(vec![(c.invite_frame, None)]), answer_frame, got: Arc::clone(&got) };
    let (run, _driver) =
        replay_with("outbound.pcap", &config(SITE), |_| {}, vec![Box::new(sink) as Box<dyn Sink + Send>], &mut gate);
    let raised = run.violations();
    wait_for("every alert", Duration::from_secs(20), || counters.snapshot().delivered == raised.len() as u64);
    let stats = closer.close(Duration::from_secs(5));
    assert_eq!(
        stats,
        AlertStats { raised: raised.len() as u64, delivered: raised.len() as u64, retries: 0, failed: 0, dropped: 0 }
    );
    let got = got.lock().expect("got").clone();
    // In the order raised, one POST each, with the field names of `violations --json`.
    let rules: Vec<String> = got.iter().map(|g| g.body["rule"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(rules, raised.iter().map(|v| v.rule.clone()).collect::<Vec<_>>());
    let first = &got[0];
    assert_eq!(
        first.body,
        serde_json::json!({
            "rule": "OUT-1", "kind": "premium-rate", "call_id": c.call_id,
            "call_started_at": rfc3339(c.invite_at), "extension": "8001", "number": "16800001234",
            "detected_at": rfc3339(c.invite_at), "fine_fen": null,
            "detail": "dialled 016800001234 → 16800001234, premium-rate prefix 168"
        })
    );
    // Completed at the end, with the same time of detection and the fine.
    let done = got.iter().filter(|g| g.body["rule"] == "OUT-1").nth(1).expect("the completed alert");
    assert_eq!((&done.body["detected_at"], &done.body["fine_fen"]), (&rfc3339(c.invite_at).into(), &11_000.into()));
    let fed = gate.fed.0[0].1.expect("the INVITE was fed");
    let latency = first.at.duration_since(fed);
    eprintln!("alert latency, INVITE fed → webhook received: {latency:?}");
    assert!(latency < Duration::from_secs(5), "{latency:?}");
}

#[test]
fn failing_receivers_are_retried_and_a_dead_one_blocks_nothing() {
    let (flaky, got) = receiver(3);
    let dead = dead_url();
    let opts = AlertsOptions { max_attempts: 4, ..fast() };
    let mut sink = AlertsSink::new(&[flaky, dead], "Asia/Shanghai", opts).expect("sink");
    let closer = sink.take_closer().expect("closer");
    let t0 = Instant::now();
    let (run, _driver) = replay_with(
        "outbound.pcap",
        &config(SITE),
        |_| {},
        vec![Box::new(sink) as Box<dyn Sink + Send>],
        &mut common::NoStep,
    );
    let replay_time = t0.elapsed();
    let n = run.violations().len() as u64;
    assert_eq!(n, 15, "13 violations, the two premium-rate ones twice");
    // Let the backoff run its course (a close cuts the pauses short to deliver at once).
    let seen = Arc::clone(&got);
    wait_for("the flaky receiver", Duration::from_secs(20), || seen.lock().expect("got").len() as u64 == 3 + n);
    let stats = closer.close(Duration::from_secs(20));
    // The flaky receiver got all of them after 3 retries of the first; each alert to the
    // dead one was tried 4 times (3 retries) and given up.
    assert_eq!(stats, AlertStats { raised: n, delivered: n, retries: 3 + 3 * n, failed: n, dropped: 0 });
    let got = got.lock().expect("got").clone();
    let statuses: Vec<u16> = got.iter().map(|g| g.status).collect();
    assert_eq!(&statuses[..4], [503, 503, 503, 200]);
    assert_eq!(statuses.len() as u64, 3 + n);
    // The same alert was retried: the first four bodies are one.
    assert!(got[..4].iter().all(|g| g.body == got[0].body));
    // Backoff: 10, 20, 40 ms between the attempts of the first alert.
    let gaps: Vec<Duration> = got[..4].windows(2).map(|w| w[1].at.duration_since(w[0].at)).collect();
    for (gap, min) in gaps.iter().zip([10, 20, 40]) {
        assert!(*gap >= Duration::from_millis(min), "{gaps:?}");
    }
    // The replay did not wait for any of it.
    eprintln!("replay with a dead webhook: {replay_time:?}");
    assert!(replay_time < Duration::from_secs(10), "{replay_time:?}");
}

#[test]
fn a_full_queue_drops_and_counts() {
    // A dead receiver with a long backoff keeps the first alert in its worker; the queue
    // holds 4; the rest are dropped at once, without blocking.
    let opts = AlertsOptions { queue: 4, backoff_initial: Duration::from_secs(30), ..fast() };
    let mut sink = AlertsSink::new(&[dead_url()], "UTC", opts).expect("sink");
    let closer = sink.take_closer().expect("closer");
    let counters = sink.counters();
    let t0 = Instant::now();
    let (run, _driver) = replay_with(
        "outbound.pcap",
        &config(SITE),
        |_| {},
        vec![Box::new(sink) as Box<dyn Sink + Send>],
        &mut common::NoStep,
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    let n = run.violations().len() as u64;
    let dropped = counters.snapshot().dropped;
    // 4 queued, and 1 more if the worker took the first before the queue filled.
    assert!(dropped == n - 4 || dropped == n - 5, "dropped {dropped} of {n}");
    let t1 = Instant::now();
    let stats = closer.close(Duration::from_millis(200));
    assert!(t1.elapsed() < Duration::from_secs(6), "close waited {:?}", t1.elapsed());
    assert_eq!((stats.raised, stats.delivered, stats.dropped, stats.failed), (n, 0, dropped, n - dropped));
}

#[test]
fn alerts_carry_every_rule_with_its_fine() {
    // The log-only sink (no webhooks) sees the same violations: the structured event's
    // fields are unit-tested in sink::alerts; here the JSON of each violation is checked
    // against the violation itself.
    let (url, got) = receiver(0);
    let mut sink = AlertsSink::new(std::slice::from_ref(&url), "Asia/Shanghai", fast()).expect("sink");
    let closer = sink.take_closer().expect("closer");
    let (run, _d) = replay_with(
        "inbound.pcap",
        &config(SITE),
        |_| {},
        vec![Box::new(sink) as Box<dyn Sink + Send>],
        &mut common::NoStep,
    );
    let stats = closer.close(Duration::from_secs(10));
    let raised = run.violations();
    assert_eq!(stats.delivered, raised.len() as u64);
    let got = got.lock().expect("got").clone();
    for (v, g) in raised.iter().zip(&got) {
        assert_eq!(g.body["rule"], v.rule.as_str());
        assert_eq!(g.body["kind"], v.kind.as_str());
        assert_eq!(g.body["extension"], v.extension.as_str());
        assert_eq!(g.body["fine_fen"], serde_json::json!(v.fine_fen));
        assert_eq!(g.body["detected_at"], rfc3339(v.detected_at));
    }
}

/// `callwarden replay` with `[alerts].webhooks` in the config POSTs every violation (and
/// waits for them at the end); `--no-webhooks` sends none.
#[test]
fn replay_posts_to_the_configured_webhooks() {
    let (url, got) = receiver(1);
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("cw.toml");
    let text =
        format!("{SITE}\n[alerts]\nwebhooks = [\"{url}\"]\n[store]\npath = \"cw.db\"\n[recordings]\ndir = \"rec\"\n");
    std::fs::write(&cfg, text).expect("config");
    let pcap = common::fixture("outbound.pcap");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_callwarden"))
            .arg("replay")
            .arg("--quiet")
            .args(extra)
            .arg("--config")
            .arg(&cfg)
            .arg(&pcap)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["--no-webhooks"]);
    assert!(got.lock().expect("got").is_empty());
    run(&[]);
    let got = got.lock().expect("got").clone();
    // One 503 (retried), then all 15 alerts delivered before replay exited.
    let ok: Vec<&Got> = got.iter().filter(|g| g.status == 200).collect();
    assert_eq!((got.len(), ok.len()), (16, 15));
    assert_eq!(ok[0].body["rule"], "OUT-1");
    assert_eq!(ok[0].body["fine_fen"], serde_json::Value::Null);
}
