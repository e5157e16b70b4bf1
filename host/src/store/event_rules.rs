//! What an event may contain so that every backend and every read model can hold it: JSON
//! without a NUL character in any string or object key (PostgreSQL's `jsonb` and the read-model
//! stores refuse it), nested at most `limits.max_event_depth` deep (SQLite's `json_valid`
//! stops at 1,000 levels, PostgreSQL at its stack depth). The engine checks every planned event
//! with the configured depth before anything is stored; the stores check every unit of work
//! again with [`DEPTH_CEILING`], so nothing unstorable ever reaches a writer's transaction.
//!
//! The check is one pass over the JSON text, iterative (no recursion, whatever the nesting),
//! and names the offending place as a JSON pointer.

/// The deepest nesting `limits.max_event_depth` may allow, well below every store's limit.
pub const DEPTH_CEILING: usize = 128;

/// Longest pointer quoted in an error (the rest is elided: never echo oversized input).
const MAX_POINTER_CHARS: usize = 200;

/// Why a JSON text cannot be stored, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at `{pointer}`")]
pub struct Unstorable {
    /// JSON pointer (RFC 6901) to the offending value or key; `""` is the whole document.
    pub pointer: String,
    /// What is wrong there.
    pub reason: Reason,
}

/// What makes a JSON text unstorable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Not JSON at all.
    #[error("not valid JSON")]
    NotJson,
    /// A string holds a NUL character (`\u0000`).
    #[error("a string contains a NUL character (\\u0000)")]
    NulInString,
    /// An object key holds a NUL character.
    #[error("an object key contains a NUL character (\\u0000)")]
    NulInKey,
    /// A string or key holds half of a UTF-16 surrogate pair (`\ud800` alone): valid JSON
    /// text, but not a Unicode string (PostgreSQL's `jsonb` refuses it).
    #[error("a string contains an unpaired surrogate escape (\\ud800-\\udfff)")]
    LoneSurrogate,
    /// Arrays and objects nest deeper than allowed.
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
}

/// Which event of a unit of work cannot be stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {index} (`{event_type}`) of stream `{stream}` cannot be stored: in its {part}, {error}")]
pub struct UnstorableEvent {
    /// The stream it was appended to.
    pub stream: String,
    /// 1-based place among the events appended to that stream.
    pub index: usize,
    /// Its type.
    pub event_type: String,
    /// `data`, `metadata` or `type`.
    pub part: &'static str,
    /// Where and what.
    pub error: Unstorable,
}

/// Checks every event of a unit of work (data, metadata, type) with [`DEPTH_CEILING`].
pub(crate) fn check_unit(streams: &[super::StreamAppend]) -> Result<(), UnstorableEvent> {
    for append in streams {
        for (i, event) in append.events.iter().enumerate() {
            let refuse = |part, event_type: String, error| UnstorableEvent {
                stream: append.stream.clone(),
                index: i + 1,
                event_type,
                part,
                error,
            };
            if event.event_type.contains('\0') {
                let error = Unstorable { pointer: String::new(), reason: Reason::NulInString };
                return Err(refuse("type", event.event_type.replace('\0', "\\u0000"), error));
            }
            check(&event.data, DEPTH_CEILING).map_err(|e| refuse("data", event.event_type.clone(), e))?;
            check(&event.metadata, DEPTH_CEILING).map_err(|e| refuse("metadata", event.event_type.clone(), e))?;
        }
    }
    Ok(())
}

/// The value of four hex digits (already known valid: the text parsed as JSON).
fn hex4(digits: &[u8]) -> u32 {
    std::str::from_utf8(digits).ok().and_then(|h| u32::from_str_radix(h, 16).ok()).unwrap_or(0)
}

/// One open array or object on the way down to the current place.
struct Frame {
    array: bool,
    /// Arrays: index of the current element. Objects: the current key (raw JSON string).
    index: usize,
    key: Option<(usize, usize)>,
    /// Objects: the next string is a key.
    expect_key: bool,
}

