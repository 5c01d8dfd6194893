//! Live events: the `EventsSink` turns the engine's outputs into `LiveEvent`s on a tokio
//! broadcast channel and keeps the calls in progress; `GET /api/events` streams them as
//! Server-Sent Events (event name = the event's `type`, data = its JSON) and
//! `GET /api/live` lists the calls in progress.
//! Invariants: the sink never blocks the pipeline (a broadcast send never waits; a
//! receiver that lags misses events and is told so with a `lagged` event carrying how
//! many it missed); the calls-in-progress table is bounded (`MAX_LIVE`); an SSE stream
//! ends when the client goes or the server shuts down.

use super::auth::Principal;
use super::{ApiError, AppState, LiveCallsFn};
use crate::sink::Sink;
use crate::store::reader::{format_ts, RuleKind};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use callwarden_core::policy::Violation;
use callwarden_core::track::{CallEvent, CallKey};
use callwarden_core::{Output, Ts};
use jiff::tz::TimeZone;
use serde::Serialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Calls in progress kept for `/api/live`; beyond it new calls are not listed (their
/// events are still sent), so a flood cannot grow the table without bound.
pub const MAX_LIVE: usize = 50_000;

/// A call in progress, as `/api/live` lists it and `call-started` announces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveCall {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub dialled: String,
    pub direction: String,
    pub started_at: String,
    pub ringing_at: Option<String>,
    pub answered_at: Option<String>,
    /// "trying" | "ringing" | "answered".
    pub state: String,
    /// Rules it broke so far (premium-rate is known at the INVITE).
    pub violations: Vec<RuleKind>,
    #[serde(skip)]
    pub started_us: i64,
}

/// A violation as it is raised (before it has a database id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveViolation {
    pub rule: String,
    pub kind: String,
    pub call_id: Option<String>,
    pub extension: String,
    pub number: String,
    pub detected_at: String,
    /// Fen; null while pending (premium-rate before the charge is known).
    pub fine_fen: Option<i64>,
    pub detail: String,
}

/// What `/api/events` sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LiveEvent {
    CallStarted(LiveCall),
    CallRinging {
        call_id: String,
        at: String,
    },
    CallAnswered {
        call_id: String,
        at: String,
    },
    CallEnded {
        call_id: String,
        caller: String,
        callee: String,
        number: String,
        class: Option<String>,
        ended_at: String,
        end_reason: String,
        answered: bool,
        rings: u32,
        ring_ms: i64,
        talk_ms: i64,
    },
    Violation(LiveViolation),
}

impl LiveEvent {
    /// The SSE event name: the same as the JSON `type`.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::CallStarted(_) => "call-started",
            LiveEvent::CallRinging { .. } => "call-ringing",
            LiveEvent::CallAnswered { .. } => "call-answered",
            LiveEvent::CallEnded { .. } => "call-ended",
            LiveEvent::Violation(_) => "violation",
        }
    }
}

type LiveTable = Arc<Mutex<HashMap<CallKey, LiveCall>>>;

/// The sink of live events (see the module doc).
pub struct EventsSink {
    tx: broadcast::Sender<LiveEvent>,
    tz: TimeZone,
    calls: LiveTable,
    /// Calls not listed because the table was full.
    pub unlisted: u64,
}

