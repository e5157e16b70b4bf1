//! One attempt of an aggregate command: where its decision starts, the plugin's decision, and
//! the append it plans.
//!
//! A plugin built against `cairn:domain@0.1.2` decides on a **state**: the one the host kept
//! for the stream (see [`super::state_cache`]), else the newest snapshot its own build stored plus
//! the events after it, else the initial state plus the whole history. It answers with the new
//! events and the state they lead to, which the host keeps once they commit. An older plugin
//! gets the stream's whole history on every command, as before.
//!
//! A kept state may be stale (another host or a command handler appended meanwhile). An append
//! on it expects its exact version, so a stale success turns into a conflict; a rejection or an
//! empty decision made on it is checked against the stream's head, and decided again from the
//! store when the stream moved. A kept state or snapshot the plugin cannot read back (it says
//! `corrupt-history`) is dropped and the stream folded from its first event.

use std::sync::Arc;

use super::command::{CommandEngine, CommandRequest};
use super::state_cache::KeptState;
use super::{CommandError, calls};
use crate::bindings::aggregate::{DecideError, DecideRequest};
use crate::bindings::aggregate_state::StateRequest;
use crate::capabilities::event_store::{BufferedAppend, recorded_event, uncommitted};
use crate::runtime::Plugin;
use crate::store::{ExpectedVersion, Snapshot, StoredEvent};

/// "The newest snapshot", as a version bound every backend stores as a signed 64-bit integer.
const LATEST: u64 = i64::MAX as u64;

/// What one attempt of an aggregate command decided.
pub(super) struct Decided {
    /// The append it plans (none when the decision produced no event).
    pub(super) appends: Vec<BufferedAppend>,
    /// The stream's version the decision was made on.
    pub(super) version: u64,
    /// The state after the planned events, to keep once they commit (plugins that keep state).
    pub(super) kept: Option<KeptState>,
    /// The snapshot to store with the planned events, when one is due.
    pub(super) snapshot: Option<Snapshot>,
}

/// Where a decision starts, from the cheapest to the surest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The state kept in memory (no store read).
    Kept,
    /// The newest snapshot of the plugin's build and the events after it.
    Snapshot,
    /// The initial state and every event of the stream.
    History,
}

/// A decision's starting point.
struct Start {
    source: Source,
    state: Option<Arc<str>>,
    tail: Vec<StoredEvent>,
    /// The stream's version the state and tail reach.
    version: u64,
    snapshot_version: u64,
    /// Whether events were folded page by page to get there (then a snapshot is due at once).
    paged: bool,
}

impl CommandEngine {
    /// One attempt of an aggregate command on `<aggregate>-<aggregate_id>`, on top of what
    /// earlier commands of its batch appended (`prior`). `stale` is a version an earlier attempt
    /// conflicted on: a state kept at or below it is not used.
    pub(super) async fn decide(
        &self,
        plugin: &Arc<Plugin>,
        aggregate: &str,
        aggregate_id: &str,
        request: &CommandRequest,
        prior: &[BufferedAppend],
        stale: Option<u64>,
    ) -> Result<Decided, CommandError> {
        let stream = format!("{aggregate}-{aggregate_id}");
        // The slot first: commands queued on a busy domain hold no history in memory.
        let slot = self.budgets.acquire(plugin).await?;
        let names = (request.domain.as_str(), stream.as_str(), aggregate, aggregate_id);
        let decided = if plugin.keeps_state() {
            self.decide_on_state(plugin, names, request, prior, stale).await
        } else {
            self.decide_on_history(plugin, names, request, prior).await
        };
        drop(slot);
        decided
    }

