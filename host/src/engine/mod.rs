//! The pipelines between HTTP and the runtime: today the command pipeline (load history, let the
//! plugin decide, append with the expected version, retry on conflict).

pub mod command;

pub use command::{CommandEngine, CommandError, CommandOutcome, CommandRequest};
