//! CSV with a header row (RFC 4180), parsed with csv-core.
//!
//! Quoted fields may hold delimiters, doubled quotes and line breaks. Lines
//! end with LF or CRLF. Empty lines between records are skipped. Every
//! record becomes a JSON object that maps each header to the field's text.

use std::collections::HashSet;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use super::{ItemSink, ParseError, ParseOptions, Position, count_newlines};
use crate::json_text;

/// Upper bound on the number of columns, which bounds the memory for
/// field ends.
const MAX_FIELDS: usize = 16_384;

/// Initial size of the buffer for a record's unquoted field bytes; it grows
/// up to `max_record_bytes`.
const INITIAL_OUTPUT_BYTES: usize = 64 * 1024;

/// Push parser for CSV.
#[derive(Debug)]
pub(crate) struct CsvParser {
    reader: Reader,
    max_record_bytes: usize,
    max_raw_bytes: usize,
    /// Column names, each already written as a JSON key with its colon.
    header_keys: Option<Vec<String>>,
    /// Line of the next input byte.
    line: u64,
    record: PartialRecord,
    json: String,
}

/// The record being read, which may span many chunks.
#[derive(Debug)]
struct PartialRecord {
    active: bool,
    line: u64,
    output: Vec<u8>,
    output_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    /// Fields counted and dropped after the `ends` buffer reached `MAX_FIELDS`.
    dropped_fields: usize,
    /// True once the unquoted bytes outgrew `max_record_bytes`; they are then dropped.
    oversized: bool,
    /// Bytes of input read for this record.
    input_bytes: usize,
    /// The record's raw text, cut to `max_raw_bytes`.
    raw: Vec<u8>,
}

impl CsvParser {
    /// Creates a parser with the delimiter and limits of `options`.
    pub fn new(options: &ParseOptions) -> Self {
        let reader = ReaderBuilder::new().delimiter(options.csv_delimiter).build();
        let record = PartialRecord {
            active: false,
            line: 1,
            output: vec![0; INITIAL_OUTPUT_BYTES.min(options.max_record_bytes.max(1))],
            output_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            dropped_fields: 0,
            oversized: false,
            input_bytes: 0,
            raw: Vec::new(),
        };
        Self {
            reader,
            max_record_bytes: options.max_record_bytes.max(1),
            max_raw_bytes: options.max_reject_raw_bytes,
            header_keys: None,
            line: 1,
            record,
            json: String::new(),
        }
    }

