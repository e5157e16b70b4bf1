//! The end-to-end suites, one module per area (see `tests/README.md`), in one test binary.

#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

mod async_commands;
mod batches;
mod commands;
mod components;
mod concurrency;
mod faults;
mod gateway;
mod handlers;
mod hostile;
mod hot_swap;
mod idempotency;
mod outbox;
mod projection_crash;
mod read_side;
mod restart;
mod versions;
