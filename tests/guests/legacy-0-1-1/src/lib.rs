//! Test guest `legacy-0-1-1`: a counter domain written against wit-bindgen and the released
//! `cairn:domain@0.1.1` contract (copied verbatim into `wit/deps/`), built before aggregates could
//! keep their folded state in the host. A host that speaks 0.1.2 must still load it and hand
//! `decide` the stream's whole history on every command: each `Incremented` event carries the
//! count of events it saw, so a host that skipped the history would store wrong counts.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // wit-bindgen's generated glue
mod component {
    wit_bindgen::generate!({ world: "test:legacy-state/legacy", path: "wit", generate_all });

    use cairn::domain::types::{NewEvent, RecordedEvent};
    use exports::cairn::domain::aggregate::{DecideError, DecideRequest, Guest as Aggregate};
    use exports::cairn::domain::command_handler::{Guest as Handler, HandleError, HandleRequest};
    use exports::cairn::domain::plugin::{AggregateId, CommandInfo, CommandKind, DomainInfo, Guest as Plugin};

    struct Legacy;

    impl Plugin for Legacy {
        fn describe() -> DomainInfo {
            DomainInfo {
                name: "legacy-state".into(),
                version: "0.1.1".into(),
                description: "Counts, as plugins did before the host kept aggregate states.".into(),
                aggregates: vec!["counter".into()],
                commands: vec![CommandInfo {
                    name: "increment".into(),
                    kind: CommandKind::Decide,
                    aggregate: "counter".into(),
                    id: AggregateId::Field("counter_id".into()),
                    description: "Adds one.".into(),
                }],
                event_types: vec!["Incremented".into()],
                capabilities: vec![],
            }
        }
    }

    impl Aggregate for Legacy {
        fn decide(request: DecideRequest) -> Result<Vec<NewEvent>, DecideError> {
            // The history must be whole and in order: versions 1..=n.
            for (i, event) in request.history.iter().enumerate() {
                if event.version != i as u64 + 1 {
                    return Err(DecideError::CorruptHistory(format!("event {} has version {}", i + 1, event.version)));
                }
            }
            let count = request.history.len() + 1;
            Ok(vec![NewEvent { event_type: "Incremented".into(), data: format!("{{\"count\":{count}}}") }])
        }

        fn fold(_aggregate: String, _id: String, history: Vec<RecordedEvent>) -> Result<String, DecideError> {
            Ok(format!("{{\"count\":{}}}", history.len()))
        }
    }

    impl Handler for Legacy {
        fn handle(request: HandleRequest) -> Result<(), HandleError> {
            Err(HandleError::UnknownCommand(request.command))
        }
    }

    export!(Legacy);
}
