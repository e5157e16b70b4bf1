//! Kept states and snapshots (`cairn:domain/aggregate-state`, 0.1.2): a command on a stream the
//! host has seen is decided on the state it kept, a cold one on the newest snapshot of the same
//! build plus the events after it. None of that may change what is stored: the same commands
//! leave the same streams with the cache and snapshots on or off; a new build (or a rollback)
//! never decides on another build's state or snapshot; a snapshot plus its tail folds like the
//! whole history; and the folded state is served, now and at any version.

use cairn_tests::{KEEPER_COMPONENT, KEEPER_NEXT_COMPONENT, LEGACY_0_1_1_COMPONENT};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::TestHost;

/// A host serving the keeper with the given cache size and snapshot interval.
async fn keeper(cache_mib: u64, snapshot_every: u64) -> TestHost {
    TestHost::start_with(&[KEEPER_COMPONENT], |config| {
        config.aggregates.state_cache_mib = cache_mib;
        config.aggregates.snapshot_every = snapshot_every;
    })
    .await
    .unwrap()
}

async fn add(host: &TestHost, ledger: &str, amount: i64, reference: &str) -> cairn_tests::Reply {
    let body = json!({"ledger_id": ledger, "amount": amount, "reference": reference});
    host.command("keeper", "add", body).await.unwrap()
}

