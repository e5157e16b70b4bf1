//! Domains linked into the host process instead of loaded as components: the same engine, the
//! same store, the same HTTP, but no sandbox (no fresh instance, no deadline, no memory cap, no
//! isolation from the host). They exist to measure what the sandbox costs (`cargo bench-cairn
//! --bank` runs the bank both ways) and are never loaded from a deployment: only code that links
//! them in can serve one ([`crate::registry::Registry::install_native`]).
//!
//! A native domain decides and folds; it has no command handlers, projectors or queries.

use crate::bindings::aggregate::{DecideError, DecideRequest};
use crate::bindings::aggregate_state::{Decision, StateRequest};
use crate::bindings::plugin::DomainInfo;
use crate::bindings::types::{NewEvent, RecordedEvent};

/// A domain's aggregates as native code, mirroring the `plugin`, `aggregate` and
/// `aggregate-state` exports.
pub trait NativeDomain: Send + Sync + 'static {
    /// `plugin.describe`.
    fn describe(&self) -> DomainInfo;
    /// `aggregate.decide`.
    fn decide(&self, request: &DecideRequest) -> Result<Vec<NewEvent>, DecideError>;
    /// `aggregate.fold`.
    fn fold(&self, aggregate: &str, aggregate_id: &str, history: &[RecordedEvent]) -> Result<String, DecideError>;
    /// `aggregate-state.decide`.
    fn decide_on_state(&self, request: &StateRequest) -> Result<Decision, DecideError>;
    /// `aggregate-state.fold`.
    fn fold_on_state(
        &self,
        aggregate: &str,
        aggregate_id: &str,
        state: Option<&str>,
        tail: &[RecordedEvent],
    ) -> Result<String, DecideError>;
}
