//! Aggregate snapshots on both backends (PostgreSQL when `CAIRN_TEST_POSTGRES_URL` names a
//! database, a fresh schema per test): written with their events or not at all, read back only
//! for their digest, stream and domain, the newest at or below a bound, and never failing a
//! unit of work or a save for being stored already.

use std::sync::Arc;

use super::event_store_tests::{
    append, batch, event, futures_like_join, idempotency_record, on_both_backends, with_outbox,
};
use super::postgres::{PgStore, testing};
use super::sqlite::SqliteStore;
use super::*;

on_both_backends!(
    snapshots_commit_with_their_events,
    a_refused_unit_writes_none_of_its_snapshots,
    in_a_group_only_the_accepted_units_write_their_snapshots,
    a_unit_the_database_refuses_writes_no_snapshot_and_fails_alone,
    the_newest_snapshot_at_or_below_the_bound_is_read_for_its_digest_stream_and_domain_only,
    saving_snapshots_is_idempotent,
    a_snapshot_stored_already_does_not_fail_a_later_unit,
    malformed_snapshots_are_refused_and_write_nothing,
    a_state_comes_back_byte_for_byte,
);

const DIGEST: &str = "5f2b0000000000000000000000000000000000000000000000000000000000aa";
const OTHER_DIGEST: &str = "9c41000000000000000000000000000000000000000000000000000000000bbb";

fn snapshot(stream: &str, digest: &str, version: u64) -> Snapshot {
    Snapshot {
        domain: "test".into(),
        stream: stream.into(),
        digest: digest.into(),
        version,
        state: format!("{{\"stream\":\"{stream}\",\"digest\":\"{digest}\",\"version\":{version}}}"),
    }
}

/// A unit appending `count` events to `stream` (expected at `at`) with `snapshots`.
fn with_snapshots(stream: &str, at: u64, count: u32, snapshots: Vec<Snapshot>) -> AppendBatch {
    let events = (1..=count).map(event).collect();
    AppendBatch { snapshots, ..batch(vec![append(stream, ExpectedVersion::Exact(at), events)]) }
}

async fn load(store: &Arc<dyn EventStore>, stream: &str, digest: &str, at_most: u64) -> Option<u64> {
    let found = store.load_snapshot("test", stream, digest, at_most).await.unwrap();
    if let Some(found) = &found {
        assert_eq!(*found, snapshot(stream, digest, found.version), "the snapshot comes back as stored");
    }
    found.map(|s| s.version)
}

async fn snapshots_commit_with_their_events(store: Arc<dyn EventStore>) {
    assert_eq!(load(&store, "a", DIGEST, u64::MAX).await, None, "no snapshot before any is written");
    store.append(with_snapshots("a", 0, 3, vec![snapshot("a", DIGEST, 3)])).await.unwrap();
    assert_eq!(load(&store, "a", DIGEST, 3).await, Some(3));
    assert_eq!(load(&store, "a", DIGEST, u64::MAX).await, Some(3));
    assert_eq!(load(&store, "a", DIGEST, 2).await, None, "nothing at or below version 2");
    // Two snapshots of two streams in one unit, one of them below the unit's last version.
    let unit = AppendBatch {
        snapshots: vec![snapshot("a", DIGEST, 4), snapshot("b", DIGEST, 1)],
        ..batch(vec![
            append("a", ExpectedVersion::Exact(3), vec![event(4), event(5)]),
            append("b", ExpectedVersion::NoStream, vec![event(1)]),
        ])
    };
    store.append(unit).await.unwrap();
    assert_eq!(load(&store, "a", DIGEST, 10).await, Some(4));
    assert_eq!(load(&store, "b", DIGEST, 10).await, Some(1));
    assert_eq!(store.stream_head("test", "a").await.unwrap(), 5);
}

async fn a_refused_unit_writes_none_of_its_snapshots(store: Arc<dyn EventStore>) {
    store.append(with_snapshots("a", 0, 2, vec![])).await.unwrap();
    let error = store.append(with_snapshots("a", 1, 1, vec![snapshot("a", DIGEST, 3)])).await.unwrap_err();
    assert!(matches!(error, AppendError::WrongExpectedVersion { actual: 2, .. }), "{error}");
    assert_eq!(load(&store, "a", DIGEST, u64::MAX).await, None, "a wrong expected version writes no snapshot");

    let keyed = |stream: &str| AppendBatch {
        idempotency: Some(idempotency_record("k")),
        ..with_snapshots(stream, 0, 1, vec![snapshot(stream, DIGEST, 1)])
    };
    store.append(keyed("b")).await.unwrap();
    let error = store.append(keyed("c")).await.unwrap_err();
    assert!(matches!(error, AppendError::DuplicateIdempotencyKey(_)), "{error}");
    assert_eq!(load(&store, "b", DIGEST, 1).await, Some(1));
    assert_eq!(load(&store, "c", DIGEST, 1).await, None, "a duplicate idempotency key writes no snapshot");
}

