//! [`Find`]: what a query asks of a collection (filters, order, page size, cursor), built with
//! chained calls and handed to [`super::ReadModelRead::find`].

use serde_json::Value;

/// How a filter compares a document field with a value (mirror of the WIT `condition`).
///
/// Numbers compare as numbers, strings bytewise; values of different JSON types never compare
/// as less or greater, and are never equal.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Equal to the value; `null` also matches a missing field.
    Eq(Value),
    /// Present, not null, and not equal to the value (a missing field never matches).
    Ne(Value),
    /// Less than the value.
    Lt(Value),
    /// Less than or equal to the value.
    Lte(Value),
    /// Greater than the value.
    Gt(Value),
    /// Greater than or equal to the value.
    Gte(Value),
    /// A string field starting with this text.
    Prefix(String),
    /// Equal to any of the values (at most [`super::MAX_ANY_OF`]).
    AnyOf(Vec<Value>),
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// A dotted path into the document (`customer.id`); segments are `[A-Za-z0-9_-]+`.
    pub field: String,
    /// The comparison.
    pub condition: Condition,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Smallest first; documents missing the field come first.
    #[default]
    Ascending,
    /// Largest first; documents missing the field come last.
    Descending,
}

/// A sort on one field; ties are ordered by id in the same direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// A dotted path into the document.
    pub field: String,
    /// Which way.
    pub direction: Direction,
}

/// A `find` request: every filter must hold (AND).
///
/// ```
/// use cairn_sdk::{Direction, Find};
/// use serde_json::json;
/// let find = Find::new()
///     .eq("user_id", "u1")
///     .any_of("status", ["pending", "confirmed"])
///     .gte("total_cents", 1_000)
///     .order_by("created_at", Direction::Descending)
///     .limit(50)
///     .after(None);
/// assert_eq!(find.filters.len(), 3);
/// # let _ = json!(null);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Find {
    /// The conditions, all of which must hold.
    pub filters: Vec<Filter>,
    /// The sort; without one, documents come in id order (ascending).
    pub order: Option<Order>,
    /// Page size: 0 means [`super::DEFAULT_LIMIT`]; more than [`super::MAX_LIMIT`] is capped.
    pub limit: u32,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Find {
    /// Every document of the collection, in id order, a default page at a time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a filter.
    pub fn filter(mut self, field: impl Into<String>, condition: Condition) -> Self {
        self.filters.push(Filter { field: field.into(), condition });
        self
    }

    /// `field` equals `value` (`null` also matches a missing field).
    pub fn eq(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Condition::Eq(value.into()))
    }

    /// `field` is present and differs from `value`.
    pub fn ne(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Condition::Ne(value.into()))
    }

    /// `field` < `value`.
    pub fn lt(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Condition::Lt(value.into()))
    }

    /// `field` <= `value`.
    pub fn lte(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Condition::Lte(value.into()))
    }

    /// `field` > `value`.
    pub fn gt(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Condition::Gt(value.into()))
    }

    /// `field` >= `value`.
    pub fn gte(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Condition::Gte(value.into()))
    }

    /// `field` is a string starting with `prefix`.
    pub fn prefix(self, field: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.filter(field, Condition::Prefix(prefix.into()))
    }

    /// `field` equals one of `values`.
    pub fn any_of<V: Into<Value>>(self, field: impl Into<String>, values: impl IntoIterator<Item = V>) -> Self {
        self.filter(field, Condition::AnyOf(values.into_iter().map(Into::into).collect()))
    }

    /// Sorts by `field` (ties by id).
    pub fn order_by(mut self, field: impl Into<String>, direction: Direction) -> Self {
        self.order = Some(Order { field: field.into(), direction });
        self
    }

    /// Page size (0: the default, 100; capped at 1000).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Continues after the page that returned `cursor` (`None`: from the start).
    pub fn after(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }

    /// The page size the read model uses for this request.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => super::DEFAULT_LIMIT,
            n => n.min(super::MAX_LIMIT),
        }
    }
}
