//! The daemon's metrics: what `/metrics` (Prometheus text format) and `/healthz` report.
//! Owns `MetricsHandle` (a snapshot the driver thread publishes, plus the capture sources'
//! own atomic counters), `MetricsSink` (tallies of the engine's outputs: calls ended by
//! reason, violations by rule, recording bytes) and `router`, a tiny axum router that the
//! HTTP API's router can merge.
//! May use: core `Counters`/`Output`, `capture::live::SourceStats`, prometheus-client for
//! the text encoding, axum. Invariants: rendering never blocks the pipeline for longer
//! than one snapshot copy (the driver publishes a clone; scrapes read that clone); every
//! counter is monotonic (snapshots only grow); label values are escaped here (`escape_label`).

use crate::capture::live::SourceStats;
use crate::sink::alerts::AlertCounters;
use crate::sink::Sink;
use crate::store::central::forward::ForwardStatus;
use callwarden_core::counters::Tunnel;
use callwarden_core::media::{MediaOut, RecordingEvent};
use callwarden_core::track::CallEvent;
use callwarden_core::{Counters, DropReason, Output};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long the driver may go without publishing before `/healthz` says it is stalled
/// (it publishes every ~250 ms even when idle).
pub const STALL_AFTER: Duration = Duration::from_secs(5);

/// What the driver thread knows, copied out every publish interval.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub counters: Counters,
    pub active_calls: usize,
    pub active_recordings: usize,
    /// Items queued for the store writer and not yet taken.
    pub store_queue: u64,
    /// Frames waiting in the capture → driver channel.
    pub capture_queue: usize,
    /// Wall-clock time minus packet time of the frames fed in the last interval (max), s.
    pub lag_seconds: f64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub sink_errors: u64,
    /// Leg linking (B2BUA legs made one call).
    pub link: callwarden_core::track::LinkStats,
}

/// Tallies of the engine's outputs, kept by `MetricsSink`.
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    pub ended_by_reason: BTreeMap<&'static str, u64>,
    /// Answered calls ended, by direction (the answer rate's numerator).
    pub answered_by_direction: BTreeMap<&'static str, u64>,
    /// Answered calls by rings before answer: 0, 1, 2, 3, 4, 5 or more (ANS-1).
    pub answered_rings: [u64; 6],
    /// (rule, kind) → count.
    pub violations: BTreeMap<(String, String), u64>,
    /// PCM bytes produced for recordings (16-bit stereo frames, silence included).
    pub recording_bytes: u64,
    pub recordings_begun: u64,
}

#[derive(Debug, Default)]
struct State {
    snapshot: Snapshot,
    /// When the driver last published; `None` until it first does.
    published: Option<Instant>,
    sources: Vec<Arc<SourceStats>>,
    /// The alerts sink's delivery counters, when there is one.
    alerts: Option<Arc<AlertCounters>>,
    /// The forwarder to the central store, when one is configured.
    forward: Option<Arc<ForwardStatus>>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    tallies: Arc<Mutex<Tallies>>,
}

/// A cheap, cloneable handle on the daemon's metrics.
#[derive(Clone, Debug, Default)]
pub struct MetricsHandle {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain counters: still worth showing.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MetricsHandle {
    pub fn new() -> MetricsHandle {
        MetricsHandle::default()
    }

    /// Add a capture source whose counters appear under its name.
    pub fn add_source(&self, stats: Arc<SourceStats>) {
        lock(&self.inner.state).sources.push(stats);
    }

    /// Report the alerts sink's counters (alerts raised, webhook deliveries).
    pub fn set_alert_counters(&self, counters: Arc<AlertCounters>) {
        lock(&self.inner.state).alerts = Some(counters);
    }

    /// Report the forwarder's backlog and state (`[store] central`).
    pub fn set_forward_status(&self, status: Arc<ForwardStatus>) {
        lock(&self.inner.state).forward = Some(status);
    }

    /// The forwarder's status as JSON (`/api/central`), when there is a forwarder.
    pub fn forward_json(&self) -> Option<serde_json::Value> {
        lock(&self.inner.state).forward.as_ref().map(|f| f.to_json())
    }

    /// The driver's periodic publication.
    pub fn publish(&self, snapshot: Snapshot) {
        let mut st = lock(&self.inner.state);
        st.snapshot = snapshot;
        st.published = Some(Instant::now());
    }

