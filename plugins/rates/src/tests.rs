//! Native tests of the rates domain, with the rate service scripted by a fake gateway.

use cairn_sdk::dispatch::{self, DomainPlugin, RecordedEvent};
use cairn_sdk::testing::{FakeGateway, given_streams};
use cairn_sdk::{GatewayError, GatewayResponse, IdSource};
use serde_json::{Value, json};

use super::*;

const PATH: &str = "/rates?carrier=c1&from=GB&to=FR&weight_grams=1200";

fn payload() -> Value {
    json!({"carrier_id": "c1", "from": "GB", "to": "FR", "weight_grams": 1200})
}

fn quoted(price_cents: u64) -> QuoteEvent {
    QuoteEvent::RateQuoted {
        carrier_id: "c1".into(),
        from: "GB".into(),
        to: "FR".into(),
        weight_grams: 1200,
        price_cents,
        currency: "EUR".into(),
    }
}

/// The rejection when the service answers `outcome`.
fn rejected_with(outcome: Result<GatewayResponse, GatewayError>) -> String {
    let mut outcome = Some(outcome);
    let gateway = FakeGateway::new().script(SERVICE, move |_| outcome.take().expect("called once"));
    let result = given_streams().with_gateway(gateway).when::<Quoting>("q1", "request-quote", payload());
    let rejection = result.then_rejected(RATE_UNAVAILABLE);
    assert!(rejection.fields.is_empty());
    rejection.message
}

#[test]
fn a_quote_is_recorded_from_the_service_answer() {
    let gateway = FakeGateway::new().answer(SERVICE, PATH, 200, json!({"price_cents": 1250, "currency": "EUR"}));
    let outcome = given_streams().with_gateway(gateway).when::<Quoting>("q1", "request-quote", payload());
    outcome.then_appended::<Quote>("q1", [quoted(1250)]).then_streams_touched(1);
    let request = outcome.then_called(SERVICE, PATH);
    assert_eq!(request.method, "GET");
    assert_eq!(request.idempotency_key.as_deref(), Some("q1"));
    assert_eq!(outcome.gateway_calls().len(), 1);
}

#[test]
fn the_event_is_stored_as_rate_quoted() {
    let encoded = dispatch::encode_event(&quoted(1250)).unwrap();
    assert_eq!(encoded.event_type, "RateQuoted");
    assert_eq!(
        serde_json::from_str::<Value>(&encoded.data).unwrap(),
        json!({"carrier_id": "c1", "from": "GB", "to": "FR", "weight_grams": 1200, "price_cents": 1250, "currency": "EUR"})
    );
}

#[test]
fn the_carrier_id_is_trimmed_and_url_encoded() {
    let path = "/rates?carrier=acme%20%26%20co%2F%C3%BC%3Fx%3D1&from=GB&to=FR&weight_grams=1";
    let gateway = FakeGateway::new().answer(SERVICE, path, 200, json!({"price_cents": 99, "currency": "EUR"}));
    let payload = json!({"carrier_id": " acme & co/ü?x=1 ", "from": "GB", "to": "FR", "weight_grams": 1});
    given_streams().with_gateway(gateway).when::<Quoting>("q2", "request-quote", payload).then_appended::<Quote>(
        "q2",
        [QuoteEvent::RateQuoted {
            carrier_id: "acme & co/ü?x=1".into(),
            from: "GB".into(),
            to: "FR".into(),
            weight_grams: 1,
            price_cents: 99,
            currency: "EUR".into(),
        }],
    );
    assert_eq!(encode_query_value("a-z_0.9~"), "a-z_0.9~");
}

#[test]
fn every_gateway_error_rejects_with_its_kind() {
    let errors = [
        (GatewayError::NotGranted("no".into()), "not-granted"),
        (GatewayError::CircuitOpen("open".into()), "circuit-open"),
        (GatewayError::Timeout("2s".into()), "timeout"),
        (GatewayError::UpstreamStatus(GatewayResponse::new(503, b"busy".to_vec())), "upstream-status"),
        (GatewayError::TooLarge("1 MiB".into()), "too-large"),
        (GatewayError::InvalidRequest("bad path".into()), "invalid-request"),
        (GatewayError::Unavailable("refused".into()), "unavailable"),
    ];
    for (error, kind) in errors {
        assert_eq!(rejected_with(Err(error)), format!("The rate service could not quote: {kind}"));
    }
}

#[test]
fn an_unscripted_gateway_is_not_granted() {
    let outcome = given_streams().when::<Quoting>("q1", "request-quote", payload());
    assert_eq!(outcome.then_rejected(RATE_UNAVAILABLE).message, "The rate service could not quote: not-granted");
    outcome.then_called(SERVICE, PATH);
}

