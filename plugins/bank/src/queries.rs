//! The bank's queries over the `balances` projection: one account's balance, and an owner's
//! accounts (by account id, paged with a cursor).
//!
//! Parameters arrive as strings; every bad one is reported at once (`invalid-parameters`), and
//! an empty optional parameter counts as absent.

use cairn_sdk::{
    Direction, Find, Query, QueryError, ReadModelError, ReadModelRead, ReadModelReadExt, Validation, params,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{BALANCES, BalanceDocument};

/// The page size of `accounts-by-owner` when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `limit` of `accounts-by-owner`.
pub const MAX_LIMIT: u32 = 200;

const LIMIT_MESSAGE: &str = "The limit must be a whole number from 1 to 200";

/// Parameters of `account-balance`.
#[derive(Debug, Deserialize)]
pub struct AccountBalanceParams {
    /// Which account (required).
    #[serde(default)]
    pub account_id: Option<String>,
}

/// One account's balance document; 404 for an account the projection has not seen.
#[derive(Debug, Default)]
pub struct AccountBalance;

impl Query for AccountBalance {
    const NAME: &'static str = "account-balance";
    const PROJECTION: &'static str = "balances";
    const DESCRIPTION: &'static str = "One account's owner, balance in cents and stream version.";
    type Params = AccountBalanceParams;

    fn run(&self, params: AccountBalanceParams, model: &dyn ReadModelRead) -> Result<Value, QueryError> {
        let mut validation = Validation::new();
        let account_id =
            required(&mut validation, "account_id", params.account_id.as_deref(), "The account id is required");
        params::check(&mut validation)?;
        let document = model
            .get_as::<BalanceDocument>(BALANCES, account_id)?
            .ok_or_else(|| QueryError::NotFound(format!("Account {account_id} does not exist")))?;
        serde_json::to_value(document).map_err(|e| QueryError::Failed(e.to_string()))
    }
}

/// Parameters of `accounts-by-owner`.
#[derive(Debug, Deserialize)]
pub struct AccountsByOwnerParams {
    /// Whose accounts (required, matched exactly).
    #[serde(default)]
    pub owner: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// An owner's accounts by account id: `{"accounts": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Default)]
pub struct AccountsByOwner;

impl Query for AccountsByOwner {
    const NAME: &'static str = "accounts-by-owner";
    const PROJECTION: &'static str = "balances";
    const DESCRIPTION: &'static str = "An owner's accounts with their balances, by account id; paged.";
    type Params = AccountsByOwnerParams;

    fn run(&self, params: AccountsByOwnerParams, model: &dyn ReadModelRead) -> Result<Value, QueryError> {
        let mut validation = Validation::new();
        let owner = required(&mut validation, "owner", params.owner.as_deref(), "The owner is required");
        let limit = params::parse_optional::<u32>(&mut validation, "limit", params.limit.as_deref(), LIMIT_MESSAGE);
        if let Some(limit) = limit {
            validation.require((1..=MAX_LIMIT).contains(&limit), "limit", LIMIT_MESSAGE);
        }
        params::check(&mut validation)?;
        let cursor = params.cursor.filter(|c| !c.trim().is_empty());
        let given = cursor.is_some();
        let find = Find::new()
            .eq("owner", owner)
            .order_by("account_id", Direction::Ascending)
            .limit(limit.unwrap_or(DEFAULT_LIMIT))
            .after(cursor);
        let page = model.find(BALANCES, &find).map_err(|error| match error {
            ReadModelError::Invalid(_) if given => QueryError::invalid("cursor", "The cursor is not valid"),
            other => other.into(),
        })?;
        let next_cursor = page.next_cursor.clone();
        Ok(json!({ "accounts": page.bodies(), "next_cursor": next_cursor }))
    }
}

/// A required, non-empty text parameter (trimmed).
fn required<'a>(validation: &mut Validation, field: &str, value: Option<&'a str>, message: &str) -> &'a str {
    let value = value.map(str::trim).unwrap_or_default();
    validation.require(!value.is_empty(), field, message);
    value
}
