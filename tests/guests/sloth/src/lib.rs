//! Slow test guest `sloth`: a domain whose projector and query take their time (they sleep,
//! within the deadline its tests give it) or write a lot, to prove that one domain's slow or
//! greedy read side holds up no other domain (see `tests/tests/e2e/containment.rs`).
//!
//! Commands (`id` names the task): `note` (one small document), `nap` (the projector sleeps
//! `ms` on it, then writes its document), `flood` (the projector writes `count` documents of
//! `kib` KiB in one call), `odd` (the projector writes a document holding the number
//! `1e-20000`: serde_json keeps its text only in the `precise-numbers` build, whose document
//! PostgreSQL's jsonb refuses, "value overflows numeric format"; the plain build writes `0.0`).
//! Queries over the `tasks` projection: `task` (one document by `id`)
//! and `nap` (sleeps `ms`, then answers like `task`).

use std::time::Duration;

use cairn_sdk::{
    Aggregate, CommandSpec, IdSource, ProjectError, Projector, Query, QueryError, ReadModel, ReadModelRead, Recorded,
    Rejection,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

cairn_sdk::export_domain! {
    name: "sloth",
    description: "Takes its time on the read side, to test containment.",
    aggregates: [Task],
    projectors: [Tasks],
    queries: [TaskQuery, NapQuery],
}

/// Commands.
#[derive(Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum TaskCommand {
    /// Records a note.
    Note {},
    /// Makes the projector sleep.
    Nap {
        /// How long, in milliseconds.
        ms: u64,
    },
    /// Makes the projector write many documents.
    Flood {
        /// How many.
        count: u32,
        /// Each this many KiB.
        kib: u32,
    },
    /// Makes the projector write a number PostgreSQL cannot hold (in the `precise-numbers` build).
    Odd {},
}

/// Events.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum TaskEvent {
    /// A note.
    Noted {},
    /// A nap of the projector.
    Napped {
        /// Milliseconds.
        ms: u64,
    },
    /// A flood of documents.
    Flooded {
        /// How many.
        count: u32,
        /// KiB each.
        kib: u32,
    },
    /// An odd number to write.
    Odd {},
}

/// State: nothing worth keeping.
#[derive(Default, Serialize, Deserialize)]
pub struct Task;

impl Aggregate for Task {
    const NAME: &'static str = "task";
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::new("note", IdSource::Field("id"), "A small document."),
        CommandSpec::new("nap", IdSource::Field("id"), "The projector sleeps `ms`."),
        CommandSpec::new("flood", IdSource::Field("id"), "The projector writes `count` documents of `kib` KiB."),
        CommandSpec::new("odd", IdSource::Field("id"), "The projector writes the number 1e-20000."),
    ];
    const EVENT_TYPES: &'static [&'static str] = &["Noted", "Napped", "Flooded", "Odd"];
    type Command = TaskCommand;
    type Event = TaskEvent;

    fn apply(&mut self, _event: TaskEvent) {}

    fn decide(&self, _id: &str, command: TaskCommand) -> Result<Vec<TaskEvent>, Rejection> {
        Ok(vec![match command {
            TaskCommand::Note {} => TaskEvent::Noted {},
            TaskCommand::Nap { ms } => TaskEvent::Napped { ms },
            TaskCommand::Flood { count, kib } => TaskEvent::Flooded { count, kib },
            TaskCommand::Odd {} => TaskEvent::Odd {},
        }])
    }
}

/// One document per task: `{"id", "kind"}`.
#[derive(Debug, Default)]
pub struct Tasks;

impl Projector for Tasks {
    const NAME: &'static str = "tasks";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "One document per task.";
    const EVENT_TYPES: &'static [&'static str] = &[];
    type Event = TaskEvent;

    fn project(&self, event: &Recorded<TaskEvent>, model: &mut dyn ReadModel) -> Result<(), ProjectError> {
        let id = event.aggregate_id("task").ok_or_else(|| ProjectError::new("not a task stream"))?;
        let kind = match &event.event {
            TaskEvent::Noted {} => "note",
            TaskEvent::Napped { ms } => {
                std::thread::sleep(Duration::from_millis(*ms));
                "nap"
            }
            TaskEvent::Flooded { count, kib } => {
                let filler = "x".repeat(*kib as usize * 1024);
                for n in 0..*count {
                    model.upsert("filler", &format!("{id}-{n}"), &json!({ "filler": filler }))?;
                }
                "flood"
            }
            TaskEvent::Odd {} => {
                let odd: Value = serde_json::from_str("1e-20000").unwrap_or(Value::Null);
                model.upsert("tasks", id, &json!({ "id": id, "kind": "odd", "odd": odd }))?;
                return Ok(());
            }
        };
        model.upsert("tasks", id, &json!({ "id": id, "kind": kind }))?;
        Ok(())
    }
}

/// Parameters of both queries.
#[derive(Debug, Deserialize)]
pub struct TaskParams {
    /// The task.
    #[serde(default)]
    pub id: String,
    /// How long `nap` sleeps, in milliseconds.
    #[serde(default)]
    pub ms: Option<String>,
}

fn task(model: &dyn ReadModelRead, id: &str) -> Result<Value, QueryError> {
    Ok(json!({ "task": model.get("tasks", id)? }))
}

/// One task's document (`null` when absent).
#[derive(Debug, Default)]
pub struct TaskQuery;

impl Query for TaskQuery {
    const NAME: &'static str = "task";
    const PROJECTION: &'static str = "tasks";
    const DESCRIPTION: &'static str = "One task's document.";
    type Params = TaskParams;

    fn run(&self, params: TaskParams, model: &dyn ReadModelRead) -> Result<Value, QueryError> {
        task(model, &params.id)
    }
}

/// Sleeps `ms`, then answers like `task`.
#[derive(Debug, Default)]
pub struct NapQuery;

impl Query for NapQuery {
    const NAME: &'static str = "nap";
    const PROJECTION: &'static str = "tasks";
    const DESCRIPTION: &'static str = "A slow query.";
    type Params = TaskParams;

    fn run(&self, params: TaskParams, model: &dyn ReadModelRead) -> Result<Value, QueryError> {
        let ms = params.ms.as_deref().unwrap_or("0").parse().unwrap_or(0);
        let answer = task(model, &params.id)?;
        std::thread::sleep(Duration::from_millis(ms));
        Ok(answer)
    }
}
