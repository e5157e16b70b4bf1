//! Store-level tests of the PostgreSQL registry and outbox (the command queue's are in
//! `queue_tests.rs`), each in a fresh schema
//! (skipped without `CAIRN_TEST_POSTGRES_URL`). "Two hosts" are two [`PgStore`]s on one schema.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{PgSettings, PgStore, testing};
use crate::store::{
    Outbox, OutboxOutcome, OutboxRequest, PluginStore, PluginStoreError, PluginVersion, SaveOutcome, now_micros,
};

/// Two stores ("hosts") on one fresh schema, or `None` when PostgreSQL tests are skipped.
pub(super) async fn two_hosts(test: &str) -> Option<(PgSettings, Arc<PgStore>, Arc<PgStore>)> {
    let settings = testing::settings(test)?;
    let first = PgStore::open(&settings).await.expect("opening the first store");
    let second = PgStore::open(&settings).await.expect("opening the second store");
    Some((settings, Arc::new(first), Arc::new(second)))
}

fn version(digest: &str, domain: &str, semver: &str, at: i64) -> PluginVersion {
    PluginVersion {
        digest: digest.into(),
        domain: domain.into(),
        version: semver.into(),
        size: 3,
        description: "{}".into(),
        uploaded_at_micros: at,
    }
}

/// Saves `digest` as version `semver` of `domain` (3 bytes).
async fn save(store: &PgStore, digest: &str, domain: &str, semver: &str) {
    let outcome = store.save_version(&version(digest, domain, semver, now_micros()), b"abc").await.unwrap();
    assert_eq!(outcome, SaveOutcome::Saved);
}

