//! Every capture in tests/fixtures/public/, tests/fixtures/sipp/ and tests/fixtures/tunnel/
//! (a sipp capture wrapped in each mirror encapsulation) replayed through the
//! real pipeline (capture file → engine → driver), compared call by call with the
//! independent tshark reading committed in tests/fixtures/reference/ (made by
//! scripts/tshark-reference.py; `scripts/make-reference --check` keeps it current).
//!
//! Compared, per call: the count, caller/callee/dialled, answered, final status, rings, and
//! every time (start, ringing, answer, end) and duration (ring_ms, talk_ms) to ±20 ms.
//! Where callwarden knows more than the reference can (a call with no BYE ends by timeout
//! or at the end of the capture, so it has a talk time; tshark's reading leaves it null),
//! only what both define is compared. Differences of definition are listed in `EXPECTED`.

use callwarden::capture::file::FileCapture;
use callwarden::pipeline::Driver;
use callwarden::sink::Sink;
use callwarden_core::config::Config;
use callwarden_core::track::{CallEvent, CallRecord, EndReason};
use callwarden_core::{Counters, DropReason, Engine, Output, Ts};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const TOLERANCE_MS: f64 = 20.0;

struct Collect(Arc<Mutex<Vec<CallRecord>>>);

impl Sink for Collect {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        if let Output::Call(CallEvent::Ended(rec)) = out {
            self.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push((**rec).clone());
        }
        Ok(())
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Replay one file through the real components, as `callwarden replay` does.
fn replay(path: &Path, cfg: &Config) -> (Vec<CallRecord>, Counters) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine::new(cfg).expect("engine");
    let mut driver = Driver::new(engine, vec![Box::new(Collect(calls.clone()))]);
    let mut cap = FileCapture::open(path).expect("open capture");
    while let Some(frame) = cap.next_frame().expect("capture reads to its end") {
        driver.feed(frame);
    }
    driver.finish(EndReason::CaptureEnded);
    let counters = driver.engine().counters().clone();
    drop(driver);
    let calls = calls.lock().expect("lock").clone();
    (calls, counters)
}

