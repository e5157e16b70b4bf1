//! # cairn-sdk: write Cairn domain plugins in plain Rust
//!
//! A Cairn domain is a set of **aggregates**: types that fold their stream's past events into a
//! state ([`Aggregate::apply`]) and decide what a command means for that state
//! ([`Aggregate::decide`]). The host owns every side effect: it loads the history, calls your
//! decision once per command, and appends the events you return atomically.
//!
//! ```
//! use cairn_sdk::{Aggregate, CommandSpec, IdSource, Rejection};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! #[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
//! pub enum CounterCommand { Increment { by: u32 } }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(tag = "type", content = "data")]
//! pub enum CounterEvent { Incremented { by: u32 } }
//!
//! #[derive(Default, Serialize, Deserialize)]
//! pub struct Counter { total: u64 }
//!
//! impl Aggregate for Counter {
//!     const NAME: &'static str = "counter";
//!     const COMMANDS: &'static [CommandSpec] =
//!         &[CommandSpec::new("increment", IdSource::Field("counter_id"), "Adds to a counter")];
//!     const EVENT_TYPES: &'static [&'static str] = &["Incremented"];
//!     type Command = CounterCommand;
//!     type Event = CounterEvent;
//!
//!     fn apply(&mut self, event: CounterEvent) {
//!         match event { CounterEvent::Incremented { by } => self.total += u64::from(by) }
//!     }
//!     fn decide(&self, _id: &str, command: CounterCommand) -> Result<Vec<CounterEvent>, Rejection> {
//!         match command { CounterCommand::Increment { by } => Ok(vec![CounterEvent::Incremented { by }]) }
//!     }
//! }
//!
//! cairn_sdk::export_domain! { name: "counters", description: "Counts things.", aggregates: [Counter] }
//! ```
//!
//! The serde attributes are the contract: commands are an enum **adjacently tagged** with
//! `command`/`payload` and kebab-case names (the name is the URL segment clients post to), events
//! are an enum adjacently tagged with `type`/`data` (the variant name is the stored event type).
//!
//! The read side lives in [`read_side`]: [`Projector`]s turn events into JSON documents of a
//! [`ReadModel`], and [`Query`]s answer named questions over them ([`Find`] builds the searches).
//! List them in [`export_domain!`] after the aggregates (`projectors: [..], queries: [..]`).
//!
//! A [`CommandHandler`] may call outside services the operator configured through the host's
//! gateway: `work.gateway().call("rates", GatewayRequest::get("/rates?from=GB"))` (see
//! [`gateway`]); tests script the answers with [`testing::FakeGateway`].
//!
//! Build the crate as a `cdylib` for `wasm32-wasip2` and you have a component the host loads.
//! Test it natively with [`testing::given`], [`testing::project`] and [`testing::query`]: no
//! wasm, no host.

pub mod cache;
pub mod dispatch;
mod export;
pub mod gateway;
pub mod log;
pub mod params;
pub mod read_model;
pub mod read_side;
mod rejection;
pub mod testing;
mod unit_of_work;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

