//! Read models: JSON documents that projections write and queries read, and the projection
//! generations with their checkpoints. A projector's writes go through one [`ReadModelTx`] that
//! commits them together with the generation's new checkpoint, so an effect is applied exactly
//! once even though events are delivered at least once.
//!
//! Documents live in namespaces, one per projection generation (`<domain>/<projection>/<n>`):
//! a rebuild writes a fresh namespace while queries keep reading the active one.

use async_trait::async_trait;
use serde_json::Value;

use super::StoreError;

/// How a filter compares a document field with a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Equal (`null` also matches a missing field).
    Eq(Value),
    /// Present and not equal.
    Ne(Value),
    /// Less than.
    Lt(Value),
    /// Less than or equal.
    Lte(Value),
    /// Greater than.
    Gt(Value),
    /// Greater than or equal.
    Gte(Value),
    /// A string starting with this text.
    Prefix(String),
    /// Equal to one of these.
    AnyOf(Vec<Value>),
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Path segments of the field (`["customer", "id"]`), each `[A-Za-z0-9_-]+`.
    pub path: Vec<String>,
    /// The comparison.
    pub condition: Condition,
}

/// A sort on one field; ties (and documents without the field) are ordered by id, in the same
/// direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Path segments of the field.
    pub path: Vec<String>,
    /// Largest first.
    pub descending: bool,
}

/// Where the previous page ended: the sort value and id of its last document.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// The last document's sort value (`null` without an order or a missing field).
    pub sort: Value,
    /// The last document's id.
    pub id: String,
}

impl Cursor {
    /// Opaque text for clients.
    pub fn encode(&self) -> String {
        hex::encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads what [`Cursor::encode`] wrote.
    pub fn decode(text: &str) -> Option<Self> {
        serde_json::from_slice(&hex::decode(text).ok()?).ok()
    }
}

/// A `find`: every filter holds; sorted by `order` (or id); at most `limit` documents after `after`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Find {
    /// Conditions, all of which must hold.
    pub filters: Vec<Filter>,
    /// Sort; `None` sorts by id.
    pub order: Option<Order>,
    /// Page size, already capped by the caller.
    pub limit: u32,
    /// Continue after this document.
    pub after: Option<Cursor>,
}

/// One page of documents, `(id, body)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The documents, JSON text.
    pub documents: Vec<(String, String)>,
    /// Where the next page starts, if there is one.
    pub next: Option<Cursor>,
}

/// Where a projection generation has got to, committed with its writes as a compare-and-set:
/// the stored checkpoint must still be `expected` and the generation not retired, or nothing of
/// the transaction commits. Two runners of one generation (a halted one finishing its batch, a
/// restarted one) can therefore never both apply the same events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The generation.
    pub generation: GenerationId,
    /// The stored checkpoint the batch started from.
    pub expected: u64,
    /// Every event of the domain at or below this global position has been applied.
    pub position: u64,
}

impl Checkpoint {
    /// The error when the compare failed: the generation was dropped or retired meanwhile, or
    /// another runner moved it. Nothing of the transaction is written.
    pub fn moved(&self) -> StoreError {
        StoreError(format!(
            "checkpoint moved: generation {} of `{}` is gone, retired or no longer at {}",
            self.generation.generation, self.generation.name, self.expected
        ))
    }
}

/// Names one generation of one projection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GenerationId {
    /// The domain.
    pub domain: String,
    /// The projection.
    pub name: String,
    /// 1 for the first build, +1 for each rebuild or new projection version.
    pub generation: u64,
}

impl GenerationId {
    /// The document namespace of this generation.
    pub fn namespace(&self) -> String {
        format!("{}/{}/{}", self.domain, self.name, self.generation)
    }
}

/// What a generation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationRole {
    /// Being built from position 0; queries do not read it yet.
    Building,
    /// The one queries read.
    Active,
    /// The previous active one, kept for a rollback until the next switch.
    Retired,
}

impl GenerationRole {
    /// Its name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Building => "building",
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    /// Reads [`GenerationRole::as_str`].
    pub fn parse(text: &str) -> Self {
        match text {
            "active" => Self::Active,
            "retired" => Self::Retired,
            _ => Self::Building,
        }
    }
}

/// A stored generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationRow {
    /// Which one.
    pub id: GenerationId,
    /// The projection version (from the plugin's `projections`) it is built with.
    pub version: u32,
    /// The plugin version that built it last.
    pub plugin_version: String,
    /// Its role.
    pub role: GenerationRole,
    /// Its checkpoint.
    pub position: u64,
}

/// An event a projection failed on, after its retries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedEvent {
    /// Its global position.
    pub position: u64,
    /// Its stream.
    pub stream: String,
    /// Its type.
    pub event_type: String,
    /// The projector's last error on it.
    pub error: String,
    /// When, microseconds since the Unix epoch.
    pub at_micros: i64,
}

/// An event a projection generation went past without applying it (see
/// [`ReadModelTx::record_skip`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedEvent {
    /// The generation that skipped it.
    pub generation: u64,
    /// The event and why it failed.
    #[serde(flatten)]
    pub event: FailedEvent,
    /// `policy` (the projection's `skip` policy) or `operator` (the admin API).
    pub by: String,
}

/// Why [`ReadModelTx::write_many`] failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The store refused a document for what it holds (PostgreSQL's data-exception or
    /// integrity classes, 22 and 23; SQLite's constraint, type or size errors): the fault of the
    /// data, which will be refused again however often it is retried. The transaction is spoilt.
    #[error("the read-model store refused a document: {0}")]
    Refused(String),
    /// The store failed (I/O, database down, ...): worth retrying.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WriteError> for StoreError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Refused(_) => StoreError(error.to_string()),
            WriteError::Store(error) => error,
        }
    }
}

