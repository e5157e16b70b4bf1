//! `GET /v1/domains/{domain}/streams/{stream}?from=&limit=`: a stream's events with their
//! metadata, oldest first: the audit trail.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{AppState, Problem};
use crate::engine::CommandError;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

/// Paging parameters.
#[derive(Debug, Deserialize)]
pub struct Page {
    from: Option<u64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct StreamPage {
    domain: String,
    stream: String,
    events: Vec<EventView>,
    /// The `from` of the next page, when this page is full.
    next_from: Option<u64>,
}

#[derive(Serialize)]
struct EventView {
    stream: String,
    version: u64,
    position: u64,
    #[serde(rename = "type")]
    event_type: String,
    data: Box<RawValue>,
    metadata: Box<RawValue>,
    recorded_at: String,
}

/// Reads one page of a stream.
pub async fn read(
    State(state): State<AppState>,
    Path((domain, stream)): Path<(String, String)>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<impl Serialize>, Problem> {
    let Query(page) = page.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid-query", e.body_text()))?;
    let from = page.from.unwrap_or(1).max(1);
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            format!("`limit` must be 1 to {MAX_LIMIT}"),
        ));
    }
    let read = state
        .store
        .read_stream_bounded(&domain, &stream, from, limit, state.engine.max_read_bytes())
        .await
        .map_err(CommandError::from)?;
    let events = read.events;
    if events.is_empty() && from == 1 {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "stream-not-found",
            format!("`{domain}` has no stream `{stream}`"),
        ));
    }
    let next_from = (events.len() == limit as usize || read.cut).then(|| events.last().map_or(from, |e| e.version + 1));
    let events = events
        .into_iter()
        .map(|e| {
            Ok(EventView {
                data: RawValue::from_string(e.data)?,
                metadata: RawValue::from_string(e.metadata)?,
                recorded_at: super::rfc3339(e.recorded_at_micros),
                stream: e.stream,
                version: e.version,
                position: e.position,
                event_type: e.event_type,
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|e| {
            tracing::error!(%e, "stored event is not JSON");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt-event", "A stored event could not be read.")
        })?;
    Ok(Json(StreamPage { domain, stream, events, next_from }))
}
