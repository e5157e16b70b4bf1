//! Projections: which generation of each projection queries read, which ones are being built,
//! and the runners that keep them following the log.
//!
//! When a plugin version becomes active, each projection it declares is reconciled: the same
//! projection version keeps its generation (the new plugin version takes over its runner); a
//! version the retired generation has (a rollback) switches back to it at once; any other version
//! starts a new generation from position 0 in the background while queries keep reading the
//! active one, and the runner promotes it once it has caught up. The previous active generation
//! is kept (retired) for a rollback until the next switch.

mod cluster;
mod poison;
mod runner;
mod status;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

pub use self::cluster::ClusterSettings;
pub use self::poison::{Action, FailurePolicy};
pub use self::status::{GenerationStatus, ProjectionError, RunState};
use crate::registry::Registry;
use crate::runtime::Plugin;
use crate::store::read_models::{FailedEvent, GenerationId, GenerationRole, GenerationRow};
use crate::store::{EventStore, Leases, ReadModels, StoreError};

/// How runners work.
#[derive(Debug, Clone)]
pub struct ProjectionSettings {
    /// Events per `project` call and transaction.
    pub batch: u32,
    /// First wait after a failure; doubles up to `max_backoff`.
    pub first_backoff: Duration,
    /// Longest wait between retries of a failing event.
    pub max_backoff: Duration,
    /// Largest buffered writes of one `project` call, in bytes (`limits.max_projection_batch_mib`).
    pub max_batch_bytes: usize,
    /// Failures on one event before its projection's failure policy applies.
    pub failure_attempts: u32,
    /// The failure policy of every projection (see [`poison`]).
    pub on_failure: FailurePolicy,
    /// Policies of single projections, keyed `<domain>/<projection>`.
    pub on_failure_for: HashMap<String, FailurePolicy>,
}

impl ProjectionSettings {
    /// The failure policy of `domain/name`.
    pub fn policy_for(&self, domain: &str, name: &str) -> FailurePolicy {
        self.on_failure_for.get(&format!("{domain}/{name}")).copied().unwrap_or(self.on_failure)
    }
}

impl Default for ProjectionSettings {
    fn default() -> Self {
        Self {
            batch: 256,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_batch_bytes: 64 << 20,
            failure_attempts: 5,
            on_failure: FailurePolicy::Stop,
            on_failure_for: HashMap::new(),
        }
    }
}

/// What a rebuild request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebuild {
    /// A new generation is building.
    Started(u64),
    /// No active projection by that name.
    Unknown,
    /// This generation is already building; it must finish first.
    Busy(u64),
    /// The projections run on another host (named when known): ask it.
    Elsewhere(Option<String>),
}

/// One generation of one projection, with its runner's state.
pub struct Generation {
    /// Which one.
    pub id: GenerationId,
    /// Its projection version.
    pub version: u32,
    plugin: ArcSwapOption<Plugin>,
    /// The plugin version it was last run with, from the store (until a plugin is adopted).
    stored_plugin_version: String,
    building: AtomicBool,
    running: AtomicBool,
    position: watch::Sender<u64>,
    /// The checkpoint as last committed (or read) in the store; `position` may be ahead of it
    /// over events the projection does not read.
    stored: AtomicU64,
    applied: AtomicU64,
    status: Mutex<(RunState, Option<ProjectionError>)>,
    stop: watch::Sender<bool>,
    /// Cuts a failure's backoff short when a new plugin version takes the generation over (or
    /// an operator retries or skips its parked event).
    wake: tokio::sync::Notify,
    /// The event it is parked on (see [`poison`]), as stored.
    parked: Mutex<Option<FailedEvent>>,
}

