//! A restart of the host reads the same streams back and carries on from where it was.

use cairn_tests::CARRIERS_COMPONENT;

use super::TestHost;
use serde_json::json;

#[tokio::test]
async fn a_restarted_host_reads_the_same_stream_and_continues_it() {
    let mut host = TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap();
    let created =
        host.command("carriers", "register-carrier", json!({"name": "Acme", "email": "a@acme.io"})).await.unwrap();
    let id = created.body["aggregate_id"].as_str().unwrap().to_string();
    let stream = format!("carrier-{id}");
    host.command("carriers", "change-carrier-email", json!({"carrier_id": id, "email": "b@acme.io"}))
        .await
        .unwrap()
        .expect(200);
    let before = host.stream_events("carriers", &stream).await.unwrap();

    host.restart().await.unwrap();
    let after = host.stream_events("carriers", &stream).await.unwrap();
    assert_eq!(before, after, "the stream reads back identically");

    let next = host
        .command("carriers", "change-carrier-email", json!({"carrier_id": id, "email": "c@acme.io"}))
        .await
        .unwrap();
    next.expect(200);
    assert_eq!(next.body["version"], 3);
    assert_eq!(
        next.body["events"][0]["data"]["old_email"], "b@acme.io",
        "the state was folded from the stored history"
    );
}
