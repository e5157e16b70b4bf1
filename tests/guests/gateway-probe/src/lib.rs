//! Test guest `gateway-probe`. `call` (`{"service", "method", "path"}`) calls the gateway and
//! records what came back as a `Called` event (status and body, or the error's kind and
//! detail), so the suites read every gateway outcome from the command's answer. `cache-gets`
//! (`{"n"}`) sets one key and reads it `n` times (the benchmark's cached-get cost). `enqueue`
//! (`{"service", "method", "path", "reject"?}`) enqueues a call through the outbox and records
//! its id, or, with `reject`, refuses the command after enqueueing.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // wit-bindgen's generated glue
mod component {
    wit_bindgen::generate!({ world: "test:gateway-probe/gateway-probe", path: "wit", generate_all });

    use cairn::domain::cache;
    use cairn::domain::event_store::{self, ExpectedVersion};
    use cairn::domain::gateway::{self, GatewayError, Request};
    use cairn::domain::types::{NewEvent, RecordedEvent};
    use exports::cairn::domain::aggregate::{DecideError, DecideRequest, Guest as Aggregate};
    use exports::cairn::domain::command_handler::{Guest as Handler, HandleError, HandleRequest};
    use exports::cairn::domain::plugin::{AggregateId, CommandInfo, CommandKind, DomainInfo, Guest as Plugin};
    use serde_json::{Value, json};

    struct Probe;

    impl Plugin for Probe {
        fn describe() -> DomainInfo {
            DomainInfo {
                name: "gateway-probe".into(),
                version: "0.1.0".into(),
                description: "Calls services for the tests.".into(),
                aggregates: vec!["probe".into()],
                commands: vec![
                    CommandInfo {
                        name: "call".into(),
                        kind: CommandKind::Handle,
                        aggregate: "probe".into(),
                        id: AggregateId::Minted,
                        description: "Calls a service and records the outcome.".into(),
                    },
                    CommandInfo {
                        name: "enqueue".into(),
                        kind: CommandKind::Handle,
                        aggregate: "probe".into(),
                        id: AggregateId::Minted,
                        description: "Enqueues a call through the outbox (or, with reject, then refuses).".into(),
                    },
                    CommandInfo {
                        name: "cache-gets".into(),
                        kind: CommandKind::Handle,
                        aggregate: "probe".into(),
                        id: AggregateId::Minted,
                        description: "Reads one cached key n times.".into(),
                    },
                ],
                event_types: vec!["Called".into(), "CacheRead".into(), "Enqueued".into()],
                capabilities: vec![],
            }
        }
    }

    impl Aggregate for Probe {
        fn decide(request: DecideRequest) -> Result<Vec<NewEvent>, DecideError> {
            Err(DecideError::UnknownCommand(request.command))
        }

        fn fold(_aggregate: String, _id: String, _history: Vec<RecordedEvent>) -> Result<String, DecideError> {
            Ok("{}".into())
        }
    }

    fn text(value: &Value, field: &str) -> String {
        value[field].as_str().unwrap_or_default().to_string()
    }

    impl Handler for Probe {
        fn handle(request: HandleRequest) -> Result<(), HandleError> {
            let payload: Value =
                serde_json::from_str(&request.payload).map_err(|e| HandleError::Failed(e.to_string()))?;
            if request.command == "enqueue" {
                let call = Request {
                    method: text(&payload, "method"),
                    path: text(&payload, "path"),
                    headers: vec![],
                    body: b"{}".to_vec(),
                    idempotency_key: None,
                };
                let outcome = match gateway::enqueue(&text(&payload, "service"), &call) {
                    Ok(id) => json!({"id": id}),
                    Err(error) => json!({"error": format!("{error:?}")}),
                };
                if payload["reject"] == true {
                    return Err(HandleError::Rejected(cairn::domain::types::Rejection {
                        code: "refused-after-enqueue".into(),
                        message: "Refused after enqueueing a call.".into(),
                        fields: vec![],
                    }));
                }
                let event = NewEvent { event_type: "Enqueued".into(), data: outcome.to_string() };
                return event_store::append(
                    &format!("probe-{}", request.aggregate_id),
                    ExpectedVersion::NoStream,
                    &[event],
                )
                .map(|_| ())
                .map_err(|e| HandleError::Failed(format!("{e:?}")));
            }
            if request.command == "cache-gets" {
                let n = payload["n"].as_u64().unwrap_or(0);
                cache::set("bench", b"a cached value of some sixty-four bytes, like a small JSON quote", 60_000, &[])
                    .map_err(|e| HandleError::Failed(format!("{e:?}")))?;
                let mut found = 0;
                for _ in 0..n {
                    found += cache::get("bench").ok().flatten().map_or(0, |v| v.len());
                }
                let event =
                    NewEvent { event_type: "CacheRead".into(), data: json!({"n": n, "bytes": found}).to_string() };
                return event_store::append(
                    &format!("probe-{}", request.aggregate_id),
                    ExpectedVersion::NoStream,
                    &[event],
                )
                .map(|_| ())
                .map_err(|e| HandleError::Failed(format!("{e:?}")));
            }
            let call = Request {
                method: text(&payload, "method"),
                path: text(&payload, "path"),
                headers: vec![],
                body: vec![],
                idempotency_key: Some(request.aggregate_id.clone()),
            };
            let outcome = match gateway::call(&text(&payload, "service"), &call) {
                Ok(response) => json!({"status": response.status, "body": String::from_utf8_lossy(&response.body)}),
                Err(error) => {
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
            };
            let event = NewEvent { event_type: "Called".into(), data: outcome.to_string() };
            event_store::append(&format!("probe-{}", request.aggregate_id), ExpectedVersion::NoStream, &[event])
                .map(|_| ())
                .map_err(|e| HandleError::Failed(format!("{e:?}")))
        }
    }

    export!(Probe);
}
