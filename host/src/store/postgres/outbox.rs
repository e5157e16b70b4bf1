//! [`Outbox`] on PostgreSQL, where the workers of several hosts share one outbox. Messages are
//! inserted by the append, in the events' transaction (see `events.rs`); this side claims,
//! finishes and manages them.
//!
//! A claim locks the due rows with `FOR UPDATE SKIP LOCKED` and pushes their `next_at` past the
//! lease in the same statement, so two workers, on one host or two, never claim one message.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::store::{Outbox, OutboxMessage, OutboxOutcome, StoreError, now_micros};

/// The columns [`message`] reads, in order (qualified: the claim joins the table with its due rows).
const COLUMNS: &str = "o.id, o.domain, o.service, o.request, o.state, o.attempts, o.next_at, o.last_error";

/// How long delivered messages are kept for inspection before a claim drops them.
const KEEP_DONE_MICROS: i64 = 86_400_000_000;

/// An [`OutboxMessage`] from a row of [`COLUMNS`].
fn message(row: &PgRow) -> Result<OutboxMessage, StoreError> {
    let request: String = row.try_get(3)?;
    Ok(OutboxMessage {
        id: row.try_get(0)?,
        domain: row.try_get(1)?,
        service: row.try_get(2)?,
        request: serde_json::from_str(&request).map_err(|e| StoreError(format!("an outbox request: {e}")))?,
        state: row.try_get(4)?,
        attempts: u32::try_from(row.try_get::<i32, _>(5)?).unwrap_or_default(),
        next_at_micros: row.try_get(6)?,
        last_error: row.try_get(7)?,
    })
}

#[async_trait]
impl Outbox for PgStore {
    async fn claim_due(&self, now: i64, lease: i64, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
        sqlx::query("DELETE FROM gateway_outbox WHERE state = 'done' AND updated_at < $1")
            .bind(now - KEEP_DONE_MICROS)
            .execute(&self.pool)
            .await?;
        // The messages are returned with the `next_at` they were due at, not the lease's end.
        let rows = sqlx::query(&format!(
            "WITH due AS (SELECT id, next_at FROM gateway_outbox WHERE state = 'pending' AND next_at <= $1 \
                          ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE gateway_outbox o SET next_at = $2, updated_at = $1 FROM due WHERE o.id = due.id \
             RETURNING {COLUMNS}, due.next_at"
        ))
        .bind(now)
        .bind(now.saturating_add(lease))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut m = message(row)?;
            m.next_at_micros = row.try_get(8)?;
            claimed.push(m);
        }
        // RETURNING follows no order: oldest first, as promised.
        claimed.sort_by(|a, b| (a.next_at_micros, &a.id).cmp(&(b.next_at_micros, &b.id)));
        Ok(claimed)
    }

    async fn finish(&self, id: &str, outcome: OutboxOutcome) -> Result<(), StoreError> {
        let now = now_micros();
        let (state, next_at, error, counted) = match outcome {
            OutboxOutcome::Done => ("done", now, None, 1_i32),
            OutboxOutcome::Retry { at_micros, error } => ("pending", at_micros, Some(error), 1),
            OutboxOutcome::Postpone { at_micros } => ("pending", at_micros, None, 0),
            OutboxOutcome::Dead { error } => ("dead", now, Some(error), 1),
        };
        sqlx::query(
            "UPDATE gateway_outbox SET state = $1, attempts = attempts + $2, next_at = $3, \
             last_error = COALESCE($4, last_error), updated_at = $5 WHERE id = $6",
        )
        .bind(state)
        .bind(counted)
        .bind(next_at)
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release(&self, claims: &[(String, i64)], now: i64) -> Result<u64, StoreError> {
        let mut released = 0;
        for (id, lease_end) in claims {
            released += sqlx::query("UPDATE gateway_outbox SET next_at = $1, updated_at = $1 WHERE id = $2 AND state = 'pending' AND next_at = $3")
                .bind(now)
                .bind(id)
                .bind(lease_end)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(released)
    }

    async fn message(&self, id: &str) -> Result<Option<OutboxMessage>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM gateway_outbox o WHERE o.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message).transpose()
    }

    async fn dead_letters(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM gateway_outbox o WHERE o.state = 'dead' ORDER BY o.updated_at, o.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message).collect()
    }

    async fn retry(&self, id: &str) -> Result<bool, StoreError> {
        let now = now_micros();
        let done = sqlx::query(
            "UPDATE gateway_outbox SET state = 'pending', attempts = 0, next_at = $1, updated_at = $1 \
             WHERE id = $2 AND state = 'dead'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn discard(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM gateway_outbox WHERE id = $1 AND state = 'dead'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
