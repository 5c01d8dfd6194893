//! The HTTP server's bounds, so no client can hold what others need: a connection cap
//! (extra connections are closed at once, counted), a header-read timeout that also
//! closes idle keep-alive connections (hyper's, armed whenever a request head is awaited),
//! an SSE subscriber cap (503 beyond it), a request body limit, and failed logins limited
//! per address (429). `serve` runs its own accept loop over hyper for the first two,
//! since `axum::serve` sets no timer and no cap.
//! May use: tokio, hyper, hyper-util, axum. Invariants: a connection's permit is held for
//! the connection's whole life; an SSE slot for the stream's whole life; the login table
//! never holds more than `LOGIN_TABLE_MAX` addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once; the next ones are closed on accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// Time a client has to send a whole request head, and the longest a kept-alive
/// connection may sit idle.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head hyper buffers.
pub const MAX_HEAD: usize = 32 * 1024;
/// Largest request body (the API's only bodies are a login and an approval).
pub const MAX_BODY: usize = 64 * 1024;
/// Live event streams at once.
pub const MAX_SSE: usize = 64;
/// Failed logins an address may make in `LOGIN_WINDOW` before it gets 429s.
pub const LOGIN_FAILURES: u32 = 10;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
const LOGIN_TABLE_MAX: usize = 4096;

/// One place of `MAX_SSE`; given back when dropped (the stream ended).
pub struct SseSlot(Arc<AtomicUsize>);

impl Drop for SseSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Open SSE streams.
#[derive(Default)]
pub struct SseCount(Arc<AtomicUsize>);

impl SseCount {
    pub fn take(&self, max: usize) -> Option<SseSlot> {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| SseSlot(self.0.clone()))
    }
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Failed logins by address, in fixed windows.
#[derive(Default)]
pub struct LoginLimiter(Mutex<HashMap<IpAddr, (Instant, u32)>>);

impl LoginLimiter {
    /// May `ip` try a login now?
    pub fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.get(&ip).is_none_or(|&(since, n)| now.duration_since(since) >= LOGIN_WINDOW || n < LOGIN_FAILURES)
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() >= LOGIN_TABLE_MAX {
            t.retain(|_, (since, _)| now.duration_since(*since) < LOGIN_WINDOW);
            if t.len() >= LOGIN_TABLE_MAX {
                // Still full of fresh entries (a spread-out attack): forget the lot
                // rather than grow; each address then starts a new window.
                t.clear();
            }
        }
        let e = t.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= LOGIN_WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

/// Serve `app` on `listener` until `shutdown`: each connection under a permit of
/// `MAX_CONNECTIONS`, HTTP/1.1 with `HEADER_READ_TIMEOUT`; on shutdown, connections in
/// flight finish their requests (at most `drain` long).
pub async fn serve_bounded(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain: Duration,
    refused: Arc<std::sync::atomic::AtomicU64>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    let conns = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            acc = listener.accept() => match acc {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: log once a minute, back off.
                    if last_accept_error.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::error!(error = %e, "HTTP: cannot accept a connection");
                        last_accept_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let svc = app.clone().map_request(move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            req
        });
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_buf_size(MAX_HEAD);
        let conn = b.serve_connection(TokioIo::new(stream), hyper_util::service::TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("HTTP: connections still open after {drain:?} at shutdown; closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_slots_are_capped_and_given_back() {
        let c = SseCount::default();
        let slots: Vec<SseSlot> = (0..3).filter_map(|_| c.take(3)).collect();
        assert_eq!((slots.len(), c.open()), (3, 3));
        assert!(c.take(3).is_none());
        drop(slots);
        assert_eq!(c.open(), 0);
        assert!(c.take(3).is_some());
    }

    #[test]
    fn logins_fail_ten_times_a_minute_per_address() {
        let l = LoginLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        for _ in 0..LOGIN_FAILURES {
            assert!(l.allowed(a, t));
            l.failed(a, t);
        }
        assert!(!l.allowed(a, t + Duration::from_secs(59)));
        assert!(l.allowed(b, t), "another address is not held back");
        assert!(l.allowed(a, t + LOGIN_WINDOW), "a new window");
    }
}
