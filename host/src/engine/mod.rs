//! The pipelines between HTTP and the runtime: today the command pipeline, for aggregate
//! decisions and command handlers alike.

pub mod batch;
mod calls;
pub mod command;
pub mod queue;
mod response;

pub use batch::BatchRequest;
pub use command::{CommandEngine, CommandError, CommandOutcome, CommandRequest};
pub use queue::{AsyncCommands, QueueSettings};
