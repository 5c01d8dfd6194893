//! The engine: composes decode → sip/rtp → track → policy behind a sans-IO poll API.
//! Replaying a file and capturing live both drive this, with the same calls in the same
//! order, so both give the same records:
//!
//! ```text
//! for each frame: handle_timeout(frame.ts) while poll_timeout() <= frame.ts;
//!                 handle_frame(frame); drain poll_output() to None
//! end of file:    finish(EndReason::CaptureEnded); drain
//! ```
//! May use: every core module. Invariants: the engine's time is `max(packet times seen)`;
//! a packet stamped earlier is counted (`Drop::TimeBackwards`) and still used; outputs are
//! queued in the order they became known.

use crate::config::{Config, ExtensionSet, NetSet, RecordMode};
use crate::counters::{Counters, Drop};
use crate::decode::{Datagram, DecodeConfig, Decoder, Frame, PayloadHint, Transport};
use crate::media::{recording_id, CallAudio, Codec, MediaOut, RecordingEvent, RecordingInfo};
use crate::policy::{Policy, Violation};
use crate::rtp::{self, Media};
use crate::sip::{self, SipError};
use crate::time::{Dur, Ts};
use crate::track::{
    CallEvent, CallKey, CallStart, EndReason, LinkConfig, MediaKind, RtpBinding, TrackConfig, TrackStats, Tracker,
};
use std::collections::{HashMap, VecDeque};

/// What the engine produces, drained by the driver to the sinks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Call(CallEvent),
    Violation(Violation),
    /// Audio of a call that policy says is recorded (REC-1), for the recorder sink.
    Recording(RecordingEvent),
}

/// Everything after the decoder; split out so the decoder's callback can borrow it.
struct Pipeline {
    tracker: Tracker,
    policy: Policy,
    events: Vec<CallEvent>,
    violations: Vec<Violation>,
    /// One stereo timeline per call being recorded (REC-1), by call.
    recordings: HashMap<CallKey, CallAudio>,
    /// Earliest time a recording has audio to commit without a new packet.
    media_due: Option<Ts>,
    media_out: Vec<MediaOut>,
    out: VecDeque<Output>,
}

pub struct Engine {
    decoder: Decoder,
    pipe: Pipeline,
    counters: Counters,
    now: Ts,
}

/// The config could not be turned into an engine (the parts `Config::parse` cannot check).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(String);

fn decode_config(cfg: &Config) -> DecodeConfig {
    DecodeConfig {
        tcp_max_message: cfg.capture.tcp_max_message,
        hep_ports: cfg.capture.hep_ports.clone(),
        hep_capture_ids: cfg.capture.hep_capture_ids.clone(),
        vxlan_ports: cfg.capture.vxlan_ports.clone(),
        tzsp_ports: cfg.capture.tzsp_ports.clone(),
        mirror_dedupe: Dur::from_millis(i64::from(cfg.capture.mirror_dedupe_ms)),
        ws_ports: cfg.capture.ws_ports.clone(),
        ..DecodeConfig::default()
    }
}

fn track_config(cfg: &Config) -> Result<TrackConfig, EngineError> {
    Ok(TrackConfig {
        cycle_ms: cfg.ringing.cycle_ms,
        call_timeout: Dur::from_secs(i64::from(cfg.limits.call_timeout_s)),
        extensions: ExtensionSet::parse(&cfg.site.extensions)
            .map_err(|e| EngineError(format!("site.extensions: {e}")))?,
        link: LinkConfig {
            pbx: NetSet::parse(&cfg.site.pbx).map_err(|e| EngineError(format!("site.pbx: {e}")))?,
            headers: cfg.site.correlation_headers.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
            window: Dur::from_millis(i64::from(cfg.site.link_window_ms)),
            pickup_codes: cfg.site.pickup_codes.clone(),
        },
    })
}

impl Engine {
    pub fn new(cfg: &Config) -> Result<Engine, EngineError> {
        Ok(Engine {
            decoder: Decoder::new(decode_config(cfg)),
            pipe: Pipeline {
                tracker: Tracker::new(track_config(cfg)?),
                policy: Policy::new(cfg).map_err(EngineError)?,
                events: Vec::new(),
                violations: Vec::new(),
                recordings: HashMap::new(),
                media_due: None,
                media_out: Vec::new(),
                out: VecDeque::new(),
            },
            counters: Counters::default(),
            now: Ts::MIN,
        })
    }

    /// Take a new config (reload). Calls in progress keep the policy they started with:
    /// `Policy::reload` swaps the rule book but keeps each open call's own, its per-day
    /// counts and the stored approvals. On error nothing changes.
    pub fn set_config(&mut self, cfg: &Config) -> Result<(), EngineError> {
        let track = track_config(cfg)?;
        self.pipe.policy.reload(cfg).map_err(EngineError)?;
        self.pipe.tracker.set_config(track);
        Ok(())
    }

