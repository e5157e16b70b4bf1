//! The orders domain's queries, run over read models its projectors built.

use cairn_sdk::testing::{START_MICROS, TICK_MICROS, project, project_on, query};
use cairn_sdk::{MemoryReadModel, QueryError};
use orders::{OrderEvent, OrdersByStatus, OrdersByUser, OrdersProjection, UserDashboard, UserDashboardStats};
use serde_json::{Value, json};

fn created(user: &str, cents: i64) -> OrderEvent {
    OrderEvent::OrderCreated { user_id: user.into(), total_cents: cents, currency: "EUR".into() }
}

/// Orders o01..o12: odd ones for u1, even ones for u2; o03 and o04 confirmed, o05 cancelled.
/// Created in id order, so newest first is descending id order.
fn events() -> Vec<(String, OrderEvent)> {
    let mut events: Vec<(String, OrderEvent)> =
        (1..=12).map(|i| (format!("order-o{i:02}"), created(if i % 2 == 1 { "u1" } else { "u2" }, 100 * i))).collect();
    events.push(("order-o03".into(), OrderEvent::OrderConfirmed {}));
    events.push(("order-o04".into(), OrderEvent::OrderConfirmed {}));
    events.push(("order-o05".into(), OrderEvent::OrderCancelled { reason: None }));
    events
}

/// Both projections over the same events (each scenario numbers and times them the same way).
fn model() -> MemoryReadModel {
    let mut orders = project::<OrdersProjection>();
    for (stream, event) in events() {
        orders = orders.given_on(&stream, [event]);
    }
    let mut stats = project_on::<UserDashboardStats>(orders.model());
    for (stream, event) in events() {
        stats = stats.given_on(&stream, [event]);
    }
    stats.model()
}

fn ids(answer: &Value) -> Vec<&str> {
    answer["orders"].as_array().expect("orders").iter().map(|o| o["order_id"].as_str().expect("id")).collect()
}

fn invalid_fields(result: Result<Value, QueryError>) -> Vec<String> {
    match result {
        Err(QueryError::InvalidParameters(rejection)) => {
            assert_eq!(rejection.code, "invalid-parameters");
            rejection.fields.into_iter().map(|f| f.field).collect()
        }
        other => panic!("expected invalid parameters, got {other:?}"),
    }
}

#[test]
fn orders_by_user_come_newest_first() {
    let model = model();
    let answer = query::<OrdersByUser>(&model, &[("user_id", "u1")]).expect("answers");
    assert_eq!(ids(&answer), ["o11", "o09", "o07", "o05", "o03", "o01"]);
    assert_eq!(answer["next_cursor"], Value::Null);
    let first = &answer["orders"][0];
    assert_eq!(first["status"], "pending");
    assert_eq!(first["created_at"], json!(START_MICROS + 10 * TICK_MICROS));
    let confirmed = query::<OrdersByUser>(&model, &[("user_id", "u1"), ("status", "confirmed")]).expect("answers");
    assert_eq!(ids(&confirmed), ["o03"]);
    let nobody = query::<OrdersByUser>(&model, &[("user_id", "nobody")]).expect("answers");
    assert_eq!(nobody, json!({"orders": [], "next_cursor": null}));
}

#[test]
fn orders_by_user_pages_with_the_cursor() {
    let model = model();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let answer =
            query::<OrdersByUser>(&model, &[("user_id", "u2"), ("limit", "4"), ("cursor", &cursor)]).expect("answers");
        pages += 1;
        seen.extend(ids(&answer).into_iter().map(str::to_string));
        match answer["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["o12", "o10", "o08", "o06", "o04", "o02"]);
    assert_eq!(pages, 2);
}

#[test]
fn orders_by_user_reports_every_bad_parameter() {
    let model = model();
    let fields = invalid_fields(query::<OrdersByUser>(&model, &[("status", "shipped"), ("limit", "0")]));
    assert_eq!(fields, ["user_id", "status", "limit"]);
    for limit in ["201", "-1", "ten", "1.5"] {
        let fields = invalid_fields(query::<OrdersByUser>(&model, &[("user_id", "u1"), ("limit", limit)]));
        assert_eq!(fields, ["limit"], "{limit}");
    }
    let fields = invalid_fields(query::<OrdersByUser>(&model, &[("user_id", "u1"), ("cursor", "garbage")]));
    assert_eq!(fields, ["cursor"]);
    let all = query::<OrdersByUser>(&model, &[("user_id", "u1"), ("limit", "200"), ("status", "")]).expect("ok");
    assert_eq!(ids(&all).len(), 6);
}

#[test]
fn orders_by_status_lists_every_user() {
    let model = model();
    let pending = query::<OrdersByStatus>(&model, &[("status", "pending"), ("limit", "3")]).expect("answers");
    assert_eq!(ids(&pending), ["o12", "o11", "o10"]);
    let rest = query::<OrdersByStatus>(
        &model,
        &[("status", "pending"), ("limit", "50"), ("cursor", pending["next_cursor"].as_str().expect("more"))],
    )
    .expect("answers");
    assert_eq!(ids(&rest), ["o09", "o08", "o07", "o06", "o02", "o01"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let cancelled = query::<OrdersByStatus>(&model, &[("status", "cancelled")]).expect("answers");
    assert_eq!(ids(&cancelled), ["o05"]);
    assert_eq!(invalid_fields(query::<OrdersByStatus>(&model, &[])), ["status"]);
    assert_eq!(invalid_fields(query::<OrdersByStatus>(&model, &[("status", "Pending")])), ["status"]);
}

#[test]
fn the_dashboard_answers_for_users_with_and_without_orders() {
    let model = model();
    // u1: o01, o03, o05 (cancelled), o07, o09, o11 → 5 live orders worth 100+300+700+900+1100.
    let u1 = query::<UserDashboard>(&model, &[("user_id", "u1")]).expect("answers");
    assert_eq!(
        u1,
        json!({
            "user_id": "u1", "total_orders": 5, "lifetime_value_cents": 3_100,
            "average_order_value_cents": 620, "last_order_at": START_MICROS + 10 * TICK_MICROS,
        })
    );
    let nobody = query::<UserDashboard>(&model, &[("user_id", "nobody")]).expect("answers");
    assert_eq!(
        nobody,
        json!({
            "user_id": "nobody", "total_orders": 0, "lifetime_value_cents": 0,
            "average_order_value_cents": 0, "last_order_at": null,
        })
    );
    assert_eq!(invalid_fields(query::<UserDashboard>(&model, &[("user_id", " ")])), ["user_id"]);
}