/// Checks one JSON text against the rule, allowing `max_depth` levels of nesting.
pub fn check(text: &str, max_depth: usize) -> Result<(), Unstorable> {
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Err(Unstorable { pointer: String::new(), reason: Reason::NotJson });
    }
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                let (mut nul, mut lone) = (false, false);
                i += 1;
                while bytes[i] != b'"' {
                    if bytes[i] == b'\\' && bytes[i + 1] == b'u' {
                        // `\uXXXX`: a NUL, or half of a surrogate pair without its other half
                        // (valid JSON text, but no store can hold it as a string).
                        let unit = hex4(&bytes[i + 2..i + 6]);
                        nul |= unit == 0;
                        if (0xD800..0xDC00).contains(&unit) {
                            let low = bytes.get(i + 6..i + 8) == Some(b"\\u".as_slice())
                                && (0xDC00..0xE000).contains(&hex4(&bytes[i + 8..i + 12]));
                            lone |= !low;
                            i += if low { 12 } else { 6 };
                        } else {
                            lone |= (0xDC00..0xE000).contains(&unit);
                            i += 6;
                        }
                    } else if bytes[i] == b'\\' {
                        i += 2;
                    } else {
                        nul |= bytes[i] == 0;
                        i += 1;
                    }
                }
                let is_key = stack.last().is_some_and(|f| !f.array && f.expect_key);
                if let Some(frame) = stack.last_mut().filter(|_| is_key) {
                    frame.key = Some((start, i + 1));
                    frame.expect_key = false;
                }
                if nul {
                    let reason = if is_key { Reason::NulInKey } else { Reason::NulInString };
                    return Err(Unstorable { pointer: pointer(text, &stack), reason });
                }
                if lone {
                    return Err(Unstorable { pointer: pointer(text, &stack), reason: Reason::LoneSurrogate });
                }
            }
            open @ (b'[' | b'{') => {
                if stack.len() >= max_depth {
                    return Err(Unstorable { pointer: pointer(text, &stack), reason: Reason::TooDeep(max_depth) });
                }
                stack.push(Frame { array: open == b'[', index: 0, key: None, expect_key: open == b'{' });
            }
            b']' | b'}' => {
                stack.pop();
            }
            b',' => {
                if let Some(frame) = stack.last_mut() {
                    frame.index += 1;
                    frame.expect_key = !frame.array;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The pointer to the current place: every frame's element or key.
fn pointer(text: &str, stack: &[Frame]) -> String {
    let mut out = String::new();
    for frame in stack {
        out.push('/');
        if frame.array {
            out.push_str(&frame.index.to_string());
        } else if let Some((start, end)) = frame.key {
            let key: String = serde_json::from_str(&text[start..end]).unwrap_or_default();
            let key = key.replace('~', "~0").replace('/', "~1").replace('\0', "\\u0000");
            out.push_str(&key);
        }
        if out.chars().count() > MAX_POINTER_CHARS {
            let cut: String = out.chars().take(MAX_POINTER_CHARS).collect();
            return format!("{cut}…");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn plain_json_passes() {
        check(r#"{"a":[1,"x",{"b":null}],"c":"\u0001 \\u0000 text"}"#, 64).unwrap();
        check(&nested(64), 64).unwrap();
        check("\"just a string\"", 1).unwrap();
    }

    #[test]
    fn nul_in_a_value_is_named_by_pointer() {
        let err = check(r#"{"order":{"lines":[{"sku":"a"},{"sku":"b\u0000"}]}}"#, 64).unwrap_err();
        assert_eq!(err, Unstorable { pointer: "/order/lines/1/sku".into(), reason: Reason::NulInString });
        let err = check(r#"{"user_id":"\u0000"}"#, 64).unwrap_err();
        assert_eq!(err.pointer, "/user_id");
    }

    #[test]
    fn unpaired_surrogates_are_refused_and_pairs_kept() {
        assert_eq!(check(r#"{"a":"\ud83d\ude00 ok"}"#, 8), Ok(()), "a surrogate pair is one character");
        assert_eq!(check(r#"{"a":"\\ud800"}"#, 8), Ok(()), "an escaped backslash, then text");
        for bad in [r#"{"a":"\ud800"}"#, r#"{"a":"x\ud800y"}"#, r#"{"a":"\udc00"}"#, r#"{"a":"\ud800\u0041"}"#] {
            let err = check(bad, 8).unwrap_err();
            assert_eq!(err, Unstorable { pointer: "/a".into(), reason: Reason::LoneSurrogate }, "{bad}");
        }
        let err = check(r#"{"\udfff":1}"#, 8).unwrap_err();
        assert_eq!(err.reason, Reason::LoneSurrogate);
    }

    #[test]
    fn nul_in_a_key_is_named() {
        let err = check(r#"{"a/b":{"k\u0000":1}}"#, 64).unwrap_err();
        assert_eq!(err, Unstorable { pointer: "/a~1b/k\\u0000".into(), reason: Reason::NulInKey });
    }

    #[test]
    fn too_deep_is_refused_without_recursion() {
        let err = check(&nested(65), 64).unwrap_err();
        assert_eq!(err, Unstorable { pointer: "/0".repeat(64), reason: Reason::TooDeep(64) });
        let err = check(&nested(1_000), 128).unwrap_err();
        assert!(err.pointer.ends_with('…'), "long pointers are elided: {}", err.pointer);
        // A million levels: one pass, no stack overflow.
        assert!(check(&nested(1_000_000), 128).is_err());
        assert_eq!(check("{\"a\":[{\"b\":{}}]}", 3).unwrap_err().pointer, "/a/0/b");
    }

    #[test]
    fn not_json_is_refused() {
        assert_eq!(check("{\"a\":", 64).unwrap_err().reason, Reason::NotJson);
    }
}
