//! The gateway through a real component (`gateway-probe`) against real HTTP servers on loopback
//! started by the tests: retries with backoff, the circuit breaker (open, fail fast, half-open
//! probe, closed), grants, paths that cannot leave the base URL, response and time caps.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use cairn::config::ServiceConfig;
use cairn_tests::{GATEWAY_PROBE_COMPONENT, RATES_COMPONENT};

use super::TestHost;
use serde_json::{Value, json};

/// The rate service's requests: path with query, and the idempotency key.
type Calls = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// What the upstream saw.
#[derive(Clone, Default)]
struct Upstream {
    flaky: Arc<AtomicU32>,
    paths: Arc<Mutex<Vec<String>>>,
}

async fn serve_upstream(listener: tokio::net::TcpListener) -> Upstream {
    let upstream = Upstream::default();
    let app = Router::new()
        .route(
            "/api/flaky",
            get(|State(u): State<Upstream>| async move {
                if u.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                    (StatusCode::SERVICE_UNAVAILABLE, "down")
                } else {
                    (StatusCode::OK, "ok")
                }
            }),
        )
        .route("/api/ok", get(|| async { "fine" }))
        .route("/api/big", get(|| async { "x".repeat(200 * 1024) }))
        .route(
            "/api/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such thing") })
        .with_state(upstream.clone());
    let recorder = upstream.clone();
    let app =
        app.layer(axum::middleware::from_fn(move |request: axum::extract::Request, next: axum::middleware::Next| {
            recorder.paths.lock().unwrap().push(request.uri().to_string());
            next.run(request)
        }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    upstream
}

fn service(port: u16, allowed: &[&str], adjust: impl FnOnce(&mut ServiceConfig)) -> ServiceConfig {
    let mut service = ServiceConfig {
        base_url: format!("http://127.0.0.1:{port}/api/"),
        allowed_domains: allowed.iter().map(|d| d.to_string()).collect(),
        backoff_ms: 20,
        ..ServiceConfig::default()
    };
    adjust(&mut service);
    service
}

/// A host with the probe; its calls may wait on the gateway (a call's time counts against the
/// plugin's deadline), so the deadline is longer than the default.
async fn host(services: Vec<(&str, ServiceConfig)>) -> TestHost {
    TestHost::start_with(&[GATEWAY_PROBE_COMPONENT], move |config| {
        config.limits.deadline_ms = 5_000;
        for (name, service) in services {
            config.gateway.services.insert(name.to_string(), service);
        }
    })
    .await
    .unwrap()
}

/// Calls `service` at `path` through the probe; what its `Called` event recorded.
async fn call(host: &TestHost, service: &str, path: &str) -> Value {
    let reply = host.command("gateway-probe", "call", json!({"service": service, "method": "GET", "path": path})).await;
    let reply = reply.unwrap();
    reply.expect(201);
    reply.body["events"][0]["data"].clone()
}

async fn service_status(host: &TestHost, name: &str) -> Value {
    let reply = host.admin_get("/admin/v1/gateway").await.unwrap();
    reply.body["services"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap()
}

#[tokio::test]
async fn an_upstream_that_fails_twice_then_answers_is_retried_with_backoff() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = serve_upstream(listener).await;
    let host = host(vec![("rates", service(port, &["gateway-probe"], |_| {}))]).await;
    let outcome = call(&host, "rates", "/flaky").await;
    assert_eq!(outcome, json!({"status": 200, "body": "ok"}));
    assert_eq!(upstream.flaky.load(Ordering::SeqCst), 3, "two failures, then the answer");
    let status = service_status(&host, "rates").await;
    assert_eq!(
        (status["calls"].clone(), status["retries"].clone(), status["attempts"].clone()),
        (json!(1), json!(2), json!(3))
    );
    assert_eq!(status["breaker"], "closed");
    // A status that is not retried (404) is an answer, not an error.
    assert_eq!(call(&host, "rates", "/missing").await["status"], 404);
}

#[tokio::test]
async fn the_breaker_opens_on_a_dead_upstream_fails_fast_and_a_half_open_probe_closes_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let host = host(vec![(
        "rates",
        service(port, &["gateway-probe"], |s| {
            s.max_attempts = 1;
            s.breaker_failures = 3;
            s.breaker_open_ms = 400;
        }),
    )])
    .await;
    for _ in 0..3 {
        assert_eq!(call(&host, "rates", "/ok").await["error"], "unavailable");
    }
    let started = Instant::now();
    assert_eq!(call(&host, "rates", "/ok").await["error"], "circuit-open");
    assert!(started.elapsed() < Duration::from_millis(300), "fails fast");
    assert_eq!(service_status(&host, "rates").await["breaker"], "open");

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    serve_upstream(listener).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(service_status(&host, "rates").await["breaker"], "half_open");
    assert_eq!(call(&host, "rates", "/ok").await, json!({"status": 200, "body": "fine"}), "the probe goes through");
    let status = service_status(&host, "rates").await;
    assert_eq!(status["breaker"], "closed");
    assert_eq!(status["rejected_open"], 1);
}

