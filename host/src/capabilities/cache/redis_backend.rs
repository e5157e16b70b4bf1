//! The Redis cache backend, for several hosts: entries and tag sets live in Redis, so a value
//! set on one host is read on every host and a tag invalidated on one host is gone for all.
//! Keys: `cairn:<domain>:k:<key>` (the value, with its TTL), `cairn:<domain>:t:<tag>` (the set of
//! keys carrying the tag). A tag's invalidation is one Lua script: the keys and the set go
//! together. Connections are pooled (taken and returned per call; plugin calls run on blocking
//! threads, so the synchronous client is the right one).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{CacheBackend, CacheStats, Counters};

/// Deletes every key of a tag set and the set itself; how many keys existed.
const INVALIDATE: &str = r"
local keys = redis.call('SMEMBERS', KEYS[1])
local removed = 0
for _, key in ipairs(keys) do removed = removed + redis.call('DEL', key) end
redis.call('DEL', KEYS[1])
return removed
";

/// Sets a value with its TTL and adds it to its tag sets, lengthening (never shortening) each
/// set's expiry to outlive the value: an invalidation always finds every live key of its tag.
const SET_WITH_TAGS: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local keep = tonumber(ARGV[2]) * 2
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  local left = redis.call('PTTL', KEYS[i])
  if left >= 0 and left < keep then redis.call('PEXPIRE', KEYS[i], keep) end
  if left == -1 then redis.call('PEXPIRE', KEYS[i], keep) end
end
return 1
";

/// How long a Redis command may take before the call treats the cache as unavailable.
const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// Every domain's cache in one Redis.
pub struct RedisCache {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
    quota_bytes: u64,
    counters: Mutex<std::collections::HashMap<String, Arc<Counters>>>,
}

impl RedisCache {
    /// A backend on `url` (`redis://127.0.0.1:6379`); checks that the server answers.
    pub fn connect(url: &str, quota_bytes: u64) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let mut connection = open(&client, IO_TIMEOUT).map_err(|e| anyhow::anyhow!(e))?;
        connection.set_read_timeout(Some(IO_TIMEOUT))?;
        redis::cmd("PING").query::<String>(&mut connection)?;
        Ok(Self { client, idle: Mutex::new(vec![connection]), quota_bytes, counters: Mutex::default() })
    }

    fn with<T>(&self, f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> Result<T, String> {
        // Never past the plugin call's deadline: each use's socket timeouts end at it.
        let budget = crate::capabilities::deadline::remaining().map_or(IO_TIMEOUT, |left| left.min(IO_TIMEOUT));
        if budget.is_zero() {
            crate::capabilities::deadline::mark_overrun();
            return Err("redis: the plugin call reached its deadline".into());
        }
        let pooled = self.idle.lock().expect("pool lock").pop();
        let mut connection = match pooled {
            Some(c) => c,
            None => open(&self.client, budget)?,
        };
        connection.set_read_timeout(Some(budget)).map_err(|e| format!("redis: {e}"))?;
        connection.set_write_timeout(Some(budget)).map_err(|e| format!("redis: {e}"))?;
        let result = f(&mut connection).map_err(|e| format!("redis: {e}"));
        if result.is_err() && crate::capabilities::deadline::remaining().is_some_and(|left| left.is_zero()) {
            crate::capabilities::deadline::mark_overrun();
        }
        if result.is_ok() {
            let mut idle = self.idle.lock().expect("pool lock");
            if idle.len() < 16 {
                idle.push(connection);
            }
        }
        result
    }
}

/// A connection with bounded connect, read and write times (a stalled Redis must not hold a
/// plugin call past its deadline).
fn open(client: &redis::Client, budget: Duration) -> Result<redis::Connection, String> {
    let connect = budget.min(Duration::from_secs(2));
    client.get_connection_with_timeout(connect).map_err(|e| format!("redis: {e}"))
}

fn value_key(domain: &str, key: &str) -> String {
    format!("cairn:{domain}:k:{key}")
}

fn tag_key(domain: &str, tag: &str) -> String {
    format!("cairn:{domain}:t:{tag}")
}

impl CacheBackend for RedisCache {
    fn get(&self, domain: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.with(|c| redis::cmd("GET").arg(value_key(domain, key)).query(c))
    }

    fn set(&self, domain: &str, key: &str, value: Vec<u8>, ttl: Duration, tags: Vec<String>) -> Result<(), String> {
        let millis = ttl.as_millis().max(1) as u64;
        self.with(|c| {
            let script = redis::Script::new(SET_WITH_TAGS);
            let mut invocation = script.key(value_key(domain, key));
            for tag in &tags {
                invocation.key(tag_key(domain, tag));
            }
            invocation.arg(value).arg(millis).invoke::<i64>(c).map(|_| ())
        })
    }

