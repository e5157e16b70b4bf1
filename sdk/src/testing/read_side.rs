//! The read side's test kit: feed a projector typed events (recorded as the host would record
//! them, with streams, positions and times) into a [`MemoryReadModel`] and check its documents,
//! then run queries over that model through the same JSON-text path as the component.
//!
//! ```text
//! let model = project::<OrdersProjection>()
//!     .given_on("order-o1", [created("u1", 1_250)])
//!     .then_document("orders", "o1", json!({"order_id": "o1", ...}))
//!     .model();
//! let answer = query::<OrdersByUser>(&model, &[("user_id", "u1")]).unwrap();
//! ```

use std::collections::HashMap;
use std::marker::PhantomData;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::dispatch::{self, ProjectFailure, RecordedEvent};
use crate::read_model::{MemoryReadModel, ReadModelRead};
use crate::read_side::{Projector, Query, QueryError};

/// When the first given event was recorded: 2024-01-01T00:00:00Z, in microseconds.
pub const START_MICROS: i64 = 1_704_067_200_000_000;
/// How far apart given events are recorded: one second.
pub const TICK_MICROS: i64 = 1_000_000;

/// Starts a projection scenario over an empty read model.
pub fn project<P: Projector>() -> ProjectionScenario<P> {
    project_on::<P>(MemoryReadModel::new())
}

/// Starts a projection scenario over `model` (for instance one another projector filled).
pub fn project_on<P: Projector>(model: MemoryReadModel) -> ProjectionScenario<P> {
    ProjectionScenario {
        model,
        stream: "test-1".to_string(),
        position: 0,
        versions: HashMap::new(),
        clock: START_MICROS,
        result: Ok(()),
        _projector: PhantomData,
    }
}

/// Events fed to a projector, one `project` call per `given`, and the read model they built.
///
/// The n-th event (1-based, over the whole scenario) has global position n and, unless
/// [`ProjectionScenario::at`] moved the clock, was recorded at
/// `START_MICROS + (n - 1) * TICK_MICROS`. A failing call writes nothing (as on the host) and
/// stops the scenario: later `given`s are ignored.
pub struct ProjectionScenario<P: Projector> {
    model: MemoryReadModel,
    stream: String,
    position: u64,
    versions: HashMap<String, u64>,
    clock: i64,
    result: Result<(), ProjectFailure>,
    _projector: PhantomData<P>,
}

impl<P: Projector> ProjectionScenario<P> {
    /// The stream of the next [`ProjectionScenario::given`] events (default `test-1`).
    pub fn stream(mut self, stream: &str) -> Self {
        self.stream = stream.to_string();
        self
    }

    /// Records the next event at `micros`; the ones after it follow a tick apart.
    pub fn at(mut self, micros: i64) -> Self {
        self.clock = micros;
        self
    }

    /// Projects `events` on the current stream, in one call.
    pub fn given(self, events: impl IntoIterator<Item = P::Event>) -> Self
    where
        P::Event: Serialize,
    {
        let stream = self.stream.clone();
        self.given_on(&stream, events)
    }

    /// Projects `events` on `stream` (which becomes the current stream), in one call.
    pub fn given_on(mut self, stream: &str, events: impl IntoIterator<Item = P::Event>) -> Self
    where
        P::Event: Serialize,
    {
        self.stream = stream.to_string();
        let recorded: Vec<RecordedEvent> = events
            .into_iter()
            .map(|event| {
                let encoded = dispatch::encode_event(&event).expect("given event encodes as {type, data}");
                self.record(stream, encoded.event_type, encoded.data)
            })
            .collect();
        self.given_recorded(recorded)
    }

    /// Projects an event of any type, given as its type and data (for instance one the projector
    /// does not read), on the current stream, in one call.
    pub fn given_raw(mut self, event_type: &str, data: Value) -> Self {
        let stream = self.stream.clone();
        let recorded = self.record(&stream, event_type.to_string(), data.to_string());
        self.given_recorded(vec![recorded])
    }

    /// Projects recorded events exactly as given, in one call.
    pub fn given_recorded(mut self, events: Vec<RecordedEvent>) -> Self {
        if self.result.is_err() {
            return self;
        }
        // A failed call writes nothing: project into a copy and keep it only on success.
        let mut model = self.model.clone();
        self.result = dispatch::project::<P>(events, &mut model);
        if self.result.is_ok() {
            self.model = model;
        }
        self
    }

    fn record(&mut self, stream: &str, event_type: String, data: String) -> RecordedEvent {
        self.position += 1;
        let version = self.versions.entry(stream.to_string()).or_default();
        *version += 1;
        let recorded_at_micros = self.clock;
        self.clock += TICK_MICROS;
        RecordedEvent {
            stream: stream.to_string(),
            version: *version,
            global_position: self.position,
            event_type,
            data,
            metadata: r#"{"plugin_version":"test"}"#.to_string(),
            recorded_at_micros,
        }
    }

    /// Asserts every call succeeded and document `id` of `collection` is exactly `expected`.
    #[track_caller]
    pub fn then_document(self, collection: &str, id: &str, expected: Value) -> Self {
        assert_eq!(self.document(collection, id), Some(expected), "document `{id}` of `{collection}`");
        self
    }

    /// Asserts every call succeeded and `collection` has no document `id`.
    #[track_caller]
    pub fn then_no_document(self, collection: &str, id: &str) -> Self {
        assert_eq!(self.document(collection, id), None, "document `{id}` of `{collection}`");
        self
    }

    /// Asserts every call succeeded and `collection` holds `count` documents.
    #[track_caller]
    pub fn then_count(self, collection: &str, count: usize) -> Self {
        self.assert_ok();
        assert_eq!(self.model.documents(collection).len(), count, "documents in `{collection}`");
        self
    }

    /// Asserts a call failed; returns the failure (its position is the failing event's).
    #[track_caller]
    pub fn then_failed(self) -> ProjectFailure {
        match self.result {
            Err(failure) => failure,
            Ok(()) => panic!("expected the projection to fail, it did not"),
        }
    }

    /// Document `id` of `collection`, after asserting every call succeeded.
    #[track_caller]
    pub fn document(&self, collection: &str, id: &str) -> Option<Value> {
        self.assert_ok();
        self.model.get(collection, id).expect("a valid collection and id")
    }

    /// The read model, after asserting every call succeeded.
    #[track_caller]
    pub fn model(self) -> MemoryReadModel {
        self.assert_ok();
        self.model
    }

    /// What the calls returned (the first failure, if any).
    pub fn result(&self) -> &Result<(), ProjectFailure> {
        &self.result
    }

    #[track_caller]
    fn assert_ok(&self) {
        if let Err(failure) = &self.result {
            panic!("the projection failed: {failure:?}");
        }
    }
}

/// Runs query `Q` over `model` with URL-style parameters (every value a string), through the
/// same JSON-text path as the component; returns the parsed answer.
pub fn query<Q: Query>(model: &dyn ReadModelRead, params: &[(&str, &str)]) -> Result<Value, QueryError> {
    let object: Map<String, Value> =
        params.iter().map(|(key, value)| (key.to_string(), Value::String(value.to_string()))).collect();
    let answer = dispatch::run_query::<Q>(&Value::Object(object).to_string(), model)?;
    serde_json::from_str(&answer).map_err(|e| QueryError::Failed(format!("the answer is not JSON: {e}")))
}
