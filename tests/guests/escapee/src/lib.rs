//! Hostile test guest `escapee`: each command tries to get past its limits where the sandbox
//! meets the host — time spent inside host calls (a WASI sleep, a sleeping loop), log volume
//! over many lines, streams its aggregates do not own. Features build variants the host must
//! refuse at deploy: `long-version` (a 4 MiB version with a newline), `sleepy-describe`
//! (`describe` sleeps 15 s), `sockets` (imports `wasi:sockets`).

use cairn_sdk::{Aggregate, CommandHandler, CommandSpec, Expected, HandlerError, IdSource, Rejection, UnitOfWork};
use serde::{Deserialize, Serialize};

/// The version this build reports: a lying one with `long-version`, and computed (after a
/// 15 s sleep) inside `describe` with `sleepy-describe`.
fn version() -> &'static str {
    if cfg!(feature = "long-version") {
        let long = format!("1.0.0-{}\nforged log line", "a".repeat(4 << 20));
        return Box::leak(long.into_boxed_str());
    }
    if cfg!(feature = "sleepy-describe") {
        std::thread::sleep(std::time::Duration::from_secs(15));
    }
    env!("CARGO_PKG_VERSION")
}

cairn_sdk::export_domain! {
    name: "escapee",
    version: version(),
    description: "Tries to get past its limits at the boundary, one way per command.",
    aggregates: [Escape],
    handlers: [Stray],
}

/// Commands.
#[derive(Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum EscapeCommand {
    /// Sleeps `ms` milliseconds through `wasi:clocks` (one `std::thread::sleep`), then records.
    Nap {
        /// How long.
        ms: u64,
    },
    /// Sleeps 1 ms at a time, `times` times: many short host calls.
    Doze {
        /// How many naps.
        times: u64,
    },
    /// Logs `lines` lines of `kib` KiB each, then records.
    Chatter {
        /// Lines.
        lines: usize,
        /// Size of each line in KiB.
        kib: usize,
    },
    /// (handler) Appends to the stream `escape-<suffix>` an event padded to `pad_kib` KiB.
    Stray {
        /// The stream's id part.
        suffix: String,
        /// Padding of the event, in KiB.
        #[serde(default)]
        pad_kib: usize,
    },
    /// Uses the network (only in the `sockets` build).
    Dial {},
}

/// Events.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum EscapeEvent {
    /// The command ran to the end.
    Done {
        /// What ran.
        what: String,
    },
}

/// State: nothing worth keeping.
#[derive(Default, Serialize, Deserialize)]
pub struct Escape;

fn done(what: &str) -> Vec<EscapeEvent> {
    vec![EscapeEvent::Done { what: what.to_string() }]
}

impl Aggregate for Escape {
    const NAME: &'static str = "escape";
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::new("nap", IdSource::Field("id"), "Sleeps through wasi:clocks."),
        CommandSpec::new("doze", IdSource::Field("id"), "Many 1 ms sleeps."),
        CommandSpec::new("chatter", IdSource::Field("id"), "Many log lines."),
        CommandSpec::new("dial", IdSource::Field("id"), "Opens a socket."),
    ];
    const EVENT_TYPES: &'static [&'static str] = &["Done"];
    type Command = EscapeCommand;
    type Event = EscapeEvent;

    fn apply(&mut self, _event: EscapeEvent) {}

    fn decide(&self, _id: &str, command: EscapeCommand) -> Result<Vec<EscapeEvent>, Rejection> {
        match command {
            EscapeCommand::Nap { ms } => {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(done("nap"))
            }
            EscapeCommand::Doze { times } => {
                for _ in 0..times {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(done("doze"))
            }
            EscapeCommand::Chatter { lines, kib } => {
                let line = "c".repeat(kib << 10);
                for _ in 0..lines {
                    cairn_sdk::log::info(&line);
                }
                Ok(done("chatter"))
            }
            EscapeCommand::Dial {} => dial(),
            EscapeCommand::Stray { .. } => Err(Rejection::new("not-here", "stray is a handler command")),
        }
    }
}

#[cfg(feature = "sockets")]
fn dial() -> Result<Vec<EscapeEvent>, Rejection> {
    let reached = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    Ok(done(if reached { "dialled" } else { "dial refused" }))
}

#[cfg(not(feature = "sockets"))]
fn dial() -> Result<Vec<EscapeEvent>, Rejection> {
    Ok(done("no sockets in this build"))
}

/// The handler: writes a stream named by the client.
#[derive(Default)]
pub struct Stray;

impl CommandHandler for Stray {
    const COMMANDS: &'static [CommandSpec] =
        &[CommandSpec::handled("stray", "escape", IdSource::Field("id"), "Appends to `escape-<suffix>`.")];
    type Command = EscapeCommand;

    fn handle(&self, work: &mut UnitOfWork<'_>, _id: &str, command: EscapeCommand) -> Result<(), HandlerError> {
        let EscapeCommand::Stray { suffix, pad_kib } = command else {
            return Err(Rejection::new("unknown-command", "not a stray").into());
        };
        work.append::<Escape>(&suffix, Expected::Any, &done(&"s".repeat(pad_kib << 10)))?;
        Ok(())
    }
}
