//! One loaded plugin version: its digest, what it says about itself, and a pre-instantiated
//! component. Every call gets a fresh instance in a fresh store (nothing leaks between
//! commands) under its domain's [`Limits`]: deadline, memory cap, log line cap, and (when the
//! plugin asks for the `scratch` capability) its domain's scratch directory and nothing else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use wasmtime::Store;

use wasmtime::component::{Instance, InstancePre};

use sha2::Digest;

use super::describe::validate;
use super::native::NativeDomain;
use super::{HostState, Limits, LoadError, Runtime, limit_names};
use crate::bindings::plugin::{CommandInfo, CommandKind, DomainInfo};
use crate::bindings::projector::{ProjectFailure, ProjectionInfo};
use crate::bindings::query::{QueryError, QueryInfo};
use crate::bindings::types::{NewEvent, RecordedEvent};
use crate::bindings::{aggregate, aggregate_state, command_handler, plugin, projector, query};
use crate::capabilities::deadline;
use crate::capabilities::event_store::UnitOfWork;
use crate::capabilities::gateway::GatewayAccess;
use crate::capabilities::log::LogContext;
use crate::capabilities::read_model::ReadAccess;

/// A loaded plugin version. Cheap to share; immutable.
pub struct Plugin {
    runtime: Arc<Runtime>,
    /// sha256 of the component bytes, lowercase hex.
    pub digest: String,
    /// What the plugin's `describe` returned (validated).
    pub info: DomainInfo,
    /// The limits its calls run under (its domain's).
    pub limits: Limits,
    /// The projections it maintains (none for a plugin without a `projector` export).
    pub projections: Vec<ProjectionInfo>,
    /// The queries it answers (none for a plugin without a `query` export).
    pub queries: Vec<QueryInfo>,
    /// Its domain's scratch directory, when it asked for the `scratch` capability.
    scratch: Option<PathBuf>,
    guest: Guest,
}

/// What runs the plugin's code.
enum Guest {
    /// A component: a fresh instance per call, in the sandbox.
    Component { pre: InstancePre<HostState>, exports: Exports },
    /// Native code linked into the host (benchmarks of the sandbox's cost): no sandbox.
    Native(Arc<dyn NativeDomain>),
}

/// Where the world's exports are in the component, found once at load. `projector` and `query`
/// are optional: components built against `cairn:domain@0.1.0` do not have them; nor
/// `aggregate-state`, which came with 0.1.2.
pub(super) struct Exports {
    plugin: plugin::GuestIndices,
    aggregate: aggregate::GuestIndices,
    aggregate_state: Option<aggregate_state::GuestIndices>,
    handler: command_handler::GuestIndices,
    projector: Option<projector::GuestIndices>,
    query: Option<query::GuestIndices>,
}

impl Exports {
    pub(super) fn find(pre: &InstancePre<HostState>) -> wasmtime::Result<Self> {
        Ok(Self {
            plugin: plugin::GuestIndices::new(pre)?,
            aggregate: aggregate::GuestIndices::new(pre)?,
            aggregate_state: aggregate_state::GuestIndices::new(pre).ok(),
            handler: command_handler::GuestIndices::new(pre)?,
            projector: projector::GuestIndices::new(pre).ok(),
            query: query::GuestIndices::new(pre).ok(),
        })
    }
}

/// What a call may use beyond `log`, handed to the call and back after it: a command handler's
/// unit of work, a projector's or a query's read-model access.
#[derive(Default)]
pub struct Grants {
    /// The event store of a `handle` call.
    pub unit: Option<UnitOfWork>,
    /// The read model of a `project` or `run` call.
    pub read: Option<ReadAccess>,
    /// The outside services of a `handle` call.
    pub gateway: Option<GatewayAccess>,
    /// The cache of a `handle` call.
    pub cache: Option<crate::capabilities::cache::CacheAccess>,
}

/// The body of a plugin call: the store, the fresh instance and where its exports are.
type CallBody<'a, R> = Box<dyn FnOnce(&mut Store<HostState>, &Instance, &Exports) -> wasmtime::Result<R> + 'a>;

/// What wasmtime says when a host call is handed more than the store's hostcall fuel (its error
/// type is private, so it is recognised by its message).
const HOSTCALL_FUEL_EXHAUSTED: &str = "too much data is being copied between the host and the guest";

