//! callwarden (the daemon crate): all I/O around the pure engine of `callwarden-core`.
//! capture (files, live, HEP) → pipeline (the engine and its sinks, one loop for replay
//! and live) → sinks (database, alerts, recorder, console) → store (SQLite, behind the
//! `Store` traits) → report → CLI and HTTP API; `daemon` runs it live. Imports point one
//! way along that line; `api` and `cli` never import each other. The binary is a thin
//! `main` over `cli::main`; the library target exists so integration tests can drive the
//! real components in-process.

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