async fn in_a_group_only_the_accepted_units_write_their_snapshots(store: Arc<dyn EventStore>) {
    for i in 0..40 {
        store.append(with_snapshots(&format!("s{i}"), 0, 1, vec![])).await.unwrap();
    }
    // Many units at once, so the writer commits them in groups; every fourth expects a wrong version.
    let results = futures_like_join((0..40u64).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let stream = format!("s{i}");
            let at = if i % 4 == 3 { 7 } else { 1 };
            (i, store.append(with_snapshots(&stream, at, 2, vec![snapshot(&stream, DIGEST, 3)])).await)
        })
    }))
    .await;
    for (i, result) in results {
        let stream = format!("s{i}");
        if i % 4 == 3 {
            assert!(matches!(result, Err(AppendError::WrongExpectedVersion { .. })), "unit {i}: {result:?}");
            assert_eq!(load(&store, &stream, DIGEST, u64::MAX).await, None, "refused unit {i} wrote its snapshot");
        } else {
            result.unwrap_or_else(|e| panic!("unit {i} failed: {e}"));
            assert_eq!(load(&store, &stream, DIGEST, u64::MAX).await, Some(3), "unit {i} lost its snapshot");
        }
    }
}

async fn a_unit_the_database_refuses_writes_no_snapshot_and_fails_alone(store: Arc<dyn EventStore>) {
    store.append(with_outbox("first", "taken")).await.unwrap();
    // Every tenth unit reuses an outbox id: its group fails and is committed again unit by unit.
    let results = futures_like_join((0..60).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let stream = format!("s{i}");
            let id = if i % 10 == 5 { "taken".to_string() } else { format!("m{i}") };
            let unit = AppendBatch { snapshots: vec![snapshot(&stream, DIGEST, 1)], ..with_outbox(&stream, &id) };
            (i, store.append(unit).await)
        })
    }))
    .await;
    for (i, result) in results {
        let stream = format!("s{i}");
        if i % 10 == 5 {
            assert!(matches!(result, Err(AppendError::Store(_))), "unit {i} reuses an outbox id: {result:?}");
            assert_eq!(load(&store, &stream, DIGEST, u64::MAX).await, None, "refused unit {i} wrote its snapshot");
        } else {
            result.unwrap_or_else(|e| panic!("unit {i} failed with the refused ones: {e}"));
            assert_eq!(load(&store, &stream, DIGEST, u64::MAX).await, Some(1), "unit {i} lost its snapshot");
        }
    }
    store.check_writes().unwrap();
}

async fn the_newest_snapshot_at_or_below_the_bound_is_read_for_its_digest_stream_and_domain_only(
    store: Arc<dyn EventStore>,
) {
    store.append(with_snapshots("a", 0, 2, vec![snapshot("a", DIGEST, 2)])).await.unwrap();
    store.append(with_snapshots("a", 2, 2, vec![snapshot("a", DIGEST, 4)])).await.unwrap();
    store.append(with_snapshots("b", 0, 9, vec![snapshot("b", DIGEST, 9)])).await.unwrap();
    // Another plugin version's replay, and another domain's stream of the same name.
    store.save_snapshots(vec![snapshot("a", OTHER_DIGEST, 3)]).await.unwrap();
    store.save_snapshots(vec![Snapshot { domain: "elsewhere".into(), ..snapshot("a", DIGEST, 8) }]).await.unwrap();

    assert_eq!(load(&store, "a", DIGEST, 1).await, None);
    assert_eq!(load(&store, "a", DIGEST, 2).await, Some(2));
    assert_eq!(load(&store, "a", DIGEST, 3).await, Some(2), "not the other digest's version 3");
    assert_eq!(load(&store, "a", DIGEST, 4).await, Some(4));
    assert_eq!(load(&store, "a", DIGEST, u64::MAX).await, Some(4), "not the other domain's version 8");
    assert_eq!(load(&store, "a", OTHER_DIGEST, u64::MAX).await, Some(3));
    assert_eq!(load(&store, "a", OTHER_DIGEST, 2).await, None, "never another digest's snapshot");
    assert_eq!(load(&store, "a", "unknown", u64::MAX).await, None);
    assert_eq!(load(&store, "b", DIGEST, 8).await, None, "never another stream's snapshot");
    assert_eq!(load(&store, "c", DIGEST, u64::MAX).await, None);
    let elsewhere = store.load_snapshot("elsewhere", "a", DIGEST, u64::MAX).await.unwrap();
    assert_eq!(elsewhere.map(|s| (s.domain, s.version)), Some(("elsewhere".to_string(), 8)));
    assert_eq!(store.load_snapshot("elsewhere", "b", DIGEST, u64::MAX).await.unwrap(), None);
}

