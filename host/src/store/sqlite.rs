//! The embedded SQLite backend (the default). One process owns a data directory (a lock file
//! says so). Reads go through a small pool; all writes go through one writer task that
//! **group-commits**: the appends waiting when a transaction starts are checked one by one
//! (expected versions, idempotency keys) and the accepted ones are written with multi-row
//! INSERTs in a single transaction, so one fsync serves many commands.
//!
//! Every write transaction is `BEGIN IMMEDIATE`: it takes the write lock up front (waiting
//! through `busy_timeout`), so a registry write on the other connection can never make a group
//! commit fail with a stale snapshot.
//!
//! The writer (group commit, recovery after a failed commit) is in `sqlite_writer`.
//!
//! Durability: WAL with `synchronous=FULL` by default. Group commit pays for the extra fsync, and
//! FULL does not lose acknowledged commands on power loss (NORMAL may); `database.sqlite_synchronous
//! = "normal"` trades that for commits that wait on no disk flush.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};

use super::sqlite_writer::{WriteJob, Writer};
use super::writer_health::WriterHealth;
use super::{
    AppendBatch, AppendError, AppendResult, EventPage, EventStore, IdempotencyRecord, LogSlice, Snapshot, StoreError,
    StoredEvent, pages, snapshots, sqlite_snapshots,
};

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// When SQLite syncs its write-ahead log (`database.sqlite_synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// On every commit: an answered command survives a power loss (the default).
    #[default]
    Full,
    /// At checkpoints: an answered command survives a crash of the process, not always a
    /// power loss.
    Normal,
}

