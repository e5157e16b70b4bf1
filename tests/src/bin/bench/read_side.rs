//! Read-side figures: the rebuild rate of `user_dashboard_stats` over 100k stored events (a new
//! generation built from position 0, timed from the rebuild request to the switch), and the
//! latency of a query answered from the cache against the same query computed by the plugin.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn::store::{AppendBatch, EventStore, EventToAppend, ExpectedVersion, StreamAppend};
use cairn_tests::{ORDERS_COMPONENT, TestHost};
use serde_json::json;

const EVENTS: usize = 100_000;
const USERS: usize = 1_000;

/// Writes ~100k orders events straight into a store: every order is created, every third one
/// confirmed, every tenth one cancelled.
async fn seed(data: &std::path::Path) -> Result<usize> {
    let store = cairn::store::sqlite::SqliteStore::open(data).await?;
    let event = |event_type: &str, data: serde_json::Value| EventToAppend {
        event_type: event_type.into(),
        data: data.to_string(),
        metadata: "{}".into(),
    };
    let mut written = 0;
    let mut order = 0;
    while written < EVENTS {
        let mut streams = Vec::new();
        for _ in 0..200 {
            let mut events = vec![event(
                "OrderCreated",
                json!({"user_id": format!("user-{}", order % USERS), "total_cents": 100 + order % 9_000, "currency": "EUR"}),
            )];
            if order % 3 == 0 {
                events.push(event("OrderConfirmed", json!({})));
            }
            if order % 10 == 0 {
                events.push(event("OrderCancelled", json!({"reason": null})));
            }
            written += events.len();
            streams.push(StreamAppend {
                domain: "orders".into(),
                stream: format!("order-bench-{order}"),
                expected: ExpectedVersion::NoStream,
                events,
            });
            order += 1;
        }
        store.append(AppendBatch { streams, ..AppendBatch::default() }).await?;
    }
    Ok(written)
}

pub(crate) async fn read_side() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let events = seed(&data).await?;
    let host = TestHost::start_with(&[ORDERS_COMPONENT], |config| {
        config.data_dir = data.clone();
        config.admin.rate_limit_per_minute = 1_000_000; // the bench polls the projections
        config.admin.rate_limit_burst = 100_000;
    })
    .await?;
    wait_serving(&host, "user_dashboard_stats", 1).await?;

    let started = Instant::now();
    let reply = host.admin_post("/admin/v1/domains/orders/projections/user_dashboard_stats/rebuild", json!({})).await?;
    anyhow::ensure!(reply.status == 202, "rebuild refused: {reply:?}");
    wait_serving(&host, "user_dashboard_stats", 2).await?;
    let rebuild = started.elapsed();
    println!("\nRead side: rebuild of `user_dashboard_stats` over {events} events (batches of 256)");
    println!("  rebuild time:             {:>8.2} s", rebuild.as_secs_f64());
    println!("  rebuild rate:             {:>8.0} events/s", events as f64 / rebuild.as_secs_f64());

    // The same query, answered by the plugin (every user once: all misses) and from the cache.
    let n = 1_000;
    let mut uncached = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let reply = host.get(&format!("/v1/domains/orders/queries/user-dashboard?user_id=user-{}", i % USERS)).await?;
        uncached.push(t.elapsed());
        anyhow::ensure!(reply.headers["cairn-cache"] == "miss", "expected a miss: {reply:?}");
    }
    let mut cached = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let reply = host.get(&format!("/v1/domains/orders/queries/user-dashboard?user_id=user-{}", i % USERS)).await?;
        cached.push(t.elapsed());
        anyhow::ensure!(reply.headers["cairn-cache"] == "hit", "expected a hit: {reply:?}");
    }
    let (miss50, miss99) = percentiles(&mut uncached);
    let (hit50, hit99) = percentiles(&mut cached);
    println!("Query `user-dashboard` over HTTP, one client, {n} requests each");
    println!("  computed (plugin + read model): p50 {:>7.3} ms  p99 {:>7.3} ms", ms(miss50), ms(miss99));
    println!("  from the cache:                 p50 {:>7.3} ms  p99 {:>7.3} ms", ms(hit50), ms(hit99));
    println!("  ratio (p50):                    {:>7.1}x", miss50.as_secs_f64() / hit50.as_secs_f64());
    Ok(())
}

pub(crate) async fn wait_serving(host: &TestHost, name: &str, generation: u64) -> Result<()> {
    let started = Instant::now();
    loop {
        let reply = host.admin_get("/admin/v1/projections").await?;
        let all = reply.body["projections"].as_array().cloned().with_context(|| format!("{reply:?}"))?;
        let serving = all.iter().filter(|p| p["name"] == name).collect::<Vec<_>>();
        if serving.len() == 1 && serving[0]["generation"] == generation && serving[0]["state"] == "live" {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "{name} never caught up: {all:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
