//! Compiled components, cached in memory and on disk, keyed by the sha256 of the component
//! bytes and the engine's compatibility hash. Only files this host compiled and wrote into its
//! own data directory are ever deserialized: deserializing is unsafe on untrusted bytes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(super) struct CompileCache {
    dir: Option<PathBuf>,
    engine_tag: String,
    memory: Mutex<HashMap<String, Component>>,
}

impl CompileCache {
    pub(super) fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the compile cache {}", dir.display()))?;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self { dir, engine_tag: format!("{:016x}", hasher.finish()), memory: Mutex::default() })
    }

    pub(super) fn get_or_compile(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> Result<Component> {
        if let Some(component) = self.memory.lock().expect("compile cache lock").get(digest) {
            return Ok(component.clone());
        }
        let component = self.load_from_disk(engine, digest).unwrap_or_else(|| self.compile(engine, digest, bytes))?;
        self.memory.lock().expect("compile cache lock").insert(digest.to_string(), component.clone());
        Ok(component)
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join(format!("{digest}-{}.cwasm", self.engine_tag)))
    }

    fn load_from_disk(&self, engine: &Engine, digest: &str) -> Option<Result<Component>> {
        let path = self.path(digest)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the file lives in this host's own cache directory and was written by
        // `compile` below from a component this engine compiled; its name carries the engine's
        // compatibility hash, and wasmtime checks the header before using it.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(Ok(component)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding an unreadable compiled component");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn compile(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> Result<Component> {
        let started = std::time::Instant::now();
        let component = Component::new(engine, bytes).map_err(anyhow::Error::from)?;
        tracing::info!(digest, elapsed_ms = started.elapsed().as_millis() as u64, "compiled component");
        if let Some(path) = self.path(digest) {
            let serialized = component.serialize().map_err(anyhow::Error::from)?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, serialized)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(component)
    }
}
