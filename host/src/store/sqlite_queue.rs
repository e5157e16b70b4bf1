//! [`CommandQueue`] on SQLite, through the registry's writable connection. One host owns a data
//! directory: leases matter only within it (a job whose renewals stopped), and a start puts
//! every job a crash left `running` back in the queue.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::sqlite::SqliteStore;
use super::{Claim, CommandQueue, QueuedCommand, StoreError, now_micros};

const COLUMNS: &str = "id, domain, command, payload, correlation_id, state, attempts, not_before, last_error, \
                       result_status, result, idempotency_key, request_hash";

/// The domains with a job a claim may take at `?1`, without reading every due job of a flooded
/// domain: a loose index scan walks the distinct domains of `(domain, state, not_before)` (one
/// probe per domain), one more probe of that index asks whether the domain has a due job, and
/// the `(state, lease_until)` index serves the lapsed leases. A plain `SELECT DISTINCT` over both
/// conditions read every due job on every poll.
const DUE_DOMAINS: &str = "WITH RECURSIVE d(domain) AS ( \
       SELECT min(domain) FROM command_queue \
       UNION ALL \
       SELECT (SELECT min(domain) FROM command_queue WHERE domain > d.domain) FROM d WHERE d.domain IS NOT NULL) \
     SELECT domain FROM d WHERE domain IS NOT NULL AND EXISTS (SELECT 1 FROM command_queue q \
       WHERE q.domain = d.domain AND q.state = 'queued' AND q.not_before <= ?1) \
     UNION SELECT domain FROM command_queue WHERE state = 'running' AND lease_until < ?1";

/// The two kinds of claimable jobs, each a condition the `(domain, state, not_before)` index
/// serves on its own (their disjunction would sort every due job of a flooded domain).
const LAPSED: &str = "state = 'running' AND lease_until < ?1";
const DUE: &str = "state = 'queued' AND not_before <= ?1";

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
        idempotency_key: row.get(11),
        request_hash: row.get(12),
    }
}

#[async_trait]
impl CommandQueue for SqliteStore {
    async fn enqueue(&self, j: &QueuedCommand) -> Result<Option<QueuedCommand>, StoreError> {
        let now = now_micros();
        // No conflict target: the only unique constraint an insert can meet is the key's index
        // (ids are fresh UUIDv7s).
        let inserted = sqlx::query(
            "INSERT INTO command_queue (id, domain, command, payload, correlation_id, state, attempts, not_before, \
             created_at, updated_at, idempotency_key, request_hash) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&j.id)
        .bind(&j.domain)
        .bind(&j.command)
        .bind(&j.payload)
        .bind(&j.correlation_id)
        .bind(j.not_before_micros)
        .bind(now)
        .bind(now)
        .bind(&j.idempotency_key)
        .bind(&j.request_hash)
        .execute(&self.admin)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(None);
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM command_queue WHERE domain = ? AND idempotency_key = ?"))
            .bind(&j.domain)
            .bind(&j.idempotency_key)
            .fetch_optional(&self.admin)
            .await?;
        row.as_ref()
            .map(job)
            .map(Some)
            .ok_or_else(|| StoreError(format!("the queued command `{}` was not stored", j.id)))
    }

    async fn due_domains(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query_scalar(DUE_DOMAINS).bind(now).fetch_all(&self.admin).await?;
        Ok(rows)
    }

    async fn claim_due(
        &self,
        claim: &Claim,
        domain: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QueuedCommand>, StoreError> {
        let mut claimed = Vec::new();
        // Jobs of dead claimers first: they have waited longest.
        for kind in [LAPSED, DUE] {
            let left = i64::from(limit) - claimed.len() as i64;
            if left <= 0 {
                break;
            }
            let of_domain = if domain.is_some() { "AND domain = ?4" } else { "AND ?4 IS NULL" };
            let rows = sqlx::query(&format!(
                "UPDATE command_queue SET state = 'running', updated_at = ?1, \
                 attempts = CASE WHEN state = 'running' AND claimed_by = ?2 THEN attempts ELSE attempts + 1 END, \
                 claimed_by = ?2, lease_until = ?3 WHERE id IN (SELECT id FROM command_queue WHERE {kind} \
                 {of_domain} ORDER BY not_before, id LIMIT ?5) RETURNING {COLUMNS}"
            ))
            .bind(claim.now_micros)
            .bind(&claim.owner)
            .bind(claim.lease_until_micros)
            .bind(domain)
            .bind(left)
            .fetch_all(&self.admin)
            .await?;
            claimed.extend(rows.iter().map(job));
        }
        claimed.sort_by(|a, b| (a.not_before_micros, &a.id).cmp(&(b.not_before_micros, &b.id)));
        Ok(claimed)
    }

    async fn renew(&self, owner: &str, ids: &[String], until: i64) -> Result<u64, StoreError> {
        let mut renewed = 0;
        for id in ids {
            renewed += sqlx::query(
                "UPDATE command_queue SET lease_until = ? WHERE id = ? AND claimed_by = ? AND state = 'running'",
            )
            .bind(until)
            .bind(id)
            .bind(owner)
            .execute(&self.admin)
            .await?
            .rows_affected();
        }
        Ok(renewed)
    }

    async fn release(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE command_queue SET state = 'queued', lease_until = NULL WHERE claimed_by = ? AND state = 'running'",
        )
        .bind(owner)
        .execute(&self.admin)
        .await?;
        Ok(done.rows_affected())
    }

    async fn finish(
        &self,
        owner: &str,
        id: &str,
        state: &str,
        status: Option<u16>,
        result: Option<&str>,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (state, not_before) = match retry_at {
            Some(at) => ("queued", Some(at)),
            None => (state, None),
        };
        let done = sqlx::query(
            "UPDATE command_queue SET state = ?, result_status = ?, result = ?, last_error = ?, \
             not_before = COALESCE(?, not_before), updated_at = ?, lease_until = NULL \
             WHERE id = ? AND claimed_by = ? AND state = 'running'",
        )
        .bind(state)
        .bind(status.map(i64::from))
        .bind(result)
        .bind(error)
        .bind(not_before)
        .bind(now_micros())
        .bind(id)
        .bind(owner)
        .execute(&self.admin)
        .await?;
        Ok(done.rows_affected() == 1)
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
        let done = sqlx::query("UPDATE command_queue SET state = 'queued', lease_until = NULL WHERE state = 'running'")
            .execute(&self.admin)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
#[path = "sqlite_queue_tests.rs"]
mod tests;
