//! Alerts: every violation the engine raises becomes, at once, a structured `tracing` event
//! (target `callwarden::alert`, fields `rule`, `kind`, `ext`, `number`, `call_id`,
//! `fine_fen`, `detected_at`) and, for each `[alerts].webhooks` URL, a JSON POST of the
//! violation with the field names of `violations --json` (plus `call_started_at`, and no
//! `id`: the store assigns that). A premium-rate call is alerted twice: at its INVITE with
//! `fine_fen: null`, and at its end with the fine.
//!
//! May use: core's `Violation`, `ureq` (a small blocking HTTP client) and std threads.
//! Invariants: `accept` never blocks and never waits on the network — it only logs and
//! `try_send`s to one bounded queue per URL; when a queue is full the alert for that URL is
//! dropped, counted and logged. Each URL has its own delivery thread, so a dead receiver
//! delays only its own alerts, which it delivers in order: each POST is tried up to
//! `max_attempts` times with exponential backoff (`backoff_initial`, doubling, capped at
//! `backoff_max`); a 2xx answer is delivered, anything else (status, refused connection,
//! timeout) is retried, and after the last attempt the alert is counted as failed.
//!
//! Why ureq and std threads, not hyper on tokio: replay has no async runtime and the daemon's
//! runtime belongs to another module; a plain thread with a blocking client works under both,
//! cannot stall a runtime's workers with retries and sleeps, and ureq brings no runtime.

