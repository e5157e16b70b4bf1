//! The asynchronous command queue contains its domains: an `Idempotency-Key` names one job (a
//! repeat, also a concurrent one, answers the first job and is applied once; another body under
//! the key is a 422), several jobs run at once with a per-domain cap, so a domain's slow jobs
//! do not hold up another domain's, a running job's lease is renewed so no claim takes it twice,
//! and a plugin's deadline overrun is a dead letter after one attempt, not retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn::config::{Config, ServiceConfig};
use cairn_tests::{CARRIERS_COMPONENT, FAULTY_COMPONENT, GATEWAY_PROBE_COMPONENT, Reply};

use super::TestHost;
use serde_json::{Value, json};

const ASYNC: (&str, &str) = ("prefer", "respond-async");
const RECORD: &str = "/v1/domains/faulty/commands/record";

async fn submit(host: &TestHost, path: &str, body: &Value, key: Option<&str>) -> Reply {
    let mut headers = vec![ASYNC];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    host.post_raw(path, body.to_string(), &headers).await.unwrap()
}

/// The job behind `url` once its state is `want` (fails after `within`).
pub(super) async fn settle(host: &TestHost, url: &str, want: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let status = host.get(url).await.unwrap();
        status.expect(200);
        if status.body["state"] == want {
            return status.body;
        }
        assert!(started.elapsed() < within, "{url} never reached `{want}`: {}", status.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_async_command_sent_twice_with_one_key_is_applied_once_and_both_answers_name_one_job() {
    let host = TestHost::start(&[FAULTY_COMPONENT]).await.unwrap();
    let body = json!({"id": "once"});
    let first = submit(&host, RECORD, &body, Some("async-key-1")).await;
    first.expect(202);
    let second = submit(&host, RECORD, &body, Some("async-key-1")).await;
    second.expect(202);
    assert_eq!(second.body["id"], first.body["id"], "the repeat answers the first job: {}", second.body);
    assert_eq!(second.headers["location"], first.headers["location"]);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    let url = first.body["status_url"].as_str().unwrap();
    let done = settle(&host, url, "succeeded", Duration::from_secs(10)).await;
    assert_eq!(done["attempts"], 1);

    let after = submit(&host, RECORD, &body, Some("async-key-1")).await;
    after.expect(202);
    assert_eq!((&after.body["id"], &after.body["state"]), (&first.body["id"], &json!("succeeded")));
    assert_eq!(host.stream_events("faulty", "gadget-once").await.unwrap().len(), 1, "applied once");

    submit(&host, RECORD, &json!({"id": "other"}), Some("async-key-1"))
        .await
        .expect_problem(422, "idempotency-key-reused");
    let other = submit(&host, RECORD, &body, Some("async-key-2")).await;
    assert_ne!(other.expect(202).body["id"], first.body["id"], "another key is another job");
}

#[tokio::test]
async fn concurrent_async_repeats_of_one_key_queue_one_job() {
    let host = TestHost::start(&[FAULTY_COMPONENT]).await.unwrap();
    let body = json!({"id": "together"});
    let replies = futures::future::join_all((0..16).map(|_| submit(&host, RECORD, &body, Some("async-key-3")))).await;
    for reply in &replies {
        assert_eq!(reply.expect(202).body["id"], replies[0].body["id"], "{}", reply.body);
    }
    settle(&host, replies[0].body["status_url"].as_str().unwrap(), "succeeded", Duration::from_secs(10)).await;
    assert_eq!(host.stream_events("faulty", "gadget-together").await.unwrap().len(), 1, "applied once");
}

#[tokio::test]
async fn a_slow_domains_jobs_do_not_hold_up_another_domains() {
    // Each `spin` runs until its 10 s deadline; two of them (the per-domain cap) at a time.
    let host = TestHost::start_with(&[FAULTY_COMPONENT, CARRIERS_COMPONENT], |c| {
        c.domains.entry("faulty".into()).or_default().limits.deadline_ms = Some(10_000);
        c.queue.workers = 4;
        c.queue.per_domain = 2;
    })
    .await
    .unwrap();
    let mut slow = Vec::new();
    for i in 0..4 {
        let reply = submit(&host, "/v1/domains/faulty/commands/spin", &json!({"id": format!("slow{i}")}), None).await;
        slow.push(reply.expect(202).body["status_url"].as_str().unwrap().to_string());
    }
    settle(&host, &slow[0], "running", Duration::from_secs(5)).await;
    let path = "/v1/domains/carriers/commands/register-carrier";
    let quick = submit(&host, path, &json!({"name": "Quick", "email": "q@x.io"}), None).await;
    let done = settle(&host, quick.body["status_url"].as_str().unwrap(), "succeeded", Duration::from_secs(9)).await;
    assert_eq!(done["attempts"], 1);
    let mut running = 0;
    for url in &slow {
        let job = host.get(url).await.unwrap().body;
        assert_ne!(job["state"], "failed", "the other domain's job did not wait for this one: {job}");
        running += usize::from(job["state"] == "running");
    }
    assert_eq!(running, 2, "the per-domain cap: two of the slow domain's jobs at a time");
    let first = host.get(&slow[0]).await.unwrap().body;
    assert_eq!((&first["state"], &first["attempts"]), (&json!("running"), &json!(1)), "{first}");
}

#[tokio::test]
async fn a_plugin_deadline_overrun_is_a_dead_letter_after_one_attempt() {
    let host = TestHost::start_with(&[FAULTY_COMPONENT], |c| c.limits.deadline_ms = 50).await.unwrap();
    let accepted = submit(&host, "/v1/domains/faulty/commands/spin", &json!({"id": "over"}), None).await;
    let url = accepted.expect(202).body["status_url"].as_str().unwrap().to_string();
    let dead = settle(&host, &url, "failed", Duration::from_secs(10)).await;
    assert_eq!(dead["attempts"], 1, "not retried: the plugin would overrun again: {dead}");
    assert!(dead["last_error"].as_str().unwrap().contains("deadline"), "{dead}");
    let listed = host.admin_get("/admin/v1/dead-letters").await.unwrap();
    assert_eq!(listed.body["dead_letters"][0]["id"], accepted.body["id"]);
}

/// Serves `/api/slow`, answering after 2.5 s; counts the requests that reach it.
async fn slow_service() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/api/slow",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(2_500)).await;
                "late"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, calls)
}

