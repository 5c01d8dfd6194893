//! The API's bounds against the real server on 127.0.0.1: a client that never finishes its
//! request head (slowloris) is disconnected, live event streams are capped (503 beyond),
//! failed logins are limited per address (429), a body over the limit is refused (413),
//! and `/metrics` wants a loopback Host from a loopback peer without a token.

mod api_support;

use api_support::*;
use callwarden::api::limits;
use reqwest::StatusCode;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_are_cut_sse_is_capped_logins_are_limited() {
    let site = Site::new();
    let srv = Server::start(site.state()).await;
    let c = client();

    // Slowloris: 20 connections each sending a head that never ends.
    let addr = srv.addr;
    let slow = tokio::task::spawn_blocking(move || {
        let mut socks: Vec<std::net::TcpStream> = (0..20)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ").unwrap();
                s.set_read_timeout(Some(limits::HEADER_READ_TIMEOUT * 2)).unwrap();
                s
            })
            .collect();
        let t = Instant::now();
        let mut closed = 0;
        for s in &mut socks {
            // Keep dribbling, as slowloris does, until the server hangs up.
            let _ = s.write_all(b"a");
            let mut buf = [0u8; 512];
            // hyper answers 408 or just closes; either way the stream ends.
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        closed += 1;
                        break;
                    }
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        closed += 1;
                        break;
                    }
                    Err(_) => break, // our own read timeout: still open
                }
            }
        }
        (closed, t.elapsed())
    });

    // The SSE cap: MAX_SSE streams open, the next one is refused with 503, and a place
    // freed is taken again.
    let mut streams = Vec::new();
    for i in 0..limits::MAX_SSE {
        let res = c.get(srv.url("/api/events")).bearer_auth(SUP).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "stream {i}");
        streams.push(res);
    }
    let res = c.get(srv.url("/api/events")).bearer_auth(SUP).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let m = c.get(srv.url("/metrics")).bearer_auth(SUP).send().await.unwrap().text().await.unwrap();
    assert!(m.contains(&format!("callwarden_api_sse_streams {}", limits::MAX_SSE)), "{m}");
    drop(streams.pop());
    let t = Instant::now();
    loop {
        let res = c.get(srv.url("/api/events")).bearer_auth(SUP).send().await.unwrap();
        if res.status() == StatusCode::OK {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "the freed place is not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(streams);

    // Failed logins: LOGIN_FAILURES wrong tokens get 401, then even the right one gets 429.
    let login = |token: &str| c.post(srv.url("/api/login")).json(&serde_json::json!({ "token": token })).send();
    for _ in 0..limits::LOGIN_FAILURES {
        assert_eq!(login("guess").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login("guess").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(ADMIN).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);

    // A body over the limit.
    let big = serde_json::json!({ "token": "x".repeat(limits::MAX_BODY + 1) });
    let res = c.post(srv.url("/api/approvals")).bearer_auth(ADMIN).json(&big).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // /metrics from loopback, without a token: only with a loopback Host, and a real port.
    for (host, want) in [("127.0.0.1:1", 200), ("evil.example", 401), ("localhost:abc", 401)] {
        let res = c.get(srv.url("/metrics")).header("host", host).send().await.unwrap();
        assert_eq!(res.status().as_u16(), want, "{host}");
    }

    let (closed, took) = slow.await.unwrap();
    assert_eq!(closed, 20, "every slow head was cut (after {took:?})");
    assert!(took < limits::HEADER_READ_TIMEOUT * 2, "{took:?}");
    // The server still serves.
    assert_eq!(c.get(srv.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    srv.stop().await.unwrap();
}
