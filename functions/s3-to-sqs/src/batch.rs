//! Groups records into envelopes (SQS message bodies) under a byte budget.
//!
//! The envelope is written as text, record by record, instead of being
//! serialised from an [`Envelope`](pipeline_shared::envelope::Envelope)
//! value: the size of every message is then known exactly before a record
//! is added, and no record is copied twice. The output parses as an
//! `Envelope`, which the tests check.

use std::fmt::Write as _;

use pipeline_shared::envelope::{ENVELOPE_VERSION, RecordIds, Source};

use crate::format::Format;
use crate::json_text;
use crate::parse::{ItemSink, Position};

/// Smallest message budget in bytes. It leaves room for the envelope's
/// header with the longest S3 key (1,024 bytes, up to 6 KiB once escaped)
/// and for a reject whose 1 KiB raw text is escaped too.
pub const MIN_MESSAGE_BUDGET_BYTES: usize = 16 * 1024;

/// Largest message budget in bytes: the SQS maximum message size, 1 MiB.
pub const MAX_MESSAGE_BUDGET_BYTES: usize = 1024 * 1024;

const RECORDS_CLOSE: &str = "]";
const REJECTS_OPEN: &str = ",\"rejects\":[";
const REJECTS_CLOSE: &str = "]";
const ENVELOPE_CLOSE: &str = "}";

/// One SQS message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// Batch entry id: `line-N` or `index-N` of the message's first record,
    /// unique within the object.
    pub entry_id: String,
    /// Record id of the message's first record, unique across objects.
    pub first_record_id: String,
    /// The envelope's JSON text.
    pub body: String,
    /// Records in the message.
    pub records: usize,
    /// Rejects in the message.
    pub rejects: usize,
}

/// Counts of what a [`Batcher`] has produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Records put into messages.
    pub records: u64,
    /// Rejects put into messages.
    pub rejects: u64,
    /// Messages completed.
    pub messages: u64,
    /// Bytes of all message bodies.
    pub bytes: u64,
}

/// Builds envelopes of one source object, none larger than the budget.
#[derive(Debug)]
pub(crate) struct Batcher {
    ids: RecordIds,
    budget_bytes: usize,
    max_raw_bytes: usize,
    /// Envelope text up to and including `"records":[`.
    header: String,
    records: String,
    record_count: usize,
    rejects: String,
    reject_count: usize,
    first: Option<(Position, String)>,
    entry: String,
    ready: Vec<Message>,
    totals: Totals,
}

impl Batcher {
    /// Creates a batcher for the records of `source`; `budget_bytes` must lie
    /// within [`MIN_MESSAGE_BUDGET_BYTES`]..=[`MAX_MESSAGE_BUDGET_BYTES`].
    pub fn new(source: &Source, dataset: &str, format: Format, budget_bytes: usize, max_raw_bytes: usize) -> Self {
        let mut header = String::with_capacity(256);
        let _ = write!(header, "{{\"version\":{ENVELOPE_VERSION},\"source\":{{\"bucket\":");
        json_text::push_string(&mut header, &source.bucket);
        header.push_str(",\"key\":");
        json_text::push_string(&mut header, &source.key);
        header.push_str(",\"version_id\":");
        push_optional(&mut header, source.version_id.as_deref());
        header.push_str(",\"etag\":");
        push_optional(&mut header, source.etag.as_deref());
        header.push_str("},\"dataset\":");
        json_text::push_string(&mut header, dataset);
        header.push_str(",\"format\":");
        json_text::push_string(&mut header, format.as_str());
        header.push_str(",\"records\":[");

        Self {
            ids: source.record_ids(),
            budget_bytes,
            max_raw_bytes,
            header,
            records: String::new(),
            record_count: 0,
            rejects: String::new(),
            reject_count: 0,
            first: None,
            entry: String::new(),
            ready: Vec::new(),
            totals: Totals::default(),
        }
    }

