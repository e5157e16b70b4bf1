//! The read side through the real host with the `orders` domain: projections follow commands,
//! queries read them (cached, `min_position` for read-your-writes), a held write transaction
//! does not make a projector skip an event, a new projection version builds a new generation
//! while the old one answers, a trapping projector stops only its own projection (more on that
//! in `poison.rs`).

use std::time::{Duration, Instant};

use cairn_tests::{ORDERS_COMPONENT, ORDERS_FAULTY_COMPONENT, ORDERS_NEXT_COMPONENT, Reply};

use super::TestHost;
use serde_json::{Value, json};

/// Creates an order; its id and the global position of its event.
pub(super) async fn create(host: &TestHost, user: &str, cents: u64) -> (String, u64) {
    let reply = host.command("orders", "create-order", json!({"user_id": user, "total_cents": cents})).await.unwrap();
    reply.expect(201);
    (reply.body["aggregate_id"].as_str().unwrap().to_string(), position(&reply))
}

/// The `Cairn-Position` of a command's answer.
pub(super) fn position(reply: &Reply) -> u64 {
    reply.headers["cairn-position"].to_str().unwrap().parse().unwrap()
}

/// A host with the orders domain; the tests poll the admin API, so its rate limit is lifted.
pub(super) async fn start(component: &str) -> TestHost {
    TestHost::start_with(&[component], |config| {
        config.admin.rate_limit_per_minute = 1_000_000;
        config.admin.rate_limit_burst = 100_000;
    })
    .await
    .unwrap()
}

pub(super) async fn query(host: &TestHost, query: &str, params: &str) -> Reply {
    host.get(&format!("/v1/domains/orders/queries/{query}?{params}")).await.unwrap()
}