#[tokio::test]
async fn ungranted_services_and_paths_leaving_the_base_url_are_refused_before_any_request() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = serve_upstream(listener).await;
    let host = host(vec![
        ("rates", service(port, &["gateway-probe"], |_| {})),
        ("payroll", service(port, &["accounting"], |_| {})),
    ])
    .await;
    assert_eq!(call(&host, "payroll", "/ok").await["error"], "not-granted");
    assert_eq!(call(&host, "no-such-service", "/ok").await["error"], "not-granted");
    for path in ["../../admin", "/../admin", "//evil.example/x", "http://evil.example/x", "/%2e%2e/admin", "/a/%2F/b"] {
        assert_eq!(call(&host, "rates", path).await["error"], "invalid-request", "{path}");
    }
    assert_eq!(call(&host, "rates", "/ok").await["status"], 200);
    let seen = upstream.paths.lock().unwrap().clone();
    assert_eq!(seen, ["/api/ok"], "only the granted, well-formed call reached the upstream");
}

#[tokio::test]
async fn answers_over_the_size_cap_or_past_the_timeout_never_reach_the_plugin() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    serve_upstream(listener).await;
    let host = host(vec![(
        "rates",
        service(port, &["gateway-probe"], |s| {
            s.max_response_kib = 64;
            s.timeout_ms = 200;
            s.max_attempts = 2;
        }),
    )])
    .await;
    assert_eq!(call(&host, "rates", "/big").await["error"], "too-large");
    let started = Instant::now();
    assert_eq!(call(&host, "rates", "/slow").await["error"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(2), "two attempts of 200 ms, not the upstream's 3 s");
}

#[tokio::test]
async fn the_rates_domain_records_a_quote_from_the_rate_service_and_rejects_when_it_is_down() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Calls = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/api/rates",
        get(move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let record = record.clone();
            async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
                record.lock().unwrap().push((uri.to_string(), key));
                axum::Json(json!({"price_cents": 1250, "currency": "EUR"}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let host = TestHost::start_with(&[RATES_COMPONENT], move |config| {
        config.gateway.services.insert("rates".into(), service(port, &["rates"], |_| {}));
    })
    .await
    .unwrap();
    let body = json!({"carrier_id": "acme 1", "from": "GB", "to": "FR", "weight_grams": 1200});
    let quoted = host.command("rates", "request-quote", body.clone()).await.unwrap();
    let event = &quoted.expect(201).body["events"][0];
    assert_eq!(event["type"], "RateQuoted");
    assert_eq!(event["data"]["price_cents"], 1250);
    let calls = seen.lock().unwrap().clone();
    let id = quoted.body["aggregate_id"].as_str().unwrap();
    assert_eq!(
        calls,
        [("/api/rates?carrier=acme%201&from=GB&to=FR&weight_grams=1200".to_string(), Some(id.to_string()))]
    );

    // The same domain on a host whose rate service is down: a clear rejection, nothing recorded.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let host = TestHost::start_with(&[RATES_COMPONENT], move |config| {
        config.gateway.services.insert("rates".into(), service(dead, &["rates"], |s| s.max_attempts = 2));
    })
    .await
    .unwrap();
    let refused = host.command("rates", "request-quote", body).await.unwrap();
    refused.expect_problem(422, "rate-unavailable");
    assert!(refused.body["detail"].as_str().unwrap().ends_with("unavailable"), "{refused:#?}");
}

