//! The suites on the embedded SQLite backend, and what only SQLite has.

pub type TestHost = cairn_tests::TestHost;

suites_on_every_backend!();

#[path = "disk_full.rs"]
mod disk_full;
#[path = "projection_crash.rs"]
mod projection_crash;
#[path = "signals.rs"]
mod signals;
#[path = "sqlite_only.rs"]
mod sqlite_only;
