//! Media decoding for recordings: G.711 μ-law/A-law (and G.722) payloads → 16-bit PCM,
//! placed on a per-call stereo timeline by extended RTP timestamp and packet time.
//! May use: `time`, `rtp`, `track` (for `Leg`). Invariant: bounded memory per call.

pub mod g711;
pub mod g722;
