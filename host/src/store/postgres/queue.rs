//! [`CommandQueue`] on PostgreSQL, where several hosts run jobs from one queue.
//!
//! A job is claimed by one host only: the claim locks the due rows with `FOR UPDATE SKIP LOCKED`
//! and marks them `running` in the same statement, so a racing claimer skips them instead of
//! waiting or taking them too.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::store::{CommandQueue, QueuedCommand, StoreError, now_micros};

/// The columns [`job`] reads, in order.
const COLUMNS: &str = "id, domain, command, payload, correlation_id, state, attempts, not_before, last_error, \
                       result_status, result";

/// How long a job may stay `running` before a starting host takes it for abandoned.
const ABANDONED_AFTER_MICROS: i64 = 5 * 60 * 1_000_000;

/// A [`QueuedCommand`] from a row of [`COLUMNS`].
fn job(row: &PgRow) -> Result<QueuedCommand, sqlx::Error> {
    Ok(QueuedCommand {
        id: row.try_get(0)?,
        domain: row.try_get(1)?,
        command: row.try_get(2)?,
        payload: row.try_get(3)?,
        correlation_id: row.try_get(4)?,
        state: row.try_get(5)?,
        attempts: u32::try_from(row.try_get::<i32, _>(6)?).unwrap_or_default(),
        not_before_micros: row.try_get(7)?,
        last_error: row.try_get(8)?,
        result_status: row.try_get::<Option<i32>, _>(9)?.and_then(|s| u16::try_from(s).ok()),
        result: row.try_get(10)?,
    })
}

/// Every row as a [`QueuedCommand`].
fn jobs(rows: &[PgRow]) -> Result<Vec<QueuedCommand>, StoreError> {
    Ok(rows.iter().map(job).collect::<Result<_, _>>()?)
}

#[async_trait]
impl CommandQueue for PgStore {
    async fn enqueue(&self, j: &QueuedCommand) -> Result<(), StoreError> {
        let now = now_micros();
        sqlx::query(
            "INSERT INTO command_queue (id, domain, command, payload, correlation_id, state, attempts, not_before, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $7)",
        )
        .bind(&j.id)
        .bind(&j.domain)
        .bind(&j.command)
        .bind(&j.payload)
        .bind(&j.correlation_id)
        .bind(j.not_before_micros)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_due(&self, now: i64, limit: u32) -> Result<Vec<QueuedCommand>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE command_queue SET state = 'running', attempts = attempts + 1, updated_at = $1 \
             WHERE id IN (SELECT id FROM command_queue WHERE state = 'queued' AND not_before <= $1 \
                          ORDER BY not_before, id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        // RETURNING follows no order: oldest first, as promised.
        let mut claimed = jobs(&rows)?;
        claimed.sort_by(|a, b| (a.not_before_micros, &a.id).cmp(&(b.not_before_micros, &b.id)));
        Ok(claimed)
    }

    async fn finish(
        &self,
        id: &str,
        state: &str,
        status: Option<u16>,
        result: Option<&str>,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let (state, not_before) = match retry_at {
            Some(at) => ("queued", Some(at)),
            None => (state, None),
        };
        sqlx::query(
            "UPDATE command_queue SET state = $1, result_status = $2, result = $3, last_error = $4, \
             not_before = COALESCE($5, not_before), updated_at = $6 WHERE id = $7",
        )
        .bind(state)
        .bind(status.map(i32::from))
        .bind(result)
        .bind(error)
        .bind(not_before)
        .bind(now_micros())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn job(&self, id: &str) -> Result<Option<QueuedCommand>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM command_queue WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job).transpose()?)
    }

    async fn dead_letters(&self) -> Result<Vec<QueuedCommand>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM command_queue WHERE state = 'failed' ORDER BY updated_at, id"))
                .fetch_all(&self.pool)
                .await?;
        jobs(&rows)
    }

    async fn revive(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE command_queue SET state = 'queued', attempts = 0, not_before = $1, updated_at = $1 \
             WHERE id = $2 AND state = 'failed'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn discard(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM command_queue WHERE id = $1 AND state = 'failed'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts back in the queue the jobs left `running` for more than five minutes (by their
    /// `updated_at`, set by the claim). Unlike on SQLite, other hosts share this queue and may be
    /// running jobs right now, so a starting host must not take every `running` job: only those
    /// whose host has most likely died. A job that was merely slow may so be taken twice; it is
    /// still applied once, since every run appends under the idempotency key `async-<id>`.
    async fn requeue_abandoned(&self) -> Result<u64, StoreError> {
        self.requeue_running().await
    }

    async fn requeue_running(&self) -> Result<u64, StoreError> {
        let now = now_micros();
        let done = sqlx::query(
            "UPDATE command_queue SET state = 'queued', updated_at = $1 WHERE state = 'running' AND updated_at < $2",
        )
        .bind(now)
        .bind(now - ABANDONED_AFTER_MICROS)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
