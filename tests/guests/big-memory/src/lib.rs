//! Hostile test guest `big-memory`: a domain whose *initial* linear memory (a 96 MiB zeroed
//! static) is over the default 64 MiB cap. The host must refuse it when it is deployed, naming
//! the memory limit, instead of failing on its first command.

#![allow(unsafe_code)] // reading the ballast through a raw pointer keeps it in the binary

use cairn_sdk::{Aggregate, CommandSpec, IdSource, Rejection};
use serde::{Deserialize, Serialize};

cairn_sdk::export_domain! {
    name: "big-memory",
    description: "Starts with more memory than it may have.",
    aggregates: [Ballast],
}

static mut BALLAST: [u8; 96 << 20] = [0; 96 << 20];

/// Commands.
#[derive(Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum BallastCommand {
    /// Reads one byte of the ballast.
    Touch {
        /// Which byte.
        at: usize,
    },
}

/// Events.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum BallastEvent {
    /// A byte was read.
    Touched {
        /// Its value.
        value: u8,
    },
}

/// State.
#[derive(Default, Serialize, Deserialize)]
pub struct Ballast;

impl Aggregate for Ballast {
    const NAME: &'static str = "ballast";
    const COMMANDS: &'static [CommandSpec] = &[CommandSpec::new("touch", IdSource::Field("id"), "Reads a byte.")];
    const EVENT_TYPES: &'static [&'static str] = &["Touched"];
    type Command = BallastCommand;
    type Event = BallastEvent;

    fn apply(&mut self, _event: BallastEvent) {}

    fn decide(&self, _id: &str, command: BallastCommand) -> Result<Vec<BallastEvent>, Rejection> {
        let BallastCommand::Touch { at } = command;
        // SAFETY: reads one byte inside the static (the index is clamped); nothing writes it.
        let value = unsafe { std::ptr::read_volatile((&raw const BALLAST).cast::<u8>().add(at % (96 << 20))) };
        Ok(vec![BallastEvent::Touched { value }])
    }
}
