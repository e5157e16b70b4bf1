//! `cairn:domain/read-model` for projectors (read-write, inside `project`) and queries
//! (read-only, inside `run`). A call reaches only the documents of one projection generation:
//! the namespace is fixed by the host when it grants the access, the plugin names only the
//! collection. Projector writes go into one store transaction that the projection runner
//! commits with the checkpoint; nothing is written when the call fails or traps.
//!
//! Host functions are synchronous (the plugin runs on a blocking thread); they reach the async
//! store through the runtime handle the runner captured. Documents a call has read or written
//! are kept in memory for the rest of the call (reads of a written document never reach the
//! store), and writes go to the store in multi-row batches: before a `find`, when the buffer
//! passes [`MAX_BUFFERED_BYTES`], and when the runner finishes the call.

mod host;

use std::collections::HashMap;

use crate::store::read_models::{DEFAULT_PAGE, MAX_PAGE};
use crate::store::{ReadModelTx, StoreError};

/// Largest document, in bytes of JSON text.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Most filters in one `find`.
pub const MAX_FILTERS: usize = 16;
/// Most values in one `any-of`.
pub const MAX_ANY_OF: usize = 100;

/// Bytes of written documents held before they are sent to the store mid-call.
pub const MAX_BUFFERED_BYTES: usize = 16 << 20;

/// A call's access to one generation's documents.
pub struct ReadAccess {
    namespace: String,
    tx: Box<dyn ReadModelTx>,
    runtime: tokio::runtime::Handle,
    writable: bool,
    /// What this call knows of documents: `None` = absent or deleted.
    known: HashMap<(String, String), Option<String>>,
    /// Documents written since the last flush, in order.
    dirty: Vec<(String, String)>,
    dirty_bytes: usize,
    /// The last store failure a call met, so the caller can answer "unavailable" rather than
    /// blame the plugin.
    pub store_failure: Option<String>,
}

impl ReadAccess {
    fn new(namespace: String, tx: Box<dyn ReadModelTx>, runtime: tokio::runtime::Handle, writable: bool) -> Self {
        let (known, dirty) = (HashMap::new(), Vec::new());
        Self { namespace, tx, runtime, writable, known, dirty, dirty_bytes: 0, store_failure: None }
    }

    /// Read-write access for a projector, inside the write transaction `tx`.
    pub fn projector(namespace: String, tx: Box<dyn ReadModelTx>, runtime: tokio::runtime::Handle) -> Self {
        Self::new(namespace, tx, runtime, true)
    }

    /// Read-only access for a query, over the snapshot `tx`.
    pub fn query(namespace: String, tx: Box<dyn ReadModelTx>, runtime: tokio::runtime::Handle) -> Self {
        Self::new(namespace, tx, runtime, false)
    }

    /// Sends the buffered writes, then hands the transaction over (to commit, or to drop).
    pub async fn finish(mut self) -> Result<Box<dyn ReadModelTx>, StoreError> {
        self.flush().await?;
        Ok(self.tx)
    }

    /// Writes the buffered documents to the transaction.
    async fn flush(&mut self) -> Result<(), StoreError> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let mut seen = std::collections::HashSet::new();
        let writes: Vec<(String, String, Option<String>)> = std::mem::take(&mut self.dirty)
            .into_iter()
            .rev()
            .filter(|key| seen.insert(key.clone()))
            .map(|(collection, id)| {
                let body = self.known.get(&(collection.clone(), id.clone())).cloned().flatten();
                (collection, id, body)
            })
            .collect();
        self.dirty_bytes = 0;
        self.tx.write_many(&self.namespace, &writes).await
    }
}

/// The page size a `find` asked for, capped.
fn page_size(asked: u32) -> u32 {
    match asked {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}
