//! # bank: bank accounts as a Cairn domain, the peer benchmark's contract
//!
//! An account is opened for an owner under an id the client chooses, then takes deposits and
//! withdrawals of whole cents. Rules: an account opens once; money moves only on an open
//! account; an amount is a whole number of cents greater than 0; a withdrawal never takes the
//! balance below 0. This is the bank of the peer benchmark kit (`../shared/peers`: the same
//! commands, events and answers as its hand-written and cqrs-es servers), so Cairn can be
//! measured against them under the same load.
//!
//! The read side keeps one projection, `balances` (one document per account: owner, balance
//! and the stream version it reflects), read by the queries `account-balance` and
//! `accounts-by-owner`.

use cairn_sdk::{Aggregate, CommandSpec, IdSource, Rejection, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(not(feature = "decide-only"))]
cairn_sdk::export_domain! {
    name: "bank",
    description: "Opens bank accounts, moves money in and out of them without overdrafts, and keeps every account's balance for queries.",
    aggregates: [Account],
    projectors: [BalancesProjection],
    queries: [AccountBalance, AccountsByOwner],
}

// The aggregate alone, as `cargo bench-cairn --sandbox` also runs it linked natively into the
// host (a native domain has no read side): the two differ only in the sandbox.
#[cfg(feature = "decide-only")]
cairn_sdk::export_domain! {
    name: "bank",
    description: "Opens bank accounts and moves money in and out of them without overdrafts.",
    aggregates: [Account],
}

mod balances;
mod queries;

pub use balances::{BALANCES, BalanceDocument, BalancesProjection};
pub use queries::{AccountBalance, AccountsByOwner};

/// Longest owner name, in characters.
pub const MAX_OWNER_CHARS: usize = 200;

/// Commands an account accepts. Fields are read loosely and checked by the rules, so a wrong
/// type is a rejection naming the field, not a decoding error.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum AccountCommand {
    /// Opens an account under the id the client chose.
    OpenAccount {
        /// Which account (the host reads it to address the stream `account-<id>`).
        #[serde(default)]
        account_id: Value,
        /// Who holds it: a non-empty string of at most 200 characters.
        #[serde(default)]
        owner: Value,
    },
    /// Puts money into an open account.
    Deposit {
        /// Which account.
        #[serde(default)]
        account_id: Value,
        /// Cents: a whole number greater than 0.
        #[serde(default)]
        amount: Value,
    },
    /// Takes money out of an open account, never more than its balance.
    Withdraw {
        /// Which account.
        #[serde(default)]
        account_id: Value,
        /// Cents: a whole number greater than 0.
        #[serde(default)]
        amount: Value,
    },
}

/// What happened to accounts. Stored as `{"type": ..., "data": ...}`, the JSON the peers store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    /// An account was opened.
    AccountOpened {
        /// Its id.
        account_id: String,
        /// Who holds it.
        owner: String,
    },
    /// Money was put in, in cents (greater than 0).
    MoneyDeposited {
        /// Cents.
        amount: i64,
    },
    /// Money was taken out, in cents (greater than 0, at most the balance before).
    MoneyWithdrawn {
        /// Cents.
        amount: i64,
    },
}

/// An account's state, folded from its events.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// False before `AccountOpened`.
    opened: bool,
    owner: String,
    /// Cents, never below 0.
    balance: i64,
}

impl Aggregate for Account {
    const NAME: &'static str = "account";
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::new("open-account", IdSource::Field("account_id"), "Opens an account for an owner."),
        CommandSpec::new("deposit", IdSource::Field("account_id"), "Puts cents into an open account."),
        CommandSpec::new(
            "withdraw",
            IdSource::Field("account_id"),
            "Takes cents out of an open account, never more than its balance.",
        ),
    ];
    const EVENT_TYPES: &'static [&'static str] = &["AccountOpened", "MoneyDeposited", "MoneyWithdrawn"];
    // Streams a later version wrote stay readable after a rollback: skip its new event types.
    const IGNORE_UNKNOWN_EVENTS: bool = true;
    type Command = AccountCommand;
    type Event = AccountEvent;

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::AccountOpened { owner, .. } => {
                self.opened = true;
                self.owner = owner;
            }
            AccountEvent::MoneyDeposited { amount } => self.balance = self.balance.saturating_add(amount),
            AccountEvent::MoneyWithdrawn { amount } => self.balance = self.balance.saturating_sub(amount),
        }
    }

    fn decide(&self, id: &str, command: AccountCommand) -> Result<Vec<AccountEvent>, Rejection> {
        match command {
            AccountCommand::OpenAccount { owner, .. } => {
                if self.opened {
                    return Err(Rejection::new("account-already-exists", format!("Account {id} already exists")));
                }
                Ok(vec![AccountEvent::AccountOpened { account_id: id.to_string(), owner: checked_owner(&owner)? }])
            }
            AccountCommand::Deposit { amount, .. } => {
                self.ensure_open(id)?;
                let amount = checked_amount(&amount)?;
                if self.balance.checked_add(amount).is_none() {
                    return Err(Rejection::new(
                        "balance-limit",
                        format!("Account {id} cannot hold more: depositing {amount} cents would overflow its balance"),
                    ));
                }
                Ok(vec![AccountEvent::MoneyDeposited { amount }])
            }
            AccountCommand::Withdraw { amount, .. } => {
                self.ensure_open(id)?;
                let amount = checked_amount(&amount)?;
                if amount > self.balance {
                    return Err(Rejection::new(
                        "insufficient-funds",
                        format!("Account {id} holds {} cents; withdrawing {amount} would overdraw it", self.balance),
                    ));
                }
                Ok(vec![AccountEvent::MoneyWithdrawn { amount }])
            }
        }
    }
}

impl Account {
    /// True once the account was opened.
    pub fn is_open(&self) -> bool {
        self.opened
    }

    /// The balance, in cents.
    pub fn balance(&self) -> i64 {
        self.balance
    }

    /// Who holds the account (empty before it was opened).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn ensure_open(&self, id: &str) -> Result<(), Rejection> {
        if self.opened {
            Ok(())
        } else {
            Err(Rejection::new("account-not-found", format!("Account {id} does not exist")))
        }
    }
}

/// The owner of `open-account`, trimmed: a non-empty string of at most 200 characters.
fn checked_owner(owner: &Value) -> Result<String, Rejection> {
    let text = owner.as_str().map(str::trim);
    let problem = match text {
        None if !owner.is_null() => Some("The owner must be a string"),
        None | Some("") => Some("The owner is required"),
        Some(text) if text.chars().count() > MAX_OWNER_CHARS => Some("The owner must be at most 200 characters"),
        Some(_) => None,
    };
    if let Some(message) = problem {
        Validation::new().require(false, "owner", message).finish()?;
    }
    Ok(text.unwrap_or_default().to_string())
}

/// The amount of a deposit or a withdrawal: a whole number of cents greater than 0.
fn checked_amount(amount: &Value) -> Result<i64, Rejection> {
    let cents = amount.as_i64().filter(|cents| *cents > 0);
    Validation::new()
        .require(cents.is_some(), "amount", "The amount must be a whole number of cents greater than 0")
        .finish()?;
    Ok(cents.unwrap_or_default())
}

#[cfg(test)]
mod tests;
