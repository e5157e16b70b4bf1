//! The HTTP surface (axum): the client API under `/v1`, health probes, and one error type
//! rendered as RFC 9457 `application/problem+json`.
//!
//! [`app`] builds the router so tests can drive it directly or serve it on a loopback port.
//!
//! Handlers return `Result<_, Problem>`: the error *is* the response, built on a cold path, so
//! it is not boxed (hence the `result_large_err` allowance).

#![allow(clippy::result_large_err)]

mod admin;
mod aggregates;
mod commands;
mod health;
mod hygiene;
mod limits;
mod parked;
mod problem;
mod projections;
mod queries;
mod queued;
pub mod server;
mod streams;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use self::admin::AdminState;
pub use self::problem::Problem;
use crate::engine::CommandEngine;
use crate::registry::Registry;
use crate::store::EventStore;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The command pipeline.
    pub engine: Arc<CommandEngine>,
    /// The event store (stream reads, readiness).
    pub store: Arc<dyn EventStore>,
    /// The active plugins.
    pub registry: Arc<Registry>,
    /// The admin API's state.
    pub admin: AdminState,
    /// Asynchronous and delayed commands.
    pub commands: Arc<crate::engine::AsyncCommands>,
    /// The projections and their generations.
    pub projections: Arc<crate::engine::Projections>,
    /// The query runner and its cache.
    pub queries: Arc<crate::engine::Queries>,
    /// Outside services, for their status.
    pub gateway: Arc<crate::capabilities::gateway::Gateway>,
    /// The plugins' cache, for its figures.
    pub cache: Arc<crate::capabilities::cache::Cache>,
    /// The gateway's outbox, for its dead letters.
    pub outbox: Arc<dyn crate::store::Outbox>,
}

/// The request id header, set on every request that lacks one and echoed on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Cap on every request body (chunked ones too): 413 beyond.
    pub max_body_bytes: usize,
    /// Deadline of a whole request, body included: 503 beyond.
    pub request_timeout: Duration,
    /// Admin requests per client and minute.
    pub admin_per_minute: u32,
    /// Admin requests a client may burst.
    pub admin_burst: u32,
    /// Origins allowed by CORS (`*`: any); empty: none.
    pub cors_origins: Vec<String>,
    /// Served over TLS (answers then carry `Strict-Transport-Security`).
    pub https: bool,
}

/// Builds the router.
pub fn app(state: AppState, settings: &HttpSettings) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    let limiter = limits::RateLimiter::new(settings.admin_per_minute, settings.admin_burst);
    let upload_limit = state.registry.max_component_bytes();
    let body_limit = |bytes: usize, code: &'static str| {
        let cap = limits::BodyCap { bytes, code };
        (DefaultBodyLimit::max(bytes), axum::middleware::from_fn_with_state(cap, limits::content_length))
    };
    let max_body = settings.max_body_bytes;
    let [security_a, security_b, security_c, security_d] = hygiene::security_headers();
    let admin = Router::new()
        .route("/plugins", post(admin::deploy).layer(body_limit(upload_limit, "component-too-large")))
        .route("/domains", get(admin::domains))
        .route("/domains/{domain}/versions", get(admin::versions))
        .route("/projections", get(projections::list))
        .route("/gateway", get(projections::gateway))
        .route("/gateway/dead-letters", get(projections::outbox_dead_letters))
        .route("/gateway/dead-letters/{id}", axum::routing::delete(projections::outbox_discard))
        .route("/gateway/dead-letters/{id}/retry", post(projections::outbox_retry))
        .route("/cache", get(projections::cache))
        .route("/domains/{domain}/projections/{name}/rebuild", post(projections::rebuild))
        .route("/domains/{domain}/projections/{name}/retry", post(parked::retry))
        .route("/domains/{domain}/projections/{name}/skip", post(parked::skip))
        .route("/domains/{domain}/projections/{name}/skipped", get(parked::skipped))
        .route("/projections/{domain}/{name}/retry", post(parked::retry))
        .route("/projections/{domain}/{name}/skip", post(parked::skip))
        .route("/projections/{domain}/{name}/skipped", get(parked::skipped))
        .route("/dead-letters", get(queued::dead_letters))
        .route("/dead-letters/{id}", axum::routing::delete(queued::discard))
        .route("/dead-letters/{id}/retry", post(queued::retry))
        .route("/domains/{domain}/activate", post(admin::activate).layer(body_limit(max_body, "body-too-large")))
        .route("/domains/{domain}/rollback", post(admin::rollback).layer(body_limit(max_body, "body-too-large")))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admin::authorize))
        .route_layer(axum::middleware::from_fn_with_state(limiter, limits::rate_limit));
    let client = Router::new()
        .route("/v1/domains/{domain}/commands/{command}", post(commands::send))
        .route("/v1/domains/{domain}/batch", post(commands::batch))
        .route("/v1/commands/{id}", get(queued::status))
        .route("/v1/domains/{domain}/streams/{stream}", get(streams::read))
        .route("/v1/domains/{domain}/aggregates/{aggregate}/{id}", get(aggregates::state))
        .route("/v1/domains/{domain}/queries/{query}", get(queries::run))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route_layer(body_limit(max_body, "body-too-large"));
    let router = Router::new()
        .nest("/admin/v1", admin)
        .merge(client)
        .fallback(problem::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(settings.request_timeout, limits::deadline))
        .layer(axum::middleware::from_fn(hygiene::problems))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(hygiene::span).on_response(hygiene::access_log))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower::ServiceBuilder::new().layer(security_a).layer(security_b).layer(security_c).layer(security_d));
    let router = if settings.https { router.layer(hygiene::strict_transport_security()) } else { router };
    match hygiene::cors(&settings.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// RFC 3339 text of a time in microseconds since the Unix epoch.
pub(crate) fn rfc3339(micros: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
