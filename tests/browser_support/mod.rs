//! Headless Chromium for the page's tests (browser, central_browser): chromedriver in a
//! process group of its own on a free port (the group, with the browsers it started, is
//! killed by id on drop, also on a panic), a WebDriver session over fantoccini, and small
//! helpers: wait until a JavaScript expression holds, read the console, save screenshots
//! under target/tmp/browser/. Needs `mod api_support;` beside it.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use crate::api_support::client;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver in its own process group; the group (chromedriver and the browsers it
/// started) is killed by id on drop.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    pub fn start() -> Driver {
        for p in [CHROMIUM, CHROMEDRIVER] {
            assert!(Path::new(p).exists(), "{p} is missing: run scripts/install-test-deps (chromium chromium-driver)");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        Driver { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (process_group(0)): ends the browsers it began.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

pub async fn connect(driver: &Driver, profile: &Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900", "--lang=en-US",
                format!("--user-data-dir={}", profile.display()),
            ]
        },
        "goog:loggingPrefs": { "browser": "ALL" }
    });
    let caps = caps.as_object().unwrap().clone();
    // chromedriver answers once it listens; try for a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&driver.url()).await {
            Ok(c) => return c,
            Err(e) if std::time::Instant::now() > deadline => panic!("cannot start a browser session: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Every browser console entry since the last read (chromedriver's log endpoint; reading
/// empties it).
pub async fn console(driver: &Driver, session: &str) -> Vec<Value> {
    let res = client()
        .post(format!("{}/session/{session}/se/log", driver.url()))
        .json(&json!({ "type": "browser" }))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    v["value"].as_array().unwrap_or_else(|| panic!("no log from chromedriver: {v}")).clone()
}

/// Evaluate `js` (an expression) until it is true, or fail after `secs` with `what`.
pub async fn wait_js(b: &Client, js: &str, secs: u64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = b.execute(&format!("return !!({js});"), vec![]).await.unwrap();
        if v == Value::Bool(true) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not seen within {secs} s ({js})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn js(b: &Client, script: &str) -> Value {
    b.execute(script, vec![]).await.unwrap()
}

pub fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub async fn screenshot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

pub async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
}
