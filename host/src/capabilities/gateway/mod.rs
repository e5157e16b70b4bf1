//! `cairn:domain/gateway` for command handlers: calls to operator-named outside services with a
//! timeout per attempt, retries with exponential backoff and full jitter, a circuit breaker per
//! service (shared by every domain), a cap on the response read before the plugin sees it, and
//! paths that cannot leave the service's base URL. Only domains in a service's
//! `allowed_domains` may call it, and only inside `handle`.

mod breaker;
mod host;
mod limits;
mod path;
mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use self::breaker::{Admission, Breaker, BreakerSettings, BreakerState};
pub use self::limits::RequestLimits;
pub use self::tls::ServiceTls;
pub use self::tls::failure as tls_failure;
use crate::bindings::gateway::{GatewayError, Request, Response};

/// One service's policy, from `[gateway.services.<name>]`.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Where paths are joined.
    pub base: reqwest::Url,
    /// Domains that may call it.
    pub allowed_domains: Vec<String>,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts per call.
    pub max_attempts: u32,
    /// First backoff.
    pub backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Statuses retried (and counted as breaker failures).
    pub retry_statuses: Vec<u16>,
    /// Whether connection errors and timeouts are retried.
    pub retry_errors: bool,
    /// The breaker.
    pub breaker: BreakerSettings,
    /// Largest response body.
    pub max_response_bytes: usize,
    /// A private CA and a client identity, if any.
    pub tls: ServiceTls,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    attempts: AtomicU64,
    retries: AtomicU64,
    errors: AtomicU64,
    rejected_open: AtomicU64,
    latency_micros: AtomicU64,
}

struct Service {
    settings: ServiceSettings,
    /// Its HTTP(S) client: the shared one, or one with its own CA and identity.
    client: reqwest::Client,
    breaker: Breaker,
    counters: Counters,
}

/// Every service, with its breaker and counters.
pub struct Gateway {
    services: BTreeMap<String, Service>,
    limits: RequestLimits,
}

/// One service as `GET /admin/v1/gateway` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// Its name.
    pub name: String,
    /// Its base URL.
    pub base_url: String,
    /// Breaker state.
    pub breaker: BreakerState,
    /// Calls made by plugins.
    pub calls: u64,
    /// HTTP attempts (calls + retries).
    pub attempts: u64,
    /// Retries.
    pub retries: u64,
    /// Calls that ended in an error.
    pub errors: u64,
    /// Calls refused by an open breaker.
    pub rejected_open: u64,
    /// Mean call latency, milliseconds.
    pub mean_latency_ms: f64,
}

