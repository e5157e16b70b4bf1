//! One [`Config`], read from defaults, then an optional TOML file, then `CAIRN_*` environment
//! variables (nested keys with `__`, e.g. `CAIRN_LIMITS__DEADLINE_MS=250`), then command-line
//! flags; validated once at start.

mod aggregates;
mod database;
mod gateway;
mod limits;
mod queue;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use self::aggregates::AggregatesConfig;
pub use self::database::DatabaseConfig;
pub use self::gateway::{CacheConfig, GatewayConfig, ServiceConfig, read_certificates};
pub use self::limits::{DomainConfig, LimitsConfig, LimitsOverride};
pub use self::queue::QueueConfig;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The host's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve HTTP on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database and the compiled-component cache.
    pub data_dir: PathBuf,
    /// Directory of `.wasm` plugin components loaded at start.
    pub plugins_dir: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Attempts per command when its stream changes concurrently (409 after the last).
    pub command_attempts: u32,
    /// Sandbox limits of every plugin call (defaults for every domain).
    pub limits: LimitsConfig,
    /// Per-domain settings, e.g. `[domains.carriers.limits] deadline_ms = 250`.
    pub domains: BTreeMap<String, DomainConfig>,
    /// The admin API and plugin deployment.
    pub admin: AdminConfig,
    /// HTTP server timeouts.
    pub http: HttpConfig,
    /// Projection runners and the query cache.
    pub projections: ProjectionsConfig,
    /// Outside services plugins may call.
    pub gateway: GatewayConfig,
    /// The plugins' cache.
    pub cache: CacheConfig,
    /// Where events, plugins and read models live: SQLite in `data_dir` unless a PostgreSQL URL
    /// is given.
    pub database: DatabaseConfig,
    /// Asynchronous commands: workers, per-domain cap, leases, retries.
    pub queue: QueueConfig,
    /// Folded aggregate states kept in memory and stored as snapshots.
    pub aggregates: AggregatesConfig,
}

/// Projection runners and the query cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionsConfig {
    /// Events per `project` call (and per read-model transaction).
    pub batch_size: u32,
    /// Longest wait between retries of a failing event, in milliseconds.
    pub max_backoff_ms: u64,
    /// Size of the query-answer cache, in MiB of answers (JSON text and keys).
    pub query_cache_mib: u64,
    /// Queries of one domain computing at once (the rest wait, then 503 `queries-busy`), so
    /// that one domain's slow queries cannot take every read connection.
    pub max_queries_per_domain: usize,
    /// Failures on one event before the projection's failure policy applies.
    pub failure_attempts: u32,
    /// What a projection does with an event it keeps failing on: `stop` (park on it until an
    /// operator retries or skips it; queries answer 503 `projection-failed`) or `skip` (record
    /// it as skipped and go on).
    pub on_failure: crate::engine::FailurePolicy,
    /// Policies of single projections, e.g. `on_failure_for = { "orders/orders" = "skip" }`.
    pub on_failure_for: BTreeMap<String, crate::engine::FailurePolicy>,
    /// Replaced by `query_cache_mib` (the cache is bounded by bytes now); still accepted so an
    /// existing configuration file keeps starting the host, and ignored with a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_cache_entries: Option<u64>,
}

impl Default for ProjectionsConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            max_backoff_ms: 30_000,
            query_cache_mib: 64,
            max_queries_per_domain: 4,
            failure_attempts: 5,
            on_failure: crate::engine::FailurePolicy::Stop,
            on_failure_for: BTreeMap::new(),
            query_cache_entries: None,
        }
    }
}

impl ProjectionsConfig {
    /// The runners' settings; `limits` gives the cap on a projector call's writes.
    pub fn settings(&self, limits: &LimitsConfig) -> crate::engine::ProjectionSettings {
        crate::engine::ProjectionSettings {
            batch: self.batch_size.max(1),
            max_backoff: std::time::Duration::from_millis(self.max_backoff_ms.max(10)),
            max_batch_bytes: limits.max_projection_batch_mib.saturating_mul(1 << 20),
            failure_attempts: self.failure_attempts.max(1),
            on_failure: self.on_failure,
            on_failure_for: self.on_failure_for.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            ..Default::default()
        }
    }
}

/// HTTP server timeouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// How long a client may take to send its request headers, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// Deadline of a whole request (body, command, response), in milliseconds.
    pub request_timeout_ms: u64,
    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Origins allowed by CORS (`https://app.example`, or `*` for any); empty: no CORS headers,
    /// browsers on other origins are refused.
    pub cors_origins: Vec<String>,
    /// Serve HTTPS (and HTTP/2 through ALPN) with this certificate.
    pub tls: Option<HttpTlsConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 30_000,
            cors_origins: Vec::new(),
            tls: None,
        }
    }
}

