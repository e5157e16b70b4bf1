//! What operators see of a projection generation: its state, position, lag and last error.

use serde::Serialize;

use super::Generation;
use crate::store::StoredEvent;
use crate::store::now_micros;

/// What a generation's runner is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Not started yet.
    Starting,
    /// Reading a backlog.
    CatchingUp,
    /// At the head of the log, waiting for appends.
    Live,
    /// An event failed; retrying with backoff.
    Failed,
    /// No plugin version to run it is loaded.
    Paused,
    /// Stopped (superseded or shutting down).
    Stopped,
    /// Run by another host sharing the database; this one follows its checkpoint.
    Elsewhere,
    /// Stopped on an event it kept failing on (its `stop` policy) until an operator acts.
    Parked,
}

/// Why a generation is stuck.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionError {
    /// What went wrong.
    pub message: String,
    /// The global position of the failing event, when known.
    pub position: Option<u64>,
    /// Its stream.
    pub stream: Option<String>,
    /// Its type.
    pub event_type: Option<String>,
    /// Whether the store (not the plugin) failed.
    pub store: bool,
    /// When, microseconds since the Unix epoch.
    pub at_micros: i64,
}

impl ProjectionError {
    pub(super) fn store(message: String) -> Self {
        Self { message, position: None, stream: None, event_type: None, store: true, at_micros: now_micros() }
    }

    pub(super) fn plugin(message: String, position: Option<u64>) -> Self {
        Self { message, position, stream: None, event_type: None, store: false, at_micros: now_micros() }
    }

    pub(super) fn at_event(message: String, event: &StoredEvent) -> Self {
        Self {
            message,
            position: Some(event.position),
            stream: Some(event.stream.clone()),
            event_type: Some(event.event_type.clone()),
            store: false,
            at_micros: now_micros(),
        }
    }
}

/// One generation, for `GET /admin/v1/projections`.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationStatus {
    /// The domain.
    pub domain: String,
    /// The projection.
    pub name: String,
    /// Its generation number.
    pub generation: u64,
    /// `active` (queries read it) or `building`.
    pub role: &'static str,
    /// The projection version it is built with.
    pub version: u32,
    /// The plugin version running it, if one is loaded.
    pub plugin_version: Option<String>,
    /// Its checkpoint: every event of the domain at or below it is applied.
    pub position: u64,
    /// Events of the domain after the checkpoint (None when the store could not say).
    pub lag_events: Option<u64>,
    /// How long the oldest of those has waited, in milliseconds.
    pub lag_ms: Option<u64>,
    /// What the runner is doing.
    pub state: RunState,
    /// Events applied since this host started it.
    pub events_applied: u64,
    /// The last failure, until an event after it commits.
    pub last_error: Option<ProjectionError>,
    /// The event it is parked on (retry or skip it through the admin API).
    pub parked: Option<crate::store::read_models::FailedEvent>,
    /// What it does with an event it keeps failing on.
    pub on_failure: super::FailurePolicy,
}

pub(super) fn describe(
    generation: &Generation,
    role: &'static str,
    lag: Option<(u64, Option<i64>)>,
    on_failure: super::FailurePolicy,
) -> GenerationStatus {
    let (state, last_error) = generation.status.lock().expect("status lock").clone();
    let now = now_micros();
    GenerationStatus {
        domain: generation.id.domain.clone(),
        name: generation.id.name.clone(),
        generation: generation.id.generation,
        role,
        version: generation.version,
        plugin_version: generation.plugin().map(|p| p.version().to_string()),
        position: generation.position(),
        lag_events: lag.map(|(events, _)| events),
        lag_ms: lag.map(|(_, oldest)| oldest.map_or(0, |t| ((now - t).max(0) / 1000) as u64)),
        state,
        events_applied: generation.applied.load(std::sync::atomic::Ordering::Relaxed),
        last_error,
        parked: generation.parked(),
        on_failure,
    }
}
