//! Test guest `legacy-0-1-0`: a counter domain written against wit-bindgen and the released
//! `cairn:domain@0.1.0` contract (copied verbatim into `wit/deps/`). A host that speaks 0.1.1
//! must still load it, run its commands, and see no projections and no queries.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // wit-bindgen's generated glue
mod component {
    wit_bindgen::generate!({ world: "test:legacy/legacy", path: "wit", generate_all });

    use cairn::domain::types::{NewEvent, RecordedEvent};
    use exports::cairn::domain::aggregate::{DecideError, DecideRequest, Guest as Aggregate};
    use exports::cairn::domain::command_handler::{Guest as Handler, HandleError, HandleRequest};
    use exports::cairn::domain::plugin::{AggregateId, CommandInfo, CommandKind, DomainInfo, Guest as Plugin};

    struct Legacy;

    impl Plugin for Legacy {
        fn describe() -> DomainInfo {
            DomainInfo {
                name: "legacy".into(),
                version: "0.1.0".into(),
                description: "Counts, as plugins did before the read side.".into(),
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
