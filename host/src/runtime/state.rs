//! What a plugin's `Store` holds: an empty WASI context (no files, no environment, no network),
//! memory limits, and who is calling, for the log capability.

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::log::LogContext;

/// Per-call store data. A fresh one is made for every instance: nothing survives a call.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) log: LogContext,
}

impl HostState {
    pub(crate) fn new(memory_bytes: usize, log: LogContext) -> Self {
        Self {
            // Nothing from the host: no preopened dirs, no env, no args, no network, no stdio.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .instances(16)
                .trap_on_grow_failure(true)
                .build(),
            log,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
