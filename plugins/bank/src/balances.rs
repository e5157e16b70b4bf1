//! The bank's projection `balances`: one document per account (owner, balance in cents, and the
//! version of the account's stream it reflects), kept from every account event.

use cairn_sdk::{Aggregate, ProjectError, Projector, ReadModel, ReadModelExt, ReadModelReadExt, Recorded};
use serde::{Deserialize, Serialize};

use crate::{Account, AccountEvent};

/// The `balances` projection's collection: one [`BalanceDocument`] per account id.
pub const BALANCES: &str = "balances";

/// A document of the `balances` collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceDocument {
    /// The account id (the stream `account-<id>`).
    pub account_id: String,
    /// Who holds the account.
    pub owner: String,
    /// The balance, in cents.
    pub balance: i64,
    /// The version of the account's stream this balance includes: a client that got version `n`
    /// from a command reads its own write once the document's version is at least `n`.
    pub version: u64,
}

/// Keeps one balance document per account in `balances`.
#[derive(Debug, Default)]
pub struct BalancesProjection;

impl Projector for BalancesProjection {
    const NAME: &'static str = "balances";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "One document per account: its owner, balance in cents and stream version.";
    const EVENT_TYPES: &'static [&'static str] = &["AccountOpened", "MoneyDeposited", "MoneyWithdrawn"];
    type Event = AccountEvent;

    fn project(&self, event: &Recorded<AccountEvent>, model: &mut dyn ReadModel) -> Result<(), ProjectError> {
        let id = event
            .aggregate_id(Account::NAME)
            .ok_or_else(|| ProjectError::new(format!("`{}` is not an account stream", event.stream)))?;
        let existing: Option<BalanceDocument> = model.get_as(BALANCES, id)?;
        if existing.as_ref().is_some_and(|document| document.version >= event.version) {
            return Ok(()); // already counted
        }
        let document = match (&event.event, existing) {
            (AccountEvent::AccountOpened { owner, .. }, _) => {
                BalanceDocument { account_id: id.to_string(), owner: owner.clone(), balance: 0, version: event.version }
            }
            (AccountEvent::MoneyDeposited { amount }, Some(before)) => {
                BalanceDocument { balance: before.balance.saturating_add(*amount), version: event.version, ..before }
            }
            (AccountEvent::MoneyWithdrawn { amount }, Some(before)) => {
                BalanceDocument { balance: before.balance.saturating_sub(*amount), version: event.version, ..before }
            }
            (_, None) => {
                return Err(ProjectError::new(format!(
                    "account `{id}` has no balance document: money moved before AccountOpened"
                )));
            }
        };
        Ok(model.upsert_as(BALANCES, id, &document)?)
    }
}
