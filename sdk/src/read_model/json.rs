//! The JSON rules of the in-memory read model, kept apart so they read like a spec: dotted field
//! paths, how a condition matches a field, the total order used for sorting, and cursors.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::ReadModelError;
use super::find::Condition;

/// Splits a dotted path (`customer.id`) into segments, each `[A-Za-z0-9_-]+`.
pub(super) fn parse_path(field: &str) -> Result<Vec<&str>, ReadModelError> {
    let segments: Vec<&str> = field.split('.').collect();
    let valid = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if field.is_empty() || !segments.iter().all(valid) {
        return Err(ReadModelError::Invalid(format!("`{field}` is not a field path (segments of [A-Za-z0-9_-])")));
    }
    Ok(segments)
}

/// The value at `path`; a JSON `null` reads as missing.
pub(super) fn lookup<'a>(document: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut value = document;
    for segment in path {
        value = value.as_object()?.get(*segment)?;
    }
    (!value.is_null()).then_some(value)
}

/// The number at `path` of `document` after adding `delta`, creating `{}` objects and a 0 on the
/// way; the new value is stored as an integer when it is one.
pub(super) fn add_at(document: &mut Value, path: &[&str], delta: f64) -> Result<f64, ReadModelError> {
    let not_a_number = |what: &str| ReadModelError::NotANumber(format!("`{}` {what}", path.join(".")));
    let (last, parents) = path.split_last().ok_or_else(|| ReadModelError::Invalid("empty field path".into()))?;
    let mut object: &mut Map<String, Value> =
        document.as_object_mut().ok_or_else(|| ReadModelError::Invalid("the document is not an object".into()))?;
    for segment in parents {
        let child = object.entry(segment.to_string()).or_insert_with(|| json!({}));
        if child.is_null() {
            *child = json!({});
        }
        object = child.as_object_mut().ok_or_else(|| not_a_number("runs through something other than an object"))?;
    }
    let current = match object.get(*last) {
        None | Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(_) => return Err(not_a_number("holds something other than a number")),
    };
    let updated = current + delta;
    if !updated.is_finite() {
        return Err(ReadModelError::Invalid(format!("`{}` would not be a finite number", path.join("."))));
    }
    object.insert(last.to_string(), number(updated));
    Ok(updated)
}

/// `updated` as a JSON number: an integer when it is one (so counters read `3`, not `3.0`).
pub(super) fn number(value: f64) -> Value {
    // 2^53: beyond it an f64 no longer holds every integer.
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 { json!(value as i64) } else { json!(value) }
}

/// Whether `field` (None: missing or null) satisfies `condition`.
pub(super) fn matches(field: Option<&Value>, condition: &Condition) -> bool {
    let ordered =
        |value: &Value, wanted: &[Ordering]| field.and_then(|f| compare(f, value)).is_some_and(|o| wanted.contains(&o));
    match condition {
        Condition::Eq(value) => equals(field, value),
        Condition::Ne(value) => field.is_some() && !equals(field, value),
        Condition::Lt(value) => ordered(value, &[Ordering::Less]),
        Condition::Lte(value) => ordered(value, &[Ordering::Less, Ordering::Equal]),
        Condition::Gt(value) => ordered(value, &[Ordering::Greater]),
        Condition::Gte(value) => ordered(value, &[Ordering::Greater, Ordering::Equal]),
        Condition::Prefix(prefix) => field.and_then(Value::as_str).is_some_and(|s| s.starts_with(prefix.as_str())),
        Condition::AnyOf(values) => values.iter().any(|value| equals(field, value)),
    }
}

fn equals(field: Option<&Value>, value: &Value) -> bool {
    match (field, value) {
        (None, Value::Null) => true,
        (None, _) | (Some(_), Value::Null) => false,
        (Some(Value::Array(_) | Value::Object(_)), _) => field == Some(value),
        (Some(f), _) => compare(f, value) == Some(Ordering::Equal),
    }
}

/// Compares two scalars of the same JSON type: numbers as numbers, strings bytewise, false <
/// true. Anything else (other types, arrays, objects) does not compare.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The total order of sort values: missing/null < booleans < numbers < strings < arrays and
/// objects (by their JSON text), as SQLite orders NULL first.
pub(super) fn sort_cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(Value::Array(_) | Value::Object(_)) => 4,
        }
    }
    match (a, b) {
        (Some(x), Some(y)) if rank(a) == rank(b) && rank(a) < 4 => compare(x, y).unwrap_or(Ordering::Equal),
        (Some(x), Some(y)) if rank(a) == 4 && rank(b) == 4 => x.to_string().cmp(&y.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Where a page ended: the last document's sort value (when sorted) and id.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Position {
    /// The sort field's value (None: missing, or not sorted).
    pub value: Option<Value>,
    /// The document id.
    pub id: String,
}

impl Position {
    /// The opaque cursor text: `{"id": ..., "value": ...}`.
    pub(super) fn encode(&self) -> String {
        json!({ "id": self.id, "value": self.value }).to_string()
    }

    /// Reads a cursor made by [`Position::encode`].
    pub(super) fn decode(cursor: &str) -> Result<Self, ReadModelError> {
        let invalid = || ReadModelError::Invalid("the cursor is not one this read model returned".into());
        let value: Value = serde_json::from_str(cursor).map_err(|_| invalid())?;
        let id = value.get("id").and_then(Value::as_str).ok_or_else(invalid)?.to_string();
        let value = value.get("value").filter(|v| !v.is_null()).cloned();
        Ok(Self { value, id })
    }
}
