//! Admin: events a projection keeps failing on (see `engine::projections::poison`).
//! `POST /admin/v1/domains/{domain}/projections/{name}/retry` tries the parked event again,
//! `POST .../skip` skips it (recorded as skipped by an operator), and `GET .../skipped` lists
//! what the projection skipped. Also under `/admin/v1/projections/{domain}/{name}/...`.
//! The parked event itself shows in `GET /admin/v1/projections` (`parked`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{AppState, Problem};
use crate::engine::projections::Action;
use crate::store::StoreError;

fn store_problem(cause: StoreError) -> Problem {
    tracing::error!(%cause, "read-model store failure");
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", "The read model is unavailable; retry later.")
}

fn answer(action: Action, domain: &str, name: &str, done: &str) -> Result<Json<Value>, Problem> {
    match action {
        Action::Done(event) => Ok(Json(json!({ "domain": domain, "projection": name, "state": done, "event": event }))),
        Action::NotParked => Err(Problem::new(
            StatusCode::CONFLICT,
            "projection-not-parked",
            format!("projection `{name}` of `{domain}` is not stopped on an event"),
        )),
        Action::Unknown => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-projection",
            format!("domain `{domain}` has no projection `{name}`"),
        )),
        Action::Elsewhere(leader) => Err(Problem::new(
            StatusCode::CONFLICT,
            "projections-elsewhere",
            match &leader {
                Some(host) => format!("the projections run on the host {host}; send this there"),
                None => "the projections run on another host (none holds the lease right now); retry".to_string(),
            },
        )
        .with("leader", leader)),
    }
}

/// Tries the parked event again.
pub async fn retry(
    State(state): State<AppState>,
    Path((domain, name)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let action = state.projections.retry(&domain, &name).await.map_err(store_problem)?;
    answer(action, &domain, &name, "retrying")
}

/// Skips the parked event; the projection goes on with the next one.
pub async fn skip(
    State(state): State<AppState>,
    Path((domain, name)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let action = state.projections.skip(&domain, &name).await.map_err(store_problem)?;
    answer(action, &domain, &name, "skipped")
}

/// The events the projection skipped, oldest first.
pub async fn skipped(
    State(state): State<AppState>,
    Path((domain, name)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let skipped = state.projections.skipped(&domain, &name).await.map_err(store_problem)?;
    Ok(Json(json!({ "domain": domain, "projection": name, "skipped": skipped })))
}
