//! The end-to-end suites, one module per area (see `tests/README.md`), in one test binary.
//!
//! Every suite runs twice: `on_sqlite::*` on the embedded SQLite backend, and `on_postgres::*`
//! on PostgreSQL (a fresh schema per host) when `CAIRN_TEST_POSTGRES_URL` was set at build time
//! (`.ci/run` sets it; without it the build says the PostgreSQL suite is skipped). Each module
//! sees the backend's host type as `super::TestHost`.

// A failing unwrap is a failing test.
#![allow(clippy::unwrap_used)]
// Each suite file is compiled once per backend on purpose (`on_sqlite`, `on_postgres`).
#![allow(clippy::duplicate_mod)]

/// Declares, in the module that invokes it, the suites that run on every backend (each file is
/// compiled once per backend; the invoking module defines `TestHost`).
macro_rules! suites_on_every_backend {
    () => {
        #[path = "async_commands.rs"]
        mod async_commands;
        #[path = "bank.rs"]
        mod bank;
        #[path = "batches.rs"]
        mod batches;
        #[path = "boundaries.rs"]
        mod boundaries;
        #[path = "commands.rs"]
        mod commands;
        #[path = "components.rs"]
        mod components;
        #[path = "concurrency.rs"]
        mod concurrency;
        #[path = "containment.rs"]
        mod containment;
        #[path = "edges.rs"]
        mod edges;
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
        #[path = "kept_state.rs"]
        mod kept_state;
        #[path = "outbound_caps.rs"]
        mod outbound_caps;
        #[path = "outbox.rs"]
        mod outbox;
        #[path = "poison.rs"]
        mod poison;
        #[path = "queue_containment.rs"]
        mod queue_containment;
        #[path = "queue_shutdown.rs"]
        mod queue_shutdown;
        #[path = "read_side.rs"]
        mod read_side;
        #[path = "restart.rs"]
        mod restart;
        #[path = "storable.rs"]
        mod storable;
        #[path = "versions.rs"]
        mod versions;
    };
}

#[cfg(postgres_suite)]
mod on_postgres;
mod on_sqlite;
