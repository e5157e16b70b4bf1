//! Hostile plugins and hostile input. Each case asserts the exact outcome: the status, the error
//! naming the limit, nothing appended, and the host (and a well-behaved domain) still serving.
//! The endless loop, memory growth and panic cases live in `faults.rs`.

use std::time::{Duration, Instant};

use cairn_tests::{BIG_MEMORY_COMPONENT, CARRIERS_COMPONENT, FAULTY_COMPONENT, HOSTILE_COMPONENT, Reply};

use super::TestHost;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn host() -> TestHost {
    TestHost::start(&[CARRIERS_COMPONENT, HOSTILE_COMPONENT]).await.unwrap()
}

/// A host whose `hostile` domain has `memory_mib` of memory and time enough to use it, so the
/// limit under test is the one that stops it (not the deadline).
async fn host_with_memory(memory_mib: usize) -> TestHost {
    TestHost::start_with(&[CARRIERS_COMPONENT, HOSTILE_COMPONENT], |c| {
        let hostile = &mut c.domains.entry("hostile".into()).or_default().limits;
        hostile.memory_mib = Some(memory_mib);
        hostile.deadline_ms = Some(20_000);
        c.limits.memory_mib = 64;
    })
    .await
    .unwrap()
}

/// The host answers, a well-behaved domain still works, and `stream` of `hostile` is empty.
async fn still_healthy(host: &TestHost, stream: &str) {
    host.get("/readyz").await.unwrap().expect(200);
    host.command("carriers", "register-carrier", json!({"name": "Fine", "email": "fine@x.io"}))
        .await
        .unwrap()
        .expect(201);
    assert!(host.stream_events("hostile", stream).await.unwrap().is_empty(), "nothing appended to {stream}");
}

fn assert_limit(reply: &Reply, status: u16, code: &str, limit: &str) {
    reply.expect_problem(status, code);
    assert_eq!(reply.body["limit"], limit, "{reply:#?}");
    assert_eq!(reply.body["domain"], "hostile", "{reply:#?}");
    assert_eq!(reply.body["plugin_version"], "0.1.0", "{reply:#?}");
    assert_eq!(reply.body["function"], "decide", "{reply:#?}");
}

/// No stack trace, SQL or host path ever reaches a client.
fn assert_no_internals(reply: &Reply) {
    let text = reply.body.to_string();
    for leak in ["/work/", "/root/", ".rs:", "SELECT", "sqlx", "panicked at", "backtrace"] {
        assert!(!text.contains(leak), "`{leak}` leaked into {text}");
    }
}

#[tokio::test]
async fn unbounded_recursion_overflows_the_stack_limit() {
    let host = host().await;
    let reply = host.command("hostile", "recurse", json!({"id": "r"})).await.unwrap();
    assert_limit(&reply, 422, "limit-exceeded", "limits.stack_kib");
    assert_no_internals(&reply);
    still_healthy(&host, "attack-r").await;
}

#[tokio::test]
async fn a_million_events_hit_the_events_cap_or_the_memory_cap() {
    let host = host_with_memory(64).await;
    let reply = host.command("hostile", "flood", json!({"id": "f", "count": 1_000_000})).await.unwrap();
    assert_limit(&reply, 422, "limit-exceeded", "limits.memory_mib");
    still_healthy(&host, "attack-f").await;

    // With memory to spare, the events cap is what stops it, before anything is parsed or stored.
    let roomy = host_with_memory(512).await;
    let reply = roomy.command("hostile", "flood", json!({"id": "f", "count": 1_000_000})).await.unwrap();
    assert_limit(&reply, 422, "limit-exceeded", "limits.max_events_per_decision");
    assert!(reply.body["detail"].as_str().unwrap().contains("1000000 events"), "{reply:?}");
    still_healthy(&roomy, "attack-f").await;
}

