//! `[aggregates]`: the folded states the host keeps for plugins that decide on a state
//! (`cairn:domain/aggregate-state`): how much memory the kept states may take, and how often a
//! stream's state is stored as a snapshot.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// Kept states and snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AggregatesConfig {
    /// Memory for kept states, in MiB (least recently used evicted first). 0 keeps none: every
    /// command folds its stream from the newest snapshot.
    pub state_cache_mib: u64,
    /// A stream's state is stored as a snapshot (with the command's events, in their
    /// transaction) whenever the stream has moved this many events past its last snapshot, so
    /// a command on a stream no host keeps folds at most this many events. 0: no snapshots.
    pub snapshot_every: u64,
}

impl Default for AggregatesConfig {
    fn default() -> Self {
        Self {
            state_cache_mib: crate::engine::command::DEFAULT_STATE_CACHE_BYTES >> 20,
            snapshot_every: crate::engine::command::DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

impl AggregatesConfig {
    /// Fails on values the host cannot honour.
    pub fn validate(&self) -> Result<()> {
        if self.state_cache_mib > 1 << 20 {
            bail!("aggregates.state_cache_mib must be at most 1048576 (1 TiB)");
        }
        Ok(())
    }

    /// The cache's size in bytes.
    pub fn state_cache_bytes(&self) -> u64 {
        self.state_cache_mib << 20
    }
}
