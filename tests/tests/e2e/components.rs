//! Every component that `build.rs` compiles has a test here that loads it into a real host;
//! `foreach_component!` fails the build when one is missing.

use cairn_tests::{
    BIG_MEMORY_COMPONENT, CARRIERS_COMPONENT, CARRIERS_INCOMPATIBLE_COMPONENT, CARRIERS_NEXT_COMPONENT,
    FAULTY_COMPONENT, HOSTILE_COMPONENT, NOT_A_PLUGIN_COMPONENT, OVERREACH_COMPONENT, UNSTORABLE_COMPONENT,
};

use super::TestHost;
use serde_json::json;

macro_rules! assert_test_exists {
    ($name:ident) => {
        #[allow(unused_imports)]
        use self::$name as _;
    };
}
cairn_tests::foreach_component!(assert_test_exists);

#[tokio::test]
async fn carriers() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    host.command("carriers", "register-carrier", json!({"name": "A", "email": "a@b.io"})).await.unwrap().expect(201);
}

#[tokio::test]
async fn sloth() {
    let host = TestHost::start(&[cairn_tests::SLOTH_COMPONENT]).await.unwrap();
    host.command("sloth", "note", json!({"id": "a"})).await.unwrap().expect(201);
}

#[tokio::test]
async fn sloth_precise() {
    let host = TestHost::start(&[cairn_tests::SLOTH_PRECISE_COMPONENT]).await.unwrap();
    host.command("sloth", "odd", json!({"id": "a"})).await.unwrap().expect(201);
}

#[tokio::test]
async fn faulty() {
    let host = TestHost::start(&[FAULTY_COMPONENT]).await.unwrap();
    host.command("faulty", "record", json!({"id": 7})).await.unwrap().expect(201);
    assert_eq!(host.stream_events("faulty", "gadget-7").await.unwrap().len(), 1, "numeric ids become stream names");
}

#[tokio::test]
async fn carriers_next() {
    let host = TestHost::start(&[CARRIERS_NEXT_COMPONENT]).await.unwrap();
    let created = host.command("carriers", "register-carrier", json!({"name": "A", "email": "a@b.io"})).await.unwrap();
    let id = created.body["aggregate_id"].as_str().unwrap();
    let renamed = host.command("carriers", "rename-carrier", json!({"carrier_id": id, "name": "B"})).await.unwrap();
    renamed.expect(200);
    assert_eq!(renamed.body["events"][0]["type"], "CarrierRenamed");
}

#[tokio::test]
async fn carriers_incompatible() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let created = host.command("carriers", "register-carrier", json!({"name": "A", "email": "a@b.io"})).await.unwrap();
    let reply = host.deploy(CARRIERS_INCOMPATIBLE_COMPONENT, "").await.unwrap();
    reply.expect_problem(422, "shadow-replay-failed");
    let failure = &reply.body["replay"]["failures"][0];
    assert_eq!(failure["stream"], created.body["stream"]);
    assert!(failure["error"].as_str().unwrap().contains("region"), "{failure}");
}

#[tokio::test]
async fn not_a_plugin() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let reply = host.deploy(NOT_A_PLUGIN_COMPONENT, "").await.unwrap();
    reply.expect_problem(422, "invalid-plugin");
    assert!(reply.body["detail"].as_str().unwrap().contains("cairn:domain"), "{reply:?}");
}

#[tokio::test]
async fn hostile() {
    let host = TestHost::start(&[HOSTILE_COMPONENT]).await.unwrap();
    host.command("hostile", "flood", json!({"id": "h", "count": 3})).await.unwrap().expect(201);
}

#[tokio::test]
async fn big_memory() {
    let host = TestHost::start_with(&[], |c| c.limits.memory_mib = 128).await.unwrap();
    host.deploy(BIG_MEMORY_COMPONENT, "").await.unwrap().expect(201);
    host.command("big-memory", "touch", json!({"id": "b", "at": 12345})).await.unwrap().expect(201);
}

#[tokio::test]
async fn overreach() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let reply = host.deploy(OVERREACH_COMPONENT, "").await.unwrap();
    reply.expect_problem(422, "invalid-plugin");
    assert!(reply.body["detail"].as_str().unwrap().contains("cairn:domain/event-store"), "{reply:?}");
}

