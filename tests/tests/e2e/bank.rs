//! The bank domain through the real host: the peer benchmark's HTTP contract (201 on opening,
//! 200 on moving money, 422 problem+json naming the reason for each broken rule), balances after
//! a sequence of commands, many concurrent deposits and withdrawals on one account (never an
//! overdraft; the balance is exactly the acknowledged commands), and the `balances` read model
//! answering through its queries.

use std::collections::{BTreeMap, HashSet};

use cairn_tests::{BANK_COMPONENT, Reply};
use serde_json::{Value, json};

use super::TestHost;

async fn host() -> TestHost {
    TestHost::start(&[BANK_COMPONENT]).await.expect("host starts")
}

async fn open(host: &TestHost, account: &str, owner: &str) -> Reply {
    host.command("bank", "open-account", json!({"account_id": account, "owner": owner})).await.unwrap()
}

async fn money(host: &TestHost, command: &str, account: &str, amount: Value) -> Reply {
    host.command("bank", command, json!({"account_id": account, "amount": amount})).await.unwrap()
}

/// The `Cairn-Position` of a command's answer: the global position of its event.
fn position(reply: &Reply) -> u64 {
    reply.headers["cairn-position"].to_str().unwrap().parse().unwrap()
}

/// `account-balance` once the projection reached `min_position`.
async fn balance(host: &TestHost, account: &str, min_position: u64) -> Reply {
    host.get(&format!("/v1/domains/bank/queries/account-balance?account_id={account}&min_position={min_position}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_contract_answers_as_the_peers_do() {
    let host = host().await;
    let opened = open(&host, "a1", "Ann").await;
    opened.expect(201);
    assert_eq!(opened.body["stream"], "account-a1");
    assert_eq!(opened.body["version"], 1);
    assert_eq!(
        opened.body["events"],
        json!([{"type": "AccountOpened", "data": {"account_id": "a1", "owner": "Ann"}, "version": 1}])
    );

    let deposited = money(&host, "deposit", "a1", json!(500)).await;
    deposited.expect(200);
    assert_eq!(deposited.body["stream"], "account-a1");
    assert_eq!(deposited.body["version"], 2);
    assert_eq!(deposited.body["events"], json!([{"type": "MoneyDeposited", "data": {"amount": 500}, "version": 2}]));
    let withdrawn = money(&host, "withdraw", "a1", json!(200)).await;
    withdrawn.expect(200);
    assert_eq!(withdrawn.body["version"], 3);
    assert_eq!(withdrawn.body["events"], json!([{"type": "MoneyWithdrawn", "data": {"amount": 200}, "version": 3}]));

    open(&host, "a1", "Bob").await.expect_problem(422, "account-already-exists");
    let overdraft = money(&host, "withdraw", "a1", json!(301)).await;
    overdraft.expect_problem(422, "insufficient-funds");
    assert_eq!(overdraft.body["detail"], "Account a1 holds 300 cents; withdrawing 301 would overdraw it");
    for command in ["deposit", "withdraw"] {
        money(&host, command, "nobody", json!(5)).await.expect_problem(422, "account-not-found");
        for amount in [json!(0), json!(-5), json!(2.5), json!("10")] {
            let reply = money(&host, command, "a1", amount).await;
            reply.expect_problem(422, "validation-failed");
            assert_eq!(reply.body["errors"]["amount"], "The amount must be a whole number of cents greater than 0");
        }
    }
    let nameless = open(&host, "a2", " ").await;
    nameless.expect_problem(422, "validation-failed");
    assert_eq!(nameless.body["errors"]["owner"], "The owner is required");
    let without_id = host.command("bank", "deposit", json!({"amount": 5})).await.unwrap();
    without_id.expect_problem(422, "invalid-payload");
    assert!(without_id.body["errors"]["account_id"].is_string(), "{without_id:#?}");
    host.post_raw("/v1/domains/bank/commands/deposit", "{not json".into(), &[])
        .await
        .unwrap()
        .expect_problem(400, "malformed-json");

    let events = host.stream_events("bank", "account-a1").await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["AccountOpened", "MoneyDeposited", "MoneyWithdrawn"], "rejections append nothing");
    let reply = host.get("/v1/domains/bank/streams/account-a2").await.unwrap();
    assert_eq!(reply.status, 404, "a refused opening leaves no stream: {reply:#?}");
}

#[tokio::test]
async fn balances_follow_a_sequence_of_commands_and_the_queries_answer_them() {
    let host = host().await;
    let owners = [("a1", "Ann"), ("a2", "Bob"), ("a3", "Ann"), ("a4", "Cy")];
    for (account, owner) in owners {
        open(&host, account, owner).await.expect(201);
    }
    // (command, account, amount): some withdrawals overdraw and must be refused.
    let sequence = [
        ("deposit", "a1", 1_000),
        ("deposit", "a2", 250),
        ("withdraw", "a1", 400),
        ("withdraw", "a2", 251),
        ("deposit", "a3", 75),
        ("withdraw", "a3", 75),
        ("deposit", "a1", 5),
        ("withdraw", "a4", 1),
        ("deposit", "a2", 1),
        ("withdraw", "a2", 251),
    ];
    let mut expected: BTreeMap<&str, (i64, u64)> = owners.iter().map(|(account, _)| (*account, (0, 1))).collect();
    let mut last_position = 0;
    for (command, account, amount) in sequence {
        let reply = money(&host, command, account, json!(amount)).await;
        let (cents, version) = expected.get_mut(account).unwrap();
        let after = if command == "deposit" { *cents + amount } else { *cents - amount };
        if after < 0 {
            reply.expect_problem(422, "insufficient-funds");
            continue;
        }
        reply.expect(200);
        (*cents, *version) = (after, *version + 1);
        assert_eq!(reply.body["version"], *version, "{reply:#?}");
        last_position = position(&reply);
    }
    assert_eq!(expected["a1"], (605, 4), "the sequence is what the test says it is");
    assert_eq!(expected["a2"], (0, 4));

    for (account, owner) in owners {
        let reply = balance(&host, account, last_position).await;
        reply.expect(200);
        let (cents, version) = expected[account];
        assert_eq!(
            reply.body["data"],
            json!({"account_id": account, "owner": owner, "balance": cents, "version": version}),
            "{reply:#?}"
        );
    }
    let anns = host.get("/v1/domains/bank/queries/accounts-by-owner?owner=Ann").await.unwrap();
    anns.expect(200);
    let listed: Vec<(&str, i64)> = anns.body["data"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["account_id"].as_str().unwrap(), a["balance"].as_i64().unwrap()))
        .collect();
    assert_eq!(listed, [("a1", 605), ("a3", 0)]);

    balance(&host, "nobody", last_position).await.expect_problem(404, "not-found");
    host.get("/v1/domains/bank/queries/account-balance").await.unwrap().expect_problem(400, "invalid-parameters");
    let reply = host.get("/v1/domains/bank/queries/accounts-by-owner?owner=Ann&limit=0").await.unwrap();
    reply.expect_problem(400, "invalid-parameters");
}