/// Capabilities a plugin may ask for in `describe`, beyond its role's imports.
pub const GRANTABLE: &[&str] = &["scratch"];

/// What went wrong inside a plugin call: the host's view of a trap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// The call ran past its deadline and was interrupted.
    Deadline,
    /// The instance hit its memory cap.
    Memory,
    /// The wasm stack overflowed.
    Stack,
    /// One host call was handed more bytes than `limits.max_host_call_mib`.
    HostCall,
    /// Any other trap (a panic, `unreachable`, a bad memory access, ...).
    Trap,
}

/// A plugin call that did not return: the instance was discarded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {domain}@{version} trapped in `{function}`: {message}")]
pub struct PluginFault {
    /// What kind of fault.
    pub kind: FaultKind,
    /// The plugin's domain.
    pub domain: String,
    /// The plugin's version.
    pub version: String,
    /// The export that was called.
    pub function: &'static str,
    /// A one-line reason, safe to show a client.
    pub message: String,
    /// The config key of the limit it hit, if a limit stopped it.
    pub limit: Option<&'static str>,
}

impl Plugin {
    pub(super) fn new(
        runtime: Arc<Runtime>,
        digest: String,
        pre: InstancePre<HostState>,
        exports: Exports,
        imports: Vec<String>,
    ) -> Result<Arc<Self>, LoadError> {
        let unknown = DomainInfo {
            name: "(loading)".into(),
            version: "?".into(),
            description: String::new(),
            aggregates: vec![],
            commands: vec![],
            event_types: vec![],
            capabilities: vec![],
        };
        let limits = runtime.policy.defaults.clone();
        let mut plugin = Self {
            runtime,
            digest,
            info: unknown,
            limits,
            projections: vec![],
            queries: vec![],
            scratch: None,
            guest: Guest::Component { pre, exports },
        };
        let info = plugin
            .call("describe", |store, instance, exports| {
                exports.plugin.load(&mut *store, instance)?.call_describe(store)
            })
            .map_err(|fault| LoadError::Describe(format!("`describe` did not answer: {}", fault.message)))?;
        plugin.load_read_side()?;
        validate(&info, &plugin.projections, &plugin.queries, plugin.runtime.policy.defaults.max_version_bytes)
            .map_err(|e| LoadError::Describe(format!("`describe` returned an invalid description: {e}")))?;
        let handles = info.commands.iter().any(|c| c.kind == CommandKind::Handle);
        let handler_only = |i: &&String| {
            ["cairn:domain/event-store", "cairn:domain/gateway", "cairn:domain/cache"].iter().any(|p| i.starts_with(p))
        };
        if let Some(import) = imports.iter().find(handler_only).filter(|_| !handles) {
            return Err(LoadError::Link(format!(
                "it imports `{import}`, which only command handlers are granted, and declares no `handle` command"
            )));
        }
        let reads = !plugin.projections.is_empty() || !plugin.queries.is_empty();
        if let Some(import) = imports.iter().find(|i| i.starts_with("cairn:domain/read-model")).filter(|_| !reads) {
            return Err(LoadError::Link(format!(
                "it imports `{import}`, which only projectors and queries are granted, and declares neither"
            )));
        }
        plugin.limits = plugin.runtime.limits_for(&info.name).clone();
        if info.capabilities.iter().any(|c| c == "scratch") {
            let dir = plugin.runtime.scratch_dir(&info.name);
            if let Some(dir) = &dir {
                std::fs::create_dir_all(dir)
                    .map_err(|e| LoadError::Describe(format!("cannot create the scratch directory: {e}")))?;
            }
            plugin.scratch = dir;
        }
        plugin.info = info;
        // Instantiate once more under the domain's own limits: a plugin whose initial memory
        // exceeds its cap is refused now, not on its first command.
        plugin
            .call("describe", |store, instance, exports| {
                exports.plugin.load(&mut *store, instance)?.call_describe(store)
            })
            .map_err(|fault| LoadError::Describe(format!("it cannot run under its limits: {}", fault.message)))?;
        Ok(Arc::new(plugin))
    }

