//! Media decoding for recordings: the RTP packets of one call (already bound to the call
//! and to a leg by the tracker, with their packet times) → 16-bit PCM stereo, left =
//! caller → callee, right = callee → caller. G.711 μ-law/A-law (`g711`) and G.722
//! (`g722`) are decoded; each RTP stream is placed on the call's timeline by its extended
//! RTP timestamp, anchored on packet time (`stream`), and the stereo timeline (`timeline`)
//! commits audio once packet time has moved a reordering window past it.
//! `wav` decides, from a file's first bytes, how the recorder repairs a WAV a crash left
//! half-written (pure: the recorder applies it).
//! May use: `time`, `rtp` (the packet view), `track` (for `Leg`). No I/O: the recorder that
//! writes WAV files consumes `MediaOut`.
//! Invariants: deterministic (the same packets and times give the same output); memory
//! per call is bounded by the window, the re-anchor tolerance and the longest packet,
//! whatever arrives; a codec that cannot be decoded is never silently lost: its payloads
//! come out as `MediaOut::Raw` and the call is marked undecodable with the payload type.

pub mod g711;
pub mod g722;
mod stream;
pub mod timeline;
pub mod wav;

pub use timeline::{AudioOptions, CallAudio, MediaCounters};

use crate::time::Ts;
use crate::track::{CallKey, Leg};

/// What a payload type carries, from the SDP `a=rtpmap` or the static table of RFC 3551.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
    /// G.722, 16 kHz audio on an 8 kHz RTP clock (RFC 3551 §4.5.2).
    G722,
    /// Comfort noise (RFC 3389): decoded as silence.
    Cn,
    /// Anything else: kept raw, never decoded. `name` is the rtpmap encoding name as
    /// written, or the RFC 3551 name of a static payload type, or empty when unknown.
    Other { pt: u8, name: String },
}

impl Codec {
    /// The codec for an SDP `a=rtpmap` encoding name and clock rate, if it is one we
    /// decode (names are case-insensitive, RFC 4855 §3). The clock rate must be the one
    /// the codec is defined with: `PCMA/16000` is not PCMA.
    pub fn from_encoding(name: &str, clock_rate: u32) -> Option<Codec> {
        let known = [("PCMU", Codec::Pcmu), ("PCMA", Codec::Pcma), ("G722", Codec::G722), ("CN", Codec::Cn)];
        known.into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name) && clock_rate == 8000).map(|(_, c)| c)
    }

    /// The codec for one rtpmap line: a decodable one, else `Other` with its pt and name.
    pub fn from_rtpmap(pt: u8, name: &str, clock_rate: u32) -> Codec {
        Codec::from_encoding(name, clock_rate).unwrap_or_else(|| Codec::Other { pt, name: name.to_owned() })
    }

    /// The codec of a static payload type (RFC 3551 table 4), used when the SDP has no
    /// rtpmap for it. Dynamic and unassigned types give `Other` with an empty name.
    pub fn from_static_pt(pt: u8) -> Codec {
        let name = match pt {
            0 => return Codec::Pcmu,
            8 => return Codec::Pcma,
            9 => return Codec::G722,
            13 => return Codec::Cn,
            3 => "GSM",
            4 => "G723",
            5 | 6 | 16 | 17 => "DVI4",
            7 => "LPC",
            10 | 11 => "L16",
            12 => "QCELP",
            14 => "MPA",
            15 => "G728",
            18 => "G729",
            _ => "",
        };
        Codec::Other { pt, name: name.to_owned() }
    }

    /// Encoding name as `MediaStats::codecs` and the recording row print it.
    pub fn name(&self) -> &str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Cn => "CN",
            Codec::Other { name, .. } => name,
        }
    }

    /// RFC 4733 events (DTMF): never audio, and not an undecodable codec either.
    pub fn is_telephone_event(&self) -> bool {
        matches!(self, Codec::Other { name, .. } if name.eq_ignore_ascii_case("telephone-event"))
    }
}

/// The output sample rate of a recording: fixed for the whole recording.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SampleRate {
    /// 8 kHz: G.711-only calls.
    Hz8000,
    /// 16 kHz: calls with G.722 (G.711 legs are upsampled).
    Hz16000,
}

impl SampleRate {
    pub fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8000,
            SampleRate::Hz16000 => 16000,
        }
    }
    /// Output frames per tick of the 8 kHz RTP clock that all decoded codecs use.
    pub(crate) fn frames_per_tick(self) -> i64 {
        match self {
            SampleRate::Hz8000 => 1,
            SampleRate::Hz16000 => 2,
        }
    }
}