fn reference(name: &str) -> Value {
    let p = root().join("tests/fixtures/reference").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

fn ms(ts: Ts) -> f64 {
    ts.as_micros() as f64 / 1000.0
}

fn secs_to_ms(v: &Value) -> Option<f64> {
    v.as_f64().map(|s| s * 1000.0)
}

fn close(what: &str, file: &str, call: &str, ours: f64, theirs: f64, problems: &mut Vec<String>) {
    if (ours - theirs).abs() > TOLERANCE_MS {
        problems.push(format!("{file} {call}: {what} callwarden {ours:.3} vs tshark {theirs:.3} (ms)"));
    }
}

/// Compare our records with the reference's calls; return every disagreement.
fn compare(file: &str, ours: &[CallRecord], reference: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let theirs = reference["calls"].as_array().cloned().unwrap_or_default();
    if ours.len() != theirs.len() {
        problems.push(format!("{file}: callwarden found {} calls, tshark {}", ours.len(), theirs.len()));
    }
    for t in &theirs {
        let cid = t["call_id"].as_str().unwrap_or_default();
        let invite = secs_to_ms(&t["invite_at"]).unwrap_or(f64::NAN);
        // The same Call-ID may start twice: take ours nearest in time.
        let Some(o) = ours
            .iter()
            .filter(|o| o.call_id == cid)
            .min_by(|a, b| (ms(a.started_at) - invite).abs().total_cmp(&(ms(b.started_at) - invite).abs()))
        else {
            problems.push(format!("{file}: call {cid} missing from callwarden's records"));
            continue;
        };
        let c = &cid[..cid.len().min(24)];
        close("started_at", file, c, ms(o.started_at), invite, &mut problems);
        let from_user = t["from_user"].as_str().unwrap_or("");
        if o.caller != from_user && !(from_user == "anonymous" && o.caller_display.is_some()) {
            problems.push(format!("{file} {c}: caller {:?} vs From user {from_user:?}", o.caller));
        }
        let to_user = t["to_user"].as_str().unwrap_or("");
        if o.callee != to_user {
            problems.push(format!("{file} {c}: callee {:?} vs To user {to_user:?}", o.callee));
        }
        let ruri = t["ruri_user"].as_str().unwrap_or("");
        if o.dialled != ruri {
            problems.push(format!("{file} {c}: dialled {:?} vs R-URI user {ruri:?}", o.dialled));
        }
        let answered = t["answered"].as_bool().unwrap_or(false);
        if o.answered != answered {
            problems.push(format!("{file} {c}: answered {} vs {answered}", o.answered));
        }
        if let Some(status) = t["final_status"].as_u64() {
            if o.sip_status.map(u64::from) != Some(status) {
                problems.push(format!("{file} {c}: status {:?} vs {status}", o.sip_status));
            }
        }
        match (o.ringing_at, secs_to_ms(&t["ringing_at"])) {
            (Some(a), Some(b)) => close("ringing_at", file, c, ms(a), b, &mut problems),
            (None, None) => {}
            (a, b) => problems.push(format!("{file} {c}: ringing_at {a:?} vs {b:?}")),
        }
        match (o.answered_at, secs_to_ms(&t["answered_at"])) {
            (Some(a), Some(b)) => close("answered_at", file, c, ms(a), b, &mut problems),
            (None, None) => {}
            (a, b) => problems.push(format!("{file} {c}: answered_at {a:?} vs {b:?}")),
        }
        // tshark's reading ends a call only at a BYE, CANCEL or final failure; ours also
        // by timeout or the end of the capture, where it has nothing to compare.
        let ending = t["ending"].as_str().unwrap_or("none");
        if ending != "none" {
            if let Some(end) = secs_to_ms(&t["ended_at"]) {
                close("ended_at", file, c, ms(o.ended_at), end, &mut problems);
            }
            let reason_ok = match ending {
                "bye" => matches!(o.end_reason, EndReason::CallerBye | EndReason::CalleeBye),
                "cancel" => o.end_reason == EndReason::Cancelled,
                "status" => matches!(o.end_reason, EndReason::Busy | EndReason::Rejected | EndReason::NoAnswer),
                _ => true,
            };
            if !reason_ok {
                problems.push(format!("{file} {c}: end reason {} vs tshark's {ending}", o.end_reason.as_str()));
            }
        }
        if let Some(r) = t["ring_ms"].as_f64() {
            close("ring_ms", file, c, o.ring_ms as f64, r, &mut problems);
            if let Some(rings) = t["rings"].as_u64() {
                if u64::from(o.rings) != rings {
                    problems.push(format!("{file} {c}: rings {} vs {rings}", o.rings));
                }
            }
        }
        if let Some(talk) = t["talk_ms"].as_f64() {
            close("talk_ms", file, c, o.talk_ms as f64, talk, &mut problems);
        }
    }
    problems
}

fn captures() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tests/fixtures/public", "tests/fixtures/sipp", "tests/fixtures/tunnel"] {
        for e in std::fs::read_dir(root().join(dir)).expect("fixture dir").flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// Captures where callwarden and the reading differ by definition, with why. Everything
/// else must agree exactly.
const EXPECTED: &[(&str, &str)] = &[(
    "sip-tcp-invite-64k-body-segmented.pcap",
    "the INVITE is 65,793 bytes, over the default 64 KiB SIP-over-TCP cap: skipped and counted \
     (tcp-stream); `tcp_64k_invite_with_a_larger_cap` checks it with a larger cap",
)];

#[test]
fn every_capture_agrees_with_the_tshark_reading() {
    let cfg = Config::default();
    let files = captures();
    assert!(files.len() >= 42, "expected the 22 public, 9 sipp and 11 tunnel captures, found {}", files.len());
    let mut problems = Vec::new();
    let mut compared = 0;
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if EXPECTED.iter().any(|(f, _)| *f == name) {
            continue;
        }
        let (ours, _) = replay(path, &cfg);
        let reference = reference(&name);
        compared += reference["calls"].as_array().map_or(0, Vec::len);
        problems.extend(compare(&name, &ours, &reference));
    }
    assert!(problems.is_empty(), "{} disagreement(s):\n{}", problems.len(), problems.join("\n"));
    assert!(compared >= 150, "only {compared} calls compared");
}

