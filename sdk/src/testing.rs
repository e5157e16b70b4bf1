//! A given / when / then kit that runs an aggregate natively (`cargo test`, no wasm, no host),
//! through the same JSON encoding the host uses: given events are encoded and folded back, and
//! commands can be sent as the JSON a client would post.
//!
//! ```text
//! given::<Carrier>([registered("a@b.co")])
//!     .when_json("change-carrier-email", json!({"carrier_id": "c1", "email": "nope"}))
//!     .then_rejected_with_fields("validation-failed", &["email"]);
//! ```
//!
//! Projectors and queries have their own kit ([`project`], [`query`]), in `testing/read_side.rs`;
//! a command handler's gateway calls are answered by a [`FakeGateway`] (`testing/gateway.rs`).

mod gateway;
mod read_side;

use std::fmt::Debug;

pub use gateway::{FakeGateway, GatewayCall};
pub use read_side::{ProjectionScenario, START_MICROS, TICK_MICROS, project, project_on, query};

use crate::Aggregate;
use crate::dispatch::{self, DecideError, DecideRequest, Decision, NewEvent, RecordedEvent, StateRequest};
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

    /// Decides a command sent as JSON, exactly as the host hands it to the component: on the
    /// whole history, and again on the folded state after its round trip through JSON (as the
    /// host keeps it); the two must agree, and the state returned with the new events must equal
    /// a fold of the history and those events. A state or event that does not survive its serde
    /// round trip fails here, in the author's own tests, rather than in production.
    #[track_caller]
    pub fn when_json(self, command: &str, payload: serde_json::Value) -> Outcome<A> {
        let request = DecideRequest {
            aggregate: A::NAME.to_string(),
            aggregate_id: self.id,
            command: command.to_string(),
            payload: payload.to_string(),
            history: self.history,
        };
        let on_state = dispatch::fold_on_state::<A>(None, &request.history).and_then(|state| {
            dispatch::decide_on_state::<A>(StateRequest {
                aggregate: request.aggregate.clone(),
                aggregate_id: request.aggregate_id.clone(),
                command: request.command.clone(),
                payload: request.payload.clone(),
                state: Some(state),
                tail: Vec::new(),
            })
        });
        let history = request.history.clone();
        let decided = dispatch::decide::<A>(request);
        assert_same_decision::<A>(&history, &decided, &on_state);
        let result = decided.and_then(|events| {
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

/// Fails when deciding on the kept state disagrees with deciding on the history.
#[track_caller]
fn assert_same_decision<A: Aggregate>(
    history: &[RecordedEvent],
    on_history: &Result<Vec<NewEvent>, DecideError>,
    on_state: &Result<Decision, DecideError>,
) {
    let hint = "the aggregate's state (or an event) does not survive its serde round trip: a field \
                `decide` reads must not be `#[serde(skip)]`, and the JSON must deserialize to the same value";
    match (on_history, on_state) {
        (Ok(events), Ok(decision)) => {
            assert_eq!(
                events, &decision.events,
                "decided on the kept state, the command produced other events; {hint}"
            );
            let mut all = history.to_vec();
            all.extend(events.iter().enumerate().map(|(i, e)| RecordedEvent {
                version: history.len() as u64 + i as u64 + 1,
                event_type: e.event_type.clone(),
                data: e.data.clone(),
                ..RecordedEvent::default()
            }));
            let folded = dispatch::fold_on_state::<A>(None, &all);
            assert_eq!(
                folded.as_ref(),
                Ok(&decision.state),
                "the state after the new events differs from their fold; {hint}"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "decided on the kept state, the command failed otherwise; {hint}"),
        (a, b) => panic!("decided on the history: {a:?}; on the kept state: {b:?}; {hint}"),
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
        assert_names_fields(&rejection, fields);
        rejection
    }

    /// The raw result.
    pub fn into_result(self) -> Result<Vec<A::Event>, DecideError> {
        self.result
    }
}

/// A command handler scenario: past events on any streams, a command, then what was appended
/// per stream (or the rejection). Runs natively over an in-memory store with the same
/// read-your-writes and expected-version rules as the host's unit of work. Gateway calls are
/// answered by the scenario's [`FakeGateway`] (by default: every call is `not-granted`).
///
/// ```text
/// given_streams()
///     .with::<EmailAddress>("a@b.io", [EmailEvent::EmailReserved { carrier_id: "c9".into() }])
///     .when::<Registration>("c1", "register-carrier", json!({"name": "A", "email": "a@b.io"}))
///     .then_rejected("email-taken");
///
/// given_streams()
///     .with_gateway(FakeGateway::new().answer("rates", "/rates?from=GB", 200, json!({"price_cents": 900})))
///     .when::<Quoting>("q1", "request-quote", json!({"from": "GB"}))
///     .then_appended::<Quote>("q1", [quoted(900)])
///     .then_called("rates", "/rates?from=GB");
/// ```
pub fn given_streams() -> HandlerScenario {
    HandlerScenario::default()
}

/// Streams and their events, before the command.
#[derive(Debug, Default)]
pub struct HandlerScenario {
    memory: Memory,
    gateway: FakeGateway,
}

impl HandlerScenario {
    /// Adds past events of aggregate `id` of type `A`.
    pub fn with<A: Aggregate>(mut self, id: &str, events: impl IntoIterator<Item = A::Event>) -> Self {
        let stream = crate::unit_of_work::stream_of::<A>(id);
        for event in events {
            let encoded = dispatch::encode_event(&event).expect("given event encodes");
            self.memory.stored.entry(stream.clone()).or_default().push(encoded);
        }
        self
    }

    /// Answers the handler's gateway calls with `gateway`.
    pub fn with_gateway(mut self, gateway: FakeGateway) -> Self {
        self.gateway = gateway;
        self
    }

    /// Runs handler `H` on command `command` with primary id `id`, from JSON as the host would.
    pub fn when<H: crate::CommandHandler>(
        mut self,
        id: &str,
        command: &str,
        payload: serde_json::Value,
    ) -> HandlerOutcome {
        let request = dispatch::HandleRequest {
            command: command.to_string(),
            aggregate_id: id.to_string(),
            payload: payload.to_string(),
        };
        let mut work = crate::UnitOfWork::new(&mut self.memory).with_gateway(&mut self.gateway);
        let result = dispatch::handle_in::<H>(request, &mut work);
        HandlerOutcome { result, appended: self.memory.appended, calls: self.gateway.take_calls() }
    }
}

/// What a handler did.
#[derive(Debug)]
pub struct HandlerOutcome {
    result: Result<(), dispatch::HandleError>,
    appended: Vec<(String, crate::dispatch::NewEvent)>,
    calls: Vec<GatewayCall>,
}

impl HandlerOutcome {
    /// Asserts the handler succeeded and appended exactly `events` to aggregate `id` of `A`.
    #[track_caller]
    pub fn then_appended<A: Aggregate>(&self, id: &str, events: impl IntoIterator<Item = A::Event>) -> &Self
    where
        A::Event: PartialEq + Debug,
    {
        assert!(self.result.is_ok(), "the handler failed: {:?}", self.result);
        let stream = crate::unit_of_work::stream_of::<A>(id);
        let got: Vec<A::Event> = self
            .appended
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, e)| dispatch::decode_event::<A>(&e.event_type, &e.data).expect("appended event decodes"))
            .collect();
        let want: Vec<A::Event> = events.into_iter().collect();
        assert_eq!(got, want, "other events on `{stream}`");
        self
    }

    /// Asserts how many streams got events.
    #[track_caller]
    pub fn then_streams_touched(&self, count: usize) -> &Self {
        let mut streams: Vec<&str> = self.appended.iter().map(|(s, _)| s.as_str()).collect();
        streams.dedup();
        assert_eq!(streams.len(), count, "streams touched: {streams:?}");
        self
    }

    /// Asserts the handler was rejected with `code` (nothing it appended would be committed).
    #[track_caller]
    pub fn then_rejected(&self, code: &str) -> Rejection {
        match &self.result {
            Err(dispatch::HandleError::Rejected(rejection)) => {
                assert_eq!(rejection.code, code, "rejected for another reason: {rejection}");
                rejection.clone()
            }
            other => panic!("expected a `{code}` rejection, got {other:?}"),
        }
    }

    /// Asserts a rejection with `code` that names exactly `fields` (in any order).
    #[track_caller]
    pub fn then_rejected_with_fields(&self, code: &str, fields: &[&str]) -> Rejection {
        let rejection = self.then_rejected(code);
        assert_names_fields(&rejection, fields);
        rejection
    }

    /// Asserts the handler called `service` at `path` (query included); returns the first such
    /// request for more checks (its idempotency key, headers, body).
    #[track_caller]
    pub fn then_called(&self, service: &str, path: &str) -> &crate::GatewayRequest {
        match self.calls.iter().find(|c| c.service == service && c.request.path == path) {
            Some(call) => &call.request,
            None => panic!("no call to `{service}` at `{path}`; the calls: {:?}", self.calls),
        }
    }

    /// Every gateway call the handler made, in order.
    pub fn gateway_calls(&self) -> &[GatewayCall] {
        &self.calls
    }

    /// What the handler returned.
    pub fn result(&self) -> &Result<(), dispatch::HandleError> {
        &self.result
    }
}

/// The in-memory event store of handler scenarios.
#[derive(Debug, Default)]
struct Memory {
    stored: std::collections::HashMap<String, Vec<crate::dispatch::NewEvent>>,
    appended: Vec<(String, crate::dispatch::NewEvent)>,
}

impl Memory {
    fn stream(&self, stream: &str) -> Vec<&crate::dispatch::NewEvent> {
        let stored = self.stored.get(stream).into_iter().flatten();
        stored.chain(self.appended.iter().filter(|(s, _)| s == stream).map(|(_, e)| e)).collect()
    }
}

impl crate::EventStoreBackend for Memory {
    fn read_stream(&mut self, stream: &str, from: u64, max: u32) -> Result<Vec<RecordedEvent>, crate::StoreError> {
        Ok(self
            .stream(stream)
            .into_iter()
            .enumerate()
            .map(|(i, e)| RecordedEvent {
                stream: stream.to_string(),
                version: i as u64 + 1,
                global_position: 0,
                event_type: e.event_type.clone(),
                data: e.data.clone(),
                metadata: "{}".into(),
                recorded_at_micros: 0,
            })
            .filter(|e| e.version >= from)
            .take(max as usize)
            .collect())
    }

    fn append(
        &mut self,
        stream: &str,
        expected: crate::Expected,
        events: Vec<crate::dispatch::NewEvent>,
    ) -> Result<u64, crate::StoreError> {
        let head = self.stream(stream).len() as u64;
        let fits = match expected {
            crate::Expected::Any => true,
            crate::Expected::NoStream => head == 0,
            crate::Expected::StreamExists => head > 0,
            crate::Expected::Exact(v) => v == head,
        };
        if !fits {
            return Err(crate::StoreError(format!("`{stream}` is at version {head}, not {expected:?}")));
        }
        let count = events.len() as u64;
        self.appended.extend(events.into_iter().map(|e| (stream.to_string(), e)));
        Ok(head + count)
    }
}

/// Asserts that `rejection` names exactly `fields`, in any order.
#[track_caller]
fn assert_names_fields(rejection: &Rejection, fields: &[&str]) {
    let mut got: Vec<&str> = rejection.fields.iter().map(|f| f.field.as_str()).collect();
    let mut want = fields.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "the rejection names other fields: {rejection}");
}