    /// Parses the next chunk.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl ItemSink) -> Result<(), ParseError> {
        let mut input = chunk;
        while !input.is_empty() {
            if !self.record.active {
                // Line ends between records are blank lines, not records.
                let skipped = input.iter().take_while(|&&byte| byte == b'\n' || byte == b'\r').count();
                self.line += count_newlines(&input[..skipped]);
                input = &input[skipped..];
                if input.is_empty() {
                    break;
                }
                self.record.start(self.line);
            }

            let record = &mut self.record;
            let (result, read, written, ended) = self.reader.read_record(
                input,
                &mut record.output[record.output_len..],
                &mut record.ends[record.ends_len..],
            );
            record.consume(&input[..read], written, ended, self.max_raw_bytes);
            self.line += count_newlines(&input[..read]);
            input = &input[read..];
            self.handle(result, sink)?;
        }
        Ok(())
    }

    /// Ends the last record at the end of the file.
    pub fn finish(&mut self, sink: &mut impl ItemSink) -> Result<(), ParseError> {
        while self.record.active {
            let record = &mut self.record;
            let (result, _, written, ended) = self.reader.read_record(
                &[],
                &mut record.output[record.output_len..],
                &mut record.ends[record.ends_len..],
            );
            record.consume(&[], written, ended, self.max_raw_bytes);
            // At the end of input csv-core returns Record, End or a full
            // buffer; InputEmpty would repeat forever, so it ends the loop too.
            if matches!(result, ReadRecordResult::End | ReadRecordResult::InputEmpty) {
                break;
            }
            self.handle(result, sink)?;
        }
        Ok(())
    }

    fn handle(&mut self, result: ReadRecordResult, sink: &mut impl ItemSink) -> Result<(), ParseError> {
        match result {
            ReadRecordResult::InputEmpty | ReadRecordResult::End => Ok(()),
            ReadRecordResult::OutputFull => {
                self.record.grow_output(self.max_record_bytes);
                Ok(())
            }
            ReadRecordResult::OutputEndsFull => {
                self.record.grow_ends();
                Ok(())
            }
            ReadRecordResult::Record => self.complete_record(sink),
        }
    }

    fn complete_record(&mut self, sink: &mut impl ItemSink) -> Result<(), ParseError> {
        self.record.active = false;
        let position = Position { line: self.record.line, index: None };
        let Some(header_keys) = &self.header_keys else {
            self.header_keys = Some(self.read_header()?);
            return Ok(());
        };

        let record = &self.record;
        let raw = trim_line_end(&record.raw);
        if record.oversized {
            let reason = format!(
                "record of more than {} bytes is larger than the maximum record size (MAX_RECORD_BYTES)",
                self.max_record_bytes
            );
            sink.reject(position, &reason, raw);
            return Ok(());
        }
        let field_count = record.ends_len + record.dropped_fields;
        if field_count != header_keys.len() {
            let reason = format!("expected {} fields, found {field_count}", header_keys.len());
            sink.reject(position, &reason, raw);
            return Ok(());
        }

        // One UTF-8 check for the whole record; a field is then valid when
        // both of its ends lie on character boundaries.
        let ends = &record.ends[..record.ends_len];
        let text = std::str::from_utf8(&record.output[..record.output_len]).ok();
        let invalid_field = match text {
            Some(text) => ends.iter().position(|&end| !text.is_char_boundary(end)),
            None => Some(first_invalid_field(&record.output, ends)),
        };
        let (Some(text), None) = (text, invalid_field) else {
            let reason = format!("field {} is not valid UTF-8", invalid_field.unwrap_or(0) + 1);
            sink.reject(position, &reason, raw);
            return Ok(());
        };

        self.json.clear();
        self.json.push('{');
        let mut start = 0;
        for (column, (&end, key)) in ends.iter().zip(header_keys).enumerate() {
            if column > 0 {
                self.json.push(',');
            }
            self.json.push_str(key);
            json_text::push_string(&mut self.json, &text[start..end]);
            start = end;
        }
        self.json.push('}');
        sink.record(position, &self.json);
        Ok(())
    }

    fn read_header(&self) -> Result<Vec<String>, ParseError> {
        let record = &self.record;
        let error = |reason: String| ParseError { line: record.line, reason };
        if record.oversized {
            return Err(error(format!("header row is larger than {} bytes (MAX_RECORD_BYTES)", self.max_record_bytes)));
        }
        if record.dropped_fields > 0 {
            return Err(error(format!("header row has more than {MAX_FIELDS} columns")));
        }

        let mut names = HashSet::new();
        let mut keys = Vec::with_capacity(record.ends_len);
        let mut start = 0;
        for (column, &end) in record.ends[..record.ends_len].iter().enumerate() {
            let name = std::str::from_utf8(&record.output[start..end])
                .map_err(|_| error(format!("header of column {} is not valid UTF-8", column + 1)))?;
            if !names.insert(name) {
                return Err(error(format!("header names column {:?} twice", name)));
            }
            let mut key = String::with_capacity(name.len() + 3);
            json_text::push_string(&mut key, name);
            key.push(':');
            keys.push(key);
            start = end;
        }
        Ok(keys)
    }
}

impl PartialRecord {
    fn start(&mut self, line: u64) {
        self.active = true;
        self.line = line;
        self.output_len = 0;
        self.ends_len = 0;
        self.dropped_fields = 0;
        self.oversized = false;
        self.input_bytes = 0;
        self.raw.clear();
    }

