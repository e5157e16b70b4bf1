//! Store-level tests of the PostgreSQL command queue, each in a fresh schema (skipped without
//! `CAIRN_TEST_POSTGRES_URL`): claims, leases and their takeover, dead letters, and the
//! client's idempotency key. "Two hosts" are two [`PgStore`]s on one schema.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::PgStore;
use super::registry_tests::two_hosts;
use crate::store::{Claim, CommandQueue, QueuedCommand, now_micros};

fn job(id: &str, not_before: i64) -> QueuedCommand {
    QueuedCommand {
        id: id.into(),
        domain: "shop".into(),
        command: "Order".into(),
        payload: "{}".into(),
        correlation_id: Some("corr".into()),
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

/// A claim by `owner` at `now` for a lease of `lease` microseconds.
fn claim(owner: &str, now: i64, lease: i64) -> Claim {
    Claim { owner: owner.into(), now_micros: now, lease_until_micros: now + lease }
}

const MINUTE: i64 = 60_000_000;

#[tokio::test]
async fn queued_jobs_are_claimed_when_due_and_finished() {
    let Some((_, store, _)) = two_hosts("queue_claim_finish").await else { return };
    let q: &dyn CommandQueue = &*store;
    let now = now_micros();
    assert_eq!(q.enqueue(&job("j2", now - 1)).await.unwrap(), None);
    q.enqueue(&job("j1", now - 2)).await.unwrap();
    q.enqueue(&job("later", now + MINUTE)).await.unwrap();
    assert_eq!(q.due_domains(now).await.unwrap(), ["shop"]);
    assert!(q.claim_due(&claim("a", now, MINUTE), Some("other"), 10).await.unwrap().is_empty());
    let claimed = q.claim_due(&claim("a", now, MINUTE), Some("shop"), 10).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["j1", "j2"], "due jobs, oldest first");
    assert_eq!((claimed[0].state.as_str(), claimed[0].attempts), ("running", 1));
    assert_eq!(claimed[0].correlation_id.as_deref(), Some("corr"));
    assert!(q.claim_due(&claim("b", now, MINUTE), None, 10).await.unwrap().is_empty(), "claimed once");
    assert!(!q.finish("b", "j1", "succeeded", Some(201), None, None, None).await.unwrap(), "not b's job");
    assert!(q.finish("a", "j1", "succeeded", Some(201), Some("{\"ok\":true}"), None, None).await.unwrap());
    let done = q.job("j1").await.unwrap().unwrap();
    assert_eq!(
        (done.state.as_str(), done.result_status, done.result.as_deref()),
        ("succeeded", Some(201), Some("{\"ok\":true}"))
    );
    q.finish("a", "j2", "failed", Some(503), None, Some("busy"), Some(now + 5)).await.unwrap();
    let retried = q.job("j2").await.unwrap().unwrap();
    assert_eq!((retried.state.as_str(), retried.not_before_micros), ("queued", now + 5));
    assert_eq!(retried.last_error.as_deref(), Some("busy"));
    assert!(q.claim_due(&claim("a", now + 4, MINUTE), None, 10).await.unwrap().is_empty(), "not before its time");
    let again = q.claim_due(&claim("a", now + 5, MINUTE), None, 1).await.unwrap();
    assert_eq!((again[0].id.as_str(), again[0].attempts), ("j2", 2));
    assert_eq!(q.job("nope").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_claiming_at_once_never_share_a_job() {
    let Some((_, a, b)) = two_hosts("queue_two_hosts").await else { return };
    let now = now_micros();
    for i in 0..200 {
        a.enqueue(&job(&format!("job{i:03}"), now - 1000 + i)).await.unwrap();
    }
    let claimer = |store: Arc<PgStore>, owner: &'static str| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let claimed = CommandQueue::claim_due(&*store, &claim(owner, now, MINUTE), None, 7).await.unwrap();
                if claimed.is_empty() {
                    return ids;
                }
                ids.extend(claimed.into_iter().map(|j| j.id));
            }
        })
    };
    let (x, y) = (claimer(a.clone(), "a"), claimer(b.clone(), "b"));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    let all: BTreeSet<_> = x.iter().chain(&y).cloned().collect();
    assert_eq!(all.len(), x.len() + y.len(), "no job claimed twice");
    assert_eq!(all.len(), 200, "every job claimed");
}

