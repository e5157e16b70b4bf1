//! The outbox worker: makes the gateway calls command handlers enqueued, after their commands
//! committed. It wakes on every commit (the event store's head) and twice a second, claims due
//! messages (a claim is a lease: a host that dies mid-call leaves the message to be taken
//! again once the lease, the longest service timeout plus [`LEASE_MARGIN`], has run out), makes
//! one attempt each under the service's timeout and breaker, and records the
//! outcome: done, retry after a backoff, or a dead letter after the service's last attempt.
//! Every attempt carries the message's idempotency key, so the service can drop a repeat.
//!
//! Recording an outcome is bounded ([`RECORD`]: tries of at most 2 s each, with pauses between
//! them), and the lease outlasts that bound: no other host claims a message
//! (and calls again) while its outcome is still being recorded. A stop ends the claims, lets the
//! deliveries under way finish, and whatever a stop cuts off is released, due at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::stop::{Stop, cut, running, stopping};
use crate::capabilities::gateway::{Delivery, Gateway};
use crate::store::{EventStore, Outbox, OutboxMessage, OutboxOutcome, now_micros};

/// How recording an outcome is retried.
#[derive(Debug, Clone, Copy)]
struct RecordPolicy {
    /// Tries.
    attempts: u32,
    /// The longest one try may take (a store call past it is given up and retried).
    call: Duration,
    /// The pause after the first failed try, doubled after each.
    backoff: Duration,
}

impl RecordPolicy {
    /// The longest recording takes: every try timing out, with the pauses between.
    const fn budget(&self) -> Duration {
        let (mut total, mut attempt) = (0u64, 0u32);
        while attempt < self.attempts {
            total += self.call.as_millis() as u64;
            if attempt + 1 < self.attempts {
                total += (self.backoff.as_millis() as u64) << attempt;
            }
            attempt += 1;
        }
        Duration::from_millis(total)
    }
}

/// Five tries of at most 2 s, 100 ms to 800 ms apart: 11.5 s at most.
const RECORD: RecordPolicy =
    RecordPolicy { attempts: 5, call: Duration::from_secs(2), backoff: Duration::from_millis(100) };

/// How long a claimed message stays with the worker that took it, past the longest attempt (one
/// attempt per claim, bounded by its service's timeout): the recording's whole budget, and two
/// seconds for the rest (spawning the delivery, the clocks).
const LEASE_MARGIN: Duration = Duration::from_millis(RECORD.budget().as_millis() as u64 + 2_000);
/// Messages claimed at once (delivered concurrently).
const BATCH: u32 = 32;

/// Delivers the outbox.
pub struct OutboxWorker {
    outbox: Arc<dyn Outbox>,
    gateway: Arc<Gateway>,
    events: Arc<dyn EventStore>,
    lease: Duration,
    /// The messages being delivered here: id → the end of their claim's lease.
    in_flight: Mutex<HashMap<String, i64>>,
}

impl OutboxWorker {
    /// A worker over `outbox`, calling through `gateway`, woken by `events`' commits.
    pub fn new(outbox: Arc<dyn Outbox>, gateway: Arc<Gateway>, events: Arc<dyn EventStore>) -> Arc<Self> {
        let lease = gateway.longest_timeout() + LEASE_MARGIN;
        Arc::new(Self { outbox, gateway, events, lease, in_flight: Mutex::default() })
    }

    /// Runs until `stop` says [`Stop::Drain`] (then returns once the deliveries under way are
    /// recorded) or [`Stop::Cut`] (then cuts them off: [`OutboxWorker::release`] hands them back).
    pub async fn work(self: Arc<Self>, mut stop: watch::Receiver<Stop>) {
        let mut head = self.events.head();
        while running(&stop) {
            let now = now_micros();
            let lease = self.lease.as_micros() as i64;
            let due = self.outbox.claim_due(now, lease, BATCH).await;
            match due {
                Ok(messages) if !messages.is_empty() => {
                    let mut deliveries = tokio::task::JoinSet::new();
                    for message in messages {
                        if let Ok(mut in_flight) = self.in_flight.lock() {
                            in_flight.insert(message.id.clone(), now.saturating_add(lease));
                        }
                        let this = self.clone();
                        deliveries.spawn(async move {
                            let id = message.id.clone();
                            deliver(this.outbox.as_ref(), &this.gateway, message).await;
                            if let Ok(mut in_flight) = this.in_flight.lock() {
                                in_flight.remove(&id);
                            }
                        });
                    }
                    loop {
                        tokio::select! {
                            done = deliveries.join_next() => match done {
                                None => break,
                                Some(Err(e)) => tracing::error!(error = %e, "an outbox delivery task failed"),
                                Some(Ok(())) => {}
                            },
                            () = cut(&mut stop) => {
                                deliveries.shutdown().await;
                                return;
                            }
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
                () = stopping(&mut stop) => {}
            }
        }
    }

    /// After [`OutboxWorker::work`] was cut off: the messages it was delivering are due at once
    /// (for another host, or the next start), instead of after their leases.
    pub async fn release(&self) {
        let claims: Vec<(String, i64)> = self
            .in_flight
            .lock()
            .map(|f| f.iter().map(|(id, until)| (id.clone(), *until)).collect())
            .unwrap_or_default();
        if claims.is_empty() {
            return;
        }
        match self.outbox.release(&claims, now_micros()).await {
            Ok(n) => tracing::info!(messages = n, "released the outbox calls this host was making"),
            Err(error) => tracing::warn!(%error, "cannot release the outbox calls this host was making"),
        }
    }
}

/// One attempt of `message`, and its outcome recorded.
async fn deliver(outbox: &dyn Outbox, gateway: &Gateway, message: OutboxMessage) {
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
    record(outbox, &message.id, outcome, RECORD).await;
}

/// Records `outcome`, retried (an unrecorded success would be sent again after the lease, an
/// unrecorded failure would not count) within `policy`'s budget. Whether it was recorded.
async fn record(outbox: &dyn Outbox, id: &str, outcome: OutboxOutcome, policy: RecordPolicy) -> bool {
    for attempt in 0..policy.attempts {
        let error = match tokio::time::timeout(policy.call, outbox.finish(id, outcome.clone())).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", policy.call.as_millis()),
        };
        tracing::error!(%id, %error, attempt, "recording an outbox outcome failed");
        if attempt + 1 < policy.attempts {
            tokio::time::sleep(policy.backoff * (1 << attempt)).await;
        }
    }
    false
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
