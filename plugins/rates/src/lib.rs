//! # rates: carrier rate quotes as a Cairn domain
//!
//! A client asks what a carrier charges to ship a parcel of some weight from one country to
//! another (`request-quote`). The [`Quoting`] handler asks the operator's `rates` service through
//! the host's gateway and records the answer as a [`QuoteEvent::RateQuoted`] on a new
//! `quote-<id>` stream (the host mints the id). When the service cannot quote (refused, down,
//! slow, an unexpected status or body) the command is rejected with `rate-unavailable` and
//! nothing is recorded. Prices are cached per carrier, route and weight; `forget-carrier-rates`
//! ([`Forgetting`]) drops a carrier's cached prices on every host sharing the cache.

use cairn_sdk::{Aggregate, CommandSpec, Rejection};
use serde::{Deserialize, Serialize};

cairn_sdk::export_domain! {
    name: "rates",
    description: "Quotes carrier rates from the operator's rate service and records every quote.",
    aggregates: [Quote],
    handlers: [Quoting, Forgetting],
}

mod forgetting;
mod quoting;

pub use forgetting::{Forgetting, ForgettingCommand};

pub use quoting::{
    Quoting, QuotingCommand, RATE_UNAVAILABLE, SERVICE, encode_query_value, is_country_code, rates_path,
};

/// What happened to quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum QuoteEvent {
    /// The rate service quoted a price.
    RateQuoted {
        /// The carrier quoted.
        carrier_id: String,
        /// Origin country, ISO 3166-1 alpha-2 (`GB`).
        from: String,
        /// Destination country, ISO 3166-1 alpha-2 (`FR`).
        to: String,
        /// The parcel's weight in grams.
        weight_grams: u32,
        /// The price in cents of `currency`.
        price_cents: u64,
        /// The price's currency, as the service named it (`EUR`).
        currency: String,
    },
}

/// A quote has no commands of its own: only [`Quoting`] records quotes, since it needs the rate
/// service's answer.
#[derive(Debug, Clone, Deserialize)]
pub enum QuoteCommand {}

/// A quote, folded from its events.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Quote {
    quoted: bool,
    carrier_id: String,
    from: String,
    to: String,
    weight_grams: u32,
    price_cents: u64,
    currency: String,
}

impl Aggregate for Quote {
    const NAME: &'static str = "quote";
    // `request-quote` is handled by [`Quoting`].
    const COMMANDS: &'static [CommandSpec] = &[];
    const EVENT_TYPES: &'static [&'static str] = &["RateQuoted"];
    const IGNORE_UNKNOWN_EVENTS: bool = true;
    type Command = QuoteCommand;
    type Event = QuoteEvent;

    fn apply(&mut self, event: QuoteEvent) {
        match event {
            QuoteEvent::RateQuoted { carrier_id, from, to, weight_grams, price_cents, currency } => {
                *self = Self { quoted: true, carrier_id, from, to, weight_grams, price_cents, currency };
            }
        }
    }

    fn decide(&self, _id: &str, command: QuoteCommand) -> Result<Vec<QuoteEvent>, Rejection> {
        match command {}
    }
}

#[cfg(test)]
mod tests;
