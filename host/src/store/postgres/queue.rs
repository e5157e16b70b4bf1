//! [`CommandQueue`] on PostgreSQL, where several hosts run jobs from one queue.
//!
//! A job is claimed by one host only: the claim locks the claimable rows with `FOR UPDATE SKIP
//! LOCKED` and marks them `running` under the claimer's lease in the same statement, so a racing
//! claimer skips them instead of waiting or taking them too. The claimer renews the lease while
//! the job runs; when a host dies its leases run out and another host claims its jobs within
//! seconds. A rerun appends under the job's idempotency key `async-<id>`, so it is applied once.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::store::{Claim, CommandQueue, QueuedCommand, StoreError, now_micros};

/// The columns [`job`] reads, in order.
const COLUMNS: &str = "id, domain, command, payload, correlation_id, state, attempts, not_before, last_error, \
                       result_status, result, idempotency_key, request_hash";

/// Jobs a claim may take at `$1`, in two kinds, each a condition an index serves on its own
/// (their disjunction would sort every due job of a flooded domain): running under a lease that
/// ended (a job a host of an earlier version claimed has no lease: five minutes after its claim),
/// and due and queued.
const LAPSED: &str = "state = 'running' AND COALESCE(lease_until, updated_at + 300000000) < $1";
const DUE: &str = "state = 'queued' AND not_before <= $1";

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
        idempotency_key: row.try_get(11)?,
        request_hash: row.try_get(12)?,
    })
}

/// Every row as a [`QueuedCommand`].
fn jobs(rows: &[PgRow]) -> Result<Vec<QueuedCommand>, StoreError> {
    Ok(rows.iter().map(job).collect::<Result<_, _>>()?)
}

#[async_trait]
impl CommandQueue for PgStore {
    async fn enqueue(&self, j: &QueuedCommand) -> Result<Option<QueuedCommand>, StoreError> {
        let now = now_micros();
        // No conflict target: the only unique constraint an insert can meet is the key's index
        // (ids are fresh UUIDv7s). A concurrent twin's insert is waited for, then skipped.
        let inserted = sqlx::query(
            "INSERT INTO command_queue (id, domain, command, payload, correlation_id, state, attempts, not_before, \
             created_at, updated_at, idempotency_key, request_hash) \
             VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(&j.id)
        .bind(&j.domain)
        .bind(&j.command)
        .bind(&j.payload)
        .bind(&j.correlation_id)
        .bind(j.not_before_micros)
        .bind(now)
        .bind(&j.idempotency_key)
        .bind(&j.request_hash)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(None);
        }
        let row =
            sqlx::query(&format!("SELECT {COLUMNS} FROM command_queue WHERE domain = $1 AND idempotency_key = $2"))
                .bind(&j.domain)
                .bind(&j.idempotency_key)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(row) => Ok(Some(job(&row)?)),
            None => Err(StoreError(format!("the queued command `{}` was not stored", j.id))),
        }
    }

    /// A loose index scan over `(domain, state, not_before)`: one index probe per domain with due
    /// jobs, however many jobs a domain has queued (a plain `DISTINCT` would read every due job
    /// of a flooded domain on every poll), and the domains of lapsed leases.
    async fn due_domains(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query_scalar(&format!(
            "WITH RECURSIVE d AS ( \
               (SELECT domain FROM command_queue WHERE {DUE} ORDER BY domain LIMIT 1) \
               UNION ALL \
               SELECT (SELECT domain FROM command_queue WHERE domain > d.domain AND {DUE} ORDER BY domain LIMIT 1) \
               FROM d WHERE d.domain IS NOT NULL) \
             SELECT domain FROM d WHERE domain IS NOT NULL \
             UNION SELECT domain FROM command_queue WHERE {LAPSED}"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
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
            // Two statements, not `($4 IS NULL OR domain = $4)`: a generic plan of that could not
            // use the domain's index.
            let of_domain = if domain.is_some() { "AND domain = $4" } else { "AND $4::TEXT IS NULL" };
            let rows = sqlx::query(&format!(
                "UPDATE command_queue SET state = 'running', updated_at = $1, \
                 attempts = CASE WHEN state = 'running' AND claimed_by = $2 THEN attempts ELSE attempts + 1 END, \
                 claimed_by = $2, lease_until = $3 WHERE id IN (SELECT id FROM command_queue WHERE {kind} \
                 {of_domain} ORDER BY not_before, id LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}"
            ))
            .bind(claim.now_micros)
            .bind(&claim.owner)
            .bind(claim.lease_until_micros)
            .bind(domain)
            .bind(left)
            .fetch_all(&self.pool)
            .await?;
            claimed.extend(jobs(&rows)?);
        }
        // RETURNING follows no order: oldest first, as promised.
        claimed.sort_by(|a, b| (a.not_before_micros, &a.id).cmp(&(b.not_before_micros, &b.id)));
        Ok(claimed)
    }

    async fn renew(&self, owner: &str, ids: &[String], until: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE command_queue SET lease_until = $1 WHERE id = ANY($2) AND claimed_by = $3 AND state = 'running'",
        )
        .bind(until)
        .bind(ids)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn release(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE command_queue SET state = 'queued', lease_until = NULL WHERE claimed_by = $1 AND state = 'running'",
        )
        .bind(owner)
        .execute(&self.pool)
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
            "UPDATE command_queue SET state = $1, result_status = $2, result = $3, last_error = $4, \
             not_before = COALESCE($5, not_before), updated_at = $6, lease_until = NULL \
             WHERE id = $7 AND claimed_by = $8 AND state = 'running'",
        )
        .bind(state)
        .bind(status.map(i32::from))
        .bind(result)
        .bind(error)
        .bind(not_before)
        .bind(now_micros())
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
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

    /// Nothing: other hosts share this queue and may be running its `running` jobs right now.
    /// The jobs of a host that died are claimed again once their leases run out.
    async fn requeue_running(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}
