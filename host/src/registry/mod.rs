//! Plugin versions: validate, store, shadow-replay, activate, roll back, hot-swap.
//!
//! Versions are immutable and content-addressed (sha256 of the component). The active version of
//! each domain lives in an `ArcSwap`: a command takes an `Arc<Plugin>` once and finishes on that
//! version whatever happens meanwhile, and a swap is one pointer store. Every change of the active
//! version is a compare-and-set in the [`PluginStore`] first (so two racing activations cannot
//! both win, and a restart restores exactly what was active), then the in-memory swap.

mod follow;
mod replay;
mod validate;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use arc_swap::ArcSwap;
use serde::Serialize;

pub use self::replay::{ReplayFailure, ReplayReport, ReplaySettings};
use crate::runtime::{LoadError, Plugin, Runtime};
use crate::store::{Activation, EventStore, PluginStore, PluginStoreError, PluginVersion, SaveOutcome, StoreError};

/// Recently used versions kept loaded (compiled and pre-instantiated), so that activation and
/// rollback never recompile.
const LOADED_VERSIONS: usize = 32;

/// Registry settings.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// How much of a domain the shadow replay reads.
    pub replay: ReplaySettings,
}

/// Whether a deploy makes the version active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivateMode {
    /// Activate it (after a passing shadow replay).
    Yes,
    /// Store it only (staged).
    No,
    /// Activate it only when the domain has no active version (plugins directory at start).
    IfNoneActive,
}

/// Why a registry operation failed; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The bytes are not a component (400).
    #[error("{0}")]
    NotAComponent(String),
    /// Over the size cap (413).
    #[error("the component is {size} bytes; the cap is {cap} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The cap.
        cap: usize,
    },
    /// A component that cannot serve as a plugin: unknown import, missing export, bad `describe` (422).
    #[error("{0}")]
    Invalid(String),
    /// The semantic version is taken by other bytes (409).
    #[error(transparent)]
    VersionTaken(PluginStoreError),
    /// A racing activation changed the active version first (409).
    #[error("the active version of `{domain}` changed while this request ran; look again and retry")]
    ActiveChanged {
        /// The domain.
        domain: String,
    },
    /// The candidate cannot fold existing streams (422).
    #[error("version {version} of `{domain}` cannot fold {} existing stream(s); the active version keeps serving", .report.failures.len())]
    ReplayFailed {
        /// The domain.
        domain: String,
        /// The candidate's version.
        version: String,
        /// What failed.
        report: ReplayReport,
    },
    /// No such domain (404).
    #[error("no domain `{}` has been deployed", crate::text::quote(.0))]
    UnknownDomain(String),
    /// No such version (404).
    #[error("`{}` has no version `{}`", crate::text::quote(.domain), crate::text::quote(.selector))]
    UnknownVersion {
        /// The domain.
        domain: String,
        /// What was asked for.
        selector: String,
    },
    /// Nothing to roll back to (409).
    #[error("`{}` has no previously active version to roll back to", crate::text::quote(.0))]
    NoPreviousVersion(String),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PluginStoreError> for RegistryError {
    fn from(error: PluginStoreError) -> Self {
        match error {
            PluginStoreError::VersionTaken { .. } => Self::VersionTaken(error),
            PluginStoreError::ActiveChanged { domain, .. } => Self::ActiveChanged { domain },
            PluginStoreError::Store(e) => Self::Store(e),
        }
    }
}

impl From<LoadError> for RegistryError {
    fn from(error: LoadError) -> Self {
        match error {
            LoadError::Compile(_) => Self::NotAComponent(error.to_string()),
            LoadError::Link(_) | LoadError::World(_) | LoadError::Describe(_) => Self::Invalid(error.to_string()),
        }
    }
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// The domain.
    pub domain: String,
    /// Its semantic version.
    pub version: String,
    /// sha256 of the component.
    pub digest: String,
    /// False when these exact bytes were already stored.
    pub newly_stored: bool,
    /// Whether this version is now the active one.
    pub active: bool,
    /// The shadow replay against the domain's streams.
    pub replay: ReplayReport,
    /// What the version's `describe` reported.
    pub describe: serde_json::Value,
}

