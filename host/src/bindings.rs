//! The one `bindgen!` over `wit/`: host-side Rust types and traits for the `cairn:domain`
//! worlds. The generated code stays in this module; the rest of the host names it through the
//! re-exports below.

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        world: "domain-plugin",
        path: "../wit",
        imports: { default: tracing },
    });
}

pub use generated::cairn::domain::{cache, event_store, gateway, log, read_model, types};
pub use generated::exports::cairn::domain::{aggregate, aggregate_state, command_handler, plugin, projector, query};
