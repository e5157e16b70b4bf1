//! The component glue, compiled only for wasm32: wit-bindgen's bindings for the
//! `domain-plugin` world and the conversions between them and the SDK's own types. Plugin
//! authors never see these types; [`crate::export_domain!`] wires them up. The read side's glue
//! (projector and query exports, the host read model) is in `read_side`, the gateway's in
//! `gateway`.

mod cache;
mod gateway;
pub mod read_side;

pub(crate) use cache::HostCache;
pub(crate) use gateway::HostGateway;

use crate::dispatch::{self, DomainHandlers, DomainPlugin};
use crate::{EventStoreBackend, Expected, FieldError, IdSource, Rejection, StoreError};

wit_bindgen::generate!({
    world: "domain-plugin",
    path: "../wit",
    pub_export_macro: true,
    export_macro_name: "__export_domain_component",
    default_bindings_module: "cairn_sdk::wasm",
});

use cairn::domain::event_store as store;
use cairn::domain::types as wit;
use exports::cairn::domain::{aggregate as agg, aggregate_state as st, command_handler as handler, plugin as plg};

/// Exports `$ty` (`DomainPlugin + DomainHandlers + DomainReadSide`) as the component's
/// `plugin`, `aggregate`, `aggregate-state`, `command-handler`, `projector` and `query` interfaces.
#[macro_export]
#[doc(hidden)]
macro_rules! __export_wasm {
    ($ty:ident) => {
        #[doc(hidden)]
        pub struct __CairnExports;
        impl $crate::wasm::exports::cairn::domain::plugin::Guest for __CairnExports {
            fn describe() -> $crate::wasm::exports::cairn::domain::plugin::DomainInfo {
                $crate::wasm::describe::<$ty>()
            }
        }
        impl $crate::wasm::exports::cairn::domain::aggregate::Guest for __CairnExports {
            fn decide(
                request: $crate::wasm::exports::cairn::domain::aggregate::DecideRequest,
            ) -> ::std::result::Result<
                ::std::vec::Vec<$crate::wasm::cairn::domain::types::NewEvent>,
                $crate::wasm::exports::cairn::domain::aggregate::DecideError,
            > {
                $crate::wasm::decide::<$ty>(request)
            }
            fn fold(
                aggregate: ::std::string::String,
                _aggregate_id: ::std::string::String,
                history: ::std::vec::Vec<$crate::wasm::cairn::domain::types::RecordedEvent>,
            ) -> ::std::result::Result<::std::string::String, $crate::wasm::exports::cairn::domain::aggregate::DecideError> {
                $crate::wasm::fold::<$ty>(aggregate, history)
            }
        }
        impl $crate::wasm::exports::cairn::domain::aggregate_state::Guest for __CairnExports {
            fn decide(
                request: $crate::wasm::exports::cairn::domain::aggregate_state::StateRequest,
            ) -> ::std::result::Result<
                $crate::wasm::exports::cairn::domain::aggregate_state::Decision,
                $crate::wasm::exports::cairn::domain::aggregate::DecideError,
            > {
                $crate::wasm::decide_on_state::<$ty>(request)
            }
            fn fold(
                aggregate: ::std::string::String,
                _aggregate_id: ::std::string::String,
                state: ::std::option::Option<::std::string::String>,
                tail: ::std::vec::Vec<$crate::wasm::cairn::domain::types::RecordedEvent>,
            ) -> ::std::result::Result<::std::string::String, $crate::wasm::exports::cairn::domain::aggregate::DecideError> {
                $crate::wasm::fold_on_state::<$ty>(aggregate, state, tail)
            }
        }
        impl $crate::wasm::exports::cairn::domain::command_handler::Guest for __CairnExports {
            fn handle(
                request: $crate::wasm::exports::cairn::domain::command_handler::HandleRequest,
            ) -> ::std::result::Result<(), $crate::wasm::exports::cairn::domain::command_handler::HandleError> {
                $crate::wasm::handle::<$ty>(request)
            }
        }
        impl $crate::wasm::exports::cairn::domain::projector::Guest for __CairnExports {
            fn projections() -> ::std::vec::Vec<$crate::wasm::exports::cairn::domain::projector::ProjectionInfo> {
                $crate::wasm::read_side::projections::<$ty>()
            }
            fn project(
                projection: ::std::string::String,
                events: ::std::vec::Vec<$crate::wasm::cairn::domain::types::RecordedEvent>,
            ) -> ::std::result::Result<(), $crate::wasm::exports::cairn::domain::projector::ProjectFailure> {
                $crate::wasm::read_side::project::<$ty>(projection, events)
            }
        }
        impl $crate::wasm::exports::cairn::domain::query::Guest for __CairnExports {
            fn queries() -> ::std::vec::Vec<$crate::wasm::exports::cairn::domain::query::QueryInfo> {
                $crate::wasm::read_side::queries::<$ty>()
            }
            fn run(
                query: ::std::string::String,
                parameters: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::wasm::exports::cairn::domain::query::QueryError> {
                $crate::wasm::read_side::run::<$ty>(query, parameters)
            }
        }
        $crate::wasm::__export_domain_component!(__CairnExports with_types_in $crate::wasm);
    };
}

/// The `describe` export.
pub fn describe<D: DomainPlugin>() -> plg::DomainInfo {
    let info = D::info();
    plg::DomainInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        aggregates: info.aggregates,
        commands: info
            .commands
            .into_iter()
            .map(|(aggregate, spec)| plg::CommandInfo {
                name: spec.name.to_string(),
                aggregate,
                kind: if spec.handled_for.is_some() { plg::CommandKind::Handle } else { plg::CommandKind::Decide },
                id: match spec.id {
                    IdSource::Field(field) => plg::AggregateId::Field(field.to_string()),
                    IdSource::Minted => plg::AggregateId::Minted,
                },
                description: spec.description.to_string(),
            })
            .collect(),
        event_types: info.event_types,
        capabilities: info.capabilities,
    }
}