/// SQLite event store over a data directory.
pub struct SqliteStore {
    pub(super) reads: SqlitePool,
    /// One writable connection for the rare registry writes (plugins, activations) and the
    /// snapshots saved outside any unit of work.
    pub(super) admin: SqlitePool,
    writer: mpsc::Sender<WriteJob>,
    head: watch::Receiver<u64>,
    health: Arc<WriterHealth>,
    _lock: File,
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/cairn.db`, applies migrations, starts the writer;
    /// every commit is synced ([`Durability::Full`]).
    pub async fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with(data_dir, Durability::Full).await
    }

    /// Like [`SqliteStore::open`], syncing as `durability` says.
    pub async fn open_with(data_dir: &Path, durability: Durability) -> Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let lock_path = data_dir.join("cairn.lock");
        let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
        lock.try_lock().map_err(|_| {
            anyhow::anyhow!("another Cairn host is using {}; one host per SQLite data directory", data_dir.display())
        })?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(data_dir.join("cairn.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(5));
        let mut conn = SqliteConnection::connect_with(&options).await.context("opening the SQLite database")?;
        let writes = options.clone();
        MIGRATOR.run(&mut conn).await.context("applying SQLite migrations")?;
        let admin = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .context("opening the SQLite registry connection")?;
        let reads = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .context("opening SQLite read connections")?;
        let last: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events").fetch_one(&mut conn).await?;
        let (head_tx, head) = watch::channel(last as u64);
        let (writer, jobs) = mpsc::channel(4096);
        let health = Arc::new(WriterHealth::default());
        let writer_health = health.clone();
        let conn = Some(conn);
        tokio::spawn(
            Writer { conn, options: writes, heads: HashMap::new(), head: head_tx, health: writer_health }.run(jobs),
        );
        Ok(Self { reads, admin, writer, head, health, _lock: lock })
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn read_stream(
        &self,
        domain: &str,
        stream: &str,
        from_version: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT domain, stream, version, position, event_type, data, metadata, recorded_at FROM events \
             WHERE domain = ? AND stream = ? AND version >= ? ORDER BY version LIMIT ?",
        )
        .bind(domain)
        .bind(stream)
        .bind(from_version as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.iter().map(stored_event).collect())
    }

    async fn read_stream_page(
        &self,
        domain: &str,
        stream: &str,
        from_version: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<EventPage, StoreError> {
        let rows = sqlx::query(&pages::stream_page_sql(pages::Backend::Sqlite))
            .bind(domain)
            .bind(stream)
            .bind(from_version as i64)
            .bind(i64::from(limit))
            .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
            .fetch_all(&self.reads)
            .await?;
        let total = rows.first().map(|row| row.get::<i64, _>(8));
        Ok(pages::page(rows.iter().map(stored_event).collect(), total, limit))
    }

    async fn read_domain_page(
        &self,
        domain: &str,
        after: (&str, u64),
        limit: u32,
        max_bytes: usize,
    ) -> Result<EventPage, StoreError> {
        let rows = sqlx::query(&pages::domain_page_sql(pages::Backend::Sqlite))
            .bind(domain)
            .bind(after.0)
            .bind(after.1 as i64)
            .bind(i64::from(limit))
            .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
            .fetch_all(&self.reads)
            .await?;
        let total = rows.first().map(|row| row.get::<i64, _>(8));
        Ok(pages::page(rows.iter().map(stored_event).collect(), total, limit))
    }

    async fn stream_head(&self, domain: &str, stream: &str) -> Result<u64, StoreError> {
        let v: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE domain = ? AND stream = ?")
            .bind(domain)
            .bind(stream)
            .fetch_one(&self.reads)
            .await?;
        Ok(v as u64)
    }

    async fn append(&self, batch: AppendBatch) -> Result<AppendResult, AppendError> {
        batch.check()?;
        let (reply, answer) = oneshot::channel();
        let gone = || AppendError::Store(StoreError("the SQLite writer has stopped".into()));
        self.writer.send(WriteJob { batch, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn idempotency_record(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(idempotency_lookup(&self.reads, scope, key).await?)
    }

    async fn load_snapshot(
        &self,
        domain: &str,
        stream: &str,
        digest: &str,
        at_most: u64,
    ) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(snapshots::LOAD)
            .bind(domain)
            .bind(stream)
            .bind(digest)
            .bind(snapshots::sql_version(at_most))
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.map(|row| snapshots::loaded(&row, domain, stream, digest)))
    }

    async fn save_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), StoreError> {
        sqlite_snapshots::save(&self.admin, &snapshots).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError("the SQLite writer has stopped".into()));
        }
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&self.reads).await?;
        if (applied as usize) < MIGRATOR.migrations.len() {
            return Err(StoreError(format!("{applied} of {} migrations applied", MIGRATOR.migrations.len())));
        }
        Ok(())
    }

    fn check_writes(&self) -> Result<(), StoreError> {
        self.health.check()
    }

    /// Gap-safe on SQLite: one writer at a time (the writer task, in `BEGIN IMMEDIATE`) takes the
    /// next position inside its transaction, so positions commit in order, and a read snapshot
    /// that sees position `p` sees every position below it. `complete_to` is the snapshot's
    /// `MAX(position)`, read in the same transaction as the events.
    async fn read_log(&self, domain: &str, after: u64, limit: u32) -> Result<LogSlice, StoreError> {
        let mut tx = self.reads.begin().await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events").fetch_one(&mut *tx).await?;
        let rows = sqlx::query(
            "SELECT domain, stream, version, position, event_type, data, metadata, recorded_at FROM events \
             WHERE domain = ? AND position > ? AND position <= ? ORDER BY position LIMIT ?",
        )
        .bind(domain)
        .bind(after as i64)
        .bind(head)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let events: Vec<StoredEvent> = rows.iter().map(stored_event).collect();
        let complete_to = match events.last() {
            Some(last) if events.len() == limit as usize => last.position,
            _ => (head as u64).max(after),
        };
        Ok(LogSlice { events, complete_to })
    }

    async fn lag(&self, domain: &str, after: u64) -> Result<(u64, Option<i64>), StoreError> {
        let row = sqlx::query("SELECT COUNT(*), MIN(recorded_at) FROM events WHERE domain = ? AND position > ?")
            .bind(domain)
            .bind(after as i64)
            .fetch_one(&self.reads)
            .await?;
        Ok((row.get::<i64, _>(0) as u64, row.get::<Option<i64>, _>(1)))
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }
}

/// A row of `SELECT domain, stream, version, position, event_type, data, metadata, recorded_at`.
fn stored_event(row: &sqlx::sqlite::SqliteRow) -> StoredEvent {
    StoredEvent {
        domain: row.get(0),
        stream: row.get(1),
        version: row.get::<i64, _>(2) as u64,
        position: row.get::<i64, _>(3) as u64,
        event_type: row.get(4),
        data: row.get(5),
        metadata: row.get(6),
        recorded_at_micros: row.get(7),
    }
}

pub(super) async fn idempotency_lookup<'e, E: sqlx::SqliteExecutor<'e>>(
    executor: E,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
    let row = sqlx::query("SELECT request_hash, status, response FROM idempotency_keys WHERE scope = ? AND key = ?")
        .bind(scope)
        .bind(key)
        .fetch_optional(executor)
        .await?;
    Ok(row.map(|row| IdempotencyRecord {
        scope: scope.to_string(),
        key: key.to_string(),
        request_hash: row.get(0),
        status: row.get::<i64, _>(1) as u16,
        response: row.get(2),
    }))
}