/// `[http.tls]`: the server's certificate, reloaded when its files change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The admin API (`/admin/v1`) and what it accepts.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for `/admin/v1` (also `CAIRN_ADMIN_TOKEN`). Without one the admin API
    /// refuses every call.
    pub token: Option<String>,
    /// Largest plugin component accepted, in MiB.
    pub max_component_mib: usize,
    /// Most streams a shadow replay folds before activation.
    pub replay_max_streams: usize,
    /// Time budget of a shadow replay, in milliseconds.
    pub replay_budget_ms: u64,
    /// Admin requests per client address and minute (429 beyond).
    pub rate_limit_per_minute: u32,
    /// Admin requests a client may send in a burst.
    pub rate_limit_burst: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            max_component_mib: 32,
            replay_max_streams: 10_000,
            replay_budget_ms: 10_000,
            rate_limit_per_minute: 120,
            rate_limit_burst: 30,
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_component_mib", &self.max_component_mib)
            .field("replay_max_streams", &self.replay_max_streams)
            .field("replay_budget_ms", &self.replay_budget_ms)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".cairn"),
            plugins_dir: PathBuf::from(".cairn/plugins"),
            log_format: LogFormat::Text,
            max_body_bytes: 1 << 20,
            command_attempts: 5,
            limits: LimitsConfig::default(),
            domains: BTreeMap::new(),
            admin: AdminConfig::default(),
            http: HttpConfig::default(),
            projections: ProjectionsConfig::default(),
            gateway: GatewayConfig::default(),
            cache: CacheConfig::default(),
            database: DatabaseConfig::default(),
            queue: QueueConfig::default(),
            aggregates: AggregatesConfig::default(),
        }
    }
}

/// Top-level keys that `CAIRN_*` variables may set.
const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "plugins_dir",
    "log_format",
    "max_body_bytes",
    "command_attempts",
    "limits",
    "domains",
    "admin",
    "http",
    "projections",
    "gateway",
    "cache",
    "database",
    "queue",
    "aggregates",
];

