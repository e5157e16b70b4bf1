//! Commands over HTTP against the carriers domain: every status code of the command route.

use cairn_tests::CARRIERS_COMPONENT;

use super::TestHost;
use serde_json::json;

async fn host() -> TestHost {
    TestHost::start(&[CARRIERS_COMPONENT]).await.expect("host starts")
}

#[tokio::test]
async fn a_valid_registration_is_201_and_its_event_carries_provenance() {
    let host = host().await;
    let reply =
        host.command("carriers", "register-carrier", json!({"name": "Acme", "email": "ops@acme.io"})).await.unwrap();
    reply.expect(201);
    let stream = reply.body["stream"].as_str().unwrap().to_string();
    let id = reply.body["aggregate_id"].as_str().unwrap();
    assert_eq!(stream, format!("carrier-{id}"));
    assert_eq!(reply.body["version"], 1);
    assert_eq!(reply.body["events"][0]["type"], "CarrierRegistered");
    assert_eq!(reply.body["events"][0]["data"]["email"], "ops@acme.io");
    assert_eq!(reply.body["events"][0]["data"]["carrier_id"], id);

    let events = host.stream_events("carriers", &stream).await.unwrap();
    assert_eq!(events.len(), 1);
    let meta = &events[0]["metadata"];
    assert_eq!(meta["plugin"]["domain"], "carriers");
    assert_eq!(meta["plugin"]["version"], "0.1.0");
    let digest = meta["plugin"]["digest"].as_str().unwrap();
    let expected = sha256_hex(&std::fs::read(CARRIERS_COMPONENT).unwrap());
    assert_eq!(digest, expected, "the digest is the sha256 of the deployed component");
    assert!(meta["command_id"].is_string() && meta["correlation_id"].is_string() && meta["causation_id"].is_string());
    assert_eq!(events[0]["version"], 1);
    assert!(events[0]["position"].as_u64().unwrap() >= 1);
    assert!(events[0]["recorded_at"].as_str().unwrap().contains('T'));
}

#[tokio::test]
async fn an_invalid_registration_is_422_naming_every_bad_field() {
    let host = host().await;
    let reply = host.command("carriers", "register-carrier", json!({"name": "  ", "email": "nope"})).await.unwrap();
    reply.expect_problem(422, "validation-failed");
    assert_eq!(reply.body["errors"]["email"], "The email must be a valid email address");
    assert_eq!(reply.body["errors"]["name"], "The name is required");
}

#[tokio::test]
async fn later_commands_are_200_and_rules_hold() {
    let host = host().await;
    let created =
        host.command("carriers", "register-carrier", json!({"name": "Acme", "email": "a@acme.io"})).await.unwrap();
    let id = created.body["aggregate_id"].as_str().unwrap().to_string();
    let changed = host
        .command("carriers", "change-carrier-email", json!({"carrier_id": id, "email": "b@acme.io"}))
        .await
        .unwrap();
    changed.expect(200);
    assert_eq!(changed.body["version"], 2);
    assert_eq!(changed.body["events"][0]["data"], json!({"old_email": "a@acme.io", "new_email": "b@acme.io"}));
    host.command("carriers", "deactivate-carrier", json!({"carrier_id": id, "reason": "left"}))
        .await
        .unwrap()
        .expect(200);
    host.command("carriers", "change-carrier-email", json!({"carrier_id": id, "email": "c@acme.io"}))
        .await
        .unwrap()
        .expect_problem(422, "carrier-deactivated");
    let events = host.stream_events("carriers", &format!("carrier-{id}")).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["CarrierRegistered", "CarrierEmailChanged", "CarrierDeactivated"]);
}

#[tokio::test]
async fn a_command_that_changes_nothing_is_200_with_no_events() {
    let host = host().await;
    let created =
        host.command("carriers", "register-carrier", json!({"name": "Acme", "email": "a@acme.io"})).await.unwrap();
    let id = created.body["aggregate_id"].as_str().unwrap();
    let same = host
        .command("carriers", "change-carrier-email", json!({"carrier_id": id, "email": "a@acme.io"}))
        .await
        .unwrap();
    same.expect(200);
    assert_eq!(same.body["events"], json!([]));
    assert_eq!(same.body["version"], 1);
}

#[tokio::test]
async fn unknown_domain_command_and_carrier_are_404_and_422() {
    let host = host().await;
    host.command("ships", "register-carrier", json!({})).await.unwrap().expect_problem(404, "unknown-domain");
    host.command("carriers", "fly-away", json!({})).await.unwrap().expect_problem(404, "unknown-command");
    host.command("carriers", "change-carrier-email", json!({"carrier_id": "nobody", "email": "x@y.io"}))
        .await
        .unwrap()
        .expect_problem(422, "carrier-not-found");
    host.get("/v1/nothing-here").await.unwrap().expect_problem(404, "not-found");
    host.get("/v1/domains/carriers/streams/carrier-nobody").await.unwrap().expect_problem(404, "stream-not-found");
}

#[tokio::test]
async fn a_missing_or_malformed_aggregate_id_is_422_naming_the_field() {
    let host = host().await;
    let reply = host.command("carriers", "change-carrier-email", json!({"email": "x@y.io"})).await.unwrap();
    reply.expect_problem(422, "invalid-payload");
    assert_eq!(reply.body["errors"]["carrier_id"], "The id is required");
    let reply = host.command("carriers", "deactivate-carrier", json!({"carrier_id": {"nested": 1}})).await.unwrap();
    reply.expect_problem(422, "invalid-payload");
    assert!(reply.body["errors"]["carrier_id"].is_string());
}

#[tokio::test]
async fn malformed_json_is_400_and_nothing_is_appended() {
    let host = host().await;
    let path = "/v1/domains/carriers/commands/register-carrier";
    host.post_raw(path, "{\"name\": ".into(), &[]).await.unwrap().expect_problem(400, "malformed-json");
    host.post_raw(path, "[1, 2]".into(), &[]).await.unwrap().expect_problem(400, "malformed-json");
    let reply = host
        .client()
        .post(format!("{}{path}", host.base))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 415);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_also_when_chunked() {
    let host = TestHost::start_with(&[CARRIERS_COMPONENT], |c| c.max_body_bytes = 4096).await.unwrap();
    let path = "/v1/domains/carriers/commands/register-carrier";
    let big = json!({"name": "x".repeat(5000), "email": "a@b.io"}).to_string();
    host.post_raw(path, big.clone(), &[]).await.unwrap().expect_problem(413, "body-too-large");

    let chunks: Vec<Result<String, std::io::Error>> =
        big.as_bytes().chunks(512).map(|c| Ok(String::from_utf8_lossy(c).into_owned())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let reply = host
        .client()
        .post(format!("{}{path}", host.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 413);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let host = host().await;
    let reply = host.get("/healthz").await.unwrap();
    reply.expect(200);
    assert!(reply.headers.contains_key("x-request-id"));
    let reply = host.command("carriers", "register-carrier", json!({})).await.unwrap();
    assert!(reply.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn readiness_lists_the_loaded_domains() {
    let host = host().await;
    let ready = host.get("/readyz").await.unwrap();
    ready.expect(200);
    assert_eq!(ready.body["domains"][0]["domain"], "carriers");
    assert_eq!(ready.body["domains"][0]["version"], "0.1.0");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
