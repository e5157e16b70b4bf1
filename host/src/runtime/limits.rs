//! Sandbox limits. [`Limits`] apply per domain (defaults, overridable per domain in config);
//! [`EngineLimits`] are fixed for the whole engine (wasmtime sets them once).
//!
//! A value a guest returns is lifted by wasmtime before the host sees it, so its size is bounded
//! by the guest's own memory cap: the host never allocates more for one call than the guest
//! could hold. The count and byte caps here are then checked right after lifting, before any
//! parsing, storing or rendering.

use std::collections::HashMap;
use std::time::Duration;

/// Limits of one domain's plugin calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one call (instantiation included), enforced by epoch interruption.
    pub deadline: Duration,
    /// Cap on one instance's linear memory, in bytes.
    pub memory_bytes: usize,
    /// Calls of this domain running at once; more wait (bounded) and then get 503.
    pub max_concurrency: usize,
    /// Most events one decision may return.
    pub max_events_per_decision: usize,
    /// Largest event payload, in bytes.
    pub max_event_bytes: usize,
    /// Longest log line kept; the rest is cut off.
    pub max_log_line_bytes: usize,
    /// Log bytes one call may write in all; later lines are dropped (and counted).
    pub max_log_bytes_per_call: usize,
    /// Most bytes a plugin may hand the host in one host call (wasmtime's hostcall fuel).
    pub max_host_call_bytes: usize,
    /// Longest stream name a plugin may write to or read.
    pub max_stream_name_bytes: usize,
    /// Longest plugin version (a semantic version) the host accepts.
    pub max_version_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            max_concurrency: 8,
            max_events_per_decision: 1_000,
            max_event_bytes: 1 << 20,
            max_log_line_bytes: 16 << 10,
            max_log_bytes_per_call: 64 << 10,
            max_host_call_bytes: 128 << 20,
            max_stream_name_bytes: 200,
            max_version_bytes: 64,
        }
    }
}

/// Limits wasmtime fixes for the whole engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineLimits {
    /// Cap on the wasm stack, in bytes (the same for every domain).
    pub stack_bytes: usize,
    /// Instances alive at once across the host (the pooling allocator's slots).
    pub max_instances: u32,
    /// Deadlines (epoch interruption) and memory caps are enforced. Only benchmarks that measure
    /// the cost of the sandbox turn this off; no configuration can.
    pub enforce: bool,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self { stack_bytes: 512 << 10, max_instances: 256, enforce: true }
    }
}

/// The limits of every domain: defaults plus per-domain overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsPolicy {
    /// Limits of domains without an override.
    pub defaults: Limits,
    /// Complete limits of the domains that have an override.
    pub per_domain: HashMap<String, Limits>,
}

impl LimitsPolicy {
    /// The limits `domain` runs under.
    pub fn for_domain(&self, domain: &str) -> &Limits {
        self.per_domain.get(domain).unwrap_or(&self.defaults)
    }

    /// The largest memory cap of any domain: the size of a pooling-allocator memory slot.
    pub fn largest_memory(&self) -> usize {
        self.per_domain.values().map(|l| l.memory_bytes).fold(self.defaults.memory_bytes, usize::max)
    }
}

/// The name (as in the config file) of a limit, for errors that name it.
pub mod names {
    /// `limits.deadline_ms`
    pub const DEADLINE: &str = "limits.deadline_ms";
    /// `limits.memory_mib`
    pub const MEMORY: &str = "limits.memory_mib";
    /// `limits.stack_kib`
    pub const STACK: &str = "limits.stack_kib";
    /// `limits.max_concurrency`
    pub const CONCURRENCY: &str = "limits.max_concurrency";
    /// `limits.max_events_per_decision`
    pub const EVENTS: &str = "limits.max_events_per_decision";
    /// `limits.max_event_kib`
    pub const EVENT_BYTES: &str = "limits.max_event_kib";
    /// `limits.max_log_kib_per_call`
    pub const LOG_BYTES: &str = "limits.max_log_kib_per_call";
    /// `limits.max_host_call_mib`
    pub const HOST_CALL: &str = "limits.max_host_call_mib";
    /// `limits.max_stream_name_bytes`
    pub const STREAM_NAME: &str = "limits.max_stream_name_bytes";
    /// `limits.max_version_bytes`
    pub const VERSION: &str = "limits.max_version_bytes";
}