/// The active plugin of every domain, and the operations that change it.
pub struct Registry {
    active: ArcSwap<HashMap<String, Arc<Plugin>>>,
    loaded: Mutex<Vec<Arc<Plugin>>>,
    /// Serialises activations on this host, so the store's order is the in-memory order.
    changes: tokio::sync::Mutex<()>,
    runtime: Arc<Runtime>,
    plugins: Arc<dyn PluginStore>,
    events: Arc<dyn EventStore>,
    settings: RegistrySettings,
    /// Every plugin that becomes active, for the rooms that follow activations (projections).
    activated: tokio::sync::broadcast::Sender<Arc<Plugin>>,
    /// This host among others sharing the database, if any (see [`follow`]).
    presence: Option<follow::Presence>,
}

impl Registry {
    /// An empty registry; [`Registry::restore`] fills it.
    pub fn new(
        runtime: Arc<Runtime>,
        plugins: Arc<dyn PluginStore>,
        events: Arc<dyn EventStore>,
        settings: RegistrySettings,
    ) -> Self {
        Self {
            active: ArcSwap::default(),
            loaded: Mutex::default(),
            changes: tokio::sync::Mutex::new(()),
            runtime,
            plugins,
            events,
            settings,
            activated: tokio::sync::broadcast::channel(64).0,
            presence: None,
        }
    }

    /// Shares the database with other hosts: this one announces itself as `host_id` (a lease),
    /// records the versions it has compiled, and activations wait for every live host to have
    /// compiled the version first (see [`follow`]).
    pub fn with_presence(mut self, host_id: String, leases: Arc<dyn crate::store::Leases>) -> Self {
        self.presence = Some(follow::Presence { host_id, leases });
        self
    }

    /// Plugins as they become active, from now on (a lagging receiver should resync from
    /// [`Registry::all`]).
    pub fn activations(&self) -> tokio::sync::broadcast::Receiver<Arc<Plugin>> {
        self.activated.subscribe()
    }

    /// A stored version of `domain` by semantic version, loaded (from the recent set if there).
    pub async fn load_version(&self, domain: &str, version: &str) -> Result<Arc<Plugin>, RegistryError> {
        let stored = self.find_version(domain, version).await?;
        self.load_stored(&stored.digest).await
    }

    /// The active plugin of `domain`.
    pub fn get(&self, domain: &str) -> Option<Arc<Plugin>> {
        self.active.load().get(domain).cloned()
    }

    /// Every active plugin, sorted by domain.
    pub fn all(&self) -> Vec<Arc<Plugin>> {
        let mut plugins: Vec<_> = self.active.load().values().cloned().collect();
        plugins.sort_by(|a, b| a.domain().cmp(b.domain()));
        plugins
    }

    /// Serves a domain from native code linked into this process (see
    /// [`crate::runtime::NativeDomain`]): no component, no sandbox, nothing stored (a restart
    /// forgets it). For benchmarks that measure what the sandbox costs.
    pub fn install_native(&self, domain: Arc<dyn crate::runtime::NativeDomain>) -> Result<Arc<Plugin>, RegistryError> {
        let plugin = Plugin::native(self.runtime.clone(), domain)?;
        self.install(plugin.clone());
        Ok(plugin)
    }

    /// Largest component accepted, in bytes.
    pub fn max_component_bytes(&self) -> usize {
        self.settings.max_component_bytes
    }

    /// The stored versions and activation history of `domain`.
    pub async fn history(&self, domain: &str) -> Result<(Vec<PluginVersion>, Vec<Activation>), RegistryError> {
        let versions = self.plugins.versions(domain).await?;
        if versions.is_empty() {
            return Err(RegistryError::UnknownDomain(domain.to_string()));
        }
        Ok((versions, self.plugins.activations(domain).await?))
    }

