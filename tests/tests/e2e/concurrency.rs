//! Parallel writers on one stream: optimistic concurrency with retries. Every 2xx's event is in
//! the stream exactly once, versions are contiguous, and losers after the last retry get 409.

use std::collections::HashSet;

use cairn_tests::CARRIERS_COMPONENT;

use super::TestHost;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_writers_on_one_stream_never_lose_or_double_an_event() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let created =
        host.command("carriers", "register-carrier", json!({"name": "Acme", "email": "e0@acme.io"})).await.unwrap();
    let id = created.body["aggregate_id"].as_str().unwrap().to_string();
    let writers = 32;
    let replies = futures::future::join_all((1..=writers).map(|i| {
        let id = id.clone();
        let host = &host;
        async move {
            host.command(
                "carriers",
                "change-carrier-email",
                json!({"carrier_id": id, "email": format!("e{i}@acme.io")}),
            )
            .await
        }
    }))
    .await;

    let mut accepted = HashSet::new();
    for reply in replies.into_iter().map(Result::unwrap) {
        match reply.status {
            200 => {
                let event = &reply.body["events"][0];
                assert!(accepted.insert(event["data"]["new_email"].as_str().unwrap().to_string()));
            }
            409 => assert_eq!(reply.body["code"], "concurrency-conflict"),
            other => panic!("unexpected status {other}: {reply:?}"),
        }
    }
    assert!(!accepted.is_empty());

    let events = host.stream_events("carriers", &format!("carrier-{id}")).await.unwrap();
    assert_eq!(events.len(), 1 + accepted.len(), "one event per 2xx, plus the registration");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["version"], i as u64 + 1, "versions are contiguous");
    }
    let in_stream: HashSet<String> =
        events[1..].iter().map(|e| e["data"]["new_email"].as_str().unwrap().to_string()).collect();
    assert_eq!(in_stream, accepted, "exactly the accepted changes are in the stream");
    for pair in events[1..].windows(2) {
        assert_eq!(
            pair[0]["data"]["new_email"], pair[1]["data"]["old_email"],
            "each change decided on the latest state"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_registrations_each_get_their_own_stream_and_positions_are_unique() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let replies = futures::future::join_all((0..50).map(|i| {
        host.command("carriers", "register-carrier", json!({"name": format!("C{i}"), "email": format!("c{i}@x.io")}))
    }))
    .await;
    let mut positions = HashSet::new();
    for reply in replies.into_iter().map(Result::unwrap) {
        reply.expect(201);
        let streams = reply.body["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 2, "the carrier and its email reservation");
        for stream in streams {
            let events = host.stream_events("carriers", stream["stream"].as_str().unwrap()).await.unwrap();
            assert_eq!(events.len(), 1);
            assert!(positions.insert(events[0]["position"].as_u64().unwrap()), "global positions are unique");
        }
    }
    assert_eq!(positions, (1..=100).collect::<HashSet<u64>>(), "global positions have no gaps");
}