    /// Serves `domain` natively (see [`NativeDomain`]): no component, no sandbox. Its digest is
    /// `native-` and a hash of its name and version, so its kept states are its own.
    pub fn native(runtime: Arc<Runtime>, domain: Arc<dyn NativeDomain>) -> Result<Arc<Self>, LoadError> {
        let info = domain.describe();
        validate(&info, &[], &[], runtime.policy.defaults.max_version_bytes)
            .map_err(|e| LoadError::Describe(format!("`describe` returned an invalid description: {e}")))?;
        if info.commands.iter().any(|c| c.kind == CommandKind::Handle) {
            return Err(LoadError::Describe("a native domain has no command handlers".into()));
        }
        let digest = format!("native-{}", hex::encode(sha2::Sha256::digest(format!("{}@{}", info.name, info.version))));
        let limits = runtime.limits_for(&info.name).clone();
        Ok(Arc::new(Self {
            runtime,
            digest,
            info,
            limits,
            projections: vec![],
            queries: vec![],
            scratch: None,
            guest: Guest::Native(domain),
        }))
    }

    /// The domain's name.
    pub fn domain(&self) -> &str {
        &self.info.name
    }

    /// The plugin's semantic version.
    pub fn version(&self) -> &str {
        &self.info.version
    }

    /// The command named `name`, if the plugin declares it.
    pub fn command(&self, name: &str) -> Option<&CommandInfo> {
        self.info.commands.iter().find(|c| c.name == name)
    }

    /// Whether the plugin declared `event_type`.
    pub fn declares_event(&self, event_type: &str) -> bool {
        self.info.event_types.iter().any(|t| t == event_type)
    }

    /// Calls `decide` on a fresh instance. Blocking: run it off the async executor.
    pub fn decide(
        &self,
        request: &aggregate::DecideRequest,
    ) -> Result<Result<Vec<NewEvent>, aggregate::DecideError>, PluginFault> {
        if let Guest::Native(domain) = &self.guest {
            return Ok(domain.decide(request));
        }
        self.call("decide", |store, instance, exports| {
            exports.aggregate.load(&mut *store, instance)?.call_decide(store, request)
        })
    }

    /// Whether the plugin decides on a state the host keeps (`aggregate-state`, 0.1.2); if not,
    /// every decision gets the stream's whole history.
    pub fn keeps_state(&self) -> bool {
        match &self.guest {
            Guest::Component { exports, .. } => exports.aggregate_state.is_some(),
            Guest::Native(_) => true,
        }
    }

    /// Calls `aggregate-state.decide` on a fresh instance: the new events and the state after
    /// them. Faults and log lines name the call `decide`, as on the history path. Blocking.
    pub fn decide_on_state(
        &self,
        request: &aggregate_state::StateRequest,
    ) -> Result<Result<aggregate_state::Decision, aggregate::DecideError>, PluginFault> {
        if let Guest::Native(domain) = &self.guest {
            return Ok(domain.decide_on_state(request));
        }
        self.call("decide", |store, instance, exports| match &exports.aggregate_state {
            Some(kept) => kept.load(&mut *store, instance)?.call_decide(store, request),
            None => Err(wasmtime::format_err!("the plugin has no `aggregate-state` export")),
        })
    }

    /// Folds `tail` into a state this plugin returned (or the initial state), as JSON text: with
    /// `aggregate-state.fold` when the plugin has it, else `fold` over `tail` as the whole history
    /// (`state` must then be `None`). Blocking.
    pub fn fold_on_state(
        &self,
        aggregate: &str,
        aggregate_id: &str,
        state: Option<&str>,
        tail: &[RecordedEvent],
    ) -> Result<Result<String, aggregate::DecideError>, PluginFault> {
        if let Guest::Native(domain) = &self.guest {
            return Ok(domain.fold_on_state(aggregate, aggregate_id, state, tail));
        }
        if !self.keeps_state() && state.is_none() {
            return self.fold(aggregate, aggregate_id, tail);
        }
        self.call("fold", |store, instance, exports| match &exports.aggregate_state {
            Some(kept) => kept.load(&mut *store, instance)?.call_fold(store, aggregate, aggregate_id, state, tail),
            None => Err(wasmtime::format_err!("the plugin has no `aggregate-state` export")),
        })
    }

