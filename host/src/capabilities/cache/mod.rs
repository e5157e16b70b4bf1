//! `cairn:domain/cache` for command handlers: get, set with a TTL and tags, delete,
//! invalidate by tag, and `get-or-fill` with stampede protection, namespaced per domain with a
//! per-domain memory quota, behind [`CacheBackend`] (in-process moka: [`LocalCache`]).
//!
//! Stampede protection lives here, above the backend: the first caller that misses a key holds
//! its fill; the others wait (on their blocking threads, bounded by `wait-ms`) for the value it
//! sets. A filler whose call ends without setting (a rejection, a trap) releases the key and a
//! waiter takes over.

mod host;
mod local;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use self::local::LocalCache;

/// Hits, misses, evictions and coalesced fills of one domain.
#[derive(Debug, Default)]
pub struct Counters {
    /// Lookups that found a value.
    pub hits: AtomicU64,
    /// Lookups that found none.
    pub misses: AtomicU64,
    /// Entries the quota pushed out.
    pub evictions: AtomicU64,
    /// Callers that waited for another caller's fill instead of computing.
    pub coalesced: AtomicU64,
}

/// One domain's cache, for `GET /admin/v1/cache`.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    /// The domain.
    pub domain: String,
    /// Lookups that found a value.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// Entries pushed out by the quota.
    pub evictions: u64,
    /// Waiters served by another caller's fill.
    pub fills_coalesced: u64,
    /// Entries held (approximate).
    pub entries: u64,
    /// Bytes held (keys and values, approximate).
    pub bytes: u64,
    /// The domain's quota.
    pub quota_bytes: u64,
}

/// Where cached values live. Synchronous: plugin calls run on blocking threads.
pub trait CacheBackend: Send + Sync + 'static {
    /// The value under `key` of `domain`.
    fn get(&self, domain: &str, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Stores a value with a TTL and tags.
    fn set(&self, domain: &str, key: &str, value: Vec<u8>, ttl: Duration, tags: Vec<String>) -> Result<(), String>;
    /// Removes a key; true if it was there.
    fn delete(&self, domain: &str, key: &str) -> Result<bool, String>;
    /// Removes every entry tagged `tag`; how many.
    fn invalidate_tag(&self, domain: &str, tag: &str) -> Result<u32, String>;
    /// Every domain's figures.
    fn stats(&self) -> Vec<CacheStats>;
    /// A domain's counters.
    fn counters_for(&self, domain: &str) -> Arc<Counters>;
}

/// A key being filled: its value once set (`Some(None)`: the filler gave up).
#[derive(Default)]
struct Fill {
    done: Mutex<Option<Option<Vec<u8>>>>,
    ready: Condvar,
}

/// The cache with its fill coordinator.
pub struct Cache {
    backend: Arc<dyn CacheBackend>,
    quota_bytes: usize,
    fills: Mutex<HashMap<(String, String), Arc<Fill>>>,
}

/// What `get-or-fill` found, host side.
pub enum Lookup {
    /// A value.
    Hit(Vec<u8>),
    /// This caller fills.
    Fill,
}

impl Cache {
    /// A cache over `backend`; `quota_bytes` is the per-domain quota (a larger value is refused).
    pub fn new(backend: Arc<dyn CacheBackend>, quota_bytes: usize) -> Self {
        Self { backend, quota_bytes, fills: Mutex::default() }
    }

    /// Every domain's figures.
    pub fn stats(&self) -> Vec<CacheStats> {
        self.backend.stats()
    }

    fn get(&self, domain: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let value = self.backend.get(domain, key)?;
        let counters = self.backend.counters_for(domain);
        let counter = if value.is_some() { &counters.hits } else { &counters.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(value)
    }

    /// The value, or `Fill` for one caller among those that miss; `held` records the fills
    /// this caller holds.
    fn get_or_fill(&self, domain: &str, key: &str, wait: Duration, held: &mut Vec<String>) -> Result<Lookup, String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(value) = self.get(domain, key)? {
                return Ok(Lookup::Hit(value));
            }
            let id = (domain.to_string(), key.to_string());
            let fill = {
                let mut fills = self.fills.lock().expect("fills lock");
                match fills.get(&id) {
                    Some(fill) => fill.clone(),
                    None => {
                        fills.insert(id, Arc::default());
                        held.push(key.to_string());
                        return Ok(Lookup::Fill);
                    }
                }
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(Lookup::Fill); // waited long enough: compute alongside the filler
            }
            let done = fill.done.lock().expect("fill lock");
            let (done, _) = fill.ready.wait_timeout_while(done, deadline - now, |d| d.is_none()).expect("fill lock");
            if let Some(Some(value)) = done.as_ref() {
                self.backend.counters_for(domain).coalesced.fetch_add(1, Ordering::Relaxed);
                return Ok(Lookup::Hit(value.clone()));
            }
            // The filler gave up or time ran out: look again (and maybe fill).
        }
    }

    fn set(
        &self,
        domain: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: Vec<String>,
        held: &mut Vec<String>,
    ) -> Result<(), String> {
        self.backend.set(domain, key, value.clone(), ttl, tags)?;
        if let Some(i) = held.iter().position(|k| k == key) {
            held.swap_remove(i);
            self.release(domain, key, Some(value));
        }
        Ok(())
    }

    /// Ends a fill: wakes the waiters with the value, or with nothing (they look again).
    fn release(&self, domain: &str, key: &str, value: Option<Vec<u8>>) {
        let fill = self.fills.lock().expect("fills lock").remove(&(domain.to_string(), key.to_string()));
        if let Some(fill) = fill {
            *fill.done.lock().expect("fill lock") = Some(value);
            fill.ready.notify_all();
        }
    }
}

/// A `handle` call's access to the cache; releases the fills it still holds when the call ends.
pub struct CacheAccess {
    domain: String,
    cache: Arc<Cache>,
    held: Vec<String>,
}

impl CacheAccess {
    /// Access for `domain`.
    pub fn new(domain: &str, cache: Arc<Cache>) -> Self {
        Self { domain: domain.to_string(), cache, held: Vec::new() }
    }
}

impl Drop for CacheAccess {
    fn drop(&mut self) {
        for key in std::mem::take(&mut self.held) {
            self.cache.release(&self.domain, &key, None);
        }
    }
}
