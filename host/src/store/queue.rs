//! The durable queue of asynchronous and delayed commands, with its dead letters.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreError;

/// One queued command and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedCommand {
    /// The job's id (a UUIDv7).
    pub id: String,
    /// Target domain.
    pub domain: String,
    /// Command name.
    pub command: String,
    /// Payload, JSON text.
    #[serde(skip)]
    pub payload: String,
    /// The client's correlation id.
    #[serde(skip)]
    pub correlation_id: Option<String>,
    /// `queued`, `running`, `succeeded`, `rejected` or `failed` (a dead letter).
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Not run before this time (microseconds since the Unix epoch).
    pub not_before_micros: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// HTTP status of the outcome, once finished.
    pub result_status: Option<u16>,
    /// The outcome's JSON (the command's answer, or its problem).
    #[serde(skip)]
    pub result: Option<String>,
}

/// Durable queue of commands to run later.
#[async_trait]
pub trait CommandQueue: Send + Sync + 'static {
    /// Stores a new job.
    async fn enqueue(&self, job: &QueuedCommand) -> Result<(), StoreError>;
    /// Marks up to `limit` due jobs `running` and returns them (oldest first).
    async fn claim_due(&self, now_micros: i64, limit: u32) -> Result<Vec<QueuedCommand>, StoreError>;
    /// Records a final outcome (`succeeded`, `rejected` or `failed`) or, with `retry_at`, puts the
    /// job back as `queued` for a later attempt.
    async fn finish(
        &self,
        id: &str,
        state: &str,
        status: Option<u16>,
        result: Option<&str>,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError>;
    /// A job by id.
    async fn job(&self, id: &str) -> Result<Option<QueuedCommand>, StoreError>;
    /// Dead letters, oldest first.
    async fn dead_letters(&self) -> Result<Vec<QueuedCommand>, StoreError>;
    /// Puts a dead letter back in the queue (attempts reset); false if it is not dead.
    async fn revive(&self, id: &str, now_micros: i64) -> Result<bool, StoreError>;
    /// Deletes a dead letter; false if it is not dead.
    async fn discard(&self, id: &str) -> Result<bool, StoreError>;
    /// After a crash: jobs left `running` go back to `queued`.
    async fn requeue_running(&self) -> Result<u64, StoreError>;
    /// While running: jobs another host sharing the queue left `running` when it died go back to
    /// `queued`. Alone (SQLite) there is no other host: nothing to do.
    async fn requeue_abandoned(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}
