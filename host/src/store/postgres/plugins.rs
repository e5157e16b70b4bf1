//! [`PluginStore`] on PostgreSQL, shared by every host of the database.
//!
//! Uploads are idempotent across hosts: `INSERT ... ON CONFLICT DO NOTHING`, then a re-check
//! tells a concurrent identical upload ([`SaveOutcome::AlreadyStored`]) from a clash of versions
//! ([`PluginStoreError::VersionTaken`]). The active version changes by a guarded write (an
//! `UPDATE ... WHERE digest = expected`, or an `INSERT ... ON CONFLICT DO NOTHING` when nothing
//! is expected): PostgreSQL re-checks the guard once a racing writer has committed, so of two
//! activations from the same starting point exactly one wins, on any host. The same transaction
//! records the history and sends `NOTIFY cairn_registry, '<domain>'`, delivered at commit.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::store::{Activation, PluginStore, PluginStoreError, PluginVersion, SaveOutcome, StoreError, now_micros};

/// The channel on which registry changes are announced (the payload is the domain).
const REGISTRY_CHANNEL: &str = "cairn_registry";

#[async_trait]
impl PluginStore for PgStore {
    async fn save_version(&self, version: &PluginVersion, component: &[u8]) -> Result<SaveOutcome, PluginStoreError> {
        // Look first, so an idempotent re-upload does not ship the bytes to the database again.
        if let Some(outcome) = self.already_saved(version).await? {
            return Ok(outcome);
        }
        let size = i64::try_from(component.len()).map_err(|_| StoreError("a component too large".into()))?;
        // Other hosts hear of the new version at once and compile it ahead of its activation.
        let inserted = sqlx::query(
            "WITH stored AS (INSERT INTO plugin_versions \
                (digest, domain, version, component, size, description, uploaded_at) \
                VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING domain) \
             SELECT pg_notify($8, domain) FROM stored",
        )
        .bind(&version.digest)
        .bind(&version.domain)
        .bind(&version.version)
        .bind(component)
        .bind(size)
        .bind(&version.description)
        .bind(version.uploaded_at_micros)
        .bind(REGISTRY_CHANNEL)
        .fetch_optional(&self.pool)
        .await?;
        if inserted.is_some() {
            return Ok(SaveOutcome::Saved);
        }
        // Another host stored a clashing row between our look and our insert.
        match self.already_saved(version).await? {
            Some(outcome) => Ok(outcome),
            None => {
                Err(StoreError(format!("storing {} {} conflicted with no row", version.domain, version.version)).into())
            }
        }
    }

