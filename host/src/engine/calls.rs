//! Plugin calls from the async engine: run on the blocking pool (a call may take up to its
//! deadline and must not stall the HTTP workers), inside the request's span, within the domain's
//! concurrency budget; and the contract checks on what a plugin returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::CommandError;
use crate::bindings::aggregate::{DecideError, DecideRequest};
use crate::bindings::command_handler::{HandleError, HandleRequest};
use crate::bindings::types::NewEvent;
use crate::capabilities::event_store::BufferedAppend;
use crate::runtime::{Plugin, limit_names};
use crate::store::StoreError;

/// Runs the plugin on the blocking pool: a decision may take up to its deadline and must not
/// stall the async workers that serve HTTP.
pub(super) async fn decide_off_executor(
    plugin: Arc<Plugin>,
    request: DecideRequest,
) -> Result<Vec<NewEvent>, CommandError> {
    // The request's span (request id, route) follows the call onto the blocking thread, so the
    // plugin's log lines carry it.
    let span = tracing::Span::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let outcome = span.in_scope(|| plugin.decide(&request));
        (plugin, outcome)
    })
    .await;
    let (plugin, outcome) = outcome.map_err(|e| StoreError(format!("the decision task failed: {e}")))?;
    match outcome? {
        Ok(events) => Ok(events),
        Err(DecideError::Rejected(rejection)) => Err(CommandError::Rejected(rejection)),
        Err(DecideError::UnknownCommand(message)) => {
            Err(contract(&plugin, format!("declared a command it does not know: {message}")))
        }
        Err(DecideError::CorruptHistory(message)) => {
            Err(contract(&plugin, format!("cannot fold the stream: {message}")))
        }
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
    let span = tracing::Span::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let (outcome, unit) = span.in_scope(|| plugin.handle(&request, grants));
        (plugin, outcome, unit)
    })
    .await;
    let (plugin, outcome, unit) = outcome.map_err(|e| StoreError(format!("the handler task failed: {e}")))?;
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