#[tokio::test]
async fn bank_decide_only() {
    // The bank's aggregate without its read side, as a component and linked natively into a
    // host (the sandbox benchmark's two sides): the same answers and the same events.
    let wasm = TestHost::start(&[cairn_tests::BANK_DECIDE_ONLY_COMPONENT]).await.unwrap();
    let native = TestHost::start(&[]).await.unwrap();
    let domain = std::sync::Arc::new(cairn_tests::native::SdkDomain::<bank::Domain>::default());
    let plugin = native.registry().install_native(domain).unwrap();
    assert!(plugin.digest.starts_with("native-") && plugin.keeps_state());
    let mut answers = Vec::new();
    for host in [&wasm, &native] {
        let mut seen = Vec::new();
        for (command, body) in [
            ("open-account", json!({"account_id": "a1", "owner": "Ann"})),
            ("deposit", json!({"account_id": "a1", "amount": 500})),
            ("withdraw", json!({"account_id": "a1", "amount": 700})),
            ("withdraw", json!({"account_id": "a1", "amount": 200})),
            ("deposit", json!({"account_id": "nobody", "amount": 1})),
        ] {
            let reply = host.command("bank", command, body).await.unwrap();
            seen.push((reply.status, reply.body["code"].clone(), reply.body["events"].clone()));
        }
        let state = host.get("/v1/domains/bank/aggregates/account/a1").await.unwrap();
        seen.push((state.status, json!(null), state.body["state"].clone()));
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "the sandbox changes nothing in what is decided");
    assert_eq!(answers[0].iter().map(|a| a.0).collect::<Vec<_>>(), [201, 200, 422, 200, 422, 200]);
}

#[tokio::test]
async fn bank() {
    let host = TestHost::start(&[cairn_tests::BANK_COMPONENT]).await.unwrap();
    let opened = host.command("bank", "open-account", json!({"account_id": "a1", "owner": "Ann"})).await.unwrap();
    opened.expect(201);
    let position = opened.headers["cairn-position"].to_str().unwrap();
    let path = format!("/v1/domains/bank/queries/account-balance?account_id=a1&min_position={position}");
    let balance = host.get(&path).await.unwrap();
    balance.expect(200);
    assert_eq!(balance.body["data"]["balance"], 0, "{balance:#?}");
}

#[tokio::test]
async fn orders() {
    let host = TestHost::start(&[cairn_tests::ORDERS_COMPONENT]).await.unwrap();
    let created = host.command("orders", "create-order", json!({"user_id": "u1", "total_cents": 1250})).await.unwrap();
    created.expect(201);
    let position = created.headers["cairn-position"].to_str().unwrap();
    let path = format!("/v1/domains/orders/queries/user-dashboard?user_id=u1&min_position={position}");
    let stats = host.get(&path).await.unwrap();
    stats.expect(200);
    assert_eq!(stats.body["data"]["total_orders"], 1, "{stats:#?}");
}

#[tokio::test]
async fn orders_next() {
    let host = TestHost::start(&[cairn_tests::ORDERS_NEXT_COMPONENT]).await.unwrap();
    let domains = host.admin_get("/admin/v1/domains").await.unwrap();
    assert!(domains.body.to_string().contains("0.2.0"), "{domains:#?}");
}

#[tokio::test]
async fn orders_faulty() {
    let host = TestHost::start(&[cairn_tests::ORDERS_FAULTY_COMPONENT]).await.unwrap();
    host.command("orders", "create-order", json!({"user_id": "u1", "total_cents": 5})).await.unwrap().expect(201);
}

#[tokio::test]
async fn legacy_0_1_0() {
    // Built against the released 0.1.0 contract: it loads on a 0.1.1 host, runs, and has no read side.
    let host = TestHost::start(&[cairn_tests::LEGACY_0_1_0_COMPONENT]).await.unwrap();
    host.command("legacy", "increment", json!({"counter_id": "c1"})).await.unwrap().expect(201);
    let second = host.command("legacy", "increment", json!({"counter_id": "c1"})).await.unwrap();
    assert_eq!(second.expect(200).body["events"][0]["data"]["count"], 2);
    let again = host.deploy(cairn_tests::LEGACY_0_1_0_COMPONENT, "").await.unwrap();
    assert_eq!(again.expect(200).body["describe"]["projections"], json!([]), "{again:#?}");
    assert_eq!(again.body["describe"]["queries"], json!([]));
}

#[tokio::test]
async fn legacy_0_1_1() {
    // Built against 0.1.1, before aggregates kept state: it loads on a 0.1.2 host and gets its history.
    let host = TestHost::start(&[cairn_tests::LEGACY_0_1_1_COMPONENT]).await.unwrap();
    host.command("legacy-state", "increment", json!({"counter_id": "c1"})).await.unwrap().expect(201);
    let second = host.command("legacy-state", "increment", json!({"counter_id": "c1"})).await.unwrap();
    assert_eq!(second.expect(200).body["events"][0]["data"]["count"], 2);
}

