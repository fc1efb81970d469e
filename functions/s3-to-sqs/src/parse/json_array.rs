//! A JSON array of objects, cut into elements as it streams.
//!
//! A small scanner tracks nesting depth and string literals to find where
//! each top-level element ends. Each element is then checked with
//! serde_json and kept as its raw text. Memory stays bounded by the
//! largest element (at most `max_record_bytes`), not by the file.

use super::json_lines::validate_object;
use super::{ItemSink, ParseError, ParseOptions, Position};
use crate::json_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// After `[` or `,`, before the next element.
    BeforeElement,
    /// Inside an element.
    InElement,
    /// After the closing `]`.
    End,
}

/// Push parser for a JSON array.
#[derive(Debug)]
pub(crate) struct JsonArrayParser {
    max_record_bytes: usize,
    max_raw_bytes: usize,
    state: State,
    /// Line of the next input byte.
    line: u64,
    /// Index of the next element.
    index: u64,
    /// Nesting depth inside the current element.
    depth: u32,
    in_string: bool,
    escaped: bool,
    element_line: u64,
    /// The current element's text, cut to `max_record_bytes`.
    element: Vec<u8>,
    /// Length of the current element in bytes, including what was not kept.
    element_bytes: usize,
    json: String,
}

impl JsonArrayParser {
    /// Creates a parser with the limits of `options`.
    pub fn new(options: &ParseOptions) -> Self {
        Self {
            max_record_bytes: options.max_record_bytes,
            max_raw_bytes: options.max_reject_raw_bytes,
            state: State::Start,
            line: 1,
            index: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            element_line: 1,
            element: Vec::new(),
            element_bytes: 0,
            json: String::new(),
        }
    }

