//! Push parsers that cut a byte stream into records.
//!
//! A parser takes the object's bytes in chunks of any size, as they arrive
//! from S3, and hands each record to an [`ItemSink`] as JSON object text.
//! A record that cannot be used goes to the sink as a reject with its reason,
//! and parsing goes on with the next record. Only a file that cannot be
//! parsed at all stops with a [`ParseError`]. Memory stays bounded by
//! [`ParseOptions::max_record_bytes`] whatever the input.

mod csv;
mod json_array;
mod json_lines;

use crate::format::Format;

pub(crate) use self::csv::CsvParser;
pub(crate) use self::json_array::JsonArrayParser;
pub(crate) use self::json_lines::JsonLinesParser;

/// Settings of the record parsers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// CSV field delimiter, one ASCII byte; `b','` by default.
    pub csv_delimiter: u8,
    /// Maximum size of one record's text in bytes; a longer record is
    /// rejected without being held in memory. 1 MiB by default.
    pub max_record_bytes: usize,
    /// Maximum length in bytes of the raw text kept in a reject; 1 KiB by default.
    pub max_reject_raw_bytes: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self { csv_delimiter: b',', max_record_bytes: 1024 * 1024, max_reject_raw_bytes: 1024 }
    }
}

/// Start of a record in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// Line (1-based) of the record's first byte.
    pub line: u64,
    /// Element index (0-based) in a JSON array.
    pub index: Option<u64>,
}

impl Position {
    /// Returns the number that the record id is derived from: the element
    /// index in a JSON array, the line otherwise.
    pub fn id_position(self) -> u64 {
        self.index.unwrap_or(self.line)
    }
}

/// Receiver of parsed records and rejects.
pub(crate) trait ItemSink {
    /// Takes one record, `json` being the text of a JSON object.
    fn record(&mut self, position: Position, json: &str);

    /// Takes a record that cannot be used; `raw` is the start of its text.
    fn reject(&mut self, position: Position, reason: &str, raw: &[u8]);
}

/// A file that cannot be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// Line (1-based) where parsing stopped.
    pub line: u64,
    /// Reason the file cannot be parsed.
    pub reason: String,
}

/// One of the record parsers, chosen by [`Format`].
#[derive(Debug)]
pub(crate) struct RecordParser {
    bom: BomStripper,
    kind: ParserKind,
}

#[derive(Debug)]
enum ParserKind {
    Csv(Box<CsvParser>),
    JsonLines(JsonLinesParser),
    JsonArray(JsonArrayParser),
}

impl RecordParser {
    /// Creates a parser for `format`; `delimiter` overrides the CSV delimiter.
    pub fn new(format: Format, options: &ParseOptions) -> Self {
        let kind = match format {
            Format::Csv => ParserKind::Csv(Box::new(CsvParser::new(options))),
            Format::JsonLines => ParserKind::JsonLines(JsonLinesParser::new(options)),
            Format::JsonArray => ParserKind::JsonArray(JsonArrayParser::new(options)),
        };
        Self { bom: BomStripper::default(), kind }
    }

    /// Parses the next chunk of the file.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl ItemSink) -> Result<(), ParseError> {
        let Self { bom, kind } = self;
        bom.feed(chunk, |bytes| kind.feed(bytes, sink))
    }

    /// Parses what is left at the end of the file.
    pub fn finish(&mut self, sink: &mut impl ItemSink) -> Result<(), ParseError> {
        let Self { bom, kind } = self;
        bom.finish(|bytes| kind.feed(bytes, sink))?;
        kind.finish(sink)
    }
}

impl ParserKind {
    fn feed(&mut self, chunk: &[u8], sink: &mut impl ItemSink) -> Result<(), ParseError> {
        match self {
            Self::Csv(parser) => parser.feed(chunk, sink),
            Self::JsonLines(parser) => {
                parser.feed(chunk, sink);
                Ok(())
            }
            Self::JsonArray(parser) => parser.feed(chunk, sink),
        }
    }

    fn finish(&mut self, sink: &mut impl ItemSink) -> Result<(), ParseError> {
        match self {
            Self::Csv(parser) => parser.finish(sink),
            Self::JsonLines(parser) => {
                parser.finish(sink);
                Ok(())
            }
            Self::JsonArray(parser) => parser.finish(sink),
        }
    }
}

