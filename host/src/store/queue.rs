//! The durable queue of asynchronous and delayed commands, with its dead letters.
//!
//! A job is claimed by one host under a lease ([`Claim`]) that the host renews while the job
//! runs; a job whose lease ran out (its host died) is claimed again by any host. A client's
//! `Idempotency-Key` is unique per domain in the queue (a unique index), so a repeated or
//! concurrent submission finds the first job instead of queueing a second one.

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
    /// The client's `Idempotency-Key`, unique per domain.
    #[serde(skip)]
    pub idempotency_key: Option<String>,
    /// Hash of the command and payload, to tell a repeat from another request under one key.
    #[serde(skip)]
    pub request_hash: Option<String>,
}

/// Who claims jobs, and until when they are theirs unless renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The claiming host (renewals and outcomes name it).
    pub owner: String,
    /// Now (microseconds since the Unix epoch): jobs due by then are claimed, and running jobs
    /// whose lease ended before then.
    pub now_micros: i64,
    /// The claimed jobs' lease end.
    pub lease_until_micros: i64,
}

/// Durable queue of commands to run later.
#[async_trait]
pub trait CommandQueue: Send + Sync + 'static {
    /// Stores a new job, unless its domain already has a job under its idempotency key: then
    /// nothing is stored and that job is returned (also when the twin is being inserted
    /// concurrently: the store's unique index decides).
    async fn enqueue(&self, job: &QueuedCommand) -> Result<Option<QueuedCommand>, StoreError>;
    /// The domains with jobs to claim at `now` (due, or running under an expired lease).
    async fn due_domains(&self, now_micros: i64) -> Result<Vec<String>, StoreError>;
    /// Marks up to `limit` claimable jobs (of `domain`, or any) `running` under `claim`'s lease
    /// and returns them, oldest first. Claimable: due and `queued`, or `running` under a lease
    /// that ended.
    async fn claim_due(
        &self,
        claim: &Claim,
        domain: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QueuedCommand>, StoreError>;
    /// Extends the lease of `owner`'s running jobs `ids` to `until`; how many are still its.
    async fn renew(&self, owner: &str, ids: &[String], until_micros: i64) -> Result<u64, StoreError>;
    /// Queues `owner`'s running jobs again, with no lease (it stopped them): any host may claim
    /// them at once. How many.
    async fn release(&self, owner: &str) -> Result<u64, StoreError>;
    /// Records a final outcome (`succeeded`, `rejected` or `failed`) or, with `retry_at`, puts the
    /// job back as `queued` for a later attempt. Only while `owner` holds the job: false (nothing
    /// written) when another host took it over.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        owner: &str,
        id: &str,
        state: &str,
        status: Option<u16>,
        result: Option<&str>,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// A job by id.
    async fn job(&self, id: &str) -> Result<Option<QueuedCommand>, StoreError>;
    /// Dead letters, oldest first.
    async fn dead_letters(&self) -> Result<Vec<QueuedCommand>, StoreError>;
    /// Puts a dead letter back in the queue (attempts reset); false if it is not dead.
    async fn revive(&self, id: &str, now_micros: i64) -> Result<bool, StoreError>;
    /// Deletes a dead letter; false if it is not dead.
    async fn discard(&self, id: &str) -> Result<bool, StoreError>;
    /// At start: jobs a crash of this host left `running` go back to `queued`. Alone (SQLite)
    /// that is every running job; where hosts share the queue, their leases tell instead.
    async fn requeue_running(&self) -> Result<u64, StoreError>;
}
