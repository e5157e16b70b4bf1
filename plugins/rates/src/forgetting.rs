//! `forget-carrier-rates`: drops every cached price of a carrier (its `carrier:<id>` tag), for
//! when its tariff changes; the next quotes ask the rate service again. Records nothing.

use cairn_sdk::{CommandHandler, CommandSpec, HandlerError, IdSource, Rejection, UnitOfWork};
use serde::Deserialize;

/// Commands of the rate cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum ForgettingCommand {
    /// Forgets a carrier's cached prices.
    ForgetCarrierRates {},
}

/// Drops cached prices.
#[derive(Debug, Default)]
pub struct Forgetting;

impl CommandHandler for Forgetting {
    const COMMANDS: &'static [CommandSpec] = &[CommandSpec::handled(
        "forget-carrier-rates",
        "quote",
        IdSource::Field("carrier_id"),
        "Forgets every cached price of a carrier, so that the next quotes ask the rate service.",
    )];
    type Command = ForgettingCommand;

    fn handle(
        &self,
        work: &mut UnitOfWork<'_>,
        carrier_id: &str,
        _command: ForgettingCommand,
    ) -> Result<(), HandlerError> {
        work.cache()
            .invalidate_tag(&format!("carrier:{carrier_id}"))
            .map_err(|e| Rejection::new("cache-unavailable", format!("The rate cache could not be cleared: {e}")))?;
        Ok(())
    }
}
