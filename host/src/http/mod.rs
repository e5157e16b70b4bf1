//! The HTTP surface (axum): the client API under `/v1`, health probes, and one error type
//! rendered as RFC 9457 `application/problem+json`. [`app`] builds the router so tests can drive
//! it directly or serve it on a loopback port.

mod admin;
mod commands;
mod health;
mod problem;
mod streams;

use std::sync::Arc;

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
}

/// The request id header, set on every request that lacks one and echoed on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// Builds the router. `max_body_bytes` caps every request body (chunked ones too): 413 beyond.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    let upload_limit = state.registry.max_component_bytes() + 1;
    let admin = Router::new()
        .route("/plugins", post(admin::deploy).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/domains", get(admin::domains))
        .route("/domains/{domain}/versions", get(admin::versions))
        .route("/domains/{domain}/activate", post(admin::activate))
        .route("/domains/{domain}/rollback", post(admin::rollback))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admin::authorize));
    Router::new()
        .nest("/admin/v1", admin)
        .route("/v1/domains/{domain}/commands/{command}", post(commands::send))
        .route("/v1/domains/{domain}/streams/{stream}", get(streams::read))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .fallback(problem::not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// RFC 3339 text of a time in microseconds since the Unix epoch.
pub(crate) fn rfc3339(micros: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
