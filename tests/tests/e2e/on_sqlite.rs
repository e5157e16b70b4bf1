//! The suites on the embedded SQLite backend, and what only SQLite has.

pub type TestHost = cairn_tests::TestHost;

#[path = "async_commands.rs"]
mod async_commands;
#[path = "batches.rs"]
mod batches;
#[path = "commands.rs"]
mod commands;
#[path = "components.rs"]
mod components;
#[path = "concurrency.rs"]
mod concurrency;
#[path = "faults.rs"]
mod faults;
#[path = "gateway.rs"]
mod gateway;
#[path = "handlers.rs"]
mod handlers;
#[path = "hostile.rs"]
mod hostile;
#[path = "hot_swap.rs"]
mod hot_swap;
#[path = "idempotency.rs"]
mod idempotency;
#[path = "outbox.rs"]
mod outbox;
#[path = "projection_crash.rs"]
mod projection_crash;
#[path = "read_side.rs"]
mod read_side;
#[path = "restart.rs"]
mod restart;
#[path = "sqlite_only.rs"]
mod sqlite_only;
#[path = "versions.rs"]
mod versions;
