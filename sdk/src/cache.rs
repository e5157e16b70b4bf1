//! The host's cache, for command handlers: `work.cache()`. Values are bytes with a TTL and
//! tags, namespaced per domain by the host. [`Cache::lookup`] is the stampede-safe read: of the
//! concurrent handlers that miss a key, one gets [`CacheLookup::Fill`] and computes the value
//! (then [`Cache::set`]s it); the others wait for it and get [`CacheLookup::Hit`].
//!
//! ```no_run
//! # use cairn_sdk::{UnitOfWork, CacheLookup, GatewayRequest};
//! # fn quote(work: &mut UnitOfWork<'_>) -> Vec<u8> {
//! let key = "quote:GB:FR:1200";
//! match work.cache().lookup(key) {
//!     CacheLookup::Hit(bytes) => bytes,
//!     CacheLookup::Fill => {
//!         let bytes = work.gateway().call("rates", GatewayRequest::get("/rates?from=GB&to=FR")).unwrap().body;
//!         let _ = work.cache().set(key, &bytes, std::time::Duration::from_secs(60), &["route:GB-FR"]);
//!         bytes
//!     }
//! }
//! # }
//! ```
//!
//! A cache failure is never the command's failure: `lookup` treats it as a miss to fill, and a
//! failed `set` only costs the next caller a fill. Outside a component (native tests) the cache
//! is always empty: every lookup fills.

use std::time::Duration;

/// How long [`Cache::lookup`] waits for another handler's fill before computing itself.
pub const FILL_WAIT: Duration = Duration::from_secs(5);

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLookup {
    /// The cached value.
    Hit(Vec<u8>),
    /// A miss: compute the value and [`Cache::set`] it (other handlers wait for it meanwhile).
    Fill,
}

/// Why a cache call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheError {
    /// Not allowed here.
    NotGranted(String),
    /// An empty or over-long key or tag, or a zero TTL.
    Invalid(String),
    /// A value over the domain's quota.
    TooLarge(String),
    /// The cache backend could not be reached.
    Unavailable(String),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotGranted(m) => write!(f, "not-granted: {m}"),
            Self::Invalid(m) => write!(f, "invalid: {m}"),
            Self::TooLarge(m) => write!(f, "too-large: {m}"),
            Self::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for CacheError {}

/// Where a [`Cache`] goes: the host in a component; anything in tests.
pub trait CacheBackend {
    /// The value under `key`.
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    /// Caches a value.
    fn set(&mut self, key: &str, value: &[u8], ttl: Duration, tags: &[&str]) -> Result<(), CacheError>;
    /// Removes a key.
    fn delete(&mut self, key: &str) -> Result<bool, CacheError>;
    /// Removes every entry tagged `tag`.
    fn invalidate_tag(&mut self, tag: &str) -> Result<u32, CacheError>;
    /// The value, or `Fill` for one of the concurrent callers that miss.
    fn lookup(&mut self, key: &str, wait: Duration) -> Result<CacheLookup, CacheError>;
}

/// A handler's cache.
pub struct Cache<'w> {
    backend: Option<&'w mut dyn CacheBackend>,
}

impl<'w> Cache<'w> {
    pub(crate) fn new(backend: Option<&'w mut dyn CacheBackend>) -> Self {
        Self { backend }
    }

    fn backend(&mut self) -> &mut dyn CacheBackend {
        match &mut self.backend {
            Some(backend) => &mut **backend,
            None => default_backend(),
        }
    }

    /// The value under `key`, if cached.
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.backend().get(key)
    }

    /// Caches `value` under `key` for `ttl` with `tags` (and completes this handler's fill).
    pub fn set(&mut self, key: &str, value: &[u8], ttl: Duration, tags: &[&str]) -> Result<(), CacheError> {
        self.backend().set(key, value, ttl, tags)
    }

    /// Removes `key`; true if it was cached.
    pub fn delete(&mut self, key: &str) -> Result<bool, CacheError> {
        self.backend().delete(key)
    }

    /// Removes every entry tagged `tag`; how many.
    pub fn invalidate_tag(&mut self, tag: &str) -> Result<u32, CacheError> {
        self.backend().invalidate_tag(tag)
    }

    /// The stampede-safe read: `Hit`, or `Fill` for exactly one of the handlers that miss (the
    /// others wait up to [`FILL_WAIT`] for its value). A cache failure reads as `Fill`.
    pub fn lookup(&mut self, key: &str) -> CacheLookup {
        self.backend().lookup(key, FILL_WAIT).unwrap_or(CacheLookup::Fill)
    }
}

/// The host's cache: direct (not `dyn`) calls, so only code that uses it links the import.
#[cfg(target_arch = "wasm32")]
fn default_backend() -> &'static mut dyn CacheBackend {
    // `HostCache` is a zero-sized handle; leaking one costs nothing.
    Box::leak(Box::new(crate::wasm::HostCache))
}

/// Natively there is no host: an always-empty cache.
#[cfg(not(target_arch = "wasm32"))]
fn default_backend() -> &'static mut dyn CacheBackend {
    Box::leak(Box::new(EmptyCache))
}

/// A cache that holds nothing: every lookup fills.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyCache;

impl CacheBackend for EmptyCache {
    fn get(&mut self, _key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(None)
    }

    fn set(&mut self, _key: &str, _value: &[u8], _ttl: Duration, _tags: &[&str]) -> Result<(), CacheError> {
        Ok(())
    }

    fn delete(&mut self, _key: &str) -> Result<bool, CacheError> {
        Ok(false)
    }

    fn invalidate_tag(&mut self, _tag: &str) -> Result<u32, CacheError> {
        Ok(0)
    }

    fn lookup(&mut self, _key: &str, _wait: Duration) -> Result<CacheLookup, CacheError> {
        Ok(CacheLookup::Fill)
    }
}
