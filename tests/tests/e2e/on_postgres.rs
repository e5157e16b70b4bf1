//! The same suites on PostgreSQL (a fresh schema per host), and several hosts sharing one
//! database.

pub type TestHost = cairn_tests::PgTestHost;

suites_on_every_backend!();

#[path = "cluster.rs"]
mod cluster;
#[path = "cluster_poison.rs"]
mod cluster_poison;
#[path = "held_append.rs"]
mod held_append;
#[path = "outage.rs"]
mod outage;
#[path = "queue_takeover.rs"]
mod queue_takeover;
#[path = "refused_documents.rs"]
mod refused_documents;
#[path = "shared_states.rs"]
mod shared_states;
#[path = "shutdown.rs"]
mod shutdown;
#[path = "write_path.rs"]
mod write_path;
