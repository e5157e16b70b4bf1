//! Test guest `header-flood`: `flood` (`{"mode": "call" | "enqueue", "service", "headers",
//! "value_bytes", "body_bytes"}`) sends one gateway request to `/flood` with `headers` headers
//! of `value_bytes` bytes each and a body of `body_bytes` bytes, by `call` or `enqueue`, and
//! records the outcome as a `Flooded` event (`{"ok": status or message id}` or
//! `{"error": kind, "detail"}`), so the suites read from the command's answer how the host
//! treated an oversized request.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // wit-bindgen's generated glue
mod component {
    wit_bindgen::generate!({ world: "test:header-flood/header-flood", path: "wit", generate_all });

    use cairn::domain::event_store::{self, ExpectedVersion};
    use cairn::domain::gateway::{self, GatewayError, Request};
    use cairn::domain::types::{NewEvent, RecordedEvent};
    use exports::cairn::domain::aggregate::{DecideError, DecideRequest, Guest as Aggregate};
    use exports::cairn::domain::command_handler::{Guest as Handler, HandleError, HandleRequest};
    use exports::cairn::domain::plugin::{AggregateId, CommandInfo, CommandKind, DomainInfo, Guest as Plugin};
    use serde_json::{Value, json};

    struct Flood;

    impl Plugin for Flood {
        fn describe() -> DomainInfo {
            DomainInfo {
                name: "header-flood".into(),
                version: "0.1.0".into(),
                description: "Sends oversized gateway requests for the tests.".into(),
                aggregates: vec!["flood".into()],
                commands: vec![CommandInfo {
                    name: "flood".into(),
                    kind: CommandKind::Handle,
                    aggregate: "flood".into(),
                    id: AggregateId::Minted,
                    description: "Calls or enqueues a request as large as asked and records the outcome.".into(),
                }],
                event_types: vec!["Flooded".into()],
                capabilities: vec![],
            }
        }
    }

    impl Aggregate for Flood {
        fn decide(request: DecideRequest) -> Result<Vec<NewEvent>, DecideError> {
            Err(DecideError::UnknownCommand(request.command))
        }

        fn fold(_aggregate: String, _id: String, _history: Vec<RecordedEvent>) -> Result<String, DecideError> {
            Ok("{}".into())
        }
    }

    fn error(error: GatewayError) -> Value {
        let (kind, detail) = match error {
            GatewayError::NotGranted(m) => ("not-granted", m),
            GatewayError::CircuitOpen(m) => ("circuit-open", m),
            GatewayError::Timeout(m) => ("timeout", m),
            GatewayError::UpstreamStatus(r) => ("upstream-status", format!("status {}", r.status)),
            GatewayError::TooLarge(m) => ("too-large", m),
            GatewayError::InvalidRequest(m) => ("invalid-request", m),
            GatewayError::Unavailable(m) => ("unavailable", m),
        };
        json!({"error": kind, "detail": detail})
    }

    impl Handler for Flood {
        fn handle(request: HandleRequest) -> Result<(), HandleError> {
            let payload: Value =
                serde_json::from_str(&request.payload).map_err(|e| HandleError::Failed(e.to_string()))?;
            let count = |field: &str| payload[field].as_u64().unwrap_or(0) as usize;
            let value = "v".repeat(count("value_bytes"));
            let call = Request {
                method: "POST".into(),
                path: "/flood".into(),
                headers: (0..count("headers")).map(|i| (format!("x-flood-{i}"), value.clone())).collect(),
                body: vec![b'b'; count("body_bytes")],
                idempotency_key: None,
            };
            let service = payload["service"].as_str().unwrap_or_default();
            let outcome = if payload["mode"] == "enqueue" {
                gateway::enqueue(service, &call).map_or_else(error, |id| json!({"ok": id}))
            } else {
                gateway::call(service, &call).map_or_else(error, |response| json!({"ok": response.status}))
            };
            let event = NewEvent { event_type: "Flooded".into(), data: outcome.to_string() };
            event_store::append(&format!("flood-{}", request.aggregate_id), ExpectedVersion::NoStream, &[event])
                .map(|_| ())
                .map_err(|e| HandleError::Failed(format!("{e:?}")))
        }
    }

    export!(Flood);
}
