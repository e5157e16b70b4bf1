//! The plumbing between the host's JSON-text boundary and an author's typed [`Aggregate`]:
//! fold the history, decode the command, decide, encode the events (and, in `read_side`, feed
//! projectors and run queries). The wasm exports call these functions, and so can native code
//! (tests, benchmarks) with exactly the same behaviour.

mod read_side;

use serde::Serialize;
use serde_json::Value;

pub use read_side::{
    DomainReadSide, ProjectFailure, ProjectionInfo, QueryInfo, QueryRunError, decode_params, decode_recorded, project,
    projection_info, query_info, run_query,
};

use crate::{
    Aggregate, CommandHandler, DomainInfo, EventStoreBackend, HandlerError, Rejection, StoreError, UnitOfWork,
    rejection::FieldError,
};

/// An event as the store recorded it (mirror of the WIT `recorded-event`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordedEvent {
    /// The stream, `<aggregate>-<id>`.
    pub stream: String,
    /// 1-based version in the stream.
    pub version: u64,
    /// 1-based position in the host's global log.
    pub global_position: u64,
    /// The event type (`CarrierRegistered`).
    pub event_type: String,
    /// The payload, JSON text.
    pub data: String,
    /// The metadata, a JSON object as text.
    pub metadata: String,
    /// Commit time, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
}

/// An event a decision produced (mirror of the WIT `new-event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event type.
    pub event_type: String,
    /// The payload, JSON text.
    pub data: String,
}

/// A command with its aggregate's history (mirror of the WIT `decide-request`).
#[derive(Debug, Clone, Default)]
pub struct DecideRequest {
    /// Aggregate type name.
    pub aggregate: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Command name, kebab-case.
    pub command: String,
    /// Command payload, JSON text.
    pub payload: String,
    /// Past events of the stream, oldest first.
    pub history: Vec<RecordedEvent>,
}

/// A command with the state to decide it on (mirror of the WIT `aggregate-state.state-request`).
#[derive(Debug, Clone, Default)]
pub struct StateRequest {
    /// Aggregate type name.
    pub aggregate: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Command name, kebab-case.
    pub command: String,
    /// Command payload, JSON text.
    pub payload: String,
    /// A state this plugin returned earlier (JSON text); `None` for the state before any event.
    pub state: Option<String>,
    /// The stream's events after that state, oldest first.
    pub tail: Vec<RecordedEvent>,
}

/// What a command produced, and the state it leads to (mirror of the WIT `aggregate-state.decision`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The new events.
    pub events: Vec<NewEvent>,
    /// The state after the tail and the new events, JSON text.
    pub state: String,
}

/// Why a decision produced no events (mirror of the WIT `decide-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideError {
    /// The domain's rules refused the command.
    Rejected(Rejection),
    /// No such aggregate or command.
    UnknownCommand(String),
    /// A past event could not be folded.
    CorruptHistory(String),
}

/// A whole domain: what [`crate::export_domain!`] implements for the crate's `Domain` type.
pub trait DomainPlugin {
    /// The `describe` export.
    fn info() -> DomainInfo;
    /// The `decide` export.
    fn decide(request: DecideRequest) -> Result<Vec<NewEvent>, DecideError>;
    /// The `fold` export: the folded state as JSON text.
    fn fold(aggregate: &str, history: Vec<RecordedEvent>) -> Result<String, DecideError>;
    /// The `aggregate-state.decide` export: decides on a kept state plus the events after it.
    fn decide_on_state(request: StateRequest) -> Result<Decision, DecideError>;
    /// The `aggregate-state.fold` export: folds `tail` into a kept state (or the initial one).
    fn fold_on_state(aggregate: &str, state: Option<&str>, tail: Vec<RecordedEvent>) -> Result<String, DecideError>;
}

/// A command for a handler (mirror of the WIT `handle-request`).
#[derive(Debug, Clone, Default)]
pub struct HandleRequest {
    /// Command name, kebab-case.
    pub command: String,
    /// The primary aggregate's id.
    pub aggregate_id: String,
    /// Command payload, JSON text.
    pub payload: String,
}

/// Why a handler committed nothing (mirror of the WIT `handle-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// The domain's rules refused the command.
    Rejected(Rejection),
    /// No handler for this command.
    UnknownCommand(String),
    /// The store failed, or the handler could not do its job.
    Failed(String),
}

