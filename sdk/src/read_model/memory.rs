//! [`MemoryReadModel`]: the read model of native tests, with the host's rules (documents are
//! objects, dotted paths, typed comparisons, order then id, capped pages, opaque cursors).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::json::{Position, add_at, lookup, matches, parse_path, sort_cmp};
use super::{Direction, Document, Find, MAX_ANY_OF, Page, ReadModel, ReadModelError, ReadModelRead};
use crate::read_model::find::Condition;

/// Longest collection name or document id, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// An in-memory read model with the same semantics as the host's.
///
/// ```
/// use cairn_sdk::{Find, MemoryReadModel, ReadModel, ReadModelRead};
/// use serde_json::json;
/// let mut model = MemoryReadModel::new();
/// model.upsert("orders", "o-1", &json!({"user_id": "u1", "total": 10})).unwrap();
/// model.increment("orders", "o-1", "total", 5.0).unwrap();
/// let page = model.find("orders", &Find::new().eq("user_id", "u1")).unwrap();
/// assert_eq!(page.documents[0].body, json!({"user_id": "u1", "total": 15}));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryReadModel {
    collections: BTreeMap<String, BTreeMap<String, Value>>,
}

impl MemoryReadModel {
    /// An empty read model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every document of `collection` as `(id, body)`, in id order (empty if none).
    pub fn documents(&self, collection: &str) -> Vec<(String, Value)> {
        self.collections
            .get(collection)
            .map(|docs| docs.iter().map(|(id, body)| (id.clone(), body.clone())).collect())
            .unwrap_or_default()
    }

    /// The names of the collections holding at least one document.
    pub fn collections(&self) -> Vec<String> {
        self.collections.iter().filter(|(_, docs)| !docs.is_empty()).map(|(name, _)| name.clone()).collect()
    }
}

fn check_name(what: &str, name: &str) -> Result<(), ReadModelError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(ReadModelError::Invalid(format!("the {what} must be 1 to {MAX_NAME_BYTES} bytes")));
    }
    Ok(())
}

impl ReadModelRead for MemoryReadModel {
    fn get(&self, collection: &str, id: &str) -> Result<Option<Value>, ReadModelError> {
        check_name("collection", collection)?;
        check_name("id", id)?;
        Ok(self.collections.get(collection).and_then(|docs| docs.get(id)).cloned())
    }

    fn find(&self, collection: &str, find: &Find) -> Result<Page, ReadModelError> {
        check_name("collection", collection)?;
        let mut filters = Vec::with_capacity(find.filters.len());
        for filter in &find.filters {
            if let Condition::AnyOf(values) = &filter.condition
                && values.len() > MAX_ANY_OF
            {
                return Err(ReadModelError::LimitExceeded(format!("any-of takes at most {MAX_ANY_OF} values")));
            }
            filters.push((parse_path(&filter.field)?, &filter.condition));
        }
        let order = find.order.as_ref().map(|o| parse_path(&o.field).map(|p| (p, o.direction))).transpose()?;
        let after = find.cursor.as_deref().map(Position::decode).transpose()?;
        let descending = matches!(order, Some((_, Direction::Descending)));

        let key = |body: &Value| order.as_ref().and_then(|(path, _)| lookup(body, path)).cloned();
        // Compares (sort value, id) pairs in the page's direction.
        let cmp = |a: (Option<&Value>, &str), b: (Option<&Value>, &str)| {
            let ordering = sort_cmp(a.0, b.0).then_with(|| a.1.cmp(b.1));
            if descending { ordering.reverse() } else { ordering }
        };

        let mut hits: Vec<(&String, &Value, Option<Value>)> = self
            .collections
            .get(collection)
            .into_iter()
            .flatten()
            .filter(|(_, body)| filters.iter().all(|(path, condition)| matches(lookup(body, path), condition)))
            .map(|(id, body)| (id, body, key(body)))
            .filter(|(id, _, value)| {
                after.as_ref().is_none_or(|after| {
                    cmp((value.as_ref(), id), (after.value.as_ref(), &after.id)) == Ordering::Greater
                })
            })
            .collect();
        hits.sort_by(|a, b| cmp((a.2.as_ref(), a.0), (b.2.as_ref(), b.0)));

        let limit = find.effective_limit() as usize;
        let more = hits.len() > limit;
        hits.truncate(limit);
        let next_cursor = if more {
            hits.last().map(|(id, _, value)| Position { value: value.clone(), id: id.to_string() }.encode())
        } else {
            None
        };
        let documents = hits.into_iter().map(|(id, body, _)| Document { id: id.clone(), body: body.clone() }).collect();
        Ok(Page { documents, next_cursor })
    }
}

impl ReadModel for MemoryReadModel {
    fn upsert(&mut self, collection: &str, id: &str, body: &Value) -> Result<(), ReadModelError> {
        check_name("collection", collection)?;
        check_name("id", id)?;
        if !body.is_object() {
            return Err(ReadModelError::Invalid(format!("document `{id}` is not a JSON object")));
        }
        self.collections.entry(collection.to_string()).or_default().insert(id.to_string(), body.clone());
        Ok(())
    }

    fn delete(&mut self, collection: &str, id: &str) -> Result<bool, ReadModelError> {
        check_name("collection", collection)?;
        check_name("id", id)?;
        Ok(self.collections.get_mut(collection).is_some_and(|docs| docs.remove(id).is_some()))
    }

    fn increment(&mut self, collection: &str, id: &str, field: &str, delta: f64) -> Result<f64, ReadModelError> {
        check_name("collection", collection)?;
        check_name("id", id)?;
        let path = parse_path(field)?;
        if !delta.is_finite() {
            return Err(ReadModelError::Invalid(format!("the delta for `{field}` is not a finite number")));
        }
        let docs = self.collections.entry(collection.to_string()).or_default();
        // Work on a copy so a failed increment leaves the document as it was.
        let mut document = docs.get(id).cloned().unwrap_or_else(|| json!({}));
        let updated = add_at(&mut document, &path, delta)?;
        docs.insert(id.to_string(), document);
        Ok(updated)
    }
}

#[cfg(test)]
mod tests;
