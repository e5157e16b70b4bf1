//! `cairn:domain/event-store` for command handlers: reads of the domain's own streams and
//! appends buffered in a [`UnitOfWork`], which the engine commits atomically when the handler
//! returns. Outside a `handle` call (in `describe`, `decide`, `fold`) there is no unit of work and
//! every call answers `not-granted`.
//!
//! Host functions are synchronous (the plugin runs on a blocking thread); reads reach the async
//! store through the runtime handle the engine captured.

mod host;

use std::sync::Arc;

use crate::bindings::types::{NewEvent, RecordedEvent};
use crate::store::{EventStore, ExpectedVersion, StoredEvent};

/// Most events one `read-stream` call returns.
pub const MAX_READ: u32 = 10_000;

/// Most bytes of events one read loads unless configured (`limits.max_read_mib`).
pub const DEFAULT_MAX_READ_BYTES: usize = 64 << 20;

/// Appends buffered for one stream.
#[derive(Debug, Clone)]
pub struct BufferedAppend {
    /// The stream.
    pub stream: String,
    /// Checked at commit.
    pub expected: ExpectedVersion,
    /// Version of the first buffered event.
    pub first_version: u64,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

/// The reads and buffered appends of one `handle` call.
pub struct UnitOfWork {
    domain: String,
    store: Arc<dyn EventStore>,
    runtime: tokio::runtime::Handle,
    max_events: usize,
    max_read_bytes: usize,
    pub(crate) appends: Vec<BufferedAppend>,
    /// What earlier commands of the same batch appended.
    prior: Vec<BufferedAppend>,
    /// The stored head version of every stream this unit read.
    pub(crate) seen: std::collections::HashMap<String, u64>,
    /// The first stream a read had to cut at the read bound: the engine answers 422 whatever
    /// the handler made of the short page.
    pub(crate) read_cut: Option<String>,
    /// The last store failure a read met, so the engine can answer 503 rather than blame the plugin.
    pub(crate) store_failure: Option<String>,
    /// Gateway calls enqueued, committed with the appends (see `cairn:domain/gateway.enqueue`).
    pub(crate) outbox: Vec<crate::store::NewOutboxMessage>,
    /// The domain's aggregates: every stream a handler writes belongs to one of them.
    pub(crate) aggregates: Vec<String>,
    /// Longest stream name (`limits.max_stream_name_bytes`).
    pub(crate) max_stream_bytes: usize,
    /// Why the last stream name was refused, so the engine can answer 422 rather than blame the
    /// plugin (the name usually came from the client's payload).
    pub(crate) refused_stream: Option<String>,
}

/// The characters an aggregate id in a stream name a handler writes may use, besides letters
/// and digits of any script: no `/`, `\`, whitespace, control or invisible characters, so a
/// stream name is printable, path-safe and looks like what it is.
pub const STREAM_ID_PUNCTUATION: &str = "-_.:@+=~!$&'()*,;";

/// Checks a stream name a handler writes: `<aggregate>-<id>`, `<aggregate>` one of the domain's
/// aggregates and `<id>` letters, digits and [`STREAM_ID_PUNCTUATION`], at most `max_bytes` in
/// all. Shadow replay of the next version folds every stream through its aggregate, so a stream
/// no aggregate owns would keep the domain from ever being upgraded.
pub fn check_new_stream(stream: &str, aggregates: &[String], max_bytes: usize) -> Result<(), String> {
    let quoted = crate::text::quote(stream);
    if stream.len() > max_bytes {
        return Err(format!(
            "the stream name `{quoted}` is {} bytes long; at most {max_bytes} are accepted (limits.max_stream_name_bytes)",
            stream.len()
        ));
    }
    let owner = aggregates
        .iter()
        .filter(|a| stream.len() > a.len() + 1 && stream.starts_with(a.as_str()) && stream[a.len()..].starts_with('-'))
        .max_by_key(|a| a.len());
    let Some(owner) = owner else {
        return Err(format!(
            "the stream `{quoted}` belongs to none of the domain's aggregates: name it `<aggregate>-<id>` with one of {aggregates:?}"
        ));
    };
    let id = &stream[owner.len() + 1..];
    if let Some(bad) = id.chars().find(|c| !c.is_alphanumeric() && !STREAM_ID_PUNCTUATION.contains(*c)) {
        return Err(format!(
            "the stream `{quoted}` has the character {:?} in its id; ids are letters, digits and `{STREAM_ID_PUNCTUATION}`",
            bad
        ));
    }
    Ok(())
}

impl UnitOfWork {
    /// A unit of work over `domain`'s streams that may buffer at most `max_events` events.
    pub fn new(domain: &str, store: Arc<dyn EventStore>, runtime: tokio::runtime::Handle, max_events: usize) -> Self {
        Self {
            domain: domain.to_string(),
            store,
            runtime,
            max_events,
            max_read_bytes: DEFAULT_MAX_READ_BYTES,
            appends: Vec::new(),
            prior: Vec::new(),
            seen: Default::default(),
            read_cut: None,
            store_failure: None,
            outbox: Vec::new(),
            aggregates: Vec::new(),
            max_stream_bytes: 200,
            refused_stream: None,
        }
    }

    /// The streams this unit may write: those of `aggregates`, names of at most `max_bytes`.
    pub fn for_streams_of(mut self, aggregates: &[String], max_bytes: usize) -> Self {
        self.aggregates = aggregates.to_vec();
        self.max_stream_bytes = max_bytes;
        self
    }