    /// The policy, for what the daemon asks of it directly (classification for the API,
    /// approvals from the store, budgets).
    pub fn policy(&self) -> &Policy {
        &self.pipe.policy
    }

    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.pipe.policy
    }

    /// Feed one captured frame. Never fails: what cannot be used is counted.
    pub fn handle_frame(&mut self, f: Frame<'_>) {
        self.counters.frames += 1;
        self.counters.bytes += f.bytes.len() as u64;
        if f.ts < self.now {
            self.counters.drop(Drop::TimeBackwards);
        } else {
            self.now = f.ts;
        }
        self.pipe.policy.observe(f.ts);
        let pipe = &mut self.pipe;
        self.decoder.decode(f, &mut self.counters, &mut |counters, d| pipe.datagram(counters, d));
    }

    /// Fire every timer due at or before `now` (the driver calls this before each frame
    /// whose time has passed `poll_timeout()`, and with the system time when idle live).
    pub fn handle_timeout(&mut self, now: Ts) {
        if now > self.now {
            self.now = now;
        }
        self.decoder.expire(now, &mut self.counters);
        self.pipe.tracker.handle_timeout(now, &mut self.pipe.events);
        self.pipe.flush(&mut self.counters);
        self.pipe.policy.handle_timeout(now, &mut self.pipe.violations);
        self.pipe.flush(&mut self.counters);
        self.pipe.advance_recordings(now);
    }

    /// The earliest packet time at which `handle_timeout` has work.
    /// Asked before every frame: plain comparisons (an array iterator here cost store
    /// forwarding stalls worth 2 % of a replay).
    pub fn poll_timeout(&self) -> Option<Ts> {
        let t = earlier(self.decoder.next_expiry(), self.pipe.tracker.poll_timeout());
        earlier(earlier(t, self.pipe.policy.poll_timeout()), self.pipe.media_due)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.pipe.out.pop_front()
    }

    /// End every call in progress (end of the capture files, or shutdown) at the engine's
    /// current time, then run the timers that remain due at that time.
    pub fn finish(&mut self, reason: EndReason) {
        let now = self.now.max(Ts::EPOCH);
        self.pipe.tracker.end_all(now, reason, &mut self.pipe.events);
        self.pipe.flush(&mut self.counters);
    }

    pub fn now(&self) -> Ts {
        self.now
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn active_calls(&self) -> usize {
        self.pipe.tracker.active_calls()
    }
    pub fn track_stats(&self) -> TrackStats {
        self.pipe.tracker.stats()
    }
    /// Calls whose audio is being recorded now.
    pub fn active_recordings(&self) -> usize {
        self.pipe.recordings.len()
    }
}