impl Config {
    /// Defaults, then `file` (if any), then `CAIRN_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("the config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        let known = |key: &figment::value::UncasedStr| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
        };
        figment = figment.merge(Env::prefixed("CAIRN_").split("__").filter(known));
        let mut config: Config = figment.extract().context("reading the configuration")?;
        if let Ok(token) = std::env::var("CAIRN_ADMIN_TOKEN") {
            config.admin.token = Some(token);
        }
        if let Ok(url) = std::env::var("CAIRN_DATABASE_URL") {
            config.database.url = Some(url);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks values that would make the host misbehave.
    pub fn validate(&self) -> Result<()> {
        if self.max_body_bytes < 64 {
            bail!("max_body_bytes must be at least 64");
        }
        self.gateway.settings()?;
        self.gateway.limits()?;
        self.database.postgres()?;
        if self.http.header_read_timeout_ms == 0 || self.http.request_timeout_ms == 0 {
            bail!("http.header_read_timeout_ms and http.request_timeout_ms must be positive");
        }
        self.aggregates.validate()?;
        if self.http.shutdown_grace_ms == 0 {
            bail!("http.shutdown_grace_ms must be positive");
        }
        if let Some(origin) = self.http.cors_origins.iter().find(|o| o.as_str() != "*" && !o.contains("://")) {
            bail!("http.cors_origins: `{origin}` must be `*` or an origin such as `https://app.example`");
        }
        if let Some(tls) = &self.http.tls {
            crate::http::tls::CertificateFiles::new(&tls.cert_file, &tls.key_file).load()?;
        }
        if self.admin.rate_limit_per_minute == 0 {
            bail!("admin.rate_limit_per_minute must be positive");
        }
        if self.command_attempts == 0 {
            bail!("command_attempts must be at least 1");
        }
        if self.admin.token.as_ref().is_some_and(|t| t.len() < 16) {
            bail!("admin.token must be at least 16 characters");
        }
        if self.admin.max_component_mib == 0 {
            bail!("admin.max_component_mib must be positive");
        }
        if self.projections.query_cache_mib == 0 || self.projections.max_queries_per_domain == 0 {
            bail!("projections.query_cache_mib and projections.max_queries_per_domain must be positive");
        }
        if self.projections.failure_attempts == 0 {
            bail!("projections.failure_attempts must be at least 1");
        }
        if let Some(key) = self.projections.on_failure_for.keys().find(|k| k.split('/').count() != 2) {
            bail!("projections.on_failure_for: `{key}` must be `<domain>/<projection>`");
        }
        self.limits.validate("limits")?;
        self.queue.validate()?;
        for (domain, settings) in &self.domains {
            self.limits.with(&settings.limits).validate(&format!("domains.{domain}.limits"))?;
        }
        Ok(())
    }

    /// The HTTP settings these values describe.
    pub fn http_settings(&self) -> crate::http::HttpSettings {
        crate::http::HttpSettings {
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_millis(self.http.request_timeout_ms),
            admin_per_minute: self.admin.rate_limit_per_minute,
            admin_burst: self.admin.rate_limit_burst,
            cors_origins: self.http.cors_origins.clone(),
            https: self.http.tls.is_some(),
        }
    }

    /// The registry settings these values describe.
    pub fn registry_settings(&self) -> crate::registry::RegistrySettings {
        crate::registry::RegistrySettings {
            max_component_bytes: self.admin.max_component_mib << 20,
            replay: crate::registry::ReplaySettings {
                max_streams: self.admin.replay_max_streams,
                budget: Duration::from_millis(self.admin.replay_budget_ms),
                max_stream_bytes: self.limits.max_read_mib << 20,
                snapshot_every: self.aggregates.snapshot_every,
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail returns its own large error type
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_the_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cairn.toml", "listen = \"127.0.0.1:9000\"\n[limits]\ndeadline_ms = 250\n")?;
            jail.set_env("CAIRN_DATA_DIR", "/tmp/elsewhere");
            jail.set_env("CAIRN_LIMITS__MEMORY_MIB", "32");
            jail.set_env("CAIRN_UNRELATED_SETTING", "ignored");
            jail.set_env("CAIRN_ADMIN_TOKEN", "a-long-enough-admin-token");
            let config = Config::load(Some(Path::new("cairn.toml"))).expect("config loads");
            assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 9000)));
            assert_eq!(config.data_dir, PathBuf::from("/tmp/elsewhere"));
            assert_eq!(config.limits.deadline_ms, 250);
            assert_eq!(config.limits.memory_mib, 32);
            assert_eq!(config.max_body_bytes, 1 << 20);
            assert_eq!(config.admin.token.as_deref(), Some("a-long-enough-admin-token"));
            assert!(!format!("{config:?}").contains("a-long-enough"), "the token never reaches a log");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "listn = \"127.0.0.1:9000\"\n")?;
            assert!(Config::load(Some(Path::new("typo.toml"))).is_err());
            jail.create_file("zero.toml", "command_attempts = 0\n")?;
            let error = Config::load(Some(Path::new("zero.toml"))).unwrap_err();
            assert!(error.to_string().contains("command_attempts"));
            assert!(Config::load(Some(Path::new("missing.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn the_edge_keys_have_defaults_and_name_themselves_when_wrong() {
        let defaults = Config::default();
        assert_eq!(defaults.http.shutdown_grace_ms, 30_000);
        assert!(defaults.http.cors_origins.is_empty() && defaults.http.tls.is_none());
        figment::Jail::expect_with(|jail| {
            for (file, text, key) in [
                ("grace.toml", "[http]\nshutdown_grace_ms = 0\n", "http.shutdown_grace_ms"),
                ("cors.toml", "[http]\ncors_origins = [\"app.example\"]\n", "http.cors_origins"),
                (
                    "tls.toml",
                    "[http.tls]\ncert_file = \"missing.crt\"\nkey_file = \"missing.key\"\n",
                    "http.tls.cert_file",
                ),
            ] {
                jail.create_file(file, text)?;
                let error = Config::load(Some(Path::new(file))).unwrap_err();
                assert!(format!("{error:#}").contains(key), "{file}: {error:#}");
            }
            Ok(())
        });
    }

    #[test]
    fn the_read_side_keys_have_defaults_and_name_themselves_when_wrong() {
        let defaults = Config::default();
        assert_eq!(defaults.limits.max_projection_batch_mib, 64);
        assert_eq!((defaults.projections.query_cache_mib, defaults.projections.max_queries_per_domain), (64, 4));
        assert_eq!(defaults.projections.on_failure, crate::engine::FailurePolicy::Stop);
        figment::Jail::expect_with(|jail| {
            let policies = "[projections]\non_failure = \"skip\"\non_failure_for = { \"orders/orders\" = \"stop\" }\n";
            jail.create_file("old.toml", "[projections]\nquery_cache_entries = 10000\n")?;
            let old = Config::load(Some(Path::new("old.toml"))).expect("an older file still loads");
            assert_eq!(old.projections.query_cache_entries, Some(10_000));
            jail.create_file("policies.toml", policies)?;
            let config = Config::load(Some(Path::new("policies.toml"))).expect("config loads");
            let settings = config.projections.settings(&config.limits);
            assert_eq!(settings.policy_for("orders", "orders"), crate::engine::FailurePolicy::Stop);
            assert_eq!(settings.policy_for("orders", "stats"), crate::engine::FailurePolicy::Skip);
            assert_eq!(settings.max_batch_bytes, 64 << 20);
            for (file, text, key) in [
                ("key.toml", "[projections]\non_failure_for = { \"orders\" = \"skip\" }\n", "on_failure_for"),
                ("zero.toml", "[limits]\nmax_projection_batch_mib = 0\n", "limits.max_projection_batch_mib"),
                ("cache.toml", "[projections]\nquery_cache_mib = 0\n", "projections.query_cache_mib"),
            ] {
                jail.create_file(file, text)?;
                let error = Config::load(Some(Path::new(file))).unwrap_err();
                assert!(format!("{error:#}").contains(key), "{file}: {error:#}");
            }
            Ok(())
        });
    }
}
