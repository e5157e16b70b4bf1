//! Native given/when/then tests of the carriers rules.

use cairn_sdk::testing::{given, given_no_history};
use serde_json::json;

use super::*;

fn registered() -> CarrierEvent {
    CarrierEvent::CarrierRegistered { carrier_id: "test-1".into(), name: "Acme".into(), email: "ops@acme.io".into() }
}

#[test]
fn registering_records_the_carrier() {
    given_no_history::<Carrier>()
        .when_json("register-carrier", json!({"name": " Acme ", "email": "ops@acme.io"}))
        .then([registered()]);
}

#[test]
fn registering_reports_every_invalid_field_at_once() {
    let rejection = given_no_history::<Carrier>()
        .when_json("register-carrier", json!({"name": "", "email": "not-an-email"}))
        .then_rejected_with_fields("validation-failed", &["name", "email"]);
    let email = rejection.fields.iter().find(|f| f.field == "email").expect("email field");
    assert_eq!(email.message, "The email must be a valid email address");
}

#[test]
fn a_missing_payload_field_is_a_field_error() {
    given_no_history::<Carrier>()
        .when_json("register-carrier", json!({}))
        .then_rejected_with_fields("validation-failed", &["name", "email"]);
}

#[test]
fn a_second_registration_of_the_same_id_is_rejected() {
    given::<Carrier>([registered()])
        .when_json("register-carrier", json!({"name": "Acme", "email": "ops@acme.io"}))
        .then_rejected("already-registered");
}

#[test]
fn changing_the_email_records_old_and_new() {
    given::<Carrier>([registered()])
        .when_json("change-carrier-email", json!({"carrier_id": "test-1", "email": "new@acme.io"}))
        .then([CarrierEvent::CarrierEmailChanged { old_email: "ops@acme.io".into(), new_email: "new@acme.io".into() }]);
}

#[test]
fn changing_to_the_same_email_changes_nothing() {
    given::<Carrier>([registered()])
        .when_json("change-carrier-email", json!({"carrier_id": "test-1", "email": "ops@acme.io"}))
        .then([]);
}

#[test]
fn changing_to_an_invalid_email_is_rejected() {
    given::<Carrier>([registered()])
        .when_json("change-carrier-email", json!({"carrier_id": "test-1", "email": "a b@c.d"}))
        .then_rejected_with_fields("validation-failed", &["email"]);
}

#[test]
fn an_unknown_carrier_cannot_change() {
    given_no_history::<Carrier>()
        .when_json("change-carrier-email", json!({"carrier_id": "test-1", "email": "x@y.io"}))
        .then_rejected("carrier-not-found");
}

#[test]
fn deactivation_is_recorded_with_its_reason() {
    given::<Carrier>([registered()])
        .when(CarrierCommand::DeactivateCarrier { carrier_id: "test-1".into(), reason: Some("fraud".into()) })
        .then([CarrierEvent::CarrierDeactivated { reason: Some("fraud".into()) }]);
}

#[test]
fn nothing_changes_on_a_deactivated_carrier() {
    let history = [registered(), CarrierEvent::CarrierDeactivated { reason: None }];
    given::<Carrier>(history.clone())
        .when_json("change-carrier-email", json!({"carrier_id": "test-1", "email": "x@y.io"}))
        .then_rejected("carrier-deactivated");
    given::<Carrier>(history)
        .when_json("deactivate-carrier", json!({"carrier_id": "test-1"}))
        .then_rejected("carrier-deactivated");
}

#[test]
fn the_description_lists_every_command_and_event() {
    use cairn_sdk::dispatch::DomainPlugin;
    let info = Domain::info();
    assert_eq!(info.name, "carriers");
    let names: Vec<&str> = info.commands.iter().map(|(_, c)| c.name).collect();
    assert_eq!(names, ["deactivate-carrier", "register-carrier", "change-carrier-email"]);
    assert!(info.commands.iter().all(|(aggregate, _)| aggregate == "carrier"));
    assert_eq!(info.aggregates, ["carrier", "email-address"]);
    assert_eq!(info.event_types.len(), 5);
}

