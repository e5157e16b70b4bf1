//! The query runner: runs a plugin's named query over the active generation of the projection
//! it reads, on a read snapshot, and caches the answer per (domain, query, parameters,
//! generation, position). The position in the key is the invalidation: once the projection moves
//! past it, the next request computes anew. Concurrent identical misses compute once (moka's
//! `try_get_with` coalesces them). `min_position` waits, bounded, for the projection to reach it.
//!
//! Containment: the cache is bounded by the bytes of its answers and keys
//! (`projections.query_cache_mib`), and each domain computes at most
//! `projections.max_queries_per_domain` answers at once (the rest wait up to `limits.queue_ms`,
//! then 503 `queries-busy`), so one domain's slow queries cannot hold every read connection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::value::RawValue;

use super::projections::Projections;
use crate::bindings::query::QueryError;
use crate::bindings::types::Rejection;
use crate::capabilities::read_model::ReadAccess;
use crate::registry::Registry;
use crate::runtime::PluginFault;
use crate::store::ReadModels;

/// Largest query answer, in bytes of JSON.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// A computed answer.
#[derive(Debug)]
pub struct QueryAnswer {
    /// The plugin's answer.
    pub data: Box<RawValue>,
    /// The projection's checkpoint it reflects (at least).
    pub position: u64,
    /// The generation it was read from.
    pub generation: u64,
}

/// Why a query has no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryFailure {
    /// No active plugin for the domain.
    #[error("no domain `{}`", crate::text::quote(.0))]
    UnknownDomain(String),
    /// The domain has no such query.
    #[error("domain `{}` has no query `{}`", crate::text::quote(.domain), crate::text::quote(.query))]
    UnknownQuery {
        /// The domain.
        domain: String,
        /// The query.
        query: String,
    },
    /// The projection has no generation that can answer yet.
    #[error("projection `{projection}` cannot answer yet: {reason}")]
    NotReady {
        /// The projection.
        projection: String,
        /// Why.
        reason: String,
    },
    /// `min_position` was not reached in time.
    #[error("projection `{projection}` reached position {reached}, not {wanted}, within {waited_ms} ms")]
    Timeout {
        /// The projection.
        projection: String,
        /// Asked for.
        wanted: u64,
        /// Got to.
        reached: u64,
        /// Waited.
        waited_ms: u64,
    },
    /// The plugin refused the parameters.
    #[error("invalid parameters: {}", .0.message)]
    InvalidParameters(Rejection),
    /// What the query asks for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The plugin trapped.
    #[error(transparent)]
    Fault(PluginFault),
    /// The plugin broke the contract (failed, answered something that is not JSON, too big).
    #[error("plugin {domain}: {message}")]
    Contract {
        /// The domain.
        domain: String,
        /// What it did.
        message: String,
    },
    /// The read-model store failed.
    #[error("read model unavailable: {0}")]
    Store(String),
    /// The projection stopped on an event it kept failing on (its `stop` policy).
    #[error("projection `{projection}` stopped at position {position}: it keeps failing on the event at {}", .event.position)]
    Failed {
        /// The projection.
        projection: String,
        /// Its checkpoint.
        position: u64,
        /// The event it is parked on.
        event: crate::store::read_models::FailedEvent,
    },
    /// The domain already computes as many answers as it may at once.
    #[error("domain `{domain}` already runs {limit} queries at once (projections.max_queries_per_domain); retry")]
    Busy {
        /// The domain.
        domain: String,
        /// Its bound.
        limit: usize,
    },
}

/// How the query runner bounds what it holds.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    /// The cache's size, in bytes of answers and keys.
    pub cache_bytes: u64,
    /// Answers one domain computes at once.
    pub max_per_domain: usize,
    /// How long a query waits for its domain's turn.
    pub queue: Duration,
}