impl Generation {
    fn new(row: &GenerationRow) -> Arc<Self> {
        Arc::new(Self {
            id: row.id.clone(),
            version: row.version,
            plugin: ArcSwapOption::empty(),
            stored_plugin_version: row.plugin_version.clone(),
            building: AtomicBool::new(row.role == GenerationRole::Building),
            running: AtomicBool::new(false),
            position: watch::channel(row.position).0,
            stored: AtomicU64::new(row.position),
            applied: AtomicU64::new(0),
            status: Mutex::new((RunState::Starting, None)),
            stop: watch::channel(false).0,
            wake: tokio::sync::Notify::new(),
            parked: Mutex::new(None),
        })
    }

    /// The plugin that runs it (and answers queries over it), if one is loaded.
    pub fn plugin(&self) -> Option<Arc<Plugin>> {
        self.plugin.load_full()
    }

    /// Every event of the domain at or below this position has been applied and committed.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Follows [`Generation::position`].
    pub fn watch_position(&self) -> watch::Receiver<u64> {
        self.position.subscribe()
    }

    /// The event it is parked on: it stopped there, by its `stop` policy, until an operator acts.
    pub fn parked(&self) -> Option<FailedEvent> {
        self.parked.lock().expect("parked lock").clone()
    }

    fn set_parked(&self, event: Option<FailedEvent>) {
        *self.parked.lock().expect("parked lock") = event;
    }

    fn is_building(&self) -> bool {
        self.building.load(Ordering::Acquire)
    }

    fn advance(&self, to: u64, applied: u64) {
        self.position.send_if_modified(|p| {
            let moved = to > *p;
            *p = (*p).max(to);
            moved
        });
        self.applied.fetch_add(applied, Ordering::Relaxed);
        let mut status = self.status.lock().expect("status lock");
        status.1 = None;
    }

    /// Takes the stored checkpoint as the truth after a commit failed: another runner of this
    /// generation may have moved it. False when the generation is gone or retired.
    async fn resync(&self, models: &dyn ReadModels) -> bool {
        let Ok(rows) = models.generations().await else { return true };
        match rows.into_iter().find(|row| row.id == self.id) {
            Some(row) if row.role != GenerationRole::Retired => {
                self.take_stored(row.position);
                true
            }
            _ => false,
        }
    }

    /// Takes a checkpoint read from the store as where this generation is.
    fn take_stored(&self, position: u64) {
        self.stored.store(position, Ordering::Release);
        self.advance(position, 0);
    }

    fn set_state(&self, state: RunState) {
        let mut status = self.status.lock().expect("status lock");
        status.0 = state;
    }

    fn fail(&self, error: ProjectionError) {
        tracing::warn!(domain = %self.id.domain, projection = %self.id.name, generation = self.id.generation,
            error = %error.message, position = ?error.position, "projection failed; retrying with backoff");
        *self.status.lock().expect("status lock") = (RunState::Failed, Some(error));
    }

    fn halt(&self) {
        self.stop.send_replace(true);
    }
}

#[derive(Default)]
struct Slot {
    active: Option<Arc<Generation>>,
    building: Option<Arc<Generation>>,
    retired: Option<GenerationRow>,
}

/// Every projection of every domain on this host.
pub struct Projections {
    events: Arc<dyn EventStore>,
    models: Arc<dyn ReadModels>,
    registry: Arc<Registry>,
    settings: ProjectionSettings,
    slots: Mutex<HashMap<(String, String), Slot>>,
    /// Serialises reconciliations, promotions and rebuilds.
    changes: tokio::sync::Mutex<()>,
    /// The runners and the activation follower, aborted at shutdown.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Where the lease of the runners lives (see [`cluster`]).
    leases: Arc<dyn Leases>,
    /// This host among those sharing the database.
    host_id: String,
    /// Whether this host holds the lease and runs the projections.
    leader: AtomicBool,
    /// A takeover is under way.
    taking_over: AtomicBool,
}

