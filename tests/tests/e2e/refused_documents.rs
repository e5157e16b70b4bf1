//! A document the read-model store refuses is the event's fault, as a trap is: the projection
//! retries the batch event by event, and after `projections.failure_attempts` failures on the
//! event its policy applies (skip it, or park on it) instead of retrying forever as if the store
//! were down. PostgreSQL only: its jsonb refuses the number `1e-20000` ("value overflows numeric
//! format", SQLSTATE 22003) that the host's JSON check and SQLite accept; the `sloth-precise`
//! build's projector writes it on `odd`.

use cairn::engine::FailurePolicy;
use cairn_tests::SLOTH_PRECISE_COMPONENT;
use serde_json::{Value, json};

use super::TestHost;
use super::read_side::{position, wait_projections};

async fn host(skip: bool) -> TestHost {
    TestHost::start_with(&[SLOTH_PRECISE_COMPONENT], |config| {
        config.admin.rate_limit_per_minute = 1_000_000;
        config.admin.rate_limit_burst = 100_000;
        config.projections.failure_attempts = 2;
        if skip {
            config.projections.on_failure_for.insert("sloth/tasks".into(), FailurePolicy::Skip);
        }
    })
    .await
    .unwrap()
}

async fn sloth(host: &TestHost, command: &str, id: &str) -> u64 {
    position(host.command("sloth", command, json!({ "id": id })).await.unwrap().expect(201))
}

fn tasks(all: &[Value]) -> Value {
    all.iter().find(|g| g["name"] == "tasks" && g["role"] == "active").cloned().unwrap_or_default()
}

#[tokio::test]
async fn with_the_skip_policy_an_event_whose_document_the_store_refuses_is_skipped() {
    let host = host(true).await;
    let odd = sloth(&host, "odd", "odd").await;
    let after = sloth(&host, "note", "after").await;
    let path = format!("/v1/domains/sloth/queries/task?id=after&min_position={after}&wait_ms=20000");
    let reply = host.get(&path).await.unwrap();
    assert_eq!(reply.expect(200).body["data"]["task"]["kind"], "note", "the next event is projected");
    let reply = host.get("/v1/domains/sloth/queries/task?id=odd").await.unwrap();
    assert!(reply.expect(200).body["data"]["task"].is_null(), "the refused document was not written");
    let skipped = host.admin_get("/admin/v1/domains/sloth/projections/tasks/skipped").await.unwrap();
    let skipped = skipped.expect(200).body["skipped"].as_array().cloned().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert_eq!((skipped[0]["position"].clone(), skipped[0]["by"].clone()), (json!(odd), json!("policy")));
    assert!(skipped[0]["error"].as_str().unwrap().contains("refused"), "{skipped:#?}");
}

#[tokio::test]
async fn with_the_stop_policy_an_event_whose_document_the_store_refuses_parks_the_projection() {
    let host = host(false).await;
    let noted = sloth(&host, "note", "before").await;
    let odd = sloth(&host, "odd", "odd").await;
    let all = wait_projections(&host, |all| !tasks(all)["parked"].is_null()).await;
    let parked = tasks(&all);
    assert_eq!((parked["state"].clone(), parked["parked"]["position"].clone()), (json!("parked"), json!(odd)));
    assert!(parked["parked"]["error"].as_str().unwrap().contains("refused"), "{parked:#?}");
    let reply = host.get(&format!("/v1/domains/sloth/queries/task?id=before&min_position={odd}")).await.unwrap();
    reply.expect_problem(503, "projection-failed");
    let path = format!("/v1/domains/sloth/queries/task?id=before&min_position={noted}");
    assert_eq!(host.get(&path).await.unwrap().expect_problem(503, "projection-failed").body["failed_position"], odd);
}
