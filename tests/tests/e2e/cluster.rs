//! Three real `cairn serve` processes on loopback ports sharing one PostgreSQL schema: commands
//! spread across them land exactly once (idempotency keys hold across hosts), one stream changed
//! through all three at once stays consistent, a deploy and a rollback through one are served by
//! all three within a second, and killing the host that runs the projections moves them to
//! another within five seconds with nothing lost or doubled in the read model.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_tests::{CARRIERS_NEXT_COMPONENT, Served};
use serde_json::{Value, json};

/// Three hosts on one fresh schema, each with its own data directory (compiled components).
async fn three_hosts(dir: &std::path::Path) -> Vec<Served> {
    let url = cairn_tests::postgres_url().unwrap();
    let schema = cairn_tests::fresh_schema();
    // Handlers' store reads count against their deadline; three hosts and PostgreSQL share two
    // cores here, so the deadline is roomier than the default.
    let env = [
        ("CAIRN_DATABASE_URL", url.as_str()),
        ("CAIRN_DATABASE__SCHEMA", schema.as_str()),
        ("CAIRN_LIMITS__DEADLINE_MS", "2000"),
    ];
    let mut hosts = Vec::new();
    for i in 0..3 {
        hosts.push(Served::start(env!("CARGO_BIN_EXE_serve-examples"), &dir.join(format!("host-{i}")), &env).await);
    }
    hosts
}

/// The index of the host running the projections (the others show them `elsewhere`).
async fn projection_host(hosts: &[Option<Served>]) -> Option<usize> {
    for (i, host) in hosts.iter().enumerate() {
        let Some(host) = host else { continue };
        let all = host.projections().await;
        if !all.is_empty() && all.iter().all(|p| p["state"] != "elsewhere") {
            return Some(i);
        }
    }
    None
}

