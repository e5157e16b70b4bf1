//! For store-level tests on PostgreSQL: a fresh schema per test in the database named by
//! `CAIRN_TEST_POSTGRES_URL` (`.ci/run` sets it), or a plain "skipped" line without it.

use std::time::Duration;

use super::PgSettings;

/// The variable naming the test database.
pub const URL_VARIABLE: &str = "CAIRN_TEST_POSTGRES_URL";

/// Settings with a new, empty schema; `None` (and a line saying the test was skipped) when
/// [`URL_VARIABLE`] is not set.
pub fn settings(test: &str) -> Option<PgSettings> {
    let Ok(url) = std::env::var(URL_VARIABLE) else {
        eprintln!("{test}: skipped on PostgreSQL ({URL_VARIABLE} is not set)");
        return None;
    };
    let schema = format!("cairn_test_{}", uuid::Uuid::now_v7().simple());
    Some(PgSettings { url, schema: Some(schema), max_connections: 8, acquire_timeout: Duration::from_secs(10) })
}
