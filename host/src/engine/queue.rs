//! Asynchronous and delayed commands: stored durably, answered `202` at once, run by a worker
//! when due. Each job runs under the idempotency key `async-<id>`, so a crash after its events
//! commit but before its outcome is recorded replays the stored answer instead of applying it
//! twice: exactly once. A client's `Idempotency-Key` names one job per domain: a repeat answers
//! the first job, another request under the key is refused.
//!
//! The worker runs several jobs at once (`queue.workers`), at most `queue.per_domain` of one
//! domain, so one domain's slow jobs cannot hold up another's. It claims jobs under a lease it
//! renews while they run; a host that dies leaves its jobs to be claimed again when their leases
//! run out. Transient failures (the store, conflicts, a busy domain) retry with exponential
//! backoff and jitter; a plugin fault (a deadline overrun, the memory cap, a trap) is the
//! plugin's doing and fails the job at once. A failed job is a dead letter the admin API can
//! show, retry or discard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use super::stop::{Stop, cut, running, stopping};
use tokio::task::JoinSet;

use super::{CommandEngine, CommandError, CommandRequest};
use crate::store::{Claim, CommandQueue, QueuedCommand, StoreError, now_micros};

/// Retry policy, concurrency, leases and polling of the queue.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Attempts before a transiently failing job becomes a dead letter.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled each time after.
    pub backoff: Duration,
    /// How often the worker looks for due jobs when nothing wakes it.
    pub poll: Duration,
    /// Jobs this host runs at once.
    pub workers: usize,
    /// Jobs of one domain this host runs at once.
    pub per_domain: usize,
    /// How long a claimed job stays this host's without a renewal (renewed every third of it).
    pub lease: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff: Duration::from_millis(200),
            poll: Duration::from_millis(100),
            workers: 8,
            per_domain: 2,
            lease: Duration::from_secs(6),
        }
    }
}

/// A submission's answer: the job, and whether an earlier one under the same key is answered.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The job (the earlier one for a repeat).
    pub job: QueuedCommand,
    /// True when the `Idempotency-Key` named an earlier job with the same request.
    pub replayed: bool,
}

/// The queue's front (submit) and its worker.
pub struct AsyncCommands {
    engine: Arc<CommandEngine>,
    queue: Arc<dyn CommandQueue>,
    settings: QueueSettings,
    /// This host, as its claims name it.
    owner: String,
    wake: Notify,
    /// The jobs running here: id → domain.
    running: Mutex<HashMap<String, String>>,
}

impl AsyncCommands {
    /// A queue over `queue`, running jobs through `engine`; its claims name `owner` (this host).
    pub fn new(
        engine: Arc<CommandEngine>,
        queue: Arc<dyn CommandQueue>,
        settings: QueueSettings,
        owner: String,
    ) -> Arc<Self> {
        Arc::new(Self { engine, queue, settings, owner, wake: Notify::new(), running: Mutex::default() })
    }

    /// Stores a command to run at `not_before` (now if `None`). Unknown domains and commands
    /// are refused at once. Under an `Idempotency-Key` the domain already queued with the same
    /// command and payload, that job is answered and nothing is stored; with another request,
    /// [`CommandError::IdempotencyKeyReused`].
    pub async fn submit(
        &self,
        request: &CommandRequest,
        not_before_micros: Option<i64>,
    ) -> Result<Submitted, CommandError> {
        let plugin = self.engine.plugin(&request.domain)?;
        if plugin.command(&request.command).is_none() {
            return Err(CommandError::UnknownCommand {
                domain: request.domain.clone(),
                command: request.command.clone(),
            });
        }
        let request_hash = hex::encode(Sha256::digest(format!("{}\n{}", request.command, request.payload)));
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
            idempotency_key: request.idempotency_key.clone(),
            request_hash: Some(request_hash.clone()),
        };
        match self.queue.enqueue(&job).await? {
            None => {
                self.wake.notify_one();
                Ok(Submitted { job, replayed: false })
            }
            Some(earlier) if earlier.request_hash.as_deref() == Some(request_hash.as_str()) => {
                Ok(Submitted { job: earlier, replayed: true })
            }
            Some(earlier) => Err(CommandError::IdempotencyKeyReused(earlier.idempotency_key.unwrap_or_default())),
        }
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

