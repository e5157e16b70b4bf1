//! The end-to-end suites, one module per area (see `tests/README.md`), in one test binary.
//!
//! Every suite runs twice: `on_sqlite::*` on the embedded SQLite backend, and `on_postgres::*`
//! on PostgreSQL (a fresh schema per host) when `CAIRN_TEST_POSTGRES_URL` was set at build time
//! (`.ci/run` sets it; without it the build says the PostgreSQL suite is skipped). Each module
//! sees the backend's host type as `super::TestHost`.

#![allow(clippy::unwrap_used)]
// a failing unwrap is a failing test
// Each suite file is compiled once per backend on purpose (`on_sqlite`, `on_postgres`).
#![allow(clippy::duplicate_mod)]

#[cfg(postgres_suite)]
mod on_postgres;
mod on_sqlite;