/// Waits until every host serves `digest` for `domain`; fails after a second.
async fn all_serve(hosts: &[Option<Served>], domain: &str, digest: &str) -> Duration {
    let started = Instant::now();
    for host in hosts.iter().flatten() {
        loop {
            let (_, ready) = host.get("/readyz").await;
            let serving = ready["domains"].as_array().unwrap().iter().find(|d| d["domain"] == domain).cloned();
            if serving.is_some_and(|d| d["digest"] == digest) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1), "{} does not serve {digest} yet: {ready}", host.base);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

async fn create_order(host: &Served, user: &str, cents: u64, key: &str) -> Value {
    let request = host
        .client
        .post(format!("{}/v1/domains/orders/commands/create-order", host.base))
        .header("idempotency-key", key)
        .json(&json!({"user_id": user, "total_cents": cents}));
    let reply = request.send().await.unwrap();
    assert_eq!(reply.status(), 201);
    // A replayed answer (the key was used already) has no position of its own.
    let header = |name: &str| reply.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let position = header("cairn-position").map_or(0, |p| p.parse::<u64>().unwrap());
    let replayed = header("idempotent-replayed").is_some();
    let mut body: Value = reply.json().await.unwrap();
    body["position"] = position.into();
    body["replayed"] = replayed.into();
    body
}

/// `user-dashboard` of `user` through `host`, once it has applied `position`.
async fn dashboard(host: &Served, user: &str, position: u64) -> Value {
    let path =
        format!("/v1/domains/orders/queries/user-dashboard?user_id={user}&min_position={position}&wait_ms=15000");
    let (status, body) = host.get(&path).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_share_commands_deploys_and_projections_and_survive_the_death_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut hosts: Vec<Option<Served>> = three_hosts(dir.path()).await.into_iter().map(Some).collect();

    // Commands spread across the three hosts, each sent twice through two different hosts
    // under one idempotency key: every order lands once, and the twin gets the same answer.
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut last = 0;
    for round in 0..4u64 {
        let sends = (0..30u64).map(|i| {
            let n = round * 30 + i;
            let (first, second) =
                (hosts[(n % 3) as usize].as_ref().unwrap(), hosts[((n + 1) % 3) as usize].as_ref().unwrap());
            async move {
                let user = format!("user-{}", n % 7);
                let key = format!("order-{n}");
                let (a, b) =
                    tokio::join!(create_order(first, &user, 100 + n, &key), create_order(second, &user, 100 + n, &key));
                assert_eq!(a["aggregate_id"], b["aggregate_id"], "one order under one key, whichever host: {a} {b}");
                assert_ne!(a["replayed"], b["replayed"], "one of the twins was applied, the other replayed: {a} {b}");
                (user, 100 + n, a["position"].as_u64().unwrap().max(b["position"].as_u64().unwrap()))
            }
        });
        for (user, cents, position) in futures::future::join_all(sends).await {
            let entry = expected.entry(user).or_default();
            entry.0 += 1;
            entry.1 += cents;
            last = last.max(position);
        }
    }
    for host in hosts.iter().flatten() {
        for (user, (orders, cents)) in &expected {
            let stats = dashboard(host, user, last).await;
            assert_eq!(stats["total_orders"], *orders, "{user} through {}: {stats}", host.base);
            assert_eq!(stats["lifetime_value_cents"], *cents, "{user} through {}: {stats}", host.base);
        }
    }

    // One stream changed through all three hosts at once: optimistic concurrency holds across
    // hosts (every accepted change once, contiguous versions, each decided on the latest state).
    let first = hosts[0].as_ref().unwrap();
    let (status, created) = first
        .post("/v1/domains/carriers/commands/register-carrier", json!({"name": "Acme", "email": "e0@acme.io"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["aggregate_id"].as_str().unwrap().to_string();
    let changes = (1..=24u64).map(|i| {
        let host = hosts[(i % 3) as usize].as_ref().unwrap();
        let id = id.clone();
        async move {
            host.post(
                "/v1/domains/carriers/commands/change-carrier-email",
                json!({"carrier_id": id, "email": format!("e{i}@acme.io")}),
            )
            .await
        }
    });
    let mut accepted = std::collections::BTreeSet::new();
    for (status, reply) in futures::future::join_all(changes).await {
        match status {
            200 => assert!(accepted.insert(reply["events"][0]["data"]["new_email"].as_str().unwrap().to_string())),
            409 => assert_eq!(reply["code"], "concurrency-conflict"),
            other => panic!("unexpected {other}: {reply}"),
        }
    }
    let (_, page) = first.get(&format!("/v1/domains/carriers/streams/carrier-{id}?limit=1000")).await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1 + accepted.len(), "one event per accepted change, plus the registration");
    for (i, pair) in events.windows(2).enumerate() {
        assert_eq!(pair[1]["version"], i as u64 + 2, "contiguous versions");
        if i > 0 {
            assert_eq!(pair[0]["data"]["new_email"], pair[1]["data"]["old_email"], "decided on the latest state");
        }
    }

    // A deploy through one host is served by all three within a second.
    let bytes = std::fs::read(CARRIERS_NEXT_COMPONENT).unwrap();
    let deployer = hosts[1].as_ref().unwrap();
    let deploy = deployer
        .client
        .post(format!("{}/admin/v1/plugins", deployer.base))
        .bearer_auth(cairn_tests::ADMIN_TOKEN)
        .header("content-type", "application/wasm")
        .body(bytes);
    let deployed: Value = deploy.send().await.unwrap().json().await.unwrap();
    let version = deployed["version"].as_str().unwrap().to_string();
    let digest = deployed["digest"].as_str().unwrap().to_string();
    let elapsed = all_serve(&hosts, "carriers", &digest).await;
    println!("carriers {version} served by all three hosts {elapsed:?} after the deploy");
    // A rollback through another host, likewise.
    let (status, rolled) = hosts[2].as_ref().unwrap().post("/admin/v1/domains/carriers/rollback", json!({})).await;
    assert_eq!(status, 200, "{rolled}");
    let previous = rolled["activation"]["digest"].as_str().unwrap().to_string();
    assert_ne!(previous, digest);
    let elapsed = all_serve(&hosts, "carriers", &previous).await;
    println!("the rollback served by all three hosts {elapsed:?} after it answered");

    // Killing the host that runs the projections moves them to another within five seconds.
    let leader = projection_host(&hosts).await.expect("one host runs the projections");
    hosts[leader].take().unwrap().kill();
    let killed = Instant::now();
    let survivor = hosts.iter().flatten().next().unwrap();
    let mut more = Vec::new();
    for n in 0..20u64 {
        let user = format!("user-{}", n % 7);
        let order = create_order(survivor, &user, 1000 + n, &format!("after-{n}")).await;
        last = last.max(order["position"].as_u64().unwrap());
        more.push((user, 1000 + n));
    }
    let successor = loop {
        if let Some(i) = projection_host(&hosts).await {
            break i;
        }
        assert!(killed.elapsed() < Duration::from_secs(5), "no host took the projections over within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("host {successor} took the projections over {:?} after host {leader} was killed", killed.elapsed());
    for (user, cents) in more {
        let entry = expected.entry(user).or_default();
        entry.0 += 1;
        entry.1 += cents;
    }
    for host in hosts.iter().flatten() {
        for (user, (orders, cents)) in &expected {
            let stats = dashboard(host, user, last).await;
            assert_eq!(
                stats["total_orders"], *orders,
                "{user} through {}: nothing lost or doubled: {stats}",
                host.base
            );
            assert_eq!(stats["lifetime_value_cents"], *cents, "{user} through {}: {stats}", host.base);
        }
    }
}
