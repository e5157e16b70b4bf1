//! What a plugin's `Store` holds: an empty WASI context (no files, no environment, no network),
//! the memory limiter, and who is calling, for the log capability.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::log::LogContext;

/// Most table elements an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Per-call store data. A fresh one is made for every instance: nothing survives a call.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) log: LogContext,
}

impl HostState {
    pub(crate) fn new(memory_bytes: usize, log: LogContext) -> Self {
        Self {
            // Nothing from the host: no preopened dirs, no env, no args, no network, no stdio.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: MemoryCap { max_bytes: memory_bytes, exceeded: None },
            log,
        }
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
