//! [`Outbox`] on SQLite. Messages are inserted by the writer in the events' transaction (see
//! `sqlite.rs`); this side claims, finishes and manages them through the registry's writable
//! connection (`BEGIN IMMEDIATE`, so two workers never claim one message).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::sqlite::SqliteStore;
use super::{Outbox, OutboxMessage, OutboxOutcome, StoreError, now_micros};

const COLUMNS: &str = "id, domain, service, request, state, attempts, next_at, last_error";

fn message(row: &SqliteRow) -> Result<OutboxMessage, StoreError> {
    let request: String = row.get(3);
    Ok(OutboxMessage {
        id: row.get(0),
        domain: row.get(1),
        service: row.get(2),
        request: serde_json::from_str(&request).map_err(|e| StoreError(format!("an outbox request: {e}")))?,
        state: row.get(4),
        attempts: row.get::<i64, _>(5) as u32,
        next_at_micros: row.get(6),
        last_error: row.get(7),
    })
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim_due(&self, now: i64, lease: i64, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut tx = self.admin.begin_with("BEGIN IMMEDIATE").await?;
        // Delivered messages are kept a day for inspection, then dropped.
        sqlx::query("DELETE FROM gateway_outbox WHERE state = 'done' AND updated_at < ?")
            .bind(now - 86_400_000_000)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM gateway_outbox WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let messages = rows.iter().map(message).collect::<Result<Vec<_>, _>>()?;
        for m in &messages {
            sqlx::query("UPDATE gateway_outbox SET next_at = ?, updated_at = ? WHERE id = ?")
                .bind(now + lease)
                .bind(now)
                .bind(&m.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(messages)
    }

    async fn finish(&self, id: &str, outcome: OutboxOutcome) -> Result<(), StoreError> {
        let now = now_micros();
        let (state, next_at, error, counted) = match outcome {
            OutboxOutcome::Done => ("done", now, None, 1),
            OutboxOutcome::Retry { at_micros, error } => ("pending", at_micros, Some(error), 1),
            OutboxOutcome::Postpone { at_micros } => ("pending", at_micros, None, 0),
            OutboxOutcome::Dead { error } => ("dead", now, Some(error), 1),
        };
        sqlx::query(
            "UPDATE gateway_outbox SET state = ?, attempts = attempts + ?, next_at = ?, \
             last_error = COALESCE(?, last_error), updated_at = ? WHERE id = ?",
        )
        .bind(state)
        .bind(counted)
        .bind(next_at)
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(&self.admin)
        .await?;
        Ok(())
    }

    async fn release(&self, claims: &[(String, i64)], now: i64) -> Result<u64, StoreError> {
        let mut released = 0;
        for (id, lease_end) in claims {
            released += sqlx::query("UPDATE gateway_outbox SET next_at = ?, updated_at = ? WHERE id = ? AND state = 'pending' AND next_at = ?")
                .bind(now)
                .bind(now)
                .bind(id)
                .bind(lease_end)
                .execute(&self.admin)
                .await?
                .rows_affected();
        }
        Ok(released)
    }

    async fn message(&self, id: &str) -> Result<Option<OutboxMessage>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM gateway_outbox WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
        row.as_ref().map(message).transpose()
    }

    async fn dead_letters(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM gateway_outbox WHERE state = 'dead' ORDER BY updated_at, id"))
                .fetch_all(&self.reads)
                .await?;
        rows.iter().map(message).collect()
    }

    async fn retry(&self, id: &str) -> Result<bool, StoreError> {
        let now = now_micros();
        let done = sqlx::query(
            "UPDATE gateway_outbox SET state = 'pending', attempts = 0, next_at = ?, updated_at = ? \
             WHERE id = ? AND state = 'dead'",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&self.admin)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn discard(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM gateway_outbox WHERE id = ? AND state = 'dead'")
            .bind(id)
            .execute(&self.admin)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
