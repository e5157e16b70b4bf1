//! Persistence behind domain-named async traits. The engine talks to [`EventStore`] only; which
//! backend sits behind it (SQLite now, PostgreSQL next) is chosen once at start.
//!
//! An append is a **unit of work**: one or more streams, each with an expected version, plus an
//! optional idempotency record, outbox messages and aggregate [`snapshots`], committed atomically
//! or not at all.

pub mod event_rules;
#[cfg(test)]
mod event_store_tests;
pub mod leases;
mod open;
pub mod outbox;
pub mod pages;
#[cfg(test)]
pub(crate) mod pages_tests;
mod parking_rows;
#[cfg(test)]
mod parking_tests;
pub mod plugins;
pub mod postgres;
pub mod queue;
pub mod read_models;
#[cfg(test)]
mod read_models_tests;
pub mod snapshots;
#[cfg(test)]
mod snapshots_tests;
pub mod sqlite;
mod sqlite_outbox;
mod sqlite_parking;
mod sqlite_plugins;
mod sqlite_queue;
pub mod sqlite_read_models;
mod sqlite_snapshots;
mod sqlite_writer;
mod writer_health;

use async_trait::async_trait;

pub use self::event_rules::{Unstorable, UnstorableEvent};
pub use self::leases::Leases;
pub use self::open::Stores;
pub use self::outbox::{NewOutboxMessage, Outbox, OutboxMessage, OutboxOutcome, OutboxRequest};
pub use self::pages::EventPage;
pub use self::plugins::{Activation, PluginStore, PluginStoreError, PluginVersion, SaveOutcome};
pub use self::queue::{Claim, CommandQueue, QueuedCommand};
pub use self::read_models::{ReadModelTx, ReadModels};
pub use self::snapshots::Snapshot;

/// What an appender expects a stream's current version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Any version, including no stream.
    Any,
    /// The stream must not exist.
    NoStream,
    /// The stream's last version must be exactly this (0 = no stream).
    Exact(u64),
}

impl ExpectedVersion {
    fn admits(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(v) => v == actual,
        }
    }
}

/// An event to append; the store assigns version, position and time.
#[derive(Debug, Clone)]
pub struct EventToAppend {
    /// Event type.
    pub event_type: String,
    /// Payload, valid JSON text.
    pub data: String,
    /// Metadata, a JSON object as text.
    pub metadata: String,
}

/// The events for one stream within a unit of work.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// Owning domain; streams are namespaced per domain.
    pub domain: String,
    /// Stream name.
    pub stream: String,
    /// Version check made at commit.
    pub expected: ExpectedVersion,
    /// Events, in order; never empty.
    pub events: Vec<EventToAppend>,
}

/// A stored response for an idempotency key, written in the same transaction as the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Where the key is unique (the domain).
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// sha256 of what the request asked for; a different request under the same key is refused.
    pub request_hash: String,
    /// HTTP status of the stored response.
    pub status: u16,
    /// The stored response body (JSON text).
    pub response: String,
}

/// A unit of work: all of it commits, or none of it.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    /// Per-stream appends.
    pub streams: Vec<StreamAppend>,
    /// Response to remember under an idempotency key, if any.
    pub idempotency: Option<IdempotencyRecord>,
    /// Gateway calls to make once this commits (the transactional outbox).
    pub outbox: Vec<outbox::NewOutboxMessage>,
    /// Snapshots written in the same transaction as the events (only if they commit).
    pub snapshots: Vec<Snapshot>,
}

impl AppendBatch {
    /// Refuses a malformed unit of work before any backend queues it.
    pub(crate) fn check(&self) -> Result<(), AppendError> {
        if self.streams.is_empty() || self.streams.iter().any(|s| s.events.is_empty()) {
            return Err(AppendError::Invalid("a unit of work needs at least one event per stream".into()));
        }
        event_rules::check_unit(&self.streams).map_err(AppendError::Unstorable)?;
        snapshots::check_unit(self)
    }
}

/// Where one stream's events landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedStream {
    /// Stream name.
    pub stream: String,
    /// Version of the first appended event.
    pub first_version: u64,
    /// Global position of the first appended event.
    pub first_position: u64,
    /// How many events were appended to it.
    pub count: u64,
}