/// The command handlers of a domain: what [`crate::export_domain!`] implements for `Domain`.
pub trait DomainHandlers {
    /// Whether the domain has any handler (else it never touches the event store).
    const HAS_HANDLERS: bool;
    /// The `handle` export, over `backend`.
    fn handle(request: HandleRequest, backend: &mut dyn EventStoreBackend) -> Result<(), HandleError>;
}

/// Decodes the request's command for `H` and runs it over `backend` (gateway calls go to the
/// host in a component, and are refused natively).
pub fn handle<H: CommandHandler>(
    request: HandleRequest,
    backend: &mut dyn EventStoreBackend,
) -> Result<(), HandleError> {
    handle_in::<H>(request, &mut UnitOfWork::new(backend))
}

/// Like [`handle`], over a unit of work the caller built (for instance with a gateway backend
/// from [`UnitOfWork::with_gateway`]).
pub fn handle_in<H: CommandHandler>(request: HandleRequest, work: &mut UnitOfWork<'_>) -> Result<(), HandleError> {
    let command = decode_tagged::<H::Command>("this domain's handlers", &request.command, &request.payload).map_err(
        |e| match e {
            DecideError::Rejected(r) => HandleError::Rejected(r),
            DecideError::UnknownCommand(m) | DecideError::CorruptHistory(m) => HandleError::UnknownCommand(m),
        },
    )?;
    H::default().handle(work, &request.aggregate_id, command).map_err(|e| match e {
        HandlerError::Rejected(r) => HandleError::Rejected(r),
        HandlerError::Store(StoreError(m)) => HandleError::Failed(m),
    })
}

/// Folds `history` into a fresh `A`.
pub fn fold<A: Aggregate>(history: &[RecordedEvent]) -> Result<A, DecideError> {
    let mut state = A::default();
    fold_into(&mut state, history)?;
    Ok(state)
}

/// Folds `events` into `state`, in order.
pub fn fold_into<A: Aggregate>(state: &mut A, events: &[RecordedEvent]) -> Result<(), DecideError> {
    for recorded in events {
        if A::IGNORE_UNKNOWN_EVENTS && !A::EVENT_TYPES.contains(&recorded.event_type.as_str()) {
            continue;
        }
        let event = decode_event::<A>(&recorded.event_type, &recorded.data).map_err(|e| {
            DecideError::CorruptHistory(format!(
                "event {} of `{}` ({}): {e}",
                recorded.version, recorded.stream, recorded.event_type
            ))
        })?;
        state.apply(event);
    }
    Ok(())
}

/// A state this plugin returned earlier (JSON text), or the initial state for `None`.
pub fn restore<A: Aggregate>(state: Option<&str>) -> Result<A, DecideError> {
    match state {
        None => Ok(A::default()),
        Some(json) => serde_json::from_str(json).map_err(|e| {
            DecideError::CorruptHistory(format!("the kept state of `{}` does not deserialize: {e}", A::NAME))
        }),
    }
}

/// The state as JSON text.
fn state_json<A: Aggregate>(state: &A) -> Result<String, DecideError> {
    serde_json::to_string(state).map_err(|e| DecideError::CorruptHistory(format!("state does not serialize: {e}")))
}

/// Folds `tail` into a kept state (or the initial one) and returns the state as JSON text.
pub fn fold_on_state<A: Aggregate>(state: Option<&str>, tail: &[RecordedEvent]) -> Result<String, DecideError> {
    let mut state = restore::<A>(state)?;
    fold_into(&mut state, tail)?;
    state_json(&state)
}

/// Restores the request's state, folds its tail, decodes its command and decides it; the state
/// after the new events comes back with them. The new events are applied as they were decided:
/// like the state, an event must survive its serde round trip for a kept state to equal a fold
/// of the history (the host's tests compare the two for the example domains).
pub fn decide_on_state<A: Aggregate>(request: StateRequest) -> Result<Decision, DecideError> {
    let mut state = restore::<A>(request.state.as_deref())?;
    fold_into(&mut state, &request.tail)?;
    let command = decode_command::<A>(&request.command, &request.payload)?;
    let decided = state.decide(&request.aggregate_id, command).map_err(DecideError::Rejected)?;
    let events = decided.iter().map(encode_event).collect::<Result<Vec<_>, _>>()?;
    for event in decided {
        state.apply(event);
    }
    Ok(Decision { events, state: state_json(&state)? })
}

