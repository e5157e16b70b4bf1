//! Batches: commands applied in order as one unit of work; each sees what the earlier ones
//! appended; a failure anywhere writes nothing and names the command.

use cairn_tests::CARRIERS_COMPONENT;

use super::TestHost;
use serde_json::{Value, json};

const PATH: &str = "/v1/domains/carriers/batch";

async fn host() -> TestHost {
    TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap()
}

fn register(name: &str, email: &str) -> Value {
    json!({"command": "register-carrier", "payload": {"name": name, "email": email}})
}

/// The global position the next committed event gets: shows whether anything else was written.
async fn next_position(host: &TestHost, email: &str) -> u64 {
    let reply = host.command("carriers", "register-carrier", json!({"name": "Probe", "email": email})).await.unwrap();
    let events = host.stream_events("carriers", reply.body["stream"].as_str().unwrap()).await.unwrap();
    events[0]["position"].as_u64().unwrap()
}

#[tokio::test]
async fn a_batch_applies_every_command_and_answers_each() {
    let host = host().await;
    let existing =
        host.command("carriers", "register-carrier", json!({"name": "Old", "email": "old@x.io"})).await.unwrap();
    let old_id = existing.body["aggregate_id"].as_str().unwrap();
    let body = json!({"commands": [
        register("A", "a@x.io"),
        {"command": "change-carrier-email", "payload": {"carrier_id": old_id, "email": "older@x.io"}},
        {"command": "deactivate-carrier", "payload": {"carrier_id": old_id}},
    ]});
    let reply = host.post_raw(PATH, body.to_string(), &[]).await.unwrap();
    reply.expect(200);
    let results = reply.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["status"], 201);
    assert_eq!(results[1]["result"]["version"], 2);
    assert_eq!(results[2]["result"]["version"], 3, "the third command saw the second's event");
    let old = host.stream_events("carriers", &format!("carrier-{old_id}")).await.unwrap();
    let types: Vec<&str> = old.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["CarrierRegistered", "CarrierEmailChanged", "CarrierDeactivated"]);
    assert_ne!(old[1]["metadata"]["command_id"], old[2]["metadata"]["command_id"], "each event names its command");
}

#[tokio::test]
async fn a_batch_whose_third_command_is_rejected_writes_nothing_and_names_it() {
    let host = host().await;
    let before = next_position(&host, "before@x.io").await;
    // The third registration wants the first one's email: only the first command's (uncommitted)
    // reservation can reject it.
    let body = json!({"commands": [register("A", "same@x.io"), register("B", "b@x.io"), register("C", "same@x.io")]});
    let reply = host.post_raw(PATH, body.to_string(), &[]).await.unwrap();
    reply.expect_problem(422, "email-taken");
    assert_eq!(reply.body["failed_index"], 3);
    assert_eq!(reply.body["failed_command"], "register-carrier");
    assert_eq!(reply.body["errors"]["email"], "The email is already used by another carrier");
    assert!(reply.body["detail"].as_str().unwrap().starts_with("Command 3 of the batch"));
    assert!(host.stream_events("carriers", "email-address-same@x.io").await.unwrap().is_empty());
    assert_eq!(next_position(&host, "after@x.io").await, before + 2, "nothing of the batch was committed");
}

#[tokio::test]
async fn bad_batches_are_4xx_and_a_repeated_key_replays() {
    let host = host().await;
    host.post_raw(PATH, "{\"commands\": 3}".into(), &[]).await.unwrap().expect_problem(400, "malformed-batch");
    host.post_raw(PATH, "{\"commands\": []}".into(), &[]).await.unwrap().expect_problem(422, "invalid-payload");
    let unknown = json!({"commands": [register("A", "a@x.io"), {"command": "fly", "payload": {}}]});
    let reply = host.post_raw(PATH, unknown.to_string(), &[]).await.unwrap();
    reply.expect_problem(404, "unknown-command");
    assert_eq!(reply.body["failed_index"], 2);

    let body = json!({"commands": [register("K", "k@x.io")]}).to_string();
    let first = host.post_raw(PATH, body.clone(), &[("idempotency-key", "batch-1")]).await.unwrap();
    first.expect(200);
    let again = host.post_raw(PATH, body, &[("idempotency-key", "batch-1")]).await.unwrap();
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
}
