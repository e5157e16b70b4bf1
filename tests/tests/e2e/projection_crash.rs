//! A real `cairn serve` process killed (SIGKILL) in the middle of a projection's catch-up: after a
//! restart the projection finishes from its last checkpoint, and its documents equal those of a
//! rebuild from zero: no running total doubled, none lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_tests::Served;
use serde_json::{Value, json};
use sqlx::Connection;

/// A `serve-examples` process on `data`, with small projection batches (many commits, so the
/// kill lands between two of them).
async fn serve(data: &Path) -> Served {
    Served::start(env!("CARGO_BIN_EXE_serve-examples"), data, &[("CAIRN_PROJECTIONS__BATCH_SIZE", "8")]).await
}

/// Waits until `user_dashboard_stats` of `host` is served by `generation` with nothing building.
async fn wait_active(host: &Served, generation: u64) {
    let started = Instant::now();
    loop {
        let all = host.projections().await;
        let stats: Vec<&Value> = all.iter().filter(|p| p["name"] == "user_dashboard_stats").collect();
        if stats.len() == 1 && stats[0]["generation"] == generation && stats[0]["state"] == "live" {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "generation {generation} never served: {all:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
/// Every document of one generation of `user_dashboard_stats`, by collection and id.
async fn documents(data: &Path, generation: u64) -> BTreeMap<(String, String), Value> {
    let url = format!("sqlite://{}?mode=ro", data.join("read-models.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT collection, id, body FROM documents WHERE namespace = ?")
            .bind(format!("orders/user_dashboard_stats/{generation}"))
            .fetch_all(&mut db)
            .await
            .unwrap();
    rows.into_iter().map(|(c, id, body)| ((c, id), serde_json::from_str(&body).unwrap())).collect()
}

#[tokio::test]
async fn a_host_killed_mid_catch_up_resumes_from_its_checkpoint_and_equals_a_rebuild_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = serve(&data).await;
    // 1200 orders of 24 users, every fifth one cancelled: increments and decrements.
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for chunk in (0..1200u64).collect::<Vec<_>>().chunks(32) {
        let sends = chunk.iter().map(|i| {
            let (client, base) = (&host.client, &host.base);
            async move {
                let body = json!({"user_id": format!("user-{}", i % 24), "total_cents": 100 + i});
                let reply = client.post(format!("{base}/v1/domains/orders/commands/create-order")).json(&body).send();
                let reply: Value = reply.await.unwrap().json().await.unwrap();
                let id = reply["aggregate_id"].as_str().unwrap().to_string();
                if i % 5 == 0 {
                    let cancel = client
                        .post(format!("{base}/v1/domains/orders/commands/cancel-order"))
                        .json(&json!({"order_id": id}))
                        .send();
                    assert_eq!(cancel.await.unwrap().status(), 200);
                }
            }
        });
        futures::future::join_all(sends).await;
        for i in chunk.iter().filter(|i| *i % 5 != 0) {
            let entry = expected.entry(format!("user-{}", i % 24)).or_default();
            entry.0 += 1;
            entry.1 += (100 + i) as i64;
        }
    }
    wait_active(&host, 1).await;

    let (status, rebuild) =
        host.post("/admin/v1/domains/orders/projections/user_dashboard_stats/rebuild", json!({})).await;
    assert_eq!(status, 202, "{rebuild}");
    assert_eq!(rebuild["generation"], 2);
    let started = Instant::now();
    let at_kill = loop {
        let all = host.projections().await;
        let building = all.iter().find(|p| p["name"] == "user_dashboard_stats" && p["role"] == "building").cloned();
        if let Some(b) = building.filter(|b| b["position"].as_u64().unwrap() > 0) {
            break b;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the rebuild never started: {all:#?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let mut host = host;
    host.kill();
    assert!(at_kill["lag_events"].as_u64().unwrap() > 0, "killed in the middle of the catch-up: {at_kill:#?}");

    let host = serve(&data).await;
    wait_active(&host, 2).await;
    let (status, _) = host.post("/admin/v1/domains/orders/projections/user_dashboard_stats/rebuild", json!({})).await;
    assert_eq!(status, 202);
    wait_active(&host, 3).await;
    let mut host = host;
    host.kill();

    let resumed = documents(&data, 2).await;
    let fresh = documents(&data, 3).await;
    assert!(!fresh.is_empty());
    assert_eq!(resumed, fresh, "the generation built across the kill equals a rebuild from zero");
    for (user, (orders, value)) in expected {
        let stats = &fresh[&("user_stats".to_string(), user.clone())];
        assert_eq!(stats["total_orders"], orders, "{user}: {stats}");
        assert_eq!(stats["lifetime_value_cents"], value, "{user}: {stats}");
    }
}
