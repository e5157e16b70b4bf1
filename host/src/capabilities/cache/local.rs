//! The in-process cache backend (moka): one cache per domain, weighed in bytes against the
//! domain's quota, entries with their own TTL, tags kept beside the entries for invalidation.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;

use super::{CacheBackend, CacheStats, Counters};

#[derive(Clone)]
struct Entry {
    value: Arc<Vec<u8>>,
    ttl: Duration,
    tags: Arc<Vec<String>>,
    /// Which `set` wrote it: the tag index forgets a key only for the entry it indexed.
    generation: u64,
}

/// tag → key → generation of the entry that carries the tag.
type TagIndex = Arc<Mutex<HashMap<String, HashMap<String, u64>>>>;

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

struct DomainCache {
    entries: moka::sync::Cache<String, Entry>,
    tags: TagIndex,
}

/// Every domain's in-process cache.
pub struct LocalCache {
    quota_bytes: u64,
    generations: std::sync::atomic::AtomicU64,
    domains: Mutex<HashMap<String, Arc<DomainCache>>>,
    counters: Arc<Mutex<HashMap<String, Arc<Counters>>>>,
}

impl LocalCache {
    /// Caches of at most `quota_bytes` per domain (keys and values weighed).
    pub fn new(quota_bytes: u64) -> Self {
        Self { quota_bytes, generations: Default::default(), domains: Mutex::default(), counters: Arc::default() }
    }

    fn counters(&self, domain: &str) -> Arc<Counters> {
        self.counters.lock().expect("counters lock").entry(domain.to_string()).or_default().clone()
    }

    fn domain(&self, domain: &str) -> Arc<DomainCache> {
        // Counters first: `stats` takes the two locks in the other order.
        let counters = self.counters(domain);
        let mut domains = self.domains.lock().expect("domains lock");
        domains
            .entry(domain.to_string())
            .or_insert_with(|| {
                let tags: TagIndex = Arc::default();
                let untag = tags.clone();
                let entries = moka::sync::Cache::builder()
                    .max_capacity(self.quota_bytes)
                    .weigher(|key: &String, entry: &Entry| {
                        let tags: usize = entry.tags.iter().map(|t| t.len() + key.len()).sum();
                        (key.len() + entry.value.len() + tags).min(u32::MAX as usize) as u32
                    })
                    .expire_after(PerEntryTtl)
                    .eviction_listener(move |key: Arc<String>, entry: Entry, cause: RemovalCause| {
                        if cause == RemovalCause::Size {
                            counters.evictions.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut tags = untag.lock().expect("tags lock");
                        for tag in entry.tags.iter() {
                            if let Some(keys) = tags.get_mut(tag) {
                                // Only this entry's indexing: a newer `set` of the key keeps its own.
                                if keys.get(key.as_str()) == Some(&entry.generation) {
                                    keys.remove(key.as_str());
                                }
                                if keys.is_empty() {
                                    tags.remove(tag);
                                }
                            }
                        }
                    })
                    .build();
                Arc::new(DomainCache { entries, tags })
            })
            .clone()
    }
}

impl CacheBackend for LocalCache {
    fn get(&self, domain: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.domain(domain).entries.get(key).map(|e| e.value.as_ref().clone()))
    }

    fn set(&self, domain: &str, key: &str, value: Vec<u8>, ttl: Duration, tags: Vec<String>) -> Result<(), String> {
        let cache = self.domain(domain);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Entry { value: Arc::new(value), ttl, tags: Arc::new(tags.clone()), generation };
        // Insert first: replacing an entry runs the eviction listener on this thread, and it
        // takes the tag lock (it unindexes only the replaced entry's generation).
        cache.entries.insert(key.to_string(), entry);
        let mut index = cache.tags.lock().expect("tags lock");
        for tag in tags {
            index.entry(tag).or_default().insert(key.to_string(), generation);
        }
        Ok(())
    }

    fn delete(&self, domain: &str, key: &str) -> Result<bool, String> {
        Ok(self.domain(domain).entries.remove(key).is_some())
    }

    fn invalidate_tag(&self, domain: &str, tag: &str) -> Result<u32, String> {
        let cache = self.domain(domain);
        let keys: Vec<String> = cache
            .tags
            .lock()
            .expect("tags lock")
            .get(tag)
            .map(|keys| keys.keys().cloned().collect())
            .unwrap_or_default();
        let mut removed = 0;
        for key in keys {
            if cache.entries.remove(&key).is_some() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn stats(&self) -> Vec<CacheStats> {
        let counters = self.counters.lock().expect("counters lock");
        let domains = self.domains.lock().expect("domains lock");
        let mut out: Vec<CacheStats> = counters
            .iter()
            .map(|(domain, c)| {
                let cache = domains.get(domain);
                CacheStats {
                    domain: domain.clone(),
                    hits: c.hits.load(Ordering::Relaxed),
                    misses: c.misses.load(Ordering::Relaxed),
                    evictions: c.evictions.load(Ordering::Relaxed),
                    fills_coalesced: c.coalesced.load(Ordering::Relaxed),
                    entries: cache.map_or(0, |c| c.entries.entry_count()),
                    bytes: cache.map_or(0, |c| c.entries.weighted_size()),
                    quota_bytes: self.quota_bytes,
                }
            })
            .collect();
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        out
    }

    fn counters_for(&self, domain: &str) -> Arc<Counters> {
        self.counters(domain)
    }
}