    /// The buffered appends, one per stream, in first-append order, and the stored version of
    /// every stream the handler read.
    pub fn into_parts(
        self,
    ) -> (Vec<BufferedAppend>, std::collections::HashMap<String, u64>, Vec<crate::store::NewOutboxMessage>) {
        (self.appends, self.seen, self.outbox)
    }

    /// Why a stream name this unit tried to write was refused, if one was.
    pub fn refused_stream(&self) -> Option<&str> {
        self.refused_stream.as_deref()
    }

    /// The stream a read cut at the read bound, if any, and the bound in bytes.
    pub fn read_cut(&self) -> Option<(&str, usize)> {
        self.read_cut.as_deref().map(|stream| (stream, self.max_read_bytes))
    }

    /// The store failure a read met, if any.
    pub fn store_failure(&self) -> Option<&str> {
        self.store_failure.as_deref()
    }

    /// Events earlier commands of the same batch appended (not committed yet): reads see them
    /// after the stored ones, as if committed.
    pub fn with_prior(mut self, prior: Vec<BufferedAppend>) -> Self {
        self.prior = prior;
        self
    }

    /// Loads at most `bytes` of events per read (a read stops early; the handler reads on).
    pub fn with_max_read_bytes(mut self, bytes: usize) -> Self {
        self.max_read_bytes = bytes;
        self
    }

    /// Stored events of `stream` (at most `max`, and at most the read bound's bytes), then what
    /// earlier commands of the batch appended to it.
    fn stored(&mut self, stream: &str, from: u64, max: u32) -> Result<Vec<StoredEvent>, String> {
        let read = crate::capabilities::deadline::block_on_store(
            &self.runtime,
            self.store.read_stream_bounded(&self.domain, stream, from, max, self.max_read_bytes),
        )
        .map_err(|e| e.0)?;
        let mut events = read.events;
        if read.cut && self.read_cut.is_none() {
            self.read_cut = Some(stream.to_string());
        }
        // Cut by bytes: the batch's own events come only after every stored one.
        if let Some(prior) = self.prior.iter().find(|a| a.stream == stream).filter(|_| !read.cut) {
            for (i, event) in prior.events.iter().enumerate() {
                let version = prior.first_version + i as u64;
                if version >= from && events.len() < max as usize {
                    events.push(uncommitted(&self.domain, stream, version, event));
                }
            }
        }
        if let Some(last) = events.last() {
            let seen = self.seen.entry(stream.to_string()).or_default();
            *seen = (*seen).max(last.version);
        } else if from == 1 {
            self.seen.entry(stream.to_string()).or_default();
        }
        Ok(events)
    }

    /// The version of `stream` as this unit sees it (stored, then the batch's own events),
    /// without loading its events.
    fn head(&mut self, stream: &str) -> Result<u64, String> {
        let stored =
            crate::capabilities::deadline::block_on_store(&self.runtime, self.store.stream_head(&self.domain, stream))
                .map_err(|e| e.0)?;
        let prior =
            self.prior.iter().find(|a| a.stream == stream).map_or(0, |a| a.first_version + a.events.len() as u64 - 1);
        let head = stored.max(prior);
        let seen = self.seen.entry(stream.to_string()).or_default();
        *seen = (*seen).max(head);
        Ok(head)
    }

    fn buffered_count(&self) -> usize {
        self.appends.iter().map(|a| a.events.len()).sum()
    }
}

fn recorded(stream: &str, version: u64, event: &NewEvent) -> RecordedEvent {
    RecordedEvent {
        stream: stream.to_string(),
        version,
        global_position: 0,
        event_type: event.event_type.clone(),
        data: event.data.clone(),
        metadata: "{\"uncommitted\":true}".to_string(),
        recorded_at_micros: 0,
    }
}

/// An event appended earlier in the same batch, as a read sees it before the commit.
pub(crate) fn uncommitted(domain: &str, stream: &str, version: u64, event: &NewEvent) -> StoredEvent {
    StoredEvent {
        domain: domain.to_string(),
        stream: stream.to_string(),
        version,
        position: 0,
        event_type: event.event_type.clone(),
        data: event.data.clone(),
        metadata: "{\"uncommitted\":true}".to_string(),
        recorded_at_micros: 0,
    }
}

/// A stored event as the WIT contract hands it to a plugin.
pub(crate) fn recorded_event(e: StoredEvent) -> RecordedEvent {
    RecordedEvent {
        stream: e.stream,
        version: e.version,
        global_position: e.position,
        event_type: e.event_type,
        data: e.data,
        metadata: e.metadata,
        recorded_at_micros: e.recorded_at_micros,
    }
}

#[cfg(test)]
mod stream_name_tests {
    use super::check_new_stream;

    #[test]
    fn handlers_write_only_printable_streams_their_aggregates_own() {
        let aggregates = vec!["carrier".to_string(), "email-address".to_string()];
        for good in ["carrier-019aa3c5", "email-address-ops@acme.io", "carrier-Zoë_1", "email-address-a+b@x.io"] {
            assert!(check_new_stream(good, &aggregates, 200).is_ok(), "{good}");
        }
        for bad in [
            "../x",
            "/x",
            "x\u{200b}",
            "carrier-",
            "carrier-a/b",
            "carrier-a b",
            "carrier-x\u{200b}",
            "order-1",
            "carrier",
        ] {
            assert!(check_new_stream(bad, &aggregates, 200).is_err(), "{bad:?}");
        }
        let long = format!("carrier-{}", "x".repeat(10 << 20));
        let error = check_new_stream(&long, &aggregates, 200).expect_err("too long");
        assert!(error.len() < 300, "the error does not echo the name: {} bytes", error.len());
        assert!(error.contains("limits.max_stream_name_bytes"));
    }
}