#[test]
fn tcp_64k_invite_with_a_larger_cap() {
    let path = root().join("tests/fixtures/public/sip-tcp-invite-64k-body-segmented.pcap");
    // Default cap: the oversized INVITE is skipped and counted, never half-read.
    let (ours, counters) = replay(&path, &Config::default());
    assert!(ours.is_empty());
    assert!(counters.dropped(DropReason::TcpStream) > 0, "{counters:?}");
    // With room for it, it is one call, as tshark reads it.
    let mut cfg = Config::default();
    cfg.capture.tcp_max_message = 128 * 1024;
    let (ours, _) = replay(&path, &cfg);
    let problems = compare(
        "sip-tcp-invite-64k-body-segmented.pcap",
        &ours,
        &reference(path.file_name().and_then(|n| n.to_str()).unwrap_or_default()),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The sipp scenarios of issue 3 give exactly the figures they were made for.
#[test]
fn sipp_scenarios_give_their_rings_and_endings() {
    let cfg = Config::default();
    let cases: &[(&str, u32, bool, EndReason)] = &[
        ("ring-7s.pcap", 2, true, EndReason::CallerBye),
        ("ring-12s.pcap", 3, true, EndReason::CallerBye),
        ("ring-17s.pcap", 4, true, EndReason::CallerBye),
        ("ring-none.pcap", 0, true, EndReason::CallerBye),
        ("busy-486.pcap", 1, false, EndReason::Busy),
        ("cancel-ringing.pcap", 2, false, EndReason::Cancelled),
        ("tcp-call.pcap", 1, true, EndReason::CallerBye),
    ];
    for &(file, rings, answered, reason) in cases {
        let (ours, _) = replay(&root().join("tests/fixtures/sipp").join(file), &cfg);
        assert_eq!(ours.len(), 1, "{file}: {ours:?}");
        let c = &ours[0];
        assert_eq!((c.rings, c.answered, c.end_reason), (rings, answered, reason), "{file}");
        assert_eq!(c.direction.as_str(), "internal", "{file}: 8001 → 8101 with extensions 8000-8999");
    }
    // Through kamailio each dialog is seen on both hops: still one call each.
    let (ours, _) = replay(&root().join("tests/fixtures/sipp/kamailio-proxy.pcap"), &cfg);
    let mut rings: Vec<u32> = ours.iter().map(|c| c.rings).collect();
    rings.sort_unstable();
    assert_eq!(ours.len(), 5, "{ours:?}");
    assert_eq!(rings, vec![0, 1, 1, 2, 2]);
    // And the same five from kamailio's HEP mirror alone.
    let (hep, _) = replay(&root().join("tests/fixtures/sipp/kamailio-hep.pcap"), &cfg);
    let mut hep_rings: Vec<u32> = hep.iter().map(|c| c.rings).collect();
    hep_rings.sort_unstable();
    assert_eq!(hep_rings, rings);
}

/// The capture that carries both the wire SIP and kamailio's HEP copies of it: every
/// message is seen twice (or four times), and still each call once.
#[test]
fn wire_and_hep_copies_are_one_call() {
    let path = root().join("tests/fixtures/public/gen-kamailio-proxy-calls-udp-with-hep3.pcap");
    let (ours, counters) = replay(&path, &Config::default());
    assert_eq!(ours.len(), 7);
    assert!(counters.hep_packets >= 94 || counters.sip_messages >= 94 * 2, "{counters:?}");
}

/// What a call record says, without the key (which carries no capture-specific bytes but
/// is compared through call_id anyway).
fn summary(calls: &[CallRecord]) -> Vec<String> {
    let mut v: Vec<String> = calls
        .iter()
        .map(|c| {
            format!(
                "{} {}->{} start {:?} ring {:?} answer {:?} end {:?} rings {} talk {} {:?} {:?}",
                c.call_id,
                c.caller,
                c.callee,
                c.started_at,
                c.ringing_at,
                c.answered_at,
                c.ended_at,
                c.rings,
                c.talk_ms,
                c.end_reason,
                c.sip_status
            )
        })
        .collect();
    v.sort();
    v
}

/// tests/fixtures/tunnel/make wraps kamailio-proxy.pcap in every encapsulation: each gives
/// exactly the plain capture's calls, SIP messages and RTP packets, and counts its tunnel.
#[test]
fn every_encapsulation_gives_the_plain_calls() {
    use callwarden_core::counters::Tunnel;
    let cfg = Config::default();
    let (plain, pc) = replay(&root().join("tests/fixtures/sipp/kamailio-proxy.pcap"), &cfg);
    assert_eq!(plain.len(), 5);
    let cases: &[(&str, &[Tunnel])] = &[
        ("gre-ip.pcap", &[Tunnel::Gre]),
        ("gre-eth.pcap", &[Tunnel::Gre]),
        ("erspan2.pcap", &[Tunnel::ErspanII]),
        ("erspan3.pcap", &[Tunnel::ErspanIII]),
        ("vxlan.pcap", &[Tunnel::Vxlan]),
        ("tzsp.pcap", &[Tunnel::Tzsp]),
        ("mpls.pcap", &[Tunnel::Mpls]),
        ("qinq.pcap", &[Tunnel::Qinq]),
        ("sll2.pcap", &[]),
        ("multi-link.pcapng", &[]),
    ];
    for (name, kinds) in cases {
        let (ours, c) = replay(&root().join("tests/fixtures/tunnel").join(name), &cfg);
        assert_eq!(summary(&ours), summary(&plain), "{name}");
        assert_eq!((c.frames, c.sip_messages, c.rtp_packets), (pc.frames, pc.sip_messages, pc.rtp_packets), "{name}");
        assert_eq!(c.drops, pc.drops, "{name}");
        for k in *kinds {
            assert_eq!(c.tunnelled(*k), pc.frames, "{name}: every frame came through {k:?}");
        }
        let layers: u64 = c.tunnels.values().sum();
        assert_eq!(layers, pc.frames * kinds.len() as u64, "{name}: {:?}", c.tunnels);
    }
}

/// Every packet twice, a SPAN copy and an ERSPAN copy one hop further 1 ms later: the
/// calls, SIP messages and RTP packets of one copy, the other counted `mirror-duplicate`.
/// With the deduplication off, the second copies are used (and show what it removed).
#[test]
fn two_mirrors_of_each_packet_are_one() {
    let cfg = Config::default();
    let (plain, pc) = replay(&root().join("tests/fixtures/sipp/kamailio-proxy.pcap"), &cfg);
    let path = root().join("tests/fixtures/tunnel/two-mirrors.pcap");
    let (ours, c) = replay(&path, &cfg);
    assert_eq!(summary(&ours), summary(&plain));
    assert_eq!((c.sip_messages, c.rtp_packets), (pc.sip_messages, pc.rtp_packets));
    assert_eq!(c.frames, 2 * pc.frames);
    assert_eq!(c.dropped(DropReason::MirrorDuplicate), pc.frames);

    let mut off = Config::default();
    off.capture.mirror_dedupe_ms = 0;
    let (_, c) = replay(&path, &off);
    assert_eq!(c.dropped(DropReason::MirrorDuplicate), 0);
    assert!(c.rtp_packets > pc.rtp_packets, "without deduplication the RTP is counted twice: {c:?}");
}

/// The same SIP carried as SIP over WebSocket (tests/fixtures/tunnel/make: an HTTP Upgrade
/// per connection, masked client frames, every frame cut over two TCP segments): the same
/// calls and SIP messages as the plain capture, every message read from a frame.
#[test]
fn sip_over_websocket_gives_the_plain_calls() {
    let cfg = Config::default();
    let (plain, pc) = replay(&root().join("tests/fixtures/sipp/kamailio-proxy.pcap"), &cfg);
    let (ours, c) = replay(&root().join("tests/fixtures/tunnel/websocket.pcap"), &cfg);
    assert_eq!(summary(&ours), summary(&plain));
    assert_eq!((c.sip_messages, c.rtp_packets), (pc.sip_messages, pc.rtp_packets));
    assert_eq!(c.total_drops(), pc.total_drops(), "{:?}", c.drops);
    // Not a WebSocket port: the frames are not SIP, and nothing of the calls is found.
    let mut off = Config::default();
    off.capture.ws_ports = vec![];
    let (none, c) = replay(&root().join("tests/fixtures/tunnel/websocket.pcap"), &off);
    assert!(none.is_empty());
    assert_eq!(c.sip_messages, 0);
}
