//! The held-transaction test through the whole host on PostgreSQL: a real command's append is
//! held open in the middle of its transaction (its idempotency key collides with a row another
//! transaction inserted and has not committed, so the append waits holding the log head) while
//! six later commands wait behind it. The projections never move past it meanwhile, and once it
//! commits they get every order, the held one included, exactly once.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection;

use super::read_side::{create, position, query, start};
use cairn_tests::ORDERS_COMPONENT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_get_a_held_append_in_order_once_while_later_commands_wait() {
    let host = start(ORDERS_COMPONENT).await;
    let (_, early) = create(&host, "early", 100).await;

    let url = cairn_tests::postgres_url().unwrap();
    let schema = host.config.database.schema.clone().unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut blocker =
        sqlx::PgConnection::connect_with(&options.options([("search_path", schema.as_str())])).await.unwrap();
    let mut blocking = blocker.begin().await.unwrap();
    sqlx::query("INSERT INTO idempotency_keys VALUES ('orders', 'held', 'x', 201, '{}', 0)")
        .execute(&mut *blocking)
        .await
        .unwrap();

    let held = host.post_raw(
        "/v1/domains/orders/commands/create-order",
        json!({"user_id": "held", "total_cents": 700}).to_string(),
        &[("idempotency-key", "held")],
    );
    let later = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        futures::future::join_all((0..6u64).map(|i| {
            let host = &host;
            async move { create(host, &format!("later-{i}"), 10 + i).await }
        }))
        .await
    };
    let watch = async {
        // While the append is held, no projection gets past the events before it.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let all = host.admin_get("/admin/v1/projections").await.unwrap().body["projections"].clone();
        for projection in all.as_array().unwrap() {
            assert!(projection["position"].as_u64().unwrap() <= early, "{projection}: past a held append");
        }
        blocking.rollback().await.unwrap();
    };
    let (held, later, ()) = tokio::join!(held, later, watch);
    let held = held.unwrap();
    held.expect(201);
    let held_position = position(&held);
    assert!(held_position > early);
    let last = later.iter().map(|(_, p)| *p).max().unwrap();
    assert!(later.iter().all(|(_, p)| *p > held_position), "the later commands committed after the held one");

    for user in std::iter::once("held".to_string()).chain((0..6).map(|i| format!("later-{i}"))) {
        let orders = query(&host, "orders-by-user", &format!("user_id={user}&min_position={last}")).await;
        assert_eq!(orders.expect(200).body["data"]["orders"].as_array().unwrap().len(), 1, "{user}: {orders:#?}");
        let stats = query(&host, "user-dashboard", &format!("user_id={user}&min_position={last}")).await;
        assert_eq!(stats.expect(200).body["data"]["total_orders"], 1, "{user}: counted once");
    }
}