    fn consume(&mut self, input: &[u8], written: usize, ended: usize, max_raw_bytes: usize) {
        self.output_len += written;
        self.ends_len += ended;
        self.input_bytes += input.len();
        let room = max_raw_bytes.saturating_sub(self.raw.len());
        self.raw.extend_from_slice(&input[..input.len().min(room)]);
    }

    fn grow_output(&mut self, max_record_bytes: usize) {
        if self.output.len() < max_record_bytes {
            let size = (self.output.len() * 2).min(max_record_bytes);
            self.output.resize(size, 0);
        } else {
            // The record is rejected, so its bytes need not be kept: reuse
            // the buffer while csv-core reads on to the record's end.
            self.oversized = true;
            self.output_len = 0;
        }
    }

    fn grow_ends(&mut self) {
        if self.ends.len() < MAX_FIELDS {
            let size = (self.ends.len() * 2).min(MAX_FIELDS);
            self.ends.resize(size, 0);
        } else {
            self.dropped_fields += self.ends_len;
            self.ends_len = 0;
        }
    }
}

/// Returns the index of the first field whose bytes are not UTF-8.
fn first_invalid_field(output: &[u8], ends: &[usize]) -> usize {
    let mut start = 0;
    for (column, &end) in ends.iter().enumerate() {
        if std::str::from_utf8(&output[start..end]).is_err() {
            return column;
        }
        start = end;
    }
    0
}

