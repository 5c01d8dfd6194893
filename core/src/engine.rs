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
//! a packet stamped earlier is counted (`DropReason::TimeBackwards`) and still used; outputs are
//! queued in the order they became known. Time is not taken on trust: a frame stamped past
//! the horizon the driver gives (live: the wall clock) and a datagram whose own stamp (HEP)
//! is far from its frame's are given the trusted time instead and counted
//! (`DropReason::TimeClamped`), so one forged stamp cannot fire every call's timeout at once.

use crate::config::{Config, ExtensionSet, NetSet, RecordMode};
use crate::counters::{Counters, DropReason};
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
    /// Time of the frame being decoded: the stamp its datagrams are checked against.
    frame_ts: Ts,
}

pub struct Engine {
    decoder: Decoder,
    pipe: Pipeline,
    counters: Counters,
    now: Ts,
    /// Latest believable frame time (live: the wall clock plus a little), set by the driver.
    horizon: Option<Ts>,
}

/// How far a datagram's own stamp (a HEP agent's clock) may run ahead of the frame that
/// carried it (its receipt, or the capture's stamp) before it is not believed: agents on NTP
/// are within milliseconds; a stamp seconds ahead is a broken clock or a forgery.
pub const MAX_AHEAD: Dur = Dur::from_secs(2);
/// How far behind its frame a datagram's own stamp may be: agents batch and retry, but not
/// for an hour; older stamps (1970, a zeroed field) would open calls that time out at once.
pub const MAX_BEHIND: Dur = Dur::from_secs(3600);

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
        max_tcp_streams: cfg.capture.max_tcp_streams,
        max_tcp_bytes: (cfg.capture.max_tcp_buffer_mib as usize).saturating_mul(1024 * 1024),
        max_fragments: cfg.capture.max_fragments,
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
            max_pending: cfg.capture.max_pending_legs,
        },
        max_calls: cfg.capture.max_calls,
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
                frame_ts: Ts::MIN,
            },
            counters: Counters::default(),
            now: Ts::MIN,
            horizon: None,
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
    /// budgets).
    pub fn policy(&self) -> &Policy {
        &self.pipe.policy
    }

    /// STA-1 after a restart: `count` effective calls `ext` already made on the local day
    /// holding `at` (stored state, fed in by the driver like approvals).
    pub fn restore_effective(&mut self, ext: &str, at: Ts, count: u32) {
        self.pipe.policy.restore_effective(ext, at, count);
    }

    /// Approvals kept outside the config (the store's, from `callwarden approve`): the
    /// driver feeds them in at start and whenever they change, as it feeds packets.
    /// Returns why each unusable one was left out (empty when all apply).
    #[must_use]
    pub fn set_approvals(&mut self, approvals: Vec<crate::config::Approval>) -> Vec<String> {
        self.pipe.policy.set_approvals(approvals)
    }

    /// Feed one captured frame. Never fails: what cannot be used is counted.
    pub fn handle_frame(&mut self, f: Frame<'_>) {
        let f = self.believe(f);
        self.counters.frames += 1;
        self.counters.bytes += f.bytes.len() as u64;
        self.pipe.frame_ts = f.ts;
        if f.ts < self.now {
            self.counters.drop(DropReason::TimeBackwards);
        } else {
            self.now = f.ts;
        }
        self.pipe.policy.observe(f.ts);
        let pipe = &mut self.pipe;
        self.decoder.decode(f, &mut self.counters, &mut |counters, d| pipe.datagram(counters, d));
    }

    /// The latest frame time to believe (live: the wall clock plus a margin, given before
    /// each frame); a frame stamped later is taken at the horizon and counted. `None`
    /// (replay): a file's stamps are its own clock.
    pub fn set_horizon(&mut self, horizon: Option<Ts>) {
        self.horizon = horizon;
    }

    /// The frame as it will be taken: stamped no later than the horizon (counted when it
    /// was). The driver asks this before running the timers due by the frame's time, so a
    /// stamp past the horizon cannot fire them either. Taking a frame twice counts it once.
    pub fn believe<'a>(&mut self, mut f: Frame<'a>) -> Frame<'a> {
        if let Some(h) = self.horizon.filter(|&h| f.ts > h) {
            self.counters.drop(DropReason::TimeClamped);
            f.ts = h;
        }
        f
    }

    /// Count `n` frames a source took at its own clock instead of their stamp (a replayed
    /// file's lone jump in time: the daemon's `capture::file`), with the engine's own.
    pub fn count_time_clamped(&mut self, n: u64) {
        if n > 0 {
            *self.counters.drops.entry(DropReason::TimeClamped).or_default() += n;
        }
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
    /// Calls tracked, in progress or lingering after their end (cheap, unlike `track_stats`).
    pub fn tracked_calls(&self) -> usize {
        self.pipe.tracker.tracked_calls()
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
    fn datagram(&mut self, counters: &mut Counters, mut d: Datagram<'_>) {
        counters.datagrams += 1;
        // Only a carrier with its own stamp (HEP) makes these differ.
        if d.ts > self.frame_ts.saturating_add(MAX_AHEAD) || d.ts < self.frame_ts.saturating_sub(MAX_BEHIND) {
            counters.drop(DropReason::TimeClamped);
            d.ts = self.frame_ts;
        }
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
                Err(SipError::MissingHeader(_)) => counters.drop(DropReason::SipMissingHeader),
                Err(_) => counters.drop(DropReason::BadSip),
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
                        None if self.tracker.late_rtp() > late_before => counters.drop(DropReason::RtpAfterEnd),
                        None => counters.drop(DropReason::RtpNoCall),
                    }
                }
                Media::Rtcp { .. } => counters.rtcp_packets += 1,
                Media::Neither => counters.drop(DropReason::NotSipOrRtp),
            }
        }
        self.flush(counters);
    }

    /// Pass the tracker's events through policy, in order, into the output queue.
    fn flush(&mut self, counters: &mut Counters) {
        (counters.evictions.calls, counters.evictions.pending_legs) = self.tracker.evictions();
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
            resumed: false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::LinkType;

    /// One HEP3 packet carrying a SIP message, stamped `ts` by the (claimed) agent.
    fn hep_sip(ts: Ts, sip: &str) -> Vec<u8> {
        let chunk = |kind: u16, body: &[u8]| {
            let mut c = vec![0, 0];
            c.extend_from_slice(&kind.to_be_bytes());
            c.extend_from_slice(&(body.len() as u16 + 6).to_be_bytes());
            c.extend_from_slice(body);
            c
        };
        let secs = u32::try_from(ts.0 / 1_000_000).unwrap();
        let usecs = u32::try_from(ts.0 % 1_000_000).unwrap();
        let body = [
            chunk(1, &[2]),
            chunk(2, &[17]),
            chunk(3, &[10, 0, 0, 1]),
            chunk(4, &[10, 0, 0, 2]),
            chunk(7, &5060u16.to_be_bytes()),
            chunk(8, &5060u16.to_be_bytes()),
            chunk(9, &secs.to_be_bytes()),
            chunk(10, &usecs.to_be_bytes()),
            chunk(11, &[1]),
            chunk(12, &1u32.to_be_bytes()),
            chunk(15, sip.as_bytes()),
        ]
        .concat();
        let mut p = b"HEP3".to_vec();
        p.extend_from_slice(&(body.len() as u16 + 6).to_be_bytes());
        p.extend_from_slice(&body);
        p
    }

    fn invite(call_id: &str) -> String {
        format!(
            "INVITE sip:13800138000@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{call_id}\r\n\
             From: <sip:8001@10.0.0.1>;tag=f{call_id}\r\nTo: <sip:13800138000@10.0.0.2>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn ok(call_id: &str) -> String {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{call_id}\r\n\
             From: <sip:8001@10.0.0.1>;tag=f{call_id}\r\nTo: <sip:13800138000@10.0.0.2>;tag=t\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn drain(e: &mut Engine) -> Vec<Output> {
        std::iter::from_fn(|| e.poll_output()).collect()
    }

    fn ended(outs: &[Output]) -> Vec<(String, Ts)> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Call(CallEvent::Ended(r)) => Some((r.call_id.clone(), r.ended_at)),
                _ => None,
            })
            .collect()
    }

    fn started_at(outs: &[Output]) -> Vec<Ts> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Call(CallEvent::Started(s)) => Some(s.at),
                _ => None,
            })
            .collect()
    }

    /// Feed as the driver does: timers due by the frame's time first, then the frame.
    fn feed(e: &mut Engine, frame_ts: Ts, bytes: &[u8]) -> Vec<Output> {
        let f = e.believe(Frame { ts: frame_ts, link: LinkType::Hep, bytes });
        while let Some(due) = e.poll_timeout().filter(|&d| d <= f.ts) {
            e.handle_timeout(due);
        }
        e.handle_frame(f);
        drain(e)
    }

    const T0: Ts = Ts(1_765_000_000_000_000);

    #[test]
    fn a_forged_future_hep_stamp_does_not_end_live_calls() {
        let mut e = Engine::new(&Config::default()).unwrap();
        let mut outs = feed(&mut e, T0, &hep_sip(T0, &invite("live-1")));
        outs.extend(feed(&mut e, T0 + Dur::from_millis(500), &hep_sip(T0 + Dur::from_millis(500), &ok("live-1"))));
        assert_eq!(e.active_calls(), 1);
        // The year 2106 (the largest 32-bit HEP seconds), received one second later.
        let forged = Ts(i64::from(u32::MAX) * 1_000_000);
        let at = T0 + Dur::from_secs(1);
        outs.extend(feed(&mut e, at, &hep_sip(forged, &invite("forged-1"))));
        assert!(ended(&outs).is_empty(), "no call ended: {:?}", ended(&outs));
        assert_eq!(e.active_calls(), 2, "the live call goes on, the forged INVITE is a call at its receipt time");
        assert_eq!(started_at(&outs), vec![T0, at], "the forged call is dated when it was received, not 2106");
        assert_eq!(e.counters().dropped(DropReason::TimeClamped), 1);
        assert!(e.poll_timeout().is_some_and(|d| d < Ts(T0.0 + 86_400_000_000)), "no timer moved to 2106");
        // A stamp from 1970 is not believed either.
        outs = feed(&mut e, at, &hep_sip(Ts(1_000_000), &invite("forged-2")));
        assert_eq!(started_at(&outs), vec![at]);
        assert!(ended(&outs).is_empty());
        assert_eq!(e.counters().dropped(DropReason::TimeClamped), 2);
        // A believable agent clock (a little behind its receipt) is kept as it is.
        let honest = at - Dur::from_millis(30);
        outs = feed(&mut e, at + Dur::from_millis(1), &hep_sip(honest, &invite("honest-1")));
        assert_eq!(started_at(&outs), vec![honest]);
        assert_eq!(e.counters().dropped(DropReason::TimeClamped), 2);
    }

    #[test]
    fn live_frames_past_the_horizon_are_taken_at_it() {
        let mut e = Engine::new(&Config::default()).unwrap();
        let mut outs = feed(&mut e, T0, &hep_sip(T0, &invite("live-1")));
        // Live: the driver says the wall clock is T0 + 1 s; a frame (and its HEP stamp)
        // claiming a day later is taken at the horizon.
        let horizon = T0 + Dur::from_secs(1);
        e.set_horizon(Some(horizon));
        let day = T0 + Dur::from_secs(86_400);
        outs.extend(feed(&mut e, day, &hep_sip(day, &invite("forged-1"))));
        assert!(ended(&outs).is_empty(), "{:?}", ended(&outs));
        assert_eq!(e.now(), horizon);
        assert_eq!(started_at(&outs), vec![T0, horizon]);
        assert_eq!(e.counters().dropped(DropReason::TimeClamped), 2, "the frame and its datagram");
    }

    use crate::policy::tests::cfg as policy_cfg;

    #[test]
    fn engine_set_config_reloads_the_policy() {
        let mut e = Engine::new(&policy_cfg()).unwrap();
        assert_eq!(e.policy().classify("016800123", "8500").1, crate::class::Class::Premium);
        let mut bad = policy_cfg();
        bad.shifts[0].from = "25:00".into();
        assert!(e.set_config(&bad).is_err());
        let mut c = policy_cfg();
        c.numbers.restricted_prefixes = vec!["169".into()];
        e.set_config(&c).unwrap();
        assert_eq!(e.policy().classify("016800123", "8500").1, crate::class::Class::Local);
    }
}
