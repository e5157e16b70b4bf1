//! The orders domain's queries: order lists by user and by status (newest first, paged with a
//! cursor) over the `orders` projection, and a user's dashboard over `user_dashboard_stats`.
//!
//! Parameters arrive as strings; every bad one is reported at once (`invalid-parameters`), and
//! an empty optional parameter counts as absent.

use cairn_sdk::{
    Direction, Find, Query, QueryError, ReadModelError, ReadModelRead, ReadModelReadExt, Validation, params,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ORDERS, Status, USER_STATS, UserStats};

/// The page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `limit`.
pub const MAX_LIMIT: u32 = 200;

const LIMIT_MESSAGE: &str = "The limit must be a whole number from 1 to 200";
const STATUS_MESSAGE: &str = "The status must be one of pending, confirmed, cancelled";

/// Parameters of `orders-by-user`.
#[derive(Debug, Deserialize)]
pub struct OrdersByUserParams {
    /// Whose orders (required).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Only orders in this status.
    #[serde(default)]
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A user's orders, newest first: `{"orders": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Default)]
pub struct OrdersByUser;

impl Query for OrdersByUser {
    const NAME: &'static str = "orders-by-user";
    const PROJECTION: &'static str = "orders";
    const DESCRIPTION: &'static str = "A user's orders, newest first, optionally in one status; paged.";
    type Params = OrdersByUserParams;

    fn run(&self, params: OrdersByUserParams, model: &dyn ReadModelRead) -> Result<Value, QueryError> {
        let mut validation = Validation::new();
        let user_id = required(&mut validation, "user_id", params.user_id.as_deref(), "The user id is required");
        let status = status(&mut validation, params.status.as_deref(), false);
        let limit = limit(&mut validation, params.limit.as_deref());
        params::check(&mut validation)?;
        let mut find = Find::new().eq("user_id", user_id);
        if let Some(status) = status {
            find = find.eq("status", status.as_str());
        }
        list(model, find, limit, params.cursor)
    }
}

/// Parameters of `orders-by-status`.
#[derive(Debug, Deserialize)]
pub struct OrdersByStatusParams {
    /// Which status (required).
    #[serde(default)]
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Every order in one status, newest first: `{"orders": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Default)]
pub struct OrdersByStatus;

impl Query for OrdersByStatus {
    const NAME: &'static str = "orders-by-status";
    const PROJECTION: &'static str = "orders";
    const DESCRIPTION: &'static str = "Every order in one status, newest first; paged.";
    type Params = OrdersByStatusParams;

    fn run(&self, params: OrdersByStatusParams, model: &dyn ReadModelRead) -> Result<Value, QueryError> {
        let mut validation = Validation::new();
        let status = status(&mut validation, params.status.as_deref(), true);
        let limit = limit(&mut validation, params.limit.as_deref());
        params::check(&mut validation)?;
        let find = Find::new().eq("status", status.map_or("", Status::as_str));
        list(model, find, limit, params.cursor)
    }
}

/// Parameters of `user-dashboard`.
#[derive(Debug, Deserialize)]
pub struct UserDashboardParams {
    /// Whose statistics (required).
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A user's statistics (all zero, `last_order_at` null, for a user without orders).
#[derive(Debug, Default)]
pub struct UserDashboard;

impl Query for UserDashboard {
    const NAME: &'static str = "user-dashboard";
    const PROJECTION: &'static str = "user_dashboard_stats";
    const DESCRIPTION: &'static str = "A user's order count, lifetime and average order value, last order time.";
    type Params = UserDashboardParams;

    fn run(&self, params: UserDashboardParams, model: &dyn ReadModelRead) -> Result<Value, QueryError> {
        let mut validation = Validation::new();
        let user_id = required(&mut validation, "user_id", params.user_id.as_deref(), "The user id is required");
        params::check(&mut validation)?;
        let stats = model.get_as::<UserStats>(USER_STATS, user_id)?.unwrap_or_else(|| UserStats::empty(user_id));
        serde_json::to_value(stats).map_err(|e| QueryError::Failed(e.to_string()))
    }
}

/// A required, non-empty text parameter (trimmed).
fn required<'a>(validation: &mut Validation, field: &str, value: Option<&'a str>, message: &str) -> &'a str {
    let value = value.map(str::trim).unwrap_or_default();
    validation.require(!value.is_empty(), field, message);
    value
}

/// The `status` parameter; absent or empty is `None` (an error when `required`).
fn status(validation: &mut Validation, value: Option<&str>, required: bool) -> Option<Status> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => {
            validation.require(!required, "status", "The status is required");
            None
        }
        Some(text) => {
            let status = Status::parse(text);
            validation.require(status.is_some(), "status", STATUS_MESSAGE);
            status
        }
    }
}

/// The `limit` parameter: 1 to 200, default 50.
fn limit(validation: &mut Validation, value: Option<&str>) -> u32 {
    let limit = params::parse_optional::<u32>(validation, "limit", value, LIMIT_MESSAGE);
    if let Some(limit) = limit {
        validation.require((1..=MAX_LIMIT).contains(&limit), "limit", LIMIT_MESSAGE);
    }
    limit.unwrap_or(DEFAULT_LIMIT)
}

/// One page of `orders` matching `find`, newest first.
fn list(model: &dyn ReadModelRead, find: Find, limit: u32, cursor: Option<String>) -> Result<Value, QueryError> {
    let cursor = cursor.filter(|c| !c.trim().is_empty());
    let given = cursor.is_some();
    let find = find.order_by("created_at", Direction::Descending).limit(limit).after(cursor);
    let page = model.find(ORDERS, &find).map_err(|error| match error {
        ReadModelError::Invalid(_) if given => QueryError::invalid("cursor", "The cursor is not valid"),
        other => other.into(),
    })?;
    let next_cursor = page.next_cursor.clone();
    Ok(json!({ "orders": page.bodies(), "next_cursor": next_cursor }))
}