pub use cache::{Cache, CacheBackend, CacheError, CacheLookup};
pub use gateway::{Gateway, GatewayBackend, GatewayError, GatewayRequest, GatewayResponse};
pub use read_model::{
    Direction, Document, Find, MemoryReadModel, Page, ReadModel, ReadModelError, ReadModelExt, ReadModelRead,
    ReadModelReadExt,
};
pub use read_side::{ProjectError, Projector, Query, QueryError, Recorded};
pub use rejection::{FieldError, Rejection, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use unit_of_work::{EventStoreBackend, Expected, HandlerError, StoreError, UnitOfWork};

/// An aggregate: a consistency boundary whose state is the fold of its own stream.
///
/// `Default` is the state before the first event. `Serialize` and `Deserialize` let the host keep
/// the folded state between commands (in memory and as snapshots, only ever handed back to the
/// same build of the plugin) and show it (`GET /v1/domains/{d}/aggregates/{aggregate}/{id}`).
/// The state must survive that round trip: a field that [`Aggregate::decide`] reads must not be
/// `#[serde(skip)]`, or a command decided on a kept state would see its default.
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    /// The aggregate type, kebab-case (`carrier`). Its streams are named `<NAME>-<id>`.
    const NAME: &'static str;
    /// The commands this aggregate decides.
    const COMMANDS: &'static [CommandSpec];
    /// Every event type [`Aggregate::Event`] serializes to.
    const EVENT_TYPES: &'static [&'static str];
    /// Tolerant reader: when true, folding skips event types missing from
    /// [`Aggregate::EVENT_TYPES`] (written by a later version of the plugin), so rolling back to
    /// this version keeps every stream readable. When false (the default) such an event is an
    /// error, and the host refuses to activate a version that cannot fold existing streams.
    const IGNORE_UNKNOWN_EVENTS: bool = false;
    /// The command enum, `#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]`.
    type Command: DeserializeOwned;
    /// The event enum, `#[serde(tag = "type", content = "data")]`.
    type Event: Serialize + DeserializeOwned;

    /// Evolves the state by one past event. Must not fail: an event is a fact.
    fn apply(&mut self, event: Self::Event);

    /// Decides what `command` means for the aggregate `id` in its current state: the new events,
    /// or a [`Rejection`] that says why not.
    fn decide(&self, id: &str, command: Self::Command) -> Result<Vec<Self::Event>, Rejection>;
}

/// Describes one command for the host's router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The command's name, kebab-case, as in the command enum's serde tag.
    pub name: &'static str,
    /// Where the host finds the (primary) aggregate id.
    pub id: IdSource,
    /// One sentence for the API's documentation.
    pub description: &'static str,
    /// For a handler's command: its primary aggregate (an aggregate's own commands leave it
    /// `None`: the aggregate is the one that lists them).
    pub handled_for: Option<&'static str>,
}

impl CommandSpec {
    /// An aggregate's command named `name` whose aggregate id comes from `id`.
    pub const fn new(name: &'static str, id: IdSource, description: &'static str) -> Self {
        Self { name, id, description, handled_for: None }
    }

    /// A command handler's command; `aggregate` is its primary aggregate (the stream the HTTP
    /// answer reports first, `<aggregate>-<id>`).
    pub const fn handled(name: &'static str, aggregate: &'static str, id: IdSource, description: &'static str) -> Self {
        Self { name, id, description, handled_for: Some(aggregate) }
    }
}

/// A command handler: a unit of work over several streams of the domain. It reads and appends
/// through a [`UnitOfWork`] (usually by running aggregates' own rules with
/// [`UnitOfWork::execute`]); the host commits everything it appended atomically when `handle`
/// returns `Ok`, nothing otherwise, and runs it again on a version conflict. Only handlers may
/// call outside services, through [`UnitOfWork::gateway`].
pub trait CommandHandler: Default {
    /// The commands it handles (built with [`CommandSpec::handled`]).
    const COMMANDS: &'static [CommandSpec];
    /// The command enum, `#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]`.
    type Command: DeserializeOwned;

    /// Runs `command`; `id` is the primary aggregate's id.
    fn handle(&self, work: &mut UnitOfWork<'_>, id: &str, command: Self::Command) -> Result<(), HandlerError>;
}

/// How the host finds the aggregate id of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// A top-level field of the command payload (a string or a number).
    Field(&'static str),
    /// The host mints a fresh UUIDv7: the command creates a new aggregate.
    Minted,
}

/// A domain's description, as the `describe` export reports it. Built by [`export_domain!`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    /// The domain's name, kebab-case.
    pub name: String,
    /// The plugin's semantic version.
    pub version: String,
    /// One paragraph for operators.
    pub description: String,
    /// Aggregate type names.
    pub aggregates: Vec<String>,
    /// Every command with its aggregate.
    pub commands: Vec<(String, CommandSpec)>,
    /// Every event type.
    pub event_types: Vec<String>,
    /// Extra capabilities asked for.
    pub capabilities: Vec<String>,
}
