//! The command pipeline: find the plugin and the command, resolve the aggregate id, load the
//! stream's history, let the plugin decide (fresh instance, off the async executor), and append
//! the events with the expected version in one transaction. On a version conflict it reloads and
//! decides again, up to `max_attempts`, then gives up with [`CommandError::Conflict`].
//!
//! An `Idempotency-Key` is stored with the events in the same transaction; a repeat with the same
//! request replays the stored response and appends nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::bindings::aggregate::{DecideError, DecideRequest};
use crate::bindings::plugin::AggregateId;
use crate::bindings::types::{NewEvent, RecordedEvent, Rejection};
use crate::registry::Registry;
use crate::runtime::{Plugin, PluginFault, limit_names};
use crate::store::{
    AppendBatch, AppendError, EventStore, EventToAppend, ExpectedVersion, IdempotencyRecord, StoreError, StoredEvent,
    StreamAppend,
};

/// Longest aggregate id accepted from a payload.
const MAX_ID_LEN: usize = 128;

/// A command as HTTP hands it over.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    /// Target domain.
    pub domain: String,
    /// Command name.
    pub command: String,
    /// The payload, JSON text of an object.
    pub payload: String,
    /// The client's `Idempotency-Key`, if sent.
    pub idempotency_key: Option<String>,
    /// The client's correlation id, if sent (else the command id is used).
    pub correlation_id: Option<String>,
}

/// A command's answer: HTTP status and JSON body, exactly as stored for idempotent replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// 201 when the command created the stream, 200 otherwise.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// True when this is a stored response replayed for a repeated idempotency key.
    pub replayed: bool,
}

#[derive(Serialize)]
struct ResponseBody<'a> {
    stream: &'a str,
    aggregate_id: &'a str,
    version: u64,
    events: Vec<ResponseEvent<'a>>,
}

#[derive(Serialize)]
struct ResponseEvent<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    version: u64,
    data: &'a RawValue,
}

