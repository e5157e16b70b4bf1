//! `[queue]`: how asynchronous commands are run: jobs at once, per domain, the lease a host
//! holds on the jobs it runs, and the retries of transient failures.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The asynchronous command queue's worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Jobs one host runs at once.
    pub workers: usize,
    /// Jobs of one domain one host runs at once (so one domain's slow jobs leave the other
    /// workers to the other domains).
    pub per_domain: usize,
    /// How long a running job stays its host's without a renewal, in milliseconds; the host
    /// renews every third of it. A dead host's jobs are taken over after at most this long.
    pub lease_ms: u64,
    /// Attempts of a job failing transiently (the store, conflicts, a busy domain) before it is
    /// a dead letter. A plugin fault (deadline, memory, trap) is a dead letter at once.
    pub max_attempts: u32,
    /// Delay before the second attempt, doubled after each, in milliseconds.
    pub backoff_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        let defaults = crate::engine::QueueSettings::default();
        Self {
            workers: defaults.workers,
            per_domain: defaults.per_domain,
            lease_ms: defaults.lease.as_millis() as u64,
            max_attempts: defaults.max_attempts,
            backoff_ms: defaults.backoff.as_millis() as u64,
        }
    }
}

impl QueueConfig {
    /// Fails on values that would stop the queue or let leases lapse while jobs run.
    pub fn validate(&self) -> Result<()> {
        if self.workers == 0 || self.per_domain == 0 || self.max_attempts == 0 {
            bail!("queue.workers, queue.per_domain and queue.max_attempts must be at least 1");
        }
        if self.workers > 1024 {
            bail!("queue.workers must be at most 1024");
        }
        if self.lease_ms < 300 {
            bail!("queue.lease_ms must be at least 300 (the lease is renewed every third of it)");
        }
        Ok(())
    }

    /// The worker's settings.
    pub fn settings(&self) -> crate::engine::QueueSettings {
        crate::engine::QueueSettings {
            workers: self.workers,
            per_domain: self.per_domain,
            lease: Duration::from_millis(self.lease_ms),
            max_attempts: self.max_attempts,
            backoff: Duration::from_millis(self.backoff_ms),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        let defaults = QueueConfig::default();
        defaults.validate().unwrap();
        assert_eq!((defaults.workers, defaults.per_domain, defaults.lease_ms), (8, 2, 6_000));
        let error = QueueConfig { per_domain: 0, ..defaults.clone() }.validate().unwrap_err();
        assert!(error.to_string().contains("queue.per_domain"), "{error}");
        let error = QueueConfig { lease_ms: 10, ..defaults.clone() }.validate().unwrap_err();
        assert!(error.to_string().contains("queue.lease_ms"), "{error}");
        let settings = QueueConfig { workers: 3, lease_ms: 900, ..defaults }.settings();
        assert_eq!((settings.workers, settings.lease), (3, Duration::from_millis(900)));
    }
}
