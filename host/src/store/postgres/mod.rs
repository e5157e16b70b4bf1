//! The PostgreSQL backend: several Cairn hosts share one database (or one schema of it).
//!
//! # Gap-safe global order
//!
//! A reader of the global log remembers how far it got (a projection's checkpoint) and asks for
//! what comes after. That is only sound if no event can become visible *below* a position a
//! reader has already passed. With a plain sequence it can: a transaction that took position 7
//! and commits after the one that took 8 becomes visible late, and a reader that saw 8 never
//! reads 7 (the bug Marten, Axon and Eventuous shipped).
//!
//! Cairn serialises appends instead. The table `event_log_head` has one row holding the last
//! committed position. Every append transaction (one group commit of one host's writer):
//!
//! 1. locks that row (`SELECT ... FOR UPDATE`): every appender of every host queues here;
//! 2. reads the current stream versions and idempotency keys (exact: nobody else can append);
//! 3. inserts its events at positions `head + 1 ..`, then sets the head row to its last one;
//! 4. commits.
//!
//! PostgreSQL wakes a transaction waiting on a row lock only once the holder has ended, and a
//! transaction's commit is visible to new snapshots before its locks are released. So the
//! transactions that write positions commit one after the other, in position order. The head
//! row commits atomically with the events: a snapshot that sees head `h` sees every event at or
//! below `h` and none above, and no event at or below `h` can commit later. [`EventStore::read_log`]
//! reads the head and the events in **one statement** (one snapshot) and answers
//! `complete_to = h`, which is therefore gap-safe. The cost is one append transaction at a
//! time across all hosts; each host's writer group-commits whatever is waiting, so a
//! transaction carries many commands (see `cargo bench-cairn --postgres`).
//!
//! Every commit also sends `NOTIFY cairn_events` with the new head, so projection runners on
//! every host wake at once (they also poll, so a lost notification only delays them).

mod events;
mod leases;
mod listen;
mod outbox;
mod parking;
mod plugins;
mod queue;
#[cfg(test)]
mod queue_tests;
pub mod read_models;
#[cfg(test)]
mod registry_tests;
mod snapshots;
#[cfg(test)]
pub(crate) mod testing;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::Executor;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, watch};

pub use self::listen::Notifications;

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// `postgres://...`.
    pub url: String,
    /// Schema holding Cairn's tables (created if missing); `None` for the URL's default.
    pub schema: Option<String>,
    /// Connections in the pool of reads and registry writes (the writer has one more).
    pub max_connections: u32,
    /// Longest wait for a connection (also bounds connecting), after which a call fails.
    pub acquire_timeout: Duration,
}

/// The PostgreSQL store: events, registry, queue, outbox (and, through [`read_models`], the
/// read models) over one pool.
pub struct PgStore {
    pub(super) pool: PgPool,
    writer: mpsc::Sender<writer::WriteJob>,
    head: watch::Receiver<u64>,
    health: std::sync::Arc<super::writer_health::WriterHealth>,
    notifications: Notifications,
}

impl PgStore {
    /// Connects, creates the schema if needed, applies migrations, starts the writer and the
    /// listener of other hosts' changes.
    pub async fn open(settings: &PgSettings) -> Result<Self> {
        let pool = connect(settings, settings.max_connections.max(1)).await?;
        let mut conn = pool.acquire().await.context("connecting to PostgreSQL")?;
        // A host of an older release next to newer ones (a rolling upgrade) finds migrations it
        // does not know: they are additive, so it goes on.
        let migrator = Migrator { migrations: MIGRATOR.migrations.clone(), ignore_missing: true, ..MIGRATOR };
        migrator.run(&mut conn).await.context("applying PostgreSQL migrations")?;
        drop(conn);
        let writes = connect(settings, 1).await?;
        let last: i64 = sqlx::query_scalar("SELECT position FROM event_log_head").fetch_one(&pool).await?;
        let (head_tx, head) = watch::channel(last as u64);
        let notifications = listen::start(pool.clone(), head_tx.clone()).await?;
        let (writer, jobs) = mpsc::channel(4096);
        let health = std::sync::Arc::new(super::writer_health::WriterHealth::default());
        tokio::spawn(writer::Writer { pool: writes, head: head_tx, health: health.clone() }.run(jobs));
        Ok(Self { pool, writer, head, health, notifications })
    }

    /// Registry and generation changes made by any host (this one included).
    pub fn notifications(&self) -> &Notifications {
        &self.notifications
    }

    /// The pool (for the read-model store, which shares it).
    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }
}

/// Moves the published head forward to `position` (never back: this host's commits and other
/// hosts' notices arrive in any order), waking its followers only when it moved.
fn raise(head: &watch::Sender<u64>, position: u64) {
    head.send_if_modified(|h| {
        let moved = position > *h;
        *h = (*h).max(position);
        moved
    });
}

/// A pool whose connections use `settings.schema`, created first if missing.
async fn connect(settings: &PgSettings, size: u32) -> Result<PgPool> {
    let mut options = PgConnectOptions::from_str(&settings.url).context("reading the PostgreSQL URL")?;
    if let Some(schema) = &settings.schema {
        anyhow::ensure!(
            !schema.is_empty() && schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database.schema must be letters, digits and underscores, not {schema:?}"
        );
        let bootstrap = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await
            .context("connecting to PostgreSQL")?;
        bootstrap.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str()).await.ok();
        bootstrap.close().await;
        options = options.options([("search_path", schema.as_str())]);
    }
    // A host that stalls inside a transaction (frozen, cut off) would hold the log head and
    // stop every host's appends: the server ends such sessions after 10 s.
    options = options.options([("idle_in_transaction_session_timeout", "10s")]);
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL")
}
