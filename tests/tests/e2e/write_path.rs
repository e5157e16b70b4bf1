//! A PostgreSQL write path that cannot commit while the database still answers (issue 13; the
//! stand-in for a full disk, which a shared test server cannot be given): every insert into the
//! event log and the idempotency records is refused by a `CHECK (false)` constraint. Commands
//! answer 503 and `/readyz` 503 naming the write path while reads go on; once the constraints
//! are dropped, the writer's probe makes readiness healthy again and commands succeed without a
//! restart.

use std::time::{Duration, Instant};

use cairn_tests::ORDERS_COMPONENT;
use serde_json::json;
use sqlx::Connection;

use super::TestHost;

async fn in_schema(host: &TestHost, statements: &[&str]) {
    let schema = host.config.database.schema.clone().unwrap();
    let mut conn = sqlx::PgConnection::connect(&cairn_tests::postgres_url().unwrap()).await.unwrap();
    for statement in statements {
        sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.unwrap();
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_path_that_cannot_commit_is_not_ready_until_it_can_again_without_a_restart() {
    let host = TestHost::start(&[ORDERS_COMPONENT]).await.unwrap();
    let create =
        |user: &'static str| host.command("orders", "create-order", json!({"user_id": user, "total_cents": 5}));
    let before = create("before").await.unwrap();
    let stream = before.expect(201).body["stream"].as_str().unwrap().to_string();

    in_schema(
        &host,
        &[
            "ALTER TABLE events ADD CONSTRAINT cairn_test_no_writes CHECK (false) NOT VALID",
            "ALTER TABLE idempotency_keys ADD CONSTRAINT cairn_test_no_writes CHECK (false) NOT VALID",
        ],
    )
    .await;
    create("refused").await.unwrap().expect_problem(503, "store-unavailable");
    let ready = host.get("/readyz").await.unwrap();
    ready.expect_problem(503, "not-ready");
    assert_eq!(ready.body["check"], "write_path", "{ready:#?}");
    assert_eq!(host.stream_events("orders", &stream).await.unwrap().len(), 1, "reads go on");

    in_schema(
        &host,
        &[
            "ALTER TABLE events DROP CONSTRAINT cairn_test_no_writes",
            "ALTER TABLE idempotency_keys DROP CONSTRAINT cairn_test_no_writes",
        ],
    )
    .await;
    let started = Instant::now();
    while host.get("/readyz").await.unwrap().status != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "readiness never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    create("after").await.unwrap().expect(201);
}