    /// The 0.1.0/0.1.1 path: the whole history into `aggregate.decide`.
    async fn decide_on_history(
        &self,
        plugin: &Arc<Plugin>,
        names: Names<'_>,
        request: &CommandRequest,
        prior: &[BufferedAppend],
    ) -> Result<Decided, CommandError> {
        let (_, stream, aggregate, aggregate_id) = names;
        let start = self.start(plugin, names, prior, Source::History, None).await?;
        let decide = DecideRequest {
            aggregate: aggregate.to_string(),
            aggregate_id: aggregate_id.to_string(),
            command: request.command.clone(),
            payload: request.payload.clone(),
            history: start.tail.into_iter().map(recorded_event).collect(),
        };
        let events = calls::decide_off_executor(plugin.clone(), decide).await?;
        let appends = planned(stream, start.version, events);
        Ok(Decided { appends, version: start.version, kept: None, snapshot: None })
    }

    /// The 0.1.2 path: a state and the events after it into `aggregate-state.decide`.
    async fn decide_on_state(
        &self,
        plugin: &Arc<Plugin>,
        names: Names<'_>,
        request: &CommandRequest,
        prior: &[BufferedAppend],
        stale: Option<u64>,
    ) -> Result<Decided, CommandError> {
        let (domain, stream, aggregate, aggregate_id) = names;
        let mut source = Source::Kept;
        loop {
            let start = self.start(plugin, names, prior, source, stale).await?;
            let state_request = StateRequest {
                aggregate: aggregate.to_string(),
                aggregate_id: aggregate_id.to_string(),
                command: request.command.clone(),
                payload: request.payload.clone(),
                state: start.state.as_deref().map(str::to_string),
                tail: start.tail.into_iter().map(recorded_event).collect(),
            };
            let decided = calls::decide_on_state_off_executor(plugin.clone(), state_request).await?;
            let empty = matches!(&decided, Ok(decision) if decision.events.is_empty());
            if (empty || matches!(decided, Err(DecideError::Rejected(_))))
                && start.source == Source::Kept
                && self.store.stream_head(domain, stream).await? != start.version
            {
                // Decided on a state another writer has moved past: decide again on the store's.
                self.states.forget(domain, stream);
                source = Source::Snapshot;
                continue;
            }
            match decided {
                Ok(decision) => {
                    let after = start.version + decision.events.len() as u64;
                    // A snapshot rides with the events that reach its version; one is due every
                    // `snapshot_every` events, and at once after a fold page by page.
                    let due = self.snapshot_every > 0
                        && !decision.events.is_empty()
                        && (start.paged || after >= start.snapshot_version + self.snapshot_every);
                    let snapshot = due.then(|| Snapshot {
                        domain: domain.to_string(),
                        stream: stream.to_string(),
                        digest: plugin.digest.clone(),
                        version: after,
                        state: decision.state.clone(),
                    });
                    let kept = KeptState {
                        digest: Arc::from(plugin.digest.as_str()),
                        version: after,
                        state: Arc::from(decision.state),
                        snapshot_version: if due { after } else { start.snapshot_version },
                    };
                    let appends = planned(stream, start.version, decision.events);
                    return Ok(Decided { appends, version: start.version, kept: Some(kept), snapshot });
                }
                Err(DecideError::CorruptHistory(message)) if start.state.is_some() => {
                    tracing::warn!(
                        domain, stream, %message,
                        "the plugin could not read back its kept state or snapshot; folding the stream from its first event"
                    );
                    self.states.forget(domain, stream);
                    source = Source::History;
                }
                Err(error) => return Err(calls::decide_error(plugin, error)),
            }
        }
    }

