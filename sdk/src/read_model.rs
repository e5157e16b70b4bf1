//! Read models as a plugin sees them: collections of JSON documents that projectors write
//! ([`ReadModel`]) and queries read ([`ReadModelRead`]). In a component they are the host's
//! `read-model` import; natively (tests) they are a [`MemoryReadModel`] with the same rules.

mod find;
mod json;
mod memory;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use find::{Condition, Direction, Filter, Find, Order};
pub use memory::MemoryReadModel;

/// Most documents a page holds, whatever `limit` asks for.
pub const MAX_LIMIT: u32 = 1_000;
/// The page size when `limit` is 0.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most values one `any_of` filter may hold.
pub const MAX_ANY_OF: usize = 100;

/// Why a read-model call failed (mirror of the WIT `read-model-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadModelError {
    /// The caller may not do this here (a query writing, a projector of a domain without
    /// projectors, ...).
    NotGranted(String),
    /// A bad argument: collection or id empty or too long, a document that is not a JSON object,
    /// a malformed field path, filter value or cursor.
    Invalid(String),
    /// A document or a request over a host limit.
    LimitExceeded(String),
    /// `increment` on a field that holds something other than a number.
    NotANumber(String),
    /// The store could not be reached; the host retries the projection batch.
    Unavailable(String),
}

impl std::fmt::Display for ReadModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, message) = match self {
            Self::NotGranted(m) => ("not granted", m),
            Self::Invalid(m) => ("invalid", m),
            Self::LimitExceeded(m) => ("limit exceeded", m),
            Self::NotANumber(m) => ("not a number", m),
            Self::Unavailable(m) => ("unavailable", m),
        };
        write!(f, "read model: {kind}: {message}")
    }
}

impl std::error::Error for ReadModelError {}

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Its id, unique in its collection.
    pub id: String,
    /// The document, always a JSON object.
    pub body: Value,
}

/// One page of a [`ReadModelRead::find`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The documents, in the requested order.
    pub documents: Vec<Document>,
    /// Pass it to [`Find::after`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl Page {
    /// The bodies alone, in order.
    pub fn bodies(self) -> Vec<Value> {
        self.documents.into_iter().map(|d| d.body).collect()
    }
}

/// Reading documents: what a query gets (and a projector, through [`ReadModel`]).
///
/// Object safe; the typed helpers live in [`ReadModelReadExt`].
pub trait ReadModelRead {
    /// The document `id` of `collection`, if it exists.
    fn get(&self, collection: &str, id: &str) -> Result<Option<Value>, ReadModelError>;
    /// The documents of `collection` matching `find`, one page at a time.
    fn find(&self, collection: &str, find: &Find) -> Result<Page, ReadModelError>;
}

/// Reading and writing documents: what a projector gets. Inside one `project` call reads see
/// earlier writes of the same call, and all of them commit with the projection's checkpoint.
///
/// Object safe; the typed helpers live in [`ReadModelExt`].
pub trait ReadModel: ReadModelRead {
    /// Creates or replaces the document `id`; `body` must be a JSON object.
    fn upsert(&mut self, collection: &str, id: &str, body: &Value) -> Result<(), ReadModelError>;
    /// Deletes the document `id`; true if it existed.
    fn delete(&mut self, collection: &str, id: &str) -> Result<bool, ReadModelError>;
    /// Adds `delta` to the number at `field` (a dotted path) of document `id`, creating the
    /// document (`{}`), intermediate objects and the field (0) when missing; returns the new value.
    fn increment(&mut self, collection: &str, id: &str, field: &str, delta: f64) -> Result<f64, ReadModelError>;
}

/// Typed helpers over any [`ReadModelRead`] (including `dyn ReadModelRead` and `dyn ReadModel`).
pub trait ReadModelReadExt: ReadModelRead {
    /// The document `id` of `collection` decoded as `T`; a document that does not decode is
    /// [`ReadModelError::Invalid`].
    fn get_as<T: DeserializeOwned>(&self, collection: &str, id: &str) -> Result<Option<T>, ReadModelError> {
        match self.get(collection, id)? {
            None => Ok(None),
            Some(body) => serde_json::from_value(body).map(Some).map_err(|e| {
                ReadModelError::Invalid(format!("document `{id}` of `{collection}` does not decode: {e}"))
            }),
        }
    }
}

impl<R: ReadModelRead + ?Sized> ReadModelReadExt for R {}

/// Typed helpers over any [`ReadModel`] (including `dyn ReadModel`).
pub trait ReadModelExt: ReadModel {
    /// Creates or replaces the document `id` with `body` serialized (it must serialize to an object).
    fn upsert_as<T: Serialize + ?Sized>(&mut self, collection: &str, id: &str, body: &T) -> Result<(), ReadModelError> {
        let body = serde_json::to_value(body)
            .map_err(|e| ReadModelError::Invalid(format!("document `{id}` does not serialize: {e}")))?;
        self.upsert(collection, id, &body)
    }
}

impl<R: ReadModel + ?Sized> ReadModelExt for R {}
