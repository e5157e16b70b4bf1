//! The command pipeline. For an aggregate command: load the stream's history, let the plugin
//! decide (fresh instance, off the async executor), append with the expected version. For a
//! handler command: run the handler with a unit of work and commit everything it appended, on
//! every stream, in one transaction. Either way a version conflict runs the attempt again, up to
//! `max_attempts`, then gives up with [`CommandError::Conflict`].
//!
//! An `Idempotency-Key` is stored with the events in the same transaction; a repeat with the same
//! request replays the stored response and appends nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{calls, response};
use crate::bindings::aggregate::DecideRequest;
use crate::bindings::command_handler::HandleRequest;
use crate::bindings::plugin::{AggregateId, CommandKind};
use crate::bindings::types::{RecordedEvent, Rejection};
use crate::capabilities::event_store::{BufferedAppend, UnitOfWork};
use crate::registry::Registry;
use crate::runtime::{Plugin, PluginFault};
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
    budgets: calls::DomainBudgets,
}

impl CommandEngine {
    /// An engine that retries version conflicts up to `max_attempts` times in all, and lets a
    /// call wait up to `queue` for a free slot of its domain.
    pub fn new(registry: Arc<Registry>, store: Arc<dyn EventStore>, max_attempts: u32, queue: Duration) -> Self {
        Self { registry, store, max_attempts: max_attempts.max(1), budgets: calls::DomainBudgets::new(queue) }
    }

    /// Handles one command end to end: an aggregate's `decide` or a command handler's `handle`,
    /// as `describe` declares it.
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
        let primary = format!("{}-{aggregate_id}", command.aggregate);
        let command_id = uuid::Uuid::now_v7().to_string();
        let metadata = serde_json::json!({
            "plugin": { "domain": plugin.domain(), "version": plugin.version(), "digest": plugin.digest },
            "command": request.command,
            "command_id": command_id,
            "correlation_id": request.correlation_id.as_deref().unwrap_or(&command_id),
            "causation_id": command_id,
        })
        .to_string();
        for _attempt in 0..self.max_attempts {
            let attempt = match command.kind {
                CommandKind::Decide => self.decide(&plugin, &command.aggregate, &aggregate_id, &request).await,
                CommandKind::Handle => {
                    self.run_handler(&plugin, &aggregate_id, &request).await.map(|(appends, seen)| {
                        let version = seen.get(&primary).copied();
                        (appends, version)
                    })
                }
            };
            let (appends, primary_version) = match attempt {
                Ok(planned) => planned,
                // A concurrent twin with the same Idempotency-Key may have committed first and changed
                // what this attempt saw: its stored answer is the answer.
                Err(error @ CommandError::Rejected(_)) => return self.replay_or(&request, &request_hash, error).await,
                Err(error) => return Err(error),
            };
            let appends = appends
                .into_iter()
                .map(|mut a| {
                    a.events = calls::check_events(&plugin, std::mem::take(&mut a.events))?;
                    Ok(a)
                })
                .collect::<Result<Vec<_>, CommandError>>()?;
            let total: usize = appends.iter().map(|a| a.events.len()).sum();
            if total > plugin.limits.max_events_per_decision {
                return Err(calls::too_many_events(&plugin, total));
            }
            let body = response::render(&primary, &aggregate_id, primary_version, &appends)?;
            let status = response::status(&primary, &appends);
            if total == 0 {
                return Ok(CommandOutcome { status: 200, body, replayed: false });
            }
            let batch = AppendBatch {
                streams: appends
                    .into_iter()
                    .map(|a| StreamAppend {
                        domain: request.domain.clone(),
                        stream: a.stream,
                        expected: a.expected,
                        events: a
                            .events
                            .into_iter()
                            .map(|e| EventToAppend {
                                event_type: e.event_type,
                                data: e.data,
                                metadata: metadata.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
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
                Err(AppendError::Invalid(message)) => return Err(calls::contract(&plugin, message)),
            }
        }
        Err(CommandError::Conflict { stream: primary, attempts: self.max_attempts })
    }

    /// `error`, unless a command with the same Idempotency-Key committed meanwhile.
    async fn replay_or(
        &self,
        request: &CommandRequest,
        request_hash: &str,
        error: CommandError,
    ) -> Result<CommandOutcome, CommandError> {
        if let Some(key) = &request.idempotency_key
            && let Some(stored) = self.store.idempotency_record(&request.domain, key).await?
        {
            return replay(stored, request_hash);
        }
        Err(error)
    }

    /// One attempt of an aggregate command: load the stream, decide, plan the append. Returns the
    /// planned append (none when the decision produced no event) and the stream's version.
    async fn decide(
        &self,
        plugin: &Arc<Plugin>,
        aggregate: &str,
        aggregate_id: &str,
        request: &CommandRequest,
    ) -> Result<(Vec<BufferedAppend>, Option<u64>), CommandError> {
        let stream = format!("{aggregate}-{aggregate_id}");
        let history = self.store.read_stream(&request.domain, &stream, 1, u32::MAX).await?;
        let current = history.last().map_or(0, |e| e.version);
        let decide = DecideRequest {
            aggregate: aggregate.to_string(),
            aggregate_id: aggregate_id.to_string(),
            command: request.command.clone(),
            payload: request.payload.clone(),
            history: history.into_iter().map(recorded_event).collect(),
        };
        let slot = self.budgets.acquire(plugin).await?;
        let events = calls::decide_off_executor(plugin.clone(), decide).await;
        drop(slot);
        let events = events?;
        let appends = if events.is_empty() {
            vec![]
        } else {
            vec![BufferedAppend {
                stream,
                expected: ExpectedVersion::Exact(current),
                first_version: current + 1,
                events,
            }]
        };
        Ok((appends, Some(current)))
    }

    /// One attempt of a handler command: run it with a fresh unit of work.
    async fn run_handler(
        &self,
        plugin: &Arc<Plugin>,
        aggregate_id: &str,
        request: &CommandRequest,
    ) -> Result<(Vec<BufferedAppend>, HashMap<String, u64>), CommandError> {
        let unit = UnitOfWork::new(
            &request.domain,
            self.store.clone(),
            tokio::runtime::Handle::current(),
            plugin.limits.max_events_per_decision,
        );
        let handle = HandleRequest {
            command: request.command.clone(),
            aggregate_id: aggregate_id.to_string(),
            payload: request.payload.clone(),
        };
        let slot = self.budgets.acquire(plugin).await?;
        let appends = calls::handle_off_executor(plugin.clone(), handle, unit).await;
        drop(slot);
        appends
    }
}

fn replay(stored: IdempotencyRecord, request_hash: &str) -> Result<CommandOutcome, CommandError> {
    if stored.request_hash != request_hash {
        return Err(CommandError::IdempotencyKeyReused(stored.key));
    }
    Ok(CommandOutcome { status: stored.status, body: stored.response, replayed: true })
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
