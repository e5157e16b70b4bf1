//! `Host` impl of `cairn:domain/cache`.

use std::time::Duration;

use super::Lookup;
use crate::bindings::cache::{CacheError, Host, Lookup as WitLookup};
use crate::runtime::HostState;

/// Longest key or tag, in bytes.
const MAX_NAME: usize = 512;
/// Longest wait for another caller's fill.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Most tags on one entry.
const MAX_TAGS: usize = 16;

fn check(what: &str, name: &str) -> Result<(), CacheError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(CacheError::Invalid(format!("a {what} must be 1 to {MAX_NAME} bytes")));
    }
    Ok(())
}

fn unavailable(message: String) -> CacheError {
    CacheError::Unavailable(message)
}

impl HostState {
    fn cache_access(&mut self) -> Result<&mut super::CacheAccess, CacheError> {
        self.cache.as_mut().ok_or_else(|| {
            CacheError::NotGranted("only command handlers may use the cache, and only inside `handle`".into())
        })
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, CacheError> {
        check("key", &key)?;
        let access = self.cache_access()?;
        access.cache.get(&access.domain, &key).map_err(unavailable)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: u32, tags: Vec<String>) -> Result<(), CacheError> {
        check("key", &key)?;
        if tags.len() > MAX_TAGS {
            return Err(CacheError::Invalid(format!("an entry takes at most {MAX_TAGS} tags")));
        }
        for tag in &tags {
            check("tag", tag)?;
        }
        if ttl_ms == 0 {
            return Err(CacheError::Invalid("the TTL must be at least 1 ms".into()));
        }
        let access = self.cache_access()?;
        if value.len() + key.len() > access.cache.quota_bytes {
            return Err(CacheError::TooLarge(format!(
                "{} bytes do not fit the domain's cache quota of {} bytes",
                value.len(),
                access.cache.quota_bytes
            )));
        }
        let ttl = Duration::from_millis(u64::from(ttl_ms));
        access.cache.set(&access.domain, &key, value, ttl, tags, &mut access.held).map_err(unavailable)
    }

    fn delete(&mut self, key: String) -> Result<bool, CacheError> {
        check("key", &key)?;
        let access = self.cache_access()?;
        access.cache.backend.delete(&access.domain, &key).map_err(unavailable)
    }

    fn invalidate_tag(&mut self, tag: String) -> Result<u32, CacheError> {
        check("tag", &tag)?;
        let access = self.cache_access()?;
        access.cache.backend.invalidate_tag(&access.domain, &tag).map_err(unavailable)
    }

    fn get_or_fill(&mut self, key: String, wait_ms: u32) -> Result<WitLookup, CacheError> {
        check("key", &key)?;
        let access = self.cache_access()?;
        // Never wait past the plugin call's deadline (leave it a moment to compute).
        let left = access.deadline.saturating_duration_since(std::time::Instant::now()).mul_f64(0.5);
        let wait = Duration::from_millis(u64::from(wait_ms)).min(MAX_WAIT).min(left);
        let _span = tracing::debug_span!("cache.get_or_fill", domain = %access.domain).entered();
        match access.cache.get_or_fill(&access.domain, &key, wait, &mut access.held).map_err(unavailable)? {
            Lookup::Hit(value) => Ok(WitLookup::Hit(value)),
            Lookup::Fill => Ok(WitLookup::Fill),
        }
    }
}