/// Every event of a stream as (version, type, data).
async fn events(host: &TestHost, stream: &str) -> Vec<(u64, String, Value)> {
    host.stream_events("keeper", stream)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e["version"].as_u64().unwrap(), e["type"].as_str().unwrap().to_string(), e["data"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_commands_leave_the_same_streams_with_kept_states_on_or_off() {
    // Kept states with a snapshot every third event; no cache and no snapshots (every command
    // folds the whole stream); no cache but snapshots (cold commands start from a snapshot).
    let hosts = [keeper(64, 3).await, keeper(0, 0).await, keeper(0, 2).await];
    let mut answers = vec![Vec::new(); hosts.len()];
    // Adds, takes refused for overdraft, checks that pass (no event) and fail, on three ledgers.
    let mut seed = 7u64;
    for step in 0..90 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let ledger = format!("l{}", (seed >> 33) % 3);
        let amount = ((seed >> 40) % 21) as i64 - 8;
        for (host, answers) in hosts.iter().zip(&mut answers) {
            let reply = if step % 7 == 3 {
                host.command("keeper", "check", json!({"ledger_id": ledger, "at_least": amount * 3})).await.unwrap()
            } else {
                add(host, &ledger, amount, &format!("r{step}")).await
            };
            answers.push((reply.status, reply.body["code"].clone(), reply.body["events"].clone()));
        }
    }
    assert_eq!(answers[0], answers[1], "kept states answer like folds from history");
    assert_eq!(answers[0], answers[2], "snapshots answer like folds from history");
    assert!(answers[0].iter().any(|(status, code, _)| *status == 422 && code == "overdrawn"), "some were refused");
    for ledger in ["ledger-l0", "ledger-l1", "ledger-l2"] {
        let kept = events(&hosts[0], ledger).await;
        assert!(kept.len() > 5, "{ledger}: {} events", kept.len());
        assert_eq!(kept, events(&hosts[1], ledger).await, "{ledger}: same events with the cache off");
        assert_eq!(kept, events(&hosts[2], ledger).await, "{ledger}: same events from snapshots");
        for (i, (version, _, data)) in kept.iter().enumerate() {
            assert_eq!(*version, i as u64 + 1);
            assert_eq!(data["count"], i as u64 + 1, "{ledger}: each decision saw every earlier event");
        }
    }
}

/// The build that folded the state each `Added` of `stream` from `from` on was decided on.
async fn seen_builds(host: &TestHost, stream: &str, from: usize) -> Vec<String> {
    events(host, stream).await[from..].iter().map(|(_, _, data)| data["seen_build"].as_str().unwrap().into()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_build_and_a_rollback_never_decide_on_another_builds_state_or_snapshot() {
    // With kept states (and snapshots), and with snapshots alone.
    for (cache_mib, label) in [(64, "kept states"), (0, "snapshots only")] {
        let host = keeper(cache_mib, 2).await;
        for i in 0..5 {
            add(&host, "a", 10, &format!("v1-{i}")).await.expect_ok();
        }
        assert_eq!(seen_builds(&host, "ledger-a", 1).await, vec!["v1"; 4], "{label}");

        host.deploy(KEEPER_NEXT_COMPONENT, "").await.unwrap().expect(201);
        for i in 0..3 {
            add(&host, "a", 1, &format!("v2-{i}")).await.expect(200);
        }
        assert_eq!(seen_builds(&host, "ledger-a", 5).await, vec!["v2"; 3], "{label}: v2 folded anew");

        host.admin_post("/admin/v1/domains/keeper/rollback", json!({})).await.unwrap().expect(200);
        for i in 0..3 {
            add(&host, "a", 1, &format!("back-{i}")).await.expect(200);
        }
        assert_eq!(seen_builds(&host, "ledger-a", 8).await, vec!["v1"; 3], "{label}: v1 again, never v2's state");

        let state = host.get("/v1/domains/keeper/aggregates/ledger/a").await.unwrap();
        let state = &state.expect(200).body;
        assert_eq!(state["version"], 11, "{label}: {state}");
        assert_eq!(state["state"], json!({"count": 11, "total": 56, "build": "v1"}), "{label}");
        assert_eq!(state["plugin"]["version"], "1.0.0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregates_state_is_served_now_and_at_any_version() {
    let host = keeper(64, 4).await;
    for amount in [5, 7, -2, 11, 3, -4] {
        add(&host, "t", amount, "").await.expect_ok();
    }
    let now = host.get("/v1/domains/keeper/aggregates/ledger/t").await.unwrap();
    assert_eq!(now.expect(200).body["state"], json!({"count": 6, "total": 20, "build": "v1"}));
    assert_eq!(now.body["stream"], "ledger-t");
    assert_eq!(now.body["version"], 6);
    // Before and after the snapshot at version 4.
    let mut total = 0;
    for (version, amount) in (1..).zip([5, 7, -2, 11, 3, -4]) {
        total += amount;
        let then = host.get(&format!("/v1/domains/keeper/aggregates/ledger/t?at_version={version}")).await.unwrap();
        assert_eq!(then.expect(200).body["state"], json!({"count": version, "total": total, "build": "v1"}));
        assert_eq!(then.body["version"], version);
    }
    let beyond = host.get("/v1/domains/keeper/aggregates/ledger/t?at_version=7").await.unwrap();
    assert_eq!(beyond.expect_problem(404, "version-not-found").body["head"], 6);
    for (path, status, code) in [
        ("/v1/domains/keeper/aggregates/ledger/nobody", 404, "aggregate-not-found"),
        ("/v1/domains/keeper/aggregates/account/t", 404, "unknown-aggregate"),
        ("/v1/domains/nowhere/aggregates/ledger/t", 404, "unknown-domain"),
        ("/v1/domains/keeper/aggregates/ledger/t?at_version=0", 400, "invalid-query"),
        ("/v1/domains/keeper/aggregates/ledger/t?at_version=x", 400, "invalid-query"),
    ] {
        host.get(path).await.unwrap().expect_problem(status, code);
    }
}

#[tokio::test]
async fn a_plugin_built_against_0_1_1_keeps_the_history_path() {
    let host = TestHost::start(&[LEGACY_0_1_1_COMPONENT]).await.unwrap();
    for count in 1..=4 {
        let reply = host.command("legacy-state", "increment", json!({"counter_id": "c"})).await.unwrap();
        // The plugin counts the history it was handed: the host gave it every event, in order.
        assert_eq!(reply.expect_ok().body["events"][0]["data"]["count"], count);
    }
    let state = host.get("/v1/domains/legacy-state/aggregates/counter/c?at_version=3").await.unwrap();
    assert_eq!(state.expect(200).body["state"], json!({"count": 3}), "folded with `aggregate.fold`");
}

/// `Added` events as the keeper stores them, with the given amounts.
fn history(amounts: &[i64]) -> Vec<cairn::bindings::types::RecordedEvent> {
    amounts
        .iter()
        .enumerate()
        .map(|(i, amount)| cairn::bindings::types::RecordedEvent {
            stream: "ledger-p".into(),
            version: i as u64 + 1,
            global_position: i as u64 + 1,
            event_type: "Added".into(),
            data: json!({"amount": amount, "reference": format!("r{i}"), "seen_build": "", "count": i + 1}).to_string(),
            metadata: "{}".into(),
            recorded_at_micros: 0,
        })
        .collect()
}

/// The keeper component loaded once (outside any host) for the property test.
fn keeper_plugin() -> &'static cairn::runtime::Plugin {
    use cairn::runtime::{EngineLimits, LimitsPolicy, Runtime};
    static PLUGIN: std::sync::OnceLock<std::sync::Arc<cairn::runtime::Plugin>> = std::sync::OnceLock::new();
    PLUGIN.get_or_init(|| {
        let runtime = Runtime::new(EngineLimits::default(), LimitsPolicy::default(), None, None).unwrap();
        runtime.load(&std::fs::read(KEEPER_COMPONENT).unwrap()).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The real component: a snapshot of any prefix plus the rest folds to the state of the
    /// whole history, folded either way.
    #[test]
    fn a_snapshot_plus_its_tail_folds_like_the_whole_history(
        amounts in proptest::collection::vec(-50i64..50, 0..60),
        cut in 0usize..60,
    ) {
        let plugin = keeper_plugin();
        let all = history(&amounts);
        let cut = cut.min(all.len());
        let fold = |state: Option<&str>, tail| plugin.fold_on_state("ledger", "p", state, tail).unwrap().unwrap();
        let whole = fold(None, &all);
        let snapshot = fold(None, &all[..cut]);
        prop_assert_eq!(&fold(Some(&snapshot), &all[cut..]), &whole);
        prop_assert_eq!(&plugin.fold("ledger", "p", &all).unwrap().unwrap(), &whole, "`aggregate.fold` agrees");
    }
}