fn trim_line_end(raw: &[u8]) -> &[u8] {
    let end = raw.iter().rposition(|&byte| byte != b'\n' && byte != b'\r').map_or(0, |last| last + 1);
    &raw[..end]
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Collected, parse_all_splits};
    use super::*;
    use crate::format::Format;

    fn parse(data: &[u8]) -> Collected {
        parse_all_splits(Format::Csv, &ParseOptions::default(), data).unwrap()
    }

    fn record(line: u64, json: &str) -> (u64, Option<u64>, String) {
        (line, None, json.to_owned())
    }

    #[test]
    fn quoted_fields_and_short_row() {
        // F2: a quoted line break, quoted delimiters and doubled quotes, and a short row.
        let data = b"id,comment,amount\n1,\"line one\nline two\",5\n2,\"a, b and \"\"c\"\"\",6\n3,short\n";
        let collected = parse(data);
        assert_eq!(
            collected.records,
            [
                record(2, r#"{"id":"1","comment":"line one\nline two","amount":"5"}"#),
                record(4, r#"{"id":"2","comment":"a, b and \"c\"","amount":"6"}"#),
            ]
        );
        assert_eq!(collected.rejects, [(5, None, "expected 3 fields, found 2".to_owned(), "3,short".to_owned())]);
    }

    #[test]
    fn bom_crlf_and_trailing_blank_line() {
        // F3: BOM, CRLF line ends and an empty last line.
        let data = b"\xef\xbb\xbfid,name,amount\r\n1,Alpha,10\r\n2,Beta,20\r\n\r\n";
        let collected = parse(data);
        assert_eq!(
            collected.records,
            [
                record(2, r#"{"id":"1","name":"Alpha","amount":"10"}"#),
                record(3, r#"{"id":"2","name":"Beta","amount":"20"}"#),
            ]
        );
        assert!(collected.rejects.is_empty());
    }

    #[test]
    fn line_numbers_and_shapes() {
        type Case<'a> = (&'a [u8], &'a [(u64, &'a str)], &'a [(u64, &'a str)]);
        let cases: [Case; 9] = [
            (b"a,b\n1,2", &[(2, r#"{"a":"1","b":"2"}"#)], &[]),
            (b"a,b\n\n\n1,2\n\n3,4\n", &[(4, r#"{"a":"1","b":"2"}"#), (6, r#"{"a":"3","b":"4"}"#)], &[]),
            (b"a,b\n1,2,3\n4,5\n", &[(3, r#"{"a":"4","b":"5"}"#)], &[(2, "expected 2 fields, found 3")]),
            (b"a,b\n,\n", &[(2, r#"{"a":"","b":""}"#)], &[]),
            (b"a\n\"x\"\"y\"\n", &[(2, r#"{"a":"x\"y"}"#)], &[]),
            (b"a,b\n1,\xff\n", &[], &[(2, "field 2 is not valid UTF-8")]),
            (b"a,b\n\xc3,\xa9\n", &[], &[(2, "field 1 is not valid UTF-8")]),
            (b"a,b\n", &[], &[]),
            (b"", &[], &[]),
        ];
        for (data, records, rejects) in cases {
            let collected = parse(data);
            let expected: Vec<_> = records.iter().map(|&(line, json)| record(line, json)).collect();
            assert_eq!(collected.records, expected, "{:?}", String::from_utf8_lossy(data));
            let reasons: Vec<_> =
                collected.rejects.iter().map(|(line, _, reason, _)| (*line, reason.as_str())).collect();
            assert_eq!(reasons, rejects, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn control_and_noncharacters_are_escaped() {
        let collected = parse("a,b\nx\u{0}y,z\u{ffff}\n".as_bytes());
        assert_eq!(collected.records, [record(2, r#"{"a":"x\u0000y","b":"z\uffff"}"#)]);
    }

    #[test]
    fn values_keep_number_text() {
        let collected = parse(b"amount\n12345678901234567.89\n");
        assert_eq!(collected.records, [record(2, r#"{"amount":"12345678901234567.89"}"#)]);
    }

    #[test]
    fn tab_delimiter() {
        let options = ParseOptions { csv_delimiter: b'\t', ..ParseOptions::default() };
        let collected = parse_all_splits(Format::Csv, &options, b"a\tb\n1,5\t2\n").unwrap();
        assert_eq!(collected.records, [record(2, r#"{"a":"1,5","b":"2"}"#)]);
    }

    #[test]
    fn oversized_record_is_rejected_and_parsing_continues() {
        let options = ParseOptions { max_record_bytes: 16, max_reject_raw_bytes: 8, ..ParseOptions::default() };
        let data = format!("a,b\n1,{}\n2,\"{}\"\n3,ok\n", "x".repeat(100), "y\n".repeat(50));
        let collected = parse_all_splits(Format::Csv, &options, data.as_bytes()).unwrap();
        assert_eq!(collected.records, [record(54, r#"{"a":"3","b":"ok"}"#)]);
        let rejects: Vec<_> = collected.rejects.iter().map(|(line, _, _, raw)| (*line, raw.as_str())).collect();
        assert_eq!(rejects, [(2, "1,xxxxxx"), (3, "2,\"y\ny\ny")]);
        assert!(collected.rejects[0].2.contains("MAX_RECORD_BYTES"), "{}", collected.rejects[0].2);
    }

    #[test]
    fn invalid_headers_fail_the_file() {
        let cases: [(&[u8], &str); 2] = [
            (b"id,\xff\n1,2\n", "line 1: header of column 2 is not valid UTF-8"),
            (b"\n\nid,id\n1,2\n", "line 3: header names column \"id\" twice"),
        ];
        for (data, expected) in cases {
            let error = parse_all_splits(Format::Csv, &ParseOptions::default(), data).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn many_columns_beyond_ends_buffer() {
        let header: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();
        let row: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        let data = format!("{}\n{}\n{}\n", header.join(","), row.join(","), row[..299].join(","));
        let collected = parse(data.as_bytes());
        assert_eq!(collected.records.len(), 1);
        assert!(collected.records[0].2.ends_with(r#""c299":"299"}"#));
        assert_eq!(collected.rejects[0].2, "expected 300 fields, found 299");
    }
}
