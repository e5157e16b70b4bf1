//! The pipelines between HTTP and the runtime: the command pipeline (aggregate decisions and
//! command handlers alike), the projection runners and the query runner.

pub mod batch;
mod calls;
pub mod command;
mod decide;
mod inspect;
pub mod outbox;
pub mod projections;
pub mod queries;
pub mod queue;
mod response;
pub mod state_cache;
mod stop;
mod stream_locks;

pub use batch::BatchRequest;
pub use command::{CommandEngine, CommandError, CommandOutcome, CommandRequest};
pub use inspect::AggregateState;
pub use outbox::OutboxWorker;
pub use projections::{ClusterSettings, FailurePolicy, ProjectionSettings, Projections};
pub use queries::{Queries, QuerySettings};
pub use queue::{AsyncCommands, QueueSettings, Submitted};
pub use stop::Stop;
