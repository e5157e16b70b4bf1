//! What a plugin says about itself: the checks on what `describe`, `projections` and `queries`
//! return before the host routes anything to it, and its description as JSON for operators.

use std::collections::HashSet;

use anyhow::{Result, bail};

use super::Plugin;
use super::limit_names;
use super::plugin::GRANTABLE;
use crate::bindings::plugin::{AggregateId, CommandKind, DomainInfo};
use crate::bindings::projector::ProjectionInfo;
use crate::bindings::query::QueryInfo;
use crate::text::quote;

/// Most entries of each list a description holds (aggregates, commands, event types,
/// capabilities, projections, queries): checking and routing stay cheap.
pub const MAX_DECLARED: usize = 1_000;
/// Longest description text of the domain or of one command, projection or query.
pub const MAX_DESCRIPTION_BYTES: usize = 4 << 10;
/// Longest id field name or event type name.
const MAX_FIELD_BYTES: usize = 128;

/// Checks what `describe` returned before the host routes anything to the plugin. Every check is
/// linear in the description's size, and no message quotes more than a short excerpt of it.
pub(super) fn validate(
    info: &DomainInfo,
    projections: &[ProjectionInfo],
    queries: &[QueryInfo],
    max_version_bytes: usize,
) -> Result<()> {
    let kebab = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
    };
    if !kebab(&info.name) {
        bail!("the domain name `{}` must be kebab-case ([a-z0-9-], at most 64 characters)", quote(&info.name));
    }
    check_version(&info.version, max_version_bytes)?;
    let lists = [
        ("aggregates", info.aggregates.len()),
        ("commands", info.commands.len()),
        ("event types", info.event_types.len()),
        ("capabilities", info.capabilities.len()),
        ("projections", projections.len()),
        ("queries", queries.len()),
    ];
    if let Some((what, count)) = lists.iter().find(|(_, count)| *count > MAX_DECLARED) {
        bail!("it declares {count} {what}; a domain declares at most {MAX_DECLARED}");
    }
    let descriptions = std::iter::once(&info.description)
        .chain(info.commands.iter().map(|c| &c.description))
        .chain(projections.iter().map(|p| &p.description))
        .chain(queries.iter().map(|q| &q.description));
    if descriptions.into_iter().any(|d| d.len() > MAX_DESCRIPTION_BYTES) {
        bail!("a description is longer than {MAX_DESCRIPTION_BYTES} bytes");
    }
    for aggregate in &info.aggregates {
        if !kebab(aggregate) {
            bail!("the aggregate name `{}` must be kebab-case", quote(aggregate));
        }
    }
    let aggregates: HashSet<&str> = info.aggregates.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    for command in &info.commands {
        if !kebab(&command.name) {
            bail!("the command name `{}` must be kebab-case", quote(&command.name));
        }
        if !seen.insert(&command.name) {
            bail!("the command `{}` is declared twice", command.name);
        }
        if !aggregates.contains(command.aggregate.as_str()) {
            bail!(
                "the command `{}` addresses `{}`, which is not one of the domain's aggregates",
                command.name,
                quote(&command.aggregate)
            );
        }
        if let AggregateId::Field(field) = &command.id
            && (field.is_empty() || field.len() > MAX_FIELD_BYTES)
        {
            bail!(
                "the command `{}` reads its aggregate id from a field name of 1 to {MAX_FIELD_BYTES} bytes",
                command.name
            );
        }
    }
    if let Some(unknown) = info.capabilities.iter().find(|c| !GRANTABLE.contains(&c.as_str())) {
        bail!(
            "it asks for the capability `{}`, which this host does not grant (grantable: {GRANTABLE:?})",
            quote(unknown)
        );
    }
    if info.event_types.iter().any(|t| t.is_empty() || t.len() > MAX_FIELD_BYTES || t.chars().any(char::is_control)) {
        bail!("event type names must be 1 to {MAX_FIELD_BYTES} bytes without control characters");
    }
    validate_read_side(projections, queries)
}