    /// Runs the worker until `stop` says [`Stop::Drain`]: then it claims nothing more, lets the
    /// jobs under way finish and returns. At [`Stop::Cut`] (the grace period over) it aborts the
    /// jobs still running and returns: [`AsyncCommands::release`] hands them back (after a crash
    /// they are claimed again when their leases run out). Jobs a crash left `running` are
    /// queued again first.
    pub async fn work(self: Arc<Self>, stop: watch::Receiver<Stop>) {
        match self.queue.requeue_running().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "re-queued commands interrupted by a stop"),
            Err(error) => tracing::error!(%error, "cannot re-queue interrupted commands"),
        }
        // Renewals run beside the claims, so a slow claim (a store timing out) cannot let the
        // leases of running jobs lapse.
        // The renewals end with the claims, once the last job finished.
        tokio::select! {
            () = self.renew_leases() => {}
            () = self.claim_loop(stop) => {}
        }
    }

    /// Starts due jobs as slots free up, until `stop` leaves [`Stop::Run`]; then waits for the
    /// jobs under way, or cuts them off at [`Stop::Cut`].
    async fn claim_loop(self: &Arc<Self>, mut stop: watch::Receiver<Stop>) {
        let mut jobs = JoinSet::new();
        let mut cursor = 0usize;
        while running(&stop) {
            while let Some(done) = jobs.try_join_next() {
                if let Err(error) = done {
                    tracing::error!(%error, "an asynchronous command's task failed");
                }
            }
            let claimed = self.claim(&mut jobs, &mut cursor).await;
            if claimed == 0 {
                tokio::select! {
                    _ = tokio::time::timeout(self.settings.poll, self.wake.notified()) => {}
                    () = stopping(&mut stop) => {}
                }
            }
        }
        if !jobs.is_empty() {
            tracing::info!(jobs = jobs.len(), "stopping: waiting for the commands under way");
        }
        loop {
            tokio::select! {
                done = jobs.join_next() => match done {
                    None => return,
                    Some(Err(error)) => tracing::error!(%error, "an asynchronous command's task failed"),
                    Some(Ok(())) => {}
                },
                () = cut(&mut stop) => {
                    tracing::warn!(jobs = jobs.len(), "stopping: cutting off the commands still running");
                    jobs.shutdown().await;
                    return;
                }
            }
        }
    }

    /// Renews the leases of the jobs running here every third of a lease, until dropped.
    async fn renew_leases(&self) {
        loop {
            tokio::time::sleep(self.settings.lease / 3).await;
            self.renew().await;
        }
    }

    /// After [`AsyncCommands::work`] was aborted (a stop's grace period over): the jobs it was
    /// running are queued again with no lease, for another host (or the next start) to claim at
    /// once instead of after their leases.
    pub async fn release(&self) {
        match self.queue.release(&self.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "released the commands this host was running"),
            Err(error) => tracing::warn!(%error, "cannot release the commands this host was running"),
        }
    }

    /// Claims what the free slots allow, domain by domain (starting at a rotating `cursor`, so
    /// no domain is always served first), and starts each job in `jobs`. How many it started.
    async fn claim(self: &Arc<Self>, jobs: &mut JoinSet<()>, cursor: &mut usize) -> usize {
        let mut free = self.settings.workers.saturating_sub(self.running.lock().map_or(0, |r| r.len()));
        if free == 0 {
            return 0;
        }
        let now = now_micros();
        let mut domains = match self.queue.due_domains(now).await {
            Ok(domains) => domains,
            Err(error) => {
                tracing::error!(%error, "cannot read the command queue");
                return 0;
            }
        };
        if domains.is_empty() {
            return 0;
        }
        *cursor = cursor.wrapping_add(1);
        let len = domains.len();
        domains.rotate_left(*cursor % len);
        let claim = Claim {
            owner: self.owner.clone(),
            now_micros: now,
            lease_until_micros: now + self.settings.lease.as_micros() as i64,
        };
        let mut started = 0;
        for domain in domains {
            let busy = self.running.lock().map_or(0, |r| r.values().filter(|d| **d == domain).count());
            let room = self.settings.per_domain.saturating_sub(busy).min(free);
            if room == 0 {
                continue;
            }
            let claimed = match self.queue.claim_due(&claim, Some(&domain), room as u32).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, %domain, "cannot claim queued commands");
                    continue;
                }
            };
            for job in claimed {
                // A job of this host whose lease lapsed (a renewal late): the claim renewed it
                // without counting an attempt (a claim by the job's own host does not), and it
                // is running here already.
                let fresh =
                    self.running.lock().is_ok_and(|mut r| r.insert(job.id.clone(), job.domain.clone()).is_none());
                if !fresh {
                    continue;
                }
                free -= 1;
                started += 1;
                let this = self.clone();
                jobs.spawn(async move {
                    let id = job.id.clone();
                    this.run(job).await;
                    if let Ok(mut running) = this.running.lock() {
                        running.remove(&id);
                    }
                    this.wake.notify_one();
                });
            }
            if free == 0 {
                break;
            }
        }
        started
    }

    /// Extends the leases of the jobs running here.
    async fn renew(&self) {
        let ids: Vec<String> = self.running.lock().map(|r| r.keys().cloned().collect()).unwrap_or_default();
        if ids.is_empty() {
            return;
        }
        let until = now_micros() + self.settings.lease.as_micros() as i64;
        match self.queue.renew(&self.owner, &ids, until).await {
            Ok(n) if n < ids.len() as u64 => {
                tracing::warn!(running = ids.len(), renewed = n, "another host took over commands running here");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "cannot renew the leases of running commands"),
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
        let (owner, id) = (self.owner.as_str(), job.id.as_str());
        // What is recorded of a failure never holds a NUL (a plugin's rejection message may;
        // PostgreSQL's text cannot), or the outcome could never be stored and the job would rerun.
        let text = |error: &CommandError| error.to_string().replace('\0', "\u{fffd}");
        let recorded = match outcome {
            Ok(done) => {
                self.queue.finish(owner, id, "succeeded", Some(done.status), Some(&done.body), None, None).await
            }
            Err(error) if transient(&error) && job.attempts < self.settings.max_attempts => {
                let retry_at = now_micros() + self.backoff(job.attempts).as_micros() as i64;
                self.queue.finish(owner, id, "queued", None, None, Some(&text(&error)), Some(retry_at)).await
            }
            Err(error) if transient(&error) || matches!(error, CommandError::PluginFault(_)) => {
                tracing::warn!(%id, %error, "command moved to the dead letters");
                self.queue.finish(owner, id, "failed", None, None, Some(&text(&error)), None).await
            }
            Err(error) => {
                let reason = json!({ "code": code(&error), "detail": text(&error) }).to_string();
                self.queue.finish(owner, id, "rejected", None, Some(&reason), Some(&text(&error)), None).await
            }
        };
        match recorded {
            Ok(true) => {}
            // Another host claimed it after this host's lease ran out; its run replays this one.
            Ok(false) => tracing::warn!(%id, "a command's outcome was not recorded: another host took it over"),
            // The job stays `running` until its lease runs out; then it is claimed again and its
            // idempotency key keeps the rerun from applying it twice.
            Err(error) => tracing::error!(%id, %error, "cannot record a command's outcome"),
        }
    }

    /// `backoff * 2^(attempts-1)`, plus up to 25 % jitter.
    fn backoff(&self, attempts: u32) -> Duration {
        let base = self.settings.backoff * 2u32.saturating_pow(attempts.saturating_sub(1)).min(64);
        let jitter = (now_micros().unsigned_abs() % 1000) as f64 / 4000.0;
        base.mul_f64(1.0 + jitter)
    }
}