#[test]
fn a_status_other_than_200_rejects_with_it() {
    for status in [201, 204, 400, 404, 409, 500] {
        let answer = GatewayResponse::new(status, br#"{"price_cents": 1250, "currency": "EUR"}"#.to_vec());
        assert_eq!(rejected_with(Ok(answer)), format!("The rate service could not quote: bad-status-{status}"));
    }
}

#[test]
fn a_malformed_answer_rejects_as_bad_answer() {
    let bodies = [
        "not json",
        "[]",
        r#"{"currency": "EUR"}"#,
        r#"{"price_cents": 1250}"#,
        r#"{"price_cents": 0, "currency": "EUR"}"#,
        r#"{"price_cents": -5, "currency": "EUR"}"#,
        r#"{"price_cents": 12.5, "currency": "EUR"}"#,
        r#"{"price_cents": "1250", "currency": "EUR"}"#,
        r#"{"price_cents": 1250, "currency": "eur"}"#,
        r#"{"price_cents": 1250, "currency": 978}"#,
    ];
    for body in bodies {
        let message = rejected_with(Ok(GatewayResponse::new(200, body.as_bytes().to_vec())));
        assert_eq!(message, "The rate service could not quote: bad-answer", "for {body}");
    }
}

#[test]
fn an_invalid_payload_names_every_field_and_calls_nothing() {
    let payloads = [
        json!({}),
        json!({"carrier_id": "  ", "from": "gb", "to": "FRA", "weight_grams": 0}),
        json!({"carrier_id": 7, "from": "G1", "to": null, "weight_grams": 1_000_001}),
        json!({"carrier_id": null, "from": 44, "to": "", "weight_grams": "1200"}),
        json!({"from": "É", "to": "fr", "weight_grams": 12.5}),
        json!({"from": "GBR", "to": "F", "weight_grams": -1}),
    ];
    for payload in payloads {
        let outcome = given_streams().when::<Quoting>("q1", "request-quote", payload.clone());
        let rejection =
            outcome.then_rejected_with_fields("validation-failed", &["carrier_id", "from", "to", "weight_grams"]);
        assert!(rejection.message.starts_with("The command has invalid fields"));
        assert!(outcome.gateway_calls().is_empty(), "called the gateway for {payload}");
    }
}

#[test]
fn weights_at_the_bounds_are_quoted() {
    for weight in [1, 1_000_000] {
        let path = format!("/rates?carrier=c1&from=GB&to=GB&weight_grams={weight}");
        let gateway = FakeGateway::new().answer(SERVICE, &path, 200, json!({"price_cents": 5, "currency": "GBP"}));
        let payload = json!({"carrier_id": "c1", "from": "GB", "to": "GB", "weight_grams": weight});
        given_streams().with_gateway(gateway).when::<Quoting>("q1", "request-quote", payload).then_appended::<Quote>(
            "q1",
            [QuoteEvent::RateQuoted {
                carrier_id: "c1".into(),
                from: "GB".into(),
                to: "GB".into(),
                weight_grams: weight,
                price_cents: 5,
                currency: "GBP".into(),
            }],
        );
    }
}

#[test]
fn the_domain_describes_its_handled_commands() {
    let info = Domain::info();
    assert_eq!((info.name.as_str(), info.aggregates.as_slice()), ("rates", ["quote".to_string()].as_slice()));
    assert_eq!(info.event_types, ["RateQuoted"]);
    let [(aggregate, quote), (_, forget)] = info.commands.as_slice() else {
        panic!("two commands: {:?}", info.commands)
    };
    assert_eq!((aggregate.as_str(), quote.name, quote.id), ("quote", "request-quote", IdSource::Minted));
    assert_eq!(quote.handled_for, Some("quote"));
    assert_eq!((forget.name, forget.id), ("forget-carrier-rates", IdSource::Field("carrier_id")));
}

#[test]
fn folding_skips_unknown_events() {
    let recorded = |version, event_type: &str, data: Value| RecordedEvent {
        stream: "quote-q1".into(),
        version,
        event_type: event_type.into(),
        data: data.to_string(),
        ..RecordedEvent::default()
    };
    let encoded = dispatch::encode_event(&quoted(1250)).unwrap();
    let history = vec![
        recorded(1, &encoded.event_type, serde_json::from_str(&encoded.data).unwrap()),
        recorded(2, "QuoteExpired", json!({"at": 1})),
    ];
    let state: Value = serde_json::from_str(&Domain::fold("quote", history).unwrap()).unwrap();
    assert_eq!((state["quoted"].clone(), state["price_cents"].clone()), (json!(true), json!(1250)));
}