    /// Takes the messages completed so far.
    pub fn drain_ready(&mut self) -> std::vec::Drain<'_, Message> {
        self.ready.drain(..)
    }

    /// Completes the last message.
    pub fn finish(&mut self) {
        self.flush();
    }

    /// Returns the counts so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Size in bytes the current message would have with `records_bytes`
    /// of records and `rejects_bytes` of rejects.
    fn size_with(&self, records_bytes: usize, rejects_bytes: usize) -> usize {
        let rejects = if rejects_bytes == 0 { 0 } else { REJECTS_OPEN.len() + rejects_bytes + REJECTS_CLOSE.len() };
        self.header.len() + records_bytes + RECORDS_CLOSE.len() + rejects + ENVELOPE_CLOSE.len()
    }

    fn fits_reject(&self, entry_bytes: usize) -> bool {
        let comma = usize::from(self.reject_count > 0);
        self.size_with(self.records.len(), self.rejects.len() + comma + entry_bytes) <= self.budget_bytes
    }

    fn note_first(&mut self, position: Position, id: &str) {
        if self.first.is_none() {
            self.first = Some((position, id.to_owned()));
        }
    }

    fn flush(&mut self) {
        let Some((position, first_record_id)) = self.first.take() else {
            return;
        };
        let size = self.size_with(self.records.len(), self.rejects.len());
        let mut body = String::with_capacity(size);
        body.push_str(&self.header);
        body.push_str(&self.records);
        body.push_str(RECORDS_CLOSE);
        if self.reject_count > 0 {
            body.push_str(REJECTS_OPEN);
            body.push_str(&self.rejects);
            body.push_str(REJECTS_CLOSE);
        }
        body.push_str(ENVELOPE_CLOSE);
        debug_assert_eq!(body.len(), size);

        let entry_id = match position.index {
            Some(index) => format!("index-{index}"),
            None => format!("line-{}", position.line),
        };
        self.totals.messages += 1;
        self.totals.bytes += body.len() as u64;
        self.ready.push(Message {
            entry_id,
            first_record_id,
            body,
            records: self.record_count,
            rejects: self.reject_count,
        });
        self.records.clear();
        self.rejects.clear();
        self.record_count = 0;
        self.reject_count = 0;
    }
}

impl ItemSink for Batcher {
    fn record(&mut self, position: Position, json: &str) {
        let id = self.ids.id(position.id_position());
        // The entry is written straight into the message and cut off again
        // when it does not fit, which saves a copy of every record.
        let mark = self.records.len();
        if self.record_count > 0 {
            self.records.push(',');
        }
        self.records.push_str("{\"id\":\"");
        self.records.push_str(&id);
        push_position(&mut self.records, position);
        self.records.push_str(",\"data\":");
        self.records.push_str(json);
        self.records.push('}');

        if self.size_with(self.records.len(), self.rejects.len()) > self.budget_bytes {
            let entry_start = mark + usize::from(self.record_count > 0);
            let entry_bytes = self.records.len() - entry_start;
            if self.size_with(entry_bytes, 0) > self.budget_bytes {
                self.records.truncate(mark);
                let reason = format!(
                    "record of {} bytes does not fit in a message of {} bytes (MESSAGE_BUDGET_BYTES) with its envelope",
                    json.len(),
                    self.budget_bytes
                );
                self.reject(position, &reason, json.as_bytes());
                return;
            }
            let entry = self.records.split_off(entry_start);
            self.records.truncate(mark);
            self.flush();
            self.records.push_str(&entry);
        }

        self.note_first(position, &id);
        self.record_count += 1;
        self.totals.records += 1;
    }

    fn reject(&mut self, position: Position, reason: &str, raw: &[u8]) {
        let id = self.ids.id(position.id_position());
        let mut raw = json_text::excerpt(raw, self.max_raw_bytes);
        loop {
            self.entry.clear();
            self.entry.push_str("{\"id\":\"");
            self.entry.push_str(&id);
            push_position(&mut self.entry, position);
            self.entry.push_str(",\"reason\":");
            json_text::push_string(&mut self.entry, reason);
            self.entry.push_str(",\"raw\":");
            json_text::push_string(&mut self.entry, &raw);
            self.entry.push('}');
            if self.fits_reject(self.entry.len()) {
                break;
            }
            if self.first.is_some() {
                self.flush();
                continue;
            }
            // Only a budget far below the envelope's header gets here; the
            // reject then goes without its raw text rather than not at all.
            if raw.is_empty() {
                break;
            }
            raw.clear();
        }

        self.note_first(position, &id);
        if self.reject_count > 0 {
            self.rejects.push(',');
        }
        self.rejects.push_str(&self.entry);
        self.reject_count += 1;
        self.totals.rejects += 1;
    }
}

fn push_position(out: &mut String, position: Position) {
    out.push_str("\",\"line\":");
    push_u64(out, position.line);
    if let Some(index) = position.index {
        out.push_str(",\"index\":");
        push_u64(out, index);
    }
}

/// Appends `value` in decimal; faster than `write!` for millions of records.
fn push_u64(out: &mut String, value: u64) {
    let mut buffer = [0u8; 20];
    for &digit in pipeline_shared::envelope::decimal_digits(value, &mut buffer) {
        out.push(char::from(digit));
    }
}

