//! `Idempotency-Key`: the same key and body replay the stored response and append nothing; the
//! same key with another body is a 422. Holds across concurrent repeats and across restarts.

use cairn_tests::CARRIERS_COMPONENT;

use super::TestHost;
use serde_json::json;

const PATH: &str = "/v1/domains/carriers/commands/register-carrier";

#[tokio::test]
async fn the_same_key_and_body_replays_the_response_and_appends_nothing() {
    let mut host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let body = json!({"name": "Acme", "email": "a@acme.io"}).to_string();
    let first = host.post_raw(PATH, body.clone(), &[("idempotency-key", "k-1")]).await.unwrap();
    first.expect(201);
    let second = host.post_raw(PATH, body.clone(), &[("idempotency-key", "k-1")]).await.unwrap();
    second.expect(201);
    assert_eq!(first.body, second.body, "the replay is the stored response, same minted id");
    assert_eq!(second.headers["idempotent-replayed"], "true");
    let stream = first.body["stream"].as_str().unwrap();
    assert_eq!(host.stream_events("carriers", stream).await.unwrap().len(), 1);

    host.restart().await.unwrap();
    let third = host.post_raw(PATH, body, &[("idempotency-key", "k-1")]).await.unwrap();
    assert_eq!(third.body, first.body, "the key survives a restart");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    host.post_raw(PATH, json!({"name": "Acme", "email": "a@acme.io"}).to_string(), &[("idempotency-key", "k-2")])
        .await
        .unwrap()
        .expect(201);
    host.post_raw(PATH, json!({"name": "Other", "email": "o@acme.io"}).to_string(), &[("idempotency-key", "k-2")])
        .await
        .unwrap()
        .expect_problem(422, "idempotency-key-reused");
}

#[tokio::test]
async fn concurrent_repeats_of_one_key_append_once() {
    let host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let body = json!({"name": "Acme", "email": "a@acme.io"}).to_string();
    let replies =
        futures::future::join_all((0..16).map(|_| host.post_raw(PATH, body.clone(), &[("idempotency-key", "k-3")])))
            .await;
    let replies: Vec<_> = replies.into_iter().map(Result::unwrap).collect();
    for reply in &replies {
        reply.expect(201);
        assert_eq!(reply.body, replies[0].body, "every repeat sees the one stored response");
    }
    let stream = replies[0].body["stream"].as_str().unwrap();
    assert_eq!(host.stream_events("carriers", stream).await.unwrap().len(), 1);
}