/// The `decide` export.
pub fn decide<D: DomainPlugin>(request: agg::DecideRequest) -> Result<Vec<wit::NewEvent>, agg::DecideError> {
    let request = dispatch::DecideRequest {
        aggregate: request.aggregate,
        aggregate_id: request.aggregate_id,
        command: request.command,
        payload: request.payload,
        history: request.history.into_iter().map(recorded).collect(),
    };
    D::decide(request)
        .map(|events| events.into_iter().map(|e| wit::NewEvent { event_type: e.event_type, data: e.data }).collect())
        .map_err(decide_error)
}

/// The `fold` export.
pub fn fold<D: DomainPlugin>(aggregate: String, history: Vec<wit::RecordedEvent>) -> Result<String, agg::DecideError> {
    D::fold(&aggregate, history.into_iter().map(recorded).collect()).map_err(decide_error)
}

/// The `aggregate-state.decide` export.
pub fn decide_on_state<D: DomainPlugin>(request: st::StateRequest) -> Result<st::Decision, agg::DecideError> {
    let request = dispatch::StateRequest {
        aggregate: request.aggregate,
        aggregate_id: request.aggregate_id,
        command: request.command,
        payload: request.payload,
        state: request.state,
        tail: request.tail.into_iter().map(recorded).collect(),
    };
    D::decide_on_state(request)
        .map(|decision| st::Decision {
            events: decision
                .events
                .into_iter()
                .map(|e| wit::NewEvent { event_type: e.event_type, data: e.data })
                .collect(),
            state: decision.state,
        })
        .map_err(decide_error)
}

/// The `aggregate-state.fold` export.
pub fn fold_on_state<D: DomainPlugin>(
    aggregate: String,
    state: Option<String>,
    tail: Vec<wit::RecordedEvent>,
) -> Result<String, agg::DecideError> {
    D::fold_on_state(&aggregate, state.as_deref(), tail.into_iter().map(recorded).collect()).map_err(decide_error)
}

