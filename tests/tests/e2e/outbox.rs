//! The gateway's transactional outbox through a real component (`gateway-probe`) and a loopback
//! server: a call enqueued by a committed command is made once, after the commit, with its
//! message id as idempotency key; a refused command's call is never made; a call committed
//! while its service is down survives a host restart and is made once when the service returns;
//! a call that keeps failing becomes a dead letter that operators retry or discard; a call cut
//! off by a stop is made again once its claim's lease (the service's timeout plus 5 s) is over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use cairn::config::ServiceConfig;
use cairn_tests::GATEWAY_PROBE_COMPONENT;

use super::TestHost;
use serde_json::{Value, json};

/// Idempotency keys of the requests that reached `/api/notify` and were answered 200.
type Seen = Arc<Mutex<Vec<String>>>;

/// Serves `/api/notify` on `listener`: 200 while `up`, 503 otherwise.
fn serve(listener: tokio::net::TcpListener, up: Arc<AtomicBool>) -> Seen {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/api/notify",
        post(move |headers: HeaderMap| {
            let (record, up) = (record.clone(), up.clone());
            async move {
                if !up.load(Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
                record.lock().unwrap().push(key.to_string());
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    seen
}

async fn host(port: u16, adjust: impl FnOnce(&mut ServiceConfig)) -> TestHost {
    let mut service = ServiceConfig {
        base_url: format!("http://127.0.0.1:{port}/api/"),
        allowed_domains: vec!["gateway-probe".into()],
        backoff_ms: 20,
        max_backoff_ms: 100,
        ..ServiceConfig::default()
    };
    adjust(&mut service);
    TestHost::start_with(&[GATEWAY_PROBE_COMPONENT], move |config| {
        config.gateway.services.insert("notices".into(), service);
    })
    .await
    .unwrap()
}

async fn enqueue(host: &TestHost, reject: bool) -> cairn_tests::Reply {
    let body = json!({"service": "notices", "method": "POST", "path": "/notify", "reject": reject});
    host.command("gateway-probe", "enqueue", body).await.unwrap()
}

/// Waits until `done` holds (10 s at most).
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_committed_commands_call_is_made_once_after_the_commit_and_a_refused_ones_never() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = serve(listener, Arc::new(AtomicBool::new(true)));
    let host = host(port, |_| {}).await;
    let refused = enqueue(&host, true).await;
    refused.expect_problem(422, "refused-after-enqueue");
    let reply = enqueue(&host, false).await;
    let id = reply.expect(201).body["events"][0]["data"]["id"].as_str().unwrap().to_string();
    eventually("the call is made", || !seen.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*seen.lock().unwrap(), [id], "once, with the message id as idempotency key; the refused one never");
}

#[tokio::test]
async fn a_call_committed_while_its_service_is_down_survives_a_restart_and_is_made_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Arc::new(AtomicBool::new(false));
    let seen = serve(listener, up.clone());
    let mut host = host(port, |s| s.max_attempts = 50).await;
    let reply = enqueue(&host, false).await;
    let id = reply.expect(201).body["events"][0]["data"]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await; // a few failed attempts
    host.restart().await.unwrap(); // the host goes away with the call committed, not made
    up.store(true, Ordering::SeqCst);
    eventually("the call is made after the restart", || !seen.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*seen.lock().unwrap(), [id]);
}

#[tokio::test]
async fn a_call_that_keeps_failing_becomes_a_dead_letter_that_can_be_retried_or_discarded() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Arc::new(AtomicBool::new(false));
    let seen = serve(listener, up.clone());
    let host = host(port, |s| {
        s.max_attempts = 3;
        s.breaker_open_ms = 200; // six failures open the breaker; it must let the retry through soon
    })
    .await;
    let first = enqueue(&host, false).await.body["events"][0]["data"]["id"].as_str().unwrap().to_string();
    let second = enqueue(&host, false).await.body["events"][0]["data"]["id"].as_str().unwrap().to_string();
    let dead = || async {
        let reply = host.admin_get("/admin/v1/gateway/dead-letters").await.unwrap();
        reply.body["dead_letters"].as_array().cloned().unwrap_or_default()
    };
    let started = Instant::now();
    let letters: Vec<Value> = loop {
        let letters = dead().await;
        if letters.len() == 2 {
            break letters;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no dead letters: {letters:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        letters.iter().all(|l| l["attempts"] == 3 && l["last_error"].as_str().unwrap().contains("503")),
        "{letters:?}"
    );

    up.store(true, Ordering::SeqCst);
    host.admin_post(&format!("/admin/v1/gateway/dead-letters/{first}/retry"), json!({})).await.unwrap().expect(200);
    eventually("the retried call is made", || !seen.lock().unwrap().is_empty()).await;
    assert_eq!(*seen.lock().unwrap(), std::slice::from_ref(&first));
    let discard = host.client().delete(format!("{}/admin/v1/gateway/dead-letters/{second}", host.base));
    let discarded = discard.bearer_auth(cairn_tests::ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(discarded.status(), 204);
    assert!(dead().await.is_empty(), "nothing left dead");
    host.admin_post(&format!("/admin/v1/gateway/dead-letters/{first}/retry"), json!({}))
        .await
        .unwrap()
        .expect_problem(404, "unknown-dead-letter");
}

#[tokio::test]
async fn a_call_cut_off_by_a_stop_is_made_again_soon_after_not_a_minute_later() {
    // The first request hangs past the 1 s timeout; the host stops while it is in flight.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/api/notify",
        post(move || {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut host = host(port, |s| s.timeout_ms = 1_000).await;
    enqueue(&host, false).await.expect(201);
    eventually("the first attempt is in flight", || hits.load(Ordering::SeqCst) == 1).await;
    host.restart().await.unwrap();
    // The stop lets the attempt time out within its grace period and records the retry (cut
    // off, the call would be released): the next host makes the call again soon.
    let restarted = Instant::now();
    while hits.load(Ordering::SeqCst) < 2 {
        assert!(restarted.elapsed() < Duration::from_secs(20), "the call was not made again within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_call_outliving_the_grace_period_is_released_and_made_again_at_once_after_a_restart() {
    // The first request hangs far past the stop's grace period (and the claim's lease, the 20 s
    // timeout plus the margin, would keep the message from the next host for half a minute).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/api/notify",
        post(move || {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let service = ServiceConfig {
        base_url: format!("http://127.0.0.1:{port}/api/"),
        allowed_domains: vec!["gateway-probe".into()],
        timeout_ms: 20_000,
        ..ServiceConfig::default()
    };
    let mut host = TestHost::start_with(&[GATEWAY_PROBE_COMPONENT], move |config| {
        config.gateway.services.insert("notices".into(), service);
        config.http.shutdown_grace_ms = 300;
    })
    .await
    .unwrap();
    enqueue(&host, false).await.expect(201);
    eventually("the first attempt is in flight", || hits.load(Ordering::SeqCst) == 1).await;
    let stopping = Instant::now();
    host.stop().await.unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(3), "the stop waited past its grace period");
    host.restart().await.unwrap();
    eventually("the released call is made again at once", || hits.load(Ordering::SeqCst) == 2).await;
    assert!(stopping.elapsed() < Duration::from_secs(15), "made again within the lease, so released");
}
