//! [`PluginStore`] on SQLite. Registry writes are rare and go through one writable connection
//! in `BEGIN IMMEDIATE` transactions, so a compare-and-set of the active version cannot race.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::sqlite::SqliteStore;
use super::{Activation, PluginStore, PluginStoreError, PluginVersion, SaveOutcome, StoreError, now_micros};

#[async_trait]
impl PluginStore for SqliteStore {
    async fn save_version(&self, version: &PluginVersion, component: &[u8]) -> Result<SaveOutcome, PluginStoreError> {
        let mut tx = self.admin.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT digest FROM plugin_versions WHERE digest = ? OR (domain = ? AND version = ?)")
                .bind(&version.digest)
                .bind(&version.domain)
                .bind(&version.version)
                .fetch_optional(&mut *tx)
                .await?;
        match existing {
            Some(digest) if digest == version.digest => return Ok(SaveOutcome::AlreadyStored),
            Some(existing_digest) => {
                return Err(PluginStoreError::VersionTaken {
                    domain: version.domain.clone(),
                    version: version.version.clone(),
                    existing_digest,
                });
            }
            None => {}
        }
        sqlx::query(
            "INSERT INTO plugin_versions (digest, domain, version, component, size, description, uploaded_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&version.digest)
        .bind(&version.domain)
        .bind(&version.version)
        .bind(component)
        .bind(component.len() as i64)
        .bind(&version.description)
        .bind(version.uploaded_at_micros)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SaveOutcome::Saved)
    }

    async fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar("SELECT component FROM plugin_versions WHERE digest = ?")
            .bind(digest)
            .fetch_optional(&self.reads)
            .await?)
    }

    async fn versions(&self, domain: &str) -> Result<Vec<PluginVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest, domain, version, size, description, uploaded_at FROM plugin_versions \
             WHERE domain = ? ORDER BY uploaded_at, digest",
        )
        .bind(domain)
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.iter().map(version_from_row).collect())
    }

    async fn active(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT domain, digest FROM active_plugins ORDER BY domain").fetch_all(&self.reads).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn set_active(
        &self,
        domain: &str,
        digest: &str,
        expected: Option<&str>,
        action: &str,
    ) -> Result<Activation, PluginStoreError> {
        let mut tx = self.admin.begin_with("BEGIN IMMEDIATE").await?;
        let actual: Option<String> = sqlx::query_scalar("SELECT digest FROM active_plugins WHERE domain = ?")
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?;
        if actual.as_deref() != expected {
            return Err(PluginStoreError::ActiveChanged { domain: domain.to_string(), actual });
        }
        let at_micros = now_micros();
        sqlx::query(
            "INSERT INTO active_plugins (domain, digest, activated_at) VALUES (?, ?, ?) \
             ON CONFLICT (domain) DO UPDATE SET digest = excluded.digest, activated_at = excluded.activated_at",
        )
        .bind(domain)
        .bind(digest)
        .bind(at_micros)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO plugin_activations (domain, digest, previous_digest, action, at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(domain)
        .bind(digest)
        .bind(&actual)
        .bind(action)
        .bind(at_micros)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Activation {
            domain: domain.to_string(),
            digest: digest.to_string(),
            previous_digest: actual,
            action: action.to_string(),
            at_micros,
        })
    }

    async fn activations(&self, domain: &str) -> Result<Vec<Activation>, StoreError> {
        let rows = sqlx::query(
            "SELECT domain, digest, previous_digest, action, at FROM plugin_activations WHERE domain = ? ORDER BY id",
        )
        .bind(domain)
        .fetch_all(&self.reads)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Activation {
                domain: r.get(0),
                digest: r.get(1),
                previous_digest: r.get(2),
                action: r.get(3),
                at_micros: r.get(4),
            })
            .collect())
    }
}

fn version_from_row(row: &SqliteRow) -> PluginVersion {
    PluginVersion {
        digest: row.get(0),
        domain: row.get(1),
        version: row.get(2),
        size: row.get::<i64, _>(3) as u64,
        description: row.get(4),
        uploaded_at_micros: row.get(5),
    }
}
