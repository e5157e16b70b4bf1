//! Projections across several hosts sharing one database: the runners run on exactly one host,
//! the one holding the `projections` lease; the others follow the stored generations to answer
//! queries (which generation serves, its checkpoint, the plugin version that built it).
//!
//! The holder renews the lease every half second for two and a half; when it dies another host
//! takes the lease within half a second of its expiry (at once when the holder shuts down cleanly and releases
//! it) and resumes every generation from its stored checkpoint. A holder that cannot renew in
//! time stops its runners. Even two runners of one generation at once (a paused holder waking
//! up after losing its lease) cannot apply an event twice: checkpoints commit as a
//! compare-and-set with the documents (see [`crate::store::read_models::Checkpoint`]).
//!
//! On SQLite one host owns the database and always holds the lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Generation, Projections, RunState, Slot};
use crate::store::read_models::{GenerationRole, GenerationRow};
use crate::store::{Leases, StoreError};

/// The lease the runners' host holds.
pub const LEASE: &str = "projections";
/// How long a lease lasts without renewal.
const TTL: Duration = Duration::from_millis(2500);
/// How often the holder renews and the others try to take it.
const RENEW: Duration = Duration::from_millis(500);
/// How often a follower re-reads the generations (checkpoints move without notices).
const FOLLOW: Duration = Duration::from_millis(250);

/// Who this host is among those sharing the database.
pub struct ClusterSettings {
    /// Unique per running host (its address and a random suffix).
    pub host_id: String,
    /// Where the lease lives.
    pub leases: Arc<dyn Leases>,
    /// Generation changes made by other hosts (PostgreSQL), if any.
    pub generations: Option<watch::Receiver<u64>>,
}

/// Groups stored generations into slots.
pub(super) fn slots_from(rows: Vec<GenerationRow>) -> HashMap<(String, String), Slot> {
    let mut slots: HashMap<(String, String), Slot> = HashMap::new();
    for row in rows {
        let slot = slots.entry((row.id.domain.clone(), row.id.name.clone())).or_default();
        match row.role {
            GenerationRole::Active => slot.active = Some(Generation::new(&row)),
            GenerationRole::Building => slot.building = Some(Generation::new(&row)),
            GenerationRole::Retired => slot.retired = Some(row),
        }
    }
    slots
}

impl Projections {
    /// Whether this host runs the projections.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// The host holding the projections lease now, if it can be told.
    pub(super) async fn lease_holder(&self) -> Option<String> {
        self.leases.holder(LEASE).await.ok().flatten()
    }

    /// Tries for the lease once; leads or follows accordingly.
    pub(super) async fn elect(self: &Arc<Self>) -> Result<(), StoreError> {
        if self.leases.acquire(LEASE, &self.host_id, TTL).await? {
            self.take_over().await
        } else {
            self.refresh_view().await
        }
    }