#[tokio::test]
async fn a_100_mib_event_hits_the_memory_cap_or_the_event_size_cap() {
    let host = host_with_memory(64).await;
    let reply = host.command("hostile", "huge", json!({"id": "h", "mib": 100})).await.unwrap();
    assert_limit(&reply, 422, "limit-exceeded", "limits.memory_mib");
    still_healthy(&host, "attack-h").await;

    let roomy = host_with_memory(512).await;
    let reply = roomy.command("hostile", "huge", json!({"id": "h", "mib": 100})).await.unwrap();
    assert_limit(&reply, 422, "limit-exceeded", "limits.max_event_kib");
    still_healthy(&roomy, "attack-h").await;
}

#[tokio::test]
async fn a_10_mib_log_line_is_cut_and_the_command_goes_on() {
    let host = host().await;
    host.command("hostile", "shout", json!({"id": "s", "mib": 10})).await.unwrap().expect(201);
    assert_eq!(host.stream_events("hostile", "attack-s").await.unwrap().len(), 1);
    host.get("/readyz").await.unwrap().expect(200);
}

#[tokio::test]
async fn initial_memory_over_the_cap_is_refused_at_deploy() {
    let host = host().await;
    let reply = host.deploy(BIG_MEMORY_COMPONENT, "").await.unwrap();
    reply.expect_problem(422, "invalid-plugin");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(detail.contains("limits.memory_mib") && detail.contains("minimum byte size"), "{detail}");
    assert_no_internals(&reply);
    host.admin_get("/admin/v1/domains/big-memory/versions").await.unwrap().expect_problem(404, "unknown-domain");
    still_healthy(&host, "attack-none").await;
}

#[tokio::test]
async fn the_filesystem_is_the_scratch_directory_and_nothing_else() {
    let host = host().await;
    let reply = host.command("hostile", "probe", json!({"id": "p"})).await.unwrap();
    reply.expect(201);
    let found = &reply.body["events"][0]["data"];
    assert_eq!(found["scratch"], "kept", "the domain's scratch directory works");
    assert_eq!(found["escaped"], json!([]), "nothing outside /scratch is readable");
    assert_eq!(found["env"], json!([]), "no environment variable reaches a plugin");
    let scratch = host.config.data_dir.join("scratch").join("hostile").join("p.txt");
    assert_eq!(std::fs::read_to_string(scratch).unwrap(), "kept", "the file lives in the domain's own directory");
}

