//! Query parameters arrive as a JSON object **of strings** (from the URL's query string), so
//! numbers need parsing. Two ways: serde attributes on the params struct (the first bad field
//! fails the query), or strings checked with a [`Validation`] (every bad field at once).
//!
//! ```
//! use cairn_sdk::{Validation, params};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Page {
//!     #[serde(default, deserialize_with = "params::optional_number")]
//!     limit: Option<u32>,
//!     #[serde(deserialize_with = "params::number")]
//!     year: i32,
//! }
//! let page: Page = serde_json::from_value(serde_json::json!({"year": "2024", "limit": ""})).unwrap();
//! assert_eq!((page.limit, page.year), (None, 2024));
//!
//! let mut v = Validation::new();
//! let limit: Option<u32> = params::parse_optional(&mut v, "limit", Some("ten"), "The limit must be a number");
//! assert!(limit.is_none() && params::check(&mut v).is_err());
//! ```

use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, de::Error};
use serde_json::Value;

use crate::{QueryError, Validation, read_side::INVALID_PARAMETERS};

/// `#[serde(deserialize_with = "cairn_sdk::params::number")]`: a number sent as a string (a JSON
/// number is accepted too).
pub fn number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    match Value::deserialize(deserializer)? {
        Value::String(text) => text.trim().parse().map_err(|e| D::Error::custom(format!("`{text}` is not valid: {e}"))),
        Value::Number(n) => n.to_string().parse().map_err(|e| D::Error::custom(format!("`{n}` is not valid: {e}"))),
        other => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

/// `#[serde(default, deserialize_with = "cairn_sdk::params::optional_number")]`: like [`number`],
/// and an empty string or `null` is `None`.
pub fn optional_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        other => number(other).map(Some).map_err(D::Error::custom),
    }
}

/// Parses `value` (absent or empty: `None`); records `message` for `field` when it does not parse.
pub fn parse_optional<T: FromStr>(
    validation: &mut Validation,
    field: &str,
    value: Option<&str>,
    message: &str,
) -> Option<T> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    let parsed = value.parse().ok();
    validation.require(parsed.is_some(), field, message);
    parsed
}

/// Finishes a parameter validation: every failing field in one
/// [`QueryError::InvalidParameters`] with code `invalid-parameters`.
pub fn check(validation: &mut Validation) -> Result<(), QueryError> {
    validation.finish_as(INVALID_PARAMETERS, "The query has invalid parameters").map_err(QueryError::InvalidParameters)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Deserialize, Debug)]
    struct P {
        #[serde(deserialize_with = "number")]
        n: u8,
        #[serde(default, deserialize_with = "optional_number")]
        o: Option<f64>,
    }

    #[test]
    fn numbers_parse_from_strings_and_numbers() {
        let p: P = serde_json::from_value(json!({"n": " 7 ", "o": "1.5"})).unwrap();
        assert_eq!((p.n, p.o), (7, Some(1.5)));
        let p: P = serde_json::from_value(json!({"n": 8})).unwrap();
        assert_eq!((p.n, p.o), (8, None));
        assert!(serde_json::from_value::<P>(json!({"n": "300"})).is_err());
        assert!(serde_json::from_value::<P>(json!({"n": "1", "o": "x"})).is_err());
    }

    #[test]
    fn check_reports_every_field_as_invalid_parameters() {
        let mut v = Validation::new();
        assert_eq!(parse_optional::<u32>(&mut v, "a", Some(""), "bad"), None);
        assert_eq!(parse_optional::<u32>(&mut v, "b", Some("12"), "bad"), Some(12));
        assert_eq!(parse_optional::<u32>(&mut v, "c", Some("-1"), "bad"), None);
        v.require(false, "d", "bad");
        match check(&mut v) {
            Err(QueryError::InvalidParameters(r)) => {
                assert_eq!(r.code, "invalid-parameters");
                assert_eq!(r.fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), ["c", "d"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