    /// The sink that tallies outputs into this handle.
    pub fn sink(&self) -> MetricsSink {
        MetricsSink { tallies: self.inner.tallies.clone() }
    }

    pub fn snapshot(&self) -> Snapshot {
        lock(&self.inner.state).snapshot.clone()
    }

    pub fn tallies(&self) -> Tallies {
        lock(&self.inner.tallies).clone()
    }

    /// Has the driver published at least once (false while the daemon is starting).
    pub fn has_published(&self) -> bool {
        lock(&self.inner.state).published.is_some()
    }

    /// `Ok` when the driver published within `STALL_AFTER`; otherwise why not.
    pub fn health(&self) -> Result<(), String> {
        match lock(&self.inner.state).published {
            None => Err("starting: the pipeline has not reported yet".into()),
            Some(t) if t.elapsed() > STALL_AFTER => {
                Err(format!("stalled: the pipeline last reported {:.1} s ago", t.elapsed().as_secs_f64()))
            }
            Some(_) => Ok(()),
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Collect { handle: self.clone() }));
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a label.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Tallies calls ended by reason, violations by rule and recording bytes.
pub struct MetricsSink {
    tallies: Arc<Mutex<Tallies>>,
}

impl Sink for MetricsSink {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        match out {
            Output::Call(CallEvent::Ended(rec)) => {
                let mut t = lock(&self.tallies);
                *t.ended_by_reason.entry(rec.end_reason.as_str()).or_default() += 1;
                if rec.answered {
                    *t.answered_by_direction.entry(rec.direction.as_str()).or_default() += 1;
                    let i = usize::try_from(rec.rings).unwrap_or(usize::MAX).min(5);
                    t.answered_rings[i] += 1;
                }
            }
            Output::Violation(v) => {
                let key = (v.rule.clone(), v.kind.as_str().to_string());
                *lock(&self.tallies).violations.entry(key).or_default() += 1;
            }
            Output::Recording(RecordingEvent::Begin(_)) => lock(&self.tallies).recordings_begun += 1,
            Output::Recording(RecordingEvent::Media { out, .. }) => {
                let bytes = match out {
                    MediaOut::Audio(block) => block.samples.len() as u64 * 2,
                    // Two channels of 16-bit samples per frame.
                    MediaOut::Silence { frames, .. } => frames.saturating_mul(4),
                    MediaOut::Raw { payload, .. } => payload.len() as u64,
                    MediaOut::Start { .. } => 0,
                };
                let mut t = lock(&self.tallies);
                t.recording_bytes = t.recording_bytes.saturating_add(bytes);
            }
            Output::Call(_) | Output::Recording(RecordingEvent::End { .. }) => {}
        }
        Ok(())
    }
}

/// Encodes a consistent copy of the handle's state at each scrape.
#[derive(Debug)]
struct Collect {
    handle: MetricsHandle,
}

type Labels = Vec<(&'static str, String)>;

fn counter_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> std::fmt::Result {
    let c = ConstCounter::new(0u64);
    let mut m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    for (labels, v) in rows {
        let labels: Labels = labels.into_iter().map(|(k, v)| (k, escape_label(&v))).collect();
        let fam = m.encode_family(&labels)?;
        ConstCounter::new(v).encode(fam)?;
    }
    Ok(())
}

/// prometheus-client 0.23 writes label values as given; the text format wants `\`, `"`
/// and newlines escaped (interface names and rule ids come from the config).
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge_i(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

fn gauge_f(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

fn as_i64(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

impl Collector for Collect {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let (snap, sources, alerts, forward) = {
            let st = lock(&self.handle.inner.state);
            (st.snapshot.clone(), st.sources.clone(), st.alerts.clone(), st.forward.clone())
        };
        let tallies = self.handle.tallies();
        let c = &snap.counters;
        let src = |s: &SourceStats| vec![("source", s.name.clone())];
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);

        counter_family(
            &mut enc,
            "callwarden_capture_packets",
            "Packets captured, by source (before the capture queue).",
            sources.iter().map(|s| (src(s), load(&s.packets))),
        )?;
        counter_family(
            &mut enc,
            "callwarden_capture_bytes",
            "Bytes captured, by source.",
            sources.iter().map(|s| (src(s), load(&s.bytes))),
        )?;
        counter_family(
            &mut enc,
            "callwarden_capture_kernel_received",
            "Packets the kernel passed through the capture filter (libpcap ps_recv), by source.",
            sources.iter().filter(|s| s.kernel_stats()).map(|s| (src(s), load(&s.kernel_received))),
        )?;
        counter_family(
            &mut enc,
            "callwarden_capture_drops",
            "Packets lost at a source, by source and reason (kernel: buffer full; interface: \
             dropped by the driver; queue-full: the pipeline was behind; refused: a HEP sender \
             outside hep_allow or without the auth key).",
            sources.iter().flat_map(|s| {
                let mut rows = vec![
                    (vec![("source", s.name.clone()), ("reason", "queue-full".into())], load(&s.queue_full)),
                    (vec![("source", s.name.clone()), ("reason", "refused".into())], load(&s.refused)),
                ];
                if s.kernel_stats() {
                    rows.push((vec![("source", s.name.clone()), ("reason", "kernel".into())], load(&s.kernel_dropped)));
                    rows.push((vec![("source", s.name.clone()), ("reason", "interface".into())], load(&s.if_dropped)));
                }
                rows
            }),
        )?;

        counter(&mut enc, "callwarden_packets", "Frames fed to the engine.", c.frames)?;
        counter(&mut enc, "callwarden_bytes", "Bytes of the frames fed to the engine.", c.bytes)?;
        counter(&mut enc, "callwarden_hep_packets", "HEP packets unwrapped.", c.hep_packets)?;
        counter(&mut enc, "callwarden_rtp_packets", "RTP packets read.", c.rtp_packets)?;
        counter(&mut enc, "callwarden_rtcp_packets", "RTCP packets read.", c.rtcp_packets)?;

        // Engine drops by reason (every reason, zeros included, so rates work from the
        // first scrape), plus what the sources lost before the engine saw it.
        let queue_full: u64 = sources.iter().map(|s| load(&s.queue_full)).sum();
        let kernel: u64 = sources.iter().map(|s| load(&s.kernel_dropped)).sum();
        let iface: u64 = sources.iter().map(|s| load(&s.if_dropped)).sum();
        let mut drops: Vec<(Labels, u64)> = DropReason::ALL
            .iter()
            .map(|d| {
                let extra = if *d == DropReason::QueueFull { queue_full } else { 0 };
                (vec![("reason", d.as_str().to_string())], c.dropped(*d) + extra)
            })
            .collect();
        drops.push((vec![("reason", "kernel".into())], kernel));
        drops.push((vec![("reason", "interface".into())], iface));
        counter_family(&mut enc, "callwarden_drops", "Packets not used, by reason.", drops)?;
        counter_family(
            &mut enc,
            "callwarden_evictions",
            "Entries evicted from a full table (oldest first; [capture].max_*), by table.",
            c.evictions.by_table().into_iter().map(|(t, n)| (vec![("table", t.to_string())], n)),
        )?;
        counter_family(
            &mut enc,
            "callwarden_tunnels",
            "Encapsulation layers removed (GRE, ERSPAN, VXLAN, TZSP, IP-in-IP, MPLS, Q-in-Q), by kind.",
            Tunnel::ALL.iter().map(|k| (vec![("kind", k.as_str().to_string())], c.tunnelled(*k))),
        )?;

        let (requests, responses): (Vec<_>, Vec<_>) =
            c.sip_by_kind.iter().partition(|(k, _)| !k.starts_with(|ch: char| ch.is_ascii_digit()));
        counter_family(
            &mut enc,
            "callwarden_sip_requests",
            "SIP requests read, by method.",
            requests.into_iter().map(|(k, v)| (vec![("method", k.clone())], *v)),
        )?;
        counter_family(
            &mut enc,
            "callwarden_sip_responses",
            "SIP responses read, by status code.",
            responses.into_iter().map(|(k, v)| (vec![("status", k.clone())], *v)),
        )?;
        counter(&mut enc, "callwarden_sip_fallback", "SIP messages read by the tolerant parser.", c.sip_fallback)?;

        gauge_i(&mut enc, "callwarden_active_calls", "Calls in progress.", as_i64(snap.active_calls))?;
        let l = &snap.link;
        counter_family(
            &mut enc,
            "callwarden_legs_linked",
            "SIP dialogs (a B2BUA's legs) joined to a call, by the evidence that linked them.",
            [("header", l.by_header), ("session-id", l.by_session_id), ("hep", l.by_hep), ("inferred", l.by_inference)]
                .into_iter()
                .map(|(k, v)| (vec![("by", k.to_string())], v)),
        )?;
        counter(
            &mut enc,
            "callwarden_link_ambiguous",
            "Inferred links with more than one candidate call.",
            l.ambiguous,
        )?;
        counter(&mut enc, "callwarden_link_conflicts", "Legs whose weaker evidence named another call.", l.conflicts)?;
        counter(
            &mut enc,
            "callwarden_link_evicted",
            "Arriving legs evicted from the full candidate table.",
            l.evicted,
        )?;
        counter(&mut enc, "callwarden_link_refused", "Legs not linked: their call had too many legs.", l.refused)?;
        gauge_i(
            &mut enc,
            "callwarden_linked_calls",
            "Calls in progress made of several legs.",
            as_i64(l.linked_calls),
        )?;
        counter(&mut enc, "callwarden_calls_started", "Calls started.", c.calls_started)?;
        counter_family(
            &mut enc,
            "callwarden_calls_ended",
            "Calls ended, by end reason.",
            tallies.ended_by_reason.iter().map(|(k, v)| (vec![("reason", (*k).to_string())], *v)),
        )?;
        counter_family(
            &mut enc,
            "callwarden_calls_answered",
            "Answered calls ended, by direction.",
            tallies.answered_by_direction.iter().map(|(k, v)| (vec![("direction", (*k).to_string())], *v)),
        )?;
        counter_family(
            &mut enc,
            "callwarden_answered_rings",
            "Answered calls by rings before answer (ANS-1): 0 to 4, and 5+.",
            tallies.answered_rings.iter().enumerate().map(|(i, v)| {
                let label = if i == 5 { "5+".to_string() } else { i.to_string() };
                (vec![("rings", label)], *v)
            }),
        )?;
        counter_family(
            &mut enc,
            "callwarden_violations",
            "Violations raised, by rule and kind.",
            tallies
                .violations
                .iter()
                .map(|((rule, kind), v)| (vec![("rule", rule.clone()), ("kind", kind.clone())], *v)),
        )?;

        gauge_i(&mut enc, "callwarden_recordings_active", "Calls being recorded.", as_i64(snap.active_recordings))?;
        counter(&mut enc, "callwarden_recordings_started", "Recordings begun.", tallies.recordings_begun)?;
        counter(
            &mut enc,
            "callwarden_recording_bytes",
            "Audio bytes produced for recordings (16-bit PCM, both channels).",
            tallies.recording_bytes,
        )?;

        gauge_i(
            &mut enc,
            "callwarden_store_queue_depth",
            "Items waiting for the store writer.",
            as_i64(snap.store_queue),
        )?;
        gauge_i(
            &mut enc,
            "callwarden_capture_queue_depth",
            "Frames waiting between the capture threads and the pipeline.",
            as_i64(snap.capture_queue),
        )?;
        gauge_f(
            &mut enc,
            "callwarden_pipeline_lag_seconds",
            "Wall-clock time minus packet time when frames reached the engine (max over ~250 ms).",
            snap.lag_seconds,
        )?;
        counter_family(
            &mut enc,
            "callwarden_config_reloads",
            "Config reloads, by result.",
            [(vec![("result", "ok".into())], snap.reloads_ok), (vec![("result", "error".into())], snap.reloads_failed)],
        )?;
        counter(&mut enc, "callwarden_sink_errors", "Outputs a sink could not take.", snap.sink_errors)?;
        if let Some(a) = alerts {
            counter_family(
                &mut enc,
                "callwarden_alerts",
                "Violation alerts, by outcome (raised: logged; the others: webhook POSTs).",
                [
                    ("raised", &a.raised),
                    ("delivered", &a.delivered),
                    ("retried", &a.retries),
                    ("failed", &a.failed),
                    ("dropped", &a.dropped),
                ]
                .map(|(k, v)| (vec![("outcome", k.to_string())], load(v))),
            )?;
        }
        if let Some(f) = forward {
            gauge_i(
                &mut enc,
                "callwarden_forward_backlog_rows",
                "Rows committed here and not yet in the central store.",
                as_i64(load(&f.backlog_rows)),
            )?;
            gauge_f(
                &mut enc,
                "callwarden_forward_backlog_oldest_seconds",
                "Age of the oldest row waiting for the central store (0: none waiting).",
                f.oldest_age_s(),
            )?;
            counter(&mut enc, "callwarden_forward_rows", "Rows shipped to the central store.", load(&f.shipped_rows))?;
            counter(
                &mut enc,
                "callwarden_forward_failures",
                "Failed attempts to reach or write the central store.",
                load(&f.failures),
            )?;
            gauge_i(
                &mut enc,
                "callwarden_forward_up",
                "1 when the central store answered the last attempt.",
                i64::from(f.up.load(Ordering::Relaxed)),
            )?;
            gauge_i(
                &mut enc,
                "callwarden_forward_refused",
                "1 when the central store refused this site (its name taken, a newer schema).",
                i64::from(f.refused.load(Ordering::Relaxed)),
            )?;
        }
        Ok(())
    }
}

/// `/metrics` and `/healthz`, for merging into the API's router (or serving alone).
pub fn router(handle: MetricsHandle) -> axum::Router {
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    let m = handle.clone();
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render()) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let h = handle.clone();
                async move {
                    match h.health() {
                        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                    }
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use callwarden_core::media::{AudioBlock, MediaOut};
    use callwarden_core::track::EndReason;

    fn sample_lines(text: &str, name: &str) -> Vec<String> {
        text.lines().filter(|l| l.starts_with(name)).map(str::to_string).collect()
    }

    #[test]
    fn renders_engine_counters_sources_and_tallies() {
        let h = MetricsHandle::new();
        let lo = Arc::new(SourceStats::new("pcap:lo", true));
        lo.packets.store(10, Ordering::Relaxed);
        lo.bytes.store(1000, Ordering::Relaxed);
        lo.queue_full.store(2, Ordering::Relaxed);
        lo.kernel_dropped.store(3, Ordering::Relaxed);
        h.add_source(lo);
        let hep = Arc::new(SourceStats::new("hep:127.0.0.1:9060", false));
        hep.packets.store(5, Ordering::Relaxed);
        h.add_source(hep);

        let mut c = Counters { frames: 8, ..Counters::default() };
        c.drop(DropReason::BadHep);
        c.drop(DropReason::BadHep);
        c.tunnel(Tunnel::ErspanIII);
        c.evictions.calls = 5;
        c.sip_by_kind.insert("INVITE".into(), 4);
        c.sip_by_kind.insert("180".into(), 3);
        h.publish(Snapshot { counters: c, active_calls: 7, lag_seconds: 0.25, ..Snapshot::default() });

        let mut sink = h.sink();
        let rec = callwarden_core::track::CallRecord { end_reason: EndReason::Shutdown, ..test_record() };
        sink.accept(&Output::Call(CallEvent::Ended(Box::new(rec)))).unwrap();
        let rec = callwarden_core::track::CallRecord { answered: true, rings: 7, ..test_record() };
        sink.accept(&Output::Call(CallEvent::Ended(Box::new(rec)))).unwrap();
        let key = test_record().key;
        let block = AudioBlock { start_frame: 0, samples: vec![0; 320] };
        sink.accept(&Output::Recording(RecordingEvent::Media { key, out: MediaOut::Audio(block) })).unwrap();

        let text = h.render();
        assert!(text.contains("callwarden_capture_packets_total{source=\"pcap:lo\"} 10\n"), "{text}");
        assert!(text.contains("callwarden_calls_answered_total{direction=\"internal\"} 2\n"), "{text}");
        assert!(text.contains("callwarden_answered_rings_total{rings=\"5+\"} 1\n"), "{text}");
        assert!(text.contains("callwarden_answered_rings_total{rings=\"2\"} 1\n"), "{text}");
        assert!(text.contains("callwarden_capture_packets_total{source=\"hep:127.0.0.1:9060\"} 5\n"));
        assert!(text.contains("callwarden_capture_drops_total{source=\"pcap:lo\",reason=\"kernel\"} 3\n"));
        // HEP has no kernel statistics: no kernel row for it.
        assert!(!text.contains("source=\"hep:127.0.0.1:9060\",reason=\"kernel\""));
        assert!(text.contains("callwarden_drops_total{reason=\"bad-hep\"} 2\n"));
        assert!(text.contains("callwarden_tunnels_total{kind=\"erspan-iii\"} 1\n"), "{text}");
        assert!(text.contains("callwarden_tunnels_total{kind=\"vxlan\"} 0\n"));
        assert!(text.contains("callwarden_evictions_total{table=\"calls\"} 5\n"), "{text}");
        assert!(text.contains("callwarden_evictions_total{table=\"fragments\"} 0\n"), "{text}");
        assert!(text.contains("callwarden_drops_total{reason=\"queue-full\"} 2\n"));
        assert!(text.contains("callwarden_drops_total{reason=\"kernel\"} 3\n"));
        assert_eq!(sample_lines(&text, "callwarden_drops_total").len(), DropReason::ALL.len() + 2);
        assert!(text.contains("callwarden_sip_requests_total{method=\"INVITE\"} 4\n"));
        assert!(text.contains("callwarden_sip_responses_total{status=\"180\"} 3\n"));
        assert!(text.contains("callwarden_active_calls 7\n"));
        assert!(text.contains("callwarden_calls_ended_total{reason=\"shutdown\"} 1\n"));
        assert!(text.contains("callwarden_recording_bytes_total 640\n"));
        assert!(text.contains("callwarden_pipeline_lag_seconds 0.25\n"));
        assert!(text.contains("# TYPE callwarden_packets counter\n"));
        assert!(text.contains("callwarden_packets_total 8\n"));
        assert!(text.ends_with("# EOF\n"));
        assert!(!text.contains("callwarden_alerts"), "no alerts sink, no alert rows");
        let a = Arc::new(AlertCounters::default());
        a.raised.store(4, Ordering::Relaxed);
        a.delivered.store(3, Ordering::Relaxed);
        h.set_alert_counters(a);
        let text = h.render();
        assert!(text.contains("callwarden_alerts_total{outcome=\"raised\"} 4\n"), "{text}");
        assert!(text.contains("callwarden_alerts_total{outcome=\"delivered\"} 3\n"));
    }

    /// dist/grafana-callwarden.json queries only metrics this daemon exports (a renamed
    /// metric would leave an empty panel nobody notices).
    #[test]
    fn the_grafana_dashboard_uses_metrics_that_exist() {
        let h = MetricsHandle::new();
        h.add_source(Arc::new(SourceStats::new("pcap:lo", true)));
        h.set_alert_counters(Arc::new(crate::sink::alerts::AlertCounters::default()));
        h.publish(Snapshot::default());
        let text = h.render();
        let dash: serde_json::Value =
            serde_json::from_str(include_str!("../dist/grafana-callwarden.json")).expect("the dashboard is JSON");
        let mut exprs = Vec::new();
        for p in dash["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().into_iter().flatten() {
                exprs.push(t["expr"].as_str().expect("expr").to_string());
            }
        }
        assert!(exprs.len() >= 15, "{exprs:?}");
        let mut names = std::collections::BTreeSet::new();
        for e in &exprs {
            let mut rest = e.as_str();
            while let Some(i) = rest.find("callwarden_") {
                let tail = &rest[i..];
                let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
                names.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
        for n in &names {
            // Counters are exposed as NAME_total with `# TYPE NAME counter`.
            let base = n.strip_suffix("_total").unwrap_or(n);
            assert!(text.contains(&format!("# TYPE {base} ")), "the dashboard queries {n}, not exported:\n{text}");
        }
        for needed in [
            "callwarden_calls_answered_total",
            "callwarden_answered_rings_total",
            "callwarden_violations_total",
            "callwarden_drops_total",
            "callwarden_store_queue_depth",
            "callwarden_recordings_active",
        ] {
            assert!(names.contains(needed), "the dashboard has no panel on {needed}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let h = MetricsHandle::new();
        h.add_source(Arc::new(SourceStats::new("pcap:we\"ird\\name", false)));
        let text = h.render();
        assert!(text.contains(r#"source="pcap:we\"ird\\name""#), "{text}");
        let h = MetricsHandle::new();
        h.add_source(Arc::new(SourceStats::new("pcap:two\nlines", false)));
        assert!(h.render().contains(r#"source="pcap:two\nlines""#));
    }

    #[test]
    fn health_follows_publication() {
        let h = MetricsHandle::new();
        assert!(h.health().is_err());
        assert!(!h.has_published());
        h.publish(Snapshot::default());
        assert!(h.has_published());
        assert!(h.health().is_ok());
        lock(&h.inner.state).published = Instant::now().checked_sub(STALL_AFTER * 2);
        assert!(h.health().unwrap_err().starts_with("stalled"));
    }

    fn test_record() -> callwarden_core::track::CallRecord {
        crate::store::testdata::call("c1", 1_000_000, "8001", "8101", callwarden_core::track::Direction::Internal)
    }
}