/// A committed unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// One entry per [`StreamAppend`], in order.
    pub streams: Vec<AppendedStream>,
    /// Commit time, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
}

impl AppendResult {
    /// The global position of the last event written, given each stream's event count.
    pub fn last_position(&self) -> u64 {
        self.streams.iter().map(|s| s.first_position + s.count - 1).max().unwrap_or_default()
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Domain.
    pub domain: String,
    /// Stream.
    pub stream: String,
    /// 1-based version in the stream.
    pub version: u64,
    /// 1-based global position.
    pub position: u64,
    /// Event type.
    pub event_type: String,
    /// Payload, JSON text.
    pub data: String,
    /// Metadata, JSON text.
    pub metadata: String,
    /// Commit time, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
}

/// Why an append did not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// A stream's version was not the expected one; nothing was written.
    #[error("stream `{stream}` is at version {actual}, expected {expected:?}")]
    WrongExpectedVersion {
        /// The stream.
        stream: String,
        /// What the appender expected.
        expected: ExpectedVersion,
        /// What the stream is at.
        actual: u64,
    },
    /// The idempotency key was already used; here is what it stored. Nothing was written.
    #[error("idempotency key `{}` already used", .0.key)]
    DuplicateIdempotencyKey(IdempotencyRecord),
    /// The batch is malformed (an empty stream append, ...).
    #[error("invalid append: {0}")]
    Invalid(String),
    /// An event holds what some store or read model cannot (see [`event_rules`]); nothing was
    /// written.
    #[error(transparent)]
    Unstorable(UnstorableEvent),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store could not do its job (I/O, database down, ...). Safe to retry the whole command.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event store unavailable: {0}")]
pub struct StoreError(pub String);

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self(error.to_string())
    }
}

