//! `GET /v1/domains/{domain}/aggregates/{aggregate}/{id}[?at_version=N]`: an aggregate's folded
//! state as its domain's active plugin folds it, at the stream's head or at version `N` (time
//! travel, for debugging and audits).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{AppState, Problem};

/// The optional version.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct At {
    at_version: Option<u64>,
}

#[derive(Serialize)]
struct StateView {
    domain: String,
    aggregate: String,
    id: String,
    stream: String,
    version: u64,
    state: Box<RawValue>,
    plugin: PluginView,
}

#[derive(Serialize)]
struct PluginView {
    version: String,
    digest: String,
}

/// Answers the folded state.
pub async fn state(
    State(app): State<AppState>,
    Path((domain, aggregate, id)): Path<(String, String, String)>,
    at: Result<Query<At>, QueryRejection>,
) -> Result<Json<impl Serialize>, Problem> {
    let Query(at) = at.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid-query", e.body_text()))?;
    if at.at_version == Some(0) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "`at_version` starts at 1"));
    }
    let folded = app.engine.aggregate_state(&domain, &aggregate, &id, at.at_version).await?;
    let state = RawValue::from_string(folded.state).map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin-contract-violation",
            format!("plugin {domain}@{} folded a state that is not JSON", folded.plugin_version),
        )
    })?;
    Ok(Json(StateView {
        domain,
        aggregate,
        id,
        stream: folded.stream,
        version: folded.version,
        state,
        plugin: PluginView { version: folded.plugin_version, digest: folded.digest },
    }))
}
