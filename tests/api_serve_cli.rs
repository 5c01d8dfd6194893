//! `callwarden serve` as a person runs it: the built binary over a database made by
//! `callwarden replay`, on 127.0.0.1 with an ephemeral port (read from what it prints),
//! answering the page and the API, and stopping cleanly (exit 0) on SIGTERM. Without
//! tokens it refuses a non-loopback address (exit 1, before saying it serves).

mod api_support;

use api_support::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_then_stops_on_sigterm() {
    let site = Site::new();
    site.replay(&[&Path::new(PUBLIC).join("gen-sipp-mixed-calls-udp.pcap")]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_callwarden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&site.config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve ended before saying where it listens").unwrap();
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.trim_end_matches('/').to_string();
        }
    };
    let c = client();
    let health = c.get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let page = c.get(format!("http://{addr}/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<script src=\"/app.js\""), "{page}");
    let calls = get_json(&c, &format!("http://{addr}/api/calls?limit=1000"), SUP).await;
    assert_eq!(calls["calls"].as_array().unwrap().len(), 7);
    let res = c.get(format!("http://{addr}/api/calls")).send().await.unwrap();
    assert_eq!(res.status(), 401, "tokens are configured: none given is refused");

    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "serve after SIGTERM: {status}");

    // No tokens: local mode refuses a wildcard address.
    std::fs::write(&site.config, "[site]\ntimezone = \"Asia/Shanghai\"\nextensions = [\"1000-1099\"]\n").unwrap();
    let out = site.cli(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen") && !err.contains("serving"), "{err}");
}