/// The event store: streams of events per domain, one global order, atomic units of work.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Reads up to `limit` events of a stream from `from_version` (1-based), oldest first.
    async fn read_stream(
        &self,
        domain: &str,
        stream: &str,
        from_version: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `limit` events of a stream from `from_version`, stopping before the event that would
    /// take the page past `max_bytes` of data and metadata (the first event always comes). Sized
    /// in the database before any payload is loaded (see [`pages`]).
    async fn read_stream_page(
        &self,
        domain: &str,
        stream: &str,
        from_version: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<EventPage, StoreError>;

    /// Like [`EventStore::read_stream`], but stops before the event that would take what it
    /// loaded past `max_bytes` (of data and metadata; the first event always comes): reads in
    /// pages of at most a few MiB, each sized in the database before it is loaded, so what one
    /// read holds stays within `max_bytes` plus one event however the stream's events grow.
    async fn read_stream_bounded(
        &self,
        domain: &str,
        stream: &str,
        from_version: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<StreamRead, StoreError> {
        let mut read = StreamRead::default();
        let mut bytes = 0usize;
        let mut next = from_version.max(1);
        while read.events.len() < limit as usize {
            let count = (limit as usize - read.events.len()).min(MAX_PAGE) as u32;
            let page_bytes = max_bytes.saturating_sub(bytes).min(PAGE_BYTES);
            let page = self.read_stream_page(domain, stream, next, count, page_bytes).await?;
            for event in page.events {
                let size = event.data.len() + event.metadata.len();
                if !read.events.is_empty() && bytes + size > max_bytes {
                    read.cut = true;
                    return Ok(read);
                }
                bytes += size;
                next = event.version + 1;
                read.events.push(event);
            }
            if !page.more {
                break;
            }
        }
        Ok(read)
    }

    /// The last version of a stream (0 for none).
    async fn stream_head(&self, domain: &str, stream: &str) -> Result<u64, StoreError>;

    /// Commits a unit of work atomically, checking every expected version and the idempotency key.
    async fn append(&self, batch: AppendBatch) -> Result<AppendResult, AppendError>;

    /// A domain's events in (stream, version) order, starting after `after` = (stream, version)
    /// (exclusive; `("", 0)` for the beginning), at most `limit`: one pass over every stream. It
    /// stops before the event that would take the page past `max_bytes` (the first event always
    /// comes); sized before it is loaded (see [`pages`]).
    async fn read_domain_page(
        &self,
        domain: &str,
        after: (&str, u64),
        limit: u32,
        max_bytes: usize,
    ) -> Result<EventPage, StoreError>;

    /// The response stored under an idempotency key, if any.
    async fn idempotency_record(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// The newest snapshot of `stream` folded by `digest` whose version is at most `at_most`, if
    /// any (see [`snapshots`]).
    async fn load_snapshot(
        &self,
        domain: &str,
        stream: &str,
        digest: &str,
        at_most: u64,
    ) -> Result<Option<Snapshot>, StoreError>;

    /// Stores snapshots outside any unit of work (shadow replay of a new plugin version writes
    /// them ahead of its activation). A snapshot whose (domain, stream, digest, version) is
    /// already stored is left as it is.
    async fn save_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), StoreError>;

    /// Fails unless the database answers and its migrations are applied.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// Fails while the write path cannot commit (the last commit attempt failed: disk full,
    /// I/O error, database down); healthy again once a commit or the writer's probe succeeds.
    fn check_writes(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// `domain`'s events with a global position above `after`, in global order, at most `limit`.
    /// The slice's `complete_to` is gap-safe: no event of the domain at or below it can appear
    /// later, so a reader that resumes from it misses nothing (see each backend for why).
    async fn read_log(&self, domain: &str, after: u64, limit: u32) -> Result<LogSlice, StoreError>;

    /// How far `domain`'s log runs past `after`: events not yet read, and the commit time of the
    /// oldest of them.
    async fn lag(&self, domain: &str, after: u64) -> Result<(u64, Option<i64>), StoreError>;

    /// The global position of the last committed event; changes after every commit.
    fn head(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Most events one page of [`EventStore::read_stream_bounded`] asks for, and the most bytes of
/// one page (the driver holds a page twice while converting it).
const MAX_PAGE: usize = 1_000;
const PAGE_BYTES: usize = 4 << 20;

/// What a bounded read of a stream loaded.
#[derive(Debug, Clone, Default)]
pub struct StreamRead {
    /// The events, oldest first.
    pub events: Vec<StoredEvent>,
    /// True when it stopped at the byte bound with more events to read (within the count).
    pub cut: bool,
}

/// A slice of one domain's log in global order.
#[derive(Debug, Clone, Default)]
pub struct LogSlice {
    /// The events.
    pub events: Vec<StoredEvent>,
    /// Every event of the domain at or below this position is in `events` or was at or below
    /// the `after` of the read.
    pub complete_to: u64,
}

/// A stream of a domain: `(domain, stream)`.
pub(crate) type StreamId = (String, String);

/// Where one unit of work's events go, and the heads of its streams after it.
pub(crate) type Placement = (Vec<AppendedStream>, std::collections::HashMap<StreamId, u64>);

/// Places a unit of work after its streams' current versions (`version_of`, 0 for none), from
/// `first_position` on; or says why it is refused (a stream named twice, a wrong expected
/// version). The backends' writers call it once per unit of work of a group commit, with the
/// versions as they stand after the units placed before it.
pub(crate) fn place(
    batch: &AppendBatch,
    version_of: impl Fn(&StreamId) -> u64,
    first_position: u64,
) -> Result<Placement, AppendError> {
    let mut heads = std::collections::HashMap::new();
    let mut streams = Vec::with_capacity(batch.streams.len());
    let mut position = first_position;
    for append in &batch.streams {
        let id = (append.domain.clone(), append.stream.clone());
        if heads.contains_key(&id) {
            return Err(AppendError::Invalid(format!("stream `{}` appears twice in one unit of work", append.stream)));
        }
        let actual = version_of(&id);
        if !append.expected.admits(actual) {
            return Err(AppendError::WrongExpectedVersion {
                stream: append.stream.clone(),
                expected: append.expected,
                actual,
            });
        }
        let count = append.events.len() as u64;
        streams.push(AppendedStream {
            stream: append.stream.clone(),
            first_version: actual + 1,
            first_position: position,
            count,
        });
        position += count;
        heads.insert(id, actual + count);
    }
    snapshots::check_placed(batch, &heads)?;
    Ok((streams, heads))
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or_default()
}
