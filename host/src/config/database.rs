//! `[database]`: SQLite in the data directory (the default), or a PostgreSQL shared by hosts.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The database. Without `url`, the embedded SQLite database in `data_dir`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user@host:port/database` (also `CAIRN_DATABASE_URL` or `--database`).
    pub url: Option<String>,
    /// Schema holding Cairn's tables on PostgreSQL (created if missing); default: the
    /// connection's search path (`public`).
    pub schema: Option<String>,
    /// Connections per host in the pool of reads and registry writes (appends use one more).
    pub max_connections: u32,
    /// Longest wait for a connection, in milliseconds: when the database is down, commands fail
    /// with 503 after this long rather than hang.
    pub acquire_timeout_ms: u64,
    /// SQLite's durability: `full` (the default) syncs the log on every commit, so an answered
    /// command survives a power loss; `normal` syncs at checkpoints only, so it survives a crash
    /// of the process but a power loss may take the last commits (what most embedded event stores
    /// and the peer benchmark's servers use). Ignored on PostgreSQL.
    pub sqlite_synchronous: crate::store::sqlite::Durability,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            schema: None,
            max_connections: 16,
            acquire_timeout_ms: 2_000,
            sqlite_synchronous: crate::store::sqlite::Durability::Full,
        }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        let url = self.url.as_deref().map(|u| u.split_once('@').map_or(u, |(_, host)| host));
        f.debug_struct("DatabaseConfig")
            .field("url", &url)
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .finish()
    }
}

impl DatabaseConfig {
    /// The PostgreSQL settings, if a URL is given.
    pub fn postgres(&self) -> Result<Option<crate::store::postgres::PgSettings>> {
        let Some(url) = &self.url else { return Ok(None) };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("database.url must be a postgres:// URL (SQLite needs none: it lives in data_dir)");
        }
        if self.max_connections == 0 || self.acquire_timeout_ms == 0 {
            bail!("database.max_connections and database.acquire_timeout_ms must be positive");
        }
        Ok(Some(crate::store::postgres::PgSettings {
            url: url.clone(),
            schema: self.schema.clone(),
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
        }))
    }
}
