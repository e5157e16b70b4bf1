//! `cairn:domain/read-model` for projectors (read-write, inside `project`) and queries
//! (read-only, inside `run`). A call reaches only the documents of one projection generation:
//! the namespace is fixed by the host when it grants the access, the plugin names only the
//! collection. Nothing is written when the call fails or traps.
//!
//! Host functions are synchronous (the plugin runs on a blocking thread); they reach the async
//! store through the runtime handle the runner captured. Documents a call has read are kept in
//! memory for the rest of the call (bounded; it is only a cache).
//!
//! A projector never holds the read models' write transaction while its plugin runs: it reads
//! from a read snapshot (opened at its first read) and its writes are buffered in memory,
//! bounded by their real size (`limits.max_projection_batch_mib`; beyond it the write fails with
//! `limit-exceeded` naming the key). The runner takes the writer only to send the buffer and
//! commit it with the checkpoint. A `find` over a collection with buffered writes sees them: it
//! takes the writer just for that find (buffer sent, find run, transaction rolled back). Only
//! this generation's runner writes its namespace, so the snapshot plus the buffer is exactly
//! what the call would see inside one transaction.

mod host;

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::read_models::{DEFAULT_PAGE, MAX_PAGE};
use crate::store::{ReadModelTx, ReadModels, StoreError};

/// Largest document, in bytes of JSON text.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Most filters in one `find`.
pub const MAX_FILTERS: usize = 16;
/// Most values in one `any-of`.
pub const MAX_ANY_OF: usize = 100;
/// The config key bounding a projector call's buffered writes.
pub const BATCH_LIMIT_KEY: &str = "limits.max_projection_batch_mib";
/// What one buffered or cached document costs beyond its text: the map slot (two keys and a
/// body, 72 bytes, at hashbrown's load factor) and three heap allocations.
const ENTRY_OVERHEAD: usize = 160;
/// Bytes of documents a call keeps as read before forgetting them (reads only; a cache).
const MAX_CACHED_BYTES: usize = 16 << 20;

/// One buffered write: `(collection, id, body)`, `None` deletes.
pub type Write = (String, String, Option<String>);

/// A call's access to one generation's documents.
pub struct ReadAccess {
    namespace: String,
    /// The read snapshot (a query's from the start; a projector's from its first read).
    tx: Option<Box<dyn ReadModelTx>>,
    /// Where a projector opens its snapshot and, for a `find` over buffered writes, the writer.
    models: Option<Arc<dyn ReadModels>>,
    runtime: tokio::runtime::Handle,
    /// What this call read of documents: `None` = absent.
    known: HashMap<(String, String), Option<String>>,
    known_bytes: usize,
    /// A projector's writes, the last one of each document; `None` deletes.
    dirty: HashMap<(String, String), Option<String>>,
    dirty_bytes: usize,
    /// The cap on `dirty_bytes` (0 for queries, which may not write).
    max_dirty_bytes: usize,
    /// The last store failure a call met, so the caller can answer "unavailable" rather than
    /// blame the plugin.
    pub store_failure: Option<String>,
}

fn entry_size(key: &(String, String), body: &Option<String>) -> usize {
    ENTRY_OVERHEAD + key.0.len() + key.1.len() + body.as_ref().map_or(0, String::len)
}

impl ReadAccess {
    fn new(
        namespace: String,
        tx: Option<Box<dyn ReadModelTx>>,
        models: Option<Arc<dyn ReadModels>>,
        runtime: tokio::runtime::Handle,
        max_dirty_bytes: usize,
    ) -> Self {
        Self {
            namespace,
            tx,
            models,
            runtime,
            known: HashMap::new(),
            known_bytes: 0,
            dirty: HashMap::new(),
            dirty_bytes: 0,
            max_dirty_bytes,
            store_failure: None,
        }
    }

    /// Read-write access for a projector: reads from a snapshot of `models`, writes buffered up
    /// to `max_batch_bytes` (see the module docs).
    pub fn projector(
        namespace: String,
        models: Arc<dyn ReadModels>,
        runtime: tokio::runtime::Handle,
        max_batch_bytes: usize,
    ) -> Self {
        Self::new(namespace, None, Some(models), runtime, max_batch_bytes.max(1))
    }

    /// Read-only access for a query, over the snapshot `tx`.
    pub fn query(namespace: String, tx: Box<dyn ReadModelTx>, runtime: tokio::runtime::Handle) -> Self {
        Self::new(namespace, Some(tx), None, runtime, 0)
    }

    fn writable(&self) -> bool {
        self.models.is_some()
    }

    /// The buffered writes, sorted by `(collection, id)`; the snapshot is released.
    pub fn into_writes(self) -> Vec<Write> {
        let mut writes: Vec<Write> = self.dirty.into_iter().map(|((c, id), body)| (c, id, body)).collect();
        writes.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        writes
    }

    /// The buffered writes of `collection` (only that collection's), `(id, body or None)`, for a
    /// `find` that must see them.
    fn writes_in(&self, collection: &str) -> Vec<(String, Option<String>)> {
        self.dirty
            .iter()
            .filter(|((c, _), _)| c == collection)
            .map(|((_, id), body)| (id.clone(), body.clone()))
            .collect()
    }

    /// The snapshot, opened now if this is the call's first read.
    async fn snapshot<'a>(
        tx: &'a mut Option<Box<dyn ReadModelTx>>,
        models: Option<&Arc<dyn ReadModels>>,
    ) -> Result<&'a mut Box<dyn ReadModelTx>, StoreError> {
        if tx.is_none() {
            let models = models.ok_or_else(|| StoreError("no read snapshot".into()))?;
            *tx = Some(models.read().await?);
        }
        Ok(tx.as_mut().expect("just opened"))
    }
}

/// The page size a `find` asked for, capped.
fn page_size(asked: u32) -> u32 {
    match asked {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}
