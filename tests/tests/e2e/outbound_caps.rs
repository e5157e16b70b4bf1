//! What a plugin sends out is bounded (`header-flood` against a loopback service): a gateway
//! request with 40,000 headers, or with headers over the byte cap, and an enqueued call over
//! the whole-message cap are refused with a typed `too-large` error naming the config key;
//! nothing is sent, nothing is stored in the outbox, and the host goes on serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use cairn::config::ServiceConfig;
use cairn_tests::HEADER_FLOOD_COMPONENT;
use sqlx::Connection;

use super::TestHost;
use serde_json::{Value, json};

/// Serves `/api/flood`, counting the requests that reach it.
async fn serve() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let app = Router::new().route(
        "/api/flood",
        post(move || {
            count.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

async fn host(port: u16) -> TestHost {
    let service = ServiceConfig {
        base_url: format!("http://127.0.0.1:{port}/api/"),
        allowed_domains: vec!["header-flood".into()],
        ..ServiceConfig::default()
    };
    TestHost::start_with(&[HEADER_FLOOD_COMPONENT], move |config| {
        config.gateway.services.insert("sink".into(), service);
        // Building 40,000 headers inside the plugin takes a while on a busy machine.
        config.domains.entry("header-flood".into()).or_default().limits.deadline_ms = Some(5_000);
    })
    .await
    .unwrap()
}

/// Runs `flood` and returns its recorded outcome.
async fn flood(host: &TestHost, mode: &str, headers: usize, value_bytes: usize, body_bytes: usize) -> Value {
    let body = json!({"mode": mode, "service": "sink", "headers": headers, "value_bytes": value_bytes,
                      "body_bytes": body_bytes});
    let reply = host.command("header-flood", "flood", body).await.unwrap();
    reply.expect(201).body["events"][0]["data"].clone()
}

/// Asserts `outcome` is a `too-large` error naming `key`.
fn too_large(outcome: &Value, key: &str) {
    assert_eq!(outcome["error"], "too-large", "{outcome}");
    assert!(outcome["detail"].as_str().unwrap().contains(key), "{outcome}");
}

/// Rows of the host's outbox, read from its database.
async fn outbox_rows(host: &TestHost) -> i64 {
    let sql = "SELECT COUNT(*) FROM gateway_outbox";
    match &host.config.database.url {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let schema = host.config.database.schema.as_deref().unwrap();
            sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        None => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(host.config.data_dir.join("cairn.db"))
                .read_only(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

#[tokio::test]
async fn a_call_with_40000_headers_or_huge_ones_is_refused_typed_and_nothing_is_sent() {
    let (port, seen) = serve().await;
    let host = host(port).await;
    too_large(&flood(&host, "call", 40_000, 1, 0).await, "gateway.max_request_headers");
    too_large(&flood(&host, "call", 4, 64 << 10, 0).await, "gateway.max_request_header_kib");
    assert_eq!(seen.load(Ordering::SeqCst), 0, "nothing was sent");
    assert_eq!(flood(&host, "call", 8, 100, 10).await["ok"], 200, "the host goes on calling");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_oversized_enqueued_call_is_refused_typed_and_nothing_is_stored() {
    let (port, seen) = serve().await;
    let host = host(port).await;
    too_large(&flood(&host, "enqueue", 40_000, 1, 0).await, "gateway.max_request_headers");
    too_large(&flood(&host, "enqueue", 8, 1 << 10, 250 << 10).await, "gateway.max_enqueued_kib");
    assert_eq!(outbox_rows(&host).await, 0, "nothing stored");
    let accepted = flood(&host, "enqueue", 8, 100, 10).await;
    assert!(accepted["ok"].is_string(), "the host goes on enqueueing: {accepted}");
    assert_eq!(outbox_rows(&host).await, 1);
    let started = Instant::now();
    while seen.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the accepted call was never made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
