//! The read side's plumbing: decode recorded events for a [`Projector`] and feed them one by
//! one, and turn a query's JSON-text parameters into its typed params and its answer into JSON
//! text. The wasm exports call these, and so do native tests, with the same behaviour.

use serde_json::Value;

use super::{RecordedEvent, backticked_field};
use crate::read_model::{ReadModel, ReadModelRead};
use crate::read_side::{Projector, Query, QueryError, Recorded};
use crate::rejection::Rejection;

/// One projection a domain maintains (mirror of the WIT `projection-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionInfo {
    /// Its name.
    pub name: String,
    /// The version of its logic and document shape.
    pub version: u32,
    /// One sentence for operators.
    pub description: String,
    /// The event types it reads (empty: all).
    pub event_types: Vec<String>,
}

/// One query a domain answers (mirror of the WIT `query-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryInfo {
    /// Its name in the URL.
    pub name: String,
    /// The projection it reads.
    pub projection: String,
    /// One sentence for the API's documentation.
    pub description: String,
}

/// Why a projection stopped (mirror of the WIT `project-failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFailure {
    /// The global position of the event that failed, when one did.
    pub position: Option<u64>,
    /// What went wrong, for the operator.
    pub message: String,
}

/// Why a query has no answer (mirror of the WIT `query-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryRunError {
    /// Bad parameters (HTTP 400).
    InvalidParameters(Rejection),
    /// What the query asks for does not exist (HTTP 404).
    NotFound(String),
    /// No such query in this domain (HTTP 404).
    UnknownQuery(String),
    /// The read model failed or the query broke (HTTP 500/503).
    Failed(String),
}

impl From<QueryError> for QueryRunError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::InvalidParameters(r) => Self::InvalidParameters(r),
            QueryError::NotFound(m) => Self::NotFound(m),
            QueryError::Failed(m) => Self::Failed(m),
        }
    }
}

/// The read side of a domain: what [`crate::export_domain!`] implements for `Domain`.
pub trait DomainReadSide {
    /// Whether the domain has projectors (else `project` never touches the read model, and the
    /// component does not import it).
    const HAS_PROJECTORS: bool;
    /// Whether the domain has queries (same rule for `run`).
    const HAS_QUERIES: bool;
    /// The `projections` export.
    fn projections() -> Vec<ProjectionInfo>;
    /// The `project` export, writing through `model`.
    fn project(projection: &str, events: Vec<RecordedEvent>, model: &mut dyn ReadModel) -> Result<(), ProjectFailure>;
    /// The `queries` export.
    fn queries() -> Vec<QueryInfo>;
    /// The `run` export: `parameters` is a JSON object of strings; the answer is JSON text.
    fn run_query(query: &str, parameters: &str, model: &dyn ReadModelRead) -> Result<String, QueryRunError>;
}

/// `P`'s description.
pub fn projection_info<P: Projector>() -> ProjectionInfo {
    ProjectionInfo {
        name: P::NAME.to_string(),
        version: P::VERSION,
        description: P::DESCRIPTION.to_string(),
        event_types: P::EVENT_TYPES.iter().map(|t| t.to_string()).collect(),
    }
}

/// `Q`'s description.
pub fn query_info<Q: Query>() -> QueryInfo {
    QueryInfo {
        name: Q::NAME.to_string(),
        projection: Q::PROJECTION.to_string(),
        description: Q::DESCRIPTION.to_string(),
    }
}

/// Feeds `events` to a fresh `P`, oldest first, skipping types outside [`Projector::EVENT_TYPES`];
/// stops at the first event that does not decode or fails, reporting its global position.
pub fn project<P: Projector>(events: Vec<RecordedEvent>, model: &mut dyn ReadModel) -> Result<(), ProjectFailure> {
    let projector = P::default();
    for recorded in events {
        if !P::EVENT_TYPES.is_empty() && !P::EVENT_TYPES.contains(&recorded.event_type.as_str()) {
            continue;
        }
        let position = recorded.global_position;
        let what =
            format!("projection `{}`, event {position} (`{}` of `{}`)", P::NAME, recorded.event_type, recorded.stream);
        let event = decode_recorded::<P::Event>(recorded).map_err(|e| ProjectFailure {
            position: Some(position),
            message: format!("{what} does not decode: {e}"),
        })?;
        projector
            .project(&event, model)
            .map_err(|e| ProjectFailure { position: Some(position), message: format!("{what}: {e}") })?;
    }
    Ok(())
}

/// Decodes a recorded event's `(type, data)` into `E` (adjacently tagged `type`/`data`).
pub fn decode_recorded<E: serde::de::DeserializeOwned>(recorded: RecordedEvent) -> Result<Recorded<E>, String> {
    let data: Value = serde_json::from_str(&recorded.data).map_err(|e| format!("the data is not JSON: {e}"))?;
    let event = serde_json::from_value(serde_json::json!({ "type": recorded.event_type, "data": data }))
        .map_err(|e| e.to_string())?;
    let metadata = serde_json::from_str(&recorded.metadata).unwrap_or(Value::String(recorded.metadata));
    Ok(Recorded {
        stream: recorded.stream,
        version: recorded.version,
        position: recorded.global_position,
        event_type: recorded.event_type,
        recorded_at_micros: recorded.recorded_at_micros,
        metadata,
        event,
    })
}

/// Runs `Q` with `parameters` (a JSON object of strings) and returns its answer as JSON text.
/// Parameters that do not deserialize are an `invalid-parameters` rejection naming the field.
pub fn run_query<Q: Query>(parameters: &str, model: &dyn ReadModelRead) -> Result<String, QueryError> {
    let params = decode_params::<Q::Params>(parameters)?;
    let answer = Q::default().run(params, model)?;
    serde_json::to_string(&answer).map_err(|e| QueryError::Failed(format!("the answer does not serialize: {e}")))
}

/// Decodes a JSON object of parameters into `T`.
pub fn decode_params<T: serde::de::DeserializeOwned>(parameters: &str) -> Result<T, QueryError> {
    let value: Value = serde_json::from_str(parameters)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| QueryError::invalid("parameters", "The parameters must be a JSON object of strings"))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() { backticked_field(&message) } else { Some(path) };
        let field = field.unwrap_or_else(|| "parameters".to_string());
        let message = if message.starts_with("missing field") {
            format!("The parameter `{field}` is required")
        } else {
            format!("The parameter `{field}` is not valid: {message}")
        };
        QueryError::invalid(&field, &message)
    })
}

#[cfg(test)]
mod tests;
