//! The two projections of the orders domain: `orders` (one document per order) and
//! `user_dashboard_stats` (running totals per user, with a helper collection that remembers each
//! counted order's total so a cancellation can take it back out).

use cairn_sdk::{ProjectError, Projector, ReadModel, ReadModelExt, ReadModelReadExt, Recorded};
use serde::{Deserialize, Serialize};

use crate::{Order, OrderEvent, Status};

/// The `orders` projection's collection: one [`OrderDocument`] per order id.
pub const ORDERS: &str = "orders";
/// The `user_dashboard_stats` projection's collection: one [`UserStats`] per user id.
pub const USER_STATS: &str = "user_stats";
/// The `user_dashboard_stats` projection's helper collection: one [`OrderTotal`] per order id
/// still counted in its user's statistics.
pub const ORDER_TOTALS: &str = "order_totals";

/// A document of the `orders` collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDocument {
    /// The order id (the stream `order-<id>`).
    pub order_id: String,
    /// Who ordered.
    pub user_id: String,
    /// Where it stands.
    pub status: Status,
    /// The total in cents.
    pub total_cents: i64,
    /// Three uppercase letters.
    pub currency: String,
    /// When the order was created, microseconds since the Unix epoch.
    pub created_at: i64,
    /// When its last event was recorded, microseconds since the Unix epoch.
    pub updated_at: i64,
    /// The total for people, `12.34 EUR` (version 2 of the projection, built by 0.2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<String>,
}

/// `1234, "EUR"` → `12.34 EUR`.
pub fn format_total(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", cents / 100, cents % 100)
}

/// Keeps one document per order in `orders`.
#[derive(Debug, Default)]
pub struct OrdersProjection;

impl Projector for OrdersProjection {
    const NAME: &'static str = "orders";
    const VERSION: u32 = if cfg!(feature = "next") { 2 } else { 1 };
    const DESCRIPTION: &'static str = "One document per order: its user, status, total and times.";
    const EVENT_TYPES: &'static [&'static str] = &["OrderCreated", "OrderConfirmed", "OrderCancelled"];
    type Event = OrderEvent;

    fn project(&self, event: &Recorded<OrderEvent>, model: &mut dyn ReadModel) -> Result<(), ProjectError> {
        let id = order_id(event)?;
        let at = event.recorded_at_micros;
        let status = match &event.event {
            OrderEvent::OrderCreated { user_id, total_cents, currency } => {
                #[cfg(feature = "faulty")]
                if user_id == "trap-me" {
                    panic!("the faulty build traps on orders of `trap-me` (order {id})");
                }
                let document = OrderDocument {
                    order_id: id.to_string(),
                    user_id: user_id.clone(),
                    status: Status::Pending,
                    total_cents: *total_cents,
                    currency: currency.clone(),
                    created_at: at,
                    updated_at: at,
                    total: cfg!(feature = "next").then(|| format_total(*total_cents, currency)),
                };
                return Ok(model.upsert_as(ORDERS, id, &document)?);
            }
            OrderEvent::OrderConfirmed {} => Status::Confirmed,
            OrderEvent::OrderCancelled { .. } => Status::Cancelled,
        };
        let mut document: OrderDocument = model
            .get_as(ORDERS, id)?
            .ok_or_else(|| ProjectError::new(format!("order `{id}` has no document: no OrderCreated before it")))?;
        document.status = status;
        document.updated_at = at;
        Ok(model.upsert_as(ORDERS, id, &document)?)
    }
}

/// A document of the `user_stats` collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStats {
    /// The user.
    pub user_id: String,
    /// Orders created and not cancelled.
    pub total_orders: i64,
    /// The sum of their totals, in cents.
    pub lifetime_value_cents: i64,
    /// `lifetime_value_cents / total_orders`, rounded down; 0 without orders.
    pub average_order_value_cents: i64,
    /// When the user's latest order was created (cancelled or not), microseconds; null if never.
    pub last_order_at: Option<i64>,
}

impl UserStats {
    /// The statistics of a user without orders.
    pub fn empty(user_id: &str) -> Self {
        Self {
            user_id: user_id.to_string(),
            total_orders: 0,
            lifetime_value_cents: 0,
            average_order_value_cents: 0,
            last_order_at: None,
        }
    }
}

/// A document of the `order_totals` collection: what an order added to its user's statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTotal {
    /// Whose statistics it counts in.
    pub user_id: String,
    /// Its total, in cents.
    pub total_cents: i64,
}

/// Keeps per-user order statistics in `user_stats`, incrementally.
#[derive(Debug, Default)]
pub struct UserDashboardStats;

impl Projector for UserDashboardStats {
    const NAME: &'static str = "user_dashboard_stats";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "Per user: live orders, lifetime value, average order value, last order time.";
    const EVENT_TYPES: &'static [&'static str] = &["OrderCreated", "OrderCancelled"];
    type Event = OrderEvent;

    fn project(&self, event: &Recorded<OrderEvent>, model: &mut dyn ReadModel) -> Result<(), ProjectError> {
        let id = order_id(event)?;
        match &event.event {
            OrderEvent::OrderCreated { user_id, total_cents, .. } => {
                if model.get(ORDER_TOTALS, id)?.is_some() {
                    return Ok(()); // already counted
                }
                let counted = OrderTotal { user_id: user_id.clone(), total_cents: *total_cents };
                model.upsert_as(ORDER_TOTALS, id, &counted)?;
                adjust(model, user_id, 1, *total_cents, Some(event.recorded_at_micros))
            }
            OrderEvent::OrderCancelled { .. } => {
                let Some(counted) = model.get_as::<OrderTotal>(ORDER_TOTALS, id)? else {
                    return Ok(()); // never counted, or already taken out
                };
                model.delete(ORDER_TOTALS, id)?;
                adjust(model, &counted.user_id, -1, -counted.total_cents, None)
            }
            OrderEvent::OrderConfirmed {} => Ok(()),
        }
    }
}

/// Adds `orders` and `cents` to `user_id`'s running totals, then rewrites the derived fields.
fn adjust(
    model: &mut dyn ReadModel,
    user_id: &str,
    orders: i64,
    cents: i64,
    created_at: Option<i64>,
) -> Result<(), ProjectError> {
    let total_orders = model.increment(USER_STATS, user_id, "total_orders", orders as f64)? as i64;
    let lifetime = model.increment(USER_STATS, user_id, "lifetime_value_cents", cents as f64)? as i64;
    let before = model.get(USER_STATS, user_id)?.unwrap_or_default();
    let last_order_at = before.get("last_order_at").and_then(serde_json::Value::as_i64).max(created_at);
    let stats = UserStats {
        user_id: user_id.to_string(),
        total_orders,
        lifetime_value_cents: lifetime,
        average_order_value_cents: if total_orders > 0 { lifetime.div_euclid(total_orders) } else { 0 },
        last_order_at,
    };
    Ok(model.upsert_as(USER_STATS, user_id, &stats)?)
}

/// The order id of the event's stream (`order-<id>`).
fn order_id(event: &Recorded<OrderEvent>) -> Result<&str, ProjectError> {
    use cairn_sdk::Aggregate;
    event
        .aggregate_id(Order::NAME)
        .ok_or_else(|| ProjectError::new(format!("`{}` is not an order stream", event.stream)))
}
