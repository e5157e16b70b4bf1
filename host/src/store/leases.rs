//! Leases: work that must run on exactly one host at a time (the projection runners). A holder
//! renews its lease well before it expires; another host takes it over once it has expired, or
//! at once when the holder releases it at shutdown.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// Named leases in the database.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Takes or renews `name` for `holder` until `ttl` from now; false if another holder has it
    /// and it has not expired.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Gives `name` up if `holder` has it.
    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Who holds `name` now, if anyone (expired leases count as none).
    async fn holder(&self, name: &str) -> Result<Option<String>, StoreError>;
}

/// On SQLite one host owns the data directory (a lock file says so): it holds every lease.
pub struct SoleHost;

#[async_trait]
impl Leases for SoleHost {
    async fn acquire(&self, _name: &str, _holder: &str, _ttl: Duration) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn release(&self, _name: &str, _holder: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn holder(&self, _name: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
}
