//! A stop (as on SIGTERM) ends the queue worker at a checkpoint: it claims nothing more, a job
//! under way gets the grace period (`http.shutdown_grace_ms`) to finish and is applied once, and
//! a job outliving the grace is released (queued again, no lease) for the next start, which
//! finishes it once. Each job calls a service taking 2.5 s.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::TestHost;
use super::queue_containment::{host_with_slow_jobs_and, settle, submit_slow_job};

/// Waits until the slow service was called `n` times.
async fn called(calls: &AtomicUsize, n: usize) {
    let started = Instant::now();
    while calls.load(Ordering::SeqCst) < n {
        assert!(started.elapsed() < Duration::from_secs(10), "the job never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The job's `state` and `lease_until`, read from the database of the stopped host.
async fn stored(host: &TestHost, url: &str) -> (String, Option<i64>) {
    let id = url.rsplit('/').next().unwrap();
    let query = "SELECT state, lease_until FROM command_queue WHERE id = $1";
    if let Some(schema) = &host.config.database.schema {
        let mut db = sqlx::PgConnection::connect(&cairn_tests::postgres_url().unwrap()).await.unwrap();
        let query = query.replace("command_queue", &format!("{schema}.command_queue"));
        sqlx::query_as(&query).bind(id).fetch_one(&mut db).await.unwrap()
    } else {
        let file = host.config.data_dir.join("cairn.db");
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display())).await.unwrap();
        sqlx::query_as(query).bind(id).fetch_one(&mut db).await.unwrap()
    }
}

#[tokio::test]
async fn a_job_under_way_at_a_stop_finishes_within_the_grace_period_and_is_applied_once() {
    let (mut host, calls) = host_with_slow_jobs_and(|c| c.http.shutdown_grace_ms = 10_000).await;
    let url = submit_slow_job(&host).await;
    called(&calls, 1).await;
    let stopping = Instant::now();
    host.stop().await.unwrap();
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(10), "the stop outlasted its grace period: {took:?}");
    assert_eq!(stored(&host, &url).await, ("succeeded".to_string(), None), "finished before the host stopped");

    host.restart().await.unwrap();
    let done = settle(&host, &url, "succeeded", Duration::from_secs(5)).await;
    assert_eq!(done["attempts"], 1, "finished by the stopping host, not cut off and run again: {done}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one call");
    let stream = done["result"]["stream"].as_str().unwrap();
    assert_eq!(host.stream_events("gateway-probe", stream).await.unwrap().len(), 1, "applied once");
}

#[tokio::test]
async fn a_job_outliving_the_grace_period_is_released_and_finished_once_after_a_restart() {
    let (mut host, calls) = host_with_slow_jobs_and(|c| c.http.shutdown_grace_ms = 300).await;
    let url = submit_slow_job(&host).await;
    called(&calls, 1).await;
    let stopping = Instant::now();
    host.stop().await.unwrap();
    let took = stopping.elapsed();
    assert!(took < Duration::from_millis(2_000), "the stop waited past its grace period for the job: {took:?}");
    assert_eq!(stored(&host, &url).await, ("queued".to_string(), None), "released: queued, no lease");

    // In one process, the plugin call cut off (on a blocking thread) holds the SQLite data
    // directory until its gateway call ends; a real process's exit ends it at once.
    let restarting = Instant::now();
    while let Err(error) = host.restart().await {
        assert!(restarting.elapsed() < Duration::from_secs(10), "no restart: {error:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = settle(&host, &url, "succeeded", Duration::from_secs(10)).await;
    assert_eq!(done["attempts"], 2, "cut off once, then finished: {done}");
    let stream = done["result"]["stream"].as_str().unwrap();
    assert_eq!(host.stream_events("gateway-probe", stream).await.unwrap().len(), 1, "applied once");
}
