//! The runner of one projection generation: follows its domain's log from the checkpoint, feeds
//! batches to the plugin's `project`, and commits the documents it wrote together with the new
//! checkpoint (at least once delivery, exactly once effects). It wakes on the event store's head
//! (and polls once a second as a fallback). A failing batch is retried event by event to commit
//! what precedes the culprit and name it; then the generation waits with backoff and tries again.

use std::sync::Arc;
use std::time::Duration;

use super::poison::{self, Strikes};
use super::{Generation, ProjectionError, Projections, RunState};
use crate::bindings::types::RecordedEvent;
use crate::capabilities::event_store::recorded_event;
use crate::capabilities::read_model::ReadAccess;
use crate::runtime::Plugin;
use crate::store::StoredEvent;
use crate::store::read_models::{Checkpoint, WriteError};

/// Why a batch did not commit.
struct Failure {
    message: String,
    position: Option<u64>,
    /// The store failed, not the plugin.
    store: bool,
}

pub(super) async fn run(projections: Arc<Projections>, generation: Arc<Generation>) {
    let mut head = projections.events.head();
    let mut stop = generation.stop.subscribe();
    let mut backoff = projections.settings.first_backoff;
    let domain = generation.id.domain.clone();
    let mut last_bare_checkpoint = std::time::Instant::now();
    let mut strikes = Strikes::default();
    loop {
        if *stop.borrow() {
            break;
        }
        if generation.parked().is_some() {
            poison::wait_parked(&generation, &mut stop).await;
            continue;
        }
        let Some(plugin) = generation.plugin() else {
            generation.set_state(RunState::Paused);
            let _ = tokio::time::timeout(Duration::from_secs(1), stop.changed()).await;
            continue;
        };
        let position = generation.position();
        let batch = projections.settings.batch;
        let slice = match projections.events.read_log(&domain, position, batch).await {
            Ok(slice) => slice,
            Err(e) => {
                generation.fail(ProjectionError::store(e.0));
                pause(&generation, &mut stop, &mut backoff, projections.settings.max_backoff).await;
                continue;
            }
        };
        let caught_up = slice.events.len() < batch as usize;
        let wanted = wanted_types(&plugin, &generation.id.name);
        let events: Vec<StoredEvent> = slice
            .events
            .into_iter()
            .filter(|e| wanted.as_ref().is_none_or(|types| types.iter().any(|t| t == &e.event_type)))
            .collect();
        if !events.is_empty() {
            match apply_batch(&projections, &generation, &plugin, &events, slice.complete_to).await {
                Ok(()) => backoff = projections.settings.first_backoff,
                Err((applied_to, failure, event)) => {
                    if applied_to > position {
                        generation.advance(applied_to, 0);
                    }
                    let store = failure.store;
                    let error = match &event {
                        Some(e) => ProjectionError::at_event(failure.message.clone(), e),
                        None if failure.store => ProjectionError::store(failure.message.clone()),
                        None => ProjectionError::plugin(failure.message.clone(), failure.position),
                    };
                    generation.fail(error);
                    if let Some(event) = &event
                        && !store
                        && poison::strike(&projections, &generation, event, &failure.message, &mut strikes).await
                    {
                        continue; // skipped by its policy: on with the next event
                    }
                    if store && !generation.resync(projections.models.as_ref()).await {
                        break; // dropped or retired: another generation serves now
                    }
                    pause(&generation, &mut stop, &mut backoff, projections.settings.max_backoff).await;
                    continue;
                }
            }
        } else if slice.complete_to > position {
            // Nothing of interest: move on in memory; the stored checkpoint follows at the next
            // commit (a restart re-reads this stretch, which is harmless), or at most every
            // quarter of a second once caught up, so that hosts following the stored checkpoint
            // (several hosts on PostgreSQL) see `min_position` reached too.
            generation.advance(slice.complete_to, 0);
            if caught_up && last_bare_checkpoint.elapsed() >= BARE_CHECKPOINT_EVERY {
                last_bare_checkpoint = std::time::Instant::now();
                store_checkpoint(&projections, &generation, slice.complete_to).await;
            }
        }
        if caught_up {
            generation.set_state(RunState::Live);
            if generation.is_building() {
                projections.promote_caught_up(&generation).await;
            }
            tokio::select! {
                _ = head.changed() => {}
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        } else {
            generation.set_state(RunState::CatchingUp);
        }
    }
    generation.set_state(RunState::Stopped);
}

/// Longest time the stored checkpoint lags over events the projection does not read.
const BARE_CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Commits a checkpoint with no documents (over events the projection skipped). A refusal (the
/// checkpoint moved) only means another runner got further; the next batch resyncs.
async fn store_checkpoint(projections: &Projections, generation: &Generation, to: u64) {
    if to <= generation.stored.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let committed = match projections.models.write().await {
        Ok(tx) => commit_to(generation, tx, to).await,
        Err(e) => Err(e),
    };
    if let Err(e) = committed {
        tracing::debug!(projection = %generation.id.name, error = %e, "storing a checkpoint failed");
    }
}

/// Commits `tx` with the checkpoint moved from where this runner last stored it to `to` (a
/// compare-and-set: see [`Checkpoint`]), and remembers the new one.
pub(super) async fn commit_to(
    generation: &Generation,
    tx: Box<dyn crate::store::ReadModelTx>,
    to: u64,
) -> Result<(), crate::store::StoreError> {
    let expected = generation.stored.load(std::sync::atomic::Ordering::Acquire);
    tx.commit(Some(Checkpoint { generation: generation.id.clone(), expected, position: to })).await?;
    generation.stored.store(to, std::sync::atomic::Ordering::Release);
    Ok(())
}

/// The event types the projection reads; `None` for all.
fn wanted_types(plugin: &Plugin, projection: &str) -> Option<Vec<String>> {
    plugin.projection(projection).map(|p| p.event_types.clone()).filter(|types| !types.is_empty())
}

/// Applies `events` in one transaction ending at `complete_to`; when that fails, one event at a
/// time, so that what precedes the failing event commits. On failure: how far it got, why, and
/// the failing event when it is known.
async fn apply_batch(
    projections: &Projections,
    generation: &Arc<Generation>,
    plugin: &Arc<Plugin>,
    events: &[StoredEvent],
    complete_to: u64,
) -> Result<(), (u64, Failure, Option<StoredEvent>)> {
    let start = generation.position();
    let Err(failure) = apply(projections, generation, plugin, events, complete_to).await else {
        generation.advance(complete_to, events.len() as u64);
        return Ok(());
    };
    if failure.store {
        return Err((start, failure, None));
    }
    let mut applied_to = start;
    for event in events {
        if let Err(failure) = apply(projections, generation, plugin, std::slice::from_ref(event), event.position).await
        {
            let culprit = (!failure.store).then(|| event.clone());
            return Err((applied_to, failure, culprit));
        }
        applied_to = event.position;
        generation.advance(applied_to, 1);
    }
    // Every event passed on its own: the batch failed for a reason of its own (its size against
    // the deadline?). Commit the rest of the stretch.
    generation.advance(complete_to, 0);
    Ok(())
}

/// One `project` call in one write transaction, committed with the checkpoint `to`.
async fn apply(
    projections: &Projections,
    generation: &Generation,
    plugin: &Arc<Plugin>,
    events: &[StoredEvent],
    to: u64,
) -> Result<(), Failure> {
    let store_failure = |message: String| Failure { message, position: None, store: true };
    // The plugin runs without the writer (see `capabilities::read_model`): a slow or stuck
    // projector of one domain cannot hold up another domain's commits.
    let namespace = generation.id.namespace();
    let access = ReadAccess::projector(
        namespace.clone(),
        projections.models.clone(),
        tokio::runtime::Handle::current(),
        projections.settings.max_batch_bytes,
    );
    let recorded: Vec<RecordedEvent> = events.iter().cloned().map(recorded_event).collect();
    let (plugin, name) = (plugin.clone(), generation.id.name.clone());
    let (outcome, access) = tokio::task::spawn_blocking(move || plugin.project(&name, &recorded, access))
        .await
        .map_err(|e| store_failure(format!("the projection task failed: {e}")))?;
    let access = access.ok_or_else(|| store_failure("the read-model access was lost".into()))?;
    if let Some(cause) = access.store_failure.clone() {
        return Err(store_failure(cause));
    }
    match outcome {
        Ok(Ok(())) => {
            let writes = access.into_writes();
            let mut tx = projections.models.write().await.map_err(|e| store_failure(e.0))?;
            // A document the store refuses is the event's fault, like a trap: the batch is
            // retried event by event and the event whose writes are refused alone is struck.
            tx.write_many(&namespace, &writes).await.map_err(|e| match e {
                WriteError::Refused(_) => Failure { message: e.to_string(), position: None, store: false },
                WriteError::Store(e) => store_failure(e.0),
            })?;
            commit_to(generation, tx, to).await.map_err(|e| store_failure(e.0))
        }
        Ok(Err(failure)) => Err(Failure { message: failure.message, position: failure.position, store: false }),
        Err(fault) => Err(Failure { message: fault.to_string(), position: None, store: false }),
    }
}

/// Waits `backoff` (or until stopped, or a new plugin version takes over), then doubles it up
/// to `max`.
async fn pause(
    generation: &Generation,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    backoff: &mut Duration,
    max: Duration,
) {
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => *backoff = (*backoff * 2).min(max),
        _ = stop.changed() => {}
        _ = generation.wake.notified() => *backoff = Duration::from_millis(10),
    }
}
