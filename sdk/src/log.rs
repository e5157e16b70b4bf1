//! Structured logging for plugins. In a component the lines go to the host, which forwards them
//! into its `tracing` output with the domain, plugin version and export as fields; natively (in
//! `cargo test`) they go to stderr.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected, handled.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one log line with key/value fields.
pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
    #[cfg(target_arch = "wasm32")]
    crate::wasm::log(level, message, fields);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message} {fields:?}");
}

/// Logs at info level.
pub fn info(message: &str) {
    write(Level::Info, message, &[]);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    write(Level::Warn, message, &[]);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    write(Level::Debug, message, &[]);
}
