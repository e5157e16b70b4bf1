//! The registration handler: `register-carrier` and `change-carrier-email` run the carrier's own
//! rules and reserve (or move) the email in the same unit of work.

use cairn_sdk::{CommandHandler, CommandSpec, HandlerError, IdSource, Rejection, UnitOfWork};

use crate::{Carrier, CarrierCommand, CarrierEvent, EmailAddress, EmailCommand, email_key};

/// Registers carriers and changes their email, keeping every email unique.
#[derive(Debug, Default)]
pub struct Registration;

impl CommandHandler for Registration {
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::handled(
            "register-carrier",
            "carrier",
            IdSource::Minted,
            "Registers a carrier with a name and an email no other carrier uses.",
        ),
        CommandSpec::handled(
            "change-carrier-email",
            "carrier",
            IdSource::Field("carrier_id"),
            "Changes the contact email of an active carrier to one no other carrier uses.",
        ),
    ];
    type Command = CarrierCommand;

    fn handle(&self, work: &mut UnitOfWork<'_>, id: &str, command: CarrierCommand) -> Result<(), HandlerError> {
        let known =
            matches!(command, CarrierCommand::RegisterCarrier { .. } | CarrierCommand::ChangeCarrierEmail { .. });
        if !known {
            return Err(Rejection::new("unknown-command", "This command is not a registration").into());
        }
        for event in work.execute::<Carrier>(id, command)? {
            match event {
                CarrierEvent::CarrierRegistered { email, .. } => {
                    work.execute::<EmailAddress>(&email_key(&email), EmailCommand::Reserve { carrier_id: id.into() })?;
                }
                CarrierEvent::CarrierEmailChanged { old_email, new_email }
                    if email_key(&old_email) != email_key(&new_email) =>
                {
                    work.execute::<EmailAddress>(
                        &email_key(&new_email),
                        EmailCommand::Reserve { carrier_id: id.into() },
                    )?;
                    work.execute::<EmailAddress>(
                        &email_key(&old_email),
                        EmailCommand::Release { carrier_id: id.into() },
                    )?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