    /// Loads where a decision starts: from `source` when it has something, else the next one.
    /// For a plugin that keeps state, events beyond the read bound (`limits.max_read_mib`) are
    /// folded into the state a bounded page at a time, so no stream is too long to decide on;
    /// an older plugin needs the whole history at once and is refused one over the bound.
    async fn start(
        &self,
        plugin: &Arc<Plugin>,
        names: Names<'_>,
        prior: &[BufferedAppend],
        source: Source,
        stale: Option<u64>,
    ) -> Result<Start, CommandError> {
        let (domain, stream, ..) = names;
        let earlier = prior.iter().find(|a| a.stream == stream);
        if source == Source::Kept && earlier.is_none() {
            let kept = self.states.get(domain, stream, &plugin.digest).filter(|k| stale.is_none_or(|v| k.version > v));
            if let Some(kept) = kept {
                return Ok(Start {
                    source,
                    state: Some(kept.state.clone()),
                    tail: Vec::new(),
                    version: kept.version,
                    snapshot_version: kept.snapshot_version,
                    paged: false,
                });
            }
        }
        let snapshot = match source {
            Source::Kept | Source::Snapshot if self.snapshot_every > 0 && plugin.keeps_state() => {
                self.store.load_snapshot(domain, stream, &plugin.digest, LATEST).await?
            }
            _ => None,
        };
        let snapshot_version = snapshot.as_ref().map_or(0, |s| s.version);
        let source = if snapshot.is_some() { Source::Snapshot } else { Source::History };
        let state = snapshot.map(|s| Arc::<str>::from(s.state));
        let (state, mut tail, paged) = self.read_folding(plugin, names, state, snapshot_version + 1, None).await?;
        if let Some(earlier) = earlier {
            let versions = earlier.first_version..;
            tail.extend(versions.zip(&earlier.events).map(|(v, e)| uncommitted(domain, stream, v, e)));
        }
        let version = tail.last().map_or(snapshot_version, |e| e.version);
        Ok(Start { source, state, tail, version, snapshot_version, paged })
    }

    /// The events of a stream from version `from` to `until` (the head for `None`), for a
    /// decision or a fold on top of `state`. For a plugin that keeps state, what does not fit
    /// one read (`limits.max_read_mib`) is folded into the state a bounded page at a time, and
    /// the last page is the tail (the flag says so); an older plugin needs the whole history at
    /// once and is refused one over the bound.
    pub(super) async fn read_folding(
        &self,
        plugin: &Arc<Plugin>,
        (domain, stream, aggregate, aggregate_id): Names<'_>,
        mut state: Option<Arc<str>>,
        mut from: u64,
        until: Option<u64>,
    ) -> Result<(Option<Arc<str>>, Vec<StoredEvent>, bool), CommandError> {
        let mut paged = false;
        loop {
            let count =
                until.map_or(u32::MAX, |until| u32::try_from((until + 1).saturating_sub(from)).unwrap_or(u32::MAX));
            let read = self.store.read_stream_bounded(domain, stream, from, count, self.max_read_bytes).await?;
            if !read.cut {
                return Ok((state, read.events, paged));
            }
            if !plugin.keeps_state() {
                let max_mib = self.max_read_bytes >> 20;
                return Err(CommandError::HistoryTooLarge { stream: stream.to_string(), max_mib });
            }
            from = read.events.last().map_or(from, |e| e.version + 1);
            let page: Vec<_> = read.events.into_iter().map(recorded_event).collect();
            let (aggregate, id, start) = (aggregate.to_string(), aggregate_id.to_string(), state.take());
            let folded = calls::off_executor(plugin.clone(), move |plugin| {
                plugin.fold_on_state(&aggregate, &id, start.as_deref(), &page)
            })
            .await??;
            state = Some(Arc::from(folded.map_err(|error| calls::decide_error(plugin, error))?));
            paged = true;
        }
    }
}

/// (domain, stream, aggregate, aggregate id).
pub(super) type Names<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The append of `events` on `stream` at `version` (none for no events).
fn planned(stream: &str, version: u64, events: Vec<crate::bindings::types::NewEvent>) -> Vec<BufferedAppend> {
    if events.is_empty() {
        return Vec::new();
    }
    vec![BufferedAppend {
        stream: stream.to_string(),
        expected: ExpectedVersion::Exact(version),
        first_version: version + 1,
        events,
    }]
}
