//! What a plugin's `Store` holds: a WASI context with nothing of the host's (no environment,
//! no network, no files but an optional per-domain scratch directory opened through cap-std),
//! the memory limiter, and who is calling, for the log capability.

use std::path::Path;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::event_store::UnitOfWork;
use crate::capabilities::log::LogContext;
use crate::capabilities::read_model::ReadAccess;

/// Most table elements an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Per-call store data. A fresh one is made for every instance: nothing survives a call.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) log: LogContext,
    /// The unit of work of a `handle` call; `None` in every other call (no event store).
    pub(crate) unit: Option<UnitOfWork>,
    /// The read model of a `project` (read-write) or `run` (read-only) call; `None` elsewhere.
    pub(crate) read: Option<ReadAccess>,
    /// The gateway of a `handle` call; `None` elsewhere.
    pub(crate) gateway: Option<crate::capabilities::gateway::GatewayAccess>,
    /// The cache of a `handle` call; `None` elsewhere.
    pub(crate) cache: Option<crate::capabilities::cache::CacheAccess>,
}

impl HostState {
    /// A store's data: no env, no args, no network, no stdio, and no files except `scratch`
    /// (the domain's own directory, mounted as `/scratch`, when the plugin was granted one).
    pub(crate) fn new(memory_bytes: usize, log: LogContext, scratch: Option<&Path>) -> wasmtime::Result<Self> {
        let mut wasi = WasiCtx::builder();
        if let Some(dir) = scratch {
            wasi.preopened_dir(dir, "/scratch", FsPerms::ReadWrite)?;
        }
        Ok(Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryCap { max_bytes: memory_bytes, exceeded: None },
            log,
            unit: None,
            read: None,
            gateway: None,
            cache: None,
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory and traps when a guest asks for more, remembering the request so the
/// fault can name the limit (instead of guessing from an error message).
pub(crate) struct MemoryCap {
    max_bytes: usize,
    /// The size a refused growth asked for.
    pub(crate) exceeded: Option<usize>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = Some(desired);
            wasmtime::bail!("memory growth to {desired} bytes exceeds the cap of {} bytes", self.max_bytes);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
