//! Events a projection keeps failing on ("poison"). After `projections.failure_attempts`
//! failures on one event, the projection's policy applies (`projections.on_failure`, per
//! projection `projections.on_failure_for."<domain>/<projection>"`):
//!
//! - `stop` (the default: nothing is lost without an operator's decision): the generation parks
//!   on the event, durably (it stays parked across restarts and leader changes). Queries over it
//!   answer 503 `projection-failed` at once, on every host. An operator retries the event
//!   (`POST .../retry`) or skips it (`POST .../skip`); a new plugin version taking the
//!   generation over retries it too.
//! - `skip`: the event is recorded as skipped and the checkpoint moves past it, in one
//!   transaction; the projection goes on with the next event.
//!
//! Skipped events (by the policy or an operator) stay listed in
//! `GET /admin/v1/domains/{domain}/projections/{name}/skipped`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::runner::commit_to;
use super::{Generation, Projections, RunState};
use crate::store::StoreError;
use crate::store::StoredEvent;
use crate::store::now_micros;
use crate::store::read_models::{FailedEvent, SkippedEvent};

/// What a projection does with an event it keeps failing on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Park on it until an operator acts (queries answer 503 `projection-failed`).
    #[default]
    Stop,
    /// Record it as skipped and go on.
    Skip,
}

/// Failures of a runner on one event in a row.
#[derive(Default)]
pub(super) struct Strikes {
    position: u64,
    count: u32,
}

/// What an operator's retry or skip did.
#[derive(Debug)]
pub enum Action {
    /// Done, on this parked event.
    Done(FailedEvent),
    /// The projection is not parked.
    NotParked,
    /// No such projection.
    Unknown,
    /// The projections run on another host (named when known).
    Elsewhere(Option<String>),
}

/// Counts a failure of `generation` on `event`; once it has failed often enough, applies the
/// policy. True when the event was skipped (the runner goes on at once).
pub(super) async fn strike(
    projections: &Projections,
    generation: &Generation,
    event: &StoredEvent,
    message: &str,
    strikes: &mut Strikes,
) -> bool {
    if strikes.position == event.position {
        strikes.count += 1;
    } else {
        *strikes = Strikes { position: event.position, count: 1 };
    }
    if strikes.count < projections.settings.failure_attempts.max(1) {
        return false;
    }
    strikes.count = 0;
    let failed = FailedEvent {
        position: event.position,
        stream: event.stream.clone(),
        event_type: event.event_type.clone(),
        error: message.chars().take(2000).collect(),
        at_micros: now_micros(),
    };
    let (domain, name) = (&generation.id.domain, &generation.id.name);
    match projections.settings.policy_for(domain, name) {
        FailurePolicy::Skip => match skip(projections, generation, failed, "policy").await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%domain, projection = %name, error = %e, "skipping a failing event failed; retrying");
                false
            }
        },
        FailurePolicy::Stop => {
            match projections.models.park(&generation.id, &failed).await {
                Ok(()) => {
                    tracing::error!(%domain, projection = %name, position = failed.position, error = %failed.error,
                        "projection stopped on an event it keeps failing on; retry or skip it through the admin API");
                    generation.set_parked(Some(failed));
                    generation.set_state(RunState::Parked);
                }
                Err(e) => tracing::warn!(%domain, projection = %name, error = %e, "parking failed; retrying"),
            }
            false
        }
    }
}

/// Records `failed` as skipped by `by` and moves the checkpoint past it, in one transaction.
async fn skip(
    projections: &Projections,
    generation: &Generation,
    failed: FailedEvent,
    by: &str,
) -> Result<(), StoreError> {
    let position = failed.position;
    let skipped = SkippedEvent { generation: generation.id.generation, event: failed, by: by.to_string() };
    let mut tx = projections.models.write().await?;
    tx.record_skip(&generation.id, &skipped).await?;
    commit_to(generation, tx, position).await?;
    tracing::warn!(domain = %generation.id.domain, projection = %generation.id.name, position, by,
        event_type = %skipped.event.event_type, error = %skipped.event.error, "projection skipped an event");
    generation.advance(position, 0);
    generation.set_parked(None);
    Ok(())
}

/// While `generation` is parked: waits for an operator (or a new plugin version, or a stop).
pub(super) async fn wait_parked(generation: &Generation, stop: &mut tokio::sync::watch::Receiver<bool>) {
    generation.set_state(RunState::Parked);
    tokio::select! {
        _ = generation.wake.notified() => {}
        _ = stop.changed() => {}
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

impl Projections {
    /// The parked generation of `domain/name` (the active one first), or why there is none.
    fn parked_generation(&self, domain: &str, name: &str) -> Result<(Arc<Generation>, FailedEvent), Action> {
        let slots = self.slots.lock().expect("slots lock");
        let slot = slots.get(&(domain.to_string(), name.to_string())).ok_or(Action::Unknown)?;
        if slot.active.is_none() && slot.building.is_none() {
            return Err(Action::Unknown);
        }
        slot.active
            .iter()
            .chain(slot.building.iter())
            .find_map(|g| g.parked().map(|event| (g.clone(), event)))
            .ok_or(Action::NotParked)
    }

    async fn operator(&self, domain: &str, name: &str, skip_it: bool) -> Result<Action, StoreError> {
        if !self.is_leader() {
            return Ok(Action::Elsewhere(self.lease_holder().await));
        }
        let (generation, event) = match self.parked_generation(domain, name) {
            Ok(found) => found,
            Err(action) => return Ok(action),
        };
        if skip_it {
            skip(self, &generation, event.clone(), "operator").await?;
        } else {
            self.models.unpark(&generation.id).await?;
            generation.set_parked(None);
            tracing::info!(%domain, projection = %name, position = event.position, "retrying a parked event");
        }
        generation.wake.notify_waiters();
        Ok(Action::Done(event))
    }

    /// Tries the event `domain/name` is parked on again.
    pub async fn retry(&self, domain: &str, name: &str) -> Result<Action, StoreError> {
        self.operator(domain, name, false).await
    }

    /// Skips the event `domain/name` is parked on (recorded as skipped by an operator).
    pub async fn skip(&self, domain: &str, name: &str) -> Result<Action, StoreError> {
        self.operator(domain, name, true).await
    }

    /// The events generations of `domain/name` skipped, oldest first.
    pub async fn skipped(&self, domain: &str, name: &str) -> Result<Vec<SkippedEvent>, StoreError> {
        self.models.skipped(domain, name, 1000).await
    }

    /// Marks the generations in the slots parked as stored (at a takeover, and on followers).
    pub(super) async fn load_parked(&self) -> Result<(), StoreError> {
        let parked: std::collections::HashMap<_, _> = self.models.parked().await?.into_iter().collect();
        let slots = self.slots.lock().expect("slots lock");
        for generation in slots.values().flat_map(|s| s.active.iter().chain(s.building.iter())) {
            generation.set_parked(parked.get(&generation.id).cloned());
        }
        Ok(())
    }
}
