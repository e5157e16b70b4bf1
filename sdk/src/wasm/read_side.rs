//! The read side's component glue: the `projector` and `query` exports over
//! [`DomainReadSide`], and [`HostReadModel`], the SDK's read model over the host's `read-model`
//! import. A domain without projectors (or queries) gets [`NoReadModel`] instead, so its
//! component never references the import and does not import `read-model` at all.

use serde_json::Value;

use super::cairn::domain::read_model as rm;
use super::cairn::domain::types as wit;
use super::exports::cairn::domain::{projector as prj, query as qry};
use super::{recorded, rejection};
use crate::dispatch::{DomainReadSide, QueryRunError};
use crate::read_model::{Condition, Direction, Document, Find, Page, ReadModel, ReadModelError, ReadModelRead};

/// The `projections` export.
pub fn projections<D: DomainReadSide>() -> Vec<prj::ProjectionInfo> {
    D::projections()
        .into_iter()
        .map(|p| prj::ProjectionInfo {
            name: p.name,
            version: p.version,
            description: p.description,
            event_types: p.event_types,
        })
        .collect()
}

/// The `project` export.
pub fn project<D: DomainReadSide>(
    projection: String,
    events: Vec<wit::RecordedEvent>,
) -> Result<(), prj::ProjectFailure> {
    let events = events.into_iter().map(recorded).collect();
    let outcome = if D::HAS_PROJECTORS {
        D::project(&projection, events, &mut HostReadModel)
    } else {
        D::project(&projection, events, &mut NoReadModel)
    };
    outcome.map_err(|f| prj::ProjectFailure { position: f.position, message: f.message })
}

/// The `queries` export.
pub fn queries<D: DomainReadSide>() -> Vec<qry::QueryInfo> {
    D::queries()
        .into_iter()
        .map(|q| qry::QueryInfo { name: q.name, projection: q.projection, description: q.description })
        .collect()
}

/// The `run` export.
pub fn run<D: DomainReadSide>(query: String, parameters: String) -> Result<String, qry::QueryError> {
    let outcome = if D::HAS_QUERIES {
        D::run_query(&query, &parameters, &HostReadModel)
    } else {
        D::run_query(&query, &parameters, &NoReadModel)
    };
    outcome.map_err(|error| match error {
        QueryRunError::InvalidParameters(r) => qry::QueryError::InvalidParameters(rejection(r)),
        QueryRunError::NotFound(m) => qry::QueryError::NotFound(m),
        QueryRunError::UnknownQuery(m) => qry::QueryError::UnknownQuery(m),
        QueryRunError::Failed(m) => qry::QueryError::Failed(m),
    })
}

/// The host's read model, through the `read-model` import.
struct HostReadModel;

impl ReadModelRead for HostReadModel {
    fn get(&self, collection: &str, id: &str) -> Result<Option<Value>, ReadModelError> {
        rm::get(collection, id).map_err(error)?.map(|body| parse(id, &body)).transpose()
    }

    fn find(&self, collection: &str, find: &Find) -> Result<Page, ReadModelError> {
        let request = rm::FindRequest {
            filters: find
                .filters
                .iter()
                .map(|f| rm::Filter { field: f.field.clone(), condition: condition(&f.condition) })
                .collect(),
            order: find.order.as_ref().map(|o| rm::Order {
                field: o.field.clone(),
                direction: match o.direction {
                    Direction::Ascending => rm::Direction::Ascending,
                    Direction::Descending => rm::Direction::Descending,
                },
            }),
            limit: find.effective_limit(),
            cursor: find.cursor.clone(),
        };
        let page = rm::find(collection, &request).map_err(error)?;
        let documents = page
            .documents
            .into_iter()
            .map(|d| Ok(Document { body: parse(&d.id, &d.body)?, id: d.id }))
            .collect::<Result<_, ReadModelError>>()?;
        Ok(Page { documents, next_cursor: page.next_cursor })
    }
}

impl ReadModel for HostReadModel {
    fn upsert(&mut self, collection: &str, id: &str, body: &Value) -> Result<(), ReadModelError> {
        rm::upsert(collection, id, &body.to_string()).map_err(error)
    }

    fn delete(&mut self, collection: &str, id: &str) -> Result<bool, ReadModelError> {
        rm::delete(collection, id).map_err(error)
    }

    fn increment(&mut self, collection: &str, id: &str, field: &str, delta: f64) -> Result<f64, ReadModelError> {
        rm::increment(collection, id, field, delta).map_err(error)
    }
}

/// Stands in for the read model where the domain has nothing that may use it.
struct NoReadModel;

const NOTHING: &str = "this domain has no projectors or queries";

impl ReadModelRead for NoReadModel {
    fn get(&self, _: &str, _: &str) -> Result<Option<Value>, ReadModelError> {
        Err(ReadModelError::NotGranted(NOTHING.into()))
    }

    fn find(&self, _: &str, _: &Find) -> Result<Page, ReadModelError> {
        Err(ReadModelError::NotGranted(NOTHING.into()))
    }
}

impl ReadModel for NoReadModel {
    fn upsert(&mut self, _: &str, _: &str, _: &Value) -> Result<(), ReadModelError> {
        Err(ReadModelError::NotGranted(NOTHING.into()))
    }

    fn delete(&mut self, _: &str, _: &str) -> Result<bool, ReadModelError> {
        Err(ReadModelError::NotGranted(NOTHING.into()))
    }

    fn increment(&mut self, _: &str, _: &str, _: &str, _: f64) -> Result<f64, ReadModelError> {
        Err(ReadModelError::NotGranted(NOTHING.into()))
    }
}

fn condition(condition: &Condition) -> rm::Condition {
    match condition {
        Condition::Eq(v) => rm::Condition::Eq(v.to_string()),
        Condition::Ne(v) => rm::Condition::Ne(v.to_string()),
        Condition::Lt(v) => rm::Condition::Lt(v.to_string()),
        Condition::Lte(v) => rm::Condition::Lte(v.to_string()),
        Condition::Gt(v) => rm::Condition::Gt(v.to_string()),
        Condition::Gte(v) => rm::Condition::Gte(v.to_string()),
        Condition::Prefix(text) => rm::Condition::Prefix(text.clone()),
        Condition::AnyOf(values) => rm::Condition::AnyOf(values.iter().map(Value::to_string).collect()),
    }
}

fn parse(id: &str, body: &str) -> Result<Value, ReadModelError> {
    serde_json::from_str(body)
        .map_err(|e| ReadModelError::Invalid(format!("the host returned document `{id}` as invalid JSON: {e}")))
}

fn error(error: rm::ReadModelError) -> ReadModelError {
    match error {
        rm::ReadModelError::NotGranted(m) => ReadModelError::NotGranted(m),
        rm::ReadModelError::Invalid(m) => ReadModelError::Invalid(m),
        rm::ReadModelError::LimitExceeded(m) => ReadModelError::LimitExceeded(m),
        rm::ReadModelError::NotANumber(m) => ReadModelError::NotANumber(m),
        rm::ReadModelError::Unavailable(m) => ReadModelError::Unavailable(m),
    }
}
