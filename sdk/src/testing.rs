//! A given / when / then kit that runs an aggregate natively (`cargo test`, no wasm, no host),
//! through the same JSON encoding the host uses: given events are encoded and folded back, and
//! commands can be sent as the JSON a client would post.
//!
//! ```text
//! given::<Carrier>([registered("a@b.co")])
//!     .when_json("change-carrier-email", json!({"carrier_id": "c1", "email": "nope"}))
//!     .then_rejected_with_fields("validation-failed", &["email"]);
//! ```

use std::fmt::Debug;

use crate::Aggregate;
use crate::dispatch::{self, DecideError, DecideRequest, RecordedEvent};
use crate::rejection::Rejection;

/// A scenario: an aggregate id and its past events.
pub struct Scenario<A: Aggregate> {
    id: String,
    history: Vec<RecordedEvent>,
    _aggregate: std::marker::PhantomData<A>,
}

/// Starts a scenario with past events (encoded and stored as the host would store them).
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Scenario<A> {
    let id = "test-1".to_string();
    let history = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let encoded = dispatch::encode_event(&event).expect("given event encodes");
            RecordedEvent {
                stream: format!("{}-{id}", A::NAME),
                version: i as u64 + 1,
                global_position: i as u64 + 1,
                event_type: encoded.event_type,
                data: encoded.data,
                metadata: "{}".to_string(),
                recorded_at_micros: 0,
            }
        })
        .collect();
    Scenario { id, history, _aggregate: std::marker::PhantomData }
}

/// Starts a scenario for a new aggregate (no history).
pub fn given_no_history<A: Aggregate>() -> Scenario<A> {
    given::<A>([])
}

impl<A: Aggregate> Scenario<A> {
    /// Uses `id` as the aggregate id (default `test-1`).
    pub fn with_id(mut self, id: &str) -> Self {
        self.id = id.to_string();
        self
    }

    /// Decides a typed command.
    pub fn when(self, command: A::Command) -> Outcome<A> {
        let result = dispatch::fold::<A>(&self.history)
            .and_then(|state| state.decide(&self.id, command).map_err(DecideError::Rejected));
        Outcome { result }
    }

    /// Decides a command sent as JSON, exactly as the host hands it to the component.
    pub fn when_json(self, command: &str, payload: serde_json::Value) -> Outcome<A> {
        let request = DecideRequest {
            aggregate: A::NAME.to_string(),
            aggregate_id: self.id,
            command: command.to_string(),
            payload: payload.to_string(),
            history: self.history,
        };
        let result = dispatch::decide::<A>(request).and_then(|events| {
            events
                .iter()
                .map(|e| {
                    dispatch::decode_event::<A>(&e.event_type, &e.data)
                        .map_err(|err| DecideError::CorruptHistory(format!("new event does not decode: {err}")))
                })
                .collect()
        });
        Outcome { result }
    }
}

/// What a decision returned, with assertions.
pub struct Outcome<A: Aggregate> {
    result: Result<Vec<A::Event>, DecideError>,
}

impl<A: Aggregate> Outcome<A>
where
    A::Event: PartialEq + Debug,
{
    /// Asserts the command produced exactly `expected`.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => assert_eq!(events, expected, "the command produced other events"),
            Err(e) => panic!("expected events {expected:?}, got {e:?}"),
        }
    }

    /// Asserts the command was rejected with `code`; returns the rejection for more checks.
    #[track_caller]
    pub fn then_rejected(self, code: &str) -> Rejection {
        match self.result {
            Err(DecideError::Rejected(rejection)) => {
                assert_eq!(rejection.code, code, "rejected for another reason: {rejection}");
                rejection
            }
            other => panic!("expected a `{code}` rejection, got {other:?}"),
        }
    }

    /// Asserts a rejection with `code` that names exactly `fields` (in any order).
    #[track_caller]
    pub fn then_rejected_with_fields(self, code: &str, fields: &[&str]) -> Rejection {
        let rejection = self.then_rejected(code);
        let mut got: Vec<&str> = rejection.fields.iter().map(|f| f.field.as_str()).collect();
        let mut want = fields.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "the rejection names other fields: {rejection}");
        rejection
    }

    /// The raw result.
    pub fn into_result(self) -> Result<Vec<A::Event>, DecideError> {
        self.result
    }
}
