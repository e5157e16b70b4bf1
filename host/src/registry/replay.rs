//! Shadow replay: before a version goes live, fold the domain's existing streams through it.
//! Any stream it cannot fold (a trap, an unknown event type, bad data, an aggregate it no longer
//! has) is named in the report, and the activation is refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bindings::aggregate::DecideError;
use crate::bindings::types::RecordedEvent;
use crate::runtime::Plugin;
use crate::store::{EventStore, Snapshot, StoreError, StoredEvent};

/// How much of the domain a replay reads.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// Most streams folded (the first ones in name order).
    pub max_streams: usize,
    /// Time budget; streams not reached by then are reported as not checked.
    pub budget: Duration,
    /// Longest history folded (`limits.max_read_mib`): a longer stream is not loaded (commands
    /// on it are refused as `history-too-large` by any version) and is counted as too large.
    pub max_stream_bytes: usize,
    /// A candidate that keeps state stores a snapshot of each stream at least this long, under
    /// its own digest, so its first commands after activation fold no history
    /// (`aggregates.snapshot_every`; 0: none).
    pub snapshot_every: u64,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        Self {
            max_streams: 10_000,
            budget: Duration::from_secs(30),
            max_stream_bytes: 64 << 20,
            snapshot_every: crate::engine::command::DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

/// Snapshots written per store call.
const SNAPSHOTS_PER_WRITE: usize = 100;

/// Most failures listed in a report.
const MAX_FAILURES: usize = 50;
/// Most events and bytes read per page: each page is sized in the database before it is loaded
/// (see [`crate::store::pages`]), so a domain whose events grow is never loaded thousands of
/// large events at a time.
const MAX_PAGE: u32 = 5_000;
const PAGE_BYTES: usize = 4 << 20;

/// What a replay found.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    /// Streams folded.
    pub streams_checked: usize,
    /// Events folded.
    pub events_folded: u64,
    /// Streams whose history is over the read bound (not folded).
    pub streams_too_large: usize,
    /// Streams that failed, with why (at most 50).
    pub failures: Vec<ReplayFailure>,
    /// False when the stream cap or the time budget stopped the replay before the end.
    pub complete: bool,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
}

/// One stream the candidate could not fold.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayFailure {
    /// The stream.
    pub stream: String,
    /// Why.
    pub error: String,
}

