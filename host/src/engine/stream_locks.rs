//! Turns for commands on one aggregate within this host. Two commands on the same stream decided
//! at once would both expect the same version and one would conflict, refold and decide again;
//! taking turns instead costs nothing extra (the second waits for the first's commit, which it
//! would have had to wait for anyway) and keeps hot streams free of conflicts inside one host.
//! Hosts sharing a database still meet at the append's expected version.
//!
//! The locks are striped: a fixed set of async mutexes, a stream hashed onto one. Two streams on
//! one stripe take turns too; with many more stripes than commands in flight that is rare and
//! brief.

use std::hash::BuildHasher;

use tokio::sync::{Mutex, MutexGuard};

/// Stripes: far more than the commands one host has in flight.
const STRIPES: usize = 4096;

/// The striped locks.
pub(super) struct StreamLocks {
    stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl StreamLocks {
    pub(super) fn new() -> Self {
        Self { stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(), hasher: Default::default() }
    }

    /// Waits for `stream`'s turn; the turn lasts as long as the guard.
    pub(super) async fn lock(&self, domain: &str, stream: &str) -> MutexGuard<'_, ()> {
        self.stripes[self.hasher.hash_one((domain, stream)) as usize % STRIPES].lock().await
    }
}