#[test]
fn email_check() {
    assert!(is_valid_email("a@b.co"));
    for bad in ["", "a", "@b.co", "a@b", "a@@b.co", "a@b..co", "a b@c.de"] {
        assert!(!is_valid_email(bad), "{bad}");
    }
}

#[test]
fn events_from_later_versions_are_skipped_when_folding() {
    let state = cairn_sdk::dispatch::fold::<Carrier>(&[
        cairn_sdk::dispatch::RecordedEvent {
            event_type: "CarrierRegistered".into(),
            data: r#"{"carrier_id":"c","name":"A","email":"a@b.io"}"#.into(),
            version: 1,
            ..Default::default()
        },
        cairn_sdk::dispatch::RecordedEvent {
            event_type: "CarrierRenamed".into(),
            data: r#"{"name":"B"}"#.into(),
            version: 2,
            ..Default::default()
        },
    ])
    .expect("folds");
    assert_eq!(state.name, "A");
    assert!(state.active);
}

mod registration {
    use cairn_sdk::testing::given_streams;
    use serde_json::json;

    use crate::*;

    #[test]
    fn registering_reserves_the_email_in_the_same_unit_of_work() {
        given_streams()
            .when::<Registration>("c1", "register-carrier", json!({"name": "Acme", "email": " Ops@Acme.io "}))
            .then_appended::<Carrier>(
                "c1",
                [CarrierEvent::CarrierRegistered {
                    carrier_id: "c1".into(),
                    name: "Acme".into(),
                    email: "Ops@Acme.io".into(),
                }],
            )
            .then_appended::<EmailAddress>("ops@acme.io", [EmailEvent::EmailReserved { carrier_id: "c1".into() }])
            .then_streams_touched(2);
    }

    #[test]
    fn an_email_held_by_another_carrier_is_rejected_naming_the_field() {
        let rejection = given_streams()
            .with::<EmailAddress>("ops@acme.io", [EmailEvent::EmailReserved { carrier_id: "c9".into() }])
            .when::<Registration>("c1", "register-carrier", json!({"name": "Acme", "email": "ops@acme.io"}))
            .then_rejected("email-taken");
        assert_eq!(rejection.fields[0].field, "email");
    }

    #[test]
    fn invalid_fields_are_still_reported_all_at_once() {
        let rejection = given_streams()
            .when::<Registration>("c1", "register-carrier", json!({"name": "", "email": "nope"}))
            .then_rejected("validation-failed");
        assert_eq!(rejection.fields.len(), 2);
    }

    #[test]
    fn changing_the_email_moves_the_reservation() {
        given_streams()
            .with::<Carrier>(
                "c1",
                [CarrierEvent::CarrierRegistered { carrier_id: "c1".into(), name: "A".into(), email: "a@x.io".into() }],
            )
            .with::<EmailAddress>("a@x.io", [EmailEvent::EmailReserved { carrier_id: "c1".into() }])
            .when::<Registration>("c1", "change-carrier-email", json!({"carrier_id": "c1", "email": "b@x.io"}))
            .then_appended::<EmailAddress>("b@x.io", [EmailEvent::EmailReserved { carrier_id: "c1".into() }])
            .then_appended::<EmailAddress>("a@x.io", [EmailEvent::EmailReleased { carrier_id: "c1".into() }])
            .then_streams_touched(3);
    }

    #[test]
    fn a_change_of_case_keeps_the_reservation() {
        given_streams()
            .with::<Carrier>(
                "c1",
                [CarrierEvent::CarrierRegistered { carrier_id: "c1".into(), name: "A".into(), email: "a@x.io".into() }],
            )
            .with::<EmailAddress>("a@x.io", [EmailEvent::EmailReserved { carrier_id: "c1".into() }])
            .when::<Registration>("c1", "change-carrier-email", json!({"carrier_id": "c1", "email": "A@x.io"}))
            .then_appended::<EmailAddress>("a@x.io", [])
            .then_streams_touched(1);
    }
}
