//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{AppState, Problem};

/// `GET /healthz`: the process serves HTTP.
pub async fn alive() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

/// `GET /readyz`: the database answers with its migrations applied, and the write path can
/// commit (503 with `check: write_path` from a failed commit until one succeeds). The host only serves once
/// the active plugin versions are restored, so the listed domains are the loaded ones.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    if let Err(cause) = state.store.check_ready().await {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", format!("database: {}", cause.0))
            .with("check", "database"));
    }
    if let Err(cause) = state.store.check_writes() {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", format!("write path: {}", cause.0))
            .with("check", "write_path"));
    }
    let domains: Vec<Value> = state
        .registry
        .all()
        .iter()
        .map(|p| json!({ "domain": p.domain(), "version": p.version(), "digest": p.digest }))
        .collect();
    Ok(Json(json!({ "status": "ready", "domains": domains })))
}
