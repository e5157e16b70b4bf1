//! `email-address`: who holds an email. One stream per address (`email-address-<email>`), so the
//! store's expected-version check makes a reservation race-free: of two concurrent
//! registrations with one email, one commits and the other re-runs and is rejected.

use cairn_sdk::{Aggregate, CommandSpec, Rejection};
use serde::{Deserialize, Serialize};

/// The id of an email's stream: the address, trimmed and lowercased.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Commands (used by the registration handler only; not exposed over HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum EmailCommand {
    /// Reserves the address for a carrier.
    Reserve {
        /// The carrier.
        carrier_id: String,
    },
    /// Frees the address if the carrier holds it.
    Release {
        /// The carrier.
        carrier_id: String,
    },
}

/// Events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EmailEvent {
    /// The address now belongs to the carrier.
    EmailReserved {
        /// The carrier.
        carrier_id: String,
    },
    /// The address is free again.
    EmailReleased {
        /// The carrier that held it.
        carrier_id: String,
    },
}

/// Who holds the address.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EmailAddress {
    owner: Option<String>,
}

impl Aggregate for EmailAddress {
    const NAME: &'static str = "email-address";
    const COMMANDS: &'static [CommandSpec] = &[];
    const EVENT_TYPES: &'static [&'static str] = &["EmailReserved", "EmailReleased"];
    const IGNORE_UNKNOWN_EVENTS: bool = true;
    type Command = EmailCommand;
    type Event = EmailEvent;

    fn apply(&mut self, event: EmailEvent) {
        match event {
            EmailEvent::EmailReserved { carrier_id } => self.owner = Some(carrier_id),
            EmailEvent::EmailReleased { .. } => self.owner = None,
        }
    }

    fn decide(&self, _email: &str, command: EmailCommand) -> Result<Vec<EmailEvent>, Rejection> {
        match command {
            EmailCommand::Reserve { carrier_id } => match &self.owner {
                Some(owner) if *owner == carrier_id => Ok(vec![]),
                Some(_) => Err(Rejection::new("email-taken", "The email is already used by another carrier")
                    .with_field("email", "The email is already used by another carrier")),
                None => Ok(vec![EmailEvent::EmailReserved { carrier_id }]),
            },
            EmailCommand::Release { carrier_id } => {
                if self.owner.as_deref() == Some(carrier_id.as_str()) {
                    Ok(vec![EmailEvent::EmailReleased { carrier_id }])
                } else {
                    Ok(vec![])
                }
            }
        }
    }
}
