//! One loaded plugin version: its digest, what it says about itself, and a pre-instantiated
//! component. Every call gets a fresh instance in a fresh store (nothing leaks between
//! commands) under its domain's [`Limits`]: deadline, memory cap, log line cap, and (when the
//! plugin asks for the `scratch` capability) its domain's scratch directory and nothing else.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use wasmtime::Store;

use super::{HostState, Limits, LoadError, Runtime, limit_names};
use crate::bindings::plugin::{AggregateId, CommandInfo, CommandKind, DomainInfo};
use crate::bindings::types::{NewEvent, RecordedEvent};
use crate::bindings::{DomainPluginPre, aggregate, command_handler};
use crate::capabilities::event_store::UnitOfWork;
use crate::capabilities::log::LogContext;

/// A loaded plugin version. Cheap to share; immutable.
pub struct Plugin {
    runtime: Arc<Runtime>,
    /// sha256 of the component bytes, lowercase hex.
    pub digest: String,
    /// What the plugin's `describe` returned (validated).
    pub info: DomainInfo,
    /// The limits its calls run under (its domain's).
    pub limits: Limits,
    /// Its domain's scratch directory, when it asked for the `scratch` capability.
    scratch: Option<PathBuf>,
    pre: DomainPluginPre<HostState>,
}

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
        pre: DomainPluginPre<HostState>,
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
        let mut plugin = Self { runtime, digest, info: unknown, limits, scratch: None, pre };
        let info = plugin
            .call("describe", |store, instance| instance.cairn_domain_plugin().call_describe(store))
            .map_err(|fault| LoadError::Describe(format!("`describe` did not answer: {}", fault.message)))?;
        validate(&info).map_err(|e| LoadError::Describe(format!("`describe` returned an invalid description: {e}")))?;
        let handles = info.commands.iter().any(|c| c.kind == CommandKind::Handle);
        if let Some(import) = imports.iter().find(|i| i.starts_with("cairn:domain/event-store")).filter(|_| !handles) {
            return Err(LoadError::Link(format!(
                "it imports `{import}`, which only command handlers are granted, and declares no `handle` command"
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
            .call("describe", |store, instance| instance.cairn_domain_plugin().call_describe(store))
            .map_err(|fault| LoadError::Describe(format!("it cannot run under its limits: {}", fault.message)))?;
        Ok(Arc::new(plugin))
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
        self.call("decide", |store, instance| instance.cairn_domain_aggregate().call_decide(store, request))
    }

    /// Calls `handle` on a fresh instance with `unit` as its event store; gives the unit back
    /// (with whatever the handler buffered) whatever happened. Blocking.
    pub fn handle(
        &self,
        request: &command_handler::HandleRequest,
        unit: UnitOfWork,
    ) -> (Result<Result<(), command_handler::HandleError>, PluginFault>, Option<UnitOfWork>) {
        self.call_with("handle", Some(unit), |store, instance| {
            instance.cairn_domain_command_handler().call_handle(store, request)
        })
    }

    /// Calls `fold` on a fresh instance: the aggregate's state after `history`, as JSON text.
    pub fn fold(
        &self,
        aggregate: &str,
        aggregate_id: &str,
        history: &[RecordedEvent],
    ) -> Result<Result<String, aggregate::DecideError>, PluginFault> {
        self.call("fold", |store, instance| {
            instance.cairn_domain_aggregate().call_fold(store, aggregate, aggregate_id, history)
        })
    }

    fn call<R>(
        &self,
        function: &'static str,
        body: impl FnOnce(&mut Store<HostState>, &crate::bindings::DomainPlugin) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFault> {
        self.call_with(function, None, body).0
    }

    fn call_with<R>(
        &self,
        function: &'static str,
        unit: Option<UnitOfWork>,
        body: impl FnOnce(&mut Store<HostState>, &crate::bindings::DomainPlugin) -> wasmtime::Result<R>,
    ) -> (Result<R, PluginFault>, Option<UnitOfWork>) {
        let log = LogContext {
            domain: self.info.name.clone(),
            version: self.info.version.clone(),
            function,
            max_line_bytes: self.limits.max_log_line_bytes,
        };
        let mut state = match HostState::new(self.limits.memory_bytes, log, self.scratch.as_deref()) {
            Ok(state) => state,
            Err(e) => return (Err(self.fault(function, &e, None)), unit),
        };
        state.unit = unit;
        let mut store = Store::new(self.pre.engine(), state);
        if self.runtime.enforce {
            store.limiter(|state| &mut state.limiter);
            store.set_epoch_deadline(Runtime::deadline_ticks(self.limits.deadline));
            store.epoch_deadline_trap();
        }
        let result = self.pre.instantiate(&mut store).and_then(|instance| body(&mut store, &instance));
        let result = result.map_err(|error| self.fault(function, &error, store.data().limiter.exceeded));
        (result, store.data_mut().unit.take())
    }

    fn fault(&self, function: &'static str, error: &wasmtime::Error, memory_asked: Option<usize>) -> PluginFault {
        let cap = self.limits.memory_bytes;
        let (kind, message) = match (memory_asked, error.downcast_ref::<wasmtime::Trap>()) {
            (Some(asked), _) => {
                (FaultKind::Memory, format!("the plugin asked for {asked} bytes of memory; the cap is {cap}"))
            }
            (None, Some(wasmtime::Trap::Interrupt)) => {
                (FaultKind::Deadline, format!("the call exceeded its deadline of {:?}", self.limits.deadline))
            }
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

/// Checks what `describe` returned before the host routes anything to the plugin.
fn validate(info: &DomainInfo) -> Result<()> {
    let kebab = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
    };
    if !kebab(&info.name) {
        bail!("the domain name `{}` must be kebab-case ([a-z0-9-], at most 64 characters)", info.name);
    }
    if info.version.split('.').count() < 3 || !info.version.split('.').take(3).all(|p| p.parse::<u64>().is_ok()) {
        bail!("the version `{}` of `{}` is not a semantic version (MAJOR.MINOR.PATCH)", info.version, info.name);
    }
    for aggregate in &info.aggregates {
        if !kebab(aggregate) {
            bail!("the aggregate name `{aggregate}` must be kebab-case");
        }
    }
    let mut seen = std::collections::HashSet::new();
    for command in &info.commands {
        if !kebab(&command.name) {
            bail!("the command name `{}` must be kebab-case", command.name);
        }
        if !seen.insert(&command.name) {
            bail!("the command `{}` is declared twice", command.name);
        }
        if !info.aggregates.contains(&command.aggregate) {
            bail!(
                "the command `{}` addresses `{}`, which is not one of the domain's aggregates",
                command.name,
                command.aggregate
            );
        }
        if let AggregateId::Field(field) = &command.id
            && field.is_empty()
        {
            bail!("the command `{}` reads its aggregate id from an empty field name", command.name);
        }
    }
    if let Some(unknown) = info.capabilities.iter().find(|c| !GRANTABLE.contains(&c.as_str())) {
        bail!("it asks for the capability `{unknown}`, which this host does not grant (grantable: {GRANTABLE:?})");
    }
    if info.event_types.iter().any(|t| t.is_empty() || t.len() > 128) {
        bail!("event type names must be 1 to 128 characters");
    }
    Ok(())
}

impl Plugin {
    /// What `describe` returned, as JSON (for the admin API and the registry).
    pub fn description(&self) -> serde_json::Value {
        let info = &self.info;
        let commands: Vec<serde_json::Value> = info
            .commands
            .iter()
            .map(|c| {
                let id = match &c.id {
                    AggregateId::Field(field) => serde_json::json!({ "field": field }),
                    AggregateId::Minted => serde_json::json!("minted"),
                };
                let kind = match c.kind {
                    CommandKind::Decide => "decide",
                    CommandKind::Handle => "handle",
                };
                serde_json::json!({ "name": c.name, "kind": kind, "aggregate": c.aggregate, "id": id, "description": c.description })
            })
            .collect();
        serde_json::json!({
            "name": info.name,
            "version": info.version,
            "description": info.description,
            "aggregates": info.aggregates,
            "commands": commands,
            "event_types": info.event_types,
            "capabilities": info.capabilities,
        })
    }
}
