//! The cache's component glue: [`HostCache`], the SDK's [`CacheBackend`] over the host's `cache`
//! import. Only [`crate::Cache`]'s default backend names it, so a component whose handlers never
//! use the cache does not import `cairn:domain/cache`.

use std::time::Duration;

use super::cairn::domain::cache as wit;
use crate::cache::{CacheBackend, CacheError, CacheLookup};

/// The host's cache, through the `cache` import.
pub(crate) struct HostCache;

fn error(e: wit::CacheError) -> CacheError {
    match e {
        wit::CacheError::NotGranted(m) => CacheError::NotGranted(m),
        wit::CacheError::Invalid(m) => CacheError::Invalid(m),
        wit::CacheError::TooLarge(m) => CacheError::TooLarge(m),
        wit::CacheError::Unavailable(m) => CacheError::Unavailable(m),
    }
}

fn millis(d: Duration) -> u32 {
    d.as_millis().clamp(1, u128::from(u32::MAX)) as u32
}

impl CacheBackend for HostCache {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        wit::get(key).map_err(error)
    }

    fn set(&mut self, key: &str, value: &[u8], ttl: Duration, tags: &[&str]) -> Result<(), CacheError> {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        wit::set(key, value, millis(ttl), &tags).map_err(error)
    }

    fn delete(&mut self, key: &str) -> Result<bool, CacheError> {
        wit::delete(key).map_err(error)
    }

    fn invalidate_tag(&mut self, tag: &str) -> Result<u32, CacheError> {
        wit::invalidate_tag(tag).map_err(error)
    }

    fn lookup(&mut self, key: &str, wait: Duration) -> Result<CacheLookup, CacheError> {
        match wit::get_or_fill(key, millis(wait)).map_err(error)? {
            wit::Lookup::Hit(value) => Ok(CacheLookup::Hit(value)),
            wit::Lookup::Fill => Ok(CacheLookup::Fill),
        }
    }
}
