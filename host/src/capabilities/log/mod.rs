//! `cairn:domain/log`: plugins' structured log lines, forwarded into the host's `tracing`
//! output with the domain, the plugin version and the export being called as fields. A line
//! longer than the domain's `limits.max_log_line_bytes` is truncated (and says so), one call writes
//! at most `limits.max_log_kib_per_call` in all (later lines are dropped, with one warning), and
//! control characters are escaped, so a plugin can neither flood the log nor forge host lines.

mod host;

/// What one forwarded line costs of the call's log budget beyond its own text: the fields the
/// host attaches to it.
pub(crate) const LINE_OVERHEAD_BYTES: usize = 128;

/// Who is logging: attached to every forwarded line.
#[derive(Debug, Clone)]
pub struct LogContext {
    /// The plugin's domain.
    pub domain: String,
    /// The plugin's semantic version.
    pub version: String,
    /// The export being called (`decide`, `describe`, ...).
    pub function: &'static str,
    /// Longest message (plus fields) kept from one line.
    pub max_line_bytes: usize,
    /// Log bytes this call may still write (`limits.max_log_kib_per_call`); once spent, lines
    /// are dropped and one warning says so.
    pub budget_bytes: usize,
}

/// `text` with control characters escaped (`\n` as the two characters `\` `n`), so a plugin's
/// line stays one line in a plain-text log.
pub(crate) fn escape_controls(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() { Box::new(c.escape_default()) } else { Box::new(std::iter::once(c)) }
        })
        .collect()
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
    fn control_characters_are_escaped() {
        assert_eq!(super::escape_controls("a\nb\u{1b}[31m".into()), "a\\nb\\u{1b}[31m");
        assert_eq!(super::escape_controls("plain é".into()), "plain é");
    }

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