impl Projections {
    /// Runs the projections if this host gets the lease (loading the stored generations,
    /// reconciling them with the active plugins, starting the runners), else follows them;
    /// then follows activations and the lease.
    pub async fn start(
        events: Arc<dyn EventStore>,
        models: Arc<dyn ReadModels>,
        registry: Arc<Registry>,
        settings: ProjectionSettings,
        cluster: ClusterSettings,
    ) -> Result<Arc<Self>, StoreError> {
        let this = Arc::new(Self {
            events,
            models,
            registry: registry.clone(),
            settings,
            slots: Mutex::default(),
            changes: tokio::sync::Mutex::new(()),
            tasks: Mutex::default(),
            leases: cluster.leases,
            host_id: cluster.host_id,
            leader: AtomicBool::new(false),
            taking_over: AtomicBool::new(false),
        });
        let mut activations = registry.activations();
        this.elect().await?;
        this.spawn_cluster_task(cluster.generations);
        let follower = Arc::downgrade(&this);
        let follow = tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let received = activations.recv().await;
                let Some(follower) = follower.upgrade() else { break };
                let plugins = match received {
                    Ok(plugin) => vec![plugin],
                    Err(RecvError::Lagged(_)) => follower.registry.all(),
                    Err(RecvError::Closed) => break,
                };
                for plugin in plugins {
                    let synced =
                        if follower.is_leader() { follower.sync(&plugin).await } else { follower.refresh_view().await };
                    if let Err(e) = synced {
                        tracing::error!(domain = plugin.domain(), error = %e, "reconciling projections failed");
                    }
                }
            }
        });
        this.tasks.lock().expect("tasks lock").push(follow);
        Ok(this)
    }

    /// The generation queries of `domain/name` read.
    pub fn serving(&self, domain: &str, name: &str) -> Option<Arc<Generation>> {
        let slots = self.slots.lock().expect("slots lock");
        slots.get(&(domain.to_string(), name.to_string())).and_then(|s| s.active.clone())
    }

    /// Stops every runner and the activation follower (shutdown). A batch cut off here was not
    /// committed: it is applied again from the checkpoint at the next start.
    pub async fn stop_all(&self) {
        for slot in self.slots.lock().expect("slots lock").values() {
            slot.active.iter().chain(slot.building.iter()).for_each(|g| g.halt());
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        // Last, so that the lease task cannot take it again: another host takes over at once.
        self.release_lease().await;
    }

    /// Reconciles the projections of `plugin`'s domain with what it declares.
    async fn sync(self: &Arc<Self>, plugin: &Arc<Plugin>) -> Result<(), StoreError> {
        let _serialised = self.changes.lock().await;
        if !self.is_leader() {
            return Ok(());
        }
        let domain = plugin.domain().to_string();
        for info in &plugin.projections {
            let key = (domain.clone(), info.name.clone());
            let (active, building, retired) = {
                let slots = self.slots.lock().expect("slots lock");
                let slot = slots.get(&key);
                (
                    slot.and_then(|s| s.active.clone()),
                    slot.and_then(|s| s.building.clone()),
                    slot.and_then(|s| s.retired.clone()),
                )
            };
            if let Some(old) = active.as_ref().filter(|a| a.version != info.version && a.plugin().is_none()) {
                // After a restart: the active generation keeps answering with the version that built it.
                match self.registry.load_version(&domain, &old.stored_plugin_version).await {
                    Ok(previous) => self.adopt(old, previous).await?,
                    Err(e) => tracing::warn!(domain, projection = %info.name, error = %e,
                        "the plugin version of the active generation cannot be loaded; it is paused"),
                }
            }
            if let Some(active) = active.as_ref().filter(|a| a.version == info.version) {
                self.adopt(active, plugin.clone()).await?;
                match building {
                    Some(b) if b.version == info.version => self.adopt(&b, plugin.clone()).await?,
                    Some(b) => self.discard(&key, &b).await?,
                    None => {}
                }
                continue;
            }
            if let Some(building) = building.as_ref().filter(|b| b.version == info.version) {
                self.adopt(building, plugin.clone()).await?;
                continue;
            }
            if let Some(retired) = retired.filter(|r| r.version == info.version) {
                // A rollback: the retired generation has this version; switch back at once, from
                // its checkpoint as stored (its last runner may have committed after the switch).
                let stored = self.models.generations().await?.into_iter().find(|r| r.id == retired.id);
                if let Some(row) = stored {
                    let generation = Generation::new(&GenerationRow { role: GenerationRole::Active, ..row });
                    if self.promote(&generation).await {
                        self.adopt(&generation, plugin.clone()).await?;
                    }
                    continue;
                }
            }
            if let Some(b) = building {
                self.discard(&key, &b).await?;
            }
            let role = if active.is_some() { GenerationRole::Building } else { GenerationRole::Active };
            let row = self.models.create_generation(&domain, &info.name, info.version, plugin.version(), role).await?;
            let generation = Generation::new(&row);
            {
                let mut slots = self.slots.lock().expect("slots lock");
                let slot = slots.entry(key.clone()).or_default();
                match role {
                    GenerationRole::Active => slot.active = Some(generation.clone()),
                    _ => slot.building = Some(generation.clone()),
                }
            }
            tracing::info!(domain, projection = %info.name, generation = row.id.generation, version = info.version,
                role = role.as_str(), "projection generation created");
            self.adopt(&generation, plugin.clone()).await?;
        }
        // Projections the plugin no longer declares stop; their active generation stays (dormant,
        // documents kept) so that a version declaring them again continues it.
        let mut slots = self.slots.lock().expect("slots lock");
        for ((d, name), slot) in slots.iter_mut() {
            if d != &domain || plugin.projection(name).is_some() {
                continue;
            }
            if let Some(building) = slot.building.take() {
                building.halt();
            }
            if let Some(active) = slot.active.take_if(|a| a.plugin().is_some()) {
                active.halt();
                slot.active = Some(Generation::new(&GenerationRow {
                    id: active.id.clone(),
                    version: active.version,
                    plugin_version: active.plugin().map(|p| p.version().to_string()).unwrap_or_default(),
                    role: GenerationRole::Active,
                    position: active.stored.load(Ordering::Acquire),
                }));
            }
        }
        Ok(())
    }

    /// Runs `generation` with `plugin` from now on, starting its runner if it has none.
    async fn adopt(self: &Arc<Self>, generation: &Arc<Generation>, plugin: Arc<Plugin>) -> Result<(), StoreError> {
        if generation.plugin().is_none_or(|p| p.digest != plugin.digest) {
            self.models.set_plugin_version(&generation.id, plugin.version()).await?;
        }
        if generation.plugin().is_some_and(|p| p.digest != plugin.digest) && generation.parked().is_some() {
            // A new plugin version may get past the event: it tries again.
            self.models.unpark(&generation.id).await?;
            generation.set_parked(None);
        }
        generation.plugin.store(Some(plugin));
        generation.wake.notify_waiters();
        if !generation.running.swap(true, Ordering::AcqRel) {
            let task = tokio::spawn(runner::run(self.clone(), generation.clone()));
            let mut tasks = self.tasks.lock().expect("tasks lock");
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
        Ok(())
    }

    /// Stops and drops a building generation that no version wants any more.
    async fn discard(&self, key: &(String, String), generation: &Arc<Generation>) -> Result<(), StoreError> {
        generation.halt();
        self.models.drop_generation(&generation.id).await?;
        let mut slots = self.slots.lock().expect("slots lock");
        if let Some(slot) = slots.get_mut(key)
            && slot.building.as_ref().is_some_and(|b| Arc::ptr_eq(b, generation))
        {
            slot.building = None;
        }
        Ok(())
    }

    /// Called by a building generation's runner once it has caught up.
    async fn promote_caught_up(&self, generation: &Arc<Generation>) {
        let _serialised = self.changes.lock().await;
        if !self.is_leader() {
            return;
        }
        let key = (generation.id.domain.clone(), generation.id.name.clone());
        let current = self.slots.lock().expect("slots lock").get(&key).and_then(|s| s.building.clone());
        let active = self.slots.lock().expect("slots lock").get(&key).and_then(|s| s.active.clone());
        // Never switch queries to a generation behind the one they read: it catches up first.
        let behind = active.is_some_and(|a| a.position() > generation.position());
        if current.is_some_and(|b| Arc::ptr_eq(&b, generation)) && !behind {
            let _ = self.promote(generation).await;
        }
    }

    /// Makes `generation` the one queries read; the active one is retired (kept for a rollback).
    /// False when the store refused.
    async fn promote(&self, generation: &Arc<Generation>) -> bool {
        let key = (generation.id.domain.clone(), generation.id.name.clone());
        if let Err(e) = self.models.promote(&generation.id).await {
            generation.fail(ProjectionError::store(format!("switching to the new generation failed: {}", e.0)));
            return false;
        }
        generation.building.store(false, Ordering::Release);
        let mut slots = self.slots.lock().expect("slots lock");
        let slot = slots.entry(key).or_default();
        if let Some(old) = slot.active.take() {
            old.halt();
            slot.retired = Some(GenerationRow {
                id: old.id.clone(),
                version: old.version,
                plugin_version: old.plugin().map(|p| p.version().to_string()).unwrap_or_default(),
                role: GenerationRole::Retired,
                position: old.position(),
            });
        }
        if slot.building.as_ref().is_some_and(|b| !Arc::ptr_eq(b, generation)) {
            slot.building.take().iter().for_each(|b| b.halt());
        } else {
            slot.building = None;
        }
        tracing::info!(domain = %generation.id.domain, projection = %generation.id.name,
            generation = generation.id.generation, "projection generation now serves queries");
        slot.active = Some(generation.clone());
        true
    }

    /// Starts building `domain/name` anew from position 0 with the active generation's plugin;
    /// queries keep reading the active generation until the new one has caught up.
    /// Refused while a generation is being built (a new version's or an earlier rebuild).
    pub async fn rebuild(self: &Arc<Self>, domain: &str, name: &str) -> Result<Rebuild, StoreError> {
        let _serialised = self.changes.lock().await;
        if !self.is_leader() {
            return Ok(Rebuild::Elsewhere(self.lease_holder().await));
        }
        let key = (domain.to_string(), name.to_string());
        let (active, building) = {
            let slots = self.slots.lock().expect("slots lock");
            let slot = slots.get(&key);
            (slot.and_then(|s| s.active.clone()), slot.and_then(|s| s.building.clone()))
        };
        if let Some(building) = building {
            return Ok(Rebuild::Busy(building.id.generation));
        }
        let Some((active, plugin)) = active.and_then(|a| a.plugin().map(|p| (a, p))) else {
            return Ok(Rebuild::Unknown);
        };
        let row = self
            .models
            .create_generation(domain, name, active.version, plugin.version(), GenerationRole::Building)
            .await?;
        let generation = Generation::new(&row);
        self.slots.lock().expect("slots lock").entry(key).or_default().building = Some(generation.clone());
        self.adopt(&generation, plugin).await?;
        Ok(Rebuild::Started(row.id.generation))
    }

    /// Every live generation (active and building), for operators.
    pub async fn statuses(&self) -> Vec<GenerationStatus> {
        let generations: Vec<(Arc<Generation>, &'static str)> = {
            let slots = self.slots.lock().expect("slots lock");
            let mut all: Vec<_> = slots
                .values()
                .flat_map(|s| {
                    s.active
                        .iter()
                        .map(|g| (g.clone(), "active"))
                        .chain(s.building.iter().map(|g| (g.clone(), "building")))
                })
                .collect();
            all.sort_by(|a, b| {
                (&a.0.id.domain, &a.0.id.name, a.0.id.generation).cmp(&(
                    &b.0.id.domain,
                    &b.0.id.name,
                    b.0.id.generation,
                ))
            });
            all
        };
        let mut out = Vec::with_capacity(generations.len());
        for (generation, role) in generations {
            let lag = self.events.lag(&generation.id.domain, generation.position()).await.ok();
            let policy = self.settings.policy_for(&generation.id.domain, &generation.id.name);
            out.push(status::describe(&generation, role, lag, policy));
        }
        out
    }
}