/// The earlier of two optional deadlines.
fn earlier(a: Option<Ts>, b: Option<Ts>) -> Option<Ts> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Pipeline {
    fn datagram(&mut self, counters: &mut Counters, d: Datagram<'_>) {
        counters.datagrams += 1;
        let sip_like = match d.hint {
            PayloadHint::Sip => true,
            PayloadHint::Rtp | PayloadHint::Rtcp => false,
            PayloadHint::Unknown => d.transport != Transport::Udp || sip::looks_like_sip(d.payload),
        };
        if sip_like {
            match sip::parse(d.payload) {
                Ok(msg) => {
                    counters.sip_messages += 1;
                    if msg.parsed_by == sip::ParsedBy::Fallback {
                        counters.sip_fallback += 1;
                    }
                    *counters.sip_by_kind.entry(msg.kind_label()).or_default() += 1;
                    self.tracker.on_sip_hep(d.ts, d.src, d.dst, &msg, d.correlation, &mut self.events);
                }
                Err(SipError::MissingHeader(_)) => counters.drop(Drop::SipMissingHeader),
                Err(_) => counters.drop(Drop::BadSip),
            }
        } else {
            match rtp::classify(d.payload) {
                Media::Rtp(pkt) => {
                    counters.rtp_packets += 1;
                    let late_before = self.tracker.late_rtp();
                    match self.tracker.on_rtp(d.ts, d.src, d.dst, &pkt, &mut self.events) {
                        // A relayed copy of media already taken from another leg is not recorded.
                        Some(bound) if bound.primary => self.record(d.ts, &bound, &pkt),
                        Some(_) => counters.rtp_relayed_copies += 1,
                        None if self.tracker.late_rtp() > late_before => counters.drop(Drop::RtpAfterEnd),
                        None => counters.drop(Drop::RtpNoCall),
                    }
                }
                Media::Rtcp { .. } => counters.rtcp_packets += 1,
                Media::Neither => counters.drop(Drop::NotSipOrRtp),
            }
        }
        self.flush(counters);
    }

    /// Pass the tracker's events through policy, in order, into the output queue.
    fn flush(&mut self, counters: &mut Counters) {
        for ev in std::mem::take(&mut self.events) {
            match ev {
                CallEvent::Started(start) => {
                    counters.calls_started += 1;
                    self.policy.on_start(&start, &mut self.violations);
                    let recorded = self.begin_recording(&start);
                    self.out.push_back(Output::Call(CallEvent::Started(start)));
                    if let Some(info) = recorded {
                        self.out.push_back(Output::Recording(RecordingEvent::Begin(info)));
                    }
                }
                CallEvent::Ended(mut rec) => {
                    counters.calls_ended += 1;
                    self.policy.on_end(&mut rec, &mut self.violations);
                    self.end_recording(rec.key, rec.ended_at, &rec.dtmf);
                    self.out.push_back(Output::Call(CallEvent::Ended(rec)));
                }
                CallEvent::LegLinked { key, first, leg } => {
                    // A phone of a recorded group joined the call (the inbound leg named only
                    // the DID): record from now on, under the call's identity.
                    let recorded = if self.recordings.contains_key(&key) {
                        None
                    } else {
                        let mut as_call = (*leg).clone();
                        as_call.key = key;
                        as_call.call_id = first.call_id.clone();
                        as_call.at = first.at;
                        self.begin_recording(&as_call)
                    };
                    self.out.push_back(Output::Call(CallEvent::LegLinked { key, first, leg }));
                    if let Some(info) = recorded {
                        self.out.push_back(Output::Recording(RecordingEvent::Begin(info)));
                    }
                }
                other => self.out.push_back(Output::Call(other)),
            }
            self.push_violations(counters);
        }
        self.push_violations(counters);
    }

    /// Start a timeline for the call when policy says it is recorded (a dispatch group
    /// with `record = "always"`, or a number listed in `[numbers].record`).
    fn begin_recording(&mut self, start: &CallStart) -> Option<RecordingInfo> {
        let p = &self.policy;
        if !(p.records(&start.caller, &start.callee) || p.records(&start.caller, &start.dialled)) {
            return None;
        }
        let group = [&start.caller, &start.callee]
            .into_iter()
            .find_map(|e| p.group_of(e).filter(|g| g.record == RecordMode::Always))
            .map(|g| g.name.clone());
        self.recordings.insert(start.key, CallAudio::default());
        Some(RecordingInfo {
            key: start.key,
            id: recording_id(&start.call_id, start.at),
            call_id: start.call_id.clone(),
            call_started_at: start.at,
            caller: start.caller.clone(),
            callee: start.callee.clone(),
            dialled: start.dialled.clone(),
            group,
        })
    }

    /// Give an audio packet of a recorded call to its timeline. DTMF never becomes audio
    /// (its digits are in the call record).
    fn record(&mut self, at: Ts, bound: &RtpBinding, pkt: &rtp::RtpPacket<'_>) {
        let Some(audio) = self.recordings.get_mut(&bound.key) else { return };
        let codec = match &bound.kind {
            MediaKind::Dtmf { .. } => return,
            MediaKind::Audio { encoding, clock_rate } => Codec::from_rtpmap(pkt.payload_type, encoding, *clock_rate),
            MediaKind::ComfortNoise => Codec::Cn,
            MediaKind::Unknown(pt) => Codec::from_static_pt(*pt),
        };
        audio.push(at, bound.leg, pkt, &codec, &mut self.media_out);
        if let Some(due) = audio.poll_timeout() {
            self.media_due = Some(self.media_due.map_or(due, |d| d.min(due)));
        }
        self.push_media(bound.key);
    }

    /// Commit the audio of every recorded call up to `now` (a leg gone quiet still
    /// reaches the disk within the jitter window), and re-arm the media timer.
    fn advance_recordings(&mut self, now: Ts) {
        if self.media_due.is_none_or(|d| d > now) {
            return;
        }
        let mut next: Option<Ts> = None;
        let keys: Vec<CallKey> = self.recordings.keys().copied().collect();
        for key in keys {
            if let Some(audio) = self.recordings.get_mut(&key) {
                audio.advance(now, &mut self.media_out);
                if let Some(due) = audio.poll_timeout() {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
            self.push_media(key);
        }
        self.media_due = next.filter(|&d| d > now);
    }

    /// Flush the call's timeline and close its recording.
    fn end_recording(&mut self, key: CallKey, ended_at: Ts, dtmf: &str) {
        let Some(mut audio) = self.recordings.remove(&key) else { return };
        audio.finish(&mut self.media_out);
        self.push_media(key);
        let undecodable = audio.undecodable().to_vec();
        let counters = audio.counters().clone();
        self.out.push_back(Output::Recording(RecordingEvent::End {
            key,
            ended_at,
            counters,
            undecodable,
            dtmf: dtmf.to_string(),
        }));
    }

    fn push_media(&mut self, key: CallKey) {
        for out in self.media_out.drain(..) {
            self.out.push_back(Output::Recording(RecordingEvent::Media { key, out }));
        }
    }

    fn push_violations(&mut self, counters: &mut Counters) {
        for v in self.violations.drain(..) {
            counters.violations += 1;
            self.out.push_back(Output::Violation(v));
        }
    }
}
