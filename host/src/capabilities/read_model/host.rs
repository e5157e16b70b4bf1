//! `Host` impl of `cairn:domain/read-model`.

use serde_json::{Map, Value};

use super::{MAX_ANY_OF, MAX_DOCUMENT_BYTES, MAX_FILTERS, ReadAccess, page_size};
use crate::bindings::read_model::{
    Condition as WitCondition, Direction, Document, FindRequest, Host, Page, ReadModelError,
};
use crate::capabilities::deadline::block_on_store;
use crate::runtime::HostState;
use crate::store::StoreError;
use crate::store::read_models::{Condition, Cursor, Filter, Find, Order, WriteError};

fn not_granted() -> ReadModelError {
    ReadModelError::NotGranted("only projectors (in `project`) and queries (in `run`) may use the read model".into())
}

fn invalid(message: impl Into<String>) -> ReadModelError {
    ReadModelError::Invalid(message.into())
}

fn name_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_collection(collection: &str) -> Result<(), ReadModelError> {
    if name_ok(collection, 64) {
        Ok(())
    } else {
        Err(invalid(format!("collection `{collection}` must be 1 to 64 of [A-Za-z0-9_-]")))
    }
}

fn check_id(id: &str) -> Result<(), ReadModelError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(invalid("a document id must be 1 to 256 characters, no control characters"));
    }
    Ok(())
}

fn field_path(field: &str) -> Result<Vec<String>, ReadModelError> {
    let path: Vec<String> = field.split('.').map(str::to_string).collect();
    if path.len() > 8 || !path.iter().all(|s| name_ok(s, 64)) {
        return Err(invalid(format!("field path `{field}` must be up to 8 dot-separated segments of [A-Za-z0-9_-]")));
    }
    Ok(path)
}

fn json_value(text: &str) -> Result<Value, ReadModelError> {
    let value = serde_json::from_str(text).map_err(|e| invalid(format!("filter value `{text}` is not JSON: {e}")))?;
    refuse_nul(&value)?;
    Ok(value)
}

/// Documents are stored the same way on every backend, and PostgreSQL's JSONB cannot hold the
/// NUL character: refused everywhere, as the plugin's error rather than a stuck projection.
fn refuse_nul(value: &Value) -> Result<(), ReadModelError> {
    let nul = |text: &str| text.contains('\0');
    let found = match value {
        Value::String(text) => nul(text),
        Value::Array(items) => return items.iter().try_for_each(refuse_nul),
        Value::Object(map) => {
            if map.keys().any(|k| nul(k)) {
                true
            } else {
                return map.values().try_for_each(refuse_nul);
            }
        }
        _ => false,
    };
    if found { Err(invalid("a document may not contain the NUL character (\\u0000)")) } else { Ok(()) }
}

fn object(body: &str) -> Result<Map<String, Value>, ReadModelError> {
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(ReadModelError::LimitExceeded(format!(
            "a document may hold at most {MAX_DOCUMENT_BYTES} bytes; this one has {}",
            body.len()
        )));
    }
    let parsed = serde_json::from_str(body);
    if let Ok(value) = &parsed {
        refuse_nul(value)?;
    }
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid("a document must be a JSON object")),
        Err(e) => Err(invalid(format!("the document is not JSON: {e}"))),
    }
}

fn condition(condition: WitCondition) -> Result<Condition, ReadModelError> {
    Ok(match condition {
        WitCondition::Eq(v) => Condition::Eq(json_value(&v)?),
        WitCondition::Ne(v) => Condition::Ne(json_value(&v)?),
        WitCondition::Lt(v) => Condition::Lt(json_value(&v)?),
        WitCondition::Lte(v) => Condition::Lte(json_value(&v)?),
        WitCondition::Gt(v) => Condition::Gt(json_value(&v)?),
        WitCondition::Gte(v) => Condition::Gte(json_value(&v)?),
        WitCondition::Prefix(p) => Condition::Prefix(p),
        WitCondition::AnyOf(values) => {
            if values.len() > MAX_ANY_OF {
                return Err(ReadModelError::LimitExceeded(format!("`any-of` takes at most {MAX_ANY_OF} values")));
            }
            Condition::AnyOf(values.iter().map(|v| json_value(v)).collect::<Result<_, _>>()?)
        }
    })
}

