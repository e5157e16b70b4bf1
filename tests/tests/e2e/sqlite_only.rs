//! What only the embedded SQLite backend has: one host per data directory, its write lock,
//! and the default configuration.

use std::time::Duration;

use cairn_tests::{CARRIERS_COMPONENT, ORDERS_COMPONENT};
use serde_json::json;
use sqlx::Connection;

use super::TestHost;
use super::read_side::{create, query, start};

#[tokio::test]
async fn a_projector_still_gets_an_event_whose_transaction_was_held_open_while_later_appends_waited() {
    let host = start(ORDERS_COMPONENT).await;
    let (_, before) = create(&host, "early", 100).await;
    // Another writer takes the database's write lock and appends an order, then holds its
    // transaction open while the host's commands try to commit after it.
    let url = format!("sqlite://{}", host.config.data_dir.join("cairn.db").display());
    let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut held = raw.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let position: i64 = sqlx::query_scalar("SELECT MAX(position) + 1 FROM events").fetch_one(&mut *held).await.unwrap();
    sqlx::query(
        "INSERT INTO events (position, domain, stream, version, event_type, data, metadata, recorded_at) \
         VALUES (?, 'orders', 'order-held', 1, 'OrderCreated', ?, '{}', ?)",
    )
    .bind(position)
    .bind(json!({"user_id": "held", "total_cents": 700, "currency": "EUR"}).to_string())
    .bind(1_800_000_000_000_000_i64)
    .execute(&mut *held)
    .await
    .unwrap();
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let host = &host;
            async move { create(host, &format!("later-{i}"), 10 + i).await }
        })
        .collect();
    let commit_later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.commit().await.unwrap();
    };
    let (later, ()) = tokio::join!(futures::future::join_all(writers), commit_later);
    let last = later.iter().map(|(_, p)| *p).max().unwrap();
    assert!(later.iter().all(|(_, p)| *p > position as u64 && *p > before), "later appends come after the held one");

    for user in std::iter::once("held".to_string()).chain((0..6).map(|i| format!("later-{i}"))) {
        let orders = query(&host, "orders-by-user", &format!("user_id={user}&min_position={last}")).await;
        assert_eq!(orders.expect(200).body["data"]["orders"].as_array().unwrap().len(), 1, "{user}: {orders:#?}");
        let stats = query(&host, "user-dashboard", &format!("user_id={user}&min_position={last}")).await;
        assert_eq!(stats.expect(200).body["data"]["total_orders"], 1, "{user}: applied once: {stats:#?}");
    }
}

#[tokio::test]
async fn a_second_host_on_the_same_data_directory_is_refused() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let mut config = host.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let error = cairn::start(&config).await.err().expect("a second host must not start");
    assert!(format!("{error:#}").contains("another Cairn host"), "{error:#}");
}

#[tokio::test]
async fn a_plugins_directory_with_a_broken_file_fails_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"not a component").unwrap();
    let config = cairn::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        plugins_dir: dir.path().to_path_buf(),
        ..cairn::Config::default()
    };
    let error = cairn::start(&config).await.err().expect("start must fail");
    let message = format!("{error:#}");
    assert!(message.contains("junk.wasm") && message.contains("not WebAssembly"), "{message}");
}

#[tokio::test]
async fn a_new_versions_shadow_replay_stores_its_own_snapshots_before_it_serves() {
    use sha2::{Digest, Sha256};
    let host = TestHost::start_with(&[cairn_tests::KEEPER_COMPONENT], |config| {
        config.aggregates.snapshot_every = 4;
    })
    .await
    .unwrap();
    for amount in 1..=6 {
        let body = json!({"ledger_id": "long", "amount": amount});
        host.command("keeper", "add", body).await.unwrap().expect_ok();
    }
    host.command("keeper", "add", json!({"ledger_id": "short", "amount": 1})).await.unwrap().expect(201);
    let digest = |path: &str| hex::encode(Sha256::digest(std::fs::read(path).unwrap()));
    let (v1, v2) = (digest(cairn_tests::KEEPER_COMPONENT), digest(cairn_tests::KEEPER_NEXT_COMPONENT));
    host.deploy(cairn_tests::KEEPER_NEXT_COMPONENT, "").await.unwrap().expect(201);

    // Before v2 decided anything: v1's snapshot from its commands, v2's from the replay, and
    // none of the short stream (below `snapshot_every`).
    let url = format!("sqlite://{}?mode=ro", host.config.data_dir.join("cairn.db").display());
    let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<(String, String, i64, String)> =
        sqlx::query_as("SELECT stream, digest, version, state FROM snapshots ORDER BY digest = ?, version")
            .bind(&v2)
            .fetch_all(&mut raw)
            .await
            .unwrap();
    let summary: Vec<(&str, bool, i64)> = rows.iter().map(|(s, d, v, _)| (s.as_str(), *d == v2, *v)).collect();
    assert_eq!(summary, vec![("ledger-long", false, 4), ("ledger-long", true, 6)], "{rows:?} (v1 {v1})");
    let state: serde_json::Value = serde_json::from_str(&rows[1].3).unwrap();
    assert_eq!(state, json!({"count": 6, "total": 21, "build": "v2"}), "folded by v2");
}