    /// Parses the next chunk.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl ItemSink) -> Result<(), ParseError> {
        // Start of the current element's bytes within this chunk.
        let mut element_start = (self.state == State::InElement).then_some(0);
        let mut i = 0;
        while i < chunk.len() {
            let byte = chunk[i];
            match self.state {
                State::InElement if self.escaped => self.escaped = false,
                State::InElement if self.in_string => {
                    // Jump to the next byte that can end the string.
                    match memchr::memchr3(b'"', b'\\', b'\n', &chunk[i..]) {
                        None => i = chunk.len(),
                        Some(offset) => {
                            i += offset;
                            match chunk[i] {
                                b'\\' => self.escaped = true,
                                b'"' => self.in_string = false,
                                _ => self.line += 1,
                            }
                            i += 1;
                        }
                    }
                    continue;
                }
                State::InElement => match byte {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' if self.depth > 0 => self.depth -= 1,
                    b']' | b',' if self.depth == 0 => {
                        let start = element_start.take().unwrap_or(0);
                        self.keep(&chunk[start..i]);
                        self.complete_element(sink);
                        self.state = if byte == b']' { State::End } else { State::BeforeElement };
                    }
                    b']' => self.depth -= 1,
                    _ => {}
                },
                State::BeforeElement => match byte {
                    b' ' | b'\t' | b'\n' | b'\r' | b',' => {}
                    b']' => self.state = State::End,
                    _ => {
                        self.state = State::InElement;
                        self.element_line = self.line;
                        element_start = Some(i);
                        // Re-read this byte as the element's first byte.
                        continue;
                    }
                },
                State::Start => match byte {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b'[' => self.state = State::BeforeElement,
                    _ => {
                        return Err(ParseError {
                            line: self.line,
                            reason: format!("a JSON array file must start with '[', found {}", describe(byte)),
                        });
                    }
                },
                State::End => match byte {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    _ => {
                        return Err(ParseError {
                            line: self.line,
                            reason: format!("unexpected {} after the closing ']' of the array", describe(byte)),
                        });
                    }
                },
            }
            if byte == b'\n' {
                self.line += 1;
            }
            i += 1;
        }
        if let Some(start) = element_start {
            self.keep(&chunk[start..]);
        }
        Ok(())
    }

    /// Checks that the array was closed.
    pub fn finish(&mut self, _sink: &mut impl ItemSink) -> Result<(), ParseError> {
        match self.state {
            State::Start | State::End => Ok(()),
            State::BeforeElement => Err(ParseError {
                line: self.line,
                reason: "the file ends before the closing ']' of the array".to_owned(),
            }),
            State::InElement => Err(ParseError {
                line: self.line,
                reason: format!(
                    "the file ends inside element {} that starts at line {}, before the closing ']' of the array",
                    self.index, self.element_line
                ),
            }),
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.element_bytes += bytes.len();
        let room = self.max_record_bytes.saturating_sub(self.element.len());
        self.element.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn complete_element(&mut self, sink: &mut impl ItemSink) {
        let position = Position { line: self.element_line, index: Some(self.index) };
        self.index += 1;
        let element = std::mem::take(&mut self.element);
        let raw = &element[..element.len().min(self.max_raw_bytes)];
        if self.element_bytes > self.max_record_bytes {
            let reason = format!(
                "element of {} bytes is larger than the maximum record size of {} bytes (MAX_RECORD_BYTES)",
                self.element_bytes, self.max_record_bytes
            );
            sink.reject(position, &reason, raw);
        } else {
            match validate_object(&element) {
                Ok(json) => {
                    self.json.clear();
                    json_text::push_json(&mut self.json, json);
                    sink.record(position, &self.json);
                }
                Err(reason) => sink.reject(position, &reason, raw.trim_ascii_end()),
            }
        }
        self.element = element;
        self.element.clear();
        self.element_bytes = 0;
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
    }
}

fn describe(byte: u8) -> String {
    if byte.is_ascii_graphic() { format!("'{}'", char::from(byte)) } else { format!("byte 0x{byte:02X}") }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Collected, parse_all_splits};
    use super::*;
    use crate::format::Format;

    fn parse(data: &[u8]) -> Result<Collected, ParseError> {
        parse_all_splits(Format::JsonArray, &ParseOptions::default(), data)
    }

    #[test]
    fn elements_and_rejects() {
        type Case<'a> = (&'a [u8], &'a [(u64, u64, &'a str)], &'a [(u64, u64, &'a str)]);
        let cases: [Case; 8] = [
            (b"[{\"a\":1},{\"a\":2}]", &[(1, 0, r#"{"a":1}"#), (1, 1, r#"{"a":2}"#)], &[]),
            (
                b"[\n  {\"a\": \"x,]}\\\"\"},\n  {\"b\": [1, {\"c\": 2}]}\n]\n",
                &[(2, 0, r#"{"a": "x,]}\""}"#), (3, 1, r#"{"b": [1, {"c": 2}]}"#)],
                &[],
            ),
            (b"[{\"n\":12345678901234567.89}]", &[(1, 0, r#"{"n":12345678901234567.89}"#)], &[]),
            (b" [ ] ", &[], &[]),
            (
                b"[1, \"a,b\", {\"a\":1}]",
                &[(1, 2, r#"{"a":1}"#)],
                &[(1, 0, "expected a JSON object, found a number"), (1, 1, "expected a JSON object, found a string")],
            ),
            (
                b"[{\"a\":}, {\"a\":2}]",
                &[(1, 1, r#"{"a":2}"#)],
                &[(1, 0, "invalid JSON: expected value at line 1 column 6")],
            ),
            (
                b"[{\"a\":1}}, {\"a\":2}]",
                &[(1, 1, r#"{"a":2}"#)],
                &[(1, 0, "invalid JSON: trailing characters at line 1 column 8")],
            ),
            (b"", &[], &[]),
        ];
        for (data, records, rejects) in cases {
            let collected = parse(data).unwrap();
            let got: Vec<_> =
                collected.records.iter().map(|(line, index, json)| (*line, index.unwrap(), json.as_str())).collect();
            assert_eq!(got, records, "{:?}", String::from_utf8_lossy(data));
            let got: Vec<_> = collected
                .rejects
                .iter()
                .map(|(line, index, reason, _)| (*line, index.unwrap(), reason.as_str()))
                .collect();
            assert_eq!(got, rejects, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn broken_files_fail() {
        let cases: [(&[u8], &str); 5] = [
            (b"{\"a\":1}", "line 1: a JSON array file must start with '[', found '{'"),
            (b"\n\n x", "line 3: a JSON array file must start with '[', found 'x'"),
            (b"[{\"a\":1}] {", "line 1: unexpected '{' after the closing ']' of the array"),
            (b"[{\"a\":1},\n", "line 2: the file ends before the closing ']' of the array"),
            (
                b"[{\"a\":1},\n{\"a\":\"open]}\n",
                "line 3: the file ends inside element 1 that starts at line 2, before the closing ']' of the array",
            ),
        ];
        for (data, expected) in cases {
            let error = parse(data).unwrap_err();
            assert_eq!(error.to_string(), expected, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn large_element_is_rejected_in_bounded_memory() {
        let options = ParseOptions { max_record_bytes: 64, max_reject_raw_bytes: 8, ..ParseOptions::default() };
        let data = format!("[{{\"a\":\"{}\"}},{{\"b\":1}}]", "z".repeat(500));
        let collected = parse_all_splits(Format::JsonArray, &options, data.as_bytes()).unwrap();
        assert_eq!(collected.records, [(1, Some(1), r#"{"b":1}"#.to_owned())]);
        assert_eq!(collected.rejects.len(), 1);
        assert_eq!(collected.rejects[0].3, "{\"a\":\"zz");
        assert!(collected.rejects[0].2.contains("508 bytes"), "{}", collected.rejects[0].2);
    }
}
