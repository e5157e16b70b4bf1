//! A database outage: commands fail fast with 503 and `/readyz` says not ready while PostgreSQL
//! is unreachable, and the host recovers by itself when it returns, having lost nothing.

use std::time::{Duration, Instant};

use cairn_tests::{ORDERS_COMPONENT, TcpProxy};
use serde_json::json;

use super::TestHost;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_commands_fast_with_503_and_the_host_recovers_by_itself() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await.unwrap();
    let url = cairn_tests::postgres_url().unwrap();
    let (_, rest) = url.split_once('@').unwrap();
    let (_, database) = rest.split_once('/').unwrap();
    let through_proxy = format!("{}@{}/{database}", url.split_once('@').unwrap().0, proxy.addr());
    let host = TestHost::start_with(&[ORDERS_COMPONENT], |config| {
        config.database.url = Some(through_proxy);
        config.database.acquire_timeout_ms = 1000;
    })
    .await
    .unwrap();
    let create =
        |user: &'static str| host.command("orders", "create-order", json!({"user_id": user, "total_cents": 500}));
    create("before").await.unwrap().expect(201);
    host.get("/readyz").await.unwrap().expect(200);

    proxy.down();
    let started = Instant::now();
    let refused = create("during").await.unwrap();
    refused.expect_problem(503, "store-unavailable");
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast: {:?}", started.elapsed());
    host.get("/readyz").await.unwrap().expect_problem(503, "not-ready");

    proxy.up();
    let back = Instant::now();
    loop {
        let reply = create("after").await.unwrap();
        if reply.status == 201 {
            break;
        }
        reply.expect_problem(503, "store-unavailable");
        assert!(back.elapsed() < Duration::from_secs(15), "the host did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    host.get("/readyz").await.unwrap().expect(200);
    // Nothing lost, nothing extra: the orders before and after, and the projection caught up.
    let (_, position) = super::read_side::create(&host, "after", 700).await;
    let stats =
        super::read_side::query(&host, "user-dashboard", &format!("user_id=after&min_position={position}")).await;
    assert_eq!(stats.expect(200).body["data"]["total_orders"], 2, "{stats:#?}");
    let before = super::read_side::query(&host, "user-dashboard", "user_id=before").await;
    assert_eq!(before.expect(200).body["data"]["total_orders"], 1);
    let during = super::read_side::query(&host, "user-dashboard", "user_id=during").await;
    assert_eq!(during.expect(200).body["data"]["total_orders"], 0, "the refused command left nothing: {during:#?}");
}
