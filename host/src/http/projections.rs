//! Admin: `GET /admin/v1/gateway` (outside services), its outbox dead letters (list, retry,
//! discard), `GET /admin/v1/cache`, `GET /admin/v1/projections` (every generation's role, position, lag, state and last
//! error) and `POST /admin/v1/domains/{domain}/projections/{name}/rebuild` (build a new
//! generation from position 0 in the background; queries keep reading the active one).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{AppState, Problem};

/// Every outside service: calls, attempts, retries, errors, latency and breaker state.
pub async fn gateway(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "services": state.gateway.statuses() }))
}

/// The outbox's dead letters: calls whose last attempt failed.
pub async fn outbox_dead_letters(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let dead = state.outbox.dead_letters().await.map_err(store_problem)?;
    Ok(Json(json!({ "dead_letters": dead })))
}

/// Puts a dead letter back in the outbox (attempts reset).
pub async fn outbox_retry(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, Problem> {
    match state.outbox.retry(&id).await.map_err(store_problem)? {
        true => Ok(Json(json!({ "id": id, "state": "pending" }))),
        false => Err(no_dead_letter(&id)),
    }
}

/// Deletes a dead letter.
pub async fn outbox_discard(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    match state.outbox.discard(&id).await.map_err(store_problem)? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(no_dead_letter(&id)),
    }
}

fn no_dead_letter(id: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "unknown-dead-letter", format!("no outbox dead letter `{id}`"))
}

fn store_problem(cause: crate::store::StoreError) -> Problem {
    tracing::error!(%cause, "outbox store failure");
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", "The store is unavailable; retry later.")
}

/// Every domain's cache: hits, misses, evictions, coalesced fills, size against the quota.
pub async fn cache(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "domains": state.cache.stats() }))
}

/// Every projection generation on this host.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "projections": state.projections.statuses().await }))
}

/// Starts a rebuild; 202 with the new generation's number.
pub async fn rebuild(
    State(state): State<AppState>,
    Path((domain, name)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    use crate::engine::projections::Rebuild;
    match state.projections.rebuild(&domain, &name).await {
        Ok(Rebuild::Busy(generation)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "projection-building",
            format!("generation {generation} of `{name}` is being built; rebuild once it serves"),
        )
        .with("generation", generation)),
        Ok(Rebuild::Started(generation)) => Ok((
            StatusCode::ACCEPTED,
            Json(
                json!({ "domain": domain, "projection": name, "generation": generation, "status": "/admin/v1/projections" }),
            ),
        )),
        Ok(Rebuild::Elsewhere(leader)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "projections-elsewhere",
            match &leader {
                Some(host) => format!("the projections run on the host {host}; send the rebuild there"),
                None => "the projections run on another host (none holds the lease right now); retry".to_string(),
            },
        )
        .with("leader", leader)),
        Ok(Rebuild::Unknown) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-projection",
            format!("domain `{domain}` has no active projection `{name}`"),
        )),
        Err(cause) => {
            tracing::error!(%cause, "rebuild failed");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The read model is unavailable; retry later.",
            ))
        }
    }
}