    async fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar("SELECT component FROM plugin_versions WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn versions(&self, domain: &str) -> Result<Vec<PluginVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest, domain, version, size, description, uploaded_at FROM plugin_versions \
             WHERE domain = $1 ORDER BY uploaded_at, digest",
        )
        .bind(domain)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(version_from_row).collect::<Result<_, _>>()?)
    }

    async fn recent_versions(&self, within_micros: i64) -> Result<Vec<PluginVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest, domain, version, size, description, uploaded_at FROM plugin_versions \
             WHERE GREATEST(uploaded_at, COALESCE(wanted_at, 0)) >= \
                (extract(epoch FROM clock_timestamp()) * 1000000)::bigint - $1 \
             ORDER BY uploaded_at, digest",
        )
        // The database's clock rather than this host's (the uploading host's time is stored).
        .bind(within_micros)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(version_from_row).collect::<Result<_, _>>()?)
    }

    async fn active(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT domain, digest FROM active_plugins ORDER BY domain").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?)
    }

    async fn set_active(
        &self,
        domain: &str,
        digest: &str,
        expected: Option<&str>,
        action: &str,
    ) -> Result<Activation, PluginStoreError> {
        let at_micros = now_micros();
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        let written = match expected {
            None => sqlx::query(
                "INSERT INTO active_plugins (domain, digest, activated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (domain) DO NOTHING",
            )
            .bind(domain)
            .bind(digest)
            .bind(at_micros)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            Some(expected) => sqlx::query(
                "UPDATE active_plugins SET digest = $2, activated_at = $3 WHERE domain = $1 AND digest = $4",
            )
            .bind(domain)
            .bind(digest)
            .bind(at_micros)
            .bind(expected)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        };
        if written != 1 {
            // A racing activation won (or the caller looked at a stale state): say what is active.
            let actual: Option<String> = sqlx::query_scalar("SELECT digest FROM active_plugins WHERE domain = $1")
                .bind(domain)
                .fetch_optional(&mut *tx)
                .await?;
            tx.rollback().await?;
            return Err(PluginStoreError::ActiveChanged { domain: domain.to_string(), actual });
        }
        let previous_digest = expected.map(str::to_string);
        sqlx::query(
            "INSERT INTO plugin_activations (domain, digest, previous_digest, action, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(domain)
        .bind(digest)
        .bind(&previous_digest)
        .bind(action)
        .bind(at_micros)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)").bind(REGISTRY_CHANNEL).bind(domain).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Activation {
            domain: domain.to_string(),
            digest: digest.to_string(),
            previous_digest,
            action: action.to_string(),
            at_micros,
        })
    }

    async fn want(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query(
            "WITH wanted AS (UPDATE plugin_versions \
                SET wanted_at = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint \
                WHERE digest = $1 RETURNING domain) \
             SELECT pg_notify($2, domain) FROM wanted",
        )
        .bind(digest)
        .bind(REGISTRY_CHANNEL)
        .fetch_optional(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_loaded(&self, host: &str, digest: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO host_plugins (host, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(host)
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn hosts_without(&self, digest: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT substr(l.name, 6) FROM leases l WHERE l.name LIKE 'host:%' AND l.expires_at >= now() \
             AND NOT EXISTS (SELECT 1 FROM host_plugins h WHERE h.host = substr(l.name, 6) AND h.digest = $1) \
             ORDER BY 1",
        )
        .bind(digest)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn activations(&self, domain: &str) -> Result<Vec<Activation>, StoreError> {
        let rows = sqlx::query(
            "SELECT domain, digest, previous_digest, action, at FROM plugin_activations WHERE domain = $1 ORDER BY id",
        )
        .bind(domain)
        .fetch_all(&self.pool)
        .await?;
        let activation = |r: &PgRow| -> Result<Activation, sqlx::Error> {
            Ok(Activation {
                domain: r.try_get(0)?,
                digest: r.try_get(1)?,
                previous_digest: r.try_get(2)?,
                action: r.try_get(3)?,
                at_micros: r.try_get(4)?,
            })
        };
        Ok(rows.iter().map(activation).collect::<Result<_, _>>()?)
    }
}

impl PgStore {
    /// [`SaveOutcome::AlreadyStored`] if a row holds `version`'s digest,
    /// [`PluginStoreError::VersionTaken`] if another digest holds its (domain, version), else `None`.
    async fn already_saved(&self, version: &PluginVersion) -> Result<Option<SaveOutcome>, PluginStoreError> {
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT digest FROM plugin_versions WHERE digest = $1 OR (domain = $2 AND version = $3)",
        )
        .bind(&version.digest)
        .bind(&version.domain)
        .bind(&version.version)
        .fetch_all(&self.pool)
        .await?;
        if existing.contains(&version.digest) {
            return Ok(Some(SaveOutcome::AlreadyStored));
        }
        match existing.into_iter().next() {
            Some(existing_digest) => Err(PluginStoreError::VersionTaken {
                domain: version.domain.clone(),
                version: version.version.clone(),
                existing_digest,
            }),
            None => Ok(None),
        }
    }
}

/// A [`PluginVersion`] from `digest, domain, version, size, description, uploaded_at`.
fn version_from_row(row: &PgRow) -> Result<PluginVersion, sqlx::Error> {
    Ok(PluginVersion {
        digest: row.try_get(0)?,
        domain: row.try_get(1)?,
        version: row.try_get(2)?,
        size: u64::try_from(row.try_get::<i64, _>(3)?).unwrap_or_default(),
        description: row.try_get(4)?,
        uploaded_at_micros: row.try_get(5)?,
    })
}
