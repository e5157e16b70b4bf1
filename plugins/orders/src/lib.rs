//! # orders: orders with a read side, as a Cairn domain
//!
//! An order is created for a user with a total in cents and a currency, then confirmed or
//! cancelled (a confirmed order may still be cancelled; a cancelled one accepts nothing). The
//! read side keeps two projections: `orders` (one document per order, for the lists by user and
//! by status) and `user_dashboard_stats` (running totals per user, kept with `increment`).
//!
//! Two cargo features build the versions the read-side tests deploy over this one:
//! `next` (0.2.0: the `orders` projection becomes version 2 and its documents gain a formatted
//! `total`, so the host rebuilds it while queries keep reading version 1) and `faulty` (0.4.0:
//! as 0.1.0, except that the `orders` projector traps on an `OrderCreated` for the user
//! `trap-me`; `user_dashboard_stats` is unaffected).

use cairn_sdk::{Aggregate, CommandSpec, IdSource, Rejection, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The semantic version this build reports.
pub const VERSION: &str = if cfg!(feature = "faulty") {
    "0.4.0"
} else if cfg!(feature = "next") {
    "0.2.0"
} else {
    env!("CARGO_PKG_VERSION")
};

cairn_sdk::export_domain! {
    name: "orders",
    version: VERSION,
    description: "Takes orders (create, confirm, cancel) and keeps order lists and per-user statistics for queries.",
    aggregates: [Order],
    projectors: [OrdersProjection, UserDashboardStats],
    queries: [OrdersByUser, OrdersByStatus, UserDashboard],
}

mod projections;
mod queries;

pub use projections::{
    ORDER_TOTALS, ORDERS, OrderDocument, OrderTotal, OrdersProjection, USER_STATS, UserDashboardStats, UserStats,
    format_total,
};
pub use queries::{OrdersByStatus, OrdersByUser, UserDashboard};

/// Longest user id, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;
/// Longest cancellation reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// The currency of an order created without one.
pub const DEFAULT_CURRENCY: &str = "EUR";

/// Commands an order accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum OrderCommand {
    /// Creates an order; the host mints its id. Fields are read loosely and checked all at once.
    CreateOrder {
        /// The user who orders: a non-empty string of at most 128 characters.
        #[serde(default)]
        user_id: Value,
        /// The total in cents: an integer greater than 0.
        #[serde(default)]
        total_cents: Value,
        /// Three uppercase letters (ISO 4217); `EUR` when absent or null.
        #[serde(default)]
        currency: Value,
    },
    /// Confirms a pending order.
    ConfirmOrder {
        /// Which order (the host reads it to address the stream).
        #[serde(default)]
        order_id: Value,
    },
    /// Cancels an order, pending or confirmed.
    CancelOrder {
        /// Which order.
        #[serde(default)]
        order_id: Value,
        /// Why, for the audit trail (at most 500 characters).
        #[serde(default)]
        reason: Option<String>,
    },
}

/// What happened to orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OrderEvent {
    /// An order was created.
    OrderCreated {
        /// Who ordered.
        user_id: String,
        /// The total in cents, greater than 0.
        total_cents: i64,
        /// Three uppercase letters.
        currency: String,
    },
    /// An order was confirmed.
    OrderConfirmed {},
    /// An order was cancelled.
    OrderCancelled {
        /// Why, if given.
        #[serde(default)]
        reason: Option<String>,
    },
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, not yet confirmed.
    Pending,
    /// Confirmed.
    Confirmed,
    /// Cancelled; final.
    Cancelled,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 3] = [Status::Pending, Status::Confirmed, Status::Cancelled];

    /// The status as documents and parameters spell it (`pending`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Reads a status spelled as [`Status::as_str`] does.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// An order's state, folded from its events.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Order {
    /// None before `OrderCreated`.
    status: Option<Status>,
    user_id: String,
    total_cents: i64,
    currency: String,
}