    /// Calls `handle` on a fresh instance with `unit` as its event store; gives the unit back
    /// (with whatever the handler buffered) whatever happened. Blocking.
    pub fn handle(
        &self,
        request: &command_handler::HandleRequest,
        grants: Grants,
    ) -> (Result<Result<(), command_handler::HandleError>, PluginFault>, Option<UnitOfWork>) {
        let (result, grants) = self.call_with(
            "handle",
            grants,
            Box::new(|store, instance, exports| {
                exports.handler.load(&mut *store, instance)?.call_handle(store, request)
            }),
        );
        (result, grants.unit)
    }

    /// Calls `fold` on a fresh instance: the aggregate's state after `history`, as JSON text.
    pub fn fold(
        &self,
        aggregate: &str,
        aggregate_id: &str,
        history: &[RecordedEvent],
    ) -> Result<Result<String, aggregate::DecideError>, PluginFault> {
        if let Guest::Native(domain) = &self.guest {
            return Ok(domain.fold(aggregate, aggregate_id, history));
        }
        self.call("fold", |store, instance, exports| {
            exports.aggregate.load(&mut *store, instance)?.call_fold(store, aggregate, aggregate_id, history)
        })
    }

    /// Calls `project` on a fresh instance with `read` as its read model (a write transaction);
    /// gives the access back whatever happened. Blocking.
    pub fn project(
        &self,
        projection: &str,
        events: &[RecordedEvent],
        read: ReadAccess,
    ) -> (Result<Result<(), ProjectFailure>, PluginFault>, Option<ReadAccess>) {
        let grants = Grants { read: Some(read), ..Grants::default() };
        let (result, grants) = self.call_with(
            "project",
            grants,
            Box::new(|store, instance, exports| match &exports.projector {
                Some(projector) => projector.load(&mut *store, instance)?.call_project(store, projection, events),
                None => Ok(Err(ProjectFailure { position: None, message: "the plugin has no projector".into() })),
            }),
        );
        (result, grants.read)
    }

    /// Runs the query `name` on a fresh instance with `read` (read-only) as its read model.
    /// Blocking.
    pub fn run_query(
        &self,
        name: &str,
        parameters: &str,
        read: ReadAccess,
    ) -> (Result<Result<String, QueryError>, PluginFault>, Option<ReadAccess>) {
        let grants = Grants { read: Some(read), ..Grants::default() };
        let (result, grants) = self.call_with(
            "run",
            grants,
            Box::new(|store, instance, exports| match &exports.query {
                Some(query) => query.load(&mut *store, instance)?.call_run(store, name, parameters),
                None => Ok(Err(QueryError::UnknownQuery(name.to_string()))),
            }),
        );
        (result, grants.read)
    }

    /// Asks the optional `projector` and `query` exports what they maintain and answer.
    fn load_read_side(&mut self) -> Result<(), LoadError> {
        let failed =
            |what: &str, fault: PluginFault| LoadError::Describe(format!("`{what}` did not answer: {}", fault.message));
        let Guest::Component { exports, .. } = &self.guest else { return Ok(()) };
        let (projector, query) = (exports.projector.is_some(), exports.query.is_some());
        if projector {
            self.projections = self
                .call("projections", |store, instance, exports| match &exports.projector {
                    Some(p) => p.load(&mut *store, instance)?.call_projections(store),
                    None => Ok(vec![]),
                })
                .map_err(|fault| failed("projections", fault))?;
        }
        if query {
            self.queries = self
                .call("queries", |store, instance, exports| match &exports.query {
                    Some(q) => q.load(&mut *store, instance)?.call_queries(store),
                    None => Ok(vec![]),
                })
                .map_err(|fault| failed("queries", fault))?;
        }
        Ok(())
    }

    /// The projection named `name`, if the plugin maintains it.
    pub fn projection(&self, name: &str) -> Option<&ProjectionInfo> {
        self.projections.iter().find(|p| p.name == name)
    }

    /// The query named `name`, if the plugin answers it.
    pub fn query(&self, name: &str) -> Option<&QueryInfo> {
        self.queries.iter().find(|q| q.name == name)
    }