fn find_request(request: FindRequest) -> Result<Find, ReadModelError> {
    if request.filters.len() > MAX_FILTERS {
        return Err(ReadModelError::LimitExceeded(format!("a find takes at most {MAX_FILTERS} filters")));
    }
    let filters = request
        .filters
        .into_iter()
        .map(|f| Ok(Filter { path: field_path(&f.field)?, condition: condition(f.condition)? }))
        .collect::<Result<_, ReadModelError>>()?;
    let order = match request.order {
        Some(o) => Some(Order { path: field_path(&o.field)?, descending: o.direction == Direction::Descending }),
        None => None,
    };
    let after = match request.cursor {
        Some(text) => Some(Cursor::decode(&text).ok_or_else(|| invalid("the cursor is not one this host gave out"))?),
        None => None,
    };
    Ok(Find { filters, order, limit: page_size(request.limit), after })
}

/// Adds `delta` at `path` in `doc`, creating objects and the field as needed.
fn add(doc: &mut Map<String, Value>, path: &[String], delta: f64) -> Result<f64, ReadModelError> {
    let (last, parents) = path.split_last().ok_or_else(|| invalid("empty field path"))?;
    let mut map = doc;
    for segment in parents {
        let slot = map.entry(segment.clone()).or_insert_with(|| Value::Object(Map::new()));
        map =
            slot.as_object_mut().ok_or_else(|| ReadModelError::NotANumber(format!("`{segment}` is not an object")))?;
    }
    let slot = map.entry(last.clone()).or_insert(Value::from(0));
    let current = slot.as_f64().ok_or_else(|| ReadModelError::NotANumber(format!("`{last}` holds {slot}")))?;
    let sum = current + delta;
    if !sum.is_finite() {
        return Err(ReadModelError::NotANumber(format!("`{last}` would overflow to {sum}")));
    }
    let integral = slot.is_i64() && delta.fract() == 0.0 && sum.abs() < 9.0e15;
    *slot = if integral { Value::from(sum as i64) } else { Value::from(sum) };
    Ok(sum)
}

impl ReadAccess {
    /// Maps a store failure to `unavailable`, remembering it for the caller.
    fn check<T>(&mut self, result: Result<T, StoreError>) -> Result<T, ReadModelError> {
        result.map_err(|StoreError(message)| {
            self.store_failure = Some(message.clone());
            ReadModelError::Unavailable(message)
        })
    }

    fn may_write(&self) -> Result<(), ReadModelError> {
        if self.writable() {
            Ok(())
        } else {
            Err(ReadModelError::NotGranted("queries may only read the read model".into()))
        }
    }

    /// The document as this call knows it: its own write, what it read, else the snapshot.
    fn read(&mut self, collection: &str, id: &str) -> Result<Option<String>, ReadModelError> {
        let key = (collection.to_string(), id.to_string());
        if let Some(written) = self.dirty.get(&key) {
            return Ok(written.clone());
        }
        if let Some(known) = self.known.get(&key) {
            return Ok(known.clone());
        }
        let (tx, models, namespace) = (&mut self.tx, self.models.as_ref(), &self.namespace);
        let result = block_on_store(&self.runtime, async {
            let tx = Self::snapshot(tx, models).await?;
            tx.get(namespace, collection, id).await
        });
        let body = self.check(result)?;
        let size = super::entry_size(&key, &body);
        if self.known_bytes + size > super::MAX_CACHED_BYTES {
            self.known.clear();
            self.known_bytes = 0;
        }
        self.known_bytes += size;
        self.known.insert(key, body.clone());
        Ok(body)
    }

