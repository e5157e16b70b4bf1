//! Asynchronous and delayed commands: stored durably, answered `202` at once, run by a worker
//! when due. Each job runs under the idempotency key `async-<id>`, so a crash after its events
//! commit but before its outcome is recorded replays the stored answer instead of applying it
//! twice: exactly once. Transient failures retry with exponential backoff and jitter; after the
//! last attempt the job is a dead letter (`failed`) the admin API can show, retry or discard.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;

use super::{CommandEngine, CommandError, CommandRequest};
use crate::store::{CommandQueue, QueuedCommand, StoreError, now_micros};

/// Retry policy and polling of the queue.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Attempts before a job becomes a dead letter.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled each time after.
    pub backoff: Duration,
    /// How often the worker looks for due jobs when nothing wakes it.
    pub poll: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self { max_attempts: 5, backoff: Duration::from_millis(200), poll: Duration::from_millis(100) }
    }
}

/// The queue's front (submit) and its worker.
pub struct AsyncCommands {
    engine: Arc<CommandEngine>,
    queue: Arc<dyn CommandQueue>,
    settings: QueueSettings,
    wake: Notify,
}

impl AsyncCommands {
    /// A queue over `queue`, running jobs through `engine`.
    pub fn new(engine: Arc<CommandEngine>, queue: Arc<dyn CommandQueue>, settings: QueueSettings) -> Arc<Self> {
        Arc::new(Self { engine, queue, settings, wake: Notify::new() })
    }

    /// Stores a command to run at `not_before` (now if `None`). Unknown domains and commands
    /// are refused at once.
    pub async fn submit(
        &self,
        request: &CommandRequest,
        not_before_micros: Option<i64>,
    ) -> Result<QueuedCommand, CommandError> {
        let plugin = self.engine.plugin(&request.domain)?;
        if plugin.command(&request.command).is_none() {
            return Err(CommandError::UnknownCommand {
                domain: request.domain.clone(),
                command: request.command.clone(),
            });
        }
        let job = QueuedCommand {
            id: uuid::Uuid::now_v7().to_string(),
            domain: request.domain.clone(),
            command: request.command.clone(),
            payload: request.payload.clone(),
            correlation_id: request.correlation_id.clone(),
            state: "queued".into(),
            attempts: 0,
            not_before_micros: not_before_micros.unwrap_or_else(now_micros),
            last_error: None,
            result_status: None,
            result: None,
        };
        self.queue.enqueue(&job).await?;
        self.wake.notify_one();
        Ok(job)
    }

    /// A job by id.
    pub async fn job(&self, id: &str) -> Result<Option<QueuedCommand>, StoreError> {
        self.queue.job(id).await
    }

    /// The queue itself (dead letters for the admin API).
    pub fn queue(&self) -> &Arc<dyn CommandQueue> {
        &self.queue
    }

    /// Wakes the worker (after a dead letter is retried).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs the worker until the task is aborted. Jobs a crash left `running` are queued again.
    pub async fn work(self: Arc<Self>) {
        match self.queue.requeue_running().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "re-queued commands interrupted by a stop"),
            Err(error) => tracing::error!(%error, "cannot re-queue interrupted commands"),
        }
        let mut last_sweep = std::time::Instant::now();
        loop {
            if last_sweep.elapsed() >= std::time::Duration::from_secs(60) {
                last_sweep = std::time::Instant::now();
                match self.queue.requeue_abandoned().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(jobs = n, "re-queued commands a stopped host left running"),
                    Err(error) => tracing::warn!(%error, "cannot re-queue abandoned commands"),
                }
            }
            let due = match self.queue.claim_due(now_micros(), 16).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::error!(%error, "cannot read the command queue");
                    Vec::new()
                }
            };
            if due.is_empty() {
                let _ = tokio::time::timeout(self.settings.poll, self.wake.notified()).await;
                continue;
            }
            for job in due {
                self.run(job).await;
            }
        }
    }

    async fn run(&self, job: QueuedCommand) {
        let request = CommandRequest {
            domain: job.domain.clone(),
            command: job.command.clone(),
            payload: job.payload.clone(),
            idempotency_key: Some(format!("async-{}", job.id)),
            correlation_id: job.correlation_id.clone(),
        };
        let span = tracing::info_span!("async_command", id = %job.id, domain = %job.domain, command = %job.command);
        let outcome = tracing::Instrument::instrument(self.engine.handle(request), span).await;
        let recorded = match outcome {
            Ok(done) => self.queue.finish(&job.id, "succeeded", Some(done.status), Some(&done.body), None, None).await,
            Err(error) if transient(&error) && job.attempts < self.settings.max_attempts => {
                let retry_at = now_micros() + self.backoff(job.attempts).as_micros() as i64;
                self.queue.finish(&job.id, "queued", None, None, Some(&error.to_string()), Some(retry_at)).await
            }
            Err(error) if transient(&error) => {
                tracing::warn!(id = %job.id, %error, "command moved to the dead letters");
                self.queue.finish(&job.id, "failed", None, None, Some(&error.to_string()), None).await
            }
            Err(error) => {
                let reason = json!({ "code": code(&error), "detail": error.to_string() }).to_string();
                self.queue.finish(&job.id, "rejected", None, Some(&reason), Some(&error.to_string()), None).await
            }
        };
        if let Err(error) = recorded {
            // The job stays `running`; the next start queues it again and its idempotency key
            // keeps the rerun from applying it twice.
            tracing::error!(id = %job.id, %error, "cannot record a command's outcome");
        }
    }

    /// `backoff * 2^(attempts-1)`, plus up to 25 % jitter.
    fn backoff(&self, attempts: u32) -> Duration {
        let base = self.settings.backoff * 2u32.saturating_pow(attempts.saturating_sub(1)).min(64);
        let jitter = (now_micros().unsigned_abs() % 1000) as f64 / 4000.0;
        base.mul_f64(1.0 + jitter)
    }
}

/// Failures that may pass: the store, conflicts, busy domains, deadlines and traps.
fn transient(error: &CommandError) -> bool {
    matches!(
        error,
        CommandError::Store(_)
            | CommandError::Conflict { .. }
            | CommandError::DomainBusy { .. }
            | CommandError::PluginFault(_)
    )
}

fn code(error: &CommandError) -> String {
    match error {
        CommandError::Rejected(rejection) => rejection.code.clone(),
        CommandError::UnknownDomain(_) => "unknown-domain".into(),
        CommandError::UnknownCommand { .. } => "unknown-command".into(),
        CommandError::InvalidPayload { .. } => "invalid-payload".into(),
        CommandError::LimitExceeded { .. } => "limit-exceeded".into(),
        CommandError::PluginContract { .. } => "plugin-contract-violation".into(),
        _ => "failed".into(),
    }
}