    fn call<R>(
        &self,
        function: &'static str,
        body: impl FnOnce(&mut Store<HostState>, &Instance, &Exports) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFault> {
        self.call_with(function, Grants::default(), Box::new(body)).0
    }

    fn call_with<R>(
        &self,
        function: &'static str,
        grants: Grants,
        body: CallBody<'_, R>,
    ) -> (Result<R, PluginFault>, Grants) {
        let log = LogContext {
            domain: self.info.name.clone(),
            version: self.info.version.clone(),
            function,
            max_line_bytes: self.limits.max_log_line_bytes,
            budget_bytes: self.limits.max_log_bytes_per_call,
        };
        let Guest::Component { pre, exports } = &self.guest else {
            let error = wasmtime::format_err!("a native domain has no `{function}`");
            return (Err(self.fault(function, &error, None, false)), grants);
        };
        let mut state = match HostState::new(self.limits.memory_bytes, log, self.scratch.as_deref()) {
            Ok(state) => state,
            Err(e) => return (Err(self.fault(function, &e, None, false)), grants),
        };
        state.unit = grants.unit;
        state.read = grants.read;
        state.gateway = grants.gateway;
        state.cache = grants.cache;
        let mut store = Store::new(pre.engine(), state);
        store.set_hostcall_fuel(self.limits.max_host_call_bytes);
        if self.runtime.enforce {
            store.limiter(|state| &mut state.limiter);
            store.set_epoch_deadline(Runtime::deadline_ticks(self.limits.deadline));
            store.epoch_deadline_trap();
        }
        // Time in host calls counts too: blocking host calls and WASI sleeps end at this instant.
        let scope = deadline::enter(self.runtime.enforce.then(|| Instant::now() + self.limits.deadline));
        let result = pre.instantiate(&mut store).and_then(|instance| body(&mut store, &instance, exports));
        let overran = scope.overran();
        drop(scope);
        let result = match result {
            // A host call gave up at the deadline: whatever the guest made of that, the call ran out.
            Ok(_) if overran => {
                Err(self.fault(function, &wasmtime::Error::from(wasmtime::Trap::Interrupt), None, true))
            }
            Ok(value) => Ok(value),
            Err(error) => Err(self.fault(function, &error, store.data().limiter.exceeded, overran)),
        };
        let state = store.data_mut();
        let grants = Grants {
            unit: state.unit.take(),
            read: state.read.take(),
            gateway: state.gateway.take(),
            cache: state.cache.take(),
        };
        (result, grants)
    }

    fn fault(
        &self,
        function: &'static str,
        error: &wasmtime::Error,
        memory_asked: Option<usize>,
        overran: bool,
    ) -> PluginFault {
        let cap = self.limits.memory_bytes;
        let trap = error.downcast_ref::<wasmtime::Trap>();
        let (kind, message) = match (memory_asked, trap) {
            (Some(asked), _) => {
                (FaultKind::Memory, format!("the plugin asked for {asked} bytes of memory; the cap is {cap}"))
            }
            (None, _) if overran || trap == Some(&wasmtime::Trap::Interrupt) => {
                (FaultKind::Deadline, format!("the call exceeded its deadline of {:?}", self.limits.deadline))
            }
            (None, None) if format!("{error:#}").contains(HOSTCALL_FUEL_EXHAUSTED) => (
                FaultKind::HostCall,
                format!(
                    "the plugin handed the host more than {} bytes in one host call",
                    self.limits.max_host_call_bytes
                ),
            ),
            (None, Some(wasmtime::Trap::StackOverflow)) => {
                (FaultKind::Stack, "the wasm stack overflowed (unbounded recursion?)".to_string())
            }
            (None, Some(wasmtime::Trap::MemoryOutOfBounds | wasmtime::Trap::HeapMisaligned)) => {
                (FaultKind::Trap, "the plugin accessed memory out of bounds".to_string())
            }
            (None, Some(trap)) => (FaultKind::Trap, format!("wasm trap: {trap}")),
            (None, None) => (FaultKind::Trap, "the plugin failed".to_string()),
        };
        tracing::warn!(domain = %self.info.name, version = %self.info.version, function, error = ?error, "plugin call failed");
        let limit = match kind {
            FaultKind::Deadline => Some(limit_names::DEADLINE),
            FaultKind::Memory => Some(limit_names::MEMORY),
            FaultKind::Stack => Some(limit_names::STACK),
            FaultKind::HostCall => Some(limit_names::HOST_CALL),
            FaultKind::Trap => None,
        };
        PluginFault {
            kind,
            domain: self.info.name.clone(),
            version: self.info.version.clone(),
            function,
            message,
            limit,
        }
    }
}