/// Folds `history` and returns the state as JSON text.
pub fn fold_to_json<A: Aggregate>(history: Vec<RecordedEvent>) -> Result<String, DecideError> {
    state_json(&fold::<A>(&history)?)
}

/// Folds the request's history, decodes its command and decides it.
pub fn decide<A: Aggregate>(request: DecideRequest) -> Result<Vec<NewEvent>, DecideError> {
    let state = fold::<A>(&request.history)?;
    let command = decode_command::<A>(&request.command, &request.payload)?;
    let events = state.decide(&request.aggregate_id, command).map_err(DecideError::Rejected)?;
    events.iter().map(encode_event).collect()
}

/// Decodes one stored event into the aggregate's event enum.
pub fn decode_event<A: Aggregate>(event_type: &str, data: &str) -> Result<A::Event, serde_json::Error> {
    // One parse of `{"type": .., "data": ..}`, with `data` taken as it is: the host stores only
    // valid JSON, and a value that is not one JSON document fails to parse here.
    let data: &serde_json::value::RawValue = serde_json::from_str(data)?;
    serde_json::from_str(&format!("{{\"type\":{},\"data\":{}}}", serde_json::to_string(event_type)?, data.get()))
}

/// Decodes a command name and its JSON payload into the aggregate's command enum. A payload that
/// does not fit becomes a `invalid-payload` rejection naming the field where serde can tell it.
pub fn decode_command<A: Aggregate>(name: &str, payload: &str) -> Result<A::Command, DecideError> {
    decode_tagged::<A::Command>(A::NAME, name, payload)
}

/// Decodes `{"command": name, "payload": payload}` into an adjacently tagged command enum.
fn decode_tagged<C: serde::de::DeserializeOwned>(owner: &str, name: &str, payload: &str) -> Result<C, DecideError> {
    let payload: Value = serde_json::from_str(payload).map_err(|e| {
        DecideError::Rejected(Rejection::new("invalid-payload", format!("the payload is not JSON: {e}")))
    })?;
    let tagged = serde_json::json!({ "command": name, "payload": payload });
    serde_path_to_error::deserialize(tagged).map_err(|e| {
        let message = e.inner().to_string();
        if message.starts_with("unknown variant") {
            return DecideError::UnknownCommand(format!("`{owner}` has no command `{name}`"));
        }
        let mut rejection =
            Rejection::new("invalid-payload", format!("the payload of `{name}` does not fit: {message}"));
        // The path is `payload.<field>...`; a missing field is named by serde in the message.
        let path = e.path().to_string();
        let field = path.strip_prefix("payload.").map(str::to_string).or_else(|| backticked_field(&message));
        if let Some(field) = field {
            rejection.fields.push(FieldError { field, message });
        }
        DecideError::Rejected(rejection)
    })
}

/// Encodes an event enum value as `(type, data)`.
pub fn encode_event<E: Serialize>(event: &E) -> Result<NewEvent, DecideError> {
    let bad = |why: &str| DecideError::CorruptHistory(format!("an event does not serialize as {{type, data}}: {why}"));
    match serde_json::to_value(event).map_err(|e| bad(&e.to_string()))? {
        Value::Object(mut object) => {
            let Some(Value::String(event_type)) = object.remove("type") else {
                return Err(bad("no string `type` (use #[serde(tag = \"type\", content = \"data\")])"));
            };
            let data = object.remove("data").unwrap_or(Value::Null);
            Ok(NewEvent { event_type, data: data.to_string() })
        }
        _ => Err(bad("not an object (use #[serde(tag = \"type\", content = \"data\")])")),
    }
}

/// `missing field `email`` → `email`.
fn backticked_field(message: &str) -> Option<String> {
    if !(message.starts_with("missing field") || message.starts_with("unknown field")) {
        return None;
    }
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_is_read_from_serde_messages() {
        assert_eq!(backticked_field("missing field `email` at line 1"), Some("email".into()));
        assert_eq!(backticked_field("invalid type: string `x`"), None);
    }
}
