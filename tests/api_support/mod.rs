//! Shared by the API and browser tests: a site (config, database filled by replaying real
//! captures with the built binary, recordings folder), recordings added as the recorder
//! stores them (a row of migration 0002 and a WAV under the folder), and a real server on
//! 127.0.0.1 (an ephemeral port) started in-process with `callwarden::api::serve`.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use callwarden::api::{self, AppState, LiveEvent};
use callwarden::settings::Settings;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::sync::{broadcast, oneshot};

pub const PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/public");
pub const SIPP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sipp");

/// Callers 1000–1099 of the SIPp and synthetic captures are our extensions; 1003 dials
/// the premium number 16800123 in `gen-sipp-mixed-calls-udp.pcap`. The PBX of the
/// leg-linking captures (tests/fixtures/legs, 10.0.0.2) is configured: no other capture
/// has that address, so their calls stay one dialog each.
pub const CONFIG: &str = r#"
[site]
timezone = "Asia/Shanghai"
extensions = ["1000-1099", "8000-8999"]
pbx = ["10.0.0.2"]

[[group]]
name = "dispatch"
extensions = ["1001-1009"]
record = "always"

[[api.token]]
name = "sup-1"
token = "sup-secret"
role = "supervisor"

[[api.token]]
name = "audit-1"
token = "audit-secret"
role = "auditor"

[[api.token]]
name = "audit-2"
token = "audit2-secret"
role = "auditor"

[[api.token]]
name = "admin-1"
token = "admin-secret"
role = "admin"
"#;

/// The leg-linking captures (tests/fixtures/legs/make.py), made into a temp folder.
pub fn legs_captures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/legs/make.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "make.py: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

pub const SUP: &str = "sup-secret";
pub const AUDIT: &str = "audit-secret";
pub const AUDIT2: &str = "audit2-secret";
pub const ADMIN: &str = "admin-secret";

pub struct Site {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
    pub recordings: PathBuf,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("callwarden.toml");
        std::fs::write(&config, CONFIG).unwrap();
        let recordings = dir.path().join("recordings");
        std::fs::create_dir_all(&recordings).unwrap();
        Site { db: dir.path().join("callwarden.db"), config, recordings, dir }
    }

    /// `callwarden replay` (the built binary) of these captures into the site's database.
    pub fn replay(&self, files: &[&Path]) {
        let out = self.cli(
            &[&["replay", "--quiet"][..], &files.iter().map(|f| f.to_str().unwrap()).collect::<Vec<_>>()].concat(),
        );
        assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Run the binary with this site's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_callwarden"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    /// `callwarden <args> --json` parsed.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(&[args, &["--json"]].concat());
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn settings(&self) -> Settings {
        Settings::load(Some(&self.config), None).unwrap()
    }

    pub fn state(&self) -> AppState {
        AppState::new(self.db.clone(), &self.settings()).unwrap()
    }

    /// A recording row as the recorder stores it, with a WAV of `secs` seconds of a
    /// stereo tone (440 Hz left, 660 Hz right) at `rel` under the recordings folder.
    pub fn add_recording(
        &self,
        id: &str,
        call_id: &str,
        started_us: i64,
        status: &str,
        rel: &str,
        secs: u32,
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        if secs > 0 {
            let path = self.recordings.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: 8000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            for i in 0..(8000 * secs) {
                let t = f64::from(i) / 8000.0;
                w.write_sample((8000.0 * (t * 440.0 * std::f64::consts::TAU).sin()) as i16).unwrap();
                w.write_sample((6000.0 * (t * 660.0 * std::f64::consts::TAU).sin()) as i16).unwrap();
            }
            w.finalize().unwrap();
            bytes = std::fs::read(&path).unwrap();
        }
        // Sealed as the recorder seals it: the file's SHA-256 (NULL when there is no file).
        let sha = (!bytes.is_empty()).then(|| {
            use sha2::Digest;
            sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>()
        });
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        conn.execute(
            "INSERT INTO recordings (id, call_id, call_started_us, caller, callee, dialled, group_name, path, status,
                 sample_rate, channels, frames, duration_ms, bytes, sha256, media_started_us, ended_us, retention_days,
                 day, month)
             VALUES (?1, ?2, ?3, '1001', '2001', '2001', 'dispatch', ?4, ?5, 8000, 2, ?6, ?7, ?8, ?9, ?3, ?3 + ?7 * 1000,
                 365, '2026-11-02', '2026-11')",
            rusqlite::params![
                id,
                call_id,
                started_us,
                rel,
                status,
                i64::from(secs) * 8000,
                i64::from(secs) * 1000,
                bytes.len() as i64,
                sha
            ],
        )
        .unwrap();
        bytes
    }
}

/// A server on 127.0.0.1:<ephemeral> until dropped (or `stop`ped).
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    pub async fn start(state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(api::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Server { addr, stop: Some(tx), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stop, and wait until `serve` has returned (all connections done).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await.unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn get_json(c: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let res = c.get(url).bearer_auth(token).send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// The events channel the daemon would give the API.
pub fn events() -> broadcast::Sender<LiveEvent> {
    broadcast::channel(1024).0
}

/// Feed a capture file through the real pipeline (Driver + Engine) to these sinks.
pub fn drive(settings: &Settings, file: &Path, sinks: Vec<Box<dyn callwarden::sink::Sink + Send>>) {
    use callwarden::capture::file::FileCapture;
    use callwarden::pipeline::Driver;
    let engine = callwarden_core::Engine::new(&settings.config).unwrap();
    let mut d = Driver::new(engine, sinks);
    let mut cap = FileCapture::open(file).unwrap();
    while let Some(f) = cap.next_frame().unwrap() {
        d.feed(f);
    }
    d.finish(callwarden_core::track::EndReason::CaptureEnded);
}