fn push_optional(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => json_text::push_string(out, value),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use pipeline_shared::envelope::Envelope;

    use super::*;

    fn source() -> Source {
        Source { bucket: "b".into(), key: "incoming/d/x\u{ffff}.csv".into(), version_id: None, etag: Some("e1".into()) }
    }

    fn batcher(budget_bytes: usize) -> Batcher {
        Batcher::new(&source(), "d", Format::Csv, budget_bytes, 1024)
    }

    #[test]
    fn envelope_parses_and_keeps_records() {
        let mut batcher = batcher(MIN_MESSAGE_BUDGET_BYTES);
        batcher.record(Position { line: 2, index: None }, r#"{"a":"1","n":12345678901234567.89}"#);
        batcher.reject(Position { line: 3, index: None }, "expected 2 fields, found 1", b"x\xff");
        batcher.finish();
        let messages: Vec<_> = batcher.drain_ready().collect();

        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].entry_id, "line-2");
        assert_eq!(messages[0].first_record_id, source().record_id(2));
        assert!(json_text::is_sqs_safe(&messages[0].body));
        let envelope: Envelope = serde_json::from_str(&messages[0].body).unwrap();
        assert_eq!(envelope.version, ENVELOPE_VERSION);
        assert_eq!(envelope.source, source());
        assert_eq!(envelope.dataset, "d");
        assert_eq!(envelope.format, "csv");
        assert_eq!(envelope.records.len(), 1);
        assert_eq!(envelope.records[0].id, source().record_id(2));
        assert_eq!(envelope.records[0].line, 2);
        assert_eq!(envelope.records[0].index, None);
        assert_eq!(envelope.records[0].data.get(), r#"{"a":"1","n":12345678901234567.89}"#);
        assert_eq!(envelope.rejects.len(), 1);
        assert_eq!(envelope.rejects[0].id, source().record_id(3));
        assert_eq!(envelope.rejects[0].reason, "expected 2 fields, found 1");
        assert_eq!(envelope.rejects[0].raw, "x\u{fffd}");
    }

    #[test]
    fn messages_stay_within_budget() {
        let budget = MIN_MESSAGE_BUDGET_BYTES;
        let mut batcher = batcher(budget);
        let value = "v".repeat(700);
        for line in 1..=200 {
            batcher.record(Position { line, index: None }, &format!("{{\"a\":\"{value}\"}}"));
            if line % 7 == 0 {
                batcher.reject(Position { line: line + 1000, index: None }, "bad", value.as_bytes());
            }
        }
        batcher.finish();
        let messages: Vec<_> = batcher.drain_ready().collect();

        let mut records = 0;
        let mut rejects = 0;
        for message in &messages {
            assert!(message.body.len() <= budget, "{} > {budget}", message.body.len());
            let envelope: Envelope = serde_json::from_str(&message.body).unwrap();
            assert_eq!(envelope.records.len(), message.records);
            records += envelope.records.len();
            rejects += envelope.rejects.len();
        }
        assert_eq!((records, rejects), (200, 28));
        // Every message but the last is full: the next entry (under 800 bytes) did not fit.
        for message in &messages[..messages.len() - 1] {
            assert!(message.body.len() + 800 > budget, "{}", message.body.len());
        }
        let bytes = messages.iter().map(|message| message.body.len() as u64).sum();
        let messages = messages.len() as u64;
        assert_eq!(batcher.totals(), Totals { records: 200, rejects: 28, messages, bytes });
    }

    #[test]
    fn record_larger_than_budget_becomes_reject() {
        let mut batcher = batcher(MIN_MESSAGE_BUDGET_BYTES);
        batcher.record(Position { line: 1, index: Some(0) }, r#"{"a":1}"#);
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MIN_MESSAGE_BUDGET_BYTES));
        batcher.record(Position { line: 1, index: Some(1) }, &big);
        batcher.finish();
        let messages: Vec<_> = batcher.drain_ready().collect();

        assert_eq!(messages.len(), 1);
        let envelope: Envelope = serde_json::from_str(&messages[0].body).unwrap();
        assert_eq!(envelope.records.len(), 1);
        assert_eq!(envelope.rejects.len(), 1);
        assert_eq!(envelope.rejects[0].index, Some(1));
        assert_eq!(envelope.rejects[0].id, source().record_id(1));
        assert_eq!(envelope.rejects[0].raw.len(), 1024);
        assert_eq!(
            envelope.rejects[0].reason,
            "record of 16392 bytes does not fit in a message of 16384 bytes (MESSAGE_BUDGET_BYTES) with its envelope"
        );
    }
}
