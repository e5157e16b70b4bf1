//! # Cairn: a host runtime for event-sourced domain logic in WebAssembly components
//!
//! Plugins (built with `cairn-sdk`) decide; the host acts. Data walks one way:
//! [`http`] → [`engine`] → [`runtime`] (the plugin decides) → [`engine`] → [`store`].
//! [`registry`] holds the active plugin version of each domain and swaps it at runtime.
//! [`start`] wires the rooms together and serves HTTP until shut down.

pub mod bindings;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod engine;
pub mod http;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod text;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use config::Config;

/// A host serving HTTP in the background.
pub struct RunningHost {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    /// The follower of other hosts' activations.
    background: Vec<JoinHandle<()>>,
    /// The queue and outbox workers, told to stop claiming through `stop_workers`.
    workers: JoinHandle<()>,
    stop_workers: watch::Sender<engine::Stop>,
    /// How long a stop waits for the requests, commands and calls under way.
    grace: std::time::Duration,
    projections: Arc<engine::Projections>,
    /// The asynchronous commands, whose jobs a stop releases.
    commands: Arc<engine::AsyncCommands>,
    /// The outbox worker, whose calls a stop releases.
    outbox: Arc<engine::OutboxWorker>,
    /// The plugins it serves.
    registry: Arc<registry::Registry>,
}

impl RunningHost {
    /// The address it listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The plugins it serves (benchmarks install native domains through it).
    pub fn registry(&self) -> &Arc<registry::Registry> {
        &self.registry
    }

    /// Stops accepting connections and claiming queued commands and outbox calls; the requests,
    /// commands and calls under way get the grace period (`http.shutdown_grace_ms`) to finish;
    /// what is still running then is released (for any host, or the next start, to take at
    /// once; its idempotency key keeps it from being applied twice), and the data directory too.
    pub async fn shutdown(mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.grace;
        let (stopped, _) = oneshot::channel();
        let _ = std::mem::replace(&mut self.shutdown, stopped).send(());
        self.stop_workers.send_replace(engine::Stop::Drain);
        let served = match (&mut self.task).await {
            Ok(served) => served.context("serving HTTP"),
            Err(panicked) => Err(anyhow::Error::new(panicked).context("the server task panicked")),
        };
        // The workers are stopped (and their work released) whatever became of the server.
        self.stop(deadline).await;
        served
    }

    /// Serves until the server stops by itself (an I/O error).
    pub async fn wait(mut self) -> Result<()> {
        let result = match (&mut self.task).await {
            Ok(served) => served.context("serving HTTP"),
            Err(panicked) => Err(anyhow::Error::new(panicked).context("the server task panicked")),
        };
        self.stop_workers.send_replace(engine::Stop::Drain);
        let deadline = tokio::time::Instant::now() + self.grace;
        self.stop(deadline).await;
        result
    }

    /// After the server: the workers finish what is under way until `deadline`, then the rest is
    /// cut off and released.
    async fn stop(self, deadline: tokio::time::Instant) {
        let Self { shutdown, background, mut workers, stop_workers, projections, commands, outbox, .. } = self;
        drop(shutdown);
        if tokio::time::timeout_at(deadline, &mut workers).await.is_err() {
            tracing::warn!("the grace period is over: releasing the commands and calls still running");
            stop_workers.send_replace(engine::Stop::Cut);
            // Cut off, the workers return once their tasks are dropped (a task stuck past that
            // is aborted: it may hold the store a moment longer).
            if tokio::time::timeout(std::time::Duration::from_secs(5), &mut workers).await.is_err() {
                workers.abort();
                let _ = workers.await;
            }
        }
        stop_background(background).await;
        commands.release().await;
        outbox.release().await;
        projections.stop_all().await;
    }
}

