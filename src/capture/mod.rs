//! Capture sources: everything that turns the outside world into `Frame`s. Capture files
//! (pcap and pcapng) here; live libpcap and the HEP listener arrive with the daemon.
//! May use: core `Frame`/`LinkType`/`Ts`. Invariant: a source never interprets packets;
//! it only stamps them and says what link type they are.

pub mod file;
pub mod hep;
pub mod live;