    /// Restores the active versions from the store, then deploys every `*.wasm` of `dir`
    /// (activating one only where its domain has no active version yet).
    pub async fn restore(&self, dir: Option<&Path>) -> anyhow::Result<()> {
        for (domain, digest) in self.plugins.active().await? {
            let plugin = self.load_stored(&digest).await.with_context(|| format!("restoring {domain} {digest}"))?;
            self.install(plugin);
        }
        let Some(dir) = dir else { return Ok(()) };
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading the plugins directory {} (set it with --plugins)", dir.display()))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let report = match self.deploy(bytes, ActivateMode::IfNoneActive).await {
                // Another host sharing the database activated a version first: that one stays.
                Err(RegistryError::ActiveChanged { .. }) => {
                    self.refresh().await?;
                    continue;
                }
                other => other.with_context(|| format!("loading plugin {}", path.display()))?,
            };
            tracing::info!(
                domain = report.domain,
                version = report.version,
                digest = report.digest,
                active = report.active,
                file = %path.display(),
                "plugin file deployed"
            );
        }
        Ok(())
    }

    /// Validates, stores and (per `mode`) activates a component.
    pub async fn deploy(&self, bytes: Vec<u8>, mode: ActivateMode) -> Result<DeployReport, RegistryError> {
        validate::check_bytes(&bytes, self.settings.max_component_bytes)?;
        let runtime = self.runtime.clone();
        let (plugin, bytes) = tokio::task::spawn_blocking(move || (runtime.load(&bytes), bytes))
            .await
            .map_err(|e| StoreError(format!("the load task failed: {e}")))?;
        let plugin = plugin?;
        self.remember(&plugin);
        self.announce_loaded(&plugin.digest).await;
        let domain = plugin.domain().to_string();
        let expected = self.get(&domain).map(|p| p.digest.clone());
        let describe = plugin.description();
        let record = PluginVersion {
            digest: plugin.digest.clone(),
            domain: domain.clone(),
            version: plugin.version().to_string(),
            size: bytes.len() as u64,
            description: describe.to_string(),
            uploaded_at_micros: crate::store::now_micros(),
        };
        let newly_stored = self.plugins.save_version(&record, &bytes).await? == SaveOutcome::Saved;
        let replay = replay::shadow_replay(self.events.as_ref(), &plugin, &self.settings.replay).await?;
        let already_active = expected.as_deref() == Some(plugin.digest.as_str());
        let wanted = match mode {
            ActivateMode::Yes => !already_active,
            ActivateMode::No => false,
            ActivateMode::IfNoneActive => expected.is_none(),
        };
        if wanted {
            if !replay.passed() {
                return Err(RegistryError::ReplayFailed { domain, version: record.version, report: replay });
            }
            self.switch(plugin.clone(), expected.as_deref(), "activate").await?;
        }
        Ok(DeployReport {
            domain,
            version: record.version,
            digest: record.digest,
            newly_stored,
            active: wanted || already_active,
            replay,
            describe,
        })
    }

    /// Activates a stored version (by semantic version or digest) after a passing shadow replay.
    /// `expected` is the digest the caller believes active (default: the one active now).
    pub async fn activate(
        &self,
        domain: &str,
        selector: &str,
        expected: Option<&str>,
    ) -> Result<(Activation, ReplayReport), RegistryError> {
        let current = self.get(domain).map(|p| p.digest.clone());
        let expected = expected.map(str::to_string).or(current.clone());
        let target = self.find_version(domain, selector).await?;
        let plugin = self.load_stored(&target.digest).await?;
        let replay = replay::shadow_replay(self.events.as_ref(), &plugin, &self.settings.replay).await?;
        if !replay.passed() {
            return Err(RegistryError::ReplayFailed {
                domain: domain.to_string(),
                version: target.version,
                report: replay,
            });
        }
        let activation = self.switch(plugin, expected.as_deref(), "activate").await?;
        Ok((activation, replay))
    }

    /// Rolls back to the previously active version, or to `selector`; no replay: instant.
    pub async fn rollback(&self, domain: &str, selector: Option<&str>) -> Result<Activation, RegistryError> {
        if self.plugins.versions(domain).await?.is_empty() {
            return Err(RegistryError::UnknownDomain(domain.to_string()));
        }
        let current = self.get(domain).map(|p| p.digest.clone());
        let target = match selector {
            Some(selector) => self.find_version(domain, selector).await?.digest,
            None => self
                .plugins
                .activations(domain)
                .await?
                .last()
                .and_then(|a| a.previous_digest.clone())
                .ok_or_else(|| RegistryError::NoPreviousVersion(domain.to_string()))?,
        };
        let plugin = self.load_stored(&target).await?;
        self.switch(plugin, current.as_deref(), "rollback").await
    }

    /// A stored version of `domain` by semantic version, digest, or a digest prefix of 12+ characters.
    pub async fn find_version(&self, domain: &str, selector: &str) -> Result<PluginVersion, RegistryError> {
        let versions = self.plugins.versions(domain).await?;
        if versions.is_empty() {
            return Err(RegistryError::UnknownDomain(domain.to_string()));
        }
        versions
            .into_iter()
            .find(|v| {
                v.version == selector
                    || v.digest == selector
                    || (selector.len() >= 12 && v.digest.starts_with(selector))
            })
            .ok_or_else(|| RegistryError::UnknownVersion { domain: domain.to_string(), selector: selector.to_string() })
    }

    /// Compare-and-set in the store, then the in-memory swap, under this host's change lock.
    async fn switch(
        &self,
        plugin: Arc<Plugin>,
        expected: Option<&str>,
        action: &str,
    ) -> Result<Activation, RegistryError> {
        // Waiting for the other hosts to compile happens before taking the change lock: this
        // host keeps following (and compiling for) the others meanwhile.
        self.wait_for_hosts(&plugin.digest).await;
        let _serialised = self.changes.lock().await;
        let activation = self.plugins.set_active(plugin.domain(), &plugin.digest, expected, action).await?;
        tracing::info!(
            domain = plugin.domain(),
            version = plugin.version(),
            digest = %plugin.digest,
            previous = activation.previous_digest.as_deref().unwrap_or("-"),
            action,
            "active version switched"
        );
        self.install(plugin);
        Ok(activation)
    }

    fn install(&self, plugin: Arc<Plugin>) {
        self.remember(&plugin);
        self.active.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(plugin.domain().to_string(), plugin.clone());
            map
        });
        let _ = self.activated.send(plugin);
    }

    /// A stored version, loaded: from the recent set, else from its stored bytes.
    async fn load_stored(&self, digest: &str) -> Result<Arc<Plugin>, RegistryError> {
        if let Some(plugin) = self.loaded.lock().expect("loaded lock").iter().find(|p| p.digest == digest) {
            return Ok(plugin.clone());
        }
        let bytes = self
            .plugins
            .component(digest)
            .await?
            .ok_or_else(|| StoreError(format!("component {digest} is recorded but its bytes are missing")))?;
        let runtime = self.runtime.clone();
        let plugin = tokio::task::spawn_blocking(move || runtime.load(&bytes))
            .await
            .map_err(|e| StoreError(format!("the load task failed: {e}")))??;
        self.remember(&plugin);
        self.announce_loaded(&plugin.digest).await;
        Ok(plugin)
    }

    fn remember(&self, plugin: &Arc<Plugin>) {
        let mut loaded = self.loaded.lock().expect("loaded lock");
        loaded.retain(|p| p.digest != plugin.digest);
        loaded.push(plugin.clone());
        if loaded.len() > LOADED_VERSIONS {
            loaded.remove(0);
        }
    }
}