impl ReplayReport {
    /// True when no stream failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Folds the candidate's domain's streams through `candidate`, reading the domain's events in
/// one keyset-paginated pass (stream, version) rather than one query per stream.
pub async fn shadow_replay(
    events: &dyn EventStore,
    candidate: &Arc<Plugin>,
    settings: &ReplaySettings,
) -> Result<ReplayReport, StoreError> {
    let started = Instant::now();
    let domain = candidate.domain().to_string();
    let mut report = ReplayReport { complete: true, ..ReplayReport::default() };
    let mut current = Stream::default();
    let mut pages = DomainPages::new(&domain, PAGE_BYTES);
    let mut snapshots = Vec::new();
    while let Some(page) = pages.next(events).await? {
        for event in page {
            if current.name.as_deref().is_some_and(|name| name != event.stream) {
                let stream = std::mem::take(&mut current);
                if !check(candidate, stream, settings, started, &mut report, &mut snapshots).await {
                    save(events, std::mem::take(&mut snapshots)).await;
                    report.elapsed_ms = started.elapsed().as_millis() as u64;
                    return Ok(report);
                }
                if snapshots.len() >= SNAPSHOTS_PER_WRITE {
                    save(events, std::mem::take(&mut snapshots)).await;
                }
            }
            current.push(event, settings.max_stream_bytes);
        }
    }
    if current.name.is_some() {
        check(candidate, current, settings, started, &mut report, &mut snapshots).await;
    }
    save(events, snapshots).await;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Stores the candidate's snapshots. They only spare folding later: a failure is logged, and the
/// streams fold from their history until their next snapshot.
async fn save(events: &dyn EventStore, snapshots: Vec<Snapshot>) {
    if snapshots.is_empty() {
        return;
    }
    let count = snapshots.len();
    if let Err(error) = events.save_snapshots(snapshots).await {
        tracing::warn!(%error, count, "shadow replay could not store its snapshots");
    }
}

/// A domain's events in (stream, version) order, one byte-bounded page at a time.
struct DomainPages {
    domain: String,
    after: (String, u64),
    max_bytes: usize,
    done: bool,
}

impl DomainPages {
    fn new(domain: &str, max_bytes: usize) -> Self {
        Self { domain: domain.to_string(), after: (String::new(), 0), max_bytes, done: false }
    }

    /// The next page: at most `max_bytes` of events, or one larger event; `None` at the end.
    async fn next(&mut self, events: &dyn EventStore) -> Result<Option<Vec<StoredEvent>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let after = (self.after.0.as_str(), self.after.1);
        let page = events.read_domain_page(&self.domain, after, MAX_PAGE, self.max_bytes).await?;
        self.done = !page.more;
        match page.events.last() {
            Some(last) => self.after = (last.stream.clone(), last.version),
            None => return Ok(None),
        }
        Ok(Some(page.events))
    }
}

/// One stream's history as it is read, dropped once it passes the read bound.
#[derive(Default)]
struct Stream {
    name: Option<String>,
    history: Vec<StoredEvent>,
    bytes: usize,
    too_large: bool,
}

impl Stream {
    fn push(&mut self, event: StoredEvent, max_bytes: usize) {
        self.name.get_or_insert_with(|| event.stream.clone());
        if self.too_large {
            return;
        }
        self.bytes += event.data.len() + event.metadata.len();
        if self.bytes > max_bytes {
            self.too_large = true;
            self.history = Vec::new();
            return;
        }
        self.history.push(event);
    }
}

/// Folds one whole stream into the report; false once the stream cap or the budget is reached.
async fn check(
    candidate: &Arc<Plugin>,
    stream: Stream,
    settings: &ReplaySettings,
    started: Instant,
    report: &mut ReplayReport,
    snapshots: &mut Vec<Snapshot>,
) -> bool {
    if report.streams_checked >= settings.max_streams || started.elapsed() > settings.budget {
        report.complete = false;
        return false;
    }
    if stream.too_large {
        report.streams_too_large += 1;
        return true;
    }
    let history = stream.history;
    let first = &history[0];
    let (domain, stream) = (first.domain.clone(), first.stream.clone());
    let version = history.last().map_or(0, |e| e.version);
    report.streams_checked += 1;
    report.events_folded += history.len() as u64;
    match fold_one(candidate, &stream, history).await {
        Ok(state) => {
            let every = settings.snapshot_every;
            if candidate.keeps_state() && every > 0 && version >= every {
                let digest = candidate.digest.clone();
                snapshots.push(Snapshot { domain, stream, digest, version, state });
            }
        }
        Err(error) if report.failures.len() < MAX_FAILURES => report.failures.push(ReplayFailure { stream, error }),
        Err(_) => {}
    }
    true
}

/// Folds one stream through the candidate (its `aggregate-state.fold` when it keeps state):
/// the state, or why it cannot be folded.
async fn fold_one(
    candidate: &Arc<Plugin>,
    stream: &str,
    history: Vec<crate::store::StoredEvent>,
) -> Result<String, String> {
    let aggregate = candidate
        .info
        .aggregates
        .iter()
        .filter(|a| stream.starts_with(&format!("{a}-")))
        .max_by_key(|a| a.len())
        .cloned()
        .ok_or_else(|| format!("no aggregate of version {} owns this stream", candidate.version()))?;
    let id = stream[aggregate.len() + 1..].to_string();
    let history: Vec<RecordedEvent> =
        history.into_iter().map(crate::capabilities::event_store::recorded_event).collect();
    let plugin = candidate.clone();
    let span = tracing::Span::current();
    let outcome =
        tokio::task::spawn_blocking(move || span.in_scope(|| plugin.fold_on_state(&aggregate, &id, None, &history)))
            .await
            .map_err(|e| format!("the fold task failed: {e}"))?;
    match outcome {
        Ok(Ok(state)) => Ok(state),
        Ok(Err(DecideError::CorruptHistory(message) | DecideError::UnknownCommand(message))) => Err(message),
        Ok(Err(DecideError::Rejected(rejection))) => Err(format!("fold was rejected: {}", rejection.message)),
        Err(fault) => Err(fault.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stream: &str, version: u64, bytes: usize) -> StoredEvent {
        StoredEvent {
            domain: "d".into(),
            position: version,
            stream: stream.into(),
            version,
            event_type: "Noted".into(),
            data: "x".repeat(bytes),
            metadata: String::new(),
            recorded_at_micros: 0,
        }
    }

    #[test]
    fn a_stream_over_the_read_bound_is_dropped_not_held() {
        let mut stream = Stream::default();
        for version in 1..=3 {
            stream.push(event("big", version, 400), 1_000);
        }
        assert!(stream.too_large && stream.history.is_empty(), "dropped once past the bound");
        assert_eq!(stream.name.as_deref(), Some("big"));
        let mut small = Stream::default();
        small.push(event("small", 1, 400), 1_000);
        small.push(event("small", 2, 400), 1_000);
        assert!(!small.too_large);
        assert_eq!(small.history.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn domain_pages_of_tiny_then_large_events_stay_within_their_bytes() {
        use crate::store::pages_tests::{LARGE, Weighing, backends, tiny_then_large};
        for (backend, store, _dir) in backends("replay_domain_pages").await {
            tiny_then_large(store.as_ref(), "a-1", 20, 0).await;
            tiny_then_large(store.as_ref(), "b-1", 0, 300).await;
            let weighing = Weighing::new(store);
            let page_bytes = 64 * 1024;
            let mut pages = DomainPages::new("test", page_bytes);
            let mut seen = Vec::new();
            while let Some(page) = pages.next(&weighing).await.unwrap() {
                let bytes: usize = page.iter().map(|e| e.data.len() + e.metadata.len()).sum();
                assert!(bytes <= page_bytes + LARGE, "{backend}: a page of {bytes} bytes");
                seen.extend(page.into_iter().map(|e| (e.stream, e.version)));
            }
            let largest = weighing.largest_call.load(std::sync::atomic::Ordering::Relaxed);
            assert!(largest <= page_bytes + LARGE, "{backend}: one read loaded {largest} bytes");
            let expected: Vec<(String, u64)> =
                (1..=20).map(|v| ("a-1".to_string(), v)).chain((1..=300).map(|v| ("b-1".to_string(), v))).collect();
            assert_eq!(seen, expected, "{backend}: every event once, in order");
        }
    }
}
