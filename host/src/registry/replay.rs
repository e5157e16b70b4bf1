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
}

/// Most failures listed in a report.
const MAX_FAILURES: usize = 50;
/// Events read per page.
const PAGE: u32 = 5_000;

/// What a replay found.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    /// Streams folded.
    pub streams_checked: usize,
    /// Events folded.
    pub events_folded: u64,
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
    let mut current: Vec<StoredEvent> = Vec::new();
    let mut after = (String::new(), 0u64);
    loop {
        let page = events.read_domain(&domain, (&after.0, after.1), PAGE).await?;
        let exhausted = page.len() < PAGE as usize;
        if let Some(last) = page.last() {
            after = (last.stream.clone(), last.version);
        }
        for event in page {
            if current.first().is_some_and(|first| first.stream != event.stream) {
                let history = std::mem::take(&mut current);
                if !check(candidate, history, settings, started, &mut report).await {
                    report.elapsed_ms = started.elapsed().as_millis() as u64;
                    return Ok(report);
                }
            }
            current.push(event);
        }
        if exhausted {
            break;
        }
    }
    if !current.is_empty() {
        check(candidate, current, settings, started, &mut report).await;
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Folds one whole stream into the report; false once the stream cap or the budget is reached.
async fn check(
    candidate: &Arc<Plugin>,
    history: Vec<StoredEvent>,
    settings: &ReplaySettings,
    started: Instant,
    report: &mut ReplayReport,
) -> bool {
    if report.streams_checked >= settings.max_streams || started.elapsed() > settings.budget {
        report.complete = false;
        return false;
    }
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
