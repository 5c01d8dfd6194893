//! The store as a sink: ended calls and violations go to the store's input
//! (`store::StoreInput`, the SQLite writer thread's queue today); the sink never waits
//! for a commit.
//! May use: `store`. Invariant: what the store keeps of an output is decided by the store.

use super::Sink;
use crate::store::StoreInput;
use callwarden_core::Output;

/// The pipeline's sink into a store.
pub struct Database(pub Box<dyn StoreInput>);

impl Sink for Database {
    fn accept(&mut self, out: &Output) -> anyhow::Result<()> {
        self.0.take(out)
    }
}
