//! Two hosts on one PostgreSQL database changing the same ledgers, each keeping states and
//! snapshots: a state one host kept goes stale the moment the other appends. The append's
//! expected version catches a stale success (the command refolds from the store), and a
//! rejection or an empty decision made on a stale state is checked against the stream's head.
//! Nothing of that may show: versions stay contiguous, every acknowledged command is stored
//! exactly once, and each ledger's state equals a fold of its events from zero.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_tests::KEEPER_COMPONENT;
use serde_json::json;

use super::TestHost;

/// Two hosts on one fresh schema, snapshots every fifth event.
async fn two_hosts() -> (Arc<TestHost>, Arc<TestHost>) {
    let adjust = |config: &mut cairn::config::Config| config.aggregates.snapshot_every = 5;
    let a = TestHost::start_with(&[KEEPER_COMPONENT], adjust).await.unwrap();
    let schema = a.config.database.schema.clone();
    let b = TestHost::start_with(&[KEEPER_COMPONENT], |config| {
        adjust(config);
        config.database.schema = schema;
    })
    .await
    .unwrap();
    (Arc::new(a), Arc::new(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_state_kept_by_one_host_never_hides_what_the_other_appended() {
    let (a, b) = two_hosts().await;
    // `a` keeps the ledger at 10; `b` adds 5 behind its back.
    a.command("keeper", "add", json!({"ledger_id": "s", "amount": 10})).await.unwrap().expect(201);
    b.command("keeper", "add", json!({"ledger_id": "s", "amount": 5})).await.unwrap().expect(200);
    // A check `a` would refuse on its kept 10 passes on the stream's 15 (no event).
    a.command("keeper", "check", json!({"ledger_id": "s", "at_least": 15})).await.unwrap().expect(200);
    // A take `a` would refuse as an overdraft on its kept state succeeds on the store's.
    let taken = a.command("keeper", "add", json!({"ledger_id": "s", "amount": -15})).await.unwrap();
    assert_eq!(taken.expect(200).body["events"][0]["data"]["count"], 3, "decided on all three events");
    // And `b`, whose kept state is now behind too, refuses on the store's 0.
    b.command("keeper", "add", json!({"ledger_id": "s", "amount": -1})).await.unwrap().expect_problem(422, "overdrawn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_changing_the_same_ledgers_store_every_acknowledged_command_once() {
    let (a, b) = two_hosts().await;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let hosts = [a.clone(), b.clone()];
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..30 {
                let host = &hosts[(task + i) % 2];
                let ledger = format!("l{}", (task * 7 + i) % 3);
                let amount = if (task + i) % 4 == 0 { -7 } else { 5 + (i as i64 % 3) };
                let reference = format!("t{task}-{i}");
                let body = json!({"ledger_id": ledger, "amount": amount, "reference": reference});
                let reply = host.command("keeper", "add", body).await.unwrap();
                outcomes.push((ledger, reference, amount, reply.status, reply.body["code"].clone()));
            }
            outcomes
        }));
    }
    let mut acknowledged: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for task in tasks {
        for (ledger, reference, amount, status, code) in task.await.unwrap() {
            match status {
                200 | 201 => {
                    acknowledged.entry(ledger).or_default().insert(reference, amount);
                }
                422 => assert_eq!(code, "overdrawn"),
                409 => assert_eq!(code, "concurrency-conflict"),
                other => panic!("{ledger}/{reference}: status {other} {code}"),
            }
        }
    }
    for (ledger, acked) in &acknowledged {
        let stream = format!("ledger-{ledger}");
        let events = a.stream_events("keeper", &stream).await.unwrap();
        let mut stored = BTreeMap::new();
        let mut total = 0;
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event["version"], i as u64 + 1, "{stream}: contiguous versions");
            assert_eq!(event["data"]["count"], i as u64 + 1, "{stream}: each decision saw every earlier event");
            let reference = event["data"]["reference"].as_str().unwrap().to_string();
            let amount = event["data"]["amount"].as_i64().unwrap();
            total += amount;
            assert!(total >= 0, "{stream}: overdrawn at version {}", i + 1);
            assert!(stored.insert(reference.clone(), amount).is_none(), "{stream}: {reference} stored twice");
        }
        assert_eq!(&stored, acked, "{stream}: exactly the acknowledged commands");
        for host in [&a, &b] {
            let state = host.get(&format!("/v1/domains/keeper/aggregates/ledger/{ledger}")).await.unwrap();
            let state = &state.expect(200).body["state"];
            assert_eq!(state["total"], total, "{stream}: the state is the fold from zero");
            assert_eq!(state["count"], events.len());
        }
    }
    assert_eq!(acknowledged.len(), 3);
}
