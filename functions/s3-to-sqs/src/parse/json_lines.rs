//! JSON Lines: one JSON object per line.
//!
//! Each non-blank line must be a JSON object. Its text is kept as written,
//! so numbers keep their exact digits. Blank lines are skipped.

use serde_json::value::RawValue;

use super::{ItemSink, ParseOptions, Position};
use crate::json_text;

/// Push parser for JSON Lines.
#[derive(Debug)]
pub(crate) struct JsonLinesParser {
    max_record_bytes: usize,
    max_raw_bytes: usize,
    /// Line of the line being read.
    line: u64,
    /// Start of a line that continues into the next chunk, cut to `max_record_bytes`.
    partial: Vec<u8>,
    /// Length of that line in bytes, including what was not kept.
    partial_bytes: usize,
    json: String,
}

impl JsonLinesParser {
    /// Creates a parser with the limits of `options`.
    pub fn new(options: &ParseOptions) -> Self {
        Self {
            max_record_bytes: options.max_record_bytes,
            max_raw_bytes: options.max_reject_raw_bytes,
            line: 1,
            partial: Vec::new(),
            partial_bytes: 0,
            json: String::new(),
        }
    }

    /// Parses the next chunk.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl ItemSink) {
        let mut rest = chunk;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            if self.partial_bytes == 0 {
                self.parse_line(&rest[..end], end, sink);
            } else {
                self.keep(&rest[..end]);
                let partial = std::mem::take(&mut self.partial);
                self.parse_line(&partial, self.partial_bytes, sink);
                self.partial = partial;
                self.partial.clear();
                self.partial_bytes = 0;
            }
            self.line += 1;
            rest = &rest[end + 1..];
        }
        self.keep(rest);
    }

    /// Parses a last line that has no line end.
    pub fn finish(&mut self, sink: &mut impl ItemSink) {
        if self.partial_bytes > 0 {
            let partial = std::mem::take(&mut self.partial);
            self.parse_line(&partial, self.partial_bytes, sink);
            self.partial_bytes = 0;
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.partial_bytes += bytes.len();
        let room = self.max_record_bytes.saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Parses one line; `line_bytes` is its full length, `bytes` may be cut.
    fn parse_line(&mut self, bytes: &[u8], line_bytes: usize, sink: &mut impl ItemSink) {
        let position = Position { line: self.line, index: None };
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let raw = &bytes[..bytes.len().min(self.max_raw_bytes)];
        if line_bytes > self.max_record_bytes {
            let reason = format!(
                "line of {line_bytes} bytes is larger than the maximum record size of {} bytes (MAX_RECORD_BYTES)",
                self.max_record_bytes
            );
            sink.reject(position, &reason, raw);
            return;
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }

        match validate_object(bytes) {
            Ok(json) => {
                self.json.clear();
                json_text::push_json(&mut self.json, json);
                sink.record(position, &self.json);
            }
            Err(reason) => sink.reject(position, &reason, raw),
        }
    }
}

/// Checks that `bytes` hold one JSON object, surrounding whitespace allowed,
/// and returns its text.
pub(super) fn validate_object(bytes: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(bytes).map_err(|error| format!("not valid UTF-8: {error}"))?;
    let text = text.trim_matches([' ', '\t', '\n', '\r']);
    let value: &RawValue = serde_json::from_str(text).map_err(|error| format!("invalid JSON: {error}"))?;
    let json = value.get();
    let kind = match json.as_bytes().first() {
        Some(b'{') => return Ok(json),
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    };
    Err(format!("expected a JSON object, found {kind}"))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Collected, parse_all_splits};
    use super::*;
    use crate::format::Format;

    fn parse(options: &ParseOptions, data: &[u8]) -> Collected {
        parse_all_splits(Format::JsonLines, options, data).unwrap()
    }

    #[test]
    fn records_and_rejects() {
        type Case<'a> = (&'a [u8], &'a [(u64, &'a str)], &'a [(u64, &'a str)]);
        let cases: [Case; 9] = [
            (b"{\"a\":1}\n{\"a\":2}\n", &[(1, r#"{"a":1}"#), (2, r#"{"a":2}"#)], &[]),
            (b"{\"a\":1}\r\n\r\n  \n{\"a\":2}", &[(1, r#"{"a":1}"#), (4, r#"{"a":2}"#)], &[]),
            (b"  {\"a\": 12345678901234567.89 }  \n", &[(1, r#"{"a": 12345678901234567.89 }"#)], &[]),
            (
                b"{\"a\":1\n{\"a\":2}\n",
                &[(2, r#"{"a":2}"#)],
                &[(1, "invalid JSON: EOF while parsing an object at line 1 column 6")],
            ),
            (b"[1,2]\n", &[], &[(1, "expected a JSON object, found an array")]),
            (
                b"42\n\"s\"\nnull\ntrue\n",
                &[],
                &[
                    (1, "expected a JSON object, found a number"),
                    (2, "expected a JSON object, found a string"),
                    (3, "expected a JSON object, found null"),
                    (4, "expected a JSON object, found a boolean"),
                ],
            ),
            (b"{\"a\":1} {\"b\":2}\n", &[], &[(1, "invalid JSON: trailing characters at line 1 column 9")]),
            (b"{\"a\":\"\xff\"}\n", &[], &[(1, "not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 6")]),
            (b"", &[], &[]),
        ];
        for (data, records, rejects) in cases {
            let collected = parse(&ParseOptions::default(), data);
            let got: Vec<_> = collected.records.iter().map(|(line, _, json)| (*line, json.as_str())).collect();
            assert_eq!(got, records, "{:?}", String::from_utf8_lossy(data));
            let got: Vec<_> = collected.rejects.iter().map(|(line, _, reason, _)| (*line, reason.as_str())).collect();
            assert_eq!(got, rejects, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn nul_and_noncharacters() {
        // A raw NUL is invalid JSON, an escaped one is kept, and U+FFFF is escaped for SQS.
        let data = "{\"a\":\"x\u{0}\"}\n{\"a\":\"\\u0000\"}\n{\"a\":\"\u{ffff}\"}\n";
        let collected = parse(&ParseOptions::default(), data.as_bytes());
        let records: Vec<_> = collected.records.iter().map(|(line, _, json)| (*line, json.as_str())).collect();
        assert_eq!(records, [(2, r#"{"a":"\u0000"}"#), (3, r#"{"a":"\uffff"}"#)]);
        assert_eq!(collected.rejects.len(), 1);
        assert_eq!(collected.rejects[0].0, 1);
        assert!(collected.rejects[0].2.starts_with("invalid JSON: control character"), "{}", collected.rejects[0].2);
    }

    #[test]
    fn long_line_is_rejected_without_keeping_it() {
        let options = ParseOptions { max_record_bytes: 100, max_reject_raw_bytes: 10, ..ParseOptions::default() };
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(1000));
        let data = format!("{{\"a\":1}}\n{long}\n{{\"a\":3}}\n");
        let collected = parse(&options, data.as_bytes());
        let records: Vec<_> = collected.records.iter().map(|(line, _, json)| (*line, json.as_str())).collect();
        assert_eq!(records, [(1, r#"{"a":1}"#), (3, r#"{"a":3}"#)]);
        let rejects: Vec<_> =
            collected.rejects.iter().map(|(line, _, reason, raw)| (*line, reason.as_str(), raw.as_str())).collect();
        assert_eq!(
            rejects,
            [(
                2,
                "line of 1008 bytes is larger than the maximum record size of 100 bytes (MAX_RECORD_BYTES)",
                "{\"a\":\"xxxx"
            )]
        );
    }
}