use crate::sink::Sink;
use callwarden_core::policy::Violation;
use callwarden_core::Output;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A violation as a webhook receives it (and as `violations --json` names the fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertJson {
    pub rule: String,
    pub kind: String,
    pub call_id: Option<String>,
    /// Start of that call (RFC 3339): with `call_id`, the call's identity.
    pub call_started_at: Option<String>,
    pub extension: String,
    pub number: String,
    pub detected_at: String,
    /// Fen; null while pending (a premium-rate fine before the call's charge is known).
    pub fine_fen: Option<i64>,
    pub detail: String,
}

impl AlertJson {
    pub fn new(v: &Violation, tz: &jiff::tz::TimeZone) -> AlertJson {
        AlertJson {
            rule: v.rule.clone(),
            kind: v.kind.as_str().to_string(),
            call_id: v.call_id.clone(),
            call_started_at: v.call_started_at.map(|t| rfc3339(t.as_micros(), tz)),
            extension: v.extension.clone(),
            number: v.number.clone(),
            detected_at: rfc3339(v.detected_at.as_micros(), tz),
            fine_fen: v.fine_fen,
            detail: v.detail.clone(),
        }
    }
}

/// RFC 3339 with the zone's offset, to the microsecond (as the store's readers print it).
fn rfc3339(us: i64, tz: &jiff::tz::TimeZone) -> String {
    crate::store::reader::format_ts(us, tz)
}

/// Knobs of the webhook delivery; `Default` is what the daemon and replay use.
#[derive(Clone, Debug)]
pub struct AlertsOptions {
    /// Alerts waiting per URL; beyond this new ones are dropped (and counted).
    pub queue: usize,
    /// Attempts per alert, the first included.
    pub max_attempts: u32,
    /// Pause after the first failed attempt; doubled after each further one ...
    pub backoff_initial: Duration,
    /// ... up to this.
    pub backoff_max: Duration,
    /// Whole-request timeout of one attempt (connect, send, answer).
    pub timeout: Duration,
}

impl Default for AlertsOptions {
    fn default() -> Self {
        AlertsOptions {
            queue: 1024,
            max_attempts: 8,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the webhooks did, summed over the URLs (for logs, `/metrics` and tests).
#[derive(Debug, Default)]
pub struct AlertCounters {
    /// Alerts logged (every violation).
    pub raised: AtomicU64,
    /// POSTs answered 2xx.
    pub delivered: AtomicU64,
    /// Attempts that failed and were tried again.
    pub retries: AtomicU64,
    /// Alerts given up after `max_attempts`, or left undelivered at `close`.
    pub failed: AtomicU64,
    /// Alerts not queued because the URL's queue was full.
    pub dropped: AtomicU64,
}

/// A plain copy of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AlertStats {
    pub raised: u64,
    pub delivered: u64,
    pub retries: u64,
    pub failed: u64,
    pub dropped: u64,
}

impl AlertCounters {
    pub fn snapshot(&self) -> AlertStats {
        AlertStats {
            raised: self.raised.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// One webhook's queue, on the pipeline side.
struct Hook {
    url: String,
    tx: SyncSender<Arc<Vec<u8>>>,
}

/// One webhook's thread, and how to tell it to finish.
struct HookThread {
    url: String,
    /// Tells the thread to deliver what is queued until a deadline, then stop.
    stop: SyncSender<Instant>,
    thread: JoinHandle<()>,
}

/// The alerts sink: log every violation, POST it to every webhook.
pub struct AlertsSink {
    tz: jiff::tz::TimeZone,
    hooks: Vec<Hook>,
    counters: Arc<AlertCounters>,
    closer: Option<AlertsCloser>,
}

/// Ends the delivery threads: taken from the sink before it moves into the driver, so
/// whoever owns the pipeline can let queued alerts go out before the process ends.
pub struct AlertsCloser {
    threads: Vec<HookThread>,
    counters: Arc<AlertCounters>,
}

impl AlertsSink {
    /// Start a delivery thread per URL. `tz` is the site's zone, for the times in the JSON.
    /// An unknown zone falls back to UTC (the config was validated; this is a fallback for
    /// hand-built ones). URLs are not checked here (`Config::parse` did: http or https).
    pub fn new(webhooks: &[String], tz: &str, opts: AlertsOptions) -> anyhow::Result<AlertsSink> {
        let tz = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
        let counters = Arc::new(AlertCounters::default());
        let mut hooks = Vec::with_capacity(webhooks.len());
        let mut threads = Vec::with_capacity(webhooks.len());
        for (i, url) in webhooks.iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel(opts.queue.max(1));
            let (stop_tx, stop_rx) = mpsc::sync_channel(1);
            let worker = Worker::new(url.clone(), opts.clone(), Arc::clone(&counters));
            let thread = std::thread::Builder::new()
                .name(format!("webhook-{i}"))
                .spawn(move || worker.run(rx, stop_rx))
                .map_err(|e| anyhow::anyhow!("cannot start the webhook thread for {url}: {e}"))?;
            hooks.push(Hook { url: url.clone(), tx });
            threads.push(HookThread { url: url.clone(), stop: stop_tx, thread });
        }
        let closer = Some(AlertsCloser { threads, counters: Arc::clone(&counters) });
        Ok(AlertsSink { tz, hooks, counters, closer })
    }

    /// The counters, shared: they stay readable after the sink moved into the driver.
    pub fn counters(&self) -> Arc<AlertCounters> {
        Arc::clone(&self.counters)
    }

    /// The handle that ends the delivery threads (once; `None` after).
    pub fn take_closer(&mut self) -> Option<AlertsCloser> {
        self.closer.take()
    }

    fn log(&self, v: &Violation, json: &AlertJson) {
        tracing::info!(
            target: "callwarden::alert",
            rule = %v.rule,
            kind = v.kind.as_str(),
            ext = %v.extension,
            number = %v.number,
            call_id = v.call_id.as_deref().unwrap_or(""),
            fine_fen = v.fine_fen,
            detected_at = %json.detected_at,
            detail = %v.detail,
            "violation"
        );
    }
}

impl AlertsCloser {
    /// Give each webhook until `grace` from now to deliver what is queued (retries
    /// included), then count what is left as failed, and wait for the threads (an attempt
    /// under way may take up to the request timeout). Alerts accepted after this are
    /// counted as failed. Returns the totals.
    pub fn close(mut self, grace: Duration) -> AlertStats {
        let deadline = Instant::now() + grace;
        for t in &self.threads {
            // The thread may have ended already; nothing to tell it then.
            let _ = t.stop.try_send(deadline);
        }
        for t in std::mem::take(&mut self.threads) {
            if t.thread.join().is_err() {
                tracing::error!(url = %t.url, "webhook thread panicked");
            }
        }
        self.counters.snapshot()
    }
}

impl Drop for AlertsCloser {
    fn drop(&mut self) {
        // Dropped without `close` (the sink was dropped, or a panic unwinds): tell the
        // threads to stop now, but do not wait for an attempt under way.
        let now = Instant::now();
        for t in &self.threads {
            let _ = t.stop.try_send(now);
        }
    }
}

impl Sink for AlertsSink {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        let Output::Violation(v) = out else { return Ok(()) };
        self.counters.raised.fetch_add(1, Ordering::Relaxed);
        let json = AlertJson::new(v, &self.tz);
        self.log(v, &json);
        if self.hooks.is_empty() {
            return Ok(());
        }
        let body = Arc::new(serde_json::to_vec(&json)?);
        for h in &self.hooks {
            match h.tx.try_send(Arc::clone(&body)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %h.url, rule = %v.rule, ext = %v.extension, "webhook queue full; alert dropped");
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(url = %h.url, rule = %v.rule, "webhook thread has stopped; alert not sent");
                }
            }
        }
        Ok(())
    }
}

/// How often an idle delivery thread looks for a close request.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The delivery loop of one URL.
struct Worker {
    url: String,
    opts: AlertsOptions,
    counters: Arc<AlertCounters>,
    agent: ureq::Agent,
    /// Set once `close` asked to stop: give up when this passes.
    deadline: Option<Instant>,
}

impl Worker {
    fn new(url: String, opts: AlertsOptions, counters: Arc<AlertCounters>) -> Worker {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(true)
            .user_agent(concat!("callwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Worker { url, opts, counters, agent, deadline: None }
    }

    fn run(mut self, rx: Receiver<Arc<Vec<u8>>>, stop: Receiver<Instant>) {
        loop {
            if self.deadline.is_none() {
                if let Ok(d) = stop.try_recv() {
                    self.deadline = Some(d);
                }
            }
            // Once asked to close: deliver what is queued, then end (the sink may still
            // be alive; what it sends after that finds the queue gone and is counted).
            let next = match self.deadline {
                Some(_) => rx.try_recv().map_err(|_| ()),
                None => match rx.recv_timeout(STOP_POLL) {
                    Ok(b) => Ok(b),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                },
            };
            match next {
                Ok(body) => self.deliver(&body, &stop),
                Err(()) => break,
            }
        }
        // Left in the queue past the deadline: never delivered.
        let mut left = 0u64;
        while rx.try_recv().is_ok() {
            left += 1;
        }
        if left > 0 {
            self.counters.failed.fetch_add(left, Ordering::Relaxed);
            tracing::error!(url = %self.url, alerts = left, "webhook alerts not delivered before shutdown");
        }
    }

    /// Try one alert until it is delivered, its attempts are used up, or the close
    /// deadline passes.
    fn deliver(&mut self, body: &[u8], stop: &Receiver<Instant>) {
        let mut pause = self.opts.backoff_initial;
        for attempt in 1..=self.opts.max_attempts.max(1) {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            match self.post(body) {
                Ok(()) => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) if attempt < self.opts.max_attempts => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %self.url, attempt, error = %e, retry_in_ms = pause.as_millis() as u64, "webhook failed; retrying");
                    if !self.wait(pause, stop) {
                        break;
                    }
                    pause = pause.saturating_mul(2).min(self.opts.backoff_max);
                }
                Err(e) => {
                    tracing::error!(url = %self.url, attempts = attempt, error = %e, "webhook failed; alert given up");
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        tracing::error!(url = %self.url, "webhook not delivered before shutdown; alert given up");
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Sleep `pause`, cut short by `close`. False when the close deadline is reached.
    fn wait(&mut self, pause: Duration, stop: &Receiver<Instant>) -> bool {
        let until = Instant::now() + pause;
        let until = self.deadline.map_or(until, |d| until.min(d));
        if self.deadline.is_none() {
            match stop.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(d) => {
                    self.deadline = Some(d);
                    // Asked to close: retry now if there is time left, else give up.
                    return Instant::now() < d;
                }
                Err(RecvTimeoutError::Timeout) => return true,
                // The sink is gone without a close (dropped): do not retry any more.
                Err(RecvTimeoutError::Disconnected) => {
                    self.deadline = Some(Instant::now());
                    return false;
                }
            }
        }
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        self.deadline.is_none_or(|d| Instant::now() < d)
    }

    fn post(&self, body: &[u8]) -> Result<(), ureq::Error> {
        self.agent.post(&self.url).header("Content-Type", "application/json").send(body)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callwarden_core::policy::ViolationKind;
    use callwarden_core::Ts;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    /// A small HTTP receiver on 127.0.0.1: answers 503 to the first `fail_first` requests,
    /// then 200; keeps the bodies of every request (failed ones too) in order.
    struct Receiver {
        url: String,
        bodies: Arc<Mutex<Vec<(u16, String)>>>,
    }

    fn receiver(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        std::thread::spawn(move || {
            let mut n = 0usize;
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0usize;
                let mut line = String::new();
                let mut first = true;
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if first {
                        assert!(line.starts_with("POST /hook HTTP/1.1"), "{line}");
                        first = false;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                n += 1;
                let status = if n <= fail_first { 503 } else { 200 };
                seen.lock().unwrap().push((status, String::from_utf8(body).unwrap()));
                let reason = if status == 200 { "OK" } else { "Service Unavailable" };
                let _ = write!(s, "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Receiver { url, bodies }
    }

    fn violation(rule: &str, fine: Option<i64>) -> Violation {
        Violation {
            rule: rule.into(),
            kind: ViolationKind::PremiumRate,
            call_id: Some("abc@host".into()),
            call_started_at: Some(Ts(1_772_407_800_000_000)),
            call_from_tag: None,
            extension: "8001".into(),
            number: "16800001234".into(),
            detected_at: Ts(1_772_407_800_000_000),
            fine_fen: fine,
            detail: "dialled 016800001234 → 16800001234".into(),
        }
    }

    fn fast() -> AlertsOptions {
        AlertsOptions {
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(80),
            timeout: Duration::from_secs(5),
            ..AlertsOptions::default()
        }
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn json_has_the_violation_field_names() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let j = serde_json::to_value(AlertJson::new(&violation("OUT-1", None), &tz)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "rule": "OUT-1", "kind": "premium-rate", "call_id": "abc@host",
                "call_started_at": "2026-03-02T07:30:00.000000+08:00", "extension": "8001",
                "number": "16800001234", "detected_at": "2026-03-02T07:30:00.000000+08:00",
                "fine_fen": null, "detail": "dialled 016800001234 → 16800001234"
            })
        );
    }

    #[test]
    fn retries_until_the_receiver_accepts_and_keeps_order() {
        let rx = receiver(3);
        let mut sink = AlertsSink::new(std::slice::from_ref(&rx.url), "Asia/Shanghai", fast()).unwrap();
        let t0 = Instant::now();
        sink.accept(&Output::Violation(violation("OUT-1", None))).unwrap();
        sink.accept(&Output::Violation(violation("OUT-1", Some(11_000)))).unwrap();
        // accept only queues: far less than one backoff pause.
        assert!(t0.elapsed() < Duration::from_millis(20), "accept blocked for {:?}", t0.elapsed());
        let c = sink.counters();
        wait_for("two deliveries", || c.snapshot().delivered == 2);
        let stats = sink.take_closer().unwrap().close(Duration::from_secs(5));
        assert_eq!(stats, AlertStats { raised: 2, delivered: 2, retries: 3, failed: 0, dropped: 0 });
        let got = rx.bodies.lock().unwrap().clone();
        let statuses: Vec<u16> = got.iter().map(|g| g.0).collect();
        assert_eq!(statuses, [503, 503, 503, 200, 200]);
        // The first alert was retried (same body each time) and delivered before the second.
        let fines: Vec<serde_json::Value> = got
            .iter()
            .map(|(_, b)| serde_json::from_str::<serde_json::Value>(b).unwrap()["fine_fen"].clone())
            .collect();
        assert_eq!(
            fines,
            [
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::Value::Null,
                11_000.into()
            ]
        );
    }

    #[test]
    fn gives_up_after_max_attempts_with_capped_backoff() {
        let rx = receiver(usize::MAX);
        let opts = AlertsOptions { max_attempts: 4, ..fast() };
        let mut sink = AlertsSink::new(std::slice::from_ref(&rx.url), "UTC", opts).unwrap();
        let t0 = Instant::now();
        sink.accept(&Output::Violation(violation("OUT-2", Some(5000)))).unwrap();
        let c = sink.counters();
        wait_for("the alert to be given up", || c.snapshot().failed == 1);
        // Pauses 20 + 40 + 80 (capped) ms between the four attempts.
        assert!(t0.elapsed() >= Duration::from_millis(140), "{:?}", t0.elapsed());
        let stats = sink.take_closer().unwrap().close(Duration::from_secs(1));
        assert_eq!(stats, AlertStats { raised: 1, delivered: 0, retries: 3, failed: 1, dropped: 0 });
        assert_eq!(rx.bodies.lock().unwrap().len(), 4);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        // Nothing listens on this port once the listener is dropped: every attempt fails
        // at once, and the long backoff keeps the worker busy with the first alert.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let opts = AlertsOptions { queue: 2, backoff_initial: Duration::from_secs(30), ..fast() };
        let mut sink = AlertsSink::new(&[format!("http://127.0.0.1:{port}/")], "UTC", opts).unwrap();
        let c = sink.counters();
        sink.accept(&Output::Violation(violation("OUT-1", None))).unwrap();
        wait_for("the first attempt to fail", || c.snapshot().retries == 1);
        let t0 = Instant::now();
        for _ in 0..5 {
            sink.accept(&Output::Violation(violation("OUT-1", None))).unwrap();
        }
        assert!(t0.elapsed() < Duration::from_millis(50), "accept blocked for {:?}", t0.elapsed());
        // One is in the worker, two fit the queue, three are dropped.
        assert_eq!(c.snapshot().dropped, 3);
        // Closing does not wait out the 30 s backoff: the grace is what bounds it.
        let t0 = Instant::now();
        let stats = sink.take_closer().unwrap().close(Duration::from_millis(200));
        assert!(t0.elapsed() < Duration::from_secs(5), "close took {:?}", t0.elapsed());
        assert_eq!((stats.raised, stats.delivered, stats.dropped), (6, 0, 3));
        assert_eq!(stats.failed, 3, "the one being retried and the two queued");
    }

    #[test]
    fn close_delivers_what_is_queued_within_the_grace() {
        let rx = receiver(1);
        let mut sink = AlertsSink::new(std::slice::from_ref(&rx.url), "UTC", fast()).unwrap();
        for fine in [1, 2, 3] {
            sink.accept(&Output::Violation(violation("OUT-2", Some(fine)))).unwrap();
        }
        // Closed at once, the sink still alive: the queue is delivered, the retry included.
        let stats = sink.take_closer().unwrap().close(Duration::from_secs(10));
        assert_eq!(stats, AlertStats { raised: 3, delivered: 3, retries: 1, failed: 0, dropped: 0 });
        // Accepted after the close: the queue is gone, counted as failed, still no block.
        sink.accept(&Output::Violation(violation("OUT-2", Some(4)))).unwrap();
        assert_eq!(sink.counters().snapshot().failed, 1);
    }

    /// A writer for the tracing subscriber that keeps what was written.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_violation_is_a_structured_log_event() {
        let out = Captured::default();
        let w = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut sink = AlertsSink::new(&[], "Asia/Shanghai", AlertsOptions::default()).unwrap();
            sink.accept(&Output::Violation(violation("OUT-1", Some(11_000)))).unwrap();
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        for field in [
            " INFO callwarden::alert: violation",
            "rule=OUT-1",
            "kind=\"premium-rate\"",
            "ext=8001",
            "number=16800001234",
            "call_id=\"abc@host\"",
            "fine_fen=11000",
            "detected_at=2026-03-02T07:30:00.000000+08:00",
        ] {
            assert!(text.contains(field), "{field} not in {text}");
        }
    }

    #[test]
    fn without_webhooks_it_only_logs_and_ignores_other_outputs() {
        let mut sink = AlertsSink::new(&[], "UTC", AlertsOptions::default()).unwrap();
        sink.accept(&Output::Violation(violation("OUT-1", None))).unwrap();
        let other = Output::Call(callwarden_core::track::CallEvent::Ringing {
            key: callwarden_core::track::CallKey(1),
            at: Ts(0),
        });
        sink.accept(&other).unwrap();
        assert_eq!(
            sink.take_closer().unwrap().close(Duration::ZERO),
            AlertStats { raised: 1, ..AlertStats::default() }
        );
    }
}
