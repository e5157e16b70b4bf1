//! Asynchronous and delayed commands: `Prefer: respond-async` stores the command and answers 202;
//! the worker runs it once, also across a restart; a failing job goes to the dead letters (a
//! plugin fault at once, see `queue_containment.rs`), which the admin API lists, retries and
//! discards.

use std::time::{Duration, Instant};

use cairn_tests::{CARRIERS_COMPONENT, FAULTY_COMPONENT, Reply};

use super::TestHost;
use serde_json::{Value, json};

const ASYNC: (&str, &str) = ("prefer", "respond-async");

async fn submit(host: &TestHost, domain: &str, command: &str, query: &str, body: Value) -> Reply {
    let path = format!("/v1/domains/{domain}/commands/{command}{query}");
    host.post_raw(&path, body.to_string(), &[ASYNC]).await.unwrap()
}

/// Polls the status URL until the job leaves `queued`/`running` (or `want` is reached).
async fn settle(host: &TestHost, url: &str, want: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let status = host.get(url).await.unwrap();
        status.expect(200);
        let state = status.body["state"].as_str().unwrap().to_string();
        if state == want || started.elapsed() > within {
            return status.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_async_command_is_accepted_then_runs_once() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let accepted = submit(&host, "carriers", "register-carrier", "", json!({"name": "A", "email": "a@x.io"})).await;
    accepted.expect(202);
    let url = accepted.body["status_url"].as_str().unwrap().to_string();
    assert_eq!(accepted.headers["location"], url.as_str());
    assert_eq!(accepted.body["state"], "queued");
    let done = settle(&host, &url, "succeeded", Duration::from_secs(10)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result_status"], 201);
    let stream = done["result"]["stream"].as_str().unwrap();
    assert_eq!(host.stream_events("carriers", stream).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_delayed_command_survives_a_restart_and_runs_once() {
    let mut host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let at = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1500);
    let at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let query = format!("?not_before={}", at.replace('+', "%2B"));
    let accepted =
        submit(&host, "carriers", "register-carrier", &query, json!({"name": "Later", "email": "l@x.io"})).await;
    accepted.expect(202);
    let url = accepted.body["status_url"].as_str().unwrap().to_string();
    assert_eq!(host.get(&url).await.unwrap().body["state"], "queued", "not before its time");

    host.restart().await.unwrap();
    let done = settle(&host, &url, "succeeded", Duration::from_secs(10)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1);
    let stream = done["result"]["stream"].as_str().unwrap();
    assert_eq!(host.stream_events("carriers", stream).await.unwrap().len(), 1, "ran exactly once");
    assert_eq!(host.stream_events("carriers", "email-address-l@x.io").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_rejected_async_command_says_why_and_unknown_ones_are_refused_at_once() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let accepted = submit(&host, "carriers", "register-carrier", "", json!({"name": "", "email": "nope"})).await;
    let done = settle(&host, accepted.body["status_url"].as_str().unwrap(), "rejected", Duration::from_secs(10)).await;
    assert_eq!(done["state"], "rejected", "{done}");
    assert_eq!(done["result"]["code"], "validation-failed");
    submit(&host, "carriers", "fly", "", json!({})).await.expect_problem(404, "unknown-command");
    host.get("/v1/commands/nope").await.unwrap().expect_problem(404, "unknown-command-id");
    host.post_raw("/v1/domains/carriers/commands/register-carrier?not_before=soon", "{}".into(), &[ASYNC])
        .await
        .unwrap()
        .expect_problem(400, "invalid-query");
}

#[tokio::test]
async fn failed_jobs_land_in_the_dead_letters_which_are_retried_and_discarded() {
    let host = TestHost::start_with(&[FAULTY_COMPONENT], |c| c.limits.deadline_ms = 20).await.unwrap();
    let accepted = submit(&host, "faulty", "spin", "", json!({"id": "s"})).await;
    let url = accepted.body["status_url"].as_str().unwrap().to_string();
    let id = accepted.body["id"].as_str().unwrap().to_string();
    let dead = settle(&host, &url, "failed", Duration::from_secs(20)).await;
    assert_eq!(dead["state"], "failed", "{dead}");
    assert_eq!(dead["attempts"], 1, "a deadline overrun is the plugin's fault: not retried");
    assert!(dead["last_error"].as_str().unwrap().contains("deadline"), "{dead}");

    let listed = host.admin_get("/admin/v1/dead-letters").await.unwrap();
    assert_eq!(listed.body["dead_letters"][0]["id"], id.as_str());
    let retried = host.admin_post(&format!("/admin/v1/dead-letters/{id}/retry"), json!({})).await.unwrap();
    retried.expect(200);
    let again = settle(&host, &url, "failed", Duration::from_secs(20)).await;
    assert_eq!(again["state"], "failed");

    let discard = host
        .client()
        .delete(format!("{}/admin/v1/dead-letters/{id}", host.base))
        .bearer_auth(cairn_tests::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(discard.status(), 204);
    host.get(&url).await.unwrap().expect_problem(404, "unknown-command-id");
    assert!(host.stream_events("faulty", "gadget-s").await.unwrap().is_empty());
}
