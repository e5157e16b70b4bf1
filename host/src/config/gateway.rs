//! `[gateway.services.<name>]`: the outside services plugins may call, as the operator names
//! them: base URL, timeout, retry policy, breaker thresholds, response cap, and the domains
//! allowed to use each one. And `[cache]`: the plugins' cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::capabilities::gateway::{BreakerSettings, RequestLimits, ServiceSettings, ServiceTls};

/// Every configured service, and the caps on what plugins send them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// By name, as plugins call them.
    pub services: BTreeMap<String, ServiceConfig>,
    /// Most headers a plugin's request may carry.
    pub max_request_headers: usize,
    /// Most bytes of header names and values a plugin's request may carry, in KiB.
    pub max_request_header_kib: usize,
    /// Most bytes of one enqueued call (path, headers, body, idempotency key), in KiB.
    pub max_enqueued_kib: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let limits = RequestLimits::default();
        Self {
            services: BTreeMap::new(),
            max_request_headers: limits.max_headers,
            max_request_header_kib: limits.max_header_bytes >> 10,
            max_enqueued_kib: limits.max_enqueued_bytes >> 10,
        }
    }
}

/// One service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Where paths are joined (`https://rates.example/api/`).
    pub base_url: String,
    /// Domains that may call it; empty: none.
    pub allowed_domains: Vec<String>,
    /// Per attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff, doubled per retry (with full jitter), in milliseconds.
    pub backoff_ms: u64,
    /// Longest backoff, in milliseconds.
    pub max_backoff_ms: u64,
    /// Statuses that are retried (and count as failures for the breaker).
    pub retry_statuses: Vec<u16>,
    /// Whether connection errors and timeouts are retried.
    pub retry_errors: bool,
    /// Failures within `breaker_window_ms` that open the circuit.
    pub breaker_failures: u32,
    /// The breaker's window, in milliseconds.
    pub breaker_window_ms: u64,
    /// How long the circuit stays open before a probe, in milliseconds.
    pub breaker_open_ms: u64,
    /// Largest response body, in KiB.
    pub max_response_kib: usize,
    /// A PEM file of CA certificates trusted for this service on top of the web PKI roots
    /// (a private CA).
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (chain) presented to the service (mutual TLS); needs
    /// `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            allowed_domains: Vec::new(),
            timeout_ms: 2_000,
            max_attempts: 3,
            backoff_ms: 100,
            max_backoff_ms: 2_000,
            retry_statuses: vec![429, 502, 503, 504],
            retry_errors: true,
            breaker_failures: 5,
            breaker_window_ms: 30_000,
            breaker_open_ms: 10_000,
            max_response_kib: 1024,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

impl GatewayConfig {
    /// The caps on plugins' requests; fails on a cap of zero or past what HTTP can carry.
    pub fn limits(&self) -> Result<RequestLimits> {
        if !(1..=1024).contains(&self.max_request_headers) {
            bail!("gateway.max_request_headers must be between 1 and 1024");
        }
        if !(1..=1024).contains(&self.max_request_header_kib) {
            bail!("gateway.max_request_header_kib must be between 1 and 1024");
        }
        if !(1..=65_536).contains(&self.max_enqueued_kib) {
            bail!("gateway.max_enqueued_kib must be between 1 and 65536");
        }
        Ok(RequestLimits {
            max_headers: self.max_request_headers,
            max_header_bytes: self.max_request_header_kib << 10,
            max_enqueued_bytes: self.max_enqueued_kib << 10,
        })
    }

    /// Checks every service and turns it into the capability's settings.
    pub fn settings(&self) -> Result<BTreeMap<String, ServiceSettings>> {
        let mut out = BTreeMap::new();
        for (name, service) in &self.services {
            let base = reqwest::Url::parse(&service.base_url)
                .map_err(|e| anyhow::anyhow!("gateway.services.{name}.base_url `{}`: {e}", service.base_url))?;
            if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
                bail!("gateway.services.{name}.base_url must be an http(s) URL");
            }
            if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
                bail!("gateway.services.{name}.base_url must have no query, fragment or credentials");
            }
            if service.max_attempts == 0 || service.timeout_ms == 0 {
                bail!("gateway.services.{name}: max_attempts and timeout_ms must be at least 1");
            }
            out.insert(
                name.clone(),
                ServiceSettings {
                    base,
                    allowed_domains: service.allowed_domains.clone(),
                    timeout: Duration::from_millis(service.timeout_ms),
                    max_attempts: service.max_attempts,
                    backoff: Duration::from_millis(service.backoff_ms),
                    max_backoff: Duration::from_millis(service.max_backoff_ms.max(service.backoff_ms)),
                    retry_statuses: service.retry_statuses.clone(),
                    retry_errors: service.retry_errors,
                    breaker: BreakerSettings {
                        failure_threshold: service.breaker_failures.max(1),
                        window: Duration::from_millis(service.breaker_window_ms),
                        open_for: Duration::from_millis(service.breaker_open_ms),
                    },
                    max_response_bytes: service.max_response_kib << 10,
                    tls: service.tls(name)?,
                },
            );
        }
        Ok(out)
    }
}

