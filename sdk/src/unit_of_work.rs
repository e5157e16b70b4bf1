//! What a command handler works with: reads of the domain's streams and appends buffered by the
//! host until the handler returns. [`UnitOfWork::execute`] runs an aggregate's own rules (load,
//! fold, decide, append with the expected version), so handlers reuse them instead of appending
//! raw events. [`UnitOfWork::gateway`] calls outside services through the host.

use serde::Serialize;

use crate::dispatch::{self, NewEvent, RecordedEvent};
use crate::gateway::{Gateway, GatewayBackend};
use crate::{Aggregate, Rejection};

/// What an appender expects a stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Any version.
    Any,
    /// The stream must not exist.
    NoStream,
    /// The stream must exist.
    StreamExists,
    /// Exactly this version (0: no stream).
    Exact(u64),
}

/// The event store failed or refused (conflict, limit, not granted...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// Why a handler stopped: a rejection (the client's 422) or a store failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// The domain's rules refused the command.
    Rejected(Rejection),
    /// The store failed; the host decides what the client sees.
    Store(StoreError),
}

impl From<Rejection> for HandlerError {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(rejection)
    }
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Where a unit of work reads and appends: the host's event store in a component, an in-memory
/// one in [`crate::testing`].
pub trait EventStoreBackend {
    /// Up to `max` events of `stream` from version `from`, this unit's own appends included.
    fn read_stream(&mut self, stream: &str, from: u64, max: u32) -> Result<Vec<RecordedEvent>, StoreError>;
    /// Buffers `events` for `stream`; returns the version the stream will have.
    fn append(&mut self, stream: &str, expected: Expected, events: Vec<NewEvent>) -> Result<u64, StoreError>;
}

/// Events read per page when loading an aggregate.
const PAGE: u32 = 1_000;

/// A handler's view of the event store (and the gateway) for one command.
pub struct UnitOfWork<'a> {
    backend: &'a mut dyn EventStoreBackend,
    gateway: Option<&'a mut dyn GatewayBackend>,
    cache: Option<&'a mut dyn crate::cache::CacheBackend>,
}

impl<'a> UnitOfWork<'a> {
    /// A unit of work over `backend`; gateway calls go to the host (natively: all refused).
    pub fn new(backend: &'a mut dyn EventStoreBackend) -> Self {
        Self { backend, gateway: None, cache: None }
    }

    /// Sends this unit's gateway calls to `gateway` (in tests, a
    /// [`crate::testing::FakeGateway`]).
    pub fn with_gateway(mut self, gateway: &'a mut dyn GatewayBackend) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Calls to outside services: `work.gateway().call("rates", GatewayRequest::get("/rates"))`.
    /// The call happens now, while the handler runs (its outcome is not undone if the unit of
    /// work is not committed), so give writes an idempotency key; a re-run after a version
    /// conflict calls again.
    pub fn gateway(&mut self) -> Gateway<'_> {
        Gateway::new(match &mut self.gateway {
            Some(gateway) => Some(&mut **gateway),
            None => None,
        })
    }

    /// Sends this unit's cache calls to `cache` (natively the cache is otherwise always empty).
    pub fn with_cache(mut self, cache: &'a mut dyn crate::cache::CacheBackend) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The domain's cache: `work.cache().lookup(key)`, then `set` after a fill.
    pub fn cache(&mut self) -> crate::cache::Cache<'_> {
        crate::cache::Cache::new(match &mut self.cache {
            Some(cache) => Some(&mut **cache),
            None => None,
        })
    }

    /// Every event of `stream`, oldest first.
    pub fn read(&mut self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::new();
        loop {
            let page = self.backend.read_stream(stream, events.len() as u64 + 1, PAGE)?;
            let full = page.len() == PAGE as usize;
            events.extend(page);
            if !full {
                return Ok(events);
            }
        }
    }

    /// The aggregate `id` of type `A`, folded, with its stream's version (0: it does not exist).
    pub fn load<A: Aggregate>(&mut self, id: &str) -> Result<(A, u64), HandlerError> {
        let history = self.read(&stream_of::<A>(id))?;
        let version = history.last().map_or(0, |e| e.version);
        let state = dispatch::fold::<A>(&history)
            .map_err(|e| HandlerError::Store(StoreError(format!("cannot fold `{}`: {e:?}", stream_of::<A>(id)))))?;
        Ok((state, version))
    }

    /// Runs `A`'s own `decide` on aggregate `id` and appends what it decided, expecting the
    /// version it loaded. Returns the new events (empty: nothing to do).
    pub fn execute<A: Aggregate>(&mut self, id: &str, command: A::Command) -> Result<Vec<A::Event>, HandlerError> {
        let (state, version) = self.load::<A>(id)?;
        let events = state.decide(id, command)?;
        if !events.is_empty() {
            self.append::<A>(id, Expected::Exact(version), &events)?;
        }
        Ok(events)
    }

    /// Appends `events` to aggregate `id`'s stream.
    pub fn append<A: Aggregate>(
        &mut self,
        id: &str,
        expected: Expected,
        events: &[A::Event],
    ) -> Result<u64, HandlerError>
    where
        A::Event: Serialize,
    {
        let encoded = events
            .iter()
            .map(dispatch::encode_event)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HandlerError::Store(StoreError(format!("{e:?}"))))?;
        Ok(self.backend.append(&stream_of::<A>(id), expected, encoded)?)
    }
}

/// The stream of aggregate `id` of type `A`: `<A::NAME>-<id>`.
pub fn stream_of<A: Aggregate>(id: &str) -> String {
    format!("{}-{id}", A::NAME)
}
