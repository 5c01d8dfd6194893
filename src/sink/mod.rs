//! Sinks: where the engine's outputs go. Each sink consumes `Output`s in order; a sink
//! that does I/O keeps it off the pipeline thread (the store has its own writer thread).
//! May use: core types, and the I/O crates of this binary. Invariant: a sink never
//! blocks the pipeline for long; it reports what it could not do instead of panicking.

pub mod alerts;
pub mod console;
pub mod database;
pub mod log;
pub mod recorder;

use callwarden_core::Output;

pub trait Sink {
    /// Take one output. An `Err` is logged by the driver; the pipeline goes on.
    fn accept(&mut self, out: &Output) -> anyhow::Result<()>;
}
