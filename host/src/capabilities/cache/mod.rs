//! `cairn:domain/cache` for command handlers: get, set with a TTL and tags, delete,
//! invalidate by tag, and `get-or-fill` with stampede protection, namespaced per domain with a
//! per-domain memory quota, behind [`CacheBackend`]: in-process moka ([`LocalCache`], the
//! default) or Redis ([`RedisCache`], shared by several hosts).
//!
//! Stampede protection lives here, above the backend: the first caller that misses a key holds
//! its fill; the others wait (on their blocking threads, bounded by `wait-ms`) for the value it
//! sets. A filler whose call ends without setting (a rejection, a trap) releases the key and a
//! waiter takes over.

mod host;
mod local;
mod redis_backend;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use self::local::LocalCache;
pub use self::redis_backend::RedisCache;

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
        self.get_counted(domain, key, true)
    }

    /// A read; `count_miss` is false for a waiter's second look (its miss is already counted).
    fn get_counted(&self, domain: &str, key: &str, count_miss: bool) -> Result<Option<Vec<u8>>, String> {
        let value = self.backend.get(domain, key)?;
        let counters = self.backend.counters_for(domain);
        match &value {
            Some(_) => counters.hits.fetch_add(1, Ordering::Relaxed),
            None if count_miss => counters.misses.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
        Ok(value)
    }

    /// The value, or `Fill` for one caller among those that miss; `held` records the fills
    /// this caller holds.
    fn get_or_fill(&self, domain: &str, key: &str, wait: Duration, held: &mut Vec<String>) -> Result<Lookup, String> {
        if held.iter().any(|k| k == key) {
            return Ok(Lookup::Fill); // this caller already fills it: never wait on oneself
        }
        let deadline = Instant::now() + wait;
        let mut first = true;
        loop {
            if let Some(value) = self.get_counted(domain, key, first)? {
                return Ok(Lookup::Hit(value));
            }
            first = false;
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
        }
        // Whoever sets the key (the filler, or a waiter that gave up waiting) serves the waiters.
        self.release(domain, key, Some(value));
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
    /// When the plugin call's deadline passes: no wait runs past it.
    deadline: Instant,
}

impl CacheAccess {
    /// Access for `domain`, for a call that must end by `deadline`.
    pub fn new(domain: &str, cache: Arc<Cache>, deadline: Instant) -> Self {
        Self { domain: domain.to_string(), cache, held: Vec::new(), deadline }
    }
}

impl Drop for CacheAccess {
    fn drop(&mut self) {
        for key in std::mem::take(&mut self.held) {
            self.cache.release(&self.domain, &key, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Arc<Cache> {
        Arc::new(Cache::new(Arc::new(LocalCache::new(1 << 20)), 1 << 20))
    }

    #[test]
    fn a_key_set_again_keeps_its_tag() {
        let cache = cache();
        let ttl = Duration::from_secs(60);
        for round in 0..3 {
            let mut held = Vec::new();
            cache.set("d", "k", vec![round], ttl, vec!["t".into()], &mut held).unwrap();
        }
        assert_eq!(cache.backend.invalidate_tag("d", "t").unwrap(), 1);
        assert_eq!(cache.get("d", "k").unwrap(), None);
        assert_eq!(cache.get("other", "k").unwrap(), None, "domains do not share keys");
    }

    #[test]
    fn one_caller_fills_the_others_wait_for_its_value_and_a_filler_never_waits_on_itself() {
        let cache = cache();
        let mut held = Vec::new();
        assert!(matches!(cache.get_or_fill("d", "k", Duration::from_secs(5), &mut held).unwrap(), Lookup::Fill));
        let again = cache.get_or_fill("d", "k", Duration::from_secs(5), &mut held).unwrap();
        assert!(matches!(again, Lookup::Fill), "its own fill: no wait");
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    match cache.get_or_fill("d", "k", Duration::from_secs(5), &mut mine).unwrap() {
                        Lookup::Hit(value) => value,
                        Lookup::Fill => panic!("a second filler"),
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        cache.set("d", "k", b"v".to_vec(), Duration::from_secs(60), vec![], &mut held).unwrap();
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), b"v");
        }
        let stats = &cache.stats()[0];
        assert_eq!(stats.fills_coalesced + stats.hits, 8, "{stats:?}");
    }

    #[test]
    fn a_filler_that_gives_up_hands_the_fill_to_a_waiter() {
        let cache = cache();
        let access = CacheAccess::new("d", cache.clone(), Instant::now() + Duration::from_secs(5));
        let mut held = Vec::new();
        assert!(matches!(cache.get_or_fill("d", "k", Duration::from_secs(1), &mut held).unwrap(), Lookup::Fill));
        let mut access = access;
        access.held = held;
        let waiter = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.get_or_fill("d", "k", Duration::from_secs(5), &mut Vec::new()).unwrap())
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(access); // the call ended (say it trapped) without setting the key
        assert!(matches!(waiter.join().unwrap(), Lookup::Fill), "the waiter takes over");
    }
}
