//! Store-level tests of the event store, each run on both backends: SQLite always, PostgreSQL
//! when `CAIRN_TEST_POSTGRES_URL` names a database (a fresh schema per test): units of work,
//! expected versions, idempotency keys, group commit under concurrency, the gap-safe log.

use std::sync::Arc;
use std::time::Duration;

use super::postgres::{PgStore, testing};
use super::sqlite::SqliteStore;
use super::*;

/// Runs each named case on SQLite and on PostgreSQL (`<case>::sqlite`, `<case>::postgres`).
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                super::$case(Arc::new(SqliteStore::open(dir.path()).await.unwrap())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(settings) = testing::settings(stringify!($case)) else { return };
                super::$case(Arc::new(PgStore::open(&settings).await.unwrap())).await;
            }
        }
    )*};
}
pub(super) use on_both_backends;

on_both_backends!(
    appends_assign_contiguous_versions_and_positions,
    a_wrong_expected_version_writes_nothing_in_any_stream,
    an_idempotency_key_is_stored_once_with_its_events,
    concurrent_appends_to_one_stream_admit_exactly_one_per_version,
    empty_units_of_work_are_refused,
    a_domain_reads_in_one_keyset_paginated_pass,
    the_log_reads_gap_free_in_order,
    a_unit_the_database_refuses_fails_alone_in_its_group,
    unstorable_events_are_refused_before_the_writer,
    bounded_reads_stop_at_the_byte_bound,
);

pub(super) fn event(n: u32) -> EventToAppend {
    EventToAppend { event_type: "Happened".into(), data: format!("{{\"n\":{n}}}"), metadata: "{}".into() }
}

pub(super) fn append(stream: &str, expected: ExpectedVersion, events: Vec<EventToAppend>) -> StreamAppend {
    StreamAppend { domain: "test".into(), stream: stream.into(), expected, events }
}

pub(super) fn batch(streams: Vec<StreamAppend>) -> AppendBatch {
    AppendBatch { streams, ..AppendBatch::default() }
}

/// A stored response (201, `{}`) under `key` in the domain `test`.
pub(super) fn idempotency_record(key: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: "test".into(),
        key: key.into(),
        request_hash: "h".into(),
        status: 201,
        response: "{}".into(),
    }
}

async fn appends_assign_contiguous_versions_and_positions(store: Arc<dyn EventStore>) {
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

async fn a_wrong_expected_version_writes_nothing_in_any_stream(store: Arc<dyn EventStore>) {
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

async fn an_idempotency_key_is_stored_once_with_its_events(store: Arc<dyn EventStore>) {
    let record = idempotency_record("k");
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

async fn concurrent_appends_to_one_stream_admit_exactly_one_per_version(store: Arc<dyn EventStore>) {
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

async fn empty_units_of_work_are_refused(store: Arc<dyn EventStore>) {
    assert!(matches!(store.append(batch(vec![])).await, Err(AppendError::Invalid(_))));
    assert!(matches!(
        store.append(batch(vec![append("a", ExpectedVersion::Any, vec![])])).await,
        Err(AppendError::Invalid(_))
    ));
    store.check_ready().await.unwrap();
}

pub(super) async fn futures_like_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

async fn a_domain_reads_in_one_keyset_paginated_pass(store: Arc<dyn EventStore>) {
    store.append(batch(vec![append("b", ExpectedVersion::NoStream, vec![event(1)])])).await.unwrap();
    store.append(batch(vec![append("a", ExpectedVersion::NoStream, vec![event(2), event(3)])])).await.unwrap();
    let mut other = append("a", ExpectedVersion::NoStream, vec![event(4)]);
    other.domain = "elsewhere".into();
    store.append(batch(vec![other])).await.unwrap();
    let first = store.read_domain_page("test", ("", 0), 2, usize::MAX).await.unwrap().events;
    let keys: Vec<(String, u64)> = first.iter().map(|e| (e.stream.clone(), e.version)).collect();
    assert_eq!(keys, [("a".to_string(), 1), ("a".to_string(), 2)]);
    let rest = store.read_domain_page("test", ("a", 2), 10, usize::MAX).await.unwrap().events;
    assert_eq!(rest.iter().map(|e| (e.stream.as_str(), e.version)).collect::<Vec<_>>(), [("b", 1)]);
}

async fn the_log_reads_gap_free_in_order(store: Arc<dyn EventStore>) {
    let writers = (0..40u32).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let stream = format!("s{}", i % 7);
            store.append(batch(vec![append(&stream, ExpectedVersion::Any, vec![event(i), event(i + 100)])])).await
        })
    });
    let mut seen = Vec::new();
    let mut checkpoint = 0;
    let reader = async {
        while seen.len() < 80 {
            let slice = store.read_log("test", checkpoint, 7).await.unwrap();
            seen.extend(slice.events.iter().map(|e| e.position));
            checkpoint = slice.complete_to;
            tokio::task::yield_now().await;
        }
    };
    let (results, ()) = tokio::join!(futures_like_join(writers), reader);
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(seen, (1..=80).collect::<Vec<u64>>(), "every event once, in order");
}

