//! Live events over a real server: a client connected to `GET /api/events` receives the
//! premium-rate violation (OUT-1, 1003 → 16800123) while `gen-sipp-mixed-calls-udp.pcap`
//! is replayed through the real pipeline (Driver + Engine) with an `EventsSink` on the
//! same channel the server reads; `/api/live` lists calls in progress from the sink; and
//! a server stopped with a client still connected to the stream returns (the stream ends).

mod api_support;

use api_support::*;
use callwarden::api::EventsSink;
use std::path::Path;
use std::time::Duration;

/// Read SSE frames from `res` until one named `name` whose data satisfies `want`, or time out.
async fn wait_for(
    res: &mut reqwest::Response,
    buf: &mut String,
    seen: &mut Vec<String>,
    name: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut event = "message".to_string();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if data.is_empty() {
                continue; // keep-alive comment
            }
            seen.push(event.clone());
            let v: serde_json::Value = serde_json::from_str(&data).unwrap();
            if event == name && want(&v) {
                return v;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {name} event within 20 s; saw {seen:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before {name}; saw {seen:?}"));
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_delivers_the_premium_violation_while_a_capture_is_replayed() {
    let site = Site::new();
    // The database exists (empty) as under the daemon.
    site.replay(&[&Path::new(SIPP).join("ring-7s.pcap")]);
    let tx = events();
    let sink = EventsSink::new(tx.clone(), "Asia/Shanghai");
    let state = site.state().with_events(tx.clone()).with_live_calls(sink.live_calls_fn());
    let srv = Server::start(state).await;
    let c = client();

    let mut res = c.get(srv.url("/api/events")).bearer_auth(SUP).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let (mut buf, mut seen) = (String::new(), Vec::new());
    let hello = wait_for(&mut res, &mut buf, &mut seen, "hello", |_| true).await;
    assert_eq!(hello["live"], true);
    assert_eq!(hello["who"], "sup-1");

    // Replay on a blocking thread while the client is connected.
    let settings = site.settings();
    let replay = tokio::task::spawn_blocking(move || {
        drive(&settings, &Path::new(PUBLIC).join("gen-sipp-mixed-calls-udp.pcap"), vec![Box::new(sink)]);
    });
    let started = wait_for(&mut res, &mut buf, &mut seen, "call-started", |v| v["caller"] == "1003").await;
    assert_eq!(started["callee"], "16800123");
    let v = wait_for(&mut res, &mut buf, &mut seen, "violation", |v| v["rule"] == "OUT-1").await;
    assert_eq!(v["kind"], "premium-rate");
    assert_eq!(v["extension"], "1003");
    assert_eq!(v["number"], "16800123");
    assert_eq!(v["call_id"], "3-8866@127.0.0.1");
    assert!(v["detected_at"].as_str().unwrap().ends_with("+08:00"));
    // The call's end follows its violation on the same stream.
    wait_for(&mut res, &mut buf, &mut seen, "call-ended", |e| e["call_id"] == "3-8866@127.0.0.1").await;
    replay.await.unwrap();
    let pos = |n: &str| seen.iter().position(|e| e == n).unwrap();
    assert!(pos("call-started") < pos("violation"), "{seen:?}");

    // After the replay nothing is in progress.
    let live = get_json(&c, &srv.url("/api/live"), SUP).await;
    assert_eq!(live["live"], true);
    assert_eq!(live["calls"].as_array().unwrap().len(), 0);

    // Stopping the server ends the stream instead of waiting for the client forever.
    let stopped = tokio::time::timeout(Duration::from_secs(10), srv.stop()).await;
    assert!(stopped.is_ok(), "serve did not return with an SSE client connected");
    let rest =
        tokio::time::timeout(Duration::from_secs(5), async { while let Ok(Some(_)) = res.chunk().await {} }).await;
    assert!(rest.is_ok(), "the stream did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_calls_are_listed_while_in_progress_and_serve_mode_says_not_live() {
    let site = Site::new();
    site.replay(&[&Path::new(SIPP).join("ring-7s.pcap")]);
    // Under `serve` there is no capture: the stream says so, the list is empty.
    let srv = Server::start(site.state()).await;
    let c = client();
    let live = get_json(&c, &srv.url("/api/live"), SUP).await;
    assert_eq!(live["live"], false);
    let mut res = c.get(srv.url("/api/events")).bearer_auth(SUP).send().await.unwrap();
    let (mut buf, mut seen) = (String::new(), Vec::new());
    let hello = wait_for(&mut res, &mut buf, &mut seen, "hello", |_| true).await;
    assert_eq!(hello["live"], false);
    let res = c.get(srv.url("/api/events")).send().await.unwrap();
    assert_eq!(res.status(), 401, "live events need a token too");
    srv.stop().await.unwrap();

    // A call whose end has not been seen yet is listed, with its state and violations.
    let tx = events();
    let mut sink = EventsSink::new(tx.clone(), "Asia/Shanghai");
    let state = site.state().with_events(tx).with_live_calls(sink.live_calls_fn());
    let srv = Server::start(state).await;
    let settings = site.settings();
    // Feed the capture only up to the premium call's ringing (its INVITE is packet ~20).
    let mut engine = callwarden_core::Engine::new(&settings.config).unwrap();
    let mut cap =
        callwarden::capture::file::FileCapture::open(&Path::new(PUBLIC).join("gen-sipp-mixed-calls-udp.pcap")).unwrap();
    use callwarden::sink::Sink;
    let mut found = false;
    while let Some(f) = cap.next_frame().unwrap() {
        engine.handle_frame(f);
        while let Some(out) = engine.poll_output() {
            sink.accept(&out).unwrap();
        }
        let now = sink.live_calls_fn()();
        if now.iter().any(|c| c.caller == "1003" && c.state == "ringing" && !c.violations.is_empty()) {
            found = true;
            break;
        }
    }
    assert!(found, "the premium call was seen ringing");
    let live = get_json(&c, &srv.url("/api/live"), SUP).await;
    let calls = live["calls"].as_array().unwrap();
    let prem = calls.iter().find(|c| c["caller"] == "1003").unwrap();
    assert_eq!(prem["state"], "ringing");
    assert_eq!(prem["violations"][0]["rule"], "OUT-1");
    assert!(calls.len() >= 3, "1001 and 1002 are still ringing too: {live}");
    srv.stop().await.unwrap();
}
