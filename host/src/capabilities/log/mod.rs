//! `cairn:domain/log`: plugins' structured log lines, forwarded into the host's `tracing`
//! output with the domain, the plugin version and the export being called as fields. A line
//! longer than [`MAX_LINE_BYTES`] is truncated (and says so); a plugin cannot flood the log
//! with one call (the cap is the domain's `limits.max_log_line_bytes`).

mod host;

/// Who is logging: attached to every forwarded line.
#[derive(Debug, Clone)]
pub struct LogContext {
    /// The plugin's domain.
    pub domain: String,
    /// The plugin's semantic version.
    pub version: String,
    /// The export being called (`decide`, `describe`, ...).
    pub function: &'static str,
    /// Longest message (plus fields) kept from one call.
    pub max_line_bytes: usize,
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    true
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn lines_are_cut_on_a_character_boundary() {
        let mut text = "ééé".to_string(); // 6 bytes
        assert!(truncate(&mut text, 3));
        assert_eq!(text, "é");
        let mut short = "ok".to_string();
        assert!(!truncate(&mut short, 3));
        assert_eq!(short, "ok");
    }
}
