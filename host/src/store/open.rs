//! Opens the backend the configuration names and hands out its stores as traits.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use super::postgres::{Notifications, PgSettings, PgStore};
use super::sqlite::SqliteStore;
use super::sqlite_read_models::SqliteReadModels;
use super::{CommandQueue, EventStore, Leases, Outbox, PluginStore, ReadModels};

/// Every store of one backend.
pub struct Stores {
    /// Events, idempotency records.
    pub events: Arc<dyn EventStore>,
    /// Plugin versions and activations.
    pub plugins: Arc<dyn PluginStore>,
    /// Asynchronous commands.
    pub queue: Arc<dyn CommandQueue>,
    /// Gateway calls after commit.
    pub outbox: Arc<dyn Outbox>,
    /// Documents and projection generations.
    pub models: Arc<dyn ReadModels>,
    /// Work that runs on one host at a time.
    pub leases: Arc<dyn Leases>,
    /// Other hosts' changes (PostgreSQL only; SQLite has one host).
    pub notifications: Option<Notifications>,
    /// `sqlite` or `postgres`, for logs.
    pub backend: &'static str,
}

impl Stores {
    /// PostgreSQL when `postgres` is given, else SQLite in `data_dir`, synced as `durability` says.
    pub async fn open(
        postgres: Option<&PgSettings>,
        data_dir: &Path,
        durability: super::sqlite::Durability,
    ) -> Result<Self> {
        if let Some(settings) = postgres {
            let store = Arc::new(PgStore::open(settings).await?);
            let models = Arc::new(super::postgres::read_models::PgReadModels::new(store.pool()));
            return Ok(Self {
                events: store.clone(),
                plugins: store.clone(),
                queue: store.clone(),
                outbox: store.clone(),
                models,
                leases: store.clone(),
                notifications: Some(store.notifications().clone()),
                backend: "postgres",
            });
        }
        let store = Arc::new(SqliteStore::open_with(data_dir, durability).await?);
        Ok(Self {
            events: store.clone(),
            plugins: store.clone(),
            queue: store.clone(),
            outbox: store,
            models: Arc::new(SqliteReadModels::open(data_dir).await?),
            leases: Arc::new(super::leases::SoleHost),
            notifications: None,
            backend: "sqlite",
        })
    }
}
