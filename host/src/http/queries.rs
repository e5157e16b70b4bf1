//! `GET /v1/domains/{domain}/queries/{query}?<parameters>`: runs a plugin's query. Every query
//! string parameter goes to the plugin as a string, except `min_position` (wait until the
//! projection has reached it: read your own writes) and `wait_ms` (how long to wait, capped).
//! The answer says which projection position and generation it reflects.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{AppState, Problem};
use crate::engine::queries::QueryFailure;

/// How long `min_position` waits unless `wait_ms` says otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(5);
/// The longest `wait_ms` honoured.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Serialize)]
struct Answer<'a> {
    data: &'a RawValue,
    position: u64,
    generation: u64,
}

/// Runs the query.
pub async fn run(
    State(state): State<AppState>,
    Path((domain, query)): Path<(String, String)>,
    Query(mut params): Query<BTreeMap<String, String>>,
) -> Result<Response, Problem> {
    let number = |params: &mut BTreeMap<String, String>, name: &str| -> Result<Option<u64>, Problem> {
        params
            .remove(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-parameters",
                        format!("`{name}` must be a whole number"),
                    )
                })
            })
            .transpose()
    };
    let min_position = number(&mut params, "min_position")?;
    let wait = number(&mut params, "wait_ms")?.map_or(DEFAULT_WAIT, |ms| Duration::from_millis(ms).min(MAX_WAIT));
    let (answer, cached) =
        state.queries.run(&domain, &query, &params, min_position, wait).await.map_err(Problem::from)?;
    let body = Answer { data: &answer.data, position: answer.position, generation: answer.generation };
    let mut headers = HeaderMap::new();
    headers.insert("cairn-position", HeaderValue::from(answer.position));
    headers.insert("cairn-cache", HeaderValue::from_static(if cached { "hit" } else { "miss" }));
    Ok((headers, Json(body)).into_response())
}

impl From<QueryFailure> for Problem {
    fn from(failure: QueryFailure) -> Self {
        use QueryFailure as F;
        let detail = failure.to_string();
        match failure {
            F::UnknownDomain(_) => Problem::new(StatusCode::NOT_FOUND, "unknown-domain", detail),
            F::UnknownQuery { .. } => Problem::new(StatusCode::NOT_FOUND, "unknown-query", detail),
            F::NotReady { projection, .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "projection-not-ready", detail)
                    .with("projection", projection)
                    .retry_after(1)
            }
            F::Timeout { projection, wanted, reached, .. } => {
                Problem::new(StatusCode::GATEWAY_TIMEOUT, "min-position-not-reached", detail)
                    .with("projection", projection)
                    .with("min_position", wanted)
                    .with("position", reached)
            }
            F::InvalidParameters(rejection) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-parameters", &rejection.message)
                    .with_fields(rejection.fields.iter().map(|f| (f.field.as_str(), f.message.as_str())))
            }
            F::NotFound(message) => Problem::new(StatusCode::NOT_FOUND, "not-found", message),
            F::Fault(fault) => Problem::from(fault),
            F::Contract { .. } => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "plugin-contract-violation", detail),
            F::Failed { projection, position, event } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "projection-failed", detail)
                    .with("projection", projection)
                    .with("position", position)
                    .with("failed_position", event.position)
                    .with("event_type", event.event_type)
            }
            F::Busy { .. } => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "queries-busy", detail).retry_after(1),
            F::Store(cause) => {
                tracing::error!(%cause, "read-model store failure");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "The read model is unavailable; retry later.",
                )
            }
        }
    }
}
