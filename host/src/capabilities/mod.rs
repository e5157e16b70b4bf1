//! Host capabilities: one folder per WIT interface a plugin may import. Each `mod.rs` documents
//! the capability and holds its context; each `host.rs` holds only the `Host` trait impls.
//! A capability never knows which store backend it is talking to.

pub mod cache;
pub mod deadline;
pub mod event_store;
pub mod gateway;
pub mod log;
pub mod read_model;