/// Why a command did not succeed. Each case maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No plugin serves the domain.
    #[error("no domain `{0}` is deployed")]
    UnknownDomain(String),
    /// The domain has no such command.
    #[error("domain `{domain}` has no command `{command}`")]
    UnknownCommand {
        /// Domain.
        domain: String,
        /// Command.
        command: String,
    },
    /// The payload lacks what the host needs (the aggregate id).
    #[error("{message}")]
    InvalidPayload {
        /// Why.
        message: String,
        /// Field → message.
        fields: Vec<(String, String)>,
    },
    /// The domain's rules refused the command.
    #[error("{}", .0.message)]
    Rejected(Rejection),
    /// The stream kept changing under the command.
    #[error("stream `{stream}` changed concurrently {attempts} times; try again")]
    Conflict {
        /// Stream.
        stream: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The idempotency key was used for a different request.
    #[error("the Idempotency-Key `{0}` was already used for a different request")]
    IdempotencyKeyReused(String),
    /// The plugin trapped or ran out of a limit.
    #[error(transparent)]
    PluginFault(#[from] PluginFault),
    /// What the plugin returned exceeds a limit (too many events, an event too large).
    #[error("plugin {domain}@{version} exceeded `{limit}` in `decide`: {message}")]
    LimitExceeded {
        /// Domain.
        domain: String,
        /// Version.
        version: String,
        /// The config key of the limit.
        limit: &'static str,
        /// What happened.
        message: String,
    },
    /// Every call slot of the domain stayed busy for the whole queue time.
    #[error("domain `{domain}` is at its limit of {slots} concurrent calls; retry shortly")]
    DomainBusy {
        /// Domain.
        domain: String,
        /// Its `max_concurrency`.
        slots: usize,
    },
    /// The plugin returned something the contract forbids.
    #[error("plugin {domain}@{version} broke the contract: {message}")]
    PluginContract {
        /// Domain.
        domain: String,
        /// Version.
        version: String,
        /// What it did wrong.
        message: String,
    },
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs commands against the active plugins and the event store.
pub struct CommandEngine {
    registry: Arc<Registry>,
    store: Arc<dyn EventStore>,
    max_attempts: u32,
    budgets: DomainBudgets,
}

impl CommandEngine {
    /// An engine that retries version conflicts up to `max_attempts` times in all, and lets a
    /// call wait up to `queue` for a free slot of its domain.
    pub fn new(registry: Arc<Registry>, store: Arc<dyn EventStore>, max_attempts: u32, queue: Duration) -> Self {
        Self { registry, store, max_attempts: max_attempts.max(1), budgets: DomainBudgets::new(queue) }
    }

    /// Handles one command end to end.
    pub async fn handle(&self, request: CommandRequest) -> Result<CommandOutcome, CommandError> {
        let plugin =
            self.registry.get(&request.domain).ok_or_else(|| CommandError::UnknownDomain(request.domain.clone()))?;
        let command = plugin.command(&request.command).cloned().ok_or_else(|| CommandError::UnknownCommand {
            domain: request.domain.clone(),
            command: request.command.clone(),
        })?;
        let request_hash = hex::encode(Sha256::digest(format!("{}\n{}", request.command, request.payload)));
        if let Some(key) = &request.idempotency_key
            && let Some(stored) = self.store.idempotency_record(&request.domain, key).await?
        {
            return replay(stored, &request_hash);
        }
        let aggregate_id = match &command.id {
            AggregateId::Minted => uuid::Uuid::now_v7().to_string(),
            AggregateId::Field(field) => aggregate_id_from(&request.payload, field)?,
        };
        let stream = format!("{}-{aggregate_id}", command.aggregate);
        let command_id = uuid::Uuid::now_v7().to_string();
        for _attempt in 0..self.max_attempts {
            let history = self.store.read_stream(&request.domain, &stream, 1, u32::MAX).await?;
            let current = history.last().map_or(0, |e| e.version);
            let decide = DecideRequest {
                aggregate: command.aggregate.clone(),
                aggregate_id: aggregate_id.clone(),
                command: request.command.clone(),
                payload: request.payload.clone(),
                history: history.into_iter().map(recorded_event).collect(),
            };
            let slot = self.budgets.acquire(&plugin).await?;
            let events = decide_off_executor(plugin.clone(), decide).await;
            drop(slot);
            let events = events?;
            let events = check_events(&plugin, events)?;
            if events.is_empty() {
                let body = render(&stream, &aggregate_id, current, current + 1, &[])?;
                return Ok(CommandOutcome { status: 200, body, replayed: false });
            }
            let status = if current == 0 { 201 } else { 200 };
            let body = render(&stream, &aggregate_id, current + events.len() as u64, current + 1, &events)?;
            let metadata = serde_json::json!({
                "plugin": { "domain": plugin.domain(), "version": plugin.version(), "digest": plugin.digest },
                "command": request.command,
                "command_id": command_id,
                "correlation_id": request.correlation_id.as_deref().unwrap_or(&command_id),
                "causation_id": command_id,
            })
            .to_string();
            let batch = AppendBatch {
                streams: vec![StreamAppend {
                    domain: request.domain.clone(),
                    stream: stream.clone(),
                    expected: ExpectedVersion::Exact(current),
                    events: events
                        .into_iter()
                        .map(|e| EventToAppend { event_type: e.event_type, data: e.data, metadata: metadata.clone() })
                        .collect(),
                }],
                idempotency: request.idempotency_key.as_ref().map(|key| IdempotencyRecord {
                    scope: request.domain.clone(),
                    key: key.clone(),
                    request_hash: request_hash.clone(),
                    status,
                    response: body.clone(),
                }),
            };
            match self.store.append(batch).await {
                Ok(_) => return Ok(CommandOutcome { status, body, replayed: false }),
                Err(AppendError::WrongExpectedVersion { .. }) => continue,
                Err(AppendError::DuplicateIdempotencyKey(stored)) => return replay(stored, &request_hash),
                Err(AppendError::Store(e)) => return Err(CommandError::Store(e)),
                Err(AppendError::Invalid(message)) => return Err(contract(&plugin, message)),
            }
        }
        Err(CommandError::Conflict { stream, attempts: self.max_attempts })
    }
}

fn replay(stored: IdempotencyRecord, request_hash: &str) -> Result<CommandOutcome, CommandError> {
    if stored.request_hash != request_hash {
        return Err(CommandError::IdempotencyKeyReused(stored.key));
    }
    Ok(CommandOutcome { status: stored.status, body: stored.response, replayed: true })
}

/// Runs the plugin on the blocking pool: a decision may take up to its deadline and must not
/// stall the async workers that serve HTTP.
async fn decide_off_executor(plugin: Arc<Plugin>, request: DecideRequest) -> Result<Vec<NewEvent>, CommandError> {
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

/// Enforces the contract on what a decision returned: caps first (before any parsing), then
/// declared types and valid JSON.
fn check_events(plugin: &Plugin, events: Vec<NewEvent>) -> Result<Vec<NewEvent>, CommandError> {
    let limits = &plugin.limits;
    let exceeded = |limit, message| CommandError::LimitExceeded {
        domain: plugin.domain().to_string(),
        version: plugin.version().to_string(),
        limit,
        message,
    };
    if events.len() > limits.max_events_per_decision {
        let message = format!("it returned {} events; the cap is {}", events.len(), limits.max_events_per_decision);
        return Err(exceeded(limit_names::EVENTS, message));
    }
    if let Some(event) = events.iter().find(|e| e.data.len() > limits.max_event_bytes) {
        let message = format!(
            "it returned a {} byte `{}` event; the cap is {} bytes",
            event.data.len(),
            event.event_type,
            limits.max_event_bytes
        );
        return Err(exceeded(limit_names::EVENT_BYTES, message));
    }
    for event in &events {
        if !plugin.declares_event(&event.event_type) {
            return Err(contract(plugin, format!("returned the undeclared event type `{}`", event.event_type)));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&event.data).is_err() {
            return Err(contract(plugin, format!("returned a `{}` event whose data is not JSON", event.event_type)));
        }
    }
    Ok(events)
}

fn contract(plugin: &Plugin, message: String) -> CommandError {
    CommandError::PluginContract { domain: plugin.domain().to_string(), version: plugin.version().to_string(), message }
}

fn render(
    stream: &str,
    aggregate_id: &str,
    version: u64,
    first: u64,
    events: &[NewEvent],
) -> Result<String, CommandError> {
    let events = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(ResponseEvent {
                event_type: &e.event_type,
                version: first + i as u64,
                data: serde_json::from_str(&e.data).map_err(|err| StoreError(format!("event data: {err}")))?,
            })
        })
        .collect::<Result<Vec<_>, CommandError>>()?;
    serde_json::to_string(&ResponseBody { stream, aggregate_id, version, events })
        .map_err(|e| CommandError::Store(StoreError(format!("rendering the response: {e}"))))
}

/// Reads the aggregate id from a top-level field of the payload: a non-empty string or an integer.
fn aggregate_id_from(payload: &str, field: &str) -> Result<String, CommandError> {
    let bad = |message: &str| CommandError::InvalidPayload {
        message: format!("the payload must carry the aggregate id in `{field}`"),
        fields: vec![(field.to_string(), message.to_string())],
    };
    let value: serde_json::Value = serde_json::from_str(payload).map_err(|_| bad("The payload is not JSON"))?;
    let id = match value.get(field) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Some(_) => return Err(bad("The id must be a string or an integer")),
        None => return Err(bad("The id is required")),
    };
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(bad("The id must be 1 to 128 characters, without control characters"));
    }
    Ok(id)
}

pub(crate) fn recorded_event(e: StoredEvent) -> RecordedEvent {
    RecordedEvent {
        stream: e.stream,
        version: e.version,
        global_position: e.position,
        event_type: e.event_type,
        data: e.data,
        metadata: e.metadata,
        recorded_at_micros: e.recorded_at_micros,
    }
}

/// One semaphore per domain, sized by its `max_concurrency`: a runaway domain can hold at most
/// that many blocking threads (and cores), so other domains keep their share.
struct DomainBudgets {
    queue: Duration,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl DomainBudgets {
    fn new(queue: Duration) -> Self {
        Self { queue, slots: Mutex::default() }
    }

    /// A call slot of `plugin`'s domain, waiting at most the queue time.
    async fn acquire(&self, plugin: &Plugin) -> Result<OwnedSemaphorePermit, CommandError> {
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
