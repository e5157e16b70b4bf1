//! Hostile test guest `hostile`: each command attacks the host in one way (deep recursion, a
//! flood of events, a huge event, a huge log line, escaping its scratch directory). The host
//! must stop each one with an error naming the limit, append nothing, and keep serving.

use cairn_sdk::{Aggregate, CommandSpec, IdSource, Rejection};
use serde::{Deserialize, Serialize};

cairn_sdk::export_domain! {
    name: "hostile",
    description: "Attacks the host, one way per command.",
    aggregates: [Attack],
    capabilities: ["scratch"],
}

/// One attack per command.
#[derive(Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum AttackCommand {
    /// Recurses without bound.
    Recurse {},
    /// Returns `count` events.
    Flood {
        /// How many.
        count: usize,
    },
    /// Returns one event of `mib` MiB.
    Huge {
        /// Size in MiB.
        mib: usize,
    },
    /// Logs one line of `mib` MiB, then records an event.
    Shout {
        /// Size in MiB.
        mib: usize,
    },
    /// Writes and reads its scratch directory, then tries to get out of it; records what worked.
    Probe {},
}

/// Events.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum AttackEvent {
    /// Something was recorded.
    Recorded {
        /// Filler.
        blob: String,
    },
    /// What a probe found.
    Probed {
        /// What was read back from /scratch.
        scratch: Option<String>,
        /// Paths outside /scratch that could be read (should stay empty).
        escaped: Vec<String>,
        /// Environment variables visible (should stay empty).
        env: Vec<String>,
    },
}

/// State: nothing worth keeping.
#[derive(Default, Serialize, Deserialize)]
pub struct Attack;

#[allow(unconditional_recursion)] // the point: it never stops
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(std::hint::black_box(depth + 1)) + 1)
}

impl Aggregate for Attack {
    const NAME: &'static str = "attack";
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::new("recurse", IdSource::Field("id"), "Unbounded recursion."),
        CommandSpec::new("flood", IdSource::Field("id"), "Many events."),
        CommandSpec::new("huge", IdSource::Field("id"), "One huge event."),
        CommandSpec::new("shout", IdSource::Field("id"), "One huge log line."),
        CommandSpec::new("probe", IdSource::Field("id"), "Scratch and escape attempts."),
    ];
    const EVENT_TYPES: &'static [&'static str] = &["Recorded", "Probed"];
    type Command = AttackCommand;
    type Event = AttackEvent;

    fn apply(&mut self, _event: AttackEvent) {}

    fn decide(&self, id: &str, command: AttackCommand) -> Result<Vec<AttackEvent>, Rejection> {
        let small = || AttackEvent::Recorded { blob: String::new() };
        match command {
            AttackCommand::Recurse {} => Ok(vec![AttackEvent::Recorded { blob: recurse(0).to_string() }]),
            AttackCommand::Flood { count } => Ok((0..count).map(|_| small()).collect()),
            AttackCommand::Huge { mib } => Ok(vec![AttackEvent::Recorded { blob: "x".repeat(mib << 20) }]),
            AttackCommand::Shout { mib } => {
                cairn_sdk::log::info(&"!".repeat(mib << 20));
                Ok(vec![small()])
            }
            AttackCommand::Probe {} => {
                let note = format!("/scratch/{id}.txt");
                let scratch = std::fs::write(&note, "kept").and_then(|()| std::fs::read_to_string(&note)).ok();
                let escaped = [
                    "/etc/passwd",
                    "/scratch/../cairn.db",
                    "/scratch/../../cairn.db",
                    "/proc/self/environ",
                    "cairn.db",
                ]
                .iter()
                .filter(|path| std::fs::read(path).is_ok())
                .map(|path| path.to_string())
                .collect();
                let env = std::env::vars().map(|(k, _)| k).collect();
                Ok(vec![AttackEvent::Probed { scratch, escaped, env }])
            }
        }
    }
}
