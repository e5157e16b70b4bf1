//! The plugin registry's persistence: immutable versions keyed by the sha256 of their bytes,
//! the active version per domain (changed only by compare-and-set), and the activation history.

use async_trait::async_trait;

use super::StoreError;

/// One stored plugin version (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginVersion {
    /// sha256 of the component, lowercase hex.
    pub digest: String,
    /// The domain it serves.
    pub domain: String,
    /// The semantic version `describe` reported.
    pub version: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// What `describe` reported, as JSON text.
    #[serde(skip)]
    pub description: String,
    /// Upload time, microseconds since the Unix epoch.
    pub uploaded_at_micros: i64,
}

/// One activation or rollback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Activation {
    /// The domain.
    pub domain: String,
    /// The version made active.
    pub digest: String,
    /// The version active before, if any.
    pub previous_digest: Option<String>,
    /// `activate` or `rollback`.
    pub action: String,
    /// When, microseconds since the Unix epoch.
    pub at_micros: i64,
}

/// What saving a version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// The version is new.
    Saved,
    /// These exact bytes were stored already (uploads are idempotent).
    AlreadyStored,
}

/// Why a registry write was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginStoreError {
    /// Another component already uses this semantic version of the domain.
    #[error("{domain} {version} is already taken by component {existing_digest}")]
    VersionTaken {
        /// Domain.
        domain: String,
        /// Semantic version.
        version: String,
        /// The component that has it.
        existing_digest: String,
    },
    /// The active version changed since the caller looked (a racing activation won).
    #[error("the active version of {domain} changed concurrently (now {actual:?})")]
    ActiveChanged {
        /// Domain.
        domain: String,
        /// What is active now.
        actual: Option<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PluginStoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Durable registry of plugin versions.
#[async_trait]
pub trait PluginStore: Send + Sync + 'static {
    /// Stores a version and its bytes; the same bytes again is [`SaveOutcome::AlreadyStored`].
    async fn save_version(&self, version: &PluginVersion, component: &[u8]) -> Result<SaveOutcome, PluginStoreError>;

    /// The bytes of a stored component.
    async fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every stored version of a domain, oldest first.
    async fn versions(&self, domain: &str) -> Result<Vec<PluginVersion>, StoreError>;

    /// The active digest of every domain.
    async fn active(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Makes `digest` active for `domain` if the active digest is still `expected`, and records
    /// the change in the history, atomically.
    async fn set_active(
        &self,
        domain: &str,
        digest: &str,
        expected: Option<&str>,
        action: &str,
    ) -> Result<Activation, PluginStoreError>;

    /// The activation history of a domain, oldest first.
    async fn activations(&self, domain: &str) -> Result<Vec<Activation>, StoreError>;

    /// Asks every host to compile `digest` now (it is about to be activated).
    async fn want(&self, _digest: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Versions of every domain uploaded or wanted in the last `within_micros` (several hosts:
    /// the ones to compile ahead of their activation; alone there is nothing to do).
    async fn recent_versions(&self, _within_micros: i64) -> Result<Vec<PluginVersion>, StoreError> {
        Ok(Vec::new())
    }

    /// Records that `host` has `digest` compiled and ready (several hosts; a no-op alone).
    async fn mark_loaded(&self, _host: &str, _digest: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// The live hosts (holding a `host:<id>` lease) that have not loaded `digest` yet.
    async fn hosts_without(&self, _digest: &str) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
}
