//! The recorder over crafted captures (tests/fixtures/recording/craft.py): real speech
//! (espeak-ng, encoded by sox to μ-law and A-law) in RTP, with loss, reordering and a
//! duplicate, an SSRC change with sequence and timestamp wrap-around, RFC 4733 DTMF, a
//! hold by re-INVITE to a new port with a 2 s pause, and an undecodable codec (G.729).
//! Each capture's NAME.json says where the speech must land in each channel; the
//! expected samples are sox's decode of the same encoded speech, never callwarden's.
//! The whole WAV is compared, sample for sample, so silence where it belongs is checked
//! too. Needs sox (scripts/install-test-deps).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/recording");

const CONFIG: &str = r#"
[site]
timezone = "Asia/Shanghai"
extensions = ["8000-8999"]

[[group]]
name = "dispatch"
extensions = ["8001-8099"]
record = "always"

[recordings]
dir = "rec"
retention_days = 0
"#;

struct Site {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
    rec: PathBuf,
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("callwarden.toml");
        std::fs::write(&config, CONFIG).unwrap();
        Site { db: tmp.path().join("cw.db"), rec: tmp.path().join("rec"), config, _tmp: tmp }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_callwarden"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--db")
            .arg(&self.db)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Replay one crafted capture; its one recording row.
    fn record(&self, name: &str) -> Value {
        self.ok(&["replay", "-q", &format!("{DIR}/{name}.pcap")]);
        let v: Value = serde_json::from_str(&self.ok(&["recordings", "list", "--json"])).unwrap();
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 1, "{name}: {v:#}");
        rows[0].clone()
    }
}

/// sox's decode of the committed speech file (`ul` or `al`).
fn speech(kind: &str) -> Vec<i16> {
    let out = Command::new("sox")
        .args(["-t", kind, "-r", "8000", "-c", "1"])
        .arg(Path::new(DIR).join(format!("speech.{kind}")))
        .args(["-t", "s16", "-e", "signed", "-b", "16", "-L", "-"])
        .output()
        .expect("sox (scripts/install-test-deps)");
    assert!(out.status.success());
    out.stdout.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

fn expected(spec: &Value, channel: &str, frames: usize, decoded: &[i16]) -> Vec<i16> {
    let mut ch = vec![0i16; frames];
    for seg in spec[channel].as_array().unwrap() {
        let at = seg[0].as_u64().unwrap() as usize;
        let from = seg[1].as_u64().unwrap() as usize;
        let n = seg[2].as_u64().unwrap() as usize;
        ch[at..at + n].copy_from_slice(&decoded[from..from + n]);
    }
    ch
}

/// The first frame where two channels differ, for a readable failure.
fn first_difference(a: &[i16], b: &[i16]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn check_audio(name: &str) -> Value {
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/{name}.json")).unwrap()).unwrap();
    let decoded = speech(if spec["codec"] == 8 { "al" } else { "ul" });
    let s = Site::new();
    let row = s.record(name);
    assert_eq!(row["status"], "complete", "{name}: {row:#}");
    assert_eq!(row["dtmf"], spec["dtmf"], "{name}");
    assert!(row["undecodable"].as_array().unwrap().is_empty(), "{name}");
    let mut r = hound::WavReader::open(s.rec.join(row["path"].as_str().unwrap())).unwrap();
    assert_eq!((r.spec().channels, r.spec().sample_rate, r.spec().bits_per_sample), (2, 8000, 16));
    let all: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = all.iter().step_by(2).copied().collect();
    let right: Vec<i16> = all.iter().skip(1).step_by(2).copied().collect();
    let frames = spec["frames"].as_u64().unwrap() as usize;
    for (ch, got) in [("left", &left), ("right", &right)] {
        let want = expected(&spec, ch, frames, &decoded);
        assert!(
            first_difference(got, &want).is_none(),
            "{name} {ch}: {} frames, want {}; first difference at frame {:?}",
            got.len(),
            want.len(),
            first_difference(got, &want)
        );
    }
    assert_eq!(row["frames"].as_u64().unwrap() as usize, frames);
    row
}

#[test]
fn speech_in_pcmu_is_recorded_exactly() {
    check_audio("speech-pcmu");
}

#[test]
fn speech_in_pcma_is_recorded_exactly() {
    check_audio("speech-pcma");
}

#[test]
fn lost_packets_are_silence_in_their_place() {
    let row = check_audio("loss");
    assert!(row["counters"]["gap_frames_left"].as_u64().unwrap() >= 6 * 160, "{:#}", row["counters"]);
}

#[test]
fn reordered_and_duplicated_packets_give_the_in_order_recording() {
    let row = check_audio("reorder");
    assert_eq!(row["counters"]["duplicates"], 1, "{:#}", row["counters"]);
}

#[test]
fn an_ssrc_change_and_wrap_around_keep_the_timeline() {
    let row = check_audio("ssrc");
    assert!(row["counters"]["streams"].as_u64().unwrap() >= 3, "{:#}", row["counters"]);
}

#[test]
fn dtmf_events_are_digits_not_audio() {
    check_audio("dtmf");
}

#[test]
fn hold_by_reinvite_to_a_new_port_keeps_the_pause_as_silence() {
    check_audio("hold");
}

#[test]
fn an_undecodable_codec_is_kept_raw_and_marked() {
    let s = Site::new();
    let row = s.record("g729");
    assert_eq!(row["status"], "complete", "{row:#}");
    assert_eq!(row["undecodable"], serde_json::json!([18]));
    let raws: Vec<&str> = row["raw_paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(raws.len(), 2, "{row:#}");
    // rtpdump (rtptools' binary format): the text line, the 16-byte file header, then per
    // packet a 8-byte header (length, packet length, offset) and the RTP packet.
    for rel in &raws {
        let bytes = std::fs::read(s.rec.join(rel)).unwrap();
        // The source address is not known to the recorder (rtpdump.rs): 0.0.0.0/0.
        assert!(bytes.starts_with(b"#!rtpplay1.0 "), "{rel}");
        let ssrc: u32 = if rel.contains(".caller.") { 0x1111 } else { 0x2222 };
        let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
        let mut at = nl + 1 + 16;
        let mut packets = 0;
        while at < bytes.len() {
            let len = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
            let plen = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
            assert_eq!(len, plen + 8);
            let rtp = &bytes[at + 8..at + len];
            assert_eq!(rtp[1] & 0x7f, 18);
            assert_eq!(rtp.len(), 12 + 20);
            // The packet as sent: sequence, timestamp, SSRC and payload (craft.py).
            assert_eq!(u16::from_be_bytes([rtp[2], rtp[3]]), packets as u16);
            assert_eq!(u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]), 160 * packets as u32);
            assert_eq!(u32::from_be_bytes([rtp[8], rtp[9], rtp[10], rtp[11]]), ssrc);
            let body: Vec<u8> = (0..20).map(|i| ((packets * 7 + i) & 0xff) as u8).collect();
            assert_eq!(&rtp[12..], &body[..]);
            packets += 1;
            at += len;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(packets, 50, "{rel}");
    }
    // The raw files are evidence too: verify hashes them.
    assert!(s.ok(&["recordings", "verify"]).contains("2 file(s) checked, 2 ok"));
    let f = s.rec.join(raws[0]);
    let mut b = std::fs::read(&f).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    std::fs::write(&f, b).unwrap();
    let v = s.run(&["recordings", "verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stdout).contains("CHANGED"));
}
