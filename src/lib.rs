//! callwarden (the daemon crate): all I/O around the pure engine of `callwarden-core`.
//! capture (files, live, HEP) → driver (the one loop) → sinks (store, recorder, alerts,
//! console) → CLI and HTTP API. The binary is a thin `main` over `cli::main`; the library
//! target exists so integration tests can drive the real components in-process.

pub mod api;
pub mod capture;
pub mod cli;
pub mod daemon;
pub mod metrics;
pub mod pipeline;
pub mod reload;
pub mod report;
pub mod settings;
pub mod sink;
pub mod store;
