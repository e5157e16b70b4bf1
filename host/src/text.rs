//! Small text helpers for messages: an error never echoes an oversized or multi-line input whole.

/// Most characters of an input an error message quotes.
pub const QUOTE_CHARS: usize = 64;

/// `input` as an error may quote it: at most [`QUOTE_CHARS`] characters, control characters
/// escaped (a quoted newline cannot forge a log line), and the full length named when cut.
pub fn quote(input: &str) -> String {
    let mut quoted: String = input.chars().take(QUOTE_CHARS).flat_map(char::escape_debug).collect();
    let total = input.chars().count();
    if total > QUOTE_CHARS {
        quoted.push_str(&format!("… ({} bytes)", input.len()));
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_inputs_are_cut_and_control_characters_escaped() {
        assert_eq!(quote("orders"), "orders");
        assert_eq!(quote("a\nb\u{0}"), "a\\nb\\0");
        let long = "x".repeat(10 << 20);
        let quoted = quote(&long);
        assert!(quoted.len() < 100, "{quoted}");
        assert!(quoted.ends_with("(10485760 bytes)"));
    }
}
