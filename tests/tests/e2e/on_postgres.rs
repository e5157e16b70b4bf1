//! The same suites on PostgreSQL (a fresh schema per host), and several hosts sharing one
//! database.

pub type TestHost = cairn_tests::PgTestHost;

#[path = "async_commands.rs"]
mod async_commands;
#[path = "batches.rs"]
mod batches;
#[path = "cluster.rs"]
mod cluster;
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
#[path = "held_append.rs"]
mod held_append;
#[path = "hostile.rs"]
mod hostile;
#[path = "hot_swap.rs"]
mod hot_swap;
#[path = "idempotency.rs"]
mod idempotency;
#[path = "outage.rs"]
mod outage;
#[path = "outbox.rs"]
mod outbox;
#[path = "read_side.rs"]
mod read_side;
#[path = "restart.rs"]
mod restart;
#[path = "versions.rs"]
mod versions;
