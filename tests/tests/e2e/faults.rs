//! A plugin that traps, spins or breaks the contract fails only that command, with a clear
//! problem; the host keeps serving it and every other domain, and nothing is appended.

use cairn_tests::{CARRIERS_COMPONENT, FAULTY_COMPONENT};

use super::TestHost;
use serde_json::json;

async fn host() -> TestHost {
    TestHost::start(&[CARRIERS_COMPONENT, FAULTY_COMPONENT]).await.expect("host starts")
}

#[tokio::test]
async fn a_panicking_plugin_fails_the_command_and_the_host_keeps_serving() {
    let host = host().await;
    let reply = host.command("faulty", "panic", json!({"id": "g1"})).await.unwrap();
    reply.expect_problem(500, "plugin-trapped");
    assert_eq!(reply.body["domain"], "faulty");
    assert_eq!(reply.body["function"], "decide");
    assert!(host.stream_events("faulty", "gadget-g1").await.unwrap().is_empty(), "nothing appended");

    host.command("faulty", "record", json!({"id": "g1"})).await.unwrap().expect(201);
    host.command("carriers", "register-carrier", json!({"name": "Acme", "email": "a@acme.io"}))
        .await
        .unwrap()
        .expect(201);
    host.get("/readyz").await.unwrap().expect(200);
}

#[tokio::test]
async fn a_plugin_that_never_returns_is_interrupted_at_its_deadline() {
    let host =
        TestHost::start_with(&[CARRIERS_COMPONENT, FAULTY_COMPONENT], |c| c.limits.deadline_ms = 50).await.unwrap();
    let started = std::time::Instant::now();
    let reply = host.command("faulty", "spin", json!({"id": "g2"})).await.unwrap();
    reply.expect_problem(504, "deadline-exceeded");
    assert_eq!(reply.body["limit"], "limits.deadline_ms");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(host.stream_events("faulty", "gadget-g2").await.unwrap().is_empty());
    host.command("carriers", "register-carrier", json!({"name": "Acme", "email": "a@acme.io"}))
        .await
        .unwrap()
        .expect(201);
}

#[tokio::test]
async fn a_plugin_growing_past_its_memory_cap_is_stopped_naming_the_limit() {
    let host = TestHost::start_with(&[FAULTY_COMPONENT], |c| c.limits.memory_mib = 16).await.unwrap();
    let reply = host.command("faulty", "hog", json!({"id": "g4", "mib": 64})).await.unwrap();
    reply.expect_problem(422, "limit-exceeded");
    assert_eq!(reply.body["limit"], "limits.memory_mib");
    assert!(reply.body["detail"].as_str().unwrap().contains("cap"), "{reply:?}");
    assert!(host.stream_events("faulty", "gadget-g4").await.unwrap().is_empty());
    host.command("faulty", "hog", json!({"id": "g4", "mib": 4})).await.unwrap().expect(201);
}

#[tokio::test]
async fn an_undeclared_event_type_is_refused_and_not_appended() {
    let host = host().await;
    let reply = host.command("faulty", "undeclared", json!({"id": "g3"})).await.unwrap();
    reply.expect_problem(500, "plugin-contract-violation");
    assert!(reply.body["detail"].as_str().unwrap().contains("Sneaked"));
    assert!(host.stream_events("faulty", "gadget-g3").await.unwrap().is_empty());
}
