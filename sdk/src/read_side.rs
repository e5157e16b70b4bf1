//! The read side of a domain: [`Projector`]s turn recorded events into read-model documents, and
//! [`Query`]s answer named, read-only questions over them. Both are plain Rust types listed in
//! [`crate::export_domain!`]; the host feeds projectors in global order and serves queries over
//! HTTP (`/v1/domains/<domain>/queries/<name>?param=value`).
//!
//! ```
//! use cairn_sdk::{Find, Projector, ProjectError, Query, QueryError, ReadModel, ReadModelRead, Recorded};
//! use serde::Deserialize;
//! use serde_json::{Value, json};
//!
//! #[derive(Deserialize)]
//! #[serde(tag = "type", content = "data")]
//! pub enum CounterEvent { Incremented { by: u32 } }
//!
//! #[derive(Default)]
//! pub struct Totals;
//! impl Projector for Totals {
//!     const NAME: &'static str = "totals";
//!     const VERSION: u32 = 1;
//!     const DESCRIPTION: &'static str = "Running total per counter.";
//!     const EVENT_TYPES: &'static [&'static str] = &["Incremented"];
//!     type Event = CounterEvent;
//!     fn project(&self, event: &Recorded<CounterEvent>, model: &mut dyn ReadModel) -> Result<(), ProjectError> {
//!         let CounterEvent::Incremented { by } = event.event;
//!         model.increment("totals", &event.stream, "total", f64::from(by))?;
//!         Ok(())
//!     }
//! }
//!
//! #[derive(Deserialize)]
//! pub struct TotalParams { counter: String }
//!
//! #[derive(Default)]
//! pub struct Total;
//! impl Query for Total {
//!     const NAME: &'static str = "total";
//!     const PROJECTION: &'static str = "totals";
//!     const DESCRIPTION: &'static str = "One counter's total.";
//!     type Params = TotalParams;
//!     fn run(&self, params: TotalParams, model: &dyn ReadModelRead) -> Result<Value, QueryError> {
//!         model.get("totals", &params.counter)?.ok_or_else(|| QueryError::NotFound(params.counter))
//!     }
//! }
//! ```

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Rejection;
use crate::read_model::{ReadModel, ReadModelError, ReadModelRead};

/// A projector: keeps one projection's collections up to date from the domain's events.
///
/// The host calls it with the events of [`Projector::EVENT_TYPES`], in global order, from its
/// checkpoint; everything one call writes commits with the new checkpoint, or nothing does.
/// `Default` is how the SDK makes one per call: keep no state in it, keep it in documents.
pub trait Projector: Default {
    /// The projection's name, snake_case or kebab-case, unique in the domain.
    const NAME: &'static str;
    /// The version of its logic and document shape, from 1. Change it whenever a new plugin
    /// version writes different documents: the host then rebuilds the projection from the first
    /// event (a new generation) while queries keep reading the old one until it caught up.
    const VERSION: u32;
    /// One sentence for operators.
    const DESCRIPTION: &'static str;
    /// The event types it reads; the host delivers only these (empty: every type, and then every
    /// type must decode into [`Projector::Event`]).
    const EVENT_TYPES: &'static [&'static str];
    /// What events decode into: usually an aggregate's event enum (`#[serde(tag = "type",
    /// content = "data")]`), or an enum of its own with only the variants it reads.
    type Event: DeserializeOwned;

    /// Applies one event. A failure stops the projection at this event (nothing of the call is
    /// written) and the host retries it later; a panic traps the same way.
    fn project(&self, event: &Recorded<Self::Event>, model: &mut dyn ReadModel) -> Result<(), ProjectError>;
}

/// A recorded event, decoded, with where and when the store recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<E> {
    /// The stream, `<aggregate>-<id>`.
    pub stream: String,
    /// 1-based version in the stream.
    pub version: u64,
    /// 1-based position in the host's global log (what a failure reports).
    pub position: u64,
    /// The event type as stored (`OrderCreated`).
    pub event_type: String,
    /// Commit time, microseconds since the Unix epoch (UTC).
    pub recorded_at_micros: i64,
    /// The metadata the host recorded (plugin version, digest, correlation...): a JSON object.
    pub metadata: Value,
    /// The event itself.
    pub event: E,
}

impl<E> Recorded<E> {
    /// The aggregate id of the stream when it belongs to `aggregate`: `order-42` → `Some("42")`
    /// for `"order"`.
    pub fn aggregate_id(&self, aggregate: &str) -> Option<&str> {
        self.stream.strip_prefix(aggregate)?.strip_prefix('-').filter(|id| !id.is_empty())
    }
}

/// Why a projector could not take an event; the host logs it and retries with backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectError(pub String);

impl ProjectError {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<ReadModelError> for ProjectError {
    fn from(error: ReadModelError) -> Self {
        Self(error.to_string())
    }
}

impl std::fmt::Display for ProjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProjectError {}

/// A query: a named, read-only question over one projection's documents.
///
/// Parameters come from the URL's query string as a JSON object **whose values are all strings**
/// (`?limit=20` arrives as `{"limit": "20"}`): parse numbers yourself or with [`crate::params`].
/// Parameters that do not deserialize into [`Query::Params`] are answered with
/// [`QueryError::InvalidParameters`] (code `invalid-parameters`) naming the field.
pub trait Query: Default {
    /// Its name in the URL, kebab-case (`orders-by-user`).
    const NAME: &'static str;
    /// The projection whose collections it reads.
    const PROJECTION: &'static str;
    /// One sentence for the API's documentation.
    const DESCRIPTION: &'static str;
    /// The parameters, deserialized from the JSON object of strings.
    type Params: DeserializeOwned;

    /// Answers the query from the projection's last committed state.
    fn run(&self, params: Self::Params, model: &dyn ReadModelRead) -> Result<Value, QueryError>;
}

/// The rejection code of bad query parameters.
pub const INVALID_PARAMETERS: &str = "invalid-parameters";

/// Why a query has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The parameters are wrong (HTTP 400), with every failing field.
    InvalidParameters(Rejection),
    /// What the query asks for does not exist (HTTP 404).
    NotFound(String),
    /// The read model failed or the query could not do its job (HTTP 500 or 503).
    Failed(String),
}

impl QueryError {
    /// Bad parameters: an `invalid-parameters` rejection naming `field`.
    pub fn invalid(field: &str, message: &str) -> Self {
        Self::InvalidParameters(
            Rejection::new(INVALID_PARAMETERS, format!("The query has invalid parameters: {field}"))
                .with_field(field, message),
        )
    }
}

impl From<ReadModelError> for QueryError {
    fn from(error: ReadModelError) -> Self {
        Self::Failed(error.to_string())
    }
}

impl From<Rejection> for QueryError {
    /// A rejection (e.g. from [`crate::Validation::finish_as`]) as bad parameters.
    fn from(rejection: Rejection) -> Self {
        Self::InvalidParameters(rejection)
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidParameters(r) => write!(f, "invalid parameters: {r}"),
            Self::NotFound(m) => write!(f, "not found: {m}"),
            Self::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for QueryError {}