/// A run of committed stereo audio: `samples` interleaved left, right; frame `i` of the
/// block is frame `start_frame + i` of the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioBlock {
    pub start_frame: u64,
    pub samples: Vec<i16>,
}

impl AudioBlock {
    pub fn frames(&self) -> u64 {
        (self.samples.len() / 2) as u64
    }
}

/// What a `CallAudio` hands to the recorder, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaOut {
    /// Comes once, before the first `Audio`/`Silence`: the recording's sample rate and the
    /// packet time of its frame 0.
    Start {
        rate: SampleRate,
        at: Ts,
    },
    Audio(AudioBlock),
    /// `frames` frames of silence on both channels from `start_frame` (a gap: loss, hold,
    /// silence suppression), kept compact so a long hold costs no memory.
    Silence {
        start_frame: u64,
        frames: u64,
    },
    /// A packet of a codec we do not decode, to be kept beside the record as it came.
    Raw {
        leg: Leg,
        at: Ts,
        pt: u8,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: Vec<u8>,
    },
}

/// What the engine tells the recorder about one recorded call, in this order: `Begin`
/// (at the call's first INVITE, when policy says the call is recorded), the `Media`
/// outputs of its timeline as they are committed, then `End` (when the call ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordingEvent {
    Begin(RecordingInfo),
    Media { key: CallKey, out: MediaOut },
    End { key: CallKey, ended_at: Ts, counters: MediaCounters, undecodable: Vec<u8>, dtmf: String },
}

/// Who and what a recording is of, known at the INVITE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingInfo {
    pub key: CallKey,
    /// Stable id of the recording: the same call replayed twice gets the same id, so the
    /// store and the file layout stay idempotent (`recording_id`).
    pub id: String,
    pub call_id: String,
    pub call_started_at: Ts,
    pub caller: String,
    pub callee: String,
    pub dialled: String,
    /// The group that asked for the recording, if any.
    pub group: Option<String>,
    /// The call was stored cut (`capture-ended`) by an earlier replay, which recorded the
    /// part it saw; this recording, made from the call's start again, is to replace that
    /// one as the call's (the partial one is kept). Never set by the engine: the replay
    /// that resumes the call sets it.
    pub resumed: bool,
}

/// The recording id of the call (call_id, started_at): 16 hex digits of FNV-1a over both.
/// Not a security measure (integrity is the SHA-256 the recorder stores); only a short,
/// stable, file-name-safe name.
pub fn recording_id(call_id: &str, started_at: Ts) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in call_id.bytes().chain([0u8]).chain(started_at.as_micros().to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_from_encoding_and_static_types() {
        assert_eq!(Codec::from_encoding("pcma", 8000), Some(Codec::Pcma));
        assert_eq!(Codec::from_encoding("PCMU", 8000), Some(Codec::Pcmu));
        assert_eq!(Codec::from_encoding("G722", 8000), Some(Codec::G722));
        assert_eq!(Codec::from_encoding("CN", 8000), Some(Codec::Cn));
        assert_eq!(Codec::from_encoding("PCMA", 16000), None);
        assert_eq!(Codec::from_encoding("opus", 48000), None);
        assert_eq!(
            Codec::from_rtpmap(101, "telephone-event", 8000),
            Codec::Other { pt: 101, name: "telephone-event".into() }
        );
        assert!(Codec::from_rtpmap(101, "Telephone-Event", 8000).is_telephone_event());
        assert_eq!(Codec::from_static_pt(0), Codec::Pcmu);
        assert_eq!(Codec::from_static_pt(8), Codec::Pcma);
        assert_eq!(Codec::from_static_pt(9), Codec::G722);
        assert_eq!(Codec::from_static_pt(13), Codec::Cn);
        assert_eq!(Codec::from_static_pt(18), Codec::Other { pt: 18, name: "G729".into() });
        assert_eq!(Codec::from_static_pt(96), Codec::Other { pt: 96, name: String::new() });
        assert_eq!(Codec::from_static_pt(18).name(), "G729");
        assert_eq!(Codec::G722.name(), "G722");
    }

    #[test]
    fn recording_id_is_stable_and_distinct() {
        let a = recording_id("abc@host", Ts(1_700_000_000_000_000));
        assert_eq!(a, recording_id("abc@host", Ts(1_700_000_000_000_000)));
        assert_eq!(a.len(), 16);
        assert_ne!(a, recording_id("abc@host", Ts(1_700_000_000_000_001)));
        assert_ne!(a, recording_id("abd@host", Ts(1_700_000_000_000_000)));
    }
}