#[tokio::test]
async fn keeper() {
    let host = TestHost::start(&[cairn_tests::KEEPER_COMPONENT]).await.unwrap();
    let body = json!({"ledger_id": "k", "amount": 3});
    host.command("keeper", "add", body).await.unwrap().expect(201);
}

#[tokio::test]
async fn keeper_next() {
    let host = TestHost::start(&[cairn_tests::KEEPER_NEXT_COMPONENT]).await.unwrap();
    let added = host.command("keeper", "add", json!({"ledger_id": "k", "amount": 3})).await.unwrap();
    let again = host.command("keeper", "add", json!({"ledger_id": "k", "amount": 3})).await.unwrap();
    assert_eq!(added.expect(201).body["events"][0]["data"]["seen_build"], "");
    assert_eq!(again.expect(200).body["events"][0]["data"]["seen_build"], "v2");
}

#[tokio::test]
async fn gateway_probe() {
    // Loads, and without a configured service its calls are refused with a typed error.
    let host = TestHost::start(&[cairn_tests::GATEWAY_PROBE_COMPONENT]).await.unwrap();
    let reply = host.command("gateway-probe", "call", json!({"service": "rates", "method": "GET", "path": "/"})).await;
    assert_eq!(reply.unwrap().expect(201).body["events"][0]["data"]["error"], "not-granted");
}

#[tokio::test]
async fn header_flood() {
    // Loads; without a configured service its calls are refused with a typed error.
    let host = TestHost::start(&[cairn_tests::HEADER_FLOOD_COMPONENT]).await.unwrap();
    let reply = host.command("header-flood", "flood", json!({"service": "sink", "headers": 1})).await;
    assert_eq!(reply.unwrap().expect(201).body["events"][0]["data"]["error"], "not-granted");
}

#[tokio::test]
async fn rates() {
    // Loads; without a configured rate service every quote is refused with a reason.
    let host = TestHost::start(&[cairn_tests::RATES_COMPONENT]).await.unwrap();
    let body = json!({"carrier_id": "c1", "from": "GB", "to": "FR", "weight_grams": 10});
    let reply = host.command("rates", "request-quote", body).await.unwrap();
    reply.expect_problem(422, "rate-unavailable");
}

#[tokio::test]
async fn escapee() {
    let host = TestHost::start(&[cairn_tests::ESCAPEE_COMPONENT]).await.unwrap();
    host.command("escapee", "dial", json!({"id": "e"})).await.unwrap().expect(201);
}

/// A 4 MiB version with a newline in it (it would be copied into every event's metadata and
/// every log line) is refused at deploy, naming the limit, without echoing it.
#[tokio::test]
async fn escapee_long_version() {
    // Time enough to build its 4 MiB version in `describe` on a loaded machine: the version's
    // length is what must stop it.
    let host = TestHost::start_with(&[CARRIERS_COMPONENT], |c| c.limits.deadline_ms = 5_000).await.unwrap();
    let reply = host.deploy(cairn_tests::ESCAPEE_LONG_VERSION_COMPONENT, "").await.unwrap();
    reply.expect_problem(422, "invalid-plugin");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(detail.contains("limits.max_version_bytes"), "{detail}");
    assert!(detail.len() < 1024, "the version is not echoed whole: {} bytes", detail.len());
    assert!(!detail.contains('\n'));
}

/// A `describe` that sleeps 15 s is cut at the deadline: the deploy answers at once.
#[tokio::test]
async fn escapee_sleepy_describe() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let started = std::time::Instant::now();
    let reply = host.deploy(cairn_tests::ESCAPEE_SLEEPY_DESCRIBE_COMPONENT, "").await.unwrap();
    reply.expect_problem(422, "invalid-plugin");
    assert!(reply.body["detail"].as_str().unwrap().contains("deadline"), "{reply:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
}

/// `wasi:sockets` is refused at deploy, naming the import (plugins get no network).
#[tokio::test]
async fn escapee_sockets() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let reply = host.deploy(cairn_tests::ESCAPEE_SOCKETS_COMPONENT, "").await.unwrap();
    reply.expect_problem(422, "invalid-plugin");
    assert!(reply.body["detail"].as_str().unwrap().contains("wasi:sockets"), "{reply:?}");
}

#[tokio::test]
async fn unstorable() {
    let host = TestHost::start(&[UNSTORABLE_COMPONENT]).await.unwrap();
    host.command("unstorable", "note", json!({"id": "a", "text": "plain"})).await.unwrap().expect(201);
}
