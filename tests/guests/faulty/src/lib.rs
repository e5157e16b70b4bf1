//! Test guest `faulty`: `record` behaves, `panic` traps, `spin` never returns, `undeclared`
//! returns an event type it did not declare, `hog` allocates as much memory as it is told. The host must survive every one of them.

use cairn_sdk::{Aggregate, CommandSpec, IdSource, Rejection};
use serde::{Deserialize, Serialize};

cairn_sdk::export_domain! {
    name: "faulty",
    description: "Misbehaves on demand.",
    aggregates: [Gadget],
}

/// Commands.
#[derive(Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum GadgetCommand {
    /// Records an event.
    Record {},
    /// Panics: the instance traps.
    Panic {},
    /// Loops forever: the deadline interrupts it.
    Spin {},
    /// Returns an event type that `describe` does not list.
    Undeclared {},
    /// Allocates `mib` MiB and touches it.
    Hog {
        /// How much.
        mib: usize,
    },
}

/// Events.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum GadgetEvent {
    /// Recorded.
    Recorded {},
    /// Never declared.
    Sneaked {},
}

/// State.
#[derive(Default, Serialize, Deserialize)]
pub struct Gadget {
    records: u64,
}

impl Aggregate for Gadget {
    const NAME: &'static str = "gadget";
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::new("record", IdSource::Field("id"), "Records an event."),
        CommandSpec::new("panic", IdSource::Field("id"), "Panics."),
        CommandSpec::new("spin", IdSource::Field("id"), "Never returns."),
        CommandSpec::new("undeclared", IdSource::Field("id"), "Returns an undeclared event type."),
        CommandSpec::new("hog", IdSource::Field("id"), "Allocates memory."),
    ];
    const EVENT_TYPES: &'static [&'static str] = &["Recorded"];
    type Command = GadgetCommand;
    type Event = GadgetEvent;

    fn apply(&mut self, _event: GadgetEvent) {
        self.records += 1;
    }

    fn decide(&self, _id: &str, command: GadgetCommand) -> Result<Vec<GadgetEvent>, Rejection> {
        match command {
            GadgetCommand::Record {} => Ok(vec![GadgetEvent::Recorded {}]),
            GadgetCommand::Panic {} => panic!("the gadget broke"),
            GadgetCommand::Spin {} => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            GadgetCommand::Undeclared {} => Ok(vec![GadgetEvent::Sneaked {}]),
            GadgetCommand::Hog { mib } => {
                let block = vec![1u8; mib << 20];
                cairn_sdk::log::info(&format!("allocated {} bytes", std::hint::black_box(&block).len()));
                Ok(vec![GadgetEvent::Recorded {}])
            }
        }
    }
}
