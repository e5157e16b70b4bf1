//! `Host` impl of `cairn:domain/log`.

use super::truncate;
use crate::bindings::log::{Host, Level};
use crate::runtime::HostState;

impl Host for HostState {
    fn write(&mut self, level: Level, mut message: String, fields: Vec<(String, String)>) {
        let mut budget = self.log.max_line_bytes;
        let mut truncated = truncate(&mut message, budget);
        budget -= message.len();
        let mut rendered = String::new();
        for (key, value) in fields {
            if budget == 0 {
                truncated = true;
                break;
            }
            let mut pair = format!("{key}={value} ");
            truncated |= truncate(&mut pair, budget);
            budget -= pair.len();
            rendered.push_str(&pair);
        }
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
    }
}