    /// The task that keeps the lease (or waits for it) and, while following, the view.
    pub(super) fn spawn_cluster_task(self: &Arc<Self>, mut generations: Option<watch::Receiver<u64>>) {
        let this = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut last_renewal = Instant::now();
            let mut next_try = Instant::now() + RENEW;
            loop {
                let notice = async {
                    match generations.as_mut() {
                        Some(rx) => rx.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW) => {}
                    open = notice => if !open { generations = None },
                }
                let Some(this) = this.upgrade() else { break };
                if Instant::now() >= next_try {
                    next_try = Instant::now() + RENEW;
                    match this.leases.acquire(LEASE, &this.host_id, TTL).await {
                        Ok(true) => {
                            last_renewal = Instant::now();
                            // Taking over (reconciling, maybe compiling) runs on its own, so
                            // this loop keeps renewing the lease meanwhile.
                            if !this.is_leader() && !this.taking_over.swap(true, Ordering::AcqRel) {
                                let leader = this.clone();
                                let task = tokio::spawn(async move {
                                    if let Err(e) = leader.take_over().await {
                                        // Not half a leader: stop what started; the next tick retries.
                                        leader.step_down(&format!("taking over failed: {}", e.0)).await;
                                    }
                                    leader.taking_over.store(false, Ordering::Release);
                                });
                                this.tasks.lock().expect("tasks lock").push(task);
                            }
                        }
                        Ok(false) if this.is_leader() => this.step_down("another host holds the lease").await,
                        Ok(false) => {}
                        Err(e) if this.is_leader() && last_renewal.elapsed() >= TTL - RENEW / 2 => {
                            this.step_down(&format!("the lease could not be renewed: {}", e.0)).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "the projections lease could not be checked"),
                    }
                }
                if !this.is_leader()
                    && let Err(e) = this.refresh_view().await
                {
                    tracing::debug!(error = %e, "following the projections failed; retrying");
                }
            }
        });
        self.tasks.lock().expect("tasks lock").push(task);
    }

    /// Becomes the host that runs the projections: every generation from its stored checkpoint.
    async fn take_over(self: &Arc<Self>) -> Result<(), StoreError> {
        // The active versions as stored, not as this host last heard of them: reconciling with a
        // stale version would roll projections back.
        if let Err(e) = self.registry.refresh().await {
            return Err(StoreError(format!("reading the active versions: {e}")));
        }
        {
            let _serialised = self.changes.lock().await;
            let rows = self.models.generations().await?;
            let old = std::mem::replace(&mut *self.slots.lock().expect("slots lock"), slots_from(rows));
            old.values().flat_map(|s| s.active.iter().chain(s.building.iter())).for_each(|g| g.halt());
            self.leader.store(true, Ordering::Release);
            self.load_parked().await?;
        }
        tracing::info!(host = %self.host_id, "this host now runs the projections");
        for plugin in self.registry.all() {
            self.sync(&plugin).await?;
        }
        Ok(())
    }

    /// Stops this host's runners; another host runs the projections from their checkpoints.
    async fn step_down(&self, why: &str) {
        let _serialised = self.changes.lock().await;
        self.leader.store(false, Ordering::Release);
        let slots = self.slots.lock().expect("slots lock");
        slots.values().flat_map(|s| s.active.iter().chain(s.building.iter())).for_each(|g| g.halt());
        tracing::warn!(host = %self.host_id, why, "this host no longer runs the projections");
    }

    /// Gives the lease up (shutdown), so another host takes over at once.
    pub(super) async fn release_lease(&self) {
        if self.leader.swap(false, Ordering::AcqRel) {
            let _ = self.leases.release(LEASE, &self.host_id).await;
        }
    }

    /// Follower: mirrors the stored generations, with the plugin version that built each.
    pub(super) async fn refresh_view(&self) -> Result<(), StoreError> {
        let _serialised = self.changes.lock().await;
        if self.is_leader() {
            return Ok(());
        }
        let rows = self.models.generations().await?;
        let mut known: HashMap<_, Arc<Generation>> = {
            let slots = self.slots.lock().expect("slots lock");
            slots
                .values()
                .flat_map(|s| s.active.iter().chain(s.building.iter()))
                .map(|g| (g.id.clone(), g.clone()))
                .collect()
        };
        let mut fresh: HashMap<(String, String), Slot> = HashMap::new();
        for row in rows {
            let slot = fresh.entry((row.id.domain.clone(), row.id.name.clone())).or_default();
            if row.role == GenerationRole::Retired {
                slot.retired = Some(row);
                continue;
            }
            let generation = known.remove(&row.id).unwrap_or_else(|| Generation::new(&row));
            generation.halt();
            generation.building.store(row.role == GenerationRole::Building, Ordering::Release);
            generation.take_stored(row.position);
            generation.set_state(RunState::Elsewhere);
            if generation.plugin().is_none_or(|p| p.version() != row.plugin_version) {
                match self.registry.load_version(&row.id.domain, &row.plugin_version).await {
                    Ok(plugin) => generation.plugin.store(Some(plugin)),
                    Err(e) => tracing::debug!(domain = %row.id.domain, error = %e, "plugin of a generation not loaded"),
                }
            }
            match row.role {
                GenerationRole::Active => slot.active = Some(generation),
                _ => slot.building = Some(generation),
            }
        }
        *self.slots.lock().expect("slots lock") = fresh;
        self.load_parked().await
    }
}
