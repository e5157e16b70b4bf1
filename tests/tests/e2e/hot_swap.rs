//! Hot swap under load: while several clients send commands without pause, v2 is deployed and
//! activated, then rolled back to v1, all in the same process. No request fails, behaviour changes
//! with each switch, and every event records the version that decided it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cairn_tests::{CARRIERS_COMPONENT, CARRIERS_NEXT_COMPONENT};

use super::TestHost;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_versions_under_load_fails_no_request() {
    let host = Arc::new(TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..6 {
        let (host, stop) = (host.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut streams = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let created = host
                    .command(
                        "carriers",
                        "register-carrier",
                        json!({"name": "Load", "email": format!("c{client}-{n}@x.io")}),
                    )
                    .await
                    .unwrap();
                statuses.push(created.status);
                if created.status != 201 {
                    continue;
                }
                let id = created.body["aggregate_id"].as_str().unwrap().to_string();
                let changed = host
                    .command(
                        "carriers",
                        "change-carrier-email",
                        json!({"carrier_id": id, "email": format!("d{client}-{n}@x.io")}),
                    )
                    .await
                    .unwrap();
                statuses.push(changed.status);
                streams.push(format!("carrier-{id}"));
            }
            (statuses, streams)
        }));
    }

    let probe = host.command("carriers", "register-carrier", json!({"name": "P", "email": "p@x.io"})).await.unwrap();
    let probe_id = probe.body["aggregate_id"].as_str().unwrap().to_string();
    let rename = || host.command("carriers", "rename-carrier", json!({"carrier_id": probe_id, "name": "Q"}));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    rename().await.unwrap().expect_problem(404, "unknown-command");

    host.deploy(CARRIERS_NEXT_COMPONENT, "").await.unwrap().expect(201);
    rename().await.unwrap().expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    host.admin_post("/admin/v1/domains/carriers/rollback", json!({})).await.unwrap().expect(200);
    rename().await.unwrap().expect_problem(404, "unknown-command");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    let mut versions = HashSet::new();
    for client in clients {
        let (statuses, streams) = client.await.unwrap();
        total += statuses.len();
        assert!(statuses.iter().all(|s| *s == 200 || *s == 201), "a request failed during the swap: {statuses:?}");
        for stream in streams.iter().step_by(7) {
            for event in host.stream_events("carriers", stream).await.unwrap() {
                versions.insert(event["metadata"]["plugin"]["version"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(total > 50, "the load kept going ({total} requests)");
    assert_eq!(versions, HashSet::from(["0.1.0".to_string(), "0.2.0".to_string()]), "both versions served the load");
}
