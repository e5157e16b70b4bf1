//! Command handlers through the real host: a unit of work over several streams commits
//! atomically or not at all; conflicts re-run the handler; carriers keep emails unique.

use std::collections::HashSet;

use cairn_tests::CARRIERS_COMPONENT;

use super::TestHost;
use serde_json::json;

async fn host() -> TestHost {
    TestHost::start(&[CARRIERS_COMPONENT]).await.unwrap()
}

#[tokio::test]
async fn a_registration_commits_the_carrier_and_its_email_together() {
    let host = host().await;
    let reply =
        host.command("carriers", "register-carrier", json!({"name": "Acme", "email": "Ops@Acme.io"})).await.unwrap();
    reply.expect(201);
    let id = reply.body["aggregate_id"].as_str().unwrap();
    assert_eq!(reply.body["stream"], format!("carrier-{id}"));
    assert_eq!(reply.body["version"], 1);
    let streams: Vec<(String, String)> = reply.body["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stream"].as_str().unwrap().to_string(), s["events"][0]["type"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        streams,
        [
            (format!("carrier-{id}"), "CarrierRegistered".to_string()),
            ("email-address-ops@acme.io".to_string(), "EmailReserved".to_string())
        ]
    );
    let carrier = host.stream_events("carriers", &format!("carrier-{id}")).await.unwrap();
    let email = host.stream_events("carriers", "email-address-ops@acme.io").await.unwrap();
    assert_eq!(carrier[0]["metadata"]["command_id"], email[0]["metadata"]["command_id"], "one unit of work");
    assert_eq!(email[0]["position"].as_u64().unwrap(), carrier[0]["position"].as_u64().unwrap() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_with_one_email_one_wins_the_rest_are_422_naming_the_email() {
    let host = host().await;
    let replies =
        futures::future::join_all((0..12).map(|i| {
            host.command("carriers", "register-carrier", json!({"name": format!("C{i}"), "email": "same@x.io"}))
        }))
        .await;
    let mut created = 0;
    for reply in replies.into_iter().map(Result::unwrap) {
        match reply.status {
            201 => created += 1,
            422 => {
                reply.expect_problem(422, "email-taken");
                assert_eq!(reply.body["errors"]["email"], "The email is already used by another carrier");
            }
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    assert_eq!(created, 1, "exactly one registration holds the email");
    assert_eq!(host.stream_events("carriers", "email-address-same@x.io").await.unwrap().len(), 1);
    // Nothing of the losers' units of work was committed: the next event lands at position 3.
    let next = host.command("carriers", "register-carrier", json!({"name": "N", "email": "next@x.io"})).await.unwrap();
    let events = host.stream_events("carriers", next.body["stream"].as_str().unwrap()).await.unwrap();
    assert_eq!(events[0]["position"], 3, "only the winner's two events came before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_on_the_second_stream_leaves_every_stream_as_it_was() {
    let host = host().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let reply = host
            .command("carriers", "register-carrier", json!({"name": "C", "email": format!("c{i}@x.io")}))
            .await
            .unwrap();
        ids.push(reply.body["aggregate_id"].as_str().unwrap().to_string());
    }
    // Six carriers race for one new email: each unit of work writes the carrier's stream first and
    // the email's stream second, where they collide.
    let replies =
        futures::future::join_all(ids.iter().map(|id| {
            host.command("carriers", "change-carrier-email", json!({"carrier_id": id, "email": "prize@x.io"}))
        }))
        .await;
    let mut winners = HashSet::new();
    for (id, reply) in ids.iter().zip(replies.into_iter().map(Result::unwrap)) {
        let carrier = host.stream_events("carriers", &format!("carrier-{id}")).await.unwrap();
        match reply.status {
            200 => {
                winners.insert(id.clone());
                assert_eq!(carrier.len(), 2);
            }
            422 => {
                assert_eq!(reply.body["code"], "email-taken");
                assert_eq!(carrier.len(), 1, "the loser's carrier stream is as it was");
            }
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let prize = host.stream_events("carriers", "email-address-prize@x.io").await.unwrap();
    assert_eq!(prize.len(), 1, "one reservation");
    let winner = winners.into_iter().next().unwrap();
    assert_eq!(prize[0]["data"]["carrier_id"], winner);
    // The winner's old address was released in the same unit of work; the losers' were not.
    let mut released = 0;
    for i in 0..6 {
        if host.stream_events("carriers", &format!("email-address-c{i}@x.io")).await.unwrap().len() == 2 {
            released += 1;
        }
    }
    assert_eq!(released, 1);
}

#[tokio::test]
async fn a_released_email_can_be_taken_again_and_a_handler_nothing_to_do_is_200() {
    let host = host().await;
    let first = host.command("carriers", "register-carrier", json!({"name": "A", "email": "a@x.io"})).await.unwrap();
    let id = first.body["aggregate_id"].as_str().unwrap().to_string();
    host.command("carriers", "change-carrier-email", json!({"carrier_id": id, "email": "b@x.io"}))
        .await
        .unwrap()
        .expect(200);
    host.command("carriers", "register-carrier", json!({"name": "B", "email": "a@x.io"})).await.unwrap().expect(201);
    host.command("carriers", "register-carrier", json!({"name": "C", "email": "b@x.io"}))
        .await
        .unwrap()
        .expect_problem(422, "email-taken");
    let same =
        host.command("carriers", "change-carrier-email", json!({"carrier_id": id, "email": "b@x.io"})).await.unwrap();
    same.expect(200);
    assert_eq!(same.body["version"], 2, "the primary stream's version, though nothing was appended");
    assert_eq!(same.body["streams"], json!([]));
}
