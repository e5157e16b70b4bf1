//! A poison event with several hosts on one PostgreSQL schema: only the host running the
//! projections parks the projection, and every host (followers too) answers queries over it
//! with 503 `projection-failed` at once; a skip must go to that host (the others answer 409
//! `projections-elsewhere`), after which every host reads the events that followed.

use std::time::{Duration, Instant};

use cairn_tests::{ORDERS_FAULTY_COMPONENT, Served};
use serde_json::{Value, json};

async fn two_hosts(dir: &std::path::Path) -> Vec<Served> {
    let url = cairn_tests::postgres_url().unwrap();
    let schema = cairn_tests::fresh_schema();
    let env = [
        ("CAIRN_DATABASE_URL", url.as_str()),
        ("CAIRN_DATABASE__SCHEMA", schema.as_str()),
        ("CAIRN_PROJECTIONS__FAILURE_ATTEMPTS", "2"),
    ];
    let mut hosts = Vec::new();
    for i in 0..2 {
        hosts.push(Served::start(env!("CARGO_BIN_EXE_serve-examples"), &dir.join(format!("host-{i}")), &env).await);
    }
    hosts
}

/// Creates an order through `host`; its global position.
async fn create(host: &Served, user: &str) -> u64 {
    let url = format!("{}/v1/domains/orders/commands/create-order", host.base);
    let reply = host.client.post(url).json(&json!({"user_id": user, "total_cents": 100})).send().await.unwrap();
    assert_eq!(reply.status(), 201);
    reply.headers()["cairn-position"].to_str().unwrap().parse().unwrap()
}

fn orders(all: &[Value]) -> Option<Value> {
    all.iter().find(|g| g["name"] == "orders" && g["role"] == "active").cloned()
}

/// Waits until `done` holds for every host's view of the `orders` projection (20 s at most).
async fn on_every_host(hosts: &[Served], done: impl Fn(&Value) -> bool) {
    let started = Instant::now();
    for host in hosts {
        loop {
            let all = host.projections().await;
            if orders(&all).is_some_and(|g| done(&g)) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{}: {all:#?}", host.base);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn every_host_answers_a_parked_projection_at_once_and_a_skip_goes_to_the_host_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = two_hosts(dir.path()).await;
    let deploy = hosts[0]
        .client
        .post(format!("{}/admin/v1/plugins", hosts[0].base))
        .bearer_auth(cairn_tests::ADMIN_TOKEN)
        .header("content-type", "application/wasm")
        .body(std::fs::read(ORDERS_FAULTY_COMPONENT).unwrap());
    assert_eq!(deploy.send().await.unwrap().status(), 201);
    on_every_host(&hosts, |g| g["plugin_version"] == "0.4.0").await;

    let trap = create(&hosts[1], "trap-me").await;
    let after = create(&hosts[0], "fine").await;
    on_every_host(&hosts, |g| g["parked"]["position"] == trap).await;
    for host in &hosts {
        let path = format!("/v1/domains/orders/queries/orders-by-user?user_id=fine&min_position={after}&wait_ms=30000");
        let asked = host.get(&path);
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), asked).await.unwrap();
        assert_eq!((status, body["code"].as_str()), (503, Some("projection-failed")), "{}: {body}", host.base);
    }

    let mut leader = None;
    for (i, host) in hosts.iter().enumerate() {
        if host.projections().await.iter().all(|g| g["state"] != "elsewhere") {
            leader = Some(i);
        }
    }
    let leader = leader.expect("one host runs the projections");
    let follower = &hosts[1 - leader];
    let (status, body) = follower.post("/admin/v1/domains/orders/projections/orders/skip", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("projections-elsewhere")), "{body}");
    let (status, body) = hosts[leader].post("/admin/v1/domains/orders/projections/orders/skip", json!({})).await;
    assert_eq!((status, body["event"]["position"].as_u64()), (200, Some(trap)), "{body}");
    // The other host follows the skip at its next look at the generations (notified at once).
    on_every_host(&hosts, |g| g["parked"].is_null()).await;

    for host in &hosts {
        let path = format!("/v1/domains/orders/queries/orders-by-user?user_id=fine&min_position={after}&wait_ms=10000");
        let (status, body) = host.get(&path).await;
        assert_eq!(status, 200, "{}: {body}", host.base);
        assert_eq!(body["data"]["orders"].as_array().unwrap().len(), 1, "{body}");
    }
    let (_, skipped) = hosts[1 - leader].get("/admin/v1/domains/orders/projections/orders/skipped").await;
    assert_eq!(skipped["skipped"][0]["position"], trap, "every host sees what was skipped: {skipped}");
}