/// The held-transaction test: a real append's transaction is held open (its idempotency key
/// collides with a row another transaction inserted and has not committed, so the append waits
/// inside its transaction, holding the log head). Appends from this host and from a second host
/// queue behind it; readers following the log meanwhile never move past the held event; once
/// released, every reader gets the held event and the later ones, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_append_is_read_in_order_once_on_postgres() {
    use sqlx::Connection;
    let Some(settings) = testing::settings("a_held_append_is_read_in_order_once_on_postgres") else { return };
    let first = Arc::new(PgStore::open(&settings).await.unwrap());
    let second = Arc::new(PgStore::open(&settings).await.unwrap());
    first.append(batch(vec![append("before", ExpectedVersion::Any, vec![event(0)])])).await.unwrap();

    let mut options: sqlx::postgres::PgConnectOptions = settings.url.parse().unwrap();
    options = options.options([("search_path", settings.schema.as_deref().unwrap())]);
    let mut blocker = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let mut blocking = blocker.begin().await.unwrap();
    sqlx::query("INSERT INTO idempotency_keys VALUES ('test', 'held', 'x', 201, '{}', 0)")
        .execute(&mut *blocking)
        .await
        .unwrap();
    let held = {
        let store = first.clone();
        tokio::spawn(async move {
            let unit = AppendBatch {
                streams: vec![append("held", ExpectedVersion::Any, vec![event(1)])],
                idempotency: Some(idempotency_record("held")),
                ..AppendBatch::default()
            };
            store.append(unit).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later: Vec<_> = (0..6u32)
        .map(|i| {
            let store: Arc<dyn EventStore> = if i % 2 == 0 { first.clone() } else { second.clone() };
            tokio::spawn(async move {
                store.append(batch(vec![append(&format!("later-{i}"), ExpectedVersion::Any, vec![event(i)])])).await
            })
        })
        .collect();
    // Meanwhile: readers see the first event and nothing past the held one.
    let mut checkpoints = [0u64; 2];
    let mut seen: [Vec<u64>; 2] = Default::default();
    for _ in 0..5 {
        for (reader, store) in [first.clone(), second.clone()].iter().enumerate() {
            let slice = store.read_log("test", checkpoints[reader], 100).await.unwrap();
            seen[reader].extend(slice.events.iter().map(|e| e.position));
            checkpoints[reader] = slice.complete_to;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(checkpoints, [1, 1], "no reader moves past a held append");
    assert!(!held.is_finished() && later.iter().all(|t| !t.is_finished()), "later appends wait for the held one");
    blocking.rollback().await.unwrap();
    held.await.unwrap().unwrap();
    for task in later {
        task.await.unwrap().unwrap();
    }
    for (reader, store) in [first, second].iter().enumerate() {
        while seen[reader].len() < 8 {
            let slice = store.read_log("test", checkpoints[reader], 3).await.unwrap();
            seen[reader].extend(slice.events.iter().map(|e| e.position));
            checkpoints[reader] = slice.complete_to;
        }
        assert_eq!(seen[reader], (1..=8).collect::<Vec<u64>>(), "reader {reader}: every event once, in order");
        let events = store.read_log("test", 1, 1).await.unwrap().events;
        assert_eq!(events[0].stream, "held", "the held event comes right after the one before it");
    }
}

/// A unit of work whose outbox message reuses a stored id: the database refuses it at commit.
pub(super) fn with_outbox(stream: &str, id: &str) -> AppendBatch {
    let message = NewOutboxMessage {
        id: id.into(),
        domain: "test".into(),
        service: "svc".into(),
        request: OutboxRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![],
            body_hex: String::new(),
            idempotency_key: id.into(),
        },
    };
    AppendBatch { outbox: vec![message], ..batch(vec![append(stream, ExpectedVersion::NoStream, vec![event(1)])]) }
}

async fn a_unit_the_database_refuses_fails_alone_in_its_group(store: Arc<dyn EventStore>) {
    store.append(with_outbox("first", "taken")).await.unwrap();
    // Many units at once, so the writer commits them in groups; every tenth reuses the id.
    let results = futures_like_join((0..100).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let unit = if i % 10 == 5 {
                with_outbox(&format!("s{i}"), "taken")
            } else {
                with_outbox(&format!("s{i}"), &format!("m{i}"))
            };
            (i, store.append(unit).await)
        })
    }))
    .await;
    for (i, result) in results {
        if i % 10 == 5 {
            assert!(matches!(result, Err(AppendError::Store(_))), "unit {i} reuses an outbox id: {result:?}");
            assert!(store.read_stream("test", &format!("s{i}"), 1, 10).await.unwrap().is_empty());
        } else {
            result.unwrap_or_else(|e| panic!("unit {i} failed with the refused ones: {e}"));
        }
    }
    // The refused units leave the write path healthy: the next commit succeeds.
    store.append(batch(vec![append("after", ExpectedVersion::NoStream, vec![event(1)])])).await.unwrap();
    store.check_writes().unwrap();
}

