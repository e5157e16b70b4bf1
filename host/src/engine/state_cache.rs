//! The folded states of recently used streams, kept in memory so a command on a stream the host
//! has seen reads nothing from the store: the plugin gets the state and the command in one
//! boundary crossing (`cairn:domain/aggregate-state`, 0.1.2).
//!
//! An entry is the state a plugin build returned for one stream at one version, keyed by
//! (domain, stream) and valid only for the digest that made it: a new version (or a rollback)
//! folds anew. Bounded by bytes, least recently used evicted first.
//!
//! A kept state is never trusted blindly. An append made on it expects exactly its version, so
//! another writer (another host on PostgreSQL, a command handler, a batch) turns into a conflict
//! and a fold from the store; a rejection or an empty decision made on it is checked against the
//! stream's head before it is answered (see `command.rs`).

use std::sync::Arc;

/// One stream's kept state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptState {
    /// Digest of the component that folded it.
    pub digest: Arc<str>,
    /// The stream version it stands for (its last folded event).
    pub version: u64,
    /// The state, JSON text as the plugin returned it.
    pub state: Arc<str>,
    /// The version of the newest snapshot stored for this stream and digest (0: none).
    pub snapshot_version: u64,
}

type Key = (Arc<str>, Arc<str>);

/// The cache; cheap to share.
#[derive(Clone)]
pub struct StateCache {
    entries: Option<moka::sync::Cache<Key, Arc<KeptState>>>,
}

/// What an entry costs beyond its text: the key, the struct and the cache's own bookkeeping.
const ENTRY_OVERHEAD: usize = 160;

impl StateCache {
    /// A cache of at most `bytes` of states (0: no cache; every command folds from the store).
    pub fn new(bytes: u64) -> Self {
        let entries = (bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|key: &Key, kept: &Arc<KeptState>| {
                    let size = key.0.len() + key.1.len() + kept.state.len() + kept.digest.len() + ENTRY_OVERHEAD;
                    u32::try_from(size).unwrap_or(u32::MAX)
                })
                .build()
        });
        Self { entries }
    }

    /// Whether states are kept at all.
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The state kept for `stream`, if one made by `digest` is there.
    pub fn get(&self, domain: &str, stream: &str, digest: &str) -> Option<Arc<KeptState>> {
        let entries = self.entries.as_ref()?;
        entries.get(&(Arc::from(domain), Arc::from(stream))).filter(|kept| &*kept.digest == digest)
    }

    /// Keeps `kept` as `stream`'s state (replacing whatever was kept).
    pub fn keep(&self, domain: &str, stream: &str, kept: KeptState) {
        if let Some(entries) = &self.entries {
            entries.insert((Arc::from(domain), Arc::from(stream)), Arc::new(kept));
        }
    }

    /// Drops what is kept for `stream` (it moved under another writer).
    pub fn forget(&self, domain: &str, stream: &str) {
        if let Some(entries) = &self.entries {
            entries.invalidate(&(Arc::from(domain), Arc::from(stream)));
        }
    }

    /// How many states are kept, and their weight in bytes (approximate: pending evictions).
    pub fn usage(&self) -> (u64, u64) {
        self.entries.as_ref().map_or((0, 0), |entries| {
            entries.run_pending_tasks();
            (entries.entry_count(), entries.weighted_size())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(digest: &str, version: u64, state: &str) -> KeptState {
        KeptState { digest: digest.into(), version, state: state.into(), snapshot_version: 0 }
    }

    #[test]
    fn a_state_is_only_handed_back_to_the_digest_that_made_it() {
        let cache = StateCache::new(1 << 20);
        cache.keep("bank", "account-1", kept("aaa", 3, "{\"balance\":3}"));
        assert_eq!(cache.get("bank", "account-1", "aaa").map(|k| k.version), Some(3));
        assert!(cache.get("bank", "account-1", "bbb").is_none(), "another build never reads it");
        assert!(cache.get("bank", "account-2", "aaa").is_none());
        assert!(cache.get("other", "account-1", "aaa").is_none(), "domains are apart");
        cache.forget("bank", "account-1");
        assert!(cache.get("bank", "account-1", "aaa").is_none());
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let cache = StateCache::new(64 << 10);
        let state = "x".repeat(1_000);
        for i in 0..1_000 {
            cache.keep("bank", &format!("account-{i}"), kept("aaa", 1, &state));
        }
        let (count, bytes) = cache.usage();
        assert!(bytes <= 64 << 10, "{bytes} bytes kept");
        assert!(count > 0 && count < 1_000, "{count} entries kept");
    }

    #[test]
    fn a_zero_sized_cache_keeps_nothing() {
        let cache = StateCache::new(0);
        cache.keep("bank", "account-1", kept("aaa", 1, "{}"));
        assert!(!cache.enabled());
        assert!(cache.get("bank", "account-1", "aaa").is_none());
    }
}
