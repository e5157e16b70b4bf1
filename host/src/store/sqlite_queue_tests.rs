//! Store-level tests of the SQLite command queue: a late renewal's self-reclaim spends no
//! attempt, and the poll's `due_domains` is served by indexes (no scan of the due jobs).

use super::DUE_DOMAINS;
use crate::store::sqlite::SqliteStore;
use crate::store::{Claim, CommandQueue, QueuedCommand, now_micros};

fn job(id: &str, domain: &str, not_before: i64) -> QueuedCommand {
    QueuedCommand {
        id: id.into(),
        domain: domain.into(),
        command: "Order".into(),
        payload: "{}".into(),
        correlation_id: None,
        state: "queued".into(),
        attempts: 0,
        not_before_micros: not_before,
        last_error: None,
        result_status: None,
        result: None,
        idempotency_key: None,
        request_hash: None,
    }
}

fn claim(owner: &str, now: i64, lease: i64) -> Claim {
    Claim { owner: owner.into(), now_micros: now, lease_until_micros: now + lease }
}

#[tokio::test]
async fn a_hosts_reclaim_of_its_own_lapsed_job_spends_no_attempt_and_another_hosts_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let q: &dyn CommandQueue = &store;
    let now = now_micros();
    q.enqueue(&job("j", "shop", now - 1)).await.unwrap();
    assert_eq!(q.claim_due(&claim("a", now, 10), None, 10).await.unwrap()[0].attempts, 1);
    // The renewal came late: the lease lapsed, and the same host claims the job again.
    let again = q.claim_due(&claim("a", now + 100, 10), None, 10).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1), "a renewal late spends no attempt");
    // Another host taking over the lapsed job counts an attempt.
    let taken = q.claim_due(&claim("b", now + 200, 10), None, 10).await.unwrap();
    assert_eq!(taken[0].attempts, 2, "a takeover counts");
    // Re-queued by a restart, a claim by the former owner counts too.
    assert_eq!(q.requeue_running().await.unwrap(), 1);
    assert_eq!(q.claim_due(&claim("b", now + 300, 10), None, 10).await.unwrap()[0].attempts, 3);
}

#[tokio::test]
async fn due_domains_names_due_and_lapsed_domains_through_indexes_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let q: &dyn CommandQueue = &store;
    let now = now_micros();
    for i in 0..50 {
        q.enqueue(&job(&format!("flood-{i}"), "flood", now - 1000 + i)).await.unwrap();
    }
    q.enqueue(&job("later", "later", now + 60_000_000)).await.unwrap();
    q.enqueue(&job("lapsed", "lapsed", now - 1)).await.unwrap();
    q.claim_due(&claim("a", now, 10), Some("lapsed"), 1).await.unwrap();
    q.enqueue(&job("held", "held", now - 1)).await.unwrap();
    q.claim_due(&claim("a", now, 60_000_000), Some("held"), 1).await.unwrap();
    let mut due = q.due_domains(now + 100).await.unwrap();
    due.sort();
    assert_eq!(due, ["flood", "lapsed"], "not the delayed domain, nor the one running under its lease");
    assert!(q.due_domains(now - 2000).await.unwrap().is_empty());

    let plan = explain(&store, now).await;
    assert!(
        !plan.iter().any(|step| step.starts_with("SCAN command_queue") || step.starts_with("SCAN q")),
        "no scan of the queue: {plan:?}"
    );
    assert!(plan.iter().any(|step| step.contains("command_queue_leases")), "lapsed leases by index: {plan:?}");
}

/// The `detail` column of `EXPLAIN QUERY PLAN` of [`DUE_DOMAINS`].
async fn explain(store: &SqliteStore, now: i64) -> Vec<String> {
    use sqlx::Row;
    let rows =
        sqlx::query(&format!("EXPLAIN QUERY PLAN {DUE_DOMAINS}")).bind(now).fetch_all(&store.admin).await.unwrap();
    rows.iter().map(|row| row.get::<String, _>(3)).collect()
}