#[tokio::test]
async fn hostile_input_is_400_or_422_and_appends_nothing() {
    let host = host().await;
    let path = "/v1/domains/carriers/commands/register-carrier";
    let deep = format!("{{\"name\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed", "{\"name\": \"A\",".into(), 400, "malformed-json"),
        ("huge number", "{\"name\": 1e999, \"email\": \"a@b.io\"}".into(), 400, "malformed-json"),
        ("deeply nested", deep, 400, "malformed-json"),
        ("invalid UTF-8", String::from_utf8_lossy(b"{\"name\": \"\xff\xfe\"}").into_owned(), 422, "validation-failed"),
        ("wrong types", "{\"name\": 123, \"email\": [true]}".into(), 422, "invalid-payload"),
        ("not an object", "\"register\"".into(), 400, "malformed-json"),
    ];
    for (case, body, status, code) in cases {
        let reply = host.post_raw(path, body, &[]).await.unwrap();
        assert_eq!((reply.status, reply.body["code"].as_str().unwrap_or("")), (status, code), "{case}: {reply:?}");
        assert_no_internals(&reply);
    }
    let raw = host
        .client()
        .post(format!("{}{path}", host.base))
        .header("content-type", "application/json")
        .body(b"{\"name\": \"\xff\"}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400, "bytes that are not UTF-8 are malformed JSON");
    let wrong = host.post_raw(path, "{\"name\": 123, \"email\": [true]}".into(), &[]).await.unwrap();
    let named = wrong.body["errors"].as_object().map(|e| e.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert!(named == ["email"] || named == ["name"], "a wrong-typed field is named: {wrong:?}");
    let ready = host.get("/readyz").await.unwrap();
    ready.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runaway_domain_does_not_stop_a_well_behaved_one() {
    let host = TestHost::start_with(&[CARRIERS_COMPONENT, FAULTY_COMPONENT], |c| {
        let faulty = &mut c.domains.entry("faulty".into()).or_default().limits;
        faulty.max_concurrency = Some(1);
        faulty.deadline_ms = Some(200);
        c.limits.queue_ms = 100;
    })
    .await
    .unwrap();
    let spinners =
        futures::future::join_all((0..6).map(|i| host.command("faulty", "spin", json!({"id": format!("s{i}")}))));
    let steady = async {
        let mut slowest = Duration::ZERO;
        for i in 0..20 {
            let started = Instant::now();
            let reply = host
                .command("carriers", "register-carrier", json!({"name": "A", "email": format!("a{i}@b.io")}))
                .await
                .unwrap();
            reply.expect(201);
            slowest = slowest.max(started.elapsed());
        }
        slowest
    };
    let (spun, slowest) = tokio::join!(spinners, steady);
    let mut busy = 0;
    for reply in spun.into_iter().map(Result::unwrap) {
        match reply.status {
            504 => assert_eq!(reply.body["limit"], "limits.deadline_ms"),
            503 => {
                busy += 1;
                assert_eq!(reply.body["code"], "domain-busy");
                assert_eq!(reply.body["limit"], "limits.max_concurrency");
                assert!(reply.headers.contains_key("retry-after"));
            }
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    assert!(busy >= 1, "the runaway domain's own budget turned calls away");
    assert!(slowest < Duration::from_secs(2), "the well-behaved domain kept answering ({slowest:?})");
}

#[tokio::test]
async fn slow_or_lying_clients_are_cut_off() {
    let host = TestHost::start_with(&[CARRIERS_COMPONENT], |c| {
        c.http.header_read_timeout_ms = 300;
        c.http.request_timeout_ms = 600;
        c.max_body_bytes = 4096;
    })
    .await
    .unwrap();
    let addr = host.base.trim_start_matches("http://").to_string();

    // Headers that never finish: the connection is closed after the header-read timeout.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server closed the slow connection");

    // A body that never arrives: the request deadline answers 503.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = "POST /v1/domains/carriers/commands/register-carrier HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na";
    stalled.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("request-timeout"), "{answer}");

    // A Content-Length over the cap is refused before the body is read.
    let mut liar = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = "POST /v1/domains/carriers/commands/register-carrier HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{}";
    liar.write_all(head.as_bytes()).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), liar.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"));

    host.get("/healthz").await.unwrap().expect(200);
}

#[tokio::test]
async fn the_admin_api_is_rate_limited_per_client() {
    let host = TestHost::start_with(&[CARRIERS_COMPONENT], |c| {
        c.admin.rate_limit_per_minute = 60;
        c.admin.rate_limit_burst = 5;
    })
    .await
    .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let reply = host
            .client()
            .get(format!("{}/admin/v1/domains", host.base))
            .bearer_auth("a-wrong-token-to-guess")
            .send()
            .await
            .unwrap();
        statuses.push((reply.status().as_u16(), reply.headers().get("retry-after").cloned()));
    }
    assert!(statuses[..5].iter().all(|(s, _)| *s == 403), "{statuses:?}");
    assert!(statuses[5..].iter().all(|(s, retry)| *s == 429 && retry.is_some()), "guessing is slowed: {statuses:?}");
    let problem: Value =
        host.client().get(format!("{}/admin/v1/domains", host.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(problem["code"], "rate-limited");
    host.command("carriers", "register-carrier", json!({"name": "A", "email": "a@b.io"})).await.unwrap().expect(201);
}