/// Polls `GET /admin/v1/projections` until `done` holds for it (10 s at most).
pub(super) async fn wait_projections(host: &TestHost, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let reply = host.admin_get("/admin/v1/projections").await.unwrap();
        let all = reply.body["projections"].as_array().cloned().unwrap_or_default();
        if done(&all) {
            return all;
        }
        // Generous: the suites share two cores with each other in CI; a passing wait returns early.
        assert!(started.elapsed() < Duration::from_secs(30), "projections never got there: {all:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn generation<'a>(all: &'a [Value], name: &str, role: &str) -> Option<&'a Value> {
    all.iter().find(|p| p["name"] == name && p["role"] == role)
}

#[tokio::test]
async fn commands_become_visible_through_cached_queries_and_min_position_reads_your_writes() {
    let host = start(ORDERS_COMPONENT).await;
    let (first, _) = create(&host, "ann", 1000).await;
    let (second, _) = create(&host, "ann", 3000).await;
    create(&host, "bob", 500).await;
    host.command("orders", "confirm-order", json!({"order_id": first})).await.unwrap().expect(200);
    let cancelled = host.command("orders", "cancel-order", json!({"order_id": second})).await.unwrap();
    let position = position(cancelled.expect(200));

    let orders = query(&host, "orders-by-user", &format!("user_id=ann&min_position={position}")).await;
    orders.expect(200);
    assert!(orders.body["position"].as_u64().unwrap() >= position, "{orders:#?}");
    let docs = orders.body["data"]["orders"].as_array().unwrap();
    assert_eq!(docs.len(), 2, "{orders:#?}");
    let status = |id: &str| docs.iter().find(|d| d["order_id"] == id).map(|d| d["status"].clone());
    assert_eq!(status(&first), Some(json!("confirmed")));
    assert_eq!(status(&second), Some(json!("cancelled")));

    let stats = query(&host, "user-dashboard", &format!("user_id=ann&min_position={position}")).await;
    let data = &stats.expect(200).body["data"];
    assert_eq!(data["total_orders"], 1, "the cancelled order leaves the stats: {data}");
    assert_eq!(data["lifetime_value_cents"], 1000, "{data}");
    assert_eq!(data["average_order_value_cents"], 1000, "{data}");
    assert!(data["last_order_at"].as_i64().is_some(), "{data}");

    // The same question at the same position is answered from the cache; a new event moves the
    // position and the next answer is computed anew.
    let again = query(&host, "user-dashboard", "user_id=ann").await;
    assert_eq!(again.expect(200).headers["cairn-cache"], "hit", "{again:#?}");
    assert_eq!(again.body["position"], stats.body["position"]);
    let (_, later) = create(&host, "ann", 500).await;
    let fresh = query(&host, "user-dashboard", &format!("user_id=ann&min_position={later}")).await;
    assert_eq!(fresh.expect(200).headers["cairn-cache"], "miss");
    assert_eq!(fresh.body["data"]["total_orders"], 2);

    let by_status = query(&host, "orders-by-status", &format!("status=cancelled&min_position={later}")).await;
    let cancelled_ids: Vec<&Value> =
        by_status.expect(200).body["data"]["orders"].as_array().unwrap().iter().map(|d| &d["order_id"]).collect();
    assert_eq!(cancelled_ids, [&json!(second)]);

    query(&host, "orders-by-user", "status=pending").await.expect_problem(400, "invalid-parameters");
    query(&host, "no-such-query", "").await.expect_problem(404, "unknown-query");
    let ahead = query(&host, "orders-by-user", "user_id=ann&min_position=1000000&wait_ms=200").await;
    ahead.expect_problem(504, "min-position-not-reached");
    assert_eq!(ahead.body["min_position"], 1_000_000);
}

#[tokio::test]
async fn a_changed_projection_builds_a_new_generation_while_the_old_one_answers_then_switches_and_rolls_back() {
    let host = start(ORDERS_COMPONENT).await;
    let creates: Vec<_> = (0..400)
        .map(|i| {
            let host = &host;
            async move { create(host, &format!("user-{}", i % 20), 100 + i).await }
        })
        .collect();
    let created = futures::future::join_all(creates).await;
    let last = created.iter().map(|(_, p)| *p).max().unwrap();
    let before = query(&host, "orders-by-user", &format!("user_id=user-3&min_position={last}")).await;
    assert_eq!(before.expect(200).body["generation"], 1);
    assert!(before.body["data"]["orders"][0].get("total").is_none(), "v1 documents have no `total`");

    host.deploy(ORDERS_NEXT_COMPONENT, "").await.unwrap().expect(201);
    // Right after the switch of plugin version the new generation is still building: queries
    // answer from generation 1 (with v1's documents), never fail.
    let during = query(&host, "orders-by-user", "user_id=user-3").await;
    assert_eq!(during.expect(200).body["generation"], 1, "{during:#?}");
    let all = wait_projections(&host, |all| {
        generation(all, "orders", "active").is_some_and(|g| g["generation"] == 2)
            && generation(all, "orders", "building").is_none()
    })
    .await;
    let stats = generation(&all, "user_dashboard_stats", "active").unwrap();
    assert_eq!(stats["generation"], 1, "an unchanged projection keeps its generation: {all:#?}");
    assert_eq!(stats["plugin_version"], "0.2.0", "and the new plugin version runs it");
    let after = query(&host, "orders-by-user", &format!("user_id=user-3&min_position={last}")).await;
    assert_eq!(after.expect(200).body["generation"], 2);
    let docs = after.body["data"]["orders"].as_array().unwrap();
    assert_eq!(docs.len(), 20, "every order rebuilt: {after:#?}");
    assert!(docs.iter().all(|d| d["total"].as_str().is_some_and(|t| t.ends_with(" EUR"))), "{after:#?}");

    // A rollback switches back to the retired generation at once; it catches up on what it missed.
    let (_, newest) = create(&host, "user-3", 999).await;
    host.admin_post("/admin/v1/domains/orders/rollback", json!({})).await.unwrap().expect(200);
    wait_projections(&host, |all| generation(all, "orders", "active").is_some_and(|g| g["generation"] == 1)).await;
    let back = query(&host, "orders-by-user", &format!("user_id=user-3&min_position={newest}&limit=200")).await;
    assert_eq!(back.expect(200).body["generation"], 1);
    assert_eq!(back.body["data"]["orders"].as_array().unwrap().len(), 21, "{back:#?}");
}

#[tokio::test]
async fn a_projector_that_traps_stops_only_its_projection_with_the_error_visible() {
    let host = start(ORDERS_COMPONENT).await;
    create(&host, "fine", 100).await;
    host.deploy(ORDERS_FAULTY_COMPONENT, "").await.unwrap().expect(201);
    // The runners take the new version over just after the activation: until then the previous
    // version (which does not trap) would project the next event.
    wait_projections(&host, |all| all.iter().all(|g| g["plugin_version"] == "0.4.0")).await;
    let (trap_id, trap_position) = create(&host, "trap-me", 4200).await;
    let (_, after) = create(&host, "fine", 300).await;

    let all = wait_projections(&host, |all| {
        generation(all, "orders", "active").is_some_and(|g| g["state"] == "failed" && !g["last_error"].is_null())
    })
    .await;
    let failed = generation(&all, "orders", "active").unwrap();
    let error = &failed["last_error"];
    assert_eq!(error["position"], trap_position, "{failed:#?}");
    assert_eq!(error["stream"], format!("order-{trap_id}"));
    assert_eq!(error["event_type"], "OrderCreated");
    assert!(error["message"].as_str().unwrap().contains("trap"), "{error}");
    assert!(failed["position"].as_u64().unwrap() < trap_position, "it stopped before the failing event");

    // The other projection goes on, and commands still succeed.
    let stats = query(&host, "user-dashboard", &format!("user_id=trap-me&min_position={after}")).await;
    assert_eq!(stats.expect(200).body["data"]["total_orders"], 1);
    // After its retries it stops on the event (the default policy): queries over it answer at once.
    wait_projections(&host, |all| generation(all, "orders", "active").is_some_and(|g| !g["parked"].is_null())).await;
    let orders = query(&host, "orders-by-user", &format!("user_id=fine&min_position={after}&wait_ms=300")).await;
    orders.expect_problem(503, "projection-failed");

    // The fixed version takes over the same generation (no longer parked) and gets past the event.
    host.admin_post("/admin/v1/domains/orders/rollback", json!({})).await.unwrap().expect(200);
    wait_projections(&host, |all| generation(all, "orders", "active").is_some_and(|g| g["parked"].is_null())).await;
    let orders = query(&host, "orders-by-user", &format!("user_id=trap-me&min_position={after}&wait_ms=10000")).await;
    assert_eq!(orders.expect(200).body["data"]["orders"].as_array().unwrap().len(), 1, "{orders:#?}");
    let all =
        wait_projections(&host, |all| generation(all, "orders", "active").is_some_and(|g| g["state"] == "live")).await;
    assert!(generation(&all, "orders", "active").unwrap()["last_error"].is_null());
}

#[tokio::test]
async fn concurrent_identical_misses_compute_once() {
    let host = start(ORDERS_COMPONENT).await;
    for round in 0..3 {
        let (_, at) = create(&host, "many", 100 + round).await;
        let path = format!("/v1/domains/orders/queries/user-dashboard?user_id=many&min_position={at}");
        let requests: Vec<_> = (0..32).map(|_| host.get(&path)).collect();
        let replies = futures::future::join_all(requests).await;
        let positions: std::collections::HashSet<String> =
            replies.iter().map(|r| r.as_ref().unwrap().body["position"].to_string()).collect();
        let misses =
            replies.iter().filter(|r| r.as_ref().unwrap().expect(200).headers["cairn-cache"] == "miss").count();
        assert_eq!(positions.len(), 1, "all at one position: {positions:?}");
        assert_eq!(misses, 1, "round {round}: 32 identical requests, one computation");
        assert_eq!(replies[0].as_ref().unwrap().body["data"]["total_orders"], round + 1);
    }
}