impl Gateway {
    /// The gateway over `services`.
    pub fn new(services: BTreeMap<String, ServiceSettings>) -> anyhow::Result<Self> {
        let shared = tls::client(&ServiceTls::default())?;
        let services = services
            .into_iter()
            .map(|(name, settings)| {
                let breaker = Breaker::new(settings.breaker);
                let client = if settings.tls == ServiceTls::default() {
                    shared.clone()
                } else {
                    tls::client(&settings.tls)
                        .map_err(|e| anyhow::anyhow!("gateway.services.{name}: its TLS settings: {e}"))?
                };
                Ok((name, Service { settings, client, breaker, counters: Counters::default() }))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { services, limits: RequestLimits::default() })
    }

    /// Caps requests (headers, enqueued calls) at `limits`.
    pub fn with_limits(mut self, limits: RequestLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The longest timeout of one attempt to any service (zero without services).
    pub fn longest_timeout(&self) -> Duration {
        self.services.values().map(|s| s.settings.timeout).max().unwrap_or_default()
    }

    /// Every service's counters and breaker state.
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        let now = Instant::now();
        self.services
            .iter()
            .map(|(name, s)| {
                let c = &s.counters;
                let calls = c.calls.load(Ordering::Relaxed);
                ServiceStatus {
                    name: name.clone(),
                    base_url: s.settings.base.to_string(),
                    breaker: s.breaker.state(now),
                    calls,
                    attempts: c.attempts.load(Ordering::Relaxed),
                    retries: c.retries.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    rejected_open: c.rejected_open.load(Ordering::Relaxed),
                    mean_latency_ms: c.latency_micros.load(Ordering::Relaxed) as f64 / 1000.0 / calls.max(1) as f64,
                }
            })
            .collect()
    }

    /// Checks that `domain` may send `request` to `service`: the grant, the method, the path,
    /// the headers. Nothing is sent.
    fn prepare(
        &self,
        domain: &str,
        service: &str,
        request: &Request,
    ) -> Result<(&Service, reqwest::Url, reqwest::Method), GatewayError> {
        let not_granted =
            || GatewayError::NotGranted(format!("domain `{domain}` may not call the service `{service}`"));
        let svc = self.services.get(service).ok_or_else(not_granted)?;
        if !svc.settings.allowed_domains.iter().any(|d| d == domain) {
            return Err(not_granted());
        }
        let url = path::resolve(&svc.settings.base, &request.path).map_err(GatewayError::InvalidRequest)?;
        self.limits.check_headers(&request.headers)?;
        let method = match request.method.to_ascii_uppercase().as_str() {
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE") => {
                reqwest::Method::from_bytes(m.as_bytes()).map_err(|e| GatewayError::InvalidRequest(e.to_string()))?
            }
            other => return Err(GatewayError::InvalidRequest(format!("the method `{other}` is not allowed"))),
        };
        for (header, value) in &request.headers {
            let lowered = header.to_ascii_lowercase();
            if matches!(
                lowered.as_str(),
                "host" | "content-length" | "transfer-encoding" | "connection" | "idempotency-key"
            ) {
                return Err(GatewayError::InvalidRequest(format!(
                    "the header `{header}` is set by the host (give an idempotency key in the request's field)"
                )));
            }
            if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Err(GatewayError::InvalidRequest(format!("the header `{header}` is not a valid HTTP header")));
            }
        }
        if request.idempotency_key.as_deref().is_some_and(|k| reqwest::header::HeaderValue::from_str(k).is_err()) {
            return Err(GatewayError::InvalidRequest("the idempotency key is not a valid header value".into()));
        }
        Ok((svc, url, method))
    }

    /// Checks a request for the outbox: what [`Gateway::call`] would refuse is refused now, and
    /// so is a call over `gateway.max_enqueued_kib`.
    pub fn check(&self, domain: &str, service: &str, request: &Request) -> Result<(), GatewayError> {
        self.prepare(domain, service, request)?;
        self.limits.check_enqueued(request)
    }

    /// One call of `domain` to `service`, with the service's policy, ending by `deadline`.
    pub async fn call(
        &self,
        domain: &str,
        service: &str,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, GatewayError> {
        let (svc, url, method) = self.prepare(domain, service, &request)?;
        let started = Instant::now();
        svc.counters.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = self.attempts(svc, service, &url, &method, &request, deadline).await;
        svc.counters.latency_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        if outcome.is_err() {
            svc.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    async fn attempts(
        &self,
        svc: &Service,
        name: &str,
        url: &reqwest::Url,
        method: &reqwest::Method,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, GatewayError> {
        let settings = &svc.settings;
        // A retry may repeat an effect: only for idempotent methods, or under an idempotency key.
        let retriable = request.idempotency_key.is_some() || matches!(method.as_str(), "GET" | "PUT" | "DELETE");
        let out_of_time =
            || GatewayError::Timeout(format!("the plugin call's deadline leaves no time to call `{name}` again"));
        let mut last_error = GatewayError::Unavailable(format!("`{name}` was not called"));
        for attempt in 1..=settings.max_attempts {
            if attempt > 1 {
                let pause = backoff(settings, attempt - 1);
                if Instant::now() + pause >= deadline {
                    return Err(if matches!(last_error, GatewayError::UpstreamStatus(_)) {
                        last_error
                    } else {
                        out_of_time()
                    });
                }
                tokio::time::sleep(pause).await;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(out_of_time());
            }
            let Some(admission) = svc.breaker.admit(Instant::now()) else {
                svc.counters.rejected_open.fetch_add(1, Ordering::Relaxed);
                return Err(GatewayError::CircuitOpen(format!(
                    "the circuit of `{name}` is open after repeated failures; retry later"
                )));
            };
            if attempt > 1 {
                svc.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            svc.counters.attempts.fetch_add(1, Ordering::Relaxed);
            let result = self.attempt(svc, name, (url, method), request, settings.timeout.min(left), true).await;
            let (retry, failure) = match &result {
                Ok(response) => {
                    let retried = settings.retry_statuses.contains(&response.status);
                    (retried && retriable, retried || response.status >= 500)
                }
                Err(GatewayError::Timeout(_) | GatewayError::Unavailable(_)) => {
                    (settings.retry_errors && retriable, true)
                }
                Err(_) => {
                    // Not the service's doing (a malformed request): the breaker learns nothing.
                    svc.breaker.release(admission);
                    return result;
                }
            };
            svc.breaker.record(admission, !failure, Instant::now());
            match result {
                Ok(response) if retry => last_error = GatewayError::UpstreamStatus(response),
                Ok(response) => return Ok(response),
                Err(error) if retry => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    /// One HTTP request; `want_body: false` returns as soon as the status is known.
    async fn attempt(
        &self,
        svc: &Service,
        name: &str,
        (url, method): (&reqwest::Url, &reqwest::Method),
        request: &Request,
        timeout: Duration,
        want_body: bool,
    ) -> Result<Response, GatewayError> {
        let settings = &svc.settings;
        let mut builder = svc.client.request(method.clone(), url.clone()).timeout(timeout);
        for (header, value) in &request.headers {
            builder = builder.header(header, value);
        }
        if let Some(key) = &request.idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body.clone());
        }
        let timeout = |_| GatewayError::Timeout(format!("`{name}` did not answer within {timeout:?}"));
        let mut response = builder.send().await.map_err(|e| {
            if e.is_timeout() {
                timeout(())
            } else if e.is_builder() {
                GatewayError::InvalidRequest(format!("the request to `{name}` is malformed: {e}"))
            } else if let Some(cause) = tls::failure(&e) {
                // Counted against the breaker like any other failure of the upstream.
                GatewayError::Unavailable(format!("`{name}` failed TLS: {cause}"))
            } else {
                GatewayError::Unavailable(format!("`{name}` could not be reached"))
            }
        })?;
        if !want_body {
            // The outbox only needs the verdict; the body is not read.
            return Ok(Response { status: response.status().as_u16(), headers: vec![], body: vec![] });
        }
        let too_large =
            || GatewayError::TooLarge(format!("`{name}` answered more than {} bytes", settings.max_response_bytes));
        if response.content_length().is_some_and(|n| n as usize > settings.max_response_bytes) {
            return Err(too_large());
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > settings.max_response_bytes {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(timeout(())),
                Err(_) => return Err(GatewayError::Unavailable(format!("`{name}` broke off its answer"))),
            }
        }
        Ok(Response { status, headers, body })
    }
}

/// What one attempt of an outbox message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The service accepted it (a 2xx answer).
    Done,
    /// Attempt again after this long.
    Retry {
        /// Why this attempt failed.
        error: String,
        /// The backoff before the next attempt.
        after: Duration,
    },
    /// Not attempted: the service's circuit is open. Try again after this long (not counted
    /// as an attempt).
    Postpone {
        /// How long.
        after: Duration,
    },
    /// The last attempt failed, or the message can never be sent: a dead letter.
    Dead {
        /// Why.
        error: String,
    },
}

impl Gateway {
    /// Makes one attempt of an outbox message, under the service's timeout and breaker; whether
    /// it is done, to be retried after a backoff, or dead (after the service's last attempt).
    pub async fn deliver(&self, message: &crate::store::OutboxMessage) -> Delivery {
        let Ok(body) = hex::decode(&message.request.body_hex) else {
            return Delivery::Dead { error: "the stored body is not hex".into() };
        };
        let request = Request {
            method: message.request.method.clone(),
            path: message.request.path.clone(),
            headers: message.request.headers.clone(),
            body,
            idempotency_key: Some(message.request.idempotency_key.clone()),
        };
        let (svc, url, method) = match self.prepare(&message.domain, &message.service, &request) {
            Ok(prepared) => prepared,
            Err(error) => return Delivery::Dead { error: describe(&error) },
        };
        let attempt = message.attempts + 1;
        let retry_or_dead = |error: String| {
            if attempt >= svc.settings.max_attempts {
                Delivery::Dead { error: format!("{error} (attempt {attempt} of {})", svc.settings.max_attempts) }
            } else {
                Delivery::Retry { error, after: backoff(&svc.settings, attempt) }
            }
        };
        svc.counters.calls.fetch_add(1, Ordering::Relaxed);
        let Some(admission) = svc.breaker.admit(Instant::now()) else {
            svc.counters.rejected_open.fetch_add(1, Ordering::Relaxed);
            return Delivery::Postpone { after: svc.settings.breaker.open_for.max(Duration::from_millis(100)) / 2 };
        };
        svc.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.attempt(svc, &message.service, (&url, &method), &request, svc.settings.timeout, false).await;
        svc.counters.latency_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(response) if svc.settings.retry_statuses.contains(&response.status) => {
                svc.breaker.record(admission, false, Instant::now());
                svc.counters.errors.fetch_add(1, Ordering::Relaxed);
                retry_or_dead(format!("`{}` answered {}", message.service, response.status))
            }
            Ok(response) if (200..300).contains(&response.status) => {
                svc.breaker.record(admission, true, Instant::now());
                Delivery::Done
            }
            Ok(response) => {
                // A final refusal (4xx, 500, a redirect): retrying will not help; an operator decides.
                svc.breaker.record(admission, response.status < 500, Instant::now());
                svc.counters.errors.fetch_add(1, Ordering::Relaxed);
                Delivery::Dead { error: format!("`{}` answered {}", message.service, response.status) }
            }
            Err(error @ (GatewayError::Timeout(_) | GatewayError::Unavailable(_))) => {
                svc.breaker.record(admission, false, Instant::now());
                svc.counters.errors.fetch_add(1, Ordering::Relaxed);
                if svc.settings.retry_errors {
                    retry_or_dead(describe(&error))
                } else {
                    Delivery::Dead { error: describe(&error) }
                }
            }
            Err(error) => {
                svc.breaker.release(admission);
                svc.counters.errors.fetch_add(1, Ordering::Relaxed);
                Delivery::Dead { error: describe(&error) }
            }
        }
    }
}

/// A gateway error as one line for operators.
fn describe(error: &GatewayError) -> String {
    match error {
        GatewayError::NotGranted(m)
        | GatewayError::CircuitOpen(m)
        | GatewayError::Timeout(m)
        | GatewayError::TooLarge(m)
        | GatewayError::InvalidRequest(m)
        | GatewayError::Unavailable(m) => m.clone(),
        GatewayError::UpstreamStatus(response) => format!("the service answered {}", response.status),
    }
}

/// Exponential backoff with full jitter: uniform in `[0, min(max, base * 2^(retry-1))]`.
fn backoff(settings: &ServiceSettings, retry: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let ceiling = settings.backoff.saturating_mul(1 << (retry - 1).min(16)).min(settings.max_backoff);
    // A randomly keyed hasher per call: a random number without a dependency.
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    ceiling.mul_f64((random % 10_000) as f64 / 10_000.0)
}

/// A `handle` call's access to the gateway.
pub struct GatewayAccess {
    /// The calling domain.
    pub domain: String,
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// The runtime the async calls run on.
    pub runtime: tokio::runtime::Handle,
    /// The plugin call's deadline: no attempt, backoff or retry runs past it.
    pub deadline: Instant,
}