    /// Buffers a write (`None` deletes), within the call's cap.
    fn write(&mut self, collection: &str, id: &str, body: Option<String>) -> Result<(), ReadModelError> {
        let key = (collection.to_string(), id.to_string());
        let size = super::entry_size(&key, &body);
        let replaced = self.dirty.get(&key).map_or(0, |old| super::entry_size(&key, old));
        let total = self.dirty_bytes - replaced + size;
        if total > self.max_dirty_bytes {
            return Err(ReadModelError::LimitExceeded(format!(
                "the writes of one `project` call may take at most {} MiB ({}); send fewer events per batch \
                 or smaller documents",
                self.max_dirty_bytes >> 20,
                super::BATCH_LIMIT_KEY
            )));
        }
        self.dirty_bytes = total;
        if let Some(old) = self.known.remove(&key) {
            self.known_bytes -= super::entry_size(&key, &old);
        }
        self.dirty.insert(key, body);
        Ok(())
    }

    /// One page of `collection`, on the snapshot. Over buffered writes of that collection, the
    /// store answers it as if they were written (its own filters, order and cursor over the
    /// snapshot with those writes overlaid, see [`crate::store::ReadModelTx::find_overlaid`]),
    /// which is exact: only this runner writes its namespace. The shared writer is never taken.
    fn find_page(&mut self, collection: &str, find: &Find) -> Result<crate::store::read_models::Page, ReadModelError> {
        let overlay = self.writes_in(collection);
        let (tx, models, namespace) = (&mut self.tx, self.models.as_ref(), &self.namespace);
        let result = block_on_store(&self.runtime, async {
            let tx = Self::snapshot(tx, models).await?;
            Ok(tx.find_overlaid(namespace, collection, find, &overlay).await)
        });
        // A document or value the store refuses is the plugin's data, not a store failure.
        match self.check(result)? {
            Ok(page) => Ok(page),
            Err(WriteError::Refused(message)) => Err(invalid(format!("the read-model store refused it: {message}"))),
            Err(WriteError::Store(error)) => self.check(Err(error)),
        }
    }
}

impl Host for HostState {
    fn get(&mut self, collection: String, id: String) -> Result<Option<String>, ReadModelError> {
        let access = self.read.as_mut().ok_or_else(not_granted)?;
        check_collection(&collection)?;
        check_id(&id)?;
        access.read(&collection, &id)
    }

    fn upsert(&mut self, collection: String, id: String, body: String) -> Result<(), ReadModelError> {
        let access = self.read.as_mut().ok_or_else(not_granted)?;
        access.may_write()?;
        check_collection(&collection)?;
        check_id(&id)?;
        object(&body)?;
        access.write(&collection, &id, Some(body))
    }

    fn delete(&mut self, collection: String, id: String) -> Result<bool, ReadModelError> {
        let access = self.read.as_mut().ok_or_else(not_granted)?;
        access.may_write()?;
        check_collection(&collection)?;
        check_id(&id)?;
        let existed = access.read(&collection, &id)?.is_some();
        if existed {
            access.write(&collection, &id, None)?;
        }
        Ok(existed)
    }

    fn find(&mut self, collection: String, request: FindRequest) -> Result<Page, ReadModelError> {
        let access = self.read.as_mut().ok_or_else(not_granted)?;
        check_collection(&collection)?;
        let find = find_request(request)?;
        let page = access.find_page(&collection, &find)?;
        Ok(Page {
            documents: page.documents.into_iter().map(|(id, body)| Document { id, body }).collect(),
            next_cursor: page.next.map(|c| c.encode()),
        })
    }

    fn increment(&mut self, collection: String, id: String, field: String, delta: f64) -> Result<f64, ReadModelError> {
        let access = self.read.as_mut().ok_or_else(not_granted)?;
        access.may_write()?;
        check_collection(&collection)?;
        check_id(&id)?;
        let path = field_path(&field)?;
        if !delta.is_finite() {
            return Err(invalid("the delta must be a finite number"));
        }
        let mut doc = match access.read(&collection, &id)? {
            Some(body) => object(&body)?,
            None => Map::new(),
        };
        let value = add(&mut doc, &path, delta)?;
        access.write(&collection, &id, Some(Value::Object(doc).to_string()))?;
        Ok(value)
    }
}