#[tokio::test]
async fn versions_are_saved_once_and_a_semver_belongs_to_one_digest() {
    let Some((_, store, other)) = two_hosts("versions_are_saved_once").await else { return };
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let v1 = version("d1", "shop", "1.0.0", 10);
    assert_eq!(store.save_version(&v1, &bytes).await.unwrap(), SaveOutcome::Saved);
    assert_eq!(other.save_version(&v1, &bytes).await.unwrap(), SaveOutcome::AlreadyStored);
    let clash = other.save_version(&version("d2", "shop", "1.0.0", 11), b"other").await;
    assert!(
        matches!(&clash, Err(PluginStoreError::VersionTaken { existing_digest, .. }) if existing_digest == "d1"),
        "{clash:?}"
    );
    assert_eq!(store.component("d1").await.unwrap(), Some(bytes.clone()), "bytes round-trip");
    assert_eq!(other.component("d2").await.unwrap(), None);
    save(&store, "d0", "shop", "0.9.0").await;
    let listed = other.versions("shop").await.unwrap();
    let digests: Vec<_> = listed.iter().map(|v| v.digest.as_str()).collect();
    assert_eq!(digests, ["d1", "d0"], "oldest upload first");
    assert_eq!(listed[0], PluginVersion { size: bytes.len() as u64, ..v1 });
    assert!(store.versions("other").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_from_two_hosts_store_one_row() {
    let Some((_, a, b)) = two_hosts("concurrent_uploads").await else { return };
    for round in 0..10 {
        let same = version(&format!("same{round}"), "shop", &format!("1.{round}.0"), round);
        let (x, y) = tokio::join!(a.save_version(&same, b"abc"), b.save_version(&same, b"abc"));
        let mut outcomes = [x.unwrap(), y.unwrap()];
        outcomes.sort_by_key(|o| *o == SaveOutcome::AlreadyStored);
        assert_eq!(outcomes, [SaveOutcome::Saved, SaveOutcome::AlreadyStored], "identical uploads");
        let semver = format!("2.{round}.0");
        let (x, y) =
            (version(&format!("x{round}"), "shop", &semver, 0), version(&format!("y{round}"), "shop", &semver, 0));
        let (x, y) = tokio::join!(a.save_version(&x, b"x"), b.save_version(&y, b"y"));
        let taken = [&x, &y].iter().filter(|r| matches!(r, Err(PluginStoreError::VersionTaken { .. }))).count();
        assert!(taken == 1 && (x.is_ok() || y.is_ok()), "one semver, two digests: {x:?} {y:?}");
    }
}

#[tokio::test]
async fn the_active_version_changes_by_compare_and_set_and_is_recorded() {
    let Some((_, store, other)) = two_hosts("active_compare_and_set").await else { return };
    save(&store, "a", "shop", "1.0.0").await;
    save(&store, "b", "shop", "1.1.0").await;
    let first = store.set_active("shop", "a", None, "activate").await.unwrap();
    assert_eq!(first.previous_digest, None);
    let stale = other.set_active("shop", "b", None, "activate").await;
    assert!(matches!(&stale, Err(PluginStoreError::ActiveChanged { actual: Some(a), .. }) if a == "a"), "{stale:?}");
    let second = other.set_active("shop", "b", Some("a"), "activate").await.unwrap();
    assert_eq!(second.previous_digest.as_deref(), Some("a"));
    let stale = store.set_active("shop", "a", Some("a"), "rollback").await;
    assert!(matches!(&stale, Err(PluginStoreError::ActiveChanged { actual: Some(b), .. }) if b == "b"), "{stale:?}");
    let absent = store.set_active("none", "a", Some("a"), "activate").await;
    assert!(matches!(absent, Err(PluginStoreError::ActiveChanged { actual: None, .. })));
    store.set_active("shop", "a", Some("b"), "rollback").await.unwrap();
    assert!(store.set_active("shop", "missing", Some("a"), "activate").await.is_err(), "unknown digest");
    assert_eq!(other.active().await.unwrap(), [("shop".to_string(), "a".to_string())]);
    let history = other.activations("shop").await.unwrap();
    let steps: Vec<_> =
        history.iter().map(|h| (h.digest.as_str(), h.previous_digest.as_deref(), h.action.as_str())).collect();
    assert_eq!(steps, [("a", None, "activate"), ("b", Some("a"), "activate"), ("a", Some("b"), "rollback")]);
    assert_eq!(history[1], second);
    assert!(store.activations("none").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_activations_from_two_hosts_admit_exactly_one() {
    let Some((_, a, b)) = two_hosts("racing_activations").await else { return };
    let mut active: Option<String> = None;
    for round in 0..20 {
        let (x, y) = (format!("x{round}"), format!("y{round}"));
        save(&a, &x, "shop", &format!("1.{round}.0")).await;
        save(&a, &y, "shop", &format!("2.{round}.0")).await;
        let expected = active.as_deref();
        let (rx, ry) = tokio::join!(
            a.set_active("shop", &x, expected, "activate"),
            b.set_active("shop", &y, expected, "activate")
        );
        let (winner, loser) = match (rx, ry) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            other => panic!("round {round}: exactly one activation must win: {other:?}"),
        };
        assert!(
            matches!(&loser, PluginStoreError::ActiveChanged { actual: Some(now), .. } if *now == winner.digest),
            "{loser:?}"
        );
        assert_eq!(winner.previous_digest, active);
        active = Some(winner.digest);
    }
    let history = b.activations("shop").await.unwrap();
    assert_eq!(history.len(), 20);
    for pair in history.windows(2) {
        assert_eq!(pair[1].previous_digest.as_ref(), Some(&pair[0].digest), "the history is a chain");
    }
}

#[tokio::test]
async fn an_activation_notifies_every_host_at_commit() {
    let Some((settings, store, _)) = two_hosts("activation_notifies").await else { return };
    let mut listener = sqlx::postgres::PgListener::connect(&settings.url).await.unwrap();
    listener.listen("cairn_registry").await.unwrap();
    save(&store, "a", "shop", "1.0.0").await;
    let domain = format!("shop-{}", uuid::Uuid::now_v7().simple());
    let failed = format!("{domain}-failed");
    assert!(store.set_active(&failed, "a", Some("zzz"), "activate").await.is_err());
    store.set_active(&domain, "a", None, "activate").await.unwrap();
    // The channel is shared by every schema of the database: skip other tests' notifications.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let note = listener.recv().await.unwrap();
            assert_ne!(note.payload(), failed, "a refused activation notifies no one");
            if note.payload() == domain {
                break;
            }
        }
    })
    .await
    .expect("the activation's notification");
}

