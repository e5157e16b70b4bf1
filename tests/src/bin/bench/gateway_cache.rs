//! Gateway and cache figures, through a real component (`gateway-probe`): the cost of one
//! cached get from a plugin (a command reading a key 20,000 times against the same command
//! reading it never, in the same host), and a command making a gateway call against the same
//! loopback server called directly with reqwest.

use std::time::{Duration, Instant};

use anyhow::Result;
use cairn::config::ServiceConfig;
use cairn_tests::{GATEWAY_PROBE_COMPONENT, TestHost};
use serde_json::json;

pub(crate) async fn gateway_cache() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().route("/api/ok", axum::routing::get(|| async { "fine" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let host = TestHost::start_with(&[GATEWAY_PROBE_COMPONENT], move |config| {
        config.limits.deadline_ms = 10_000;
        let service = ServiceConfig {
            base_url: format!("http://127.0.0.1:{port}/api/"),
            allowed_domains: vec!["gateway-probe".into()],
            ..ServiceConfig::default()
        };
        config.gateway.services.insert("bench".into(), service);
    })
    .await?;

    let gets = 20_000u64;
    let command = |n: u64| {
        let host = &host;
        async move {
            let started = Instant::now();
            let reply = host.command("gateway-probe", "cache-gets", json!({ "n": n })).await?;
            anyhow::ensure!(reply.status == 201, "cache-gets failed: {reply:?}");
            anyhow::Ok(started.elapsed())
        }
    };
    let mut without = Vec::new();
    let mut with = Vec::new();
    for _ in 0..5 {
        without.push(command(0).await?);
        with.push(command(gets).await?);
    }
    let (without, with) = (median(&mut without), median(&mut with));
    let per_get = (with.saturating_sub(without)).as_secs_f64() * 1e6 / gets as f64;
    println!("\nCache get from a plugin ({gets} gets of a 64-byte value in one command, median of 5)");
    println!("  command without gets:     {:>8.2} ms", ms(without));
    println!("  command with the gets:    {:>8.2} ms", ms(with));
    println!("  one cached get:           {per_get:>8.2} µs");

    let calls = 500;
    let direct_client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/ok");
    let started = Instant::now();
    for _ in 0..calls {
        direct_client.get(&url).send().await?.text().await?;
    }
    let direct = started.elapsed() / calls;
    let mut through = Duration::ZERO;
    let mut baseline = Duration::ZERO;
    for _ in 0..calls {
        baseline += command(0).await?;
        let started = Instant::now();
        let reply =
            host.command("gateway-probe", "call", json!({"service": "bench", "method": "GET", "path": "/ok"})).await?;
        through += started.elapsed();
        anyhow::ensure!(reply.body["events"][0]["data"]["status"] == 200, "gateway call failed: {reply:?}");
    }
    let (through, baseline) = (through / calls, baseline / calls);
    let gateway = through.saturating_sub(baseline);
    println!("Gateway call against a direct call to the same loopback server ({calls} each)");
    println!("  direct reqwest GET:                   {:>8.3} ms", ms(direct));
    println!("  command with a gateway call:          {:>8.3} ms", ms(through));
    println!("  the same command without the call:    {:>8.3} ms", ms(baseline));
    println!(
        "  the gateway call's share:             {:>8.3} ms  ({:.1}x direct)",
        ms(gateway),
        gateway.as_secs_f64() / direct.as_secs_f64()
    );
    Ok(())
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