    fn delete(&self, domain: &str, key: &str) -> Result<bool, String> {
        self.with(|c| redis::cmd("DEL").arg(value_key(domain, key)).query::<u32>(c)).map(|n| n > 0)
    }

    fn invalidate_tag(&self, domain: &str, tag: &str) -> Result<u32, String> {
        self.with(|c| redis::Script::new(INVALIDATE).key(tag_key(domain, tag)).invoke(c))
    }

    fn stats(&self) -> Vec<CacheStats> {
        let counters = self.counters.lock().expect("counters lock");
        let mut out: Vec<CacheStats> = counters
            .iter()
            .map(|(domain, c)| CacheStats {
                domain: domain.clone(),
                hits: c.hits.load(std::sync::atomic::Ordering::Relaxed),
                misses: c.misses.load(std::sync::atomic::Ordering::Relaxed),
                evictions: c.evictions.load(std::sync::atomic::Ordering::Relaxed),
                fills_coalesced: c.coalesced.load(std::sync::atomic::Ordering::Relaxed),
                entries: 0,
                bytes: 0,
                quota_bytes: self.quota_bytes,
            })
            .collect();
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        out
    }

    fn counters_for(&self, domain: &str) -> Arc<Counters> {
        self.counters.lock().expect("counters lock").entry(domain.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::cache::Cache;

    /// Two hosts' caches on one Redis, when `CAIRN_TEST_REDIS_URL` names one.
    fn two_hosts() -> Option<(Cache, Cache)> {
        let Ok(url) = std::env::var("CAIRN_TEST_REDIS_URL") else {
            eprintln!("SKIPPED: the Redis cache tests need CAIRN_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)");
            return None;
        };
        let host = || Cache::new(Arc::new(RedisCache::connect(&url, 1 << 20).expect("connecting to Redis")), 1 << 20);
        Some((host(), host()))
    }

    #[test]
    fn a_value_set_on_one_host_is_read_on_another_and_a_tag_invalidated_anywhere_is_gone_everywhere() {
        let Some((a, b)) = two_hosts() else { return };
        let domain = format!("test-{}", uuid::Uuid::now_v7());
        let ttl = Duration::from_secs(30);
        a.set(&domain, "k1", b"one".to_vec(), ttl, vec!["carrier:7".into()], &mut Vec::new()).unwrap();
        a.set(&domain, "k2", b"two".to_vec(), ttl, vec!["carrier:7".into()], &mut Vec::new()).unwrap();
        a.set(&domain, "k3", b"three".to_vec(), ttl, vec!["carrier:8".into()], &mut Vec::new()).unwrap();
        assert_eq!(b.get(&domain, "k1").unwrap().as_deref(), Some(&b"one"[..]), "read on the other host");
        assert_eq!(b.backend.invalidate_tag(&domain, "carrier:7").unwrap(), 2);
        assert_eq!(a.get(&domain, "k1").unwrap(), None, "invalidated on the other host, gone here");
        assert_eq!(a.get(&domain, "k2").unwrap(), None);
        assert_eq!(a.get(&domain, "k3").unwrap().as_deref(), Some(&b"three"[..]), "other tags stay");
        assert_eq!(a.get("another-domain", "k3").unwrap(), None, "domains do not share keys");
        assert!(b.backend.delete(&domain, "k3").unwrap());
    }

    #[test]
    fn a_short_lived_entry_does_not_shorten_its_tags_life() {
        let Some((a, _)) = two_hosts() else { return };
        let domain = format!("test-{}", uuid::Uuid::now_v7());
        let long = Duration::from_secs(60);
        a.set(&domain, "long", b"v".to_vec(), long, vec!["t".into()], &mut Vec::new()).unwrap();
        a.set(&domain, "short", b"v".to_vec(), Duration::from_millis(20), vec!["t".into()], &mut Vec::new()).unwrap();
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(a.backend.invalidate_tag(&domain, "t").unwrap(), 1, "the long-lived key is still found");
        assert_eq!(a.get(&domain, "long").unwrap(), None);
    }

    #[test]
    fn entries_expire_with_their_ttl() {
        let Some((a, _)) = two_hosts() else { return };
        let domain = format!("test-{}", uuid::Uuid::now_v7());
        a.set(&domain, "short", b"v".to_vec(), Duration::from_millis(50), vec![], &mut Vec::new()).unwrap();
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(a.get(&domain, "short").unwrap(), None);
    }
}
