//! Data every backend and every read model can hold (issue 13): an event with a NUL character
//! or nested deeper than `limits.max_event_depth` is refused with 422 `unstorable-event`, naming
//! the event and the place (a JSON pointer), before anything is stored; other commands and other
//! domains go on. A history larger than `limits.max_read_mib` is refused with 422, and stream
//! pages stop early at the same bound. A queued command meets the same rule when it runs.

use cairn_tests::{ORDERS_COMPONENT, UNSTORABLE_COMPONENT};
use serde_json::json;

use super::TestHost;
use super::read_side::{position, query};

#[tokio::test]
async fn an_order_whose_user_id_holds_a_nul_is_refused_by_field_and_the_projections_go_on() {
    let host = super::read_side::start(ORDERS_COMPONENT).await;
    let refused = host.command("orders", "create-order", json!({"user_id": "ann\u{0}", "total_cents": 100})).await;
    let refused = refused.unwrap();
    refused.expect_problem(422, "unstorable-event");
    assert_eq!(refused.body["pointer"], "/user_id", "{refused:#?}");
    assert_eq!(refused.body["event_type"], "OrderCreated");
    assert_eq!(refused.body["event_index"], 1);
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("NUL") && detail.contains("/user_id"), "{detail}");

    // In a batch: the failing command is named, and nothing of the batch is stored.
    let order = |user: &str| json!({"command": "create-order", "payload": {"user_id": user, "total_cents": 100}});
    let batch = json!({"commands": [order("bob"), order("\u{0}bob")]});
    let refused = host.post_raw("/v1/domains/orders/batch", batch.to_string(), &[]).await.unwrap();
    refused.expect_problem(422, "unstorable-event");
    assert_eq!((&refused.body["failed_index"], &refused.body["pointer"]), (&json!(2), &json!("/user_id")));

    let ok = host.command("orders", "create-order", json!({"user_id": "ann", "total_cents": 100})).await.unwrap();
    assert_eq!(position(ok.expect(201)), 1, "the refused order stored nothing");
    let orders = query(&host, "orders-by-user", "user_id=ann&min_position=1&wait_ms=5000").await;
    assert_eq!(orders.expect(200).body["data"]["orders"].as_array().unwrap().len(), 1, "{orders:#?}");
    let stats = query(&host, "user-dashboard", "user_id=ann&min_position=1&wait_ms=5000").await;
    assert_eq!(stats.expect(200).body["data"]["total_orders"], 1, "{stats:#?}");
}

#[tokio::test]
async fn a_queued_command_whose_event_cannot_be_stored_is_rejected_not_retried() {
    let host = TestHost::start(&[ORDERS_COMPONENT]).await.unwrap();
    let body = json!({"user_id": "\u{0}", "total_cents": 100}).to_string();
    let path = "/v1/domains/orders/commands/create-order";
    let accepted = host.post_raw(path, body, &[("prefer", "respond-async")]).await.unwrap();
    let url = accepted.expect(202).body["status_url"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let job = loop {
        let job = host.get(&url).await.unwrap().body;
        if job["state"] != "queued" && job["state"] != "running" {
            break job;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "rejected", "{job}");
    assert!(job.to_string().contains("/user_id"), "{job}");
    let ok = host.command("orders", "create-order", json!({"user_id": "ann", "total_cents": 100})).await.unwrap();
    assert_eq!(position(ok.expect(201)), 1, "the queued command stored nothing");
}

#[tokio::test]
async fn a_thousand_levels_deep_event_fails_alone_while_another_domain_commits() {
    let host = TestHost::start_with(&[UNSTORABLE_COMPONENT, ORDERS_COMPONENT], |config| {
        config.limits.deadline_ms = 5_000;
    })
    .await
    .unwrap();
    let orders = (0..200).map(|i| host.command("orders", "create-order", json!({"user_id": format!("u{i}"), "total_cents": 100})));
    let deep = (0..10).map(|i| {
        let command = if i % 2 == 0 { "nest" } else { "nest-in-handler" };
        host.command("unstorable", command, json!({"id": format!("n{i}"), "depth": 1_000}))
    });
    let (orders, deep) = tokio::join!(futures::future::join_all(orders), futures::future::join_all(deep));
    for reply in orders {
        reply.unwrap().expect(201);
    }
    for reply in deep {
        let reply = reply.unwrap();
        reply.expect_problem(422, "unstorable-event");
        assert_eq!(reply.body["limit"], "limits.max_event_depth", "{reply:#?}");
        assert!(reply.body["pointer"].as_str().unwrap().starts_with("/0/0/0"), "{reply:#?}");
    }
    for i in 0..10 {
        let events = host.stream_events("unstorable", &format!("nest-n{i}")).await.unwrap();
        assert!(events.is_empty(), "nothing of a refused unit of work is stored: {events:?}");
    }
    // The bound is `limits.max_event_depth` (64 by default): 64 levels are stored, 65 are not.
    host.command("unstorable", "nest", json!({"id": "edge", "depth": 64})).await.unwrap().expect(201);
    let over = host.command("unstorable", "nest", json!({"id": "edge", "depth": 65})).await.unwrap();
    over.expect_problem(422, "unstorable-event");
    assert_eq!(over.body["pointer"], "/0".repeat(64));
    host.get("/readyz").await.unwrap().expect(200);
}

#[tokio::test]
async fn a_history_over_the_read_bound_is_refused_and_stream_pages_stop_at_it() {
    let mut host = TestHost::start_with(&[UNSTORABLE_COMPONENT], |config| config.limits.max_read_mib = 1).await.unwrap();
    let note = |n: usize| json!({"id": "h", "text": format!("{n}{}", "x".repeat(300 << 10))});
    for n in 1..=4 {
        host.command("unstorable", "note", note(n)).await.unwrap().expect(if n == 1 { 201 } else { 200 });
    }
    // Four notes of 300 KiB weigh more than 1 MiB, more than one read may load. The aggregate
    // keeps its state (0.1.2): without a kept state (a restart forgets it) the host folds the
    // history into it a bounded page at a time, so the next note is decided all the same.
    host.restart().await.unwrap();
    host.command("unstorable", "note", note(5)).await.unwrap().expect(200);
    // A handler that loads the history gets a short read; its decision is not committed.
    let refused = host.command("unstorable", "note-in-handler", note(6)).await.unwrap();
    refused.expect_problem(422, "history-too-large");
    assert_eq!(refused.body["limit"], "limits.max_read_mib");
    assert_eq!(host.stream_events("unstorable", "nest-h").await.unwrap().len(), 5, "nothing appended");
    // Below the bound the same handler commits.
    let small = |text: &str| json!({"id": "small", "text": text});
    host.command("unstorable", "note-in-handler", small("a")).await.unwrap().expect(201);
    host.command("unstorable", "note-in-handler", small("b")).await.unwrap().expect(200);

    let page = host.get("/v1/domains/unstorable/streams/nest-h?limit=100").await.unwrap();
    assert_eq!(page.expect(200).body["events"].as_array().unwrap().len(), 3, "a page stops before 1 MiB");
    assert_eq!(page.body["next_from"], 4);
    let rest = host.get("/v1/domains/unstorable/streams/nest-h?from=4&limit=100").await.unwrap();
    assert_eq!(rest.expect(200).body["events"].as_array().unwrap().len(), 2);
    assert!(rest.body["next_from"].is_null());
}