impl ServiceConfig {
    /// The service's private CA and client identity, read and checked now so that a wrong file
    /// fails the start naming its key.
    fn tls(&self, name: &str) -> Result<ServiceTls> {
        use rustls::pki_types::pem::PemObject;
        let key = |field: &str| format!("gateway.services.{name}.{field}");
        let ca_pem = match &self.ca_file {
            Some(path) => Some(read_certificates(path, &key("ca_file"))?),
            None => None,
        };
        let identity_pem = match (&self.client_cert_file, &self.client_key_file) {
            (None, None) => None,
            (Some(cert), Some(private)) => {
                let mut pem = read_certificates(cert, &key("client_cert_file"))?;
                let key_pem = std::fs::read(private)
                    .map_err(|e| anyhow::anyhow!("{} `{}`: {e}", key("client_key_file"), private.display()))?;
                rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    anyhow::anyhow!("{} `{}` holds no PEM private key: {e}", key("client_key_file"), private.display())
                })?;
                pem.push(b'\n');
                pem.extend_from_slice(&key_pem);
                Some(pem)
            }
            _ => bail!("{} and {} go together", key("client_cert_file"), key("client_key_file")),
        };
        Ok(ServiceTls { ca_pem, identity_pem })
    }
}

/// The PEM text of `path`, which must hold at least one certificate; errors name `key`.
pub fn read_certificates(path: &Path, key: &str) -> Result<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("{key} `{}`: {e}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
    match certificates {
        Ok(certificates) if !certificates.is_empty() => Ok(pem),
        Ok(_) => bail!("{key} `{}` holds no PEM certificate", path.display()),
        Err(e) => bail!("{key} `{}` is not valid PEM: {e}", path.display()),
    }
}

/// The plugins' cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Memory each domain's entries may hold (keys, values and tags), in MiB. With Redis it caps
    /// each value; the server's `maxmemory` bounds the rest.
    pub quota_mib: usize,
    /// `memory` (in-process, one host) or `redis` (shared by several hosts).
    pub backend: String,
    /// The Redis server, for `backend = "redis"` (`redis://127.0.0.1:6379`).
    pub redis_url: Option<String>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { quota_mib: 64, backend: "memory".into(), redis_url: None }
    }
}

impl CacheConfig {
    /// The cache this configuration names (connecting to Redis if it names Redis).
    pub fn build(&self) -> Result<crate::capabilities::cache::Cache> {
        use crate::capabilities::cache::{Cache, CacheBackend, LocalCache, RedisCache};
        let quota = self.quota_mib.max(1) << 20;
        let backend: std::sync::Arc<dyn CacheBackend> = match self.backend.as_str() {
            "memory" => std::sync::Arc::new(LocalCache::new(quota as u64)),
            "redis" => {
                let Some(url) = &self.redis_url else { bail!("cache.backend = \"redis\" needs cache.redis_url") };
                let redis = RedisCache::connect(url, quota as u64)
                    .map_err(|e| anyhow::anyhow!("connecting to the cache's Redis at {url}: {e}"))?;
                std::sync::Arc::new(redis)
            }
            other => bail!("cache.backend must be `memory` or `redis`, not `{other}`"),
        };
        Ok(Cache::new(backend, quota))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_are_checked_at_start_and_errors_name_their_key() {
        let dir = tempfile::tempdir().expect("a directory");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("written");
        let service = |adjust: fn(&mut ServiceConfig, &Path)| {
            let mut service =
                ServiceConfig { base_url: "https://rates.example/api/".into(), ..ServiceConfig::default() };
            adjust(&mut service, dir.path());
            GatewayConfig { services: [("rates".to_string(), service)].into(), ..GatewayConfig::default() }.settings()
        };
        assert!(service(|_, _| {}).is_ok(), "https:// needs no file: the web PKI roots");
        type Adjust = fn(&mut ServiceConfig, &Path);
        let cases: [(Adjust, &str); 4] = [
            (|s, d| s.ca_file = Some(d.join("missing.pem")), "gateway.services.rates.ca_file"),
            (|s, d| s.ca_file = Some(d.join("garbage.pem")), "gateway.services.rates.ca_file"),
            (|s, d| s.client_cert_file = Some(d.join("garbage.pem")), "client_key_file go together"),
            (
                |s, d| {
                    s.client_cert_file = Some(d.join("missing.crt"));
                    s.client_key_file = Some(d.join("missing.key"));
                },
                "gateway.services.rates.client_cert_file",
            ),
        ];
        for (adjust, key) in cases {
            let error = service(adjust).expect_err("refused");
            assert!(format!("{error:#}").contains(key), "{error:#}");
        }
    }

    #[test]
    fn a_rediss_url_is_understood() {
        assert!(redis::Client::open("rediss://127.0.0.1:1/").is_ok(), "TLS to Redis is built in");
    }
}