/// Drops a UTF-8 byte order mark (EF BB BF) at the start of the file, even
/// when it is split across chunks.
#[derive(Debug, Default)]
struct BomStripper {
    done: bool,
    pending: Vec<u8>,
}

impl BomStripper {
    const BOM: &[u8] = b"\xef\xbb\xbf";

    fn feed<E>(&mut self, chunk: &[u8], mut next: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.done {
            return next(chunk);
        }
        self.pending.extend_from_slice(chunk);
        if self.pending.len() < Self::BOM.len() && Self::BOM.starts_with(&self.pending) {
            return Ok(());
        }
        self.flush(next)
    }

    fn finish<E>(&mut self, next: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.done { Ok(()) } else { self.flush(next) }
    }

    fn flush<E>(&mut self, mut next: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.done = true;
        let pending = std::mem::take(&mut self.pending);
        let rest = pending.strip_prefix(Self::BOM).unwrap_or(&pending);
        if rest.is_empty() { Ok(()) } else { next(rest) }
    }
}

/// Counts `\n` bytes, the line ends that line numbers are based on.
pub(crate) fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&byte| byte == b'\n').count() as u64
}

#[cfg(test)]
pub(crate) mod testing {
    //! A sink that stores what it receives, for the parsers' tests.

    use super::{ItemSink, ParseError, ParseOptions, Position, RecordParser};
    use crate::format::Format;

    /// Records and rejects that a parser produced.
    #[derive(Debug, Default, PartialEq, Eq)]
    pub struct Collected {
        /// Records as (line, index, JSON text).
        pub records: Vec<(u64, Option<u64>, String)>,
        /// Rejects as (line, index, reason, raw).
        pub rejects: Vec<(u64, Option<u64>, String, String)>,
    }

    impl ItemSink for Collected {
        fn record(&mut self, position: Position, json: &str) {
            self.records.push((position.line, position.index, json.to_owned()));
        }

        fn reject(&mut self, position: Position, reason: &str, raw: &[u8]) {
            self.rejects.push((
                position.line,
                position.index,
                reason.to_owned(),
                String::from_utf8_lossy(raw).into_owned(),
            ));
        }
    }

    /// Parses `data` in chunks of `chunk_bytes`.
    pub fn parse_chunked(
        format: Format,
        options: &ParseOptions,
        data: &[u8],
        chunk_bytes: usize,
    ) -> Result<Collected, ParseError> {
        let mut parser = RecordParser::new(format, options);
        let mut collected = Collected::default();
        for chunk in data.chunks(chunk_bytes.max(1)) {
            parser.feed(chunk, &mut collected)?;
        }
        parser.finish(&mut collected)?;
        Ok(collected)
    }

    /// Parses `data` whole and in chunks of 1, 2, 3, 7 and 64 bytes, checks
    /// that every split gives the same result, and returns it.
    pub fn parse_all_splits(format: Format, options: &ParseOptions, data: &[u8]) -> Result<Collected, ParseError> {
        let whole = parse_chunked(format, options, data, data.len());
        for chunk_bytes in [1, 2, 3, 7, 64] {
            assert_eq!(parse_chunked(format, options, data, chunk_bytes), whole, "chunks of {chunk_bytes} bytes");
        }
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_stripper_cases() {
        let cases: [(&[&[u8]], &[u8]); 6] = [
            (&[b"\xef\xbb\xbfabc"], b"abc"),
            (&[b"\xef", b"\xbb", b"\xbfabc"], b"abc"),
            (&[b"\xef\xbb"], b"\xef\xbb"),
            (&[b"ab", b"c"], b"abc"),
            (&[b"\xefx"], b"\xefx"),
            (&[b"", b"\xef\xbb\xbf"], b""),
        ];
        for (chunks, expected) in cases {
            let mut stripper = BomStripper::default();
            let mut out = Vec::new();
            for chunk in chunks {
                stripper
                    .feed::<()>(chunk, |bytes| {
                        out.extend_from_slice(bytes);
                        Ok(())
                    })
                    .unwrap();
            }
            stripper
                .finish::<()>(|bytes| {
                    out.extend_from_slice(bytes);
                    Ok(())
                })
                .unwrap();
            assert_eq!(out, expected, "{chunks:?}");
        }
    }
}
