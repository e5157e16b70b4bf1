//! [`EventStore`] on PostgreSQL: reads over the pool, appends through this host's writer task,
//! which group-commits whatever is waiting in one transaction serialised on the log head (see
//! the module above for why that keeps the global order gap-safe). The writer is in `writer`.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tokio::sync::{oneshot, watch};

use super::PgStore;
use crate::store::{
    AppendBatch, AppendError, AppendResult, EventPage, EventStore, IdempotencyRecord, LogSlice, Snapshot, StoreError,
    StoredEvent, pages, snapshots,
};

const EVENT_COLUMNS: &str = "domain, stream, version, position, event_type, data, metadata, recorded_at";

#[async_trait]
impl EventStore for PgStore {
    async fn read_stream(
        &self,
        domain: &str,
        stream: &str,
        from_version: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE domain = $1 AND stream = $2 AND version >= $3 \
             ORDER BY version LIMIT $4"
        ))
        .bind(domain)
        .bind(stream)
        .bind(from_version as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let rows = sqlx::query(&pages::stream_page_sql(pages::Backend::Postgres))
            .bind(domain)
            .bind(stream)
            .bind(from_version as i64)
            .bind(i64::from(limit))
            .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
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
        let rows = sqlx::query(&pages::domain_page_sql(pages::Backend::Postgres))
            .bind(domain)
            .bind(after.0)
            .bind(after.1 as i64)
            .bind(i64::from(limit))
            .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        let total = rows.first().map(|row| row.get::<i64, _>(8));
        Ok(pages::page(rows.iter().map(stored_event).collect(), total, limit))
    }

    async fn stream_head(&self, domain: &str, stream: &str) -> Result<u64, StoreError> {
        let v: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE domain = $1 AND stream = $2")
                .bind(domain)
                .bind(stream)
                .fetch_one(&self.pool)
                .await?;
        Ok(v as u64)
    }

    async fn append(&self, batch: AppendBatch) -> Result<AppendResult, AppendError> {
        batch.check()?;
        let (reply, answer) = oneshot::channel();
        let gone = || AppendError::Store(StoreError("the PostgreSQL writer has stopped".into()));
        self.writer.send(super::writer::WriteJob { batch, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn idempotency_record(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let mut found = idempotency_lookup(&self.pool, &[(scope.to_string(), key.to_string())]).await?;
        Ok(found.pop())
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
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| snapshots::loaded(&row, domain, stream, digest)))
    }

    async fn save_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), StoreError> {
        super::snapshots::save(&self.pool, &snapshots).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError("the PostgreSQL writer has stopped".into()));
        }
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await?;
        let expected = super::MIGRATOR.migrations.len();
        if (applied as usize) < expected {
            return Err(StoreError(format!("{applied} of {expected} migrations applied")));
        }
        Ok(())
    }

    fn check_writes(&self) -> Result<(), StoreError> {
        self.health.check()
    }

    /// The head and the events in one statement, so one snapshot: every event at or below the
    /// head it saw has committed (appends commit in position order, see the module docs).
    async fn read_log(&self, domain: &str, after: u64, limit: u32) -> Result<LogSlice, StoreError> {
        if limit == 0 {
            return Ok(LogSlice { events: Vec::new(), complete_to: after });
        }
        let rows = sqlx::query(&format!(
            "SELECT e.*, h.position AS head FROM event_log_head h LEFT JOIN LATERAL ( \
                SELECT {EVENT_COLUMNS} FROM events WHERE domain = $1 AND position > $2 AND position <= h.position \
                ORDER BY position LIMIT $3) e ON TRUE"
        ))
        .bind(domain)
        .bind(after as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let head = rows.first().map(|r| r.get::<i64, _>("head") as u64).unwrap_or_default();
        // Without events the one row has the head and no event (the LEFT JOIN's NULLs).
        let events: Vec<StoredEvent> =
            rows.iter().filter(|r| r.get::<Option<i64>, _>("position").is_some()).map(stored_event).collect();
        let complete_to = match events.last() {
            Some(last) if events.len() == limit as usize => last.position,
            _ => head.max(after),
        };
        Ok(LogSlice { events, complete_to })
    }

    async fn lag(&self, domain: &str, after: u64) -> Result<(u64, Option<i64>), StoreError> {
        let row = sqlx::query("SELECT COUNT(*), MIN(recorded_at) FROM events WHERE domain = $1 AND position > $2")
            .bind(domain)
            .bind(after as i64)
            .fetch_one(&self.pool)
            .await?;
        Ok((row.get::<i64, _>(0) as u64, row.get::<Option<i64>, _>(1)))
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }
}

/// A row of `SELECT {EVENT_COLUMNS}`.
fn stored_event(row: &PgRow) -> StoredEvent {
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

/// The stored records of these `(scope, key)` pairs.
pub(super) async fn idempotency_lookup<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    keys: &[(String, String)],
) -> Result<Vec<IdempotencyRecord>, sqlx::Error> {
    let (scopes, names): (Vec<&str>, Vec<&str>) = keys.iter().map(|(s, k)| (s.as_str(), k.as_str())).unzip();
    let rows = sqlx::query(
        "SELECT i.scope, i.key, i.request_hash, i.status, i.response FROM idempotency_keys i \
         JOIN unnest($1::text[], $2::text[]) AS k(scope, key) ON i.scope = k.scope AND i.key = k.key",
    )
    .bind(&scopes)
    .bind(&names)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .iter()
        .map(|row| IdempotencyRecord {
            scope: row.get(0),
            key: row.get(1),
            request_hash: row.get(2),
            status: row.get::<i32, _>(3) as u16,
            response: row.get(4),
        })
        .collect())
}
