//! The command pipeline. For an aggregate command: load the stream's history, let the plugin
//! decide (fresh instance, off the async executor), append with the expected version. For a
//! handler command: run the handler with a unit of work and commit everything it appended, on
//! every stream, in one transaction. Either way a version conflict runs the attempt again, up to
//! `max_attempts`, then gives up with [`CommandError::Conflict`].
//!
//! An `Idempotency-Key` is stored with the events in the same transaction; a repeat with the same
//! request replays the stored response and appends nothing.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::state_cache::{KeptState, StateCache};
use super::stream_locks::StreamLocks;
use super::{calls, response};
use crate::bindings::command_handler::HandleRequest;
use crate::bindings::plugin::{AggregateId, CommandInfo, CommandKind};
use crate::bindings::types::Rejection;
use crate::capabilities::event_store::{BufferedAppend, UnitOfWork};
use crate::registry::Registry;
use crate::runtime::{Plugin, PluginFault};
use crate::store::{
    AppendBatch, AppendError, EventStore, EventToAppend, IdempotencyRecord, Snapshot, StoreError, StreamAppend,
    UnstorableEvent, event_rules,
};

/// Longest aggregate id accepted from a payload.
const MAX_ID_LEN: usize = 128;

/// Folded states kept in memory unless configured (`aggregates.state_cache_mib`).
pub const DEFAULT_STATE_CACHE_BYTES: u64 = 64 << 20;

/// Events between two snapshots of a stream unless configured (`aggregates.snapshot_every`).
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

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
    /// The global position of the command's last event, once committed (not for replays): what
    /// a client passes as `min_position` to read its own writes.
    pub position: Option<u64>,
}

/// One attempt's plan: the checked appends, the primary stream's version, the outbox calls, and
/// (for a plugin that keeps state) the primary stream's state once the appends commit.
pub(super) struct Plan {
    pub(super) appends: Vec<BufferedAppend>,
    pub(super) primary_version: Option<u64>,
    pub(super) outbox: Vec<crate::store::NewOutboxMessage>,
    pub(super) kept: Option<KeptState>,
    pub(super) snapshot: Option<Snapshot>,
}

