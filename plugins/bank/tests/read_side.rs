//! The bank's read side: the `balances` projection fed typed events through the SDK's test kit,
//! and the queries over what it built.

use bank::{AccountBalance, AccountEvent, AccountsByOwner, BalancesProjection};
use cairn_sdk::QueryError;
use cairn_sdk::dispatch::RecordedEvent;
use cairn_sdk::testing::{project, query};
use serde_json::{Value, json};

fn opened(id: &str, owner: &str) -> AccountEvent {
    AccountEvent::AccountOpened { account_id: id.into(), owner: owner.into() }
}

fn deposited(amount: i64) -> AccountEvent {
    AccountEvent::MoneyDeposited { amount }
}

fn withdrawn(amount: i64) -> AccountEvent {
    AccountEvent::MoneyWithdrawn { amount }
}

fn balance(id: &str, owner: &str, cents: i64, version: u64) -> Value {
    json!({"account_id": id, "owner": owner, "balance": cents, "version": version})
}

#[test]
fn a_balance_follows_its_account() {
    project::<BalancesProjection>()
        .given_on("account-a1", [opened("a1", "Ann")])
        .then_document("balances", "a1", balance("a1", "Ann", 0, 1))
        .given([deposited(500), withdrawn(200)])
        .given_on("account-b2", [opened("b2", "Bob"), deposited(7)])
        .given_on("account-a1", [deposited(50)])
        .then_document("balances", "a1", balance("a1", "Ann", 350, 4))
        .then_document("balances", "b2", balance("b2", "Bob", 7, 2))
        .then_count("balances", 2);
}

#[test]
fn money_moved_on_an_account_without_a_document_fails_at_that_event() {
    let failure = project::<BalancesProjection>()
        .given_on("account-a1", [opened("a1", "Ann")])
        .given_on("account-zz", [deposited(5)])
        .then_failed();
    assert_eq!(failure.position, Some(2));
    assert!(failure.message.contains("zz"), "{}", failure.message);
}

#[test]
fn events_of_other_streams_fail_clearly() {
    let failure = project::<BalancesProjection>().given_on("order-1", [opened("1", "Ann")]).then_failed();
    assert_eq!(failure.position, Some(1));
    assert!(failure.message.contains("order-1"), "{}", failure.message);
}

#[test]
fn an_event_delivered_again_is_counted_once() {
    let recorded = |version: u64, event: &AccountEvent| {
        let encoded = cairn_sdk::dispatch::encode_event(event).expect("encodes");
        RecordedEvent {
            stream: "account-a1".into(),
            version,
            global_position: version,
            event_type: encoded.event_type,
            data: encoded.data,
            metadata: "{}".into(),
            recorded_at_micros: 0,
        }
    };
    project::<BalancesProjection>()
        .given_recorded(vec![recorded(1, &opened("a1", "Ann")), recorded(2, &deposited(500))])
        .given_recorded(vec![recorded(2, &deposited(500)), recorded(1, &opened("a1", "Ann"))])
        .then_document("balances", "a1", balance("a1", "Ann", 500, 2));
}

#[test]
fn events_of_unknown_types_are_skipped() {
    project::<BalancesProjection>()
        .given_on("account-a1", [opened("a1", "Ann")])
        .given_raw("AccountFrozen", json!({"reason": "audit"}))
        .then_document("balances", "a1", balance("a1", "Ann", 0, 1));
}

/// Ann holds a1 (350), a3 (0) and a5 (12); Bob holds a2 (900) and a4 (1).
fn model() -> cairn_sdk::MemoryReadModel {
    project::<BalancesProjection>()
        .given_on("account-a1", [opened("a1", "Ann"), deposited(500), withdrawn(150)])
        .given_on("account-a2", [opened("a2", "Bob"), deposited(900)])
        .given_on("account-a3", [opened("a3", "Ann")])
        .given_on("account-a4", [opened("a4", "Bob"), deposited(1)])
        .given_on("account-a5", [opened("a5", "Ann"), deposited(12)])
        .model()
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
fn account_balance_answers_one_account() {
    let model = model();
    assert_eq!(query::<AccountBalance>(&model, &[("account_id", "a1")]), Ok(balance("a1", "Ann", 350, 3)));
    assert_eq!(query::<AccountBalance>(&model, &[("account_id", " a4 ")]), Ok(balance("a4", "Bob", 1, 2)));
    assert_eq!(
        query::<AccountBalance>(&model, &[("account_id", "nope")]),
        Err(QueryError::NotFound("Account nope does not exist".into()))
    );
    assert_eq!(invalid_fields(query::<AccountBalance>(&model, &[])), ["account_id"]);
    assert_eq!(invalid_fields(query::<AccountBalance>(&model, &[("account_id", " ")])), ["account_id"]);
}

fn account_ids(answer: &Value) -> Vec<&str> {
    answer["accounts"].as_array().expect("accounts").iter().map(|a| a["account_id"].as_str().expect("id")).collect()
}

#[test]
fn accounts_by_owner_come_by_id_in_pages() {
    let model = model();
    let all = query::<AccountsByOwner>(&model, &[("owner", "Ann")]).expect("answers");
    assert_eq!(account_ids(&all), ["a1", "a3", "a5"]);
    assert_eq!(all["accounts"][2], balance("a5", "Ann", 12, 2));
    assert_eq!(all["next_cursor"], Value::Null);

    let first = query::<AccountsByOwner>(&model, &[("owner", "Ann"), ("limit", "2")]).expect("answers");
    assert_eq!(account_ids(&first), ["a1", "a3"]);
    let cursor = first["next_cursor"].as_str().expect("a cursor to the next page");
    let second =
        query::<AccountsByOwner>(&model, &[("owner", "Ann"), ("limit", "2"), ("cursor", cursor)]).expect("answers");
    assert_eq!(account_ids(&second), ["a5"]);
    assert_eq!(second["next_cursor"], Value::Null);

    let nobody = query::<AccountsByOwner>(&model, &[("owner", "Eve")]).expect("answers");
    assert_eq!(account_ids(&nobody), Vec::<&str>::new());
}

#[test]
fn accounts_by_owner_reports_every_bad_parameter() {
    let model = model();
    assert_eq!(invalid_fields(query::<AccountsByOwner>(&model, &[("limit", "0")])), ["owner", "limit"]);
    assert_eq!(invalid_fields(query::<AccountsByOwner>(&model, &[("owner", "Ann"), ("limit", "201")])), ["limit"]);
    assert_eq!(invalid_fields(query::<AccountsByOwner>(&model, &[("owner", "Ann"), ("limit", "x")])), ["limit"]);
    assert_eq!(
        invalid_fields(query::<AccountsByOwner>(&model, &[("owner", "Ann"), ("cursor", "not-a-cursor")])),
        ["cursor"]
    );
}
