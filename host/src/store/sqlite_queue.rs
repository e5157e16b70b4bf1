//! [`CommandQueue`] on SQLite, through the registry's writable connection.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::sqlite::SqliteStore;
use super::{CommandQueue, QueuedCommand, StoreError, now_micros};

const COLUMNS: &str = "id, domain, command, payload, correlation_id, state, attempts, not_before, last_error, \
                       result_status, result";

fn job(row: &SqliteRow) -> QueuedCommand {
    QueuedCommand {
        id: row.get(0),
        domain: row.get(1),
        command: row.get(2),
        payload: row.get(3),
        correlation_id: row.get(4),
        state: row.get(5),
        attempts: row.get::<i64, _>(6) as u32,
        not_before_micros: row.get(7),
        last_error: row.get(8),
        result_status: row.get::<Option<i64>, _>(9).map(|s| s as u16),
        result: row.get(10),
    }
}

#[async_trait]
impl CommandQueue for SqliteStore {
    async fn enqueue(&self, j: &QueuedCommand) -> Result<(), StoreError> {
        let now = now_micros();
        sqlx::query(
            "INSERT INTO command_queue (id, domain, command, payload, correlation_id, state, attempts, not_before, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)",
        )
        .bind(&j.id)
        .bind(&j.domain)
        .bind(&j.command)
        .bind(&j.payload)
        .bind(&j.correlation_id)
        .bind(j.not_before_micros)
        .bind(now)
        .bind(now)
        .execute(&self.admin)
        .await?;
        Ok(())
    }

    async fn claim_due(&self, now: i64, limit: u32) -> Result<Vec<QueuedCommand>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE command_queue SET state = 'running', attempts = attempts + 1, updated_at = ? \
             WHERE id IN (SELECT id FROM command_queue WHERE state = 'queued' AND not_before <= ? \
                          ORDER BY not_before, id LIMIT ?) RETURNING {COLUMNS}"
        ))
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.admin)
        .await?;
        Ok(rows.iter().map(job).collect())
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
            "UPDATE command_queue SET state = ?, result_status = ?, result = ?, last_error = ?, \
             not_before = COALESCE(?, not_before), updated_at = ? WHERE id = ?",
        )
        .bind(state)
        .bind(status.map(i64::from))
        .bind(result)
        .bind(error)
        .bind(not_before)
        .bind(now_micros())
        .bind(id)
        .execute(&self.admin)
        .await?;
        Ok(())
    }

    async fn job(&self, id: &str) -> Result<Option<QueuedCommand>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM command_queue WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(job))
    }

    async fn dead_letters(&self) -> Result<Vec<QueuedCommand>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM command_queue WHERE state = 'failed' ORDER BY updated_at"))
                .fetch_all(&self.reads)
                .await?;
        Ok(rows.iter().map(job).collect())
    }

    async fn revive(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE command_queue SET state = 'queued', attempts = 0, not_before = ?, updated_at = ? \
             WHERE id = ? AND state = 'failed'",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&self.admin)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn discard(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM command_queue WHERE id = ? AND state = 'failed'")
            .bind(id)
            .execute(&self.admin)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn requeue_running(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE command_queue SET state = 'queued' WHERE state = 'running'")
            .execute(&self.admin)
            .await?;
        Ok(done.rows_affected())
    }
}
