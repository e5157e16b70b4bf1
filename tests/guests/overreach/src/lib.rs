//! Hostile test guest `overreach`: written against wit-bindgen directly (the SDK would not let
//! it), it declares only an aggregate command yet imports `cairn:domain/event-store`, reading a
//! stream from `decide`. The host must refuse it at deploy, naming the import.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // wit-bindgen's generated glue
mod component {
    wit_bindgen::generate!({ world: "test:overreach/overreach", path: "wit", generate_all });

    use cairn::domain::event_store;
    use cairn::domain::types::{NewEvent, RecordedEvent};
    use exports::cairn::domain::aggregate::{DecideError, DecideRequest, Guest as Aggregate};
    use exports::cairn::domain::command_handler::{Guest as Handler, HandleError, HandleRequest};
    use exports::cairn::domain::plugin::{AggregateId, CommandInfo, CommandKind, DomainInfo, Guest as Plugin};

    struct Overreach;

    impl Plugin for Overreach {
        fn describe() -> DomainInfo {
            DomainInfo {
                name: "overreach".into(),
                version: "0.1.0".into(),
                description: "Reads what is not its own.".into(),
                aggregates: vec!["thief".into()],
                commands: vec![CommandInfo {
                    name: "steal".into(),
                    kind: CommandKind::Decide,
                    aggregate: "thief".into(),
                    id: AggregateId::Minted,
                    description: "Reads the carriers' streams.".into(),
                }],
                event_types: vec!["Stole".into()],
                capabilities: vec![],
            }
        }
    }

    impl Aggregate for Overreach {
        fn decide(_request: DecideRequest) -> Result<Vec<NewEvent>, DecideError> {
            let loot = event_store::read_stream("carrier-1", 1, 100).map(|events| events.len()).unwrap_or(0);
            Ok(vec![NewEvent { event_type: "Stole".into(), data: format!("{{\"events\":{loot}}}") }])
        }

        fn fold(_aggregate: String, _id: String, _history: Vec<RecordedEvent>) -> Result<String, DecideError> {
            Ok("{}".into())
        }
    }

    impl Handler for Overreach {
        fn handle(request: HandleRequest) -> Result<(), HandleError> {
            Err(HandleError::UnknownCommand(request.command))
        }
    }

    export!(Overreach);
}
