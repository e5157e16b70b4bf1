//! Where the sandbox meets the host (`escapee`): time spent inside host calls counts against the
//! call's deadline, a handler writes only printable streams its aggregates own, one host call is
//! capped in bytes, and every refusal is short. Each attack runs while a well-behaved domain
//! (`carriers`) keeps answering.

use std::time::{Duration, Instant};

use cairn_tests::{CARRIERS_COMPONENT, ESCAPEE_COMPONENT, Reply};
use serde_json::json;

use super::TestHost;

async fn host() -> TestHost {
    TestHost::start_with(&[CARRIERS_COMPONENT, ESCAPEE_COMPONENT], |c| {
        let escapee = &mut c.domains.entry("escapee".into()).or_default().limits;
        escapee.deadline_ms = Some(200);
        escapee.max_host_call_mib = Some(1);
    })
    .await
    .unwrap()
}

/// Registers carriers while `attack` runs: every one succeeds, and the slowest answer is printed.
async fn while_carriers_work<F: std::future::Future<Output = Reply>>(host: &TestHost, attack: F) -> Reply {
    let bystander = async {
        let mut slowest = Duration::ZERO;
        for i in 0..20 {
            let started = Instant::now();
            let email = format!("bystander-{i}-{}@x.io", uuid_like());
            host.command("carriers", "register-carrier", json!({"name": "Fine", "email": email}))
                .await
                .unwrap()
                .expect(201);
            slowest = slowest.max(started.elapsed());
        }
        slowest
    };
    let (reply, slowest) = tokio::join!(attack, bystander);
    println!("carriers' slowest command during the attack: {slowest:?}");
    reply
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn assert_deadline(reply: &Reply, took: Duration) {
    reply.expect_problem(504, "deadline-exceeded");
    assert_eq!(reply.body["limit"], "limits.deadline_ms", "{reply:#?}");
    assert!(took < Duration::from_secs(3), "cut at the 200 ms deadline, not when the plugin chose: {took:?}");
}

#[tokio::test]
async fn a_sleep_through_wasi_clocks_ends_at_the_deadline() {
    let host = host().await;
    let started = Instant::now();
    let reply = while_carriers_work(&host, async {
        host.command("escapee", "nap", json!({"id": "n", "ms": 8_000})).await.unwrap()
    })
    .await;
    assert_deadline(&reply, started.elapsed());
    assert!(host.stream_events("escapee", "escape-n").await.unwrap().is_empty(), "nothing appended");

    // Many short sleeps add up to the same deadline.
    let started = Instant::now();
    let reply = host.command("escapee", "doze", json!({"id": "d", "times": 10_000})).await.unwrap();
    assert_deadline(&reply, started.elapsed());

    // A sleep within the deadline is fine.
    host.command("escapee", "nap", json!({"id": "ok", "ms": 5})).await.unwrap().expect(201);
}

#[tokio::test]
async fn handlers_write_only_printable_streams_their_aggregates_own() {
    let host = host().await;
    for suffix in ["../x", "a/b", "x\u{200b}", "x y", ""] {
        let reply = while_carriers_work(&host, async {
            host.command("escapee", "stray", json!({"id": "s", "suffix": suffix})).await.unwrap()
        })
        .await;
        reply.expect_problem(422, "invalid-stream");
        assert!(reply.body["detail"].as_str().unwrap().contains("stream"), "the error names the rule: {reply:#?}");
        let stream = format!("escape-{suffix}");
        assert!(host.stream_events("escapee", &stream).await.unwrap_or_default().is_empty(), "{stream:?} stored");
    }
    // A 512 KiB name (within the request body cap) is refused without being echoed.
    let long = "x".repeat(512 << 10);
    let reply = host.command("escapee", "stray", json!({"id": "s", "suffix": long})).await.unwrap();
    reply.expect_problem(422, "invalid-stream");
    assert!(reply.body["detail"].as_str().unwrap().contains("limits.max_stream_name_bytes"), "{:?}", reply.body);
    assert!(reply.body.to_string().len() < 2048, "the error is short: {} bytes", reply.body.to_string().len());

    // A handler's answer is 200 when its primary stream (`escape-s`) is not the one it created.
    host.command("escapee", "stray", json!({"id": "s", "suffix": "fine-1"})).await.unwrap().expect(200);
    assert_eq!(host.stream_events("escapee", "escape-fine-1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn one_host_call_is_capped_in_bytes_and_the_limit_named() {
    let host = host().await;
    let reply = host.command("escapee", "stray", json!({"id": "s", "suffix": "big", "pad_kib": 2048})).await.unwrap();
    reply.expect_problem(422, "limit-exceeded");
    assert_eq!(reply.body["limit"], "limits.max_host_call_mib", "{reply:#?}");
    assert!(host.stream_events("escapee", "escape-big").await.unwrap().is_empty());
    host.command("escapee", "stray", json!({"id": "s", "suffix": "small", "pad_kib": 64})).await.unwrap().expect(200);
}