async fn unstorable_events_are_refused_before_the_writer(store: Arc<dyn EventStore>) {
    let bad = |data: String| {
        let unstorable = EventToAppend { event_type: "Happened".into(), data, metadata: "{}".into() };
        batch(vec![append("a", ExpectedVersion::Any, vec![event(1), unstorable])])
    };
    let Err(AppendError::Unstorable(refused)) = store.append(bad(r#"{"user":{"id":"x\u0000"}}"#.into())).await else {
        panic!("a NUL character is refused");
    };
    assert_eq!((refused.index, refused.error.pointer.as_str()), (2, "/user/id"));
    let deep = format!("{}{}", "[".repeat(1_000), "]".repeat(1_000));
    let Err(AppendError::Unstorable(refused)) = store.append(bad(deep)).await else {
        panic!("nesting deeper than the ceiling is refused");
    };
    assert_eq!(refused.error.reason, event_rules::Reason::TooDeep(event_rules::DEPTH_CEILING));
    let mut nul_type = bad("{}".into());
    nul_type.streams[0].events[1].event_type = "Hap\0pened".into();
    let Err(AppendError::Unstorable(refused)) = store.append(nul_type).await else {
        panic!("a NUL character in the event type is refused");
    };
    assert_eq!((refused.part, refused.event_type.as_str()), ("type", "Hap\\u0000pened"));
    assert!(store.read_stream("test", "a", 1, 10).await.unwrap().is_empty(), "nothing of these units is stored");
    store.check_writes().unwrap();
}

async fn bounded_reads_stop_at_the_byte_bound(store: Arc<dyn EventStore>) {
    let blob = |n: u32| EventToAppend {
        event_type: "Happened".into(),
        data: format!("{{\"n\":{n},\"blob\":\"{}\"}}", "x".repeat(990)),
        metadata: "{}".into(),
    };
    store.append(batch(vec![append("big", ExpectedVersion::NoStream, (1..=10).map(blob).collect())])).await.unwrap();
    let size = blob(1).data.len() + 2;
    let read = store.read_stream_bounded("test", "big", 1, 100, size * 3 + size / 2).await.unwrap();
    assert_eq!((read.events.len(), read.cut), (3, true), "stops before the event that would pass the bound");
    let read = store.read_stream_bounded("test", "big", 1, 2, usize::MAX).await.unwrap();
    assert_eq!((read.events.len(), read.cut), (2, false), "the count bounds as before");
    let read = store.read_stream_bounded("test", "big", 9, 100, size * 3).await.unwrap();
    assert_eq!((read.events.len(), read.cut), (2, false), "the end of the stream is not a cut");
    let read = store.read_stream_bounded("test", "big", 1, 100, 1).await.unwrap();
    assert_eq!((read.events.len(), read.cut), (1, true), "the first event always comes");
    let read = store.read_stream_bounded("test", "big", 1, 100, usize::MAX).await.unwrap();
    assert_eq!(read.events.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(store.stream_head("test", "big").await.unwrap(), 10);
    assert_eq!(store.stream_head("test", "none").await.unwrap(), 0);
}

/// The PostgreSQL backend waiting behind `blocker_pid`, once there is one.
async fn writer_blocked_by(observer: &mut sqlx::PgConnection, blocker_pid: i32) -> i32 {
    for _ in 0..250 {
        let waiting: Option<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) LIMIT 1")
                .bind(blocker_pid)
                .fetch_optional(&mut *observer)
                .await
                .unwrap();
        if let Some(pid) = waiting {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no writer waited behind the blocker");
}

/// A group whose connection is lost has an unknown outcome (it may have committed): its units
/// all get the error and none is written again on its own (that could apply a command twice).
/// Only a refusal of the data is retried unit by unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_lost_its_connection_is_not_retried_unit_by_unit_on_postgres() {
    use sqlx::Connection;
    let Some(settings) = testing::settings("a_group_that_lost_its_connection_is_not_retried") else { return };
    let store = Arc::new(PgStore::open(&settings).await.unwrap());
    store.append(batch(vec![append("before", ExpectedVersion::Any, vec![event(0)])])).await.unwrap();
    let mut options: sqlx::postgres::PgConnectOptions = settings.url.parse().unwrap();
    options = options.options([("search_path", settings.schema.as_deref().unwrap())]);
    let mut observer = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let mut blocker = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let mut blocking = blocker.begin().await.unwrap();
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *blocking).await.unwrap();
    sqlx::query("SELECT position FROM event_log_head FOR UPDATE").execute(&mut *blocking).await.unwrap();

    // The writer takes the first unit alone and waits for the head; three more gather behind it.
    let submit = |name: &'static str| {
        let store = store.clone();
        tokio::spawn(async move { store.append(batch(vec![append(name, ExpectedVersion::Any, vec![event(1)])])).await })
    };
    let first = submit("first");
    let first_pid = writer_blocked_by(&mut observer, blocker_pid).await;
    let group: Vec<_> = ["g1", "g2", "g3"].into_iter().map(submit).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::query("SELECT pg_terminate_backend($1)").bind(first_pid).execute(&mut observer).await.unwrap();
    assert!(first.await.unwrap().is_err(), "the lost unit is answered with the error");
    // Now the three wait together as one group; lose that connection too, then free the head.
    let group_pid = writer_blocked_by(&mut observer, blocker_pid).await;
    sqlx::query("SELECT pg_terminate_backend($1)").bind(group_pid).execute(&mut observer).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocking.rollback().await.unwrap();
    for unit in group {
        assert!(unit.await.unwrap().is_err(), "every unit of a group with an unknown outcome gets the error");
    }
    for stream in ["first", "g1", "g2", "g3"] {
        assert!(store.read_stream("test", stream, 1, 10).await.unwrap().is_empty(), "{stream} was written again");
    }
    store.append(batch(vec![append("after", ExpectedVersion::Any, vec![event(2)])])).await.unwrap();
}
