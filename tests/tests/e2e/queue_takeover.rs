//! On PostgreSQL, where hosts share the command queue: a job claimed by a host that died (here a
//! second store that claimed the job, applied it under its key `async-<id>` as a host would,
//! and then stopped, never renewing its lease nor recording the outcome) is taken over by the
//! live host once the lease runs out, within seconds, and applied once; and a host stopped in
//! the middle of a job leaves it to the next host, which finishes it once.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cairn::store::postgres::PgStore;
use cairn::store::{Claim, CommandQueue, now_micros};
use cairn_tests::{FAULTY_COMPONENT, PgTestHost};
use serde_json::json;

use super::queue_containment::{host_with_slow_jobs_and, settle, submit_slow_job};

#[tokio::test]
async fn a_job_claimed_by_a_host_that_died_is_finished_by_another_within_seconds_and_applied_once() {
    let host = PgTestHost::start(&[FAULTY_COMPONENT]).await.unwrap();
    // Delayed by an hour, so the live host leaves it to the "dead" one.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let later = later.format(&time::format_description::well_known::Rfc3339).unwrap().replace('+', "%2B");
    let body = json!({"id": "orphan"}).to_string();
    let path = format!("/v1/domains/faulty/commands/record?not_before={later}");
    let accepted = host.post_raw(&path, body.clone(), &[("prefer", "respond-async")]).await.unwrap();
    let id = accepted.expect(202).body["id"].as_str().unwrap().to_string();

    let settings = host.config.database.postgres().unwrap().unwrap();
    let dead = PgStore::open(&settings).await.unwrap();
    let claim = Claim {
        owner: "a-host-about-to-die".into(),
        now_micros: now_micros() + 2 * 3_600_000_000,
        lease_until_micros: now_micros() + 1_000_000,
    };
    let claimed = CommandQueue::claim_due(&dead, &claim, None, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    // What the dying host got done: the command, under the job's key; not its outcome.
    let key = format!("async-{id}");
    let applied =
        host.post_raw("/v1/domains/faulty/commands/record", body, &[("idempotency-key", &key)]).await.unwrap();
    applied.expect(201);
    drop(dead);
    assert_eq!(host.get(&format!("/v1/commands/{id}")).await.unwrap().body["state"], "running");

    let started = Instant::now();
    let done = loop {
        let job = host.get(&format!("/v1/commands/{id}")).await.unwrap().body;
        if job["state"] == "succeeded" {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not taken over within 10 s: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["attempts"], 2, "claimed by the dead host, then by the live one: {done}");
    assert_eq!(done["result"], applied.body, "the rerun replays the dead host's answer");
    assert_eq!(host.stream_events("faulty", "gadget-orphan").await.unwrap().len(), 1, "applied once");
}

#[tokio::test]
async fn a_host_stopped_in_the_middle_of_a_job_leaves_it_to_the_next_which_applies_it_once() {
    // A grace period shorter than the job: the stop cuts it off.
    let (mut host, calls) = host_with_slow_jobs_and(|c| c.http.shutdown_grace_ms = 200).await;
    let url = submit_slow_job(&host).await;
    let started = Instant::now();
    while calls.load(Ordering::SeqCst) < 1 {
        assert!(started.elapsed() < Duration::from_secs(10), "the job never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stopped mid-call: its lease is no longer renewed; the next host (a new one) claims the job.
    host.restart().await.unwrap();
    let done = settle(&host, &url, "succeeded", Duration::from_secs(15)).await;
    assert_eq!(done["attempts"], 2, "claimed by the stopped host, then by the next: {done}");
    let stream = done["result"]["stream"].as_str().unwrap();
    assert_eq!(host.stream_events("gateway-probe", stream).await.unwrap().len(), 1, "applied once");
}
