//! The `[limits]` section (defaults for every domain) and `[domains.<name>.limits]` overrides.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::runtime::{EngineLimits, Limits, LimitsPolicy};

/// Sandbox limits, as configured (the defaults of every domain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Wall-clock deadline of one plugin call, in milliseconds.
    pub deadline_ms: u64,
    /// Linear-memory cap per instance, in MiB.
    pub memory_mib: usize,
    /// Plugin calls of one domain running at once; more wait up to `queue_ms`, then 503.
    pub max_concurrency: usize,
    /// How long a call waits for a free slot of its domain, in milliseconds.
    pub queue_ms: u64,
    /// Most events one decision may return.
    pub max_events_per_decision: usize,
    /// Largest event payload, in KiB.
    pub max_event_kib: usize,
    /// Longest plugin log line kept, in bytes.
    pub max_log_line_bytes: usize,
    /// Plugin log bytes one call may write in all, in KiB; later lines are dropped.
    pub max_log_kib_per_call: usize,
    /// Most data a plugin may hand the host in one host call, in MiB.
    pub max_host_call_mib: usize,
    /// Longest stream name a plugin may use, in bytes.
    pub max_stream_name_bytes: usize,
    /// Longest plugin version, in bytes.
    pub max_version_bytes: usize,
    /// Wasm stack cap, in KiB (engine-wide: not overridable per domain).
    pub stack_kib: usize,
    /// Plugin instances alive at once across the host (engine-wide).
    pub max_instances: u32,
    /// Largest buffered read-model writes of one projector call, in MiB (engine-wide).
    pub max_projection_batch_mib: usize,
    /// Deepest nesting of arrays and objects in an event's data (engine-wide, at most 128).
    pub max_event_depth: usize,
    /// Most MiB of events one read loads (engine-wide): an aggregate's history (a longer one is
    /// refused with 422), a handler's `read-stream` and a stream page (they stop early).
    pub max_read_mib: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = Limits::default();
        let engine = EngineLimits::default();
        Self {
            deadline_ms: limits.deadline.as_millis() as u64,
            memory_mib: limits.memory_bytes >> 20,
            max_concurrency: limits.max_concurrency,
            queue_ms: 1_000,
            max_events_per_decision: limits.max_events_per_decision,
            max_event_kib: limits.max_event_bytes >> 10,
            max_log_line_bytes: limits.max_log_line_bytes,
            max_log_kib_per_call: limits.max_log_bytes_per_call >> 10,
            max_host_call_mib: limits.max_host_call_bytes >> 20,
            max_stream_name_bytes: limits.max_stream_name_bytes,
            max_version_bytes: limits.max_version_bytes,
            stack_kib: engine.stack_bytes >> 10,
            max_instances: engine.max_instances,
            max_projection_batch_mib: 64,
            max_event_depth: 64,
            max_read_mib: 64,
        }
    }
}

/// Settings of one domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainConfig {
    /// Limits that differ from `[limits]`.
    pub limits: LimitsOverride,
}

/// Per-domain limit overrides; unset values come from `[limits]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverride {
    /// See [`LimitsConfig::deadline_ms`].
    pub deadline_ms: Option<u64>,
    /// See [`LimitsConfig::memory_mib`].
    pub memory_mib: Option<usize>,
    /// See [`LimitsConfig::max_concurrency`].
    pub max_concurrency: Option<usize>,
    /// See [`LimitsConfig::max_events_per_decision`].
    pub max_events_per_decision: Option<usize>,
    /// See [`LimitsConfig::max_event_kib`].
    pub max_event_kib: Option<usize>,
    /// See [`LimitsConfig::max_log_line_bytes`].
    pub max_log_line_bytes: Option<usize>,
    /// See [`LimitsConfig::max_log_kib_per_call`].
    pub max_log_kib_per_call: Option<usize>,
    /// See [`LimitsConfig::max_host_call_mib`].
    pub max_host_call_mib: Option<usize>,
}

impl LimitsConfig {
    /// These defaults with `o`'s values on top.
    pub fn with(&self, o: &LimitsOverride) -> Self {
        Self {
            deadline_ms: o.deadline_ms.unwrap_or(self.deadline_ms),
            memory_mib: o.memory_mib.unwrap_or(self.memory_mib),
            max_concurrency: o.max_concurrency.unwrap_or(self.max_concurrency),
            max_events_per_decision: o.max_events_per_decision.unwrap_or(self.max_events_per_decision),
            max_event_kib: o.max_event_kib.unwrap_or(self.max_event_kib),
            max_log_line_bytes: o.max_log_line_bytes.unwrap_or(self.max_log_line_bytes),
            max_log_kib_per_call: o.max_log_kib_per_call.unwrap_or(self.max_log_kib_per_call),
            max_host_call_mib: o.max_host_call_mib.unwrap_or(self.max_host_call_mib),
            ..self.clone()
        }
    }

    /// Fails when a value would disable the sandbox.
    pub fn validate(&self, section: &str) -> Result<()> {
        let zero = [
            ("deadline_ms", self.deadline_ms == 0),
            ("memory_mib", self.memory_mib == 0),
            ("max_concurrency", self.max_concurrency == 0),
            ("max_events_per_decision", self.max_events_per_decision == 0),
            ("max_event_kib", self.max_event_kib == 0),
            ("max_instances", self.max_instances == 0),
            ("max_host_call_mib", self.max_host_call_mib == 0),
            ("max_stream_name_bytes", self.max_stream_name_bytes == 0),
            ("max_version_bytes", self.max_version_bytes < 5),
            ("max_projection_batch_mib", self.max_projection_batch_mib == 0),
            ("max_read_mib", self.max_read_mib == 0),
        ];
        if let Some((key, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            bail!("{section}.{key} must be positive");
        }
        if self.max_event_depth == 0 || self.max_event_depth > crate::store::event_rules::DEPTH_CEILING {
            bail!("{section}.max_event_depth must be 1 to {}", crate::store::event_rules::DEPTH_CEILING);
        }
        if self.memory_mib > 4096 {
            bail!("{section}.memory_mib must be at most 4096 (wasm32 address space)");
        }
        Ok(())
    }

    fn runtime(&self) -> Limits {
        Limits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mib << 20,
            max_concurrency: self.max_concurrency,
            max_events_per_decision: self.max_events_per_decision,
            max_event_bytes: self.max_event_kib << 10,
            max_log_line_bytes: self.max_log_line_bytes,
            max_log_bytes_per_call: self.max_log_kib_per_call << 10,
            max_host_call_bytes: self.max_host_call_mib << 20,
            max_stream_name_bytes: self.max_stream_name_bytes,
            max_version_bytes: self.max_version_bytes,
        }
    }

    /// The runtime's view: defaults plus each domain's complete limits.
    pub fn policy(&self, domains: &BTreeMap<String, DomainConfig>) -> LimitsPolicy {
        LimitsPolicy {
            defaults: self.runtime(),
            per_domain: domains.iter().map(|(name, d)| (name.clone(), self.with(&d.limits).runtime())).collect(),
        }
    }

    /// The engine-wide limits.
    pub fn engine(&self) -> EngineLimits {
        EngineLimits { stack_bytes: self.stack_kib << 10, max_instances: self.max_instances, enforce: true }
    }
}
