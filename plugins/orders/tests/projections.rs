//! The orders domain's projections, fed typed events through the SDK's test kit.

use cairn_sdk::testing::{START_MICROS, TICK_MICROS, project};
use orders::{OrderEvent, OrdersProjection, UserDashboardStats, format_total};
use serde_json::{Value, json};

fn created(user: &str, cents: i64) -> OrderEvent {
    OrderEvent::OrderCreated { user_id: user.into(), total_cents: cents, currency: "EUR".into() }
}

fn cancelled() -> OrderEvent {
    OrderEvent::OrderCancelled { reason: Some("changed my mind".into()) }
}

/// The time of the n-th given event (1-based).
fn at(n: i64) -> i64 {
    START_MICROS + (n - 1) * TICK_MICROS
}

/// An `orders` document as this build writes it (0.2.0 adds `total`).
fn order(id: &str, user: &str, status: &str, cents: i64, created_at: i64, updated_at: i64) -> Value {
    let mut doc = json!({
        "order_id": id, "user_id": user, "status": status, "total_cents": cents, "currency": "EUR",
        "created_at": created_at, "updated_at": updated_at,
    });
    if cfg!(feature = "next") {
        doc["total"] = json!(format_total(cents, "EUR"));
    }
    doc
}

#[test]
fn an_order_document_follows_the_order() {
    project::<OrdersProjection>()
        .given_on("order-o1", [created("u1", 1_250)])
        .then_document("orders", "o1", order("o1", "u1", "pending", 1_250, at(1), at(1)))
        .given([OrderEvent::OrderConfirmed {}])
        .then_document("orders", "o1", order("o1", "u1", "confirmed", 1_250, at(1), at(2)))
        .given_on("order-o2", [created("u2", 99)])
        .given_on("order-o1", [cancelled()])
        .then_document("orders", "o1", order("o1", "u1", "cancelled", 1_250, at(1), at(4)))
        .then_document("orders", "o2", order("o2", "u2", "pending", 99, at(3), at(3)))
        .then_count("orders", 2);
}

#[test]
fn totals_format_as_units_and_cents() {
    assert_eq!(format_total(1_234, "EUR"), "12.34 EUR");
    assert_eq!(format_total(5, "USD"), "0.05 USD");
    assert_eq!(format_total(100_000, "JPY"), "1000.00 JPY");
}

#[test]
fn a_change_to_an_order_without_a_document_fails_at_that_event() {
    let failure = project::<OrdersProjection>()
        .given_on("order-o1", [created("u1", 1)])
        .given_on("order-o9", [OrderEvent::OrderConfirmed {}])
        .then_failed();
    assert_eq!(failure.position, Some(2));
    assert!(failure.message.contains("o9"), "{}", failure.message);
}

#[test]
fn events_of_other_streams_fail_clearly() {
    let failure = project::<OrdersProjection>().given_on("basket-1", [created("u1", 1)]).then_failed();
    assert_eq!(failure.position, Some(1));
}

#[test]
fn events_of_unknown_types_are_skipped() {
    project::<OrdersProjection>()
        .given_on("order-o1", [created("u1", 1)])
        .given_raw("OrderShipped", json!({"carrier": "x"}))
        .then_document("orders", "o1", order("o1", "u1", "pending", 1, at(1), at(1)));
}

fn stats(user: &str, orders: i64, lifetime: i64, average: i64, last: Option<i64>) -> Value {
    json!({
        "user_id": user, "total_orders": orders, "lifetime_value_cents": lifetime,
        "average_order_value_cents": average, "last_order_at": last,
    })
}

#[test]
fn user_stats_add_up_orders_and_round_the_average_down() {
    project::<UserDashboardStats>()
        .given_on("order-a", [created("u1", 1_000)])
        .then_document("user_stats", "u1", stats("u1", 1, 1_000, 1_000, Some(at(1))))
        .given_on("order-b", [created("u1", 1_001), OrderEvent::OrderConfirmed {}])
        .given_on("order-c", [created("u2", 7)])
        .then_document("user_stats", "u1", stats("u1", 2, 2_001, 1_000, Some(at(2))))
        .then_document("user_stats", "u2", stats("u2", 1, 7, 7, Some(at(4))))
        .then_document("order_totals", "b", json!({"user_id": "u1", "total_cents": 1_001}))
        .then_count("order_totals", 3);
}

#[test]
fn cancelling_takes_the_order_back_out_of_the_stats() {
    project::<UserDashboardStats>()
        .given_on("order-a", [created("u1", 1_000)])
        .given_on("order-b", [created("u1", 3_000), OrderEvent::OrderConfirmed {}])
        .given_on("order-a", [cancelled()])
        .then_document("user_stats", "u1", stats("u1", 1, 3_000, 3_000, Some(at(2))))
        .then_no_document("order_totals", "a")
        .given_on("order-b", [cancelled()])
        .then_document("user_stats", "u1", stats("u1", 0, 0, 0, Some(at(2))))
        .then_count("order_totals", 0);
}

#[test]
fn a_cancellation_never_counted_changes_nothing() {
    project::<UserDashboardStats>()
        .given_on("order-x", [cancelled()])
        .then_count("user_stats", 0)
        .given_on("order-a", [created("u1", 10)])
        .given_on("order-a", [cancelled()])
        .given_on("order-a", [cancelled()])
        .then_document("user_stats", "u1", stats("u1", 0, 0, 0, Some(at(2))));
}

#[cfg(feature = "faulty")]
#[test]
#[should_panic(expected = "trap-me")]
fn the_faulty_build_traps_on_trap_me() {
    let _ = project::<OrdersProjection>().given_on("order-t", [created("trap-me", 1)]);
}

#[test]
fn trap_me_is_an_ordinary_user_for_the_stats() {
    project::<UserDashboardStats>().given_on("order-t", [created("trap-me", 5)]).then_document(
        "user_stats",
        "trap-me",
        stats("trap-me", 1, 5, 5, Some(at(1))),
    );
}
