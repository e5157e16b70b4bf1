//! Native given/when/then tests of the order rules.

use cairn_sdk::dispatch::{DomainPlugin, DomainReadSide};
use cairn_sdk::testing::{given, given_no_history};
use serde_json::json;

use super::*;

fn created() -> OrderEvent {
    OrderEvent::OrderCreated { user_id: "u1".into(), total_cents: 1_250, currency: "EUR".into() }
}

fn cancelled() -> OrderEvent {
    OrderEvent::OrderCancelled { reason: None }
}

#[test]
fn creating_records_the_order_with_euro_by_default() {
    given_no_history::<Order>()
        .when_json("create-order", json!({"user_id": " u1 ", "total_cents": 1_250}))
        .then([created()]);
    given_no_history::<Order>()
        .when_json("create-order", json!({"user_id": "u1", "total_cents": 1_250, "currency": "USD"}))
        .then([OrderEvent::OrderCreated { user_id: "u1".into(), total_cents: 1_250, currency: "USD".into() }]);
}

#[test]
fn creating_reports_every_invalid_field_at_once() {
    let rejection = given_no_history::<Order>()
        .when_json("create-order", json!({"user_id": "", "total_cents": 0, "currency": "eur"}))
        .then_rejected_with_fields("validation-failed", &["user_id", "total_cents", "currency"]);
    let message = |field: &str| rejection.fields.iter().find(|f| f.field == field).expect("field").message.clone();
    assert_eq!(message("user_id"), "The user id is required");
    assert_eq!(message("total_cents"), "The total must be a whole number of cents greater than 0");
    assert_eq!(message("currency"), "The currency must be 3 uppercase letters (ISO 4217)");
    given_no_history::<Order>()
        .when_json("create-order", json!({}))
        .then_rejected_with_fields("validation-failed", &["user_id", "total_cents"]);
}

#[test]
fn creating_checks_types_and_lengths() {
    for total in [json!(12.5), json!("100"), json!(-1), json!(null)] {
        given_no_history::<Order>()
            .when_json("create-order", json!({"user_id": "u1", "total_cents": total}))
            .then_rejected_with_fields("validation-failed", &["total_cents"]);
    }
    for currency in [json!("EU"), json!("EURO"), json!(978), json!("E1R")] {
        given_no_history::<Order>()
            .when_json("create-order", json!({"user_id": "u1", "total_cents": 1, "currency": currency}))
            .then_rejected_with_fields("validation-failed", &["currency"]);
    }
    let rejection = given_no_history::<Order>()
        .when_json("create-order", json!({"user_id": 42, "total_cents": 1}))
        .then_rejected_with_fields("validation-failed", &["user_id"]);
    assert_eq!(rejection.fields[0].message, "The user id must be a string");
    given_no_history::<Order>()
        .when_json("create-order", json!({"user_id": "é".repeat(129), "total_cents": 1}))
        .then_rejected_with_fields("validation-failed", &["user_id"]);
    given_no_history::<Order>()
        .when_json("create-order", json!({"user_id": "é".repeat(128), "total_cents": 1}))
        .then([OrderEvent::OrderCreated { user_id: "é".repeat(128), total_cents: 1, currency: "EUR".into() }]);
}

#[test]
fn an_order_is_created_once() {
    given::<Order>([created()])
        .when_json("create-order", json!({"user_id": "u1", "total_cents": 1}))
        .then_rejected("order-already-exists");
}

#[test]
fn confirming_follows_the_lifecycle() {
    given_no_history::<Order>()
        .when_json("confirm-order", json!({"order_id": "test-1"}))
        .then_rejected("order-not-found");
    given::<Order>([created()])
        .when_json("confirm-order", json!({"order_id": "test-1"}))
        .then([OrderEvent::OrderConfirmed {}]);
    given::<Order>([created(), OrderEvent::OrderConfirmed {}])
        .when_json("confirm-order", json!({"order_id": "test-1"}))
        .then_rejected("order-already-confirmed");
    given::<Order>([created(), cancelled()])
        .when_json("confirm-order", json!({"order_id": "test-1"}))
        .then_rejected("order-cancelled");
}

#[test]
fn cancelling_follows_the_lifecycle() {
    given_no_history::<Order>()
        .when_json("cancel-order", json!({"order_id": "test-1"}))
        .then_rejected("order-not-found");
    given::<Order>([created()])
        .when_json("cancel-order", json!({"order_id": "test-1", "reason": " changed my mind "}))
        .then([OrderEvent::OrderCancelled { reason: Some("changed my mind".into()) }]);
    given::<Order>([created(), OrderEvent::OrderConfirmed {}])
        .when_json("cancel-order", json!({"order_id": "test-1", "reason": ""}))
        .then([cancelled()]);
    given::<Order>([created(), cancelled()])
        .when_json("cancel-order", json!({"order_id": "test-1"}))
        .then_rejected("order-already-cancelled");
    given::<Order>([created()])
        .when_json("cancel-order", json!({"order_id": "test-1", "reason": "x".repeat(501)}))
        .then_rejected_with_fields("validation-failed", &["reason"]);
}

#[test]
fn events_serialize_as_the_documented_shapes() {
    let encode = |e: &OrderEvent| {
        let event = cairn_sdk::dispatch::encode_event(e).expect("encodes");
        (event.event_type, serde_json::from_str::<serde_json::Value>(&event.data).expect("JSON"))
    };
    assert_eq!(
        encode(&created()),
        ("OrderCreated".into(), json!({"user_id": "u1", "total_cents": 1_250, "currency": "EUR"}))
    );
    assert_eq!(encode(&OrderEvent::OrderConfirmed {}), ("OrderConfirmed".into(), json!({})));
    assert_eq!(encode(&cancelled()), ("OrderCancelled".into(), json!({"reason": null})));
}

#[test]
fn the_domain_describes_itself() {
    let info = Domain::info();
    assert_eq!(info.name, "orders");
    assert_eq!(info.version, VERSION);
    let commands: Vec<&str> = info.commands.iter().map(|(_, spec)| spec.name).collect();
    assert_eq!(commands, ["create-order", "confirm-order", "cancel-order"]);
    let projections: Vec<(String, u32)> = Domain::projections().into_iter().map(|p| (p.name, p.version)).collect();
    let orders_version = if cfg!(feature = "next") { 2 } else { 1 };
    assert_eq!(projections, [("orders".to_string(), orders_version), ("user_dashboard_stats".to_string(), 1)]);
    let queries: Vec<(String, String)> = Domain::queries().into_iter().map(|q| (q.name, q.projection)).collect();
    assert_eq!(
        queries,
        [
            ("orders-by-user".to_string(), "orders".to_string()),
            ("orders-by-status".to_string(), "orders".to_string()),
            ("user-dashboard".to_string(), "user_dashboard_stats".to_string()),
        ]
    );
}