async fn stop_background(tasks: Vec<JoinHandle<()>>) {
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Opens the store, loads the plugins, binds `config.listen` and serves in the background.
pub async fn start(config: &Config) -> Result<RunningHost> {
    // One crypto provider for every TLS client and server (gateway, PostgreSQL, Redis, HTTPS).
    let _ = rustls::crypto::ring::default_provider().install_default();
    config.validate()?;
    if config.projections.query_cache_entries.is_some() {
        tracing::warn!(
            "projections.query_cache_entries is ignored: the answer cache is bounded by projections.query_cache_mib"
        );
    }
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let postgres = config.database.postgres()?;
    let stores = store::Stores::open(postgres.as_ref(), &config.data_dir, config.database.sqlite_synchronous).await?;
    let store = stores.events.clone();
    let runtime = runtime::Runtime::new(
        config.limits.engine(),
        config.limits.policy(&config.domains),
        Some(config.data_dir.join("compiled")),
        Some(config.data_dir.join("scratch")),
    )?;
    let host_id = format!("{addr}/{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let mut registry =
        registry::Registry::new(runtime, stores.plugins.clone(), store.clone(), config.registry_settings());
    if stores.notifications.is_some() {
        registry = registry.with_presence(host_id.clone(), stores.leases.clone());
    }
    let registry = Arc::new(registry);
    let plugins_dir = config.plugins_dir.exists() || config.plugins_dir != Config::default().plugins_dir;
    registry.restore(plugins_dir.then_some(config.plugins_dir.as_path())).await?;
    let mut background = Vec::new();
    if let Some(notifications) = &stores.notifications {
        background.push(registry.clone().follow(notifications.registry()));
    }
    let queue = std::time::Duration::from_millis(config.limits.queue_ms);
    let gateway = Arc::new(
        capabilities::gateway::Gateway::new(config.gateway.settings()?)?.with_limits(config.gateway.limits()?),
    );
    let cache = Arc::new(config.cache.build()?);
    let engine = Arc::new(
        engine::CommandEngine::new(registry.clone(), store.clone(), config.command_attempts, queue)
            .with_gateway(gateway.clone())
            .with_cache(cache.clone())
            .with_max_event_depth(config.limits.max_event_depth)
            .with_max_read_bytes(config.limits.max_read_mib << 20)
            .with_states(config.aggregates.state_cache_bytes(), config.aggregates.snapshot_every),
    );
    let commands =
        engine::AsyncCommands::new(engine.clone(), stores.queue.clone(), config.queue.settings(), host_id.clone());
    let cluster = engine::ClusterSettings {
        host_id,
        leases: stores.leases.clone(),
        generations: stores.notifications.as_ref().map(|n| n.generations()),
    };
    let projections = engine::Projections::start(
        store.clone(),
        stores.models.clone(),
        registry.clone(),
        config.projections.settings(&config.limits),
        cluster,
    )
    .await
    .context("starting the projections")?;
    // The background workers: queued commands, and the outbox's gateway calls.
    let outbox_worker = engine::OutboxWorker::new(stores.outbox.clone(), gateway.clone(), store.clone());
    let (queued, delivering) = (commands.clone(), outbox_worker.clone());
    let (stop_workers, stopping) = watch::channel(engine::Stop::Run);
    let stop_outbox = stopping.clone();
    let workers = tokio::spawn(async move {
        tokio::join!(queued.work(stopping), delivering.work(stop_outbox));
    });
    let queries = Arc::new(engine::Queries::new(
        registry.clone(),
        projections.clone(),
        stores.models.clone(),
        engine::QuerySettings {
            cache_bytes: config.projections.query_cache_mib.saturating_mul(1 << 20),
            max_per_domain: config.projections.max_queries_per_domain,
            queue: std::time::Duration::from_millis(config.limits.queue_ms),
        },
    ));
    let admin = http::AdminState::new(registry.clone(), config.admin.token.clone());
    let state = http::AppState {
        engine,
        store,
        registry: registry.clone(),
        admin,
        commands: commands.clone(),
        projections: projections.clone(),
        queries,
        gateway,
        cache,
        outbox: stores.outbox.clone(),
    };
    let app = http::app(state, &config.http_settings());
    let (shutdown, stop) = oneshot::channel::<()>();
    let tls = match &config.http.tls {
        Some(tls) => Some(http::tls::server_config(http::tls::CertificateFiles::new(&tls.cert_file, &tls.key_file))?),
        None => None,
    };
    let serve = http::server::ServeSettings {
        header_read_timeout: std::time::Duration::from_millis(config.http.header_read_timeout_ms),
        grace: std::time::Duration::from_millis(config.http.shutdown_grace_ms),
        tls,
    };
    let https = serve.tls.is_some();
    let task = tokio::spawn(http::server::serve(listener, app, serve, async move {
        let _ = stop.await;
    }));
    tracing::info!(%addr, https, backend = stores.backend, data = %config.data_dir.display(),
        plugins = %config.plugins_dir.display(), "cairn is serving");
    let grace = std::time::Duration::from_millis(config.http.shutdown_grace_ms);
    Ok(RunningHost {
        addr,
        shutdown,
        task,
        background,
        workers,
        stop_workers,
        grace,
        projections,
        commands,
        outbox: outbox_worker,
        registry,
    })
}
