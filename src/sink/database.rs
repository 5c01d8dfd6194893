//! The store as a sink: ended calls and violations go to the store's writer thread
//! (`store::StoreSink::take`); the sink never waits for a commit.
//! May use: `store`. Invariant: what the store keeps of an output is decided by the store.

use super::Sink;
use crate::store::StoreSink;
use callwarden_core::Output;

impl Sink for StoreSink {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        self.take(out)
    }
}
