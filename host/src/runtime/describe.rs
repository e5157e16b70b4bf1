//! What a plugin says about itself: the checks on what `describe`, `projections` and `queries`
//! return before the host routes anything to it, and its description as JSON for operators.

use anyhow::{Result, bail};

use super::Plugin;
use super::plugin::GRANTABLE;
use crate::bindings::plugin::{AggregateId, CommandKind, DomainInfo};
use crate::bindings::projector::ProjectionInfo;
use crate::bindings::query::QueryInfo;

/// Checks what `describe` returned before the host routes anything to the plugin.
pub(super) fn validate(info: &DomainInfo, projections: &[ProjectionInfo], queries: &[QueryInfo]) -> Result<()> {
    let kebab = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
    };
    if !kebab(&info.name) {
        bail!("the domain name `{}` must be kebab-case ([a-z0-9-], at most 64 characters)", info.name);
    }
    if info.version.split('.').count() < 3 || !info.version.split('.').take(3).all(|p| p.parse::<u64>().is_ok()) {
        bail!("the version `{}` of `{}` is not a semantic version (MAJOR.MINOR.PATCH)", info.version, info.name);
    }
    for aggregate in &info.aggregates {
        if !kebab(aggregate) {
            bail!("the aggregate name `{aggregate}` must be kebab-case");
        }
    }
    let mut seen = std::collections::HashSet::new();
    for command in &info.commands {
        if !kebab(&command.name) {
            bail!("the command name `{}` must be kebab-case", command.name);
        }
        if !seen.insert(&command.name) {
            bail!("the command `{}` is declared twice", command.name);
        }
        if !info.aggregates.contains(&command.aggregate) {
            bail!(
                "the command `{}` addresses `{}`, which is not one of the domain's aggregates",
                command.name,
                command.aggregate
            );
        }
        if let AggregateId::Field(field) = &command.id
            && field.is_empty()
        {
            bail!("the command `{}` reads its aggregate id from an empty field name", command.name);
        }
    }
    if let Some(unknown) = info.capabilities.iter().find(|c| !GRANTABLE.contains(&c.as_str())) {
        bail!("it asks for the capability `{unknown}`, which this host does not grant (grantable: {GRANTABLE:?})");
    }
    if info.event_types.iter().any(|t| t.is_empty() || t.len() > 128) {
        bail!("event type names must be 1 to 128 characters");
    }
    validate_read_side(projections, queries)
}

/// Projection names are `[a-z0-9_-]` (snake_case is common for read models), versions start at
/// 1, names are unique, and every query reads a projection the plugin maintains.
fn validate_read_side(projections: &[ProjectionInfo], queries: &[QueryInfo]) -> Result<()> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    let mut seen = std::collections::HashSet::new();
    for projection in projections {
        if !name_ok(&projection.name) {
            bail!("the projection name `{}` must be [a-z0-9_-], at most 64 characters", projection.name);
        }
        if !seen.insert(projection.name.as_str()) {
            bail!("the projection `{}` is declared twice", projection.name);
        }
        if projection.version == 0 {
            bail!("the projection `{}` has version 0; versions start at 1", projection.name);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for query in queries {
        if !name_ok(&query.name) {
            bail!("the query name `{}` must be [a-z0-9_-], at most 64 characters", query.name);
        }
        if !seen.insert(query.name.as_str()) {
            bail!("the query `{}` is declared twice", query.name);
        }
        if !projections.iter().any(|p| p.name == query.projection) {
            bail!(
                "the query `{}` reads `{}`, which is not one of the plugin's projections",
                query.name,
                query.projection
            );
        }
    }
    Ok(())
}

impl Plugin {
    /// What `describe` (and `projections`, `queries`) returned, as JSON (for the admin API and the registry).
    pub fn description(&self) -> serde_json::Value {
        let info = &self.info;
        let commands: Vec<serde_json::Value> = info
            .commands
            .iter()
            .map(|c| {
                let id = match &c.id {
                    AggregateId::Field(field) => serde_json::json!({ "field": field }),
                    AggregateId::Minted => serde_json::json!("minted"),
                };
                let kind = match c.kind {
                    CommandKind::Decide => "decide",
                    CommandKind::Handle => "handle",
                };
                serde_json::json!({ "name": c.name, "kind": kind, "aggregate": c.aggregate, "id": id, "description": c.description })
            })
            .collect();
        serde_json::json!({
            "name": info.name,
            "version": info.version,
            "description": info.description,
            "aggregates": info.aggregates,
            "commands": commands,
            "event_types": info.event_types,
            "capabilities": info.capabilities,
            "projections": self.projections.iter().map(|p| serde_json::json!({
                "name": p.name, "version": p.version, "description": p.description, "event_types": p.event_types,
            })).collect::<Vec<_>>(),
            "queries": self.queries.iter().map(|q| serde_json::json!({
                "name": q.name, "projection": q.projection, "description": q.description,
            })).collect::<Vec<_>>(),
        })
    }
}