/// Failures that may pass: the store, conflicts, busy domains. A plugin fault (a deadline
/// overrun, the memory cap, a trap) is not: the plugin would do the same again.
fn transient(error: &CommandError) -> bool {
    matches!(error, CommandError::Store(_) | CommandError::Conflict { .. } | CommandError::DomainBusy { .. })
}

fn code(error: &CommandError) -> String {
    match error {
        CommandError::Rejected(rejection) => rejection.code.clone(),
        CommandError::UnknownDomain(_) => "unknown-domain".into(),
        CommandError::UnknownCommand { .. } => "unknown-command".into(),
        CommandError::InvalidPayload { .. } => "invalid-payload".into(),
        CommandError::LimitExceeded { .. } => "limit-exceeded".into(),
        CommandError::PluginContract { .. } => "plugin-contract-violation".into(),
        CommandError::IdempotencyKeyReused(_) => "idempotency-key-reused".into(),
        CommandError::InvalidStream(_) => "invalid-stream".into(),
        CommandError::Unstorable(_) => "unstorable-event".into(),
        CommandError::HistoryTooLarge { .. } => "history-too-large".into(),
        _ => "failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{FaultKind, PluginFault};

    #[test]
    fn plugin_faults_are_not_transient_and_the_store_busy_domains_and_conflicts_are() {
        for kind in [FaultKind::Deadline, FaultKind::Memory, FaultKind::Stack, FaultKind::Trap] {
            let name = format!("{kind:?}");
            let fault = PluginFault {
                kind,
                domain: "d".into(),
                version: "1.0.0".into(),
                function: "decide",
                message: "m".into(),
                limit: None,
            };
            assert!(!transient(&CommandError::PluginFault(fault)), "{name}");
        }
        assert!(transient(&CommandError::Store(StoreError("down".into()))));
        assert!(transient(&CommandError::DomainBusy { domain: "d".into(), slots: 1 }));
        assert!(transient(&CommandError::Conflict { stream: "s".into(), attempts: 5 }));
        assert!(!transient(&CommandError::UnknownDomain("d".into())));
    }
}
