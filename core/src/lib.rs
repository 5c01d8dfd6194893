//! callwarden-core: the pure engine. Bytes and packet timestamps in, events out.
//!
//! ```text
//! Frame ──decode──▶ Datagram ──sip / rtp──▶ SipMsg, RtpPacket ──track──▶ CallEvent
//!   (link, IP, defrag,           (rsip + fallback,       (dialogs, ringing, answer,
//!    UDP, TCP framing, HEP)       SDP; RTP/RTCP)          hang-up, media binding)
//!                                                             │
//!                                  policy ◀───────────────────┤ media (PCM for recordings)
//!                                  (class, rules → Violation) │
//!                                         └────────▶ engine::Output ◀┘
//! ```
//!
//! Invariants the whole crate keeps:
//! - No I/O: no files, sockets, database, tokio, or clock. `Ts` comes from the capture;
//!   timeouts fire only through `Engine::handle_timeout(now)`.
//! - Never panics on input: every packet that is not used bumps one `counters::DropReason`.
//! - Data flows one way: a module only uses the modules to its left in the diagram
//!   (and `config`, `time`, `counters`).
//! - No `unsafe`: the crate reads untrusted bytes, so memory safety rests on the
//!   compiler alone (and the fuzz targets need no AddressSanitizer; see scripts/fuzz).

#![forbid(unsafe_code)]

pub mod class;
pub mod config;
pub mod counters;
pub mod decode;
pub mod engine;
pub mod media;
pub mod policy;
pub mod rtp;
pub mod sip;
pub mod time;
pub mod track;

pub use counters::{Counters, DropReason};
pub use decode::{Frame, LinkType};
pub use engine::{Engine, Output};
pub use time::{Dur, Ts};
