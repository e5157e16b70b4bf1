//! The WebAssembly runtime: one wasmtime `Engine` (pooling allocator, epoch interruption), the
//! linker with the capabilities a plugin may import, the on-disk cache of compiled components,
//! and [`Plugin`]: one loaded, pre-instantiated plugin version. Knows nothing of HTTP or SQL.

mod clocks;
mod compile_cache;
mod describe;
mod limits;
mod native;
mod plugin;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use self::limits::{EngineLimits, Limits, LimitsPolicy, names as limit_names};
pub use self::native::NativeDomain;
pub use self::plugin::{FaultKind, Grants, Plugin, PluginFault};
pub use self::state::HostState;

/// The interfaces a plugin may import (by package prefix). Anything else is refused at deploy,
/// naming the import, even where the linker could satisfy it (WASI's sockets: no network).
const PROVIDED_IMPORTS: &[&str] =
    &["cairn:domain/", "wasi:cli/", "wasi:clocks/", "wasi:filesystem/", "wasi:io/", "wasi:random/"];

/// How often the epoch ticks; deadlines are rounded up to whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Why a component could not be loaded as a plugin.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid component.
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// It imports something the host does not provide.
    #[error("{0}")]
    Link(String),
    /// It does not export the world it must.
    #[error("{0}")]
    World(String),
    /// `describe` trapped or returned something invalid.
    #[error("{0}")]
    Describe(String),
}

/// The shared wasmtime engine and everything needed to load plugin versions.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    policy: LimitsPolicy,
    enforce: bool,
    scratch_root: Option<PathBuf>,
    cache: compile_cache::CompileCache,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine. `cache_dir` keeps compiled components across restarts (`None`: memory
    /// only); `scratch_root` holds the per-domain scratch directories of plugins that ask for one.
    pub fn new(
        engine_limits: EngineLimits,
        policy: LimitsPolicy,
        cache_dir: Option<PathBuf>,
        scratch_root: Option<PathBuf>,
    ) -> Result<Arc<Self>> {
        let instances = engine_limits.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 4)
            .total_memories(instances * 2)
            .total_tables(instances * 4)
            .max_memory_size(policy.largest_memory())
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(8 << 10)
            .max_component_instance_size(1 << 20)
            .max_core_instances_per_component(16)
            .max_memories_per_component(4)
            .max_tables_per_component(8);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(engine_limits.enforce)
            .max_wasm_stack(engine_limits.stack_bytes)
            .wasm_component_model(true);
        let engine = Engine::new(&config).map_err(anyhow::Error::from).context("creating the wasmtime engine")?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
        clocks::shadow_monotonic_clock(&mut linker).map_err(anyhow::Error::from)?;
        crate::bindings::log::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        crate::bindings::event_store::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(anyhow::Error::from)?;
        crate::bindings::read_model::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(anyhow::Error::from)?;
        crate::bindings::gateway::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(anyhow::Error::from)?;
        crate::bindings::cache::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let cache = compile_cache::CompileCache::new(&engine, cache_dir)?;
        let ticker = EpochTicker::start(engine.clone());
        let enforce = engine_limits.enforce;
        Ok(Arc::new(Self { engine, linker, policy, enforce, scratch_root, cache, _ticker: ticker }))
    }

    /// The limits `domain` runs under.
    pub fn limits_for(&self, domain: &str) -> &Limits {
        self.policy.for_domain(domain)
    }

    /// The scratch directory of `domain` (created on demand), if the host has a scratch root.
    pub(crate) fn scratch_dir(&self, domain: &str) -> Option<PathBuf> {
        self.scratch_root.as_ref().map(|root| root.join(domain))
    }

    /// Loads a plugin version from its component bytes: compile (or reuse the cached
    /// compilation), link, pre-instantiate, and ask it to `describe` itself. Blocking (compiling
    /// takes tens of milliseconds): call it off the async executor.
    pub fn load(self: &Arc<Self>, bytes: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        let digest = hex::encode(Sha256::digest(bytes));
        let component: Component = self
            .cache
            .get_or_compile(&self.engine, &digest, bytes)
            .map_err(|e| compile_error(&format!("{e:#}"), self.policy.largest_memory()))?;
        let imports: Vec<String> =
            component.component_type().imports(&self.engine).map(|(name, _)| name.to_string()).collect();
        if let Some(import) = imports.iter().find(|i| !PROVIDED_IMPORTS.iter().any(|p| i.starts_with(p))) {
            return Err(LoadError::Link(format!(
                "it imports `{}`, which Cairn does not provide to domain plugins (they get {}; no network)",
                crate::text::quote(import),
                PROVIDED_IMPORTS.join(", ")
            )));
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            LoadError::Link(format!("it imports something Cairn does not provide to domain plugins: {e:#}"))
        })?;
        let exports = plugin::Exports::find(&pre).map_err(|e| {
            LoadError::World(format!("it does not export the `cairn:domain/domain-plugin` world: {e:#}"))
        })?;
        Plugin::new(self.clone(), digest, pre, exports, imports)
    }

    fn deadline_ticks(deadline: Duration) -> u64 {
        deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64 + 1
    }
}

/// Tells a component the engine refuses for its size (initial memory beyond every domain's
/// cap, checked by the pooling allocator at compile time) from bytes that are not a component.
fn compile_error(message: &str, largest_memory: usize) -> LoadError {
    if message.contains("pooling allocator") {
        LoadError::Describe(format!(
            "it cannot run under this host's limits (`{}`: at most {largest_memory} bytes of memory): {message}",
            limit_names::MEMORY
        ))
    } else {
        LoadError::Compile(message.to_string())
    }
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`]; stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