/// The `handle` export. A domain without handlers answers without touching the event store.
pub fn handle<D: DomainHandlers>(request: handler::HandleRequest) -> Result<(), handler::HandleError> {
    let request = dispatch::HandleRequest {
        command: request.command,
        aggregate_id: request.aggregate_id,
        payload: request.payload,
    };
    let outcome = if D::HAS_HANDLERS { D::handle(request, &mut HostStore) } else { D::handle(request, &mut NoStore) };
    outcome.map_err(|error| match error {
        dispatch::HandleError::Rejected(r) => handler::HandleError::Rejected(rejection(r)),
        dispatch::HandleError::UnknownCommand(m) => handler::HandleError::UnknownCommand(m),
        dispatch::HandleError::Failed(m) => handler::HandleError::Failed(m),
    })
}

/// The host's event store, through the `event-store` import.
struct HostStore;

impl EventStoreBackend for HostStore {
    fn read_stream(&mut self, stream: &str, from: u64, max: u32) -> Result<Vec<dispatch::RecordedEvent>, StoreError> {
        store::read_stream(stream, from, max)
            .map(|events| events.into_iter().map(recorded).collect())
            .map_err(store_error)
    }

    fn append(&mut self, stream: &str, expected: Expected, events: Vec<dispatch::NewEvent>) -> Result<u64, StoreError> {
        let expected = match expected {
            Expected::Any => store::ExpectedVersion::Any,
            Expected::NoStream => store::ExpectedVersion::NoStream,
            Expected::StreamExists => store::ExpectedVersion::StreamExists,
            Expected::Exact(v) => store::ExpectedVersion::Exact(v),
        };
        let events: Vec<wit::NewEvent> =
            events.into_iter().map(|e| wit::NewEvent { event_type: e.event_type, data: e.data }).collect();
        store::append(stream, expected, &events).map_err(store_error)
    }
}

/// Stands in for the store in domains without handlers, so their components never import it.
struct NoStore;

impl EventStoreBackend for NoStore {
    fn read_stream(&mut self, _: &str, _: u64, _: u32) -> Result<Vec<dispatch::RecordedEvent>, StoreError> {
        Err(StoreError("this domain has no command handlers".into()))
    }

    fn append(&mut self, _: &str, _: Expected, _: Vec<dispatch::NewEvent>) -> Result<u64, StoreError> {
        Err(StoreError("this domain has no command handlers".into()))
    }
}

fn store_error(error: store::StoreError) -> StoreError {
    StoreError(match error {
        store::StoreError::WrongExpectedVersion((stream, actual)) => {
            format!("stream `{stream}` is at version {actual}, not the expected one")
        }
        store::StoreError::InvalidStream(m)
        | store::StoreError::LimitExceeded(m)
        | store::StoreError::Unavailable(m)
        | store::StoreError::NotGranted(m) => m,
    })
}

/// Forwards a log line to the host.
pub fn log(level: crate::log::Level, message: &str, fields: &[(&str, &str)]) {
    use cairn::domain::log::Level as L;
    let level = match level {
        crate::log::Level::Trace => L::Trace,
        crate::log::Level::Debug => L::Debug,
        crate::log::Level::Info => L::Info,
        crate::log::Level::Warn => L::Warn,
        crate::log::Level::Error => L::Error,
    };
    let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    cairn::domain::log::write(level, message, &fields);
}

fn recorded(e: wit::RecordedEvent) -> dispatch::RecordedEvent {
    dispatch::RecordedEvent {
        stream: e.stream,
        version: e.version,
        global_position: e.global_position,
        event_type: e.event_type,
        data: e.data,
        metadata: e.metadata,
        recorded_at_micros: e.recorded_at_micros,
    }
}

fn decide_error(error: dispatch::DecideError) -> agg::DecideError {
    match error {
        dispatch::DecideError::Rejected(r) => agg::DecideError::Rejected(rejection(r)),
        dispatch::DecideError::UnknownCommand(m) => agg::DecideError::UnknownCommand(m),
        dispatch::DecideError::CorruptHistory(m) => agg::DecideError::CorruptHistory(m),
    }
}

fn rejection(r: Rejection) -> wit::Rejection {
    wit::Rejection {
        code: r.code,
        message: r.message,
        fields: r.fields.into_iter().map(|FieldError { field, message }| wit::FieldError { field, message }).collect(),
    }
}
