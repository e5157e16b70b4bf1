//! An SDK domain as a [`NativeDomain`]: the same aggregate code the component runs, linked into
//! the host process, so a benchmark can run one domain through the same engine with and without
//! the wasm sandbox (`cargo bench-cairn --bank`).

use std::marker::PhantomData;

use cairn::bindings::aggregate::{DecideError, DecideRequest};
use cairn::bindings::aggregate_state::{Decision, StateRequest};
use cairn::bindings::plugin::{AggregateId, CommandInfo, CommandKind, DomainInfo};
use cairn::bindings::types::{FieldError, NewEvent, RecordedEvent, Rejection};
use cairn::runtime::NativeDomain;
use cairn_sdk::IdSource;
use cairn_sdk::dispatch::{self, DomainPlugin};

/// The SDK domain `D` (an `export_domain!`'s `Domain`), natively.
pub struct SdkDomain<D>(PhantomData<fn() -> D>);

impl<D> Default for SdkDomain<D> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn recorded(events: &[RecordedEvent]) -> Vec<dispatch::RecordedEvent> {
    events
        .iter()
        .map(|e| dispatch::RecordedEvent {
            stream: e.stream.clone(),
            version: e.version,
            global_position: e.global_position,
            event_type: e.event_type.clone(),
            data: e.data.clone(),
            metadata: e.metadata.clone(),
            recorded_at_micros: e.recorded_at_micros,
        })
        .collect()
}

fn new_events(events: Vec<dispatch::NewEvent>) -> Vec<NewEvent> {
    events.into_iter().map(|e| NewEvent { event_type: e.event_type, data: e.data }).collect()
}

fn error(error: dispatch::DecideError) -> DecideError {
    match error {
        dispatch::DecideError::Rejected(r) => DecideError::Rejected(Rejection {
            code: r.code,
            message: r.message,
            fields: r.fields.into_iter().map(|f| FieldError { field: f.field, message: f.message }).collect(),
        }),
        dispatch::DecideError::UnknownCommand(m) => DecideError::UnknownCommand(m),
        dispatch::DecideError::CorruptHistory(m) => DecideError::CorruptHistory(m),
    }
}

impl<D: DomainPlugin + 'static> NativeDomain for SdkDomain<D> {
    fn describe(&self) -> DomainInfo {
        let info = D::info();
        DomainInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            aggregates: info.aggregates,
            commands: info
                .commands
                .into_iter()
                .map(|(aggregate, spec)| CommandInfo {
                    name: spec.name.to_string(),
                    kind: if spec.handled_for.is_some() { CommandKind::Handle } else { CommandKind::Decide },
                    aggregate,
                    id: match spec.id {
                        IdSource::Field(field) => AggregateId::Field(field.to_string()),
                        IdSource::Minted => AggregateId::Minted,
                    },
                    description: spec.description.to_string(),
                })
                .collect(),
            event_types: info.event_types,
            capabilities: info.capabilities,
        }
    }

    fn decide(&self, request: &DecideRequest) -> Result<Vec<NewEvent>, DecideError> {
        D::decide(dispatch::DecideRequest {
            aggregate: request.aggregate.clone(),
            aggregate_id: request.aggregate_id.clone(),
            command: request.command.clone(),
            payload: request.payload.clone(),
            history: recorded(&request.history),
        })
        .map(new_events)
        .map_err(error)
    }

    fn fold(&self, aggregate: &str, _aggregate_id: &str, history: &[RecordedEvent]) -> Result<String, DecideError> {
        D::fold(aggregate, recorded(history)).map_err(error)
    }

    fn decide_on_state(&self, request: &StateRequest) -> Result<Decision, DecideError> {
        D::decide_on_state(dispatch::StateRequest {
            aggregate: request.aggregate.clone(),
            aggregate_id: request.aggregate_id.clone(),
            command: request.command.clone(),
            payload: request.payload.clone(),
            state: request.state.clone(),
            tail: recorded(&request.tail),
        })
        .map(|decision| Decision { events: new_events(decision.events), state: decision.state })
        .map_err(error)
    }

    fn fold_on_state(
        &self,
        aggregate: &str,
        _aggregate_id: &str,
        state: Option<&str>,
        tail: &[RecordedEvent],
    ) -> Result<String, DecideError> {
        D::fold_on_state(aggregate, state, recorded(tail)).map_err(error)
    }
}
