//! Byte-bounded reads load what they keep, not a page guessed from the events before: a stream
//! (or domain) of tiny events that turns to large ones is read within its bound plus one event,
//! counted through a store that weighs every row it hands out. Both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::postgres::{PgStore, testing};
use super::sqlite::SqliteStore;
use super::*;

/// Wraps a store and weighs what its reads return: the bytes of all rows, and the most one
/// call returned.
pub(crate) struct Weighing {
    inner: Arc<dyn EventStore>,
    /// Bytes of data and metadata returned by every read so far.
    pub loaded: AtomicUsize,
    /// The most bytes one read call returned.
    pub largest_call: AtomicUsize,
}

impl Weighing {
    pub(crate) fn new(inner: Arc<dyn EventStore>) -> Self {
        Self { inner, loaded: AtomicUsize::new(0), largest_call: AtomicUsize::new(0) }
    }

    fn weigh<'a>(&self, events: impl IntoIterator<Item = &'a StoredEvent>) {
        let bytes: usize = events.into_iter().map(|e| e.data.len() + e.metadata.len()).sum();
        self.loaded.fetch_add(bytes, Ordering::Relaxed);
        self.largest_call.fetch_max(bytes, Ordering::Relaxed);
    }
}

#[async_trait]
impl EventStore for Weighing {
    async fn read_stream(&self, d: &str, s: &str, from: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let events = self.inner.read_stream(d, s, from, limit).await?;
        self.weigh(&events);
        Ok(events)
    }

    async fn read_stream_page(
        &self,
        d: &str,
        s: &str,
        from: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<EventPage, StoreError> {
        let page = self.inner.read_stream_page(d, s, from, limit, max_bytes).await?;
        self.weigh(&page.events);
        Ok(page)
    }

    async fn stream_head(&self, d: &str, s: &str) -> Result<u64, StoreError> {
        self.inner.stream_head(d, s).await
    }

    async fn append(&self, batch: AppendBatch) -> Result<AppendResult, AppendError> {
        self.inner.append(batch).await
    }

    async fn read_domain_page(
        &self,
        d: &str,
        after: (&str, u64),
        limit: u32,
        max_bytes: usize,
    ) -> Result<EventPage, StoreError> {
        let page = self.inner.read_domain_page(d, after, limit, max_bytes).await?;
        self.weigh(&page.events);
        Ok(page)
    }

    async fn idempotency_record(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(scope, key).await
    }

    async fn load_snapshot(
        &self,
        d: &str,
        s: &str,
        digest: &str,
        at_most: u64,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(d, s, digest, at_most).await
    }

    async fn save_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), StoreError> {
        self.inner.save_snapshots(snapshots).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        self.inner.check_ready().await
    }

    async fn read_log(&self, d: &str, after: u64, limit: u32) -> Result<LogSlice, StoreError> {
        self.inner.read_log(d, after, limit).await
    }

    async fn lag(&self, d: &str, after: u64) -> Result<(u64, Option<i64>), StoreError> {
        self.inner.lag(d, after).await
    }

    fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.head()
    }
}

/// The store of `case` on each backend (PostgreSQL when `CAIRN_TEST_POSTGRES_URL` is set).
pub(crate) async fn backends(case: &str) -> Vec<(&'static str, Arc<dyn EventStore>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&'static str, Arc<dyn EventStore>, Option<tempfile::TempDir>)> =
        vec![("sqlite", Arc::new(SqliteStore::open(dir.path()).await.unwrap()), Some(dir))];
    if let Some(settings) = testing::settings(case) {
        stores.push(("postgres", Arc::new(PgStore::open(&settings).await.unwrap()), None));
    }
    stores
}

/// Size of one large event's data and metadata in [`tiny_then_large`].
pub(crate) const LARGE: usize = 16 * 1024;

/// Appends `tiny` events of a few bytes, then `large` events of [`LARGE`] bytes, to `stream`.
pub(crate) async fn tiny_then_large(store: &dyn EventStore, stream: &str, tiny: u32, large: u32) {
    let event = |data: String| EventToAppend { event_type: "Happened".into(), data, metadata: "{}".into() };
    let tiny = (0..tiny).map(|n| event(format!("{{\"n\":{n}}}")));
    let large_events = (0..large).map(|n| event(format!("{{\"n\":\"{n:05}\",\"b\":\"{}\"}}", "x".repeat(LARGE - 22))));
    let all: Vec<EventToAppend> = tiny.chain(large_events).collect();
    assert!(large == 0 || all.last().is_some_and(|e| e.data.len() + 2 == LARGE));
    for chunk in all.chunks(50) {
        let append = StreamAppend {
            domain: "test".into(),
            stream: stream.into(),
            expected: ExpectedVersion::Any,
            events: chunk.to_vec(),
        };
        store.append(AppendBatch { streams: vec![append], ..AppendBatch::default() }).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_read_of_tiny_then_large_events_loads_its_bound_plus_one_event() {
    for (backend, store, _dir) in backends("bounded_read_tiny_then_large").await {
        tiny_then_large(store.as_ref(), "s", 20, 300).await;
        let weighing = Weighing::new(store);
        let bound = 256 * 1024;
        let read = weighing.read_stream_bounded("test", "s", 1, u32::MAX, bound).await.unwrap();
        let kept: usize = read.events.iter().map(|e| e.data.len() + e.metadata.len()).sum();
        assert!(read.cut && kept <= bound && kept + LARGE > bound, "{backend}: kept {kept} of {bound}");
        let versions: Vec<u64> = read.events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=read.events.len() as u64).collect::<Vec<_>>(), "{backend}");
        let loaded = weighing.loaded.load(Ordering::Relaxed);
        assert!(loaded <= bound + LARGE, "{backend}: one read loaded {loaded} bytes for a bound of {bound}");

        // The whole stream, without a byte bound, still comes in order and complete.
        let all = weighing.read_stream_bounded("test", "s", 1, u32::MAX, usize::MAX).await.unwrap();
        assert_eq!((all.events.len(), all.cut), (320, false), "{backend}");
        // And the count bound stops a page of tiny events as before.
        let two = weighing.read_stream_bounded("test", "s", 19, 2, bound).await.unwrap();
        assert_eq!(two.events.iter().map(|e| e.version).collect::<Vec<_>>(), [19, 20], "{backend}");
        assert!(!two.cut, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_page_stops_at_its_bytes_and_resumes_after_its_last_event() {
    for (backend, store, _dir) in backends("domain_page_bytes").await {
        tiny_then_large(store.as_ref(), "a", 5, 3).await;
        let page = store.read_domain_page("test", ("", 0), 100, LARGE + 100).await.unwrap();
        let keys: Vec<u64> = page.events.iter().map(|e| e.version).collect();
        assert_eq!((keys, page.more), ((1..=6).collect(), true), "{backend}: five tiny events and one large");
        let one = store.read_domain_page("test", ("a", 6), 100, 1).await.unwrap();
        assert_eq!((one.events.len(), one.more), (1, true), "{backend}: the first event always comes");
        let rest = store.read_domain_page("test", ("a", 6), 100, usize::MAX).await.unwrap();
        assert_eq!((rest.events.len(), rest.more), (2, false), "{backend}");
        let none = store.read_domain_page("test", ("a", 8), 100, usize::MAX).await.unwrap();
        assert_eq!((none.events.len(), none.more), (0, false), "{backend}");
        let counted = store.read_domain_page("test", ("", 0), 3, usize::MAX).await.unwrap();
        assert_eq!((counted.events.len(), counted.more), (3, true), "{backend}: a full page may have more");
    }
}
