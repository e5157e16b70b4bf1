//! A read side that survives a bad event: the `orders-faulty` build's `orders` projector traps
//! on every order of `trap-me`. After `projections.failure_attempts` failures the projection's
//! policy applies: `skip` records the event as skipped and projects the following ones; `stop`
//! parks the projection on it, queries over it answer 503 `projection-failed` at once, and an
//! operator retries or skips it through the admin API.

use std::time::Duration;

use cairn_tests::{ORDERS_COMPONENT, ORDERS_FAULTY_COMPONENT, Reply};
use serde_json::{Value, json};

use super::TestHost;
use super::read_side::{create, query, wait_projections};

/// A host with `orders`, the faulty build deployed and running every projection; two failures
/// on an event apply the policy.
async fn faulty_host(skip: bool) -> TestHost {
    let host = TestHost::start_with(&[ORDERS_COMPONENT], |config| {
        config.admin.rate_limit_per_minute = 1_000_000;
        config.admin.rate_limit_burst = 100_000;
        config.projections.failure_attempts = 2;
        if skip {
            config.projections.on_failure_for.insert("orders/orders".into(), cairn::engine::FailurePolicy::Skip);
        }
    })
    .await
    .unwrap();
    create(&host, "fine", 100).await;
    host.deploy(ORDERS_FAULTY_COMPONENT, "").await.unwrap().expect(201);
    wait_projections(&host, |all| all.iter().all(|g| g["plugin_version"] == "0.4.0")).await;
    host
}

fn orders_generation(all: &[Value]) -> Value {
    all.iter().find(|g| g["name"] == "orders" && g["role"] == "active").cloned().unwrap()
}

async fn skipped(host: &TestHost) -> Vec<Value> {
    let reply = host.admin_get("/admin/v1/domains/orders/projections/orders/skipped").await.unwrap();
    reply.expect(200).body["skipped"].as_array().cloned().unwrap()
}

fn orders_of(reply: &Reply) -> usize {
    reply.body["data"]["orders"].as_array().unwrap().len()
}

#[tokio::test]
async fn with_the_skip_policy_a_failing_event_is_recorded_as_skipped_and_the_next_ones_are_projected() {
    let host = faulty_host(true).await;
    let (_, trap) = create(&host, "trap-me", 4200).await;
    let (_, after) = create(&host, "fine", 300).await;

    let fine = query(&host, "orders-by-user", &format!("user_id=fine&min_position={after}&wait_ms=20000")).await;
    assert_eq!(orders_of(fine.expect(200)), 2, "the events after the bad one are projected: {fine:#?}");
    let trapped = query(&host, "orders-by-user", &format!("user_id=trap-me&min_position={after}")).await;
    assert_eq!(orders_of(trapped.expect(200)), 0, "the bad event was skipped");

    let skipped = skipped(&host).await;
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert_eq!(skipped[0]["position"], trap);
    assert_eq!(skipped[0]["event_type"], "OrderCreated");
    assert_eq!(skipped[0]["by"], "policy");
    assert!(skipped[0]["error"].as_str().unwrap().contains("trap"), "{skipped:#?}");
    let all = wait_projections(&host, |_| true).await;
    let orders = orders_generation(&all);
    assert!(orders["parked"].is_null(), "{orders:#?}");
    assert_eq!(orders["on_failure"], "skip");
}

#[tokio::test]
async fn with_the_stop_policy_queries_fail_at_once_until_an_operator_retries_or_skips_the_event() {
    let host = faulty_host(false).await;
    let (_, trap) = create(&host, "trap-me", 4200).await;
    let (_, after) = create(&host, "fine", 300).await;
    let all = wait_projections(&host, |all| !orders_generation(all)["parked"].is_null()).await;
    let parked = orders_generation(&all);
    assert_eq!(parked["state"], "parked", "{parked:#?}");
    assert_eq!(parked["on_failure"], "stop");
    assert_eq!(parked["parked"]["position"], trap);
    assert!(parked["parked"]["error"].as_str().unwrap().contains("trap"), "{parked:#?}");

    // 503 at once (a wait of 30 s would end in 504 only after 30 s), with and without a position.
    let path = format!("user_id=fine&min_position={after}&wait_ms=30000");
    let failed = tokio::time::timeout(Duration::from_secs(10), query(&host, "orders-by-user", &path)).await.unwrap();
    failed.expect_problem(503, "projection-failed");
    assert_eq!(failed.body["projection"], "orders");
    assert_eq!(failed.body["failed_position"], trap);
    query(&host, "orders-by-user", "user_id=fine").await.expect_problem(503, "projection-failed");
    // The other projection of the domain is not affected.
    let stats = query(&host, "user-dashboard", &format!("user_id=trap-me&min_position={after}")).await;
    assert_eq!(stats.expect(200).body["data"]["total_orders"], 1);

    // Retry: the projector fails on it again and parks again (a later failure).
    let retried = host.admin_post("/admin/v1/domains/orders/projections/orders/retry", json!({})).await.unwrap();
    assert_eq!(retried.expect(200).body["state"], "retrying");
    let first_at = parked["parked"]["at_micros"].as_i64().unwrap();
    wait_projections(&host, |all| {
        orders_generation(all)["parked"]["at_micros"].as_i64().is_some_and(|at| at > first_at)
    })
    .await;

    // Skip: recorded as skipped by an operator; the rest is projected.
    let skip = host.admin_post("/admin/v1/projections/orders/orders/skip", json!({})).await.unwrap();
    assert_eq!(skip.expect(200).body["event"]["position"], trap, "{skip:#?}");
    let fine = query(&host, "orders-by-user", &format!("user_id=fine&min_position={after}&wait_ms=10000")).await;
    assert_eq!(orders_of(fine.expect(200)), 2, "{fine:#?}");
    let skipped = skipped(&host).await;
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert_eq!((skipped[0]["position"].clone(), skipped[0]["by"].clone()), (json!(trap), json!("operator")));

    let again = host.admin_post("/admin/v1/domains/orders/projections/orders/skip", json!({})).await.unwrap();
    again.expect_problem(409, "projection-not-parked");
    let unknown = host.admin_post("/admin/v1/domains/orders/projections/nope/retry", json!({})).await.unwrap();
    unknown.expect_problem(404, "unknown-projection");
}

#[tokio::test]
async fn a_parked_projection_stays_parked_across_a_restart_and_a_new_plugin_version_retries_it() {
    let mut host = faulty_host(false).await;
    let (_, trap) = create(&host, "trap-me", 4200).await;
    wait_projections(&host, |all| !orders_generation(all)["parked"].is_null()).await;
    host.restart().await.unwrap();
    let all = wait_projections(&host, |all| !orders_generation(all)["parked"].is_null()).await;
    assert_eq!(orders_generation(&all)["parked"]["position"], trap, "still parked after the restart");
    query(&host, "orders-by-user", "user_id=fine").await.expect_problem(503, "projection-failed");

    // The fixed version (a rollback) takes the generation over and gets past the event.
    host.admin_post("/admin/v1/domains/orders/rollback", json!({})).await.unwrap().expect(200);
    wait_projections(&host, |all| orders_generation(all)["parked"].is_null()).await;
    let trapped = query(&host, "orders-by-user", &format!("user_id=trap-me&min_position={trap}&wait_ms=10000")).await;
    assert_eq!(orders_of(trapped.expect(200)), 1, "{trapped:#?}");
    assert!(skipped(&host).await.is_empty(), "nothing was skipped");
}
