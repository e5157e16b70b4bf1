//! The outbox worker: makes the gateway calls command handlers enqueued, after their commands
//! committed. It wakes on every commit (the event store's head) and twice a second, claims due
//! messages (a claim is a lease: a host that dies mid-call leaves the message to be taken
//! again once the lease, the longest service timeout plus [`LEASE_MARGIN`], has run out), makes
//! one attempt each under the service's timeout and breaker, and records the
//! outcome: done, retry after a backoff, or a dead letter after the service's last attempt.
//! Every attempt carries the message's idempotency key, so the service can drop a repeat.

use std::sync::Arc;
use std::time::Duration;

use crate::capabilities::gateway::{Delivery, Gateway};
use crate::store::{EventStore, Outbox, OutboxOutcome, now_micros};

/// How long a claimed message stays with the worker that took it, past the longest attempt (one
/// attempt per claim, bounded by its service's timeout): time to record the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Messages claimed at once (delivered concurrently).
const BATCH: u32 = 32;

/// Delivers the outbox.
pub struct OutboxWorker {
    outbox: Arc<dyn Outbox>,
    gateway: Arc<Gateway>,
    events: Arc<dyn EventStore>,
    lease: Duration,
}

impl OutboxWorker {
    /// A worker over `outbox`, calling through `gateway`, woken by `events`' commits.
    pub fn new(outbox: Arc<dyn Outbox>, gateway: Arc<Gateway>, events: Arc<dyn EventStore>) -> Self {
        let lease = gateway.longest_timeout() + LEASE_MARGIN;
        Self { outbox, gateway, events, lease }
    }

    /// Runs until aborted.
    pub async fn work(self) {
        let mut head = self.events.head();
        loop {
            let due = self.outbox.claim_due(now_micros(), self.lease.as_micros() as i64, BATCH).await;
            match due {
                Ok(messages) if !messages.is_empty() => {
                    let mut deliveries = tokio::task::JoinSet::new();
                    for message in messages {
                        let (outbox, gateway) = (self.outbox.clone(), self.gateway.clone());
                        deliveries.spawn(async move { deliver(outbox.as_ref(), &gateway, message).await });
                    }
                    while let Some(done) = deliveries.join_next().await {
                        if let Err(e) = done {
                            tracing::error!(error = %e, "an outbox delivery task failed");
                        }
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "claiming outbox messages failed"),
            }
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        // The event writer is gone: poll only.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// One attempt of `message`, and its outcome recorded.
async fn deliver(outbox: &dyn Outbox, gateway: &Gateway, message: crate::store::OutboxMessage) {
    let outcome = match gateway.deliver(&message).await {
        Delivery::Done => OutboxOutcome::Done,
        Delivery::Postpone { after } => OutboxOutcome::Postpone { at_micros: now_micros() + after.as_micros() as i64 },
        Delivery::Retry { error, after } => {
            OutboxOutcome::Retry { at_micros: now_micros() + after.as_micros() as i64, error }
        }
        Delivery::Dead { error } => {
            tracing::warn!(id = %message.id, domain = %message.domain, service = %message.service, %error,
                "outbox call is a dead letter");
            OutboxOutcome::Dead { error }
        }
    };
    // Recording the outcome is retried: an unrecorded success would be sent again after the
    // lease, an unrecorded failure would not count.
    for attempt in 0..5u32 {
        match outbox.finish(&message.id, outcome.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(id = %message.id, error = %e, attempt, "recording an outbox outcome failed");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
}
