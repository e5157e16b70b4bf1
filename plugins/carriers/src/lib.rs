//! # carriers: the Distributing Carriers service as a Cairn domain
//!
//! A carrier registers with a name and an email, may change its email, and may be deactivated.
//! Rules: every invalid field is reported at once; a carrier id registers only once; nothing
//! changes on a deactivated carrier; **an email belongs to one carrier at a time** — registration
//! and email changes are command handlers that reserve an `email-address-<email>` stream in the
//! same unit of work as the carrier's own stream (and release the old one on a change).
//!
//! Two cargo features build the versions the hot-swap tests deploy over this one:
//! `next` (0.2.0: a `rename-carrier` command and an optional `phone` on registration, still
//! folding every 0.1 event) and `incompatible` (0.3.0: registration requires a `region` field
//! that 0.1 events lack, so it cannot fold them and the host must refuse to activate it).

use cairn_sdk::{Aggregate, CommandSpec, IdSource, Rejection, Validation};
use serde::{Deserialize, Serialize};

/// The semantic version this build reports.
pub const VERSION: &str = if cfg!(feature = "incompatible") {
    "0.3.0"
} else if cfg!(feature = "next") {
    "0.2.0"
} else {
    env!("CARGO_PKG_VERSION")
};

cairn_sdk::export_domain! {
    name: "carriers",
    version: VERSION,
    description: "Registers delivery carriers and keeps their contact details.",
    aggregates: [Carrier, EmailAddress],
    handlers: [Registration],
}

mod email;
mod registration;

pub use email::{EmailAddress, EmailCommand, EmailEvent, email_key};
pub use registration::Registration;

/// Commands a carrier accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum CarrierCommand {
    /// Registers a new carrier; the host mints its id.
    RegisterCarrier {
        /// Display name.
        #[serde(default)]
        name: String,
        /// Contact email.
        #[serde(default)]
        email: String,
    },
    /// Changes a carrier's contact email.
    ChangeCarrierEmail {
        /// Which carrier.
        carrier_id: String,
        /// The new email.
        #[serde(default)]
        email: String,
    },
    /// Renames a carrier (0.2.0 and later).
    #[cfg(feature = "next")]
    RenameCarrier {
        /// Which carrier.
        carrier_id: String,
        /// The new name.
        #[serde(default)]
        name: String,
    },
    /// Deactivates a carrier; it accepts no change afterwards.
    DeactivateCarrier {
        /// Which carrier.
        carrier_id: String,
        /// Why, for the audit trail.
        #[serde(default)]
        reason: Option<String>,
    },
}

/// What happened to carriers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CarrierEvent {
    /// A carrier was registered.
    CarrierRegistered {
        /// Its id.
        carrier_id: String,
        /// Display name.
        name: String,
        /// Contact email.
        email: String,
        /// Contact phone (0.2.0 and later; absent from older events).
        #[cfg(feature = "next")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
        /// Sales region (0.3.0, required: older events cannot be read).
        #[cfg(feature = "incompatible")]
        region: String,
    },
    /// A carrier was renamed (0.2.0 and later).
    #[cfg(feature = "next")]
    CarrierRenamed {
        /// The new name.
        name: String,
    },
    /// A carrier's email changed.
    CarrierEmailChanged {
        /// The email before.
        old_email: String,
        /// The email now.
        new_email: String,
    },
    /// A carrier was deactivated.
    CarrierDeactivated {
        /// Why, if given.
        reason: Option<String>,
    },
}

/// A carrier's state, folded from its events.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Carrier {
    registered: bool,
    active: bool,
    name: String,
    email: String,
}

impl Aggregate for Carrier {
    const NAME: &'static str = "carrier";
    // Registration and email changes are handled by [`Registration`] (they reserve the email too).
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::new("deactivate-carrier", IdSource::Field("carrier_id"), "Deactivates a carrier for good."),
        #[cfg(feature = "next")]
        CommandSpec::new("rename-carrier", IdSource::Field("carrier_id"), "Renames an active carrier."),
    ];
    const EVENT_TYPES: &'static [&'static str] = &[
        "CarrierRegistered",
        "CarrierEmailChanged",
        "CarrierDeactivated",
        #[cfg(feature = "next")]
        "CarrierRenamed",
    ];
    // Streams a later version wrote to stay readable after a rollback: skip its new event types.
    const IGNORE_UNKNOWN_EVENTS: bool = true;
    type Command = CarrierCommand;
    type Event = CarrierEvent;

    fn apply(&mut self, event: CarrierEvent) {
        match event {
            CarrierEvent::CarrierRegistered { name, email, .. } => {
                self.registered = true;
                self.active = true;
                self.name = name;
                self.email = email;
            }
            CarrierEvent::CarrierEmailChanged { new_email, .. } => self.email = new_email,
            #[cfg(feature = "next")]
            CarrierEvent::CarrierRenamed { name } => self.name = name,
            CarrierEvent::CarrierDeactivated { .. } => self.active = false,
        }
    }

    fn decide(&self, id: &str, command: CarrierCommand) -> Result<Vec<CarrierEvent>, Rejection> {
        match command {
            CarrierCommand::RegisterCarrier { name, email } => {
                if self.registered {
                    return Err(Rejection::new("already-registered", format!("Carrier {id} is already registered")));
                }
                let name = name.trim().to_string();
                let email = email.trim().to_string();
                Validation::new()
                    .require(!name.is_empty(), "name", "The name is required")
                    .require(name.chars().count() <= 200, "name", "The name must be at most 200 characters")
                    .require(is_valid_email(&email), "email", "The email must be a valid email address")
                    .finish()?;
                Ok(vec![CarrierEvent::CarrierRegistered {
                    carrier_id: id.to_string(),
                    name,
                    email,
                    #[cfg(feature = "next")]
                    phone: None,
                    #[cfg(feature = "incompatible")]
                    region: "unknown".to_string(),
                }])
            }
            CarrierCommand::ChangeCarrierEmail { email, .. } => {
                self.ensure_active(id)?;
                let email = email.trim().to_string();
                Validation::new()
                    .require(is_valid_email(&email), "email", "The email must be a valid email address")
                    .finish()?;
                if email == self.email {
                    return Ok(vec![]);
                }
                Ok(vec![CarrierEvent::CarrierEmailChanged { old_email: self.email.clone(), new_email: email }])
            }
            #[cfg(feature = "next")]
            CarrierCommand::RenameCarrier { name, .. } => {
                self.ensure_active(id)?;
                let name = name.trim().to_string();
                Validation::new().require(!name.is_empty(), "name", "The name is required").finish()?;
                Ok(vec![CarrierEvent::CarrierRenamed { name }])
            }
            CarrierCommand::DeactivateCarrier { reason, .. } => {
                self.ensure_active(id)?;
                Ok(vec![CarrierEvent::CarrierDeactivated { reason }])
            }
        }
    }
}

impl Carrier {
    fn ensure_active(&self, id: &str) -> Result<(), Rejection> {
        if !self.registered {
            return Err(Rejection::new("carrier-not-found", format!("Carrier {id} is not registered")));
        }
        if !self.active {
            return Err(Rejection::new(
                "carrier-deactivated",
                format!("Carrier {id} is deactivated; nothing can change"),
            ));
        }
        Ok(())
    }
}

/// A pragmatic email check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && email.len() <= 254
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty())
}

#[cfg(test)]
mod tests;
