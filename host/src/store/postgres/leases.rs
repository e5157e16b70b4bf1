//! [`Leases`] on PostgreSQL, timed by the database's clock (hosts' clocks may disagree).

use std::time::Duration;

use async_trait::async_trait;

use super::PgStore;
use crate::store::{Leases, StoreError};

#[async_trait]
impl Leases for PgStore {
    /// One statement: insert, or take over when the lease is ours or has expired. The row lock
    /// of the upsert makes two hosts racing for an expired lease see one winner.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let won: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now() \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(ttl.as_millis() as f64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(won.is_some())
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1 AND expires_at >= now()")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }
}
