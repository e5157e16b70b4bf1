//! Which plugin version serves each domain. The map is swapped atomically (`ArcSwap`): a command
//! takes an `Arc<Plugin>` once and finishes on that version whatever happens meanwhile.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arc_swap::ArcSwap;

use crate::runtime::{Plugin, Runtime};

/// The active plugin of every domain.
#[derive(Default)]
pub struct Registry {
    active: ArcSwap<HashMap<String, Arc<Plugin>>>,
}

impl Registry {
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

    /// Makes `plugin` the active version of its domain; returns the one it replaced.
    pub fn activate(&self, plugin: Arc<Plugin>) -> Option<Arc<Plugin>> {
        let mut previous = None;
        self.active.rcu(|map| {
            let mut map = HashMap::clone(map);
            previous = map.insert(plugin.domain().to_string(), plugin.clone());
            map
        });
        previous
    }

    /// Loads every `*.wasm` file of `dir` and activates it. Fails on the first file that does not
    /// load, naming it, and when two files claim the same domain.
    pub fn load_dir(&self, runtime: &Arc<Runtime>, dir: &Path) -> Result<()> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading the plugins directory {} (set it with --plugins)", dir.display()))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let plugin = runtime.load(&bytes).with_context(|| format!("loading plugin {}", path.display()))?;
            if self.get(plugin.domain()).is_some() {
                bail!("{} declares domain `{}`, which another file already loaded", path.display(), plugin.domain());
            }
            tracing::info!(
                domain = plugin.domain(),
                version = plugin.version(),
                digest = %plugin.digest,
                file = %path.display(),
                "plugin loaded"
            );
            self.activate(plugin);
        }
        Ok(())
    }
}