/// Why a command did not succeed. Each case maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No plugin serves the domain.
    #[error("no domain `{}` is deployed", crate::text::quote(.0))]
    UnknownDomain(String),
    /// The domain has no such command.
    #[error("domain `{}` has no command `{}`", crate::text::quote(.domain), crate::text::quote(.command))]
    UnknownCommand {
        /// Domain.
        domain: String,
        /// Command.
        command: String,
    },
    /// The domain has no such aggregate type.
    #[error("domain `{}` has no aggregate `{}`", crate::text::quote(.domain), crate::text::quote(.aggregate))]
    UnknownAggregate {
        /// Domain.
        domain: String,
        /// The aggregate type asked for.
        aggregate: String,
    },
    /// The stream has no event at that version (`head` 0: no stream at all).
    #[error("stream `{}` has no version {version} (its head is {head})", crate::text::quote(.stream))]
    VersionNotFound {
        /// The stream.
        stream: String,
        /// The version asked for.
        version: u64,
        /// The stream's last version.
        head: u64,
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
    #[error("the Idempotency-Key `{}` was already used for a different request", crate::text::quote(.0))]
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
    /// An event holds what some store or read model cannot (a NUL character, nesting deeper
    /// than `limits.max_event_depth`); nothing was written.
    #[error(transparent)]
    Unstorable(#[from] UnstorableEvent),
    /// The stream's history weighs more than one read may load.
    #[error("the history of stream `{stream}` is larger than {max_mib} MiB (`limits.max_read_mib`)")]
    HistoryTooLarge {
        /// The stream.
        stream: String,
        /// The bound, in MiB.
        max_mib: usize,
    },
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A handler tried to write a stream the naming rule refuses (the id usually came from the
    /// payload); nothing was written.
    #[error("{0}")]
    InvalidStream(String),
    /// A command of a batch failed; nothing of the batch was written.
    #[error("command {index} of the batch (`{command}`) failed: {error}")]
    BatchFailed {
        /// 1-based position of the failing command.
        index: usize,
        /// Its name.
        command: String,
        /// Why it failed.
        error: Box<CommandError>,
    },
}

/// Runs commands against the active plugins and the event store.
pub struct CommandEngine {
    registry: Arc<Registry>,
    pub(super) store: Arc<dyn EventStore>,
    max_attempts: u32,
    max_event_depth: usize,
    pub(super) max_read_bytes: usize,
    pub(super) budgets: calls::DomainBudgets,
    pub(super) states: StateCache,
    pub(super) snapshot_every: u64,
    streams: StreamLocks,
    gateway: Option<Arc<crate::capabilities::gateway::Gateway>>,
    cache: Option<Arc<crate::capabilities::cache::Cache>>,
}

impl CommandEngine {
    /// An engine that retries version conflicts up to `max_attempts` times in all, and lets a
    /// call wait up to `queue` for a free slot of its domain.
    pub fn new(registry: Arc<Registry>, store: Arc<dyn EventStore>, max_attempts: u32, queue: Duration) -> Self {
        Self {
            registry,
            store,
            max_attempts: max_attempts.max(1),
            max_event_depth: event_rules::DEPTH_CEILING,
            max_read_bytes: crate::capabilities::event_store::DEFAULT_MAX_READ_BYTES,
            budgets: calls::DomainBudgets::new(queue),
            states: StateCache::new(DEFAULT_STATE_CACHE_BYTES),
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            streams: StreamLocks::new(),
            gateway: None,
            cache: None,
        }
    }

    /// Refuses events nested deeper than `depth` (capped at [`event_rules::DEPTH_CEILING`]).
    pub fn with_max_event_depth(mut self, depth: usize) -> Self {
        self.max_event_depth = depth.clamp(1, event_rules::DEPTH_CEILING);
        self
    }

    /// Loads at most `bytes` of events per read: a longer history is refused.
    pub fn with_max_read_bytes(mut self, bytes: usize) -> Self {
        self.max_read_bytes = bytes.max(1);
        self
    }

    /// Keeps at most `bytes` of folded aggregate states in memory (0: none; every command folds
    /// from the store), and stores a snapshot whenever a stream has moved `every` events past its
    /// last one (0: never).
    pub fn with_states(mut self, bytes: u64, every: u64) -> Self {
        self.states = StateCache::new(bytes);
        self.snapshot_every = every;
        self
    }

    /// Most bytes of events one read loads (`limits.max_read_mib`).
    pub fn max_read_bytes(&self) -> usize {
        self.max_read_bytes
    }

    /// Lets command handlers use `cache`.
    pub fn with_cache(mut self, cache: Arc<crate::capabilities::cache::Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Lets command handlers call the outside services of `gateway`.
    pub fn with_gateway(mut self, gateway: Arc<crate::capabilities::gateway::Gateway>) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Handles one command end to end: an aggregate's `decide` or a command handler's `handle`,
    /// as `describe` declares it.
    pub async fn handle(&self, request: CommandRequest) -> Result<CommandOutcome, CommandError> {
        let plugin = self.plugin(&request.domain)?;
        let target = Target::resolve(&plugin, &request.domain, &request.command, &request.payload)?;
        // Only an Idempotency-Key is ever compared with the request's hash.
        let request_hash = match request.idempotency_key {
            Some(_) => hex::encode(Sha256::digest(format!("{}\n{}", request.command, request.payload))),
            None => String::new(),
        };
        if let Some(answer) =
            self.stored_answer(&request.domain, request.idempotency_key.as_deref(), &request_hash).await?
        {
            return answer;
        }
        let metadata = metadata(&plugin, &request.command, request.correlation_id.as_deref());
        // Commands on one aggregate take turns in this host rather than conflict with each other.
        let _turn = match target.info.kind {
            CommandKind::Decide => Some(self.streams.lock(&request.domain, &target.primary).await),
            CommandKind::Handle => None,
        };
        let mut stale = None;
        for _attempt in 0..self.max_attempts {
            let planned = self.plan(&plugin, &target, &request, &[], stale).await;
            let Plan { appends, primary_version, outbox, kept, snapshot } = match planned {
                Ok(planned) => planned,
                // A concurrent twin with the same Idempotency-Key may have committed first and changed
                // what this attempt saw: its stored answer is the answer.
                Err(error @ CommandError::Rejected(_)) => return self.replay_or(&request, &request_hash, error).await,
                Err(error) => return Err(error),
            };
            let body = response::render(&target.primary, &target.aggregate_id, primary_version, &appends)?;
            let status = response::status(&target.primary, &appends);
            if appends.is_empty() {
                return Ok(CommandOutcome { status: 200, body, replayed: false, position: None });
            }
            let streams = stream_appends(&request.domain, appends, &metadata);
            let outcome = CommandOutcome { status, body, replayed: false, position: None };
            let key = request.idempotency_key.as_deref();
            let snapshots = snapshot.into_iter().collect();
            let writes = AppendBatch { streams, outbox, snapshots, ..AppendBatch::default() };
            if let Some(done) = self.commit(&plugin, &request.domain, writes, key, &request_hash, outcome).await {
                if let (Ok(_), Some(kept)) = (&done, kept) {
                    self.states.keep(&request.domain, &target.primary, kept);
                }
                return done;
            }
            stale = primary_version;
        }
        Err(CommandError::Conflict { stream: target.primary, attempts: self.max_attempts })
    }

    /// Commits a unit of work (`writes`: its streams and outbox calls) whose answer is
    /// `outcome`, storing that answer under `key` in the same transaction. `None` when a stream moved meanwhile: the caller attempts again.
    pub(super) async fn commit(
        &self,
        plugin: &Plugin,
        domain: &str,
        writes: AppendBatch,
        key: Option<&str>,
        request_hash: &str,
        outcome: CommandOutcome,
    ) -> Option<Result<CommandOutcome, CommandError>> {
        let batch = AppendBatch {
            idempotency: key.map(|key| IdempotencyRecord {
                scope: domain.to_string(),
                key: key.to_string(),
                request_hash: request_hash.to_string(),
                status: outcome.status,
                response: outcome.body.clone(),
            }),
            ..writes
        };
        let written: Vec<String> = batch.streams.iter().map(|s| s.stream.clone()).collect();
        match self.store.append(batch).await {
            Ok(result) => {
                // States kept for these streams are behind now; the caller keeps the new one.
                for stream in &written {
                    self.states.forget(domain, stream);
                }
                Some(Ok(CommandOutcome { position: Some(result.last_position()), ..outcome }))
            }
            Err(AppendError::WrongExpectedVersion { .. }) => None,
            Err(AppendError::DuplicateIdempotencyKey(stored)) => Some(replay(stored, request_hash)),
            Err(AppendError::Store(e)) => Some(Err(CommandError::Store(e))),
            Err(AppendError::Unstorable(e)) => Some(Err(CommandError::Unstorable(e))),
            Err(AppendError::Invalid(message)) => Some(Err(calls::contract(plugin, message))),
        }
    }

    /// Attempts per command (or batch) before a conflict is final.
    pub(super) fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The active plugin of `domain`.
    pub(super) fn plugin(&self, domain: &str) -> Result<Arc<Plugin>, CommandError> {
        self.registry.get(domain).ok_or_else(|| CommandError::UnknownDomain(domain.to_string()))
    }

    /// One attempt of one command, on top of what earlier commands of its batch appended
    /// (`prior`): the checked appends it plans, and its primary stream's version.
    pub(super) async fn plan(
        &self,
        plugin: &Arc<Plugin>,
        target: &Target,
        request: &CommandRequest,
        prior: &[BufferedAppend],
        stale: Option<u64>,
    ) -> Result<Plan, CommandError> {
        let (appends, primary_version, outbox, kept, snapshot) = match target.info.kind {
            CommandKind::Decide => {
                let aggregate = &target.info.aggregate;
                let decided = self.decide(plugin, aggregate, &target.aggregate_id, request, prior, stale).await?;
                (decided.appends, Some(decided.version), Vec::new(), decided.kept, decided.snapshot)
            }
            CommandKind::Handle => {
                let (appends, seen, outbox) = self.run_handler(plugin, &target.aggregate_id, request, prior).await?;
                let version = seen.get(&target.primary).copied();
                (appends, version, outbox, None, None)
            }
        };
        // Caps before any parsing: the count over all streams, then each event's size and shape.
        let total: usize = appends.iter().map(|a| a.events.len()).sum();
        if total > plugin.limits.max_events_per_decision {
            return Err(calls::too_many_events(plugin, total));
        }
        for append in &appends {
            calls::check_events(plugin, &append.events)?;
            calls::check_storable(&append.stream, &append.events, self.max_event_depth)?;
        }
        let appends: Vec<BufferedAppend> = appends.into_iter().filter(|a| !a.events.is_empty()).collect();
        // Outbox calls ride on the events' transaction: a command that writes nothing calls nobody.
        let outbox = if appends.is_empty() { Vec::new() } else { outbox };
        Ok(Plan { appends, primary_version, outbox, kept, snapshot })
    }

    /// `error`, unless a command with the same Idempotency-Key committed meanwhile.
    async fn replay_or(
        &self,
        request: &CommandRequest,
        request_hash: &str,
        error: CommandError,
    ) -> Result<CommandOutcome, CommandError> {
        match self.stored_answer(&request.domain, request.idempotency_key.as_deref(), request_hash).await? {
            Some(answer) => answer,
            None => Err(error),
        }
    }

    /// The answer stored under an Idempotency-Key (replayed, or refused for another request).
    pub(super) async fn stored_answer(
        &self,
        domain: &str,
        key: Option<&str>,
        request_hash: &str,
    ) -> Result<Option<Result<CommandOutcome, CommandError>>, CommandError> {
        let Some(key) = key else { return Ok(None) };
        Ok(self.store.idempotency_record(domain, key).await?.map(|stored| replay(stored, request_hash)))
    }

    /// One attempt of a handler command: run it with a fresh unit of work.
    async fn run_handler(
        &self,
        plugin: &Arc<Plugin>,
        aggregate_id: &str,
        request: &CommandRequest,
        prior: &[BufferedAppend],
    ) -> Result<calls::Handled, CommandError> {
        let unit = UnitOfWork::new(
            &request.domain,
            self.store.clone(),
            tokio::runtime::Handle::current(),
            plugin.limits.max_events_per_decision,
        )
        .for_streams_of(&plugin.info.aggregates, plugin.limits.max_stream_name_bytes)
        .with_prior(prior.to_vec())
        .with_max_read_bytes(self.max_read_bytes);
        let handle = HandleRequest {
            command: request.command.clone(),
            aggregate_id: aggregate_id.to_string(),
            payload: request.payload.clone(),
        };
        let slot = self.budgets.acquire(plugin).await?;
        // Outside calls and cache waits count against the call's deadline; they never outlast it.
        let deadline = std::time::Instant::now() + plugin.limits.deadline;
        let gateway = self.gateway.clone().map(|gateway| crate::capabilities::gateway::GatewayAccess {
            domain: request.domain.clone(),
            gateway,
            runtime: tokio::runtime::Handle::current(),
            deadline,
        });
        let cache = self
            .cache
            .clone()
            .map(|cache| crate::capabilities::cache::CacheAccess::new(&request.domain, cache, deadline));
        let grants = crate::runtime::Grants { unit: Some(unit), read: None, gateway, cache };
        let appends = calls::handle_off_executor(plugin.clone(), handle, grants).await;
        drop(slot);
        appends
    }
}

/// What a command addresses: its declaration, the aggregate id and the primary stream.
pub(super) struct Target {
    pub(super) info: CommandInfo,
    pub(super) aggregate_id: String,
    pub(super) primary: String,
}

impl Target {
    /// Finds the command and its aggregate id (minted now, or read from the payload).
    pub(super) fn resolve(plugin: &Plugin, domain: &str, command: &str, payload: &str) -> Result<Self, CommandError> {
        let info = plugin
            .command(command)
            .cloned()
            .ok_or_else(|| CommandError::UnknownCommand { domain: domain.to_string(), command: command.to_string() })?;
        let aggregate_id = match &info.id {
            AggregateId::Minted => uuid::Uuid::now_v7().to_string(),
            AggregateId::Field(field) => aggregate_id_from(payload, field)?,
        };
        let primary = format!("{}-{aggregate_id}", info.aggregate);
        Ok(Self { info, aggregate_id, primary })
    }
}

/// The metadata every event of one command carries.
#[derive(serde::Serialize)]
struct Metadata<'a> {
    plugin: PluginMetadata<'a>,
    command: &'a str,
    command_id: &'a str,
    correlation_id: &'a str,
    causation_id: &'a str,
}

#[derive(serde::Serialize)]
struct PluginMetadata<'a> {
    domain: &'a str,
    version: &'a str,
    digest: &'a str,
}

/// The metadata every event of one command carries, as JSON text.
pub(super) fn metadata(plugin: &Plugin, command: &str, correlation_id: Option<&str>) -> String {
    let command_id = uuid::Uuid::now_v7().to_string();
    let metadata = Metadata {
        plugin: PluginMetadata { domain: plugin.domain(), version: plugin.version(), digest: &plugin.digest },
        command,
        command_id: &command_id,
        correlation_id: correlation_id.unwrap_or(&command_id),
        causation_id: &command_id,
    };
    serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".to_string())
}

/// Planned appends as the store takes them, every event with `metadata`.
pub(super) fn stream_appends(domain: &str, appends: Vec<BufferedAppend>, metadata: &str) -> Vec<StreamAppend> {
    appends
        .into_iter()
        .map(|a| StreamAppend {
            domain: domain.to_string(),
            stream: a.stream,
            expected: a.expected,
            events: a
                .events
                .into_iter()
                .map(|e| EventToAppend { event_type: e.event_type, data: e.data, metadata: metadata.to_string() })
                .collect(),
        })
        .collect()
}

fn replay(stored: IdempotencyRecord, request_hash: &str) -> Result<CommandOutcome, CommandError> {
    if stored.request_hash != request_hash {
        return Err(CommandError::IdempotencyKeyReused(stored.key));
    }
    Ok(CommandOutcome { status: stored.status, body: stored.response, replayed: true, position: None })
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
