//! The quoting handler: validates `request-quote`, asks the `rates` service through the gateway
//! (idempotency key: the quote id) and records its price, or rejects with `rate-unavailable`.
//! Prices are cached for [`RATE_TTL`] per carrier, route and weight (tagged `carrier:<id>`), and
//! concurrent identical quotes ask the service once (the cache's stampede-safe lookup).

use cairn_sdk::log::{self, Level};
use cairn_sdk::{
    CacheLookup, CommandHandler, CommandSpec, Expected, GatewayError, GatewayRequest, GatewayResponse, HandlerError,
    IdSource, Rejection, UnitOfWork, Validation,
};
use serde::Deserialize;
use serde_json::Value;

use crate::{Quote, QuoteEvent};

/// The gateway service the operator configures for rates.
pub const SERVICE: &str = "rates";
/// The rejection code when the rate service gives no usable quote.
pub const RATE_UNAVAILABLE: &str = "rate-unavailable";
/// How long a price stays cached.
pub const RATE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// The heaviest parcel quoted, in grams.
const MAX_WEIGHT_GRAMS: u64 = 1_000_000;

/// Commands the quoting handler accepts. Fields are read loosely so that every invalid one is
/// reported at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum QuotingCommand {
    /// Asks for a carrier's rate; the host mints the quote id.
    RequestQuote {
        /// The carrier, a non-empty string.
        #[serde(default)]
        carrier_id: Value,
        /// Origin country: two uppercase letters.
        #[serde(default)]
        from: Value,
        /// Destination country: two uppercase letters.
        #[serde(default)]
        to: Value,
        /// Whole grams, 1 to 1 000 000.
        #[serde(default)]
        weight_grams: Value,
    },
}

/// Quotes carrier rates through the `rates` service.
#[derive(Debug, Default)]
pub struct Quoting;

impl CommandHandler for Quoting {
    const COMMANDS: &'static [CommandSpec] = &[CommandSpec::handled(
        "request-quote",
        "quote",
        IdSource::Minted,
        "Asks the rate service what a carrier charges for a parcel and records the quote.",
    )];
    type Command = QuotingCommand;

    fn handle(&self, work: &mut UnitOfWork<'_>, id: &str, command: QuotingCommand) -> Result<(), HandlerError> {
        let QuotingCommand::RequestQuote { carrier_id, from, to, weight_grams } = command;
        let parcel = Parcel::validate(&carrier_id, &from, &to, &weight_grams)?;
        let (price_cents, currency) = quote_price(work, id, &parcel)?;
        let Parcel { carrier_id, from, to, weight_grams } = parcel;
        let quoted = QuoteEvent::RateQuoted { carrier_id, from, to, weight_grams, price_cents, currency };
        work.append::<Quote>(id, Expected::NoStream, &[quoted])?;
        Ok(())
    }
}

/// The parcel's price: from the cache, or from the rate service (then cached).
fn quote_price(work: &mut UnitOfWork<'_>, id: &str, parcel: &Parcel) -> Result<(u64, String), Rejection> {
    let key = format!("rate:{}:{}:{}:{}", parcel.carrier_id, parcel.from, parcel.to, parcel.weight_grams);
    if let CacheLookup::Hit(bytes) = work.cache().lookup(&key)
        && let Ok(rate) = serde_json::from_slice::<RateAnswer>(&bytes)
    {
        return Ok((rate.price_cents, rate.currency));
    }
    let request = GatewayRequest::get(rates_path(&parcel.carrier_id, &parcel.from, &parcel.to, parcel.weight_grams))
        .header("accept", "application/json")
        .idempotency_key(id);
    let (price_cents, currency) = price(work.gateway().call(SERVICE, request)).map_err(|(kind, detail)| {
        log::write(Level::Warn, "the rate service could not quote", &[("quote_id", id), ("why", &detail)]);
        Rejection::new(RATE_UNAVAILABLE, format!("The rate service could not quote: {kind}"))
    })?;
    let cached = serde_json::json!({ "price_cents": price_cents, "currency": currency }).to_string();
    let tag = format!("carrier:{}", parcel.carrier_id);
    // A failed `set` only costs the next quote a call to the service.
    let _ = work.cache().set(&key, cached.as_bytes(), RATE_TTL, &[&tag]);
    Ok((price_cents, currency))
}

/// A valid `request-quote` payload.
struct Parcel {
    carrier_id: String,
    from: String,
    to: String,
    weight_grams: u32,
}

impl Parcel {
    /// Checks every field, rejecting once (`validation-failed`) with all the invalid ones.
    fn validate(carrier_id: &Value, from: &Value, to: &Value, weight_grams: &Value) -> Result<Self, Rejection> {
        let carrier_id = carrier_id.as_str().map(str::trim).unwrap_or_default();
        let from = from.as_str().unwrap_or_default();
        let to = to.as_str().unwrap_or_default();
        let weight = weight_grams.as_u64().filter(|w| (1..=MAX_WEIGHT_GRAMS).contains(w));
        Validation::new()
            .require(!carrier_id.is_empty(), "carrier_id", "The carrier id is required")
            .require(is_country_code(from), "from", "The origin must be a two-letter uppercase country code")
            .require(is_country_code(to), "to", "The destination must be a two-letter uppercase country code")
            .require(weight.is_some(), "weight_grams", "The weight must be a whole number of grams from 1 to 1000000")
            .finish()?;
        Ok(Self {
            carrier_id: carrier_id.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            weight_grams: weight.and_then(|w| u32::try_from(w).ok()).unwrap_or_default(),
        })
    }
}

/// `GB`, `FR`: exactly two ASCII uppercase letters.
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// The rate service's path for a parcel:
/// `/rates?carrier=<carrier_id, percent-encoded>&from=<from>&to=<to>&weight_grams=<n>`.
pub fn rates_path(carrier_id: &str, from: &str, to: &str, weight_grams: u32) -> String {
    format!(
        "/rates?carrier={}&from={}&to={}&weight_grams={weight_grams}",
        encode_query_value(carrier_id),
        encode_query_value(from),
        encode_query_value(to)
    )
}

/// Percent-encodes `value` for a query string: every byte but RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`.
pub fn encode_query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The rate service's answer to a quote.
#[derive(Deserialize)]
struct RateAnswer {
    price_cents: u64,
    currency: String,
}

/// The price and currency from the service's outcome, or why there is none: the kind the
/// rejection names and a detail for the log.
fn price(outcome: Result<GatewayResponse, GatewayError>) -> Result<(u64, String), (String, String)> {
    let response = outcome.map_err(|e| (e.kind().to_string(), e.to_string()))?;
    if response.status != 200 {
        return Err((format!("bad-status-{}", response.status), format!("the service answered {}", response.status)));
    }
    let bad = |why: String| ("bad-answer".to_string(), why);
    let answer: RateAnswer = response.json().map_err(|e| bad(format!("the answer does not fit: {e}")))?;
    if answer.price_cents == 0 {
        return Err(bad("the price is 0".into()));
    }
    if !(answer.currency.len() == 3 && answer.currency.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(bad(format!("`{}` is not a currency code", answer.currency)));
    }
    Ok((answer.price_cents, answer.currency))
}