/// Inserts a pending message as the event store's append writes it.
async fn insert_message(store: &PgStore, id: &str, next_at: i64) {
    let request = OutboxRequest {
        method: "POST".into(),
        path: format!("/calls/{id}"),
        headers: vec![("x-test".into(), "1".into())],
        body_hex: "7b7d".into(),
        idempotency_key: id.into(),
    };
    sqlx::query(
        "INSERT INTO gateway_outbox (id, domain, service, request, state, attempts, next_at, created_at, updated_at) \
         VALUES ($1, 'shop', 'payments', $2, 'pending', 0, $3, $3, $3)",
    )
    .bind(id)
    .bind(serde_json::to_string(&request).unwrap())
    .bind(next_at)
    .execute(&store.pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_claim_disjoint_outbox_messages_under_a_lease() {
    let Some((_, a, b)) = two_hosts("outbox_two_hosts").await else { return };
    let now = now_micros();
    for i in 0..150 {
        insert_message(&a, &format!("m{i:03}"), now - 1000 + i).await;
    }
    insert_message(&a, "future", now + 1_000_000).await;
    let lease = 30_000_000;
    let claimer = |store: Arc<PgStore>| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let claimed = Outbox::claim_due(&*store, now, lease, 6).await.unwrap();
                if claimed.is_empty() {
                    return ids;
                }
                assert!(claimed.windows(2).all(|w| w[0].next_at_micros <= w[1].next_at_micros), "oldest first");
                ids.extend(claimed.into_iter().map(|m| (m.id, m.next_at_micros, m.request.path)));
            }
        })
    };
    let (x, y) = (claimer(a.clone()), claimer(b.clone()));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    let all: BTreeSet<_> = x.iter().chain(&y).map(|(id, ..)| id.clone()).collect();
    assert_eq!((all.len(), x.len() + y.len()), (150, 150), "each due message claimed by one host");
    let (id, due_at, path) = &x.iter().chain(&y).min().unwrap();
    assert_eq!((id.as_str(), *due_at, path.as_str()), ("m000", now - 1000, "/calls/m000"), "claimed as it was due");
    let leased = a.message("m000").await.unwrap().unwrap();
    assert_eq!((leased.next_at_micros, leased.attempts), (now + lease, 0));
    assert_eq!(
        Outbox::claim_due(&*b, now + lease, lease, 200).await.unwrap().len(),
        151,
        "an expired lease frees them"
    );
}

#[tokio::test]
async fn outbox_outcomes_dead_letters_retry_and_discard() {
    let Some((_, store, _)) = two_hosts("outbox_outcomes").await else { return };
    let o: Arc<dyn Outbox> = store.clone();
    let now = now_micros();
    for id in ["done", "retry", "postpone", "dead", "dead2"] {
        insert_message(&store, id, now).await;
    }
    assert_eq!(o.claim_due(now, 1000, 10).await.unwrap().len(), 5);
    o.finish("done", OutboxOutcome::Done).await.unwrap();
    o.finish("retry", OutboxOutcome::Retry { at_micros: now + 7, error: "503".into() }).await.unwrap();
    o.finish("postpone", OutboxOutcome::Retry { at_micros: now + 8, error: "timeout".into() }).await.unwrap();
    o.finish("postpone", OutboxOutcome::Postpone { at_micros: now + 9 }).await.unwrap();
    o.finish("dead", OutboxOutcome::Dead { error: "400".into() }).await.unwrap();
    o.finish("dead2", OutboxOutcome::Dead { error: "410".into() }).await.unwrap();
    let get = |id: &'static str| {
        let o = o.clone();
        async move { o.message(id).await.unwrap().unwrap() }
    };
    let done = get("done").await;
    assert_eq!((done.state.as_str(), done.attempts), ("done", 1));
    let retry = get("retry").await;
    assert_eq!((retry.state.as_str(), retry.attempts, retry.next_at_micros), ("pending", 1, now + 7));
    assert_eq!(retry.last_error.as_deref(), Some("503"));
    let postponed = get("postpone").await;
    assert_eq!((postponed.attempts, postponed.next_at_micros), (1, now + 9), "a postponement is not an attempt");
    assert_eq!(postponed.last_error.as_deref(), Some("timeout"), "the last error is kept");
    let dead: Vec<_> = o.dead_letters().await.unwrap().into_iter().map(|m| (m.id, m.last_error)).collect();
    assert_eq!(dead, [("dead".to_string(), Some("400".to_string())), ("dead2".to_string(), Some("410".to_string()))]);
    assert!(o.retry("dead").await.unwrap());
    assert!(!o.retry("dead").await.unwrap() && !o.retry("retry").await.unwrap(), "only dead letters");
    let retried = get("dead").await;
    assert_eq!((retried.state.as_str(), retried.attempts), ("pending", 0));
    assert!(!o.discard("done").await.unwrap());
    assert!(o.discard("dead2").await.unwrap());
    assert_eq!(o.message("dead2").await.unwrap(), None);
    assert!(o.dead_letters().await.unwrap().is_empty());
    // Delivered messages are dropped a day after delivery, by a later claim.
    o.claim_due(now + 86_400_000_000 + 60_000_000, 1000, 10).await.unwrap();
    assert_eq!(o.message("done").await.unwrap(), None);
}