async fn saving_snapshots_is_idempotent(store: Arc<dyn EventStore>) {
    store.save_snapshots(vec![]).await.unwrap();
    store.save_snapshots(vec![snapshot("a", DIGEST, 5), snapshot("a", DIGEST, 10)]).await.unwrap();
    let changed = Snapshot { state: "{\"changed\":true}".into(), ..snapshot("a", DIGEST, 5) };
    // Again, with a new state under a stored key, a new snapshot, and one key twice in one call.
    store
        .save_snapshots(vec![changed.clone(), snapshot("a", DIGEST, 10), snapshot("a", DIGEST, 7), changed])
        .await
        .unwrap();
    assert_eq!(load(&store, "a", DIGEST, 6).await, Some(5), "the stored state is left as it is");
    assert_eq!(load(&store, "a", DIGEST, 9).await, Some(7));
    assert_eq!(load(&store, "a", DIGEST, 10).await, Some(10));
    // Many rows in one call (more than one multi-row INSERT on SQLite).
    store.save_snapshots((1..=2_500).map(|v| snapshot("many", DIGEST, v)).collect()).await.unwrap();
    assert_eq!(load(&store, "many", DIGEST, u64::MAX).await, Some(2_500));
    assert_eq!(load(&store, "many", DIGEST, 1_234).await, Some(1_234));
}

async fn a_snapshot_stored_already_does_not_fail_a_later_unit(store: Arc<dyn EventStore>) {
    store.append(with_snapshots("a", 0, 2, vec![snapshot("a", DIGEST, 2)])).await.unwrap();
    // A shadow replay got ahead of the command path: version 3 is stored before its events.
    store.save_snapshots(vec![snapshot("a", DIGEST, 3)]).await.unwrap();
    let again = Snapshot { state: "{\"from\":\"the command\"}".into(), ..snapshot("a", DIGEST, 3) };
    store.append(with_snapshots("a", 2, 1, vec![again.clone(), snapshot("a", DIGEST, 2), again])).await.unwrap();
    assert_eq!(store.stream_head("test", "a").await.unwrap(), 3, "the unit committed");
    assert_eq!(load(&store, "a", DIGEST, 3).await, Some(3), "the stored state is left as it is");
    // Two units of one group writing the same key: both commit.
    let results = futures_like_join((0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let unit = AppendBatch {
                snapshots: vec![snapshot("a", DIGEST, 3)],
                ..batch(vec![
                    append(&format!("x{i}"), ExpectedVersion::NoStream, vec![event(1)]),
                    append("a", ExpectedVersion::Any, vec![event(i)]),
                ])
            };
            store.append(unit).await
        })
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(store.stream_head("test", "a").await.unwrap(), 11);
}

async fn malformed_snapshots_are_refused_and_write_nothing(store: Arc<dyn EventStore>) {
    let refused = |unit: AppendBatch, why: &'static str| {
        let store = store.clone();
        async move {
            let result = store.append(unit).await;
            assert!(matches!(result, Err(AppendError::Invalid(_))), "{why}: {result:?}");
        }
    };
    refused(with_snapshots("a", 0, 1, vec![snapshot("a", DIGEST, 0)]), "version 0").await;
    refused(with_snapshots("a", 0, 1, vec![snapshot("a", DIGEST, 1 << 63)]), "a version past BIGINT").await;
    refused(with_snapshots("a", 0, 1, vec![snapshot("b", DIGEST, 1)]), "a stream the unit does not append to").await;
    let elsewhere = Snapshot { domain: "elsewhere".into(), ..snapshot("a", DIGEST, 1) };
    refused(with_snapshots("a", 0, 1, vec![elsewhere]), "the stream of another domain").await;
    refused(with_snapshots("a", 0, 2, vec![snapshot("a", DIGEST, 3)]), "past the stream's head after the unit").await;
    let nul = Snapshot { state: "{\"s\":\"a\0b\"}".into(), ..snapshot("a", DIGEST, 1) };
    refused(with_snapshots("a", 0, 1, vec![nul.clone()]), "a NUL character in the state").await;
    assert_eq!(store.stream_head("test", "a").await.unwrap(), 0, "no refused unit wrote its events");
    assert_eq!(load(&store, "a", DIGEST, u64::MAX).await, None);
    assert_eq!(load(&store, "b", DIGEST, u64::MAX).await, None);

    assert!(store.save_snapshots(vec![snapshot("a", DIGEST, 1), snapshot("a", DIGEST, 0)]).await.is_err());
    assert!(store.save_snapshots(vec![nul]).await.is_err());
    assert_eq!(load(&store, "a", DIGEST, u64::MAX).await, None, "a refused save writes none of its snapshots");
    store.check_writes().unwrap();
}

async fn a_state_comes_back_byte_for_byte(store: Arc<dyn EventStore>) {
    let state = "{\"nul\":\"a\\u0000b\",\"text\":\"\u{e9}t\u{e9} \u{1f600}\",\"n\":1.50,  \"dup\":1,\"dup\":2}";
    let written = Snapshot { state: state.into(), ..snapshot("a", DIGEST, 1) };
    let saved = Snapshot { state: state.into(), ..snapshot("a", OTHER_DIGEST, 1) };
    store.append(with_snapshots("a", 0, 1, vec![written.clone()])).await.unwrap();
    store.save_snapshots(vec![saved.clone()]).await.unwrap();
    assert_eq!(store.load_snapshot("test", "a", DIGEST, 1).await.unwrap(), Some(written));
    assert_eq!(store.load_snapshot("test", "a", OTHER_DIGEST, 1).await.unwrap(), Some(saved));
}