/// A host whose `gateway-probe` calls a service taking 2.5 s per call (the count of calls
/// that reached it beside), with leases of 900 ms, renewed every 300 ms.
pub(super) async fn host_with_slow_jobs() -> (TestHost, Arc<AtomicUsize>) {
    host_with_slow_jobs_and(|_| {}).await
}

/// [`host_with_slow_jobs`], its configuration adjusted by `adjust`.
pub(super) async fn host_with_slow_jobs_and(adjust: impl FnOnce(&mut Config)) -> (TestHost, Arc<AtomicUsize>) {
    let (port, calls) = slow_service().await;
    let host = TestHost::start_with(&[GATEWAY_PROBE_COMPONENT], |c| {
        adjust(c);
        c.queue.lease_ms = 900;
        c.domains.entry("gateway-probe".into()).or_default().limits.deadline_ms = Some(10_000);
        let service = ServiceConfig {
            base_url: format!("http://127.0.0.1:{port}/api/"),
            allowed_domains: vec!["gateway-probe".into()],
            timeout_ms: 8_000,
            max_attempts: 1,
            ..Default::default()
        };
        c.gateway.services.insert("slow".into(), service);
    })
    .await
    .unwrap();
    (host, calls)
}

/// Queues a `gateway-probe` call of the slow service; its status URL.
pub(super) async fn submit_slow_job(host: &TestHost) -> String {
    let call = json!({"service": "slow", "method": "GET", "path": "/slow"});
    let accepted = submit(host, "/v1/domains/gateway-probe/commands/call", &call, None).await;
    accepted.expect(202).body["status_url"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_running_jobs_lease_is_renewed_so_no_claim_takes_it_twice() {
    let (host, calls) = host_with_slow_jobs().await;
    let url = submit_slow_job(&host).await;
    let done = settle(&host, &url, "succeeded", Duration::from_secs(15)).await;
    assert_eq!(done["attempts"], 1, "the renewed lease kept the job with its host: {done}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one call: the job was not claimed again while it ran");
}