fn lock(t: &LiveTable) -> std::sync::MutexGuard<'_, HashMap<CallKey, LiveCall>> {
    // A panic elsewhere while holding the lock leaves a usable map; keep serving it.
    t.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventsSink {
    /// Events go to `tx`; times are shown in `tz` (the site's zone; UTC if unknown).
    pub fn new(tx: broadcast::Sender<LiveEvent>, tz: &str) -> EventsSink {
        EventsSink {
            tx,
            tz: TimeZone::get(tz).unwrap_or(TimeZone::UTC),
            calls: Arc::new(Mutex::new(HashMap::new())),
            unlisted: 0,
        }
    }

    /// For `AppState::with_live_calls`: the calls in progress, oldest first.
    pub fn live_calls_fn(&self) -> LiveCallsFn {
        let calls = Arc::clone(&self.calls);
        Arc::new(move || {
            let mut v: Vec<LiveCall> = lock(&calls).values().cloned().collect();
            v.sort_by(|a, b| (a.started_us, &a.call_id).cmp(&(b.started_us, &b.call_id)));
            v
        })
    }

    fn ts(&self, t: Ts) -> String {
        format_ts(t.as_micros(), &self.tz)
    }

    fn send(&self, ev: LiveEvent) {
        // No receiver is not an error: nobody is watching.
        let _ = self.tx.send(ev);
    }

    fn event(&mut self, ev: &CallEvent) -> Option<LiveEvent> {
        match ev {
            CallEvent::Started(s) => {
                let call = LiveCall {
                    call_id: s.call_id.clone(),
                    caller: s.caller.clone(),
                    callee: s.callee.clone(),
                    dialled: s.dialled.clone(),
                    direction: s.direction.as_str().to_string(),
                    started_at: self.ts(s.at),
                    ringing_at: None,
                    answered_at: None,
                    state: "trying".into(),
                    violations: Vec::new(),
                    started_us: s.at.as_micros(),
                };
                let mut t = lock(&self.calls);
                if t.len() < MAX_LIVE || t.contains_key(&s.key) {
                    t.insert(s.key, call.clone());
                } else {
                    self.unlisted += 1;
                }
                Some(LiveEvent::CallStarted(call))
            }
            CallEvent::Ringing { key, at } => {
                let at = self.ts(*at);
                let mut t = lock(&self.calls);
                let c = t.get_mut(key)?;
                if c.ringing_at.is_none() {
                    c.ringing_at = Some(at.clone());
                }
                if c.state == "trying" {
                    c.state = "ringing".into();
                }
                Some(LiveEvent::CallRinging { call_id: c.call_id.clone(), at })
            }
            CallEvent::Answered { key, at } => {
                let at = self.ts(*at);
                let mut t = lock(&self.calls);
                let c = t.get_mut(key)?;
                c.answered_at = Some(at.clone());
                c.state = "answered".into();
                Some(LiveEvent::CallAnswered { call_id: c.call_id.clone(), at })
            }
            // A linked leg changes nothing a live view shows until the call's record.
            CallEvent::Dtmf { .. } | CallEvent::LegLinked { .. } => None,
            CallEvent::Ended(r) => {
                let mut t = lock(&self.calls);
                t.remove(&r.key);
                // A flood's calls gone: give back the table's room (its entries are large;
                // 50,000 of them held 34 MB after the flood had timed out).
                let (len, cap) = (t.len(), t.capacity());
                if cap > 1024 && len < cap / 8 {
                    t.shrink_to(len * 2);
                }
                drop(t);
                Some(LiveEvent::CallEnded {
                    call_id: r.call_id.clone(),
                    caller: r.caller.clone(),
                    callee: r.callee.clone(),
                    number: r.number.clone(),
                    class: r.class.clone(),
                    ended_at: self.ts(r.ended_at),
                    end_reason: r.end_reason.as_str().to_string(),
                    answered: r.answered,
                    rings: r.rings,
                    ring_ms: r.ring_ms,
                    talk_ms: r.talk_ms,
                })
            }
        }
    }

    fn violation(&mut self, v: &Violation) -> LiveEvent {
        if let Some(id) = &v.call_id {
            let mut t = lock(&self.calls);
            let rk = RuleKind { rule: v.rule.clone(), kind: v.kind.as_str().to_string() };
            for c in t.values_mut().filter(|c| &c.call_id == id) {
                if (Some(Ts(c.started_us)) == v.call_started_at || v.call_started_at.is_none())
                    && !c.violations.contains(&rk)
                {
                    c.violations.push(rk.clone());
                }
            }
        }
        LiveEvent::Violation(LiveViolation {
            rule: v.rule.clone(),
            kind: v.kind.as_str().to_string(),
            call_id: v.call_id.clone(),
            extension: v.extension.clone(),
            number: v.number.clone(),
            detected_at: self.ts(v.detected_at),
            fine_fen: v.fine_fen,
            detail: v.detail.clone(),
        })
    }
}

impl Sink for EventsSink {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        let ev = match out {
            Output::Call(e) => self.event(e),
            Output::Violation(v) => Some(self.violation(v)),
            Output::Recording(_) => None,
        };
        if let Some(ev) = ev {
            self.send(ev);
        }
        Ok(())
    }
}

fn sse_event(name: &str, data: &impl Serialize) -> Option<Event> {
    Event::default().event(name).json_data(data).ok()
}