impl Aggregate for Order {
    const NAME: &'static str = "order";
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::new("create-order", IdSource::Minted, "Creates an order for a user."),
        CommandSpec::new("confirm-order", IdSource::Field("order_id"), "Confirms a pending order."),
        CommandSpec::new("cancel-order", IdSource::Field("order_id"), "Cancels an order that is not cancelled yet."),
    ];
    const EVENT_TYPES: &'static [&'static str] = &["OrderCreated", "OrderConfirmed", "OrderCancelled"];
    // Streams a later version wrote stay readable after a rollback: skip its new event types.
    const IGNORE_UNKNOWN_EVENTS: bool = true;
    type Command = OrderCommand;
    type Event = OrderEvent;

    fn apply(&mut self, event: OrderEvent) {
        match event {
            OrderEvent::OrderCreated { user_id, total_cents, currency } => {
                self.status = Some(Status::Pending);
                self.user_id = user_id;
                self.total_cents = total_cents;
                self.currency = currency;
            }
            OrderEvent::OrderConfirmed {} => self.status = Some(Status::Confirmed),
            OrderEvent::OrderCancelled { .. } => self.status = Some(Status::Cancelled),
        }
    }

    fn decide(&self, id: &str, command: OrderCommand) -> Result<Vec<OrderEvent>, Rejection> {
        match command {
            OrderCommand::CreateOrder { user_id, total_cents, currency } => {
                if self.status.is_some() {
                    return Err(Rejection::new("order-already-exists", format!("Order {id} already exists")));
                }
                Ok(vec![create(&user_id, &total_cents, &currency)?])
            }
            OrderCommand::ConfirmOrder { .. } => match self.status {
                None => Err(not_found(id)),
                Some(Status::Cancelled) => Err(Rejection::new(
                    "order-cancelled",
                    format!("Order {id} is cancelled; a cancelled order cannot be confirmed"),
                )),
                Some(Status::Confirmed) => {
                    Err(Rejection::new("order-already-confirmed", format!("Order {id} is already confirmed")))
                }
                Some(Status::Pending) => Ok(vec![OrderEvent::OrderConfirmed {}]),
            },
            OrderCommand::CancelOrder { reason, .. } => {
                match self.status {
                    None => return Err(not_found(id)),
                    Some(Status::Cancelled) => {
                        return Err(Rejection::new(
                            "order-already-cancelled",
                            format!("Order {id} is already cancelled"),
                        ));
                    }
                    Some(Status::Pending | Status::Confirmed) => {}
                }
                let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
                Validation::new()
                    .require(
                        reason.as_ref().is_none_or(|r| r.chars().count() <= MAX_REASON_CHARS),
                        "reason",
                        "The reason must be at most 500 characters",
                    )
                    .finish()?;
                Ok(vec![OrderEvent::OrderCancelled { reason }])
            }
        }
    }
}

fn not_found(id: &str) -> Rejection {
    Rejection::new("order-not-found", format!("Order {id} does not exist"))
}

/// Checks every field of `create-order` at once and builds its event.
fn create(user_id: &Value, total_cents: &Value, currency: &Value) -> Result<OrderEvent, Rejection> {
    let mut validation = Validation::new();
    let user = user_id.as_str().map(str::trim);
    let problem = match user {
        None if !user_id.is_null() => Some("The user id must be a string"),
        None | Some("") => Some("The user id is required"),
        Some(user) if user.chars().count() > MAX_USER_ID_CHARS => Some("The user id must be at most 128 characters"),
        Some(_) => None,
    };
    if let Some(message) = problem {
        validation.require(false, "user_id", message);
    }
    let total = total_cents.as_i64().filter(|t| *t > 0);
    validation.require(total.is_some(), "total_cents", "The total must be a whole number of cents greater than 0");
    let currency = match currency {
        Value::Null => Some(DEFAULT_CURRENCY),
        Value::String(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) => Some(code.as_str()),
        _ => None,
    };
    validation.require(currency.is_some(), "currency", "The currency must be 3 uppercase letters (ISO 4217)");
    validation.finish()?;
    Ok(OrderEvent::OrderCreated {
        user_id: user.unwrap_or_default().to_string(),
        total_cents: total.unwrap_or_default(),
        currency: currency.unwrap_or(DEFAULT_CURRENCY).to_string(),
    })
}

#[cfg(test)]
mod tests;
