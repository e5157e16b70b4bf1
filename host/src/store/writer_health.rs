//! The write path's health, shared by both backends' writer tasks: failing from the first
//! commit that could not be made (disk full, I/O error, database down) until one succeeds again.
//! While failing, an idle writer probes every [`PROBE_EVERY`] with a real write (a row written
//! and deleted in one transaction, so a page really reaches the log), so readiness turns healthy
//! again once the store can commit, without waiting for a command.
//!
//! A group commit that fails is retried unit by unit (see each writer), so one unit of work the
//! database refuses fails alone; the health turns failing when a group commit, or every unit of
//! a failed group on its own, could not commit.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

use super::StoreError;

/// How often an idle, failing writer tries a probe commit.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The idempotency row a probe writes and deletes (an empty scope no domain can have).
pub(crate) const PROBE_KEY: &str = "cairn-writer-probe";

/// Whether the last commit attempt of a writer succeeded.
#[derive(Debug, Default)]
pub(crate) struct WriterHealth {
    failure: Mutex<Option<String>>,
}

impl WriterHealth {
    /// A commit succeeded: the write path is healthy.
    pub(crate) fn committed(&self) {
        let mut failure = self.failure.lock().expect("writer health lock");
        if let Some(cause) = failure.take() {
            tracing::info!(%cause, "the event store commits again");
        }
    }

    /// A commit failed for the store's reasons (not the unit's).
    pub(crate) fn failed(&self, error: &StoreError) {
        *self.failure.lock().expect("writer health lock") = Some(error.0.clone());
    }

    /// Whether the last attempt failed.
    pub(crate) fn failing(&self) -> bool {
        self.failure.lock().expect("writer health lock").is_some()
    }

    /// `Err` naming the cause while the write path cannot commit.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match self.failure.lock().expect("writer health lock").as_ref() {
            Some(cause) => Err(StoreError(format!("the last commit failed: {cause}"))),
            None => Ok(()),
        }
    }
}

/// What a writer does next.
pub(crate) enum Next<T> {
    /// Commit this job (and whatever else is waiting).
    Job(T),
    /// Nothing came for a while and the writer is failing: try a probe commit.
    Probe,
    /// Every sender is gone.
    Closed,
}

/// The next job, or a probe when the writer is failing and idle for [`PROBE_EVERY`].
pub(crate) async fn next<T>(jobs: &mut mpsc::Receiver<T>, health: &WriterHealth) -> Next<T> {
    let received =
        if health.failing() { tokio::time::timeout(PROBE_EVERY, jobs.recv()).await } else { Ok(jobs.recv().await) };
    match received {
        Ok(Some(job)) => Next::Job(job),
        Ok(None) => Next::Closed,
        Err(_) => Next::Probe,
    }
}

/// Gathers `first` and whatever else is waiting, up to `max`.
pub(crate) fn gather<T>(first: T, jobs: &mut mpsc::Receiver<T>, max: usize) -> Vec<T> {
    let mut group = vec![first];
    while group.len() < max {
        match jobs.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    group
}
