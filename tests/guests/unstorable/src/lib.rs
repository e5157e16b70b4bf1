//! Test guest `unstorable`: returns events no store or read model can hold, from a decision
//! (`nest`) and from a command handler (`nest-in-handler`): JSON nested `depth` levels deep. The
//! host must refuse each with 422 `unstorable-event` before anything is stored, while other
//! commands (`note`) and other domains go on. The nesting is produced by a serializer that
//! recurses once per level, never held as a deep value.

use cairn_sdk::{Aggregate, CommandHandler, CommandSpec, Expected, HandlerError, IdSource, Rejection, UnitOfWork};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

cairn_sdk::export_domain! {
    name: "unstorable",
    description: "Returns events nested deeper than any store accepts.",
    aggregates: [Nest],
    handlers: [NestInHandler],
}

/// Commands of the `nest` aggregate.
#[derive(Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum NestCommand {
    /// Decides one event nested `depth` levels deep.
    Nest {
        /// Levels of nested arrays.
        depth: usize,
    },
    /// Decides one plain event.
    Note {
        /// Any text.
        text: String,
    },
}

/// `depth` levels of arrays, one inside the other.
#[derive(Debug, PartialEq, Eq)]
pub struct Depth(pub usize);

impl Serialize for Depth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(usize::from(self.0 > 1)))?;
        if self.0 > 1 {
            seq.serialize_element(&Depth(self.0 - 1))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Depth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Depth(0))
    }
}

/// Events.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum NestEvent {
    /// Deeply nested data.
    Nested(Depth),
    /// Plain data.
    Noted {
        /// The text.
        text: String,
    },
}

/// State: nothing worth keeping.
#[derive(Default, Serialize, Deserialize)]
pub struct Nest;

impl Aggregate for Nest {
    const NAME: &'static str = "nest";
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::new("nest", IdSource::Field("id"), "One deeply nested event."),
        CommandSpec::new("note", IdSource::Field("id"), "One plain event."),
    ];
    const EVENT_TYPES: &'static [&'static str] = &["Nested", "Noted"];
    type Command = NestCommand;
    type Event = NestEvent;

    fn apply(&mut self, _event: NestEvent) {}

    fn decide(&self, _id: &str, command: NestCommand) -> Result<Vec<NestEvent>, Rejection> {
        Ok(vec![match command {
            NestCommand::Nest { depth } => NestEvent::Nested(Depth(depth)),
            NestCommand::Note { text } => NestEvent::Noted { text },
        }])
    }
}

/// Commands of the handler.
#[derive(Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum NestInHandlerCommand {
    /// Appends one plain event, then one nested `depth` levels deep, to the `nest` stream.
    NestInHandler {
        /// Levels of nested arrays.
        depth: usize,
    },
    /// Loads the `nest` stream's whole history and decides a `note` on it.
    NoteInHandler {
        /// Any text.
        text: String,
    },
}

/// Appends through the unit of work (the event-store capability).
#[derive(Default)]
pub struct NestInHandler;

impl CommandHandler for NestInHandler {
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::handled("nest-in-handler", "nest", IdSource::Field("id"), "Appends a nested event."),
        CommandSpec::handled("note-in-handler", "nest", IdSource::Field("id"), "Loads the history, notes."),
    ];
    type Command = NestInHandlerCommand;

    fn handle(&self, work: &mut UnitOfWork<'_>, id: &str, command: NestInHandlerCommand) -> Result<(), HandlerError> {
        match command {
            NestInHandlerCommand::NestInHandler { depth } => {
                let events = [NestEvent::Noted { text: "before".into() }, NestEvent::Nested(Depth(depth))];
                work.append::<Nest>(id, Expected::Any, &events)?;
            }
            NestInHandlerCommand::NoteInHandler { text } => {
                work.execute::<Nest>(id, NestCommand::Note { text })?;
            }
        }
        Ok(())
    }
}