impl Default for QuerySettings {
    fn default() -> Self {
        Self { cache_bytes: 64 << 20, max_per_domain: 4, queue: Duration::from_secs(1) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    domain: String,
    query: String,
    params: String,
    generation: u64,
    position: u64,
    /// The plugin version answering: a new version keeps the generation but may answer otherwise.
    digest: String,
}

/// Runs and caches queries.
pub struct Queries {
    registry: Arc<Registry>,
    projections: Arc<Projections>,
    models: Arc<dyn ReadModels>,
    cache: moka::future::Cache<Key, Arc<QueryAnswer>>,
    settings: QuerySettings,
    /// Each domain's turns to compute.
    turns: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// What one cached answer costs: its text, its key and the bookkeeping around them.
fn weight(key: &Key, answer: &Arc<QueryAnswer>) -> u32 {
    let bytes =
        256 + key.domain.len() + key.query.len() + key.params.len() + key.digest.len() + answer.data.get().len();
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// A cache of answers holding at most `bytes` (by [`weight`]).
fn answer_cache(bytes: u64) -> moka::future::Cache<Key, Arc<QueryAnswer>> {
    moka::future::Cache::builder().max_capacity(bytes).weigher(weight).time_to_idle(Duration::from_secs(600)).build()
}

impl Queries {
    /// A runner with these bounds.
    pub fn new(
        registry: Arc<Registry>,
        projections: Arc<Projections>,
        models: Arc<dyn ReadModels>,
        settings: QuerySettings,
    ) -> Self {
        let cache = answer_cache(settings.cache_bytes);
        Self { registry, projections, models, cache, settings, turns: Default::default() }
    }

    /// Waits for a turn of `domain` to compute an answer.
    async fn turn(&self, domain: &str) -> Result<tokio::sync::OwnedSemaphorePermit, QueryFailure> {
        let turns = {
            let mut all = self.turns.lock().expect("turns lock");
            let max = self.settings.max_per_domain.max(1);
            all.entry(domain.to_string()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(max))).clone()
        };
        let busy = || QueryFailure::Busy { domain: domain.to_string(), limit: self.settings.max_per_domain };
        match tokio::time::timeout(self.settings.queue, turns.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy()),
        }
    }

    /// Answers `query` of `domain` with `params`, at or after `min_position` (waiting up to
    /// `wait`). The flag says whether the answer came from the cache.
    pub async fn run(
        &self,
        domain: &str,
        query: &str,
        params: &BTreeMap<String, String>,
        min_position: Option<u64>,
        wait: Duration,
    ) -> Result<(Arc<QueryAnswer>, bool), QueryFailure> {
        let plugin = self.registry.get(domain).ok_or_else(|| QueryFailure::UnknownDomain(domain.to_string()))?;
        let unknown = || QueryFailure::UnknownQuery { domain: domain.to_string(), query: query.to_string() };
        let projection = plugin.query(query).ok_or_else(unknown)?.projection.clone();
        let not_ready = |reason: &str| QueryFailure::NotReady { projection: projection.clone(), reason: reason.into() };
        let serving =
            || self.projections.serving(domain, &projection).ok_or_else(|| not_ready("it has no generation yet"));
        // A projection parked on a poison event answers at once, on every host (see `poison`).
        let failed = |g: &super::projections::Generation| {
            g.parked().map(|event| QueryFailure::Failed {
                projection: projection.clone(),
                position: g.position(),
                event,
            })
        };
        let mut generation = serving()?;
        if let Some(failure) = failed(&generation) {
            return Err(failure);
        }
        if let Some(wanted) = min_position {
            // Waits on the serving generation, looking again now and then: a switch to a new
            // generation while waiting must not turn into a timeout.
            let deadline = tokio::time::Instant::now() + wait;
            while generation.position() < wanted {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(QueryFailure::Timeout {
                        projection: projection.clone(),
                        wanted,
                        reached: generation.position(),
                        waited_ms: wait.as_millis() as u64,
                    });
                }
                let slice = (deadline - now).min(Duration::from_millis(100));
                let mut position = generation.watch_position();
                let _ = tokio::time::timeout(slice, position.wait_for(|p| *p >= wanted)).await;
                generation = serving()?;
                if let Some(failure) = failed(&generation) {
                    return Err(failure);
                }
            }
        }
        // The generation's own plugin answers: its queries know its documents' shape.
        let runner = generation.plugin().ok_or_else(|| not_ready("the plugin version that built it is not loaded"))?;
        if runner.query(query).is_none() {
            return Err(not_ready("it is being rebuilt for the plugin version that added this query"));
        }
        let params = serde_json::to_string(params).unwrap_or_default();
        let position = generation.position();
        let key = Key {
            domain: domain.to_string(),
            query: query.to_string(),
            params: params.clone(),
            generation: generation.id.generation,
            position,
            digest: runner.digest.clone(),
        };
        let computed = AtomicBool::new(false);
        let namespace = generation.id.namespace();
        let answer = self
            .cache
            .try_get_with(key, async {
                computed.store(true, Ordering::Relaxed);
                let _turn = self.turn(domain).await?;
                let tx = self.models.read().await.map_err(|e| QueryFailure::Store(e.0))?;
                let access = ReadAccess::query(namespace, tx, tokio::runtime::Handle::current());
                let (plugin, name) = (runner.clone(), query.to_string());
                let span = tracing::Span::current();
                let (outcome, access) =
                    tokio::task::spawn_blocking(move || span.in_scope(|| plugin.run_query(&name, &params, access)))
                        .await
                        .map_err(|e| QueryFailure::Store(format!("the query task failed: {e}")))?;
                if let Some(cause) = access.and_then(|a| a.store_failure) {
                    return Err(QueryFailure::Store(cause));
                }
                let contract =
                    |message: String| QueryFailure::Contract { domain: runner.domain().to_string(), message };
                let text = match outcome.map_err(QueryFailure::Fault)? {
                    Ok(text) => text,
                    Err(QueryError::InvalidParameters(rejection)) => {
                        return Err(QueryFailure::InvalidParameters(rejection));
                    }
                    Err(QueryError::NotFound(message)) => return Err(QueryFailure::NotFound(message)),
                    Err(QueryError::UnknownQuery(message)) => {
                        return Err(contract(format!("declared a query it does not answer: {message}")));
                    }
                    Err(QueryError::Failed(message)) => return Err(contract(format!("the query failed: {message}"))),
                };
                if text.len() > MAX_ANSWER_BYTES {
                    return Err(contract(format!("answered {} bytes; the cap is {MAX_ANSWER_BYTES}", text.len())));
                }
                let data = RawValue::from_string(text)
                    .map_err(|e| contract(format!("answered something that is not JSON: {e}")))?;
                Ok(Arc::new(QueryAnswer { data, position, generation: generation.id.generation }))
            })
            .await
            .map_err(|e: Arc<QueryFailure>| QueryFailure::clone(&e))?;
        Ok((answer, !computed.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_answer_cache_is_bounded_by_the_bytes_of_its_answers() {
        let cache = answer_cache(4 << 20);
        let big = format!("\"{}\"", "x".repeat(256 << 10));
        for n in 0..64 {
            let key = Key {
                domain: "d".into(),
                query: "q".into(),
                params: n.to_string(),
                generation: 1,
                position: 1,
                digest: String::new(),
            };
            let data = RawValue::from_string(big.clone()).unwrap();
            cache.insert(key, Arc::new(QueryAnswer { data, position: 1, generation: 1 })).await;
        }
        cache.run_pending_tasks().await;
        assert!(cache.weighted_size() <= 4 << 20, "{} bytes held", cache.weighted_size());
        assert!(cache.entry_count() <= 16, "64 answers of 256 KiB do not fit in 4 MiB: {}", cache.entry_count());
        assert!(cache.entry_count() >= 8, "but most of 4 MiB is used: {}", cache.entry_count());
    }
}