/// What the concurrent clients got acknowledged.
#[derive(Default)]
struct Acknowledged {
    deposited: i64,
    withdrawn: i64,
    refused_overdrafts: usize,
    conflicts: usize,
    versions: Vec<u64>,
    last_position: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deposits_and_withdrawals_never_overdraw_and_add_up() {
    let host = host().await;
    open(&host, "hot", "Ann").await.expect(201);
    let seed = money(&host, "deposit", "hot", json!(1_000)).await;
    seed.expect(200);
    let (clients, per_client) = (16, 12);
    let replies = futures::future::join_all((0..clients).map(|client| {
        let host = &host;
        async move {
            let mut replies = Vec::new();
            for n in 0..per_client {
                // Every third command withdraws more than most deposits bring: some must be refused.
                let (command, amount) =
                    if (client + n) % 3 == 0 { ("withdraw", 300 + 10 * client) } else { ("deposit", 1 + n * client) };
                replies.push((command, amount, money(host, command, "hot", json!(amount)).await));
            }
            replies
        }
    }))
    .await;

    let mut acknowledged = Acknowledged::default();
    for (command, amount, reply) in replies.into_iter().flatten() {
        match (reply.status, command) {
            (200, _) => {
                acknowledged.versions.push(reply.body["version"].as_u64().unwrap());
                acknowledged.last_position = acknowledged.last_position.max(position(&reply));
                let event = &reply.body["events"][0];
                assert_eq!(event["data"]["amount"], amount, "{reply:#?}");
                if command == "deposit" {
                    assert_eq!(event["type"], "MoneyDeposited");
                    acknowledged.deposited += amount;
                } else {
                    assert_eq!(event["type"], "MoneyWithdrawn");
                    acknowledged.withdrawn += amount;
                }
            }
            (422, "withdraw") => {
                reply.expect_problem(422, "insufficient-funds");
                acknowledged.refused_overdrafts += 1;
            }
            (409, _) => {
                reply.expect_problem(409, "concurrency-conflict");
                acknowledged.conflicts += 1;
            }
            _ => panic!("unexpected answer to {command} {amount}: {reply:#?}"),
        }
    }
    let accepted = acknowledged.versions.len();
    assert!(accepted > 0, "no command was acknowledged");
    let unique: HashSet<u64> = acknowledged.versions.iter().copied().collect();
    assert_eq!(unique.len(), accepted, "each acknowledged command got its own version");

    let events = host.stream_events("bank", "account-hot").await.unwrap();
    assert_eq!(events.len(), 2 + accepted, "the opening, the seed, and one event per acknowledged command");
    let mut running = 0;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["version"], i as u64 + 1, "versions are contiguous");
        let amount = event["data"]["amount"].as_i64().unwrap_or_default();
        running += if event["type"] == "MoneyWithdrawn" { -amount } else { amount };
        assert!(running >= 0, "the balance went below 0 at version {}: {running}", i + 1);
    }
    let expected = 1_000 + acknowledged.deposited - acknowledged.withdrawn;
    assert_eq!(running, expected, "the stream holds exactly the acknowledged commands");

    let reply = balance(&host, "hot", acknowledged.last_position.max(position(&seed))).await;
    reply.expect(200);
    assert_eq!(reply.body["data"]["balance"], expected, "{reply:#?}");
    assert_eq!(reply.body["data"]["version"], events.len() as u64, "{reply:#?}");
    eprintln!(
        "{accepted} acknowledged, {} overdrafts refused, {} conflicts surfaced",
        acknowledged.refused_overdrafts, acknowledged.conflicts
    );
}
