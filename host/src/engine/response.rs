//! The JSON answer of a command: the primary stream first (`stream`, `aggregate_id`, `version`,
//! `events`), then every stream the command appended to (`streams`). Rendered before the commit
//! so the same text can be stored under an idempotency key.

use serde::Serialize;
use serde_json::value::RawValue;

use super::CommandError;
use crate::capabilities::event_store::BufferedAppend;
use crate::store::StoreError;

#[derive(Serialize)]
struct Body<'a> {
    stream: &'a str,
    aggregate_id: &'a str,
    /// The primary stream's version after the command (`null`: a handler that left it alone
    /// and it does not exist).
    version: Option<u64>,
    events: Vec<Event<'a>>,
    streams: Vec<Stream<'a>>,
}

#[derive(Serialize)]
struct Stream<'a> {
    stream: &'a str,
    version: u64,
    events: Vec<Event<'a>>,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    version: u64,
    data: &'a RawValue,
}

/// Renders the answer. `primary_version` is the primary stream's version when nothing was
/// appended to it.
pub(super) fn render(
    primary: &str,
    aggregate_id: &str,
    primary_version: Option<u64>,
    appends: &[BufferedAppend],
) -> Result<String, CommandError> {
    let streams = appends
        .iter()
        .map(|a| {
            Ok(Stream { stream: &a.stream, version: a.first_version + a.events.len() as u64 - 1, events: events(a)? })
        })
        .collect::<Result<Vec<_>, CommandError>>()?;
    let main = appends.iter().find(|a| a.stream == primary);
    let body = Body {
        stream: primary,
        aggregate_id,
        version: main.map(|a| a.first_version + a.events.len() as u64 - 1).or(primary_version),
        events: main.map(events).transpose()?.unwrap_or_default(),
        streams,
    };
    serde_json::to_string(&body).map_err(|e| CommandError::Store(StoreError(format!("rendering the response: {e}"))))
}

fn events(append: &BufferedAppend) -> Result<Vec<Event<'_>>, CommandError> {
    append
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(Event {
                event_type: &e.event_type,
                version: append.first_version + i as u64,
                data: serde_json::from_str(&e.data).map_err(|err| StoreError(format!("event data: {err}")))?,
            })
        })
        .collect()
}

/// 201 when the command created its primary stream, 200 otherwise.
pub(super) fn status(primary: &str, appends: &[BufferedAppend]) -> u16 {
    if appends.iter().any(|a| a.stream == primary && a.first_version == 1) { 201 } else { 200 }
}
