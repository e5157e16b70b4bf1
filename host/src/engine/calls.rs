//! Plugin calls from the async engine: run on the blocking pool (a call may take up to its
//! deadline and must not stall the HTTP workers), inside the request's span, within the domain's
//! concurrency budget; and the contract checks on what a plugin returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::CommandError;
use crate::bindings::aggregate::{DecideError, DecideRequest};
use crate::bindings::aggregate_state::{Decision, StateRequest};
use crate::bindings::command_handler::{HandleError, HandleRequest};
use crate::bindings::types::NewEvent;
use crate::capabilities::event_store::BufferedAppend;
use crate::runtime::{Plugin, limit_names};
use crate::store::StoreError;

/// Runs `call` on the blocking pool, inside the caller's span: a plugin call may take up to its
/// deadline and must not stall the async workers that serve HTTP, and the request's span
/// (request id, route) follows it so the plugin's log lines carry it.
pub(super) async fn off_executor<R: Send + 'static>(
    plugin: Arc<Plugin>,
    call: impl FnOnce(&Plugin) -> R + Send + 'static,
) -> Result<R, CommandError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| call(&plugin)))
        .await
        .map_err(|e| CommandError::Store(StoreError(format!("the plugin call task failed: {e}"))))
}

/// `aggregate.decide` off the executor: the new events, or the command's error.
pub(super) async fn decide_off_executor(
    plugin: Arc<Plugin>,
    request: DecideRequest,
) -> Result<Vec<NewEvent>, CommandError> {
    let outcome = off_executor(plugin.clone(), move |plugin| plugin.decide(&request)).await??;
    outcome.map_err(|error| decide_error(&plugin, error))
}

/// `aggregate-state.decide` off the executor; the plugin's own error comes back as it is, for
/// the caller to act on (a stale state, an unreadable one).
pub(super) async fn decide_on_state_off_executor(
    plugin: Arc<Plugin>,
    request: StateRequest,
) -> Result<Result<Decision, DecideError>, CommandError> {
    Ok(off_executor(plugin, move |plugin| plugin.decide_on_state(&request)).await??)
}

/// What a plugin's `decide-error` means for the command.
pub(super) fn decide_error(plugin: &Plugin, error: DecideError) -> CommandError {
    match error {
        DecideError::Rejected(rejection) => CommandError::Rejected(rejection),
        DecideError::UnknownCommand(message) => {
            contract(plugin, format!("declared a command it does not know: {message}"))
        }
        DecideError::CorruptHistory(message) => contract(plugin, format!("cannot fold the stream: {message}")),
    }
}

/// Enforces the contract on one stream's new events: the size cap first (before any parsing),
/// then declared types and valid JSON. The count is capped once per command by the caller.
pub(super) fn check_events(plugin: &Plugin, events: &[NewEvent]) -> Result<(), CommandError> {
    let limits = &plugin.limits;
    let exceeded = |limit, message| CommandError::LimitExceeded {
        domain: plugin.domain().to_string(),
        version: plugin.version().to_string(),
        limit,
        message,
    };
    if let Some(event) = events.iter().find(|e| e.data.len() > limits.max_event_bytes) {
        let message = format!(
            "it returned a {} byte `{}` event; the cap is {} bytes",
            event.data.len(),
            event.event_type,
            limits.max_event_bytes
        );
        return Err(exceeded(limit_names::EVENT_BYTES, message));
    }
    for event in events {
        if !plugin.declares_event(&event.event_type) {
            return Err(contract(plugin, format!("returned the undeclared event type `{}`", event.event_type)));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&event.data).is_err() {
            return Err(contract(plugin, format!("returned a `{}` event whose data is not JSON", event.event_type)));
        }
    }
    Ok(())
}

/// Refuses, before anything is stored, an event that some store or read model could not hold
/// (see [`crate::store::event_rules`]), naming the event and the place in its data.
pub(super) fn check_storable(stream: &str, events: &[NewEvent], max_depth: usize) -> Result<(), CommandError> {
    for (i, event) in events.iter().enumerate() {
        crate::store::event_rules::check(&event.data, max_depth).map_err(|error| {
            CommandError::Unstorable(crate::store::UnstorableEvent {
                stream: stream.to_string(),
                index: i + 1,
                event_type: event.event_type.clone(),
                part: "data",
                error,
            })
        })?;
    }
    Ok(())
}

pub(super) fn too_many_events(plugin: &Plugin, count: usize) -> CommandError {
    CommandError::LimitExceeded {
        domain: plugin.domain().to_string(),
        version: plugin.version().to_string(),
        limit: limit_names::EVENTS,
        message: format!("it returned {count} events; the cap is {}", plugin.limits.max_events_per_decision),
    }
}

pub(super) fn contract(plugin: &Plugin, message: String) -> CommandError {
    CommandError::PluginContract { domain: plugin.domain().to_string(), version: plugin.version().to_string(), message }
}

/// What a handler buffered: appends per stream, the stored versions of the streams it read,
/// and the outbox calls it enqueued.
pub(super) type Handled = (Vec<BufferedAppend>, HashMap<String, u64>, Vec<crate::store::NewOutboxMessage>);

/// Runs a command handler on the blocking pool with a fresh unit of work; returns what it
/// buffered, per stream, when it succeeded, and the stored versions of the streams it read.
pub(super) async fn handle_off_executor(
    plugin: Arc<Plugin>,
    request: HandleRequest,
    grants: crate::runtime::Grants,
) -> Result<Handled, CommandError> {
    let (outcome, unit) = off_executor(plugin.clone(), move |plugin| plugin.handle(&request, grants)).await?;
    let unit = unit.ok_or_else(|| contract(&plugin, "the unit of work was lost".into()))?;
    let outcome = outcome?;
    // A read cut at the bound looked like the end of the stream to the handler: whatever it
    // decided on that partial history is not committed.
    if let Some((stream, bound)) = unit.read_cut() {
        return Err(CommandError::HistoryTooLarge { stream: stream.to_string(), max_mib: bound >> 20 });
    }
    match outcome {
        Ok(()) => Ok(unit.into_parts()),
        Err(HandleError::Rejected(rejection)) => Err(CommandError::Rejected(rejection)),
        Err(HandleError::UnknownCommand(message)) => {
            Err(contract(&plugin, format!("declared a command it does not handle: {message}")))
        }
        Err(HandleError::Failed(message)) => match (unit.store_failure(), unit.refused_stream()) {
            (Some(cause), _) => Err(CommandError::Store(StoreError(cause.to_string()))),
            (None, Some(refusal)) => Err(CommandError::InvalidStream(refusal.to_string())),
            (None, None) => Err(contract(&plugin, format!("the handler failed: {message}"))),
        },
    }
}

/// One semaphore per domain, sized by its `max_concurrency`: a runaway domain can hold at most
/// that many blocking threads (and cores), so other domains keep their share.
pub(super) struct DomainBudgets {
    queue: Duration,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl DomainBudgets {
    pub(super) fn new(queue: Duration) -> Self {
        Self { queue, slots: Mutex::default() }
    }

    /// A call slot of `plugin`'s domain, waiting at most the queue time.
    pub(super) async fn acquire(&self, plugin: &Plugin) -> Result<OwnedSemaphorePermit, CommandError> {
        let slots = plugin.limits.max_concurrency;
        let semaphore = self
            .slots
            .lock()
            .expect("budget lock")
            .entry(plugin.domain().to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(slots)))
            .clone();
        match tokio::time::timeout(self.queue, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(CommandError::DomainBusy { domain: plugin.domain().to_string(), slots }),
        }
    }
}