/// A plugin version is a semantic version (pre-release and build metadata allowed), at most
/// `max_bytes` long: it is copied into every event's metadata and every plugin log line.
pub fn check_version(version: &str, max_bytes: usize) -> Result<()> {
    if version.len() > max_bytes {
        bail!(
            "the version `{}` is {} bytes long; at most {max_bytes} are accepted ({})",
            quote(version),
            version.len(),
            limit_names::VERSION
        );
    }
    if let Err(e) = semver::Version::parse(version) {
        bail!("the version `{}` is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build]): {e}", quote(version));
    }
    Ok(())
}

/// Projection names are `[a-z0-9_-]` (snake_case is common for read models), versions start at
/// 1, names are unique, and every query reads a projection the plugin maintains.
fn validate_read_side(projections: &[ProjectionInfo], queries: &[QueryInfo]) -> Result<()> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    let mut seen = HashSet::new();
    for projection in projections {
        if !name_ok(&projection.name) {
            bail!("the projection name `{}` must be [a-z0-9_-], at most 64 characters", quote(&projection.name));
        }
        if !seen.insert(projection.name.as_str()) {
            bail!("the projection `{}` is declared twice", projection.name);
        }
        if projection.event_types.len() > MAX_DECLARED {
            bail!("the projection `{}` subscribes to more than {MAX_DECLARED} event types", projection.name);
        }
        if projection.version == 0 {
            bail!("the projection `{}` has version 0; versions start at 1", projection.name);
        }
    }
    let mut seen = HashSet::new();
    for query in queries {
        if !name_ok(&query.name) {
            bail!("the query name `{}` must be [a-z0-9_-], at most 64 characters", quote(&query.name));
        }
        if !seen.insert(query.name.as_str()) {
            bail!("the query `{}` is declared twice", query.name);
        }
        if !projections.iter().any(|p| p.name == query.projection) {
            bail!(
                "the query `{}` reads `{}`, which is not one of the plugin's projections",
                query.name,
                quote(&query.projection)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::plugin::CommandInfo;

    fn info(commands: usize) -> DomainInfo {
        DomainInfo {
            name: "big".into(),
            version: "1.0.0".into(),
            description: String::new(),
            aggregates: vec!["thing".into()],
            commands: (0..commands)
                .map(|i| CommandInfo {
                    name: format!("command-{i}"),
                    aggregate: "thing".into(),
                    id: AggregateId::Minted,
                    kind: CommandKind::Decide,
                    description: String::new(),
                })
                .collect(),
            event_types: vec!["Happened".into()],
            capabilities: vec![],
        }
    }

    #[test]
    fn versions_are_semantic_short_and_single_line() {
        for good in ["0.1.0", "1.2.3-rc.1", "0.1.0+dev.3f2a", "10.20.30-alpha.1+build.5"] {
            assert!(check_version(good, 64).is_ok(), "{good}");
        }
        for bad in ["1.2", "1.2.3.4", "1.2.3\nforged", "v1.2.3", "1.2.3 ", ""] {
            assert!(check_version(bad, 64).is_err(), "{bad:?}");
        }
        let long = format!("1.0.0-{}", "a".repeat(4 << 20));
        let error = check_version(&long, 64).expect_err("too long").to_string();
        assert!(error.contains("limits.max_version_bytes") && error.len() < 300, "{error}");
    }

    #[test]
    fn a_description_is_checked_in_linear_time_and_its_lists_capped() {
        assert!(validate(&info(MAX_DECLARED), &[], &[], 64).is_ok());
        let started = std::time::Instant::now();
        let error = validate(&info(60_000), &[], &[], 64).expect_err("too many commands").to_string();
        assert!(error.contains("60000 commands"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        let mut named = info(1);
        named.name = "x".repeat(10 << 20);
        let error = validate(&named, &[], &[], 64).expect_err("bad name").to_string();
        assert!(error.len() < 300, "the name is not echoed whole");
    }
}
