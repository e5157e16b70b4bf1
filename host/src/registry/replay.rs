//! Shadow replay: before a version goes live, fold the domain's existing streams through it.
//! Any stream it cannot fold (a trap, an unknown event type, bad data, an aggregate it no longer
//! has) is named in the report, and the activation is refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bindings::aggregate::DecideError;
use crate::bindings::types::RecordedEvent;
use crate::runtime::Plugin;
use crate::store::{EventStore, StoreError, StoredEvent};

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
}

impl Default for ReplaySettings {
    fn default() -> Self {
        Self { max_streams: 10_000, budget: Duration::from_secs(30), max_stream_bytes: 64 << 20 }
    }
}

/// Most failures listed in a report.
const MAX_FAILURES: usize = 50;
/// Fewest and most events read per page: pages are sized by what the events so far weigh, to
/// about [`PAGE_BYTES`] each, so a domain of large events is never loaded thousands at a time.
const MIN_PAGE: u32 = 4;
const MAX_PAGE: u32 = 5_000;
const PAGE_BYTES: u64 = 4 << 20;

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
    let mut after = (String::new(), 0u64);
    let (mut read_events, mut read_bytes) = (0u64, 0u64);
    loop {
        let average = read_bytes.checked_div(read_events).map_or(u64::MAX, |a| a.max(1));
        let page_size = (PAGE_BYTES / average).clamp(u64::from(MIN_PAGE), u64::from(MAX_PAGE)) as u32;
        let page = events.read_domain(&domain, (&after.0, after.1), page_size).await?;
        let exhausted = page.len() < page_size as usize;
        if let Some(last) = page.last() {
            after = (last.stream.clone(), last.version);
        }
        for event in page {
            let size = (event.data.len() + event.metadata.len()) as u64;
            (read_events, read_bytes) = (read_events + 1, read_bytes + size);
            if current.name.as_deref().is_some_and(|name| name != event.stream) {
                let stream = std::mem::take(&mut current);
                if !check(candidate, stream, settings, started, &mut report).await {
                    report.elapsed_ms = started.elapsed().as_millis() as u64;
                    return Ok(report);
                }
            }
            current.push(event, settings.max_stream_bytes);
        }
        if exhausted {
            break;
        }
    }
    if current.name.is_some() {
        check(candidate, current, settings, started, &mut report).await;
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
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
    let stream = history[0].stream.clone();
    report.streams_checked += 1;
    report.events_folded += history.len() as u64;
    if let Err(error) = fold_one(candidate, &stream, history).await
        && report.failures.len() < MAX_FAILURES
    {
        report.failures.push(ReplayFailure { stream, error });
    }
    true
}

async fn fold_one(
    candidate: &Arc<Plugin>,
    stream: &str,
    history: Vec<crate::store::StoredEvent>,
) -> Result<(), String> {
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
    let outcome = tokio::task::spawn_blocking(move || plugin.fold(&aggregate, &id, &history))
        .await
        .map_err(|e| format!("the fold task failed: {e}"))?;
    match outcome {
        Ok(Ok(_state)) => Ok(()),
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
}
