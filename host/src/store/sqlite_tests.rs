//! Store-level tests of the SQLite backend: units of work, expected versions, idempotency keys,
//! group commit under concurrency.

use std::sync::Arc;

use super::sqlite::SqliteStore;
use super::*;

fn event(n: u32) -> EventToAppend {
    EventToAppend { event_type: "Happened".into(), data: format!("{{\"n\":{n}}}"), metadata: "{}".into() }
}

fn append(stream: &str, expected: ExpectedVersion, events: Vec<EventToAppend>) -> StreamAppend {
    StreamAppend { domain: "test".into(), stream: stream.into(), expected, events }
}

fn batch(streams: Vec<StreamAppend>) -> AppendBatch {
    AppendBatch { streams, ..AppendBatch::default() }
}

async fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn appends_assign_contiguous_versions_and_positions() {
    let (_dir, store) = open().await;
    let first =
        store.append(batch(vec![append("a", ExpectedVersion::NoStream, vec![event(1), event(2)])])).await.unwrap();
    assert_eq!(first.streams[0], AppendedStream { stream: "a".into(), first_version: 1, first_position: 1, count: 2 });
    let second = store.append(batch(vec![append("a", ExpectedVersion::Exact(2), vec![event(3)])])).await.unwrap();
    assert_eq!(second.streams[0].first_version, 3);
    assert_eq!(second.streams[0].first_position, 3);
    let events = store.read_stream("test", "a", 1, 100).await.unwrap();
    assert_eq!(events.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(events[2].data, "{\"n\":3}");
    assert_eq!(store.read_stream("test", "a", 2, 1).await.unwrap()[0].version, 2);
    assert!(store.read_stream("other-domain", "a", 1, 100).await.unwrap().is_empty(), "streams are per domain");
}

#[tokio::test]
async fn a_wrong_expected_version_writes_nothing_in_any_stream() {
    let (_dir, store) = open().await;
    store.append(batch(vec![append("b", ExpectedVersion::NoStream, vec![event(1)])])).await.unwrap();
    let error = store
        .append(batch(vec![
            append("a", ExpectedVersion::NoStream, vec![event(1)]),
            append("b", ExpectedVersion::Exact(5), vec![event(2)]),
        ]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AppendError::WrongExpectedVersion { ref stream, actual: 1, .. } if stream == "b"),
        "{error}"
    );
    assert!(store.read_stream("test", "a", 1, 10).await.unwrap().is_empty(), "the unit of work is all or nothing");
    assert_eq!(store.read_stream("test", "b", 1, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_is_stored_once_with_its_events() {
    let (_dir, store) = open().await;
    let record = IdempotencyRecord {
        scope: "test".into(),
        key: "k".into(),
        request_hash: "h".into(),
        status: 201,
        response: "{}".into(),
    };
    let with_key = |stream: &str| AppendBatch {
        streams: vec![append(stream, ExpectedVersion::Any, vec![event(1)])],
        idempotency: Some(record.clone()),
        ..AppendBatch::default()
    };
    store.append(with_key("a")).await.unwrap();
    let error = store.append(with_key("b")).await.unwrap_err();
    assert!(matches!(error, AppendError::DuplicateIdempotencyKey(ref r) if *r == record));
    assert!(store.read_stream("test", "b", 1, 10).await.unwrap().is_empty());
    assert_eq!(store.idempotency_record("test", "k").await.unwrap(), Some(record));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_stream_admit_exactly_one_per_version() {
    let (_dir, store) = open().await;
    let store = Arc::new(store);
    let attempts = futures_like_join((0..50).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store.append(batch(vec![append("hot", ExpectedVersion::NoStream, vec![event(i)])])).await
        })
    }))
    .await;
    let won = attempts.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "exactly one NoStream append wins");
    assert_eq!(store.read_stream("test", "hot", 1, 100).await.unwrap().len(), 1);
}

#[tokio::test]
async fn empty_units_of_work_are_refused() {
    let (_dir, store) = open().await;
    assert!(matches!(store.append(batch(vec![])).await, Err(AppendError::Invalid(_))));
    assert!(matches!(
        store.append(batch(vec![append("a", ExpectedVersion::Any, vec![])])).await,
        Err(AppendError::Invalid(_))
    ));
    store.check_ready().await.unwrap();
}

async fn futures_like_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_domain_reads_in_one_keyset_paginated_pass() {
    let (_dir, store) = open().await;
    store.append(batch(vec![append("b", ExpectedVersion::NoStream, vec![event(1)])])).await.unwrap();
    store.append(batch(vec![append("a", ExpectedVersion::NoStream, vec![event(2), event(3)])])).await.unwrap();
    let mut other = append("a", ExpectedVersion::NoStream, vec![event(4)]);
    other.domain = "elsewhere".into();
    store.append(batch(vec![other])).await.unwrap();
    let first = store.read_domain("test", ("", 0), 2).await.unwrap();
    let keys: Vec<(String, u64)> = first.iter().map(|e| (e.stream.clone(), e.version)).collect();
    assert_eq!(keys, [("a".to_string(), 1), ("a".to_string(), 2)]);
    let rest = store.read_domain("test", ("a", 2), 10).await.unwrap();
    assert_eq!(rest.iter().map(|e| (e.stream.as_str(), e.version)).collect::<Vec<_>>(), [("b", 1)]);
}
