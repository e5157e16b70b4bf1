//! A registry among several hosts sharing one database: each host follows the active versions
//! of the store (notified by the database, polled as a fallback), compiles versions other hosts
//! have just stored, and says which versions it has compiled. An activation first waits (at most
//! [`WAIT_FOR_HOSTS`]) until every live host has compiled the version, so the switch itself,
//! a row in the database, takes effect on every host within the notification's delay instead of
//! a compile's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Registry, RegistryError};
use crate::store::Leases;

/// How long a host's presence lasts without renewal.
const PRESENCE_TTL: Duration = Duration::from_secs(5);
/// How often it is renewed.
const PRESENCE_RENEW: Duration = Duration::from_secs(1);
/// How often the active versions are re-read without a notice.
const POLL: Duration = Duration::from_secs(5);
/// Longest wait of an activation for other hosts to compile the version.
pub const WAIT_FOR_HOSTS: Duration = Duration::from_secs(10);

/// This host among the others.
pub(super) struct Presence {
    pub(super) host_id: String,
    pub(super) leases: Arc<dyn Leases>,
}

impl Registry {
    /// Makes the active versions those of the store: another host sharing the database may
    /// have activated or rolled back (its component bytes are fetched from the store).
    /// Answers how many domains changed.
    pub async fn refresh(&self) -> Result<usize, RegistryError> {
        // Compiling first, without the change lock: an activation of this host waiting for
        // others must not keep this host from compiling what another host waits for.
        self.preload_recent().await?;
        self.refresh_active().await
    }

    /// Compiles versions stored in the last minute that are not loaded yet: a deploy through
    /// another host stores a version, then replays, then activates it, so this host is ready
    /// when the activation arrives.
    async fn preload_recent(&self) -> Result<(), RegistryError> {
        for version in self.plugins.recent_versions(60_000_000).await? {
            // A version loaded already comes from the recent set, without I/O.
            if let Err(error) = self.load_stored(&version.digest).await {
                tracing::warn!(domain = %version.domain, version = %version.version, %error,
                    "compiling a version stored by another host failed");
            }
        }
        Ok(())
    }

    async fn refresh_active(&self) -> Result<usize, RegistryError> {
        let _serialised = self.changes.lock().await;
        let mut changed = 0;
        for (domain, digest) in self.plugins.active().await? {
            if self.get(&domain).is_some_and(|p| p.digest == digest) {
                continue;
            }
            let plugin = match self.load_stored(&digest).await {
                Ok(plugin) => plugin,
                Err(error) => {
                    // The other domains still follow; this one is retried at the next refresh.
                    tracing::error!(domain, %digest, %error, "the version active on another host cannot be loaded here");
                    continue;
                }
            };
            tracing::info!(domain, version = plugin.version(), %digest, "active version changed on another host");
            self.install(plugin);
            changed += 1;
        }
        Ok(changed)
    }

    /// Follows activations made by other hosts: refreshes on every `changes` notice, and every
    /// few seconds in case a notice was lost; renews this host's presence every second.
    pub fn follow(self: Arc<Self>, mut changes: watch::Receiver<u64>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut last_refresh = Instant::now();
            loop {
                self.announce_presence().await;
                let notice = tokio::select! {
                    changed = changes.changed() => if changed.is_err() { break } else { true },
                    _ = tokio::time::sleep(PRESENCE_RENEW) => false,
                };
                if notice || last_refresh.elapsed() >= POLL {
                    last_refresh = Instant::now();
                    if let Err(error) = self.refresh().await {
                        tracing::warn!(%error, "following other hosts' activations failed; retrying");
                    }
                }
            }
        })
    }

    /// Renews this host's presence lease.
    async fn announce_presence(&self) {
        if let Some(presence) = &self.presence {
            let name = format!("host:{}", presence.host_id);
            if let Err(error) = presence.leases.acquire(&name, &presence.host_id, PRESENCE_TTL).await {
                tracing::debug!(%error, "renewing this host's presence failed");
            }
        }
    }

    /// Says that this host has `digest` compiled.
    pub(super) async fn announce_loaded(&self, digest: &str) {
        if let Some(presence) = &self.presence
            && let Err(error) = self.plugins.mark_loaded(&presence.host_id, digest).await
        {
            tracing::debug!(%error, "recording a compiled version failed");
        }
    }

    /// Waits until every live host has compiled `digest` (at most [`WAIT_FOR_HOSTS`]).
    pub(super) async fn wait_for_hosts(&self, digest: &str) {
        if self.presence.is_none() {
            return;
        }
        let started = Instant::now();
        let mut asked = false;
        loop {
            match self.plugins.hosts_without(digest).await {
                Ok(missing) if missing.is_empty() => return,
                Ok(missing) if started.elapsed() >= WAIT_FOR_HOSTS => {
                    tracing::warn!(?missing, %digest, "activating although these hosts have not compiled the version yet");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "could not check which hosts have compiled the version");
                    return;
                }
                Ok(_) if !asked => {
                    // Hosts compile what was uploaded lately by themselves; an older version
                    // (a rollback, an activation of a staged one) they are asked for.
                    asked = true;
                    if let Err(error) = self.plugins.want(digest).await {
                        tracing::warn!(%error, "could not ask the other hosts to compile the version");
                    }
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}
