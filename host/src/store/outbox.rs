//! The gateway's transactional outbox: calls a command handler enqueued, written in the same
//! transaction as the command's events (so a call exists if and only if the events do), then
//! made by a worker after the commit, retried per the service's policy, and kept as dead letters
//! after the last attempt.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The request of an outbox call, stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRequest {
    /// HTTP method.
    pub method: String,
    /// Path under the service's base URL.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body, hex.
    pub body_hex: String,
    /// Sent as `Idempotency-Key` on every attempt (the message id when the plugin gave none).
    pub idempotency_key: String,
}

/// A call to enqueue, written with a unit of work's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxMessage {
    /// Its id (a UUIDv7).
    pub id: String,
    /// The domain whose command enqueued it.
    pub domain: String,
    /// The service to call.
    pub service: String,
    /// What to send.
    pub request: OutboxRequest,
}

/// One outbox call and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    /// Its id (a UUIDv7).
    pub id: String,
    /// The domain whose command enqueued it.
    pub domain: String,
    /// The service to call.
    pub service: String,
    /// What to send.
    pub request: OutboxRequest,
    /// `pending`, `done` or `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Not attempted before this time (microseconds since the Unix epoch).
    pub next_at_micros: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxOutcome {
    /// The service answered for good.
    Done,
    /// Try again at this time.
    Retry {
        /// When.
        at_micros: i64,
        /// Why this attempt failed.
        error: String,
    },
    /// Not attempted (the service's circuit is open): try at this time, the attempt not counted.
    Postpone {
        /// When.
        at_micros: i64,
    },
    /// The last attempt failed: a dead letter.
    Dead {
        /// Why.
        error: String,
    },
}

/// The outbox's store side (messages are written by [`super::EventStore::append`]).
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Up to `limit` pending messages due at `now`, oldest first. A message is claimed by
    /// pushing its `next_at` forward by `lease_micros`, so a crashed worker's message comes back.
    async fn claim_due(&self, now_micros: i64, lease_micros: i64, limit: u32)
    -> Result<Vec<OutboxMessage>, StoreError>;
    /// Records an attempt's outcome.
    async fn finish(&self, id: &str, outcome: OutboxOutcome) -> Result<(), StoreError>;
    /// Makes the claimed messages due at `now_micros` again: each `(id, lease end)` still pending
    /// under that claim (not recorded since, nor claimed again). How many.
    async fn release(&self, claims: &[(String, i64)], now_micros: i64) -> Result<u64, StoreError>;
    /// A message by id.
    async fn message(&self, id: &str) -> Result<Option<OutboxMessage>, StoreError>;
    /// Dead letters, oldest first.
    async fn dead_letters(&self) -> Result<Vec<OutboxMessage>, StoreError>;
    /// Puts a dead letter back (attempts reset); false if it is not dead.
    async fn retry(&self, id: &str) -> Result<bool, StoreError>;
    /// Deletes a dead letter; false if it is not dead.
    async fn discard(&self, id: &str) -> Result<bool, StoreError>;
}