#[cfg(test)]
#[path = "overlay_tests.rs"]
mod overlay_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_filter_values_with_nul_are_refused_as_invalid() {
        assert!(object(r#"{"a": "x", "b": {"c": [1, "y"]}}"#).is_ok());
        for bad in [r#"{"a": "x\u0000y"}"#, r#"{"a": {"b": ["\u0000"]}}"#, r#"{"k\u0000": 1}"#] {
            assert!(matches!(object(bad), Err(ReadModelError::Invalid(m)) if m.contains("NUL")), "{bad}");
        }
        assert!(matches!(json_value(r#""a\u0000""#), Err(ReadModelError::Invalid(_))));
        assert!(json_value(r#""a\\u0000""#).is_ok(), "an escaped backslash is not a NUL");
    }

    #[tokio::test]
    async fn a_projectors_buffered_writes_are_bounded_by_their_real_size() {
        let dir = tempfile::tempdir().unwrap();
        let models = crate::store::sqlite_read_models::SqliteReadModels::open(dir.path()).await.unwrap();
        let handle = tokio::runtime::Handle::current();
        let mut access = ReadAccess::projector("d/p/1".into(), std::sync::Arc::new(models), handle, 1 << 20);
        // Rewriting one document a million times holds one document.
        for n in 0..1_000_000 {
            access.write("c", "same", Some(format!("{{\"n\":{n}}}"))).unwrap();
        }
        assert!(access.dirty_bytes < 256, "{}", access.dirty_bytes);
        // Tiny documents count with what they cost beyond their text: 1 MiB holds about 6000.
        let mut written = 0;
        let refused = loop {
            match access.write("c", &written.to_string(), Some("{}".into())) {
                Ok(()) => written += 1,
                Err(e) => break e,
            }
        };
        assert!((4_000..8_000).contains(&written), "{written} tiny documents");
        assert!(matches!(&refused, ReadModelError::LimitExceeded(m) if m.contains("limits.max_projection_batch_mib")));
        assert!(access.dirty_bytes <= 1 << 20);
        assert_eq!(access.into_writes().len(), written + 1, "sorted, one write per document");
    }

    #[tokio::test]
    async fn a_projectors_find_sees_its_buffered_writes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let models: std::sync::Arc<dyn crate::store::ReadModels> =
            std::sync::Arc::new(crate::store::sqlite_read_models::SqliteReadModels::open(dir.path()).await.unwrap());
        let mut tx = models.write().await.unwrap();
        tx.upsert("d/p/1", "c", "old", r#"{"k": 1}"#).await.unwrap();
        tx.commit(None).await.unwrap();
        let handle = tokio::runtime::Handle::current();
        let (models2, ns) = (models.clone(), "d/p/1".to_string());
        let ids = tokio::task::spawn_blocking(move || {
            let mut access = ReadAccess::projector(ns, models2, handle, 1 << 20);
            access.write("c", "new", Some(r#"{"k": 2}"#.into())).unwrap();
            access.write("c", "old", None).unwrap();
            let page = access.find_page("c", &Find { limit: 10, ..Find::default() }).unwrap();
            assert_eq!(access.read("c", "new").unwrap().as_deref(), Some(r#"{"k": 2}"#));
            page.documents.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(ids, ["new"], "the find saw the buffered upsert and delete");
        let mut read = models.read().await.unwrap();
        let stored = read.find("d/p/1", "c", &Find { limit: 10, ..Find::default() }).await.unwrap();
        let stored: Vec<_> = stored.documents.into_iter().map(|(id, _)| id).collect();
        assert_eq!(stored, ["old"], "the find's transaction was rolled back: nothing written");
    }
}