/// A write's error as [`WriteError::Refused`] when `refused` says the database refused the
/// data, else as a store failure.
pub(crate) fn write_error(error: sqlx::Error, refused: impl Fn(&dyn sqlx::error::DatabaseError) -> bool) -> WriteError {
    match &error {
        sqlx::Error::Database(db) if refused(db.as_ref()) => WriteError::Refused(db.message().to_string()),
        _ => WriteError::Store(error.into()),
    }
}

/// Documents of one transaction: the projector's (read-write) or a query's (a read snapshot).
#[async_trait]
pub trait ReadModelTx: Send {
    /// The document, JSON text.
    async fn get(&mut self, namespace: &str, collection: &str, id: &str) -> Result<Option<String>, StoreError>;
    /// Matching documents, one page.
    async fn find(&mut self, namespace: &str, collection: &str, find: &Find) -> Result<Page, StoreError>;
    /// Like [`ReadModelTx::find`], over the collection as it would be with `overlay` written:
    /// `(id, Some(body))` replaces or adds a document, `(id, None)` deletes one. Nothing is
    /// written: the overlay stands in for the collection's rows within the one statement, so a
    /// projector's find over its buffered writes runs on its read snapshot, not the writer.
    /// [`WriteError::Refused`] when the store refuses an overlaid document or a filter value.
    async fn find_overlaid(
        &mut self,
        namespace: &str,
        collection: &str,
        find: &Find,
        overlay: &[(String, Option<String>)],
    ) -> Result<Page, WriteError>;
    /// Creates or replaces a document.
    async fn upsert(&mut self, namespace: &str, collection: &str, id: &str, body: &str) -> Result<(), StoreError>;
    /// Deletes a document; true if it existed.
    async fn delete(&mut self, namespace: &str, collection: &str, id: &str) -> Result<bool, StoreError>;
    /// Creates, replaces (`Some`) or deletes (`None`) several documents, in this order.
    async fn write_many(
        &mut self,
        namespace: &str,
        writes: &[(String, String, Option<String>)],
    ) -> Result<(), WriteError> {
        for (collection, id, body) in writes {
            match body {
                Some(body) => self.upsert(namespace, collection, id, body).await?,
                None => {
                    self.delete(namespace, collection, id).await?;
                }
            }
        }
        Ok(())
    }
    /// Records that generation `id` skips `skipped` (and is no longer parked); committed with
    /// the checkpoint that moves past the event, or not at all.
    async fn record_skip(&mut self, id: &GenerationId, skipped: &SkippedEvent) -> Result<(), StoreError>;
    /// Commits the writes together with `checkpoint` (a read transaction just ends).
    async fn commit(self: Box<Self>, checkpoint: Option<Checkpoint>) -> Result<(), StoreError>;
}

/// The read-model store.
#[async_trait]
pub trait ReadModels: Send + Sync + 'static {
    /// A write transaction (one at a time per store; waits for the current one).
    async fn write(&self) -> Result<Box<dyn ReadModelTx>, StoreError>;
    /// A read-only snapshot.
    async fn read(&self) -> Result<Box<dyn ReadModelTx>, StoreError>;
    /// Every generation of every projection.
    async fn generations(&self) -> Result<Vec<GenerationRow>, StoreError>;
    /// Adds the next generation of `domain/name` at position 0.
    async fn create_generation(
        &self,
        domain: &str,
        name: &str,
        version: u32,
        plugin_version: &str,
        role: GenerationRole,
    ) -> Result<GenerationRow, StoreError>;
    /// Records which plugin version now runs a generation.
    async fn set_plugin_version(&self, id: &GenerationId, plugin_version: &str) -> Result<(), StoreError>;
    /// Makes `id` the active generation: the active one becomes retired, an older retired one is
    /// dropped with its documents, and a building one that is not `id` is dropped too.
    async fn promote(&self, id: &GenerationId) -> Result<(), StoreError>;
    /// Drops a generation and its documents.
    async fn drop_generation(&self, id: &GenerationId) -> Result<(), StoreError>;
    /// Parks generation `id` on `event` (its `stop` policy): it stays there until an operator
    /// retries or skips it, or a new plugin version takes it over. Replaces an earlier one.
    async fn park(&self, id: &GenerationId, event: &FailedEvent) -> Result<(), StoreError>;
    /// Takes generation `id` off its parked event (to try it again).
    async fn unpark(&self, id: &GenerationId) -> Result<(), StoreError>;
    /// Every parked generation (that still exists) with its event.
    async fn parked(&self) -> Result<Vec<(GenerationId, FailedEvent)>, StoreError>;
    /// The events generations of `domain/name` skipped, oldest first (at most `limit`).
    async fn skipped(&self, domain: &str, name: &str, limit: u32) -> Result<Vec<SkippedEvent>, StoreError>;
}

/// The writes of a [`ReadModelTx::write_many`] that count: the last one of each document (as if
/// all were applied in order), keyed and sorted by `(collection, id)`; `None` deletes.
pub fn last_writes(
    writes: &[(String, String, Option<String>)],
) -> std::collections::BTreeMap<(&str, &str), Option<&str>> {
    writes.iter().map(|(collection, id, body)| ((collection.as_str(), id.as_str()), body.as_deref())).collect()
}

/// Most documents one page may hold.
pub const MAX_PAGE: u32 = 1000;
/// The page size when the caller asks for 0.
pub const DEFAULT_PAGE: u32 = 100;
