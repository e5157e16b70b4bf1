//! `cairn:domain/read-model` for projectors (read-write, inside `project`) and queries
//! (read-only, inside `run`). A call reaches only the documents of one projection generation:
//! the namespace is fixed by the host when it grants the access, the plugin names only the
//! collection. Projector writes go into one store transaction that the projection runner
//! commits with the checkpoint; nothing is written when the call fails or traps.
//!
//! Host functions are synchronous (the plugin runs on a blocking thread); they reach the async
//! store through the runtime handle the runner captured.

mod host;

use crate::store::ReadModelTx;
use crate::store::read_models::{DEFAULT_PAGE, MAX_PAGE};

/// Largest document, in bytes of JSON text.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Most filters in one `find`.
pub const MAX_FILTERS: usize = 16;
/// Most values in one `any-of`.
pub const MAX_ANY_OF: usize = 100;

/// A call's access to one generation's documents.
pub struct ReadAccess {
    namespace: String,
    tx: Box<dyn ReadModelTx>,
    runtime: tokio::runtime::Handle,
    writable: bool,
    /// The last store failure a call met, so the caller can answer "unavailable" rather than
    /// blame the plugin.
    pub store_failure: Option<String>,
}

impl ReadAccess {
    /// Read-write access for a projector, inside the write transaction `tx`.
    pub fn projector(namespace: String, tx: Box<dyn ReadModelTx>, runtime: tokio::runtime::Handle) -> Self {
        Self { namespace, tx, runtime, writable: true, store_failure: None }
    }

    /// Read-only access for a query, over the snapshot `tx`.
    pub fn query(namespace: String, tx: Box<dyn ReadModelTx>, runtime: tokio::runtime::Handle) -> Self {
        Self { namespace, tx, runtime, writable: false, store_failure: None }
    }

    /// The transaction, to commit (projector) or drop (query).
    pub fn into_tx(self) -> Box<dyn ReadModelTx> {
        self.tx
    }
}

/// The page size a `find` asked for, capped.
fn page_size(asked: u32) -> u32 {
    match asked {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}