#[tokio::test]
async fn dead_letters_are_revived_or_discarded() {
    let Some((_, store, _)) = two_hosts("queue_dead_letters").await else { return };
    let q: &dyn CommandQueue = &*store;
    let now = now_micros();
    for id in ["d1", "d2", "alive"] {
        q.enqueue(&job(id, now)).await.unwrap();
    }
    q.claim_due(&claim("a", now, MINUTE), None, 10).await.unwrap();
    q.finish("a", "d1", "failed", Some(500), Some("{}"), Some("boom"), None).await.unwrap();
    q.finish("a", "d2", "failed", Some(500), Some("{}"), Some("boom"), None).await.unwrap();
    let dead: Vec<_> = q.dead_letters().await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(dead, ["d1", "d2"]);
    assert!(q.revive("d1", now + 1).await.unwrap());
    assert!(!q.revive("d1", now + 1).await.unwrap(), "not dead any more");
    assert!(!q.revive("alive", now).await.unwrap());
    let revived = q.job("d1").await.unwrap().unwrap();
    assert_eq!((revived.state.as_str(), revived.attempts, revived.not_before_micros), ("queued", 0, now + 1));
    assert!(!q.discard("alive").await.unwrap(), "only dead letters are discarded");
    assert!(q.discard("d2").await.unwrap());
    assert_eq!(q.job("d2").await.unwrap(), None);
    assert!(q.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_lease_that_runs_out_lets_another_host_take_the_job_over() {
    let Some((_, a, b)) = two_hosts("queue_leases").await else { return };
    let (q, other): (&dyn CommandQueue, &dyn CommandQueue) = (&*a, &*b);
    let now = now_micros();
    q.enqueue(&job("renewed", now)).await.unwrap();
    q.enqueue(&job("abandoned", now + 1)).await.unwrap();
    assert_eq!(q.claim_due(&claim("a", now + 1, 1000), None, 10).await.unwrap().len(), 2);
    assert_eq!(other.requeue_running().await.unwrap(), 0, "a starting host leaves others' jobs alone");
    assert!(other.claim_due(&claim("b", now + 500, 1000), None, 10).await.unwrap().is_empty(), "leases hold");
    assert_eq!(q.renew("a", &["renewed".into(), "abandoned".into()], now + 2000).await.unwrap(), 2);
    assert_eq!(q.renew("a", &["renewed".into()], now + MINUTE).await.unwrap(), 1);
    assert!(other.claim_due(&claim("b", now + 1500, 1000), None, 10).await.unwrap().is_empty());
    assert_eq!(other.due_domains(now + 2500).await.unwrap(), ["shop"]);
    let taken = other.claim_due(&claim("b", now + 2500, 1000), None, 10).await.unwrap();
    let taken: Vec<_> = taken.iter().map(|j| (j.id.as_str(), j.attempts)).collect();
    assert_eq!(taken, [("abandoned", 2)], "only the job whose lease ran out, claimed again");
    assert_eq!(q.renew("a", &["abandoned".into()], now + MINUTE).await.unwrap(), 0, "no longer a's");
    assert!(!q.finish("a", "abandoned", "succeeded", Some(201), None, None, None).await.unwrap());
    assert!(other.finish("b", "abandoned", "succeeded", Some(201), None, None, None).await.unwrap());
    assert!(other.claim_due(&claim("b", now + 2500, 1000), None, 10).await.unwrap().is_empty());
    assert_eq!(q.release("a").await.unwrap(), 1, "a stopping host releases what it still runs");
    let released = other.claim_due(&claim("b", now + 2500, 1000), None, 10).await.unwrap();
    assert_eq!(released.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["renewed"], "claimable at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_per_idempotency_key_even_when_submitted_at_once() {
    let Some((_, a, b)) = two_hosts("queue_idempotency").await else { return };
    let keyed = |id: String, key: &str, hash: &str| QueuedCommand {
        idempotency_key: Some(key.into()),
        request_hash: Some(hash.into()),
        ..job(&id, now_micros())
    };
    let submit = |store: Arc<PgStore>, i: usize| {
        let twin = keyed(format!("twin{i}"), "k", "h");
        tokio::spawn(async move { CommandQueue::enqueue(&*store, &twin).await.unwrap() })
    };
    let tasks: Vec<_> = (0..16).map(|i| submit(if i % 2 == 0 { a.clone() } else { b.clone() }, i)).collect();
    let mut stored = Vec::new();
    let mut answered = BTreeSet::new();
    for task in tasks {
        match task.await.unwrap() {
            None => stored.push(()),
            Some(first) => {
                answered.insert(first.id);
            }
        }
    }
    assert_eq!(stored.len(), 1, "one submission stored");
    assert_eq!(answered.len(), 1, "the others all answered by that one job");
    let other_body = a.enqueue(&keyed("other".into(), "k", "h2")).await.unwrap().unwrap();
    assert_eq!(other_body.request_hash.as_deref(), Some("h"), "the first job, for the caller to compare");
    assert_eq!(a.enqueue(&keyed("fresh".into(), "k2", "h")).await.unwrap(), None, "another key is another job");
    assert_eq!(a.enqueue(&job("unkeyed1", 1)).await.unwrap(), None);
    assert_eq!(a.enqueue(&job("unkeyed2", 1)).await.unwrap(), None, "jobs without a key never clash");
}

#[tokio::test]
async fn due_domains_are_those_with_due_jobs_or_lapsed_leases() {
    let Some((_, store, _)) = two_hosts("queue_due_domains").await else { return };
    let q: &dyn CommandQueue = &*store;
    let now = now_micros();
    let of = |domain: &str, id: &str, not_before: i64| QueuedCommand { domain: domain.into(), ..job(id, not_before) };
    for i in 0..50 {
        q.enqueue(&of("flood", &format!("f{i:02}"), now - 100 + i)).await.unwrap();
    }
    q.enqueue(&of("later", "l", now + MINUTE)).await.unwrap();
    q.enqueue(&of("lapsed", "x", now - 1000)).await.unwrap();
    q.enqueue(&of("quiet", "q", now - 1000)).await.unwrap();
    q.claim_due(&claim("dead", now - 900, 100), Some("lapsed"), 1).await.unwrap();
    let claimed = q.claim_due(&claim("busy", now, MINUTE), Some("quiet"), 5).await.unwrap();
    assert_eq!(claimed.len(), 1, "a claim takes only its domain's jobs");
    let mut due = q.due_domains(now).await.unwrap();
    due.sort();
    assert_eq!(due, ["flood", "lapsed"], "not the job of later, nor the running one under its lease");
}

#[tokio::test]
async fn a_hosts_reclaim_of_its_own_lapsed_job_spends_no_attempt_and_another_hosts_does() {
    let Some((_, a, b)) = two_hosts("queue_self_reclaim").await else { return };
    let now = now_micros();
    a.enqueue(&job("j", now - 1)).await.unwrap();
    assert_eq!(a.claim_due(&claim("a", now, 10), None, 10).await.unwrap()[0].attempts, 1);
    // The renewal came late: the lease lapsed, and the same host claims the job again.
    let again = a.claim_due(&claim("a", now + 100, 10), None, 10).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1), "a renewal late spends no attempt");
    let taken = b.claim_due(&claim("b", now + 200, 10), None, 10).await.unwrap();
    assert_eq!(taken[0].attempts, 2, "another host's takeover counts");
}