/// A rate service on a loopback port answering `price_cents` after `delay`, and how many calls
/// it has had.
async fn counting_rate_service(price_cents: u32, delay: Duration) -> (u16, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let app = Router::new().route(
        "/api/rates",
        get(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                axum::Json(json!({"price_cents": price_cents, "currency": "EUR"}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, calls)
}

#[tokio::test]
async fn a_hundred_concurrent_identical_quotes_ask_the_rate_service_once() {
    // Every request arrives while the first is answered.
    let (port, calls) = counting_rate_service(990, Duration::from_millis(300)).await;
    let host = TestHost::start_with(&[RATES_COMPONENT], move |config| {
        config.gateway.services.insert("rates".into(), service(port, &["rates"], |_| {}));
        config.limits.max_concurrency = 128;
        config.limits.deadline_ms = 10_000;
        config.admin.rate_limit_per_minute = 10_000;
    })
    .await
    .unwrap();
    let body = json!({"carrier_id": "c-stampede", "from": "GB", "to": "DE", "weight_grams": 500});
    let quotes = (0..100).map(|_| host.command("rates", "request-quote", body.clone()));
    let replies = futures::future::join_all(quotes).await;
    for reply in &replies {
        assert_eq!(reply.as_ref().unwrap().expect(201).body["events"][0]["data"]["price_cents"], 990);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "100 concurrent misses on one key: one fill");
    let stats = host.admin_get("/admin/v1/cache").await.unwrap();
    let rates = stats.body["domains"].as_array().unwrap().iter().find(|d| d["domain"] == "rates").cloned().unwrap();
    assert!(rates["misses"].as_u64().unwrap() >= 1, "{rates}");
    let coalesced = rates["fills_coalesced"].as_u64().unwrap();
    let hits = rates["hits"].as_u64().unwrap();
    assert_eq!(coalesced + hits, 99, "the other 99 waited for the fill or hit the cache: {rates}");
    assert!(coalesced > 0, "some waited for the fill: {rates}");
}

#[tokio::test]
async fn two_hosts_sharing_a_redis_cache_share_prices_and_forget_them_together() {
    let Ok(redis) = std::env::var("CAIRN_TEST_REDIS_URL") else {
        eprintln!("SKIPPED: this suite needs CAIRN_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)");
        return;
    };
    let (port, calls) = counting_rate_service(777, Duration::ZERO).await;
    let start = || {
        let redis = redis.clone();
        TestHost::start_with(&[RATES_COMPONENT], move |config| {
            config.gateway.services.insert("rates".into(), service(port, &["rates"], |_| {}));
            config.cache.backend = "redis".into();
            config.cache.redis_url = Some(redis);
        })
    };
    let (a, b) = (start().await.unwrap(), start().await.unwrap());
    // A carrier id of its own: the Redis holds other tests' and other runs' entries (this test
    // runs once per backend in one process).
    let carrier = format!("c-{}", uuid::Uuid::new_v4().simple());
    let body = json!({"carrier_id": carrier, "from": "NL", "to": "BE", "weight_grams": 250});
    a.command("rates", "request-quote", body.clone()).await.unwrap().expect(201);
    b.command("rates", "request-quote", body.clone()).await.unwrap().expect(201);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the second host read the first host's cached price");
    b.command("rates", "forget-carrier-rates", json!({"carrier_id": carrier})).await.unwrap().expect(200);
    a.command("rates", "request-quote", body).await.unwrap().expect(201);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "forgotten on one host, gone on the other");
}
