//! JSON text that SQS accepts.
//!
//! SQS allows only these characters in a message body: #x9, #xA, #xD,
//! #x20 to #xD7FF, #xE000 to #xFFFD and #x10000 to #x10FFFF. JSON escaping
//! already turns every control character below #x20 into `\uXXXX`, and
//! surrogates cannot occur in UTF-8, so the only characters left to escape
//! are U+FFFE and U+FFFF. Escaping them keeps the record's value intact:
//! a JSON reader turns `\uffff` back into U+FFFF.

/// Bytes that start an escape: control characters, `"`, `\\` and 0xEF, the
/// lead byte of U+FFFE and U+FFFF.
const MAY_NEED_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0xef] = true;
    table
};

/// Appends `text` to `out` as a JSON string literal, quotes included, with
/// every character that SQS rejects written as a `\uXXXX` escape.
pub(crate) fn push_string(out: &mut String, text: &str) {
    out.push('"');
    push_string_content(out, text);
    out.push('"');
}

/// Appends `text` to `out` escaped as the inside of a JSON string literal.
pub(crate) fn push_string_content(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if !MAY_NEED_ESCAPE[usize::from(byte)] {
            i += 1;
            continue;
        }
        // Every escape point is an ASCII byte or the lead byte 0xEF of a
        // three-byte sequence, so `copied..i` always lies on char boundaries.
        let escape: Option<&str> = match byte {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x00..=0x1f => Some(""),
            0xef if bytes.get(i + 1) == Some(&0xbf) && matches!(bytes.get(i + 2), Some(0xbe | 0xbf)) => {
                Some(if bytes[i + 2] == 0xbe { "\\ufffe" } else { "\\uffff" })
            }
            _ => None,
        };
        let Some(escape) = escape else {
            i += 1;
            continue;
        };
        out.push_str(&text[copied..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        } else {
            out.push_str(escape);
        }
        i += if byte == 0xef { 3 } else { 1 };
        copied = i;
    }
    out.push_str(&text[copied..]);
}

/// Appends valid JSON text to `out`, rewriting U+FFFE and U+FFFF as escapes.
///
/// In valid JSON these characters can only occur inside string literals,
/// where `\ufffe` and `\uffff` mean the same characters.
pub(crate) fn push_json(out: &mut String, json: &str) {
    if !json.contains(['\u{fffe}', '\u{ffff}']) {
        out.push_str(json);
        return;
    }
    for ch in json.chars() {
        match ch {
            '\u{fffe}' => out.push_str("\\ufffe"),
            '\u{ffff}' => out.push_str("\\uffff"),
            other => out.push(other),
        }
    }
}

/// Returns true when SQS accepts every character of `text`.
#[cfg(test)]
pub(crate) fn is_sqs_safe(text: &str) -> bool {
    text.chars().all(|ch| {
        matches!(ch, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    })
}

/// Returns the start of `raw` as text of at most `max_bytes` bytes, cut on a
/// character boundary, with invalid UTF-8 replaced by U+FFFD.
pub(crate) fn excerpt(raw: &[u8], max_bytes: usize) -> String {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(max_bytes)]);
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_string_cases() {
        let cases = [
            ("plain", r#""plain""#),
            ("a \"q\" b\\c", r#""a \"q\" b\\c""#),
            ("line one\nline two\r\t", r#""line one\nline two\r\t""#),
            ("nul\u{0}bell\u{7}", r#""nul\u0000bell\u0007""#),
            ("max\u{ffff}and\u{fffe}", r#""max\uffffand\ufffe""#),
            ("été 日本 \u{fffd} \u{1f600}", "\"été 日本 \u{fffd} \u{1f600}\""),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            push_string(&mut out, input);
            assert_eq!(out, expected, "{input:?}");
            assert!(is_sqs_safe(&out), "{out:?}");
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, input);
        }
    }

    #[test]
    fn push_json_escapes_only_noncharacters() {
        let mut out = String::new();
        push_json(&mut out, "{\"a\":\"x\u{ffff}y\",\"b\":12345678901234567.89}");
        assert_eq!(out, r#"{"a":"x\uffffy","b":12345678901234567.89}"#);
        assert!(is_sqs_safe(&out));
    }

    #[test]
    fn sqs_safe_cases() {
        assert!(is_sqs_safe("tab\tnew\nline\r ok \u{e000} \u{10ffff}"));
        for bad in ["\u{0}", "\u{1f}", "\u{fffe}", "\u{ffff}", "\u{b}"] {
            assert!(!is_sqs_safe(bad), "{bad:?}");
        }
    }

    #[test]
    fn excerpt_cuts_on_char_boundary() {
        assert_eq!(excerpt("abcdef".as_bytes(), 4), "abcd");
        assert_eq!(excerpt("ééé".as_bytes(), 3), "é");
        assert_eq!(excerpt(b"a\xffb", 10), "a\u{fffd}b");
    }
}
