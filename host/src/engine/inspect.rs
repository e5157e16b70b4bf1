//! The folded state of one aggregate, now or as it was at a version (time travel, for debugging
//! and audits): `GET /v1/domains/{d}/aggregates/{aggregate}/{id}[?at_version=N]`.
//!
//! The state comes from the active plugin's own fold: the state kept in memory when it is still
//! the stream's head, else the newest snapshot of the plugin's build at or below the version plus
//! the events after it, else the whole history (plugins built before 0.1.2 fold it with `fold`).

use std::sync::Arc;

use super::command::CommandEngine;
use super::{CommandError, calls};
use crate::capabilities::event_store::recorded_event;

/// An aggregate's folded state.
#[derive(Debug, Clone)]
pub struct AggregateState {
    /// The stream, `<aggregate>-<id>`.
    pub stream: String,
    /// The version the state stands for.
    pub version: u64,
    /// The state as the plugin folded it (JSON text).
    pub state: String,
    /// The plugin version that folded it.
    pub plugin_version: String,
    /// Its component digest.
    pub digest: String,
}

impl CommandEngine {
    /// The state of `<aggregate>-<id>` in `domain` at its head, or at `at_version`.
    pub async fn aggregate_state(
        &self,
        domain: &str,
        aggregate: &str,
        id: &str,
        at_version: Option<u64>,
    ) -> Result<AggregateState, CommandError> {
        let plugin = self.plugin(domain)?;
        if !plugin.info.aggregates.iter().any(|a| a == aggregate) {
            return Err(CommandError::UnknownAggregate {
                domain: domain.to_string(),
                aggregate: aggregate.to_string(),
            });
        }
        let stream = format!("{aggregate}-{id}");
        let head = self.store.stream_head(domain, &stream).await?;
        let version = at_version.unwrap_or(head);
        if head == 0 || version == 0 || version > head {
            return Err(CommandError::VersionNotFound { stream, version, head });
        }
        let answer = |state: String| AggregateState {
            stream: stream.clone(),
            version,
            state,
            plugin_version: plugin.version().to_string(),
            digest: plugin.digest.clone(),
        };
        if let Some(kept) = self.states.get(domain, &stream, &plugin.digest).filter(|k| k.version == version) {
            return Ok(answer(kept.state.to_string()));
        }
        let snapshot = match plugin.keeps_state() {
            true => self.store.load_snapshot(domain, &stream, &plugin.digest, version).await?,
            false => None,
        };
        let from = snapshot.as_ref().map_or(1, |s| s.version + 1);
        let start = snapshot.map(|s| Arc::<str>::from(s.state));
        let slot = self.budgets.acquire(&plugin).await?;
        let names = (domain, stream.as_str(), aggregate, id);
        let (start, tail, _) = self.read_folding(&plugin, names, start, from, Some(version)).await?;
        let tail: Vec<_> = tail.into_iter().map(recorded_event).collect();
        let (aggregate, id) = (aggregate.to_string(), id.to_string());
        let folded = calls::off_executor(Arc::clone(&plugin), move |plugin| {
            plugin.fold_on_state(&aggregate, &id, start.as_deref(), &tail)
        })
        .await;
        drop(slot);
        let state = folded??.map_err(|error| calls::decide_error(&plugin, error))?;
        Ok(answer(state))
    }
}
