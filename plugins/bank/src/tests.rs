//! Native given/when/then tests of the account rules.

use cairn_sdk::dispatch::{DomainPlugin, DomainReadSide};
use cairn_sdk::testing::{given, given_no_history};
use serde_json::json;

use super::*;

fn opened() -> AccountEvent {
    AccountEvent::AccountOpened { account_id: "test-1".into(), owner: "Ann".into() }
}

fn deposited(amount: i64) -> AccountEvent {
    AccountEvent::MoneyDeposited { amount }
}

fn withdrawn(amount: i64) -> AccountEvent {
    AccountEvent::MoneyWithdrawn { amount }
}

#[test]
fn opening_records_the_id_and_the_trimmed_owner() {
    given_no_history::<Account>()
        .when_json("open-account", json!({"account_id": "test-1", "owner": " Ann "}))
        .then([opened()]);
}

#[test]
fn an_account_opens_once() {
    let rejection = given::<Account>([opened()])
        .when_json("open-account", json!({"account_id": "test-1", "owner": "Bob"}))
        .then_rejected("account-already-exists");
    assert_eq!(rejection.message, "Account test-1 already exists");
}

#[test]
fn opening_needs_an_owner() {
    for (owner, message) in [
        (json!(null), "The owner is required"),
        (json!("  "), "The owner is required"),
        (json!(7), "The owner must be a string"),
        (json!("é".repeat(201)), "The owner must be at most 200 characters"),
    ] {
        let rejection = given_no_history::<Account>()
            .when_json("open-account", json!({"account_id": "test-1", "owner": owner}))
            .then_rejected_with_fields("validation-failed", &["owner"]);
        assert_eq!(rejection.fields[0].message, message);
    }
    given_no_history::<Account>()
        .when_json("open-account", json!({"account_id": "test-1", "owner": "é".repeat(200)}))
        .then([AccountEvent::AccountOpened { account_id: "test-1".into(), owner: "é".repeat(200) }]);
}

#[test]
fn deposits_and_withdrawals_need_an_open_account() {
    for command in ["deposit", "withdraw"] {
        let rejection = given_no_history::<Account>()
            .when_json(command, json!({"account_id": "test-1", "amount": 500}))
            .then_rejected("account-not-found");
        assert_eq!(rejection.message, "Account test-1 does not exist");
        // The account is checked before the amount, as the peers do.
        given_no_history::<Account>()
            .when_json(command, json!({"account_id": "test-1", "amount": -5}))
            .then_rejected("account-not-found");
    }
}

#[test]
fn amounts_are_whole_cents_greater_than_zero() {
    for command in ["deposit", "withdraw"] {
        for amount in [json!(0), json!(-1), json!(12.5), json!("100"), json!(null), json!(i64::MIN)] {
            let rejection = given::<Account>([opened(), deposited(1_000)])
                .when_json(command, json!({"account_id": "test-1", "amount": amount}))
                .then_rejected_with_fields("validation-failed", &["amount"]);
            assert_eq!(rejection.fields[0].message, "The amount must be a whole number of cents greater than 0");
        }
        given::<Account>([opened(), deposited(1_000)])
            .when_json(command, json!({"account_id": "test-1"}))
            .then_rejected_with_fields("validation-failed", &["amount"]);
    }
}

#[test]
fn deposits_add_to_the_balance() {
    given::<Account>([opened()])
        .when_json("deposit", json!({"account_id": "test-1", "amount": 500}))
        .then([deposited(500)]);
    given::<Account>([opened(), deposited(i64::MAX - 10)])
        .when_json("deposit", json!({"account_id": "test-1", "amount": 10}))
        .then([deposited(10)]);
}

#[test]
fn a_deposit_never_overflows_the_balance() {
    given::<Account>([opened(), deposited(i64::MAX - 10)])
        .when_json("deposit", json!({"account_id": "test-1", "amount": 11}))
        .then_rejected("balance-limit");
}

#[test]
fn a_withdrawal_takes_at_most_the_balance() {
    let history = || [opened(), deposited(500), withdrawn(200), deposited(50)];
    given::<Account>(history())
        .when_json("withdraw", json!({"account_id": "test-1", "amount": 350}))
        .then([withdrawn(350)]);
    let rejection = given::<Account>(history())
        .when_json("withdraw", json!({"account_id": "test-1", "amount": 351}))
        .then_rejected("insufficient-funds");
    assert_eq!(rejection.message, "Account test-1 holds 350 cents; withdrawing 351 would overdraw it");
    given::<Account>([opened()])
        .when_json("withdraw", json!({"account_id": "test-1", "amount": 1}))
        .then_rejected("insufficient-funds");
}

#[test]
fn the_state_folds_the_history_and_round_trips_as_json() {
    let mut account = Account::default();
    for event in [opened(), deposited(500), withdrawn(120), deposited(7)] {
        account.apply(event);
    }
    assert!(account.is_open());
    assert_eq!((account.owner(), account.balance()), ("Ann", 387));
    let json = serde_json::to_value(&account).expect("serializes");
    assert_eq!(json, json!({"opened": true, "owner": "Ann", "balance": 387}));
    assert_eq!(serde_json::from_value::<Account>(json).expect("deserializes"), account);
}

#[test]
fn events_serialize_as_the_peers_store_them() {
    let encode = |e: &AccountEvent| {
        let event = cairn_sdk::dispatch::encode_event(e).expect("encodes");
        (event.event_type, serde_json::from_str::<serde_json::Value>(&event.data).expect("JSON"))
    };
    assert_eq!(encode(&opened()), ("AccountOpened".into(), json!({"account_id": "test-1", "owner": "Ann"})));
    assert_eq!(encode(&deposited(500)), ("MoneyDeposited".into(), json!({"amount": 500})));
    assert_eq!(encode(&withdrawn(200)), ("MoneyWithdrawn".into(), json!({"amount": 200})));
}

#[test]
fn the_domain_describes_itself() {
    let info = Domain::info();
    assert_eq!(info.name, "bank");
    assert_eq!(info.aggregates, ["account"]);
    let commands: Vec<&str> = info.commands.iter().map(|(_, spec)| spec.name).collect();
    assert_eq!(commands, ["open-account", "deposit", "withdraw"]);
    assert!(info.commands.iter().all(|(_, spec)| spec.id == IdSource::Field("account_id")));
    assert_eq!(info.event_types, ["AccountOpened", "MoneyDeposited", "MoneyWithdrawn"]);
    let projections: Vec<(String, u32)> = Domain::projections().into_iter().map(|p| (p.name, p.version)).collect();
    assert_eq!(projections, [("balances".to_string(), 1)]);
    let queries: Vec<(String, String)> = Domain::queries().into_iter().map(|q| (q.name, q.projection)).collect();
    assert_eq!(
        queries,
        [
            ("account-balance".to_string(), "balances".to_string()),
            ("accounts-by-owner".to_string(), "balances".to_string()),
        ]
    );
}