/// `GET /api/events`: a `hello` event (`{"live": bool, "who": ...}`: false under `serve`,
/// where nothing is captured), then every live event as it happens.
pub async fn sse(State(state): State<AppState>, Extension(who): Extension<Principal>) -> axum::response::Response {
    use axum::response::IntoResponse;
    // Each stream holds a task, a channel and a socket: capped, the extra ones told so.
    let Some(slot) = state.sse_slot() else {
        return super::ApiError::unavailable(format!(
            "{} live event streams are open already; try again later",
            super::limits::MAX_SSE
        ))
        .into_response();
    };
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(256);
    let mut sub = state.events().map(|s| s.subscribe());
    let mut shutdown = state.shutdown_signal();
    tokio::spawn(async move {
        let _slot = slot;
        let hello = serde_json::json!({ "live": sub.is_some(), "who": who.name });
        if let Some(e) = sse_event("hello", &hello) {
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        loop {
            let next = async {
                match sub.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tx.closed() => break,
                r = next => {
                    let e = match r {
                        Ok(ev) => sse_event(ev.name(), &ev),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            sse_event("lagged", &serde_json::json!({ "missed": n }))
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    };
                    if let Some(e) = e {
                        if tx.send(Ok(e)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

#[derive(Serialize)]
pub struct LiveDoc {
    /// False under `serve` (no capture): the list is then always empty.
    pub live: bool,
    pub calls: Vec<LiveCall>,
}

/// `GET /api/live`: the calls in progress now.
pub async fn live(State(state): State<AppState>) -> Result<Json<LiveDoc>, ApiError> {
    let calls = state.live_calls();
    Ok(Json(LiveDoc { live: calls.is_some(), calls: calls.unwrap_or_default() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use callwarden_core::policy::ViolationKind;
    use callwarden_core::track::{CallRecord, CallStart, Direction};

    fn start(key: u64, id: &str, at: i64) -> CallEvent {
        CallEvent::Started(CallStart {
            key: CallKey(key),
            call_id: id.into(),
            from_tag: "t".into(),
            at: Ts(at),
            caller: "8001".into(),
            caller_display: None,
            callee: "16800123".into(),
            dialled: "016800123".into(),
            dialled_domain: None,
            direction: Direction::Outbound,
            src: "127.0.0.1:5060".parse().unwrap(),
            dst: "127.0.0.1:5080".parse().unwrap(),
        })
    }

    #[test]
    fn tracks_live_calls_and_sends_events_in_order() {
        let (tx, mut rx) = broadcast::channel(16);
        let mut s = EventsSink::new(tx, "Asia/Shanghai");
        let live = s.live_calls_fn();
        s.accept(&Output::Call(start(1, "a", 1_772_407_800_000_000))).unwrap();
        s.accept(&Output::Call(CallEvent::Ringing { key: CallKey(1), at: Ts(1_772_407_801_000_000) })).unwrap();
        let v = Violation {
            rule: "OUT-1".into(),
            kind: ViolationKind::PremiumRate,
            call_id: Some("a".into()),
            call_started_at: Some(Ts(1_772_407_800_000_000)),
            call_from_tag: None,
            extension: "8001".into(),
            number: "16800123".into(),
            detected_at: Ts(1_772_407_800_000_000),
            fine_fen: None,
            detail: "premium".into(),
        };
        s.accept(&Output::Violation(v)).unwrap();
        let now = live();
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].state, "ringing");
        assert_eq!(now[0].started_at, "2026-03-02T07:30:00.000000+08:00");
        assert_eq!(now[0].violations, vec![RuleKind { rule: "OUT-1".into(), kind: "premium-rate".into() }]);
        let names: Vec<&str> = std::iter::from_fn(|| rx.try_recv().ok()).map(|e| e.name()).collect();
        assert_eq!(names, ["call-started", "call-ringing", "violation"]);
        // An event of an unknown call is not invented.
        s.accept(&Output::Call(CallEvent::Answered { key: CallKey(9), at: Ts(0) })).unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn never_blocks_without_or_with_slow_receivers() {
        let (tx, mut rx) = broadcast::channel(2);
        let mut s = EventsSink::new(tx.clone(), "UTC");
        for i in 0..10 {
            s.accept(&Output::Call(start(i, &format!("c{i}"), i64::try_from(i).unwrap()))).unwrap();
        }
        // The slow receiver learns it missed some.
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(8))));
        drop(rx);
        s.accept(&Output::Call(start(99, "x", 5))).unwrap();
        assert_eq!(s.live_calls_fn()().len(), 11);
    }

    /// The live table gives its room back once a flood's calls have ended.
    #[test]
    fn the_live_table_shrinks_once_a_flood_has_ended() {
        let (tx, _rx) = broadcast::channel(2);
        let mut s = EventsSink::new(tx, "UTC");
        for i in 0..20_000 {
            s.accept(&Output::Call(start(i, &format!("c{i}"), 5))).unwrap();
        }
        assert!(lock(&s.calls).capacity() >= 20_000);
        for i in 0..20_000 {
            let rec = CallRecord {
                key: CallKey(i),
                ..crate::store::testdata::call("c", 5, "8001", "8101", Direction::Internal)
            };
            s.accept(&Output::Call(CallEvent::Ended(Box::new(rec)))).unwrap();
        }
        assert_eq!(s.live_calls_fn()().len(), 0);
        assert!(lock(&s.calls).capacity() <= 1024 * 2, "{}", lock(&s.calls).capacity());
    }

    #[test]
    fn event_json_has_type_field() {
        let ev = LiveEvent::CallRinging { call_id: "a".into(), at: "t".into() };
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["type"], "call-ringing");
        assert_eq!(j["call_id"], "a");
    }
}
