//! `Host` impl of `cairn:domain/log`.

use super::{escape_controls, truncate};
use crate::bindings::log::{Host, Level};
use crate::runtime::HostState;

impl Host for HostState {
    fn write(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        if self.log.budget_bytes == 0 {
            return;
        }
        let mut budget = self.log.max_line_bytes.min(self.log.budget_bytes);
        let mut message = message;
        let mut truncated = truncate(&mut message, budget);
        message = escape_controls(message);
        truncated |= truncate(&mut message, budget);
        budget -= message.len();
        let mut rendered = String::new();
        for (key, value) in fields {
            if budget == 0 {
                truncated = true;
                break;
            }
            let mut pair = format!("{}={} ", escape_controls(key), escape_controls(value));
            truncated |= truncate(&mut pair, budget);
            budget -= pair.len();
            rendered.push_str(&pair);
        }
        // A line costs its text plus what the host adds to it (domain, version, function, span
        // fields, timestamp): many empty lines cannot flood the log either.
        let spent = message.len() + rendered.len() + super::LINE_OVERHEAD_BYTES;
        self.log.budget_bytes = self.log.budget_bytes.saturating_sub(spent);
        let ctx = &self.log;
        macro_rules! emit {
            ($lvl:ident) => {
                tracing::$lvl!(
                    target: "plugin",
                    domain = %ctx.domain,
                    plugin_version = %ctx.version,
                    function = ctx.function,
                    fields = rendered.trim_end(),
                    truncated,
                    "{message}"
                )
            };
        }
        match level {
            Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }
        if self.log.budget_bytes == 0 {
            tracing::warn!(
                target: "plugin",
                domain = %ctx.domain,
                plugin_version = %ctx.version,
                function = ctx.function,
                limit = crate::runtime::limit_names::LOG_BYTES,
                "the call spent its log budget; its further lines are dropped"
            );
        }
    }
}
