//! One domain's slow or greedy read side holds up no other domain: the `sloth` guest's projector
//! sleeps (within the deadline its domain is given) while `orders` commands stay visible to
//! read-your-writes queries; its slow queries take at most their domain's share of the read
//! side (`projections.max_queries_per_domain`, then 503 `queries-busy`) while `orders` queries
//! answer; a projector call writing more than `limits.max_projection_batch_mib` fails with the
//! typed error naming the key.

use std::time::{Duration, Instant};

use cairn::config::Config;
use cairn_tests::{ORDERS_COMPONENT, SLOTH_COMPONENT};
use serde_json::json;

use super::TestHost;
use super::read_side::{create, position, query};

/// A host with `orders` and `sloth`; the sloth may take 20 s per call.
async fn host_with_sloth(adjust: impl FnOnce(&mut Config)) -> TestHost {
    TestHost::start_with(&[ORDERS_COMPONENT, SLOTH_COMPONENT], |config| {
        config.admin.rate_limit_per_minute = 1_000_000;
        config.admin.rate_limit_burst = 100_000;
        config.domains.entry("sloth".into()).or_default().limits.deadline_ms = Some(20_000);
        adjust(config);
    })
    .await
    .unwrap()
}

/// Sends a sloth command; its global position.
async fn sloth(host: &TestHost, command: &str, body: serde_json::Value) -> u64 {
    let reply = host.command("sloth", command, body).await.unwrap();
    position(reply.expect(201))
}

async fn task(host: &TestHost, id: &str, at: u64) -> serde_json::Value {
    let reply = host.get(&format!("/v1/domains/sloth/queries/task?id={id}&min_position={at}&wait_ms=30000")).await;
    reply.unwrap().expect(200).body["data"]["task"].clone()
}

/// An orders command, then a read-your-writes query with the usual wait, answered in time.
async fn orders_round_trip(host: &TestHost) {
    let (_, at) = create(host, "busy", 100).await;
    let params = format!("user_id=busy&min_position={at}");
    let asked = query(host, "orders-by-user", &params);
    let reply = tokio::time::timeout(Duration::from_secs(3), asked).await.expect("the orders query was held up");
    reply.expect(200);
}

#[tokio::test]
async fn a_sleeping_projector_of_one_domain_does_not_hold_up_another_domains_projections() {
    let host = host_with_sloth(|_| {}).await;
    let noted = sloth(&host, "note", json!({"id": "first"})).await;
    assert_eq!(task(&host, "first", noted).await["kind"], "note");

    // The sloth's projector sleeps 6 s on this event: longer than a query's usual 5 s wait.
    let nap = sloth(&host, "nap", json!({"id": "slow", "ms": 6000})).await;
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(4) {
        orders_round_trip(&host).await;
        rounds += 1;
    }
    assert!(rounds >= 2, "{rounds} rounds");
    assert_eq!(task(&host, "slow", nap).await["kind"], "nap", "and the slow one gets there too");
}

#[tokio::test]
async fn slow_queries_of_one_domain_take_only_its_share_of_the_read_side() {
    let host = host_with_sloth(|config| config.projections.max_queries_per_domain = 2).await;
    let noted = sloth(&host, "note", json!({"id": "t"})).await;
    task(&host, "t", noted).await;

    // Six slow queries (distinct, so not coalesced) at once: two compute, four get 503 after
    // waiting their turn for `limits.queue_ms`; orders queries answer meanwhile.
    let paths: Vec<String> = (0..6).map(|i| format!("/v1/domains/sloth/queries/nap?id=t&ms=4000&n={i}")).collect();
    let slow: Vec<_> = paths.iter().map(|path| host.get(path)).collect();
    let attack = futures::future::join_all(slow);
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(200)).await; // the slow ones go first
        for _ in 0..3 {
            orders_round_trip(&host).await;
        }
    };
    let (replies, ()) = tokio::join!(attack, meanwhile);
    let replies: Vec<_> = replies.into_iter().map(Result::unwrap).collect();
    let answered = replies.iter().filter(|r| r.status == 200).count();
    let busy: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!((answered, busy.len()), (2, 4), "{replies:#?}");
    for reply in busy {
        reply.expect_problem(503, "queries-busy");
        assert!(reply.body["detail"].as_str().unwrap().contains("projections.max_queries_per_domain"));
    }
}

#[tokio::test]
async fn a_projector_call_writing_past_the_batch_cap_fails_with_the_typed_error() {
    let host = host_with_sloth(|config| {
        config.limits.max_projection_batch_mib = 1;
        config.projections.failure_attempts = 1;
        config.projections.on_failure_for.insert("sloth/tasks".into(), cairn::engine::FailurePolicy::Skip);
    })
    .await;
    let small = sloth(&host, "flood", json!({"id": "small", "count": 4, "kib": 100})).await;
    assert_eq!(task(&host, "small", small).await["kind"], "flood", "400 KiB fit");
    let big = sloth(&host, "flood", json!({"id": "big", "count": 20, "kib": 100})).await;
    let after = sloth(&host, "note", json!({"id": "after"})).await;
    assert_eq!(task(&host, "after", after).await["kind"], "note");
    assert!(task(&host, "big", after).await.is_null(), "2 MiB did not fit");

    let reply = host.admin_get("/admin/v1/domains/sloth/projections/tasks/skipped").await.unwrap();
    let skipped = reply.expect(200).body["skipped"].as_array().cloned().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert_eq!(skipped[0]["position"], big);
    let error = skipped[0]["error"].as_str().unwrap();
    assert!(error.contains("limits.max_projection_batch_mib"), "{error}");
}
