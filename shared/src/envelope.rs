//! The SQS message body that s3-to-sqs sends and transform-to-rds reads.
//!
//! One message carries many records of one source object, so that a file of
//! a million small rows needs thousands of messages, not a million. Record
//! values travel as the raw JSON text of the record, never re-encoded through
//! `f64`, so a field such as `12345678901234567.89` arrives unchanged.
//!
//! ```json
//! {"version":1,
//!  "source":{"bucket":"b","key":"incoming/penguins/p.csv","version_id":null,"etag":"9b2c..."},
//!  "dataset":"penguins","format":"csv",
//!  "records":[{"id":"5f0c...","line":2,"data":{"species":"Adelie","body_mass_g":"3750"}}],
//!  "rejects":[{"id":"77ab...","line":9,"reason":"expected 17 fields, found 3","raw":"1,2,3"}]}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The envelope version this code writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// One SQS message body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope format version, [`ENVELOPE_VERSION`].
    pub version: u32,
    /// The S3 object the records come from.
    pub source: Source,
    /// Data set name, which selects the transform's mapping.
    pub dataset: String,
    /// Format the records were parsed from: `csv`, `jsonl` or `json`.
    pub format: String,
    /// Records that parsed.
    #[serde(default)]
    pub records: Vec<Record>,
    /// Records that could not be parsed or sent, kept with their reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejects: Vec<Reject>,
}

/// The S3 object a message's records come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Bucket name.
    pub bucket: String,
    /// Decoded object key.
    pub key: String,
    /// Version id, when the bucket is versioned.
    #[serde(default)]
    pub version_id: Option<String>,
    /// Entity tag without quotes.
    #[serde(default)]
    pub etag: Option<String>,
}

impl Source {
    /// Derives the id of the record at `position` of this object.
    ///
    /// The id is the first 128 bits of SHA-256 over bucket, key, version (or
    /// ETag when unversioned) and position, in hex. A retried upload of the
    /// same object version therefore yields the same ids, which is what makes
    /// redelivery idempotent downstream.
    pub fn record_id(&self, position: u64) -> String {
        self.record_ids().id(position)
    }

    /// Returns a generator of this object's record ids that hashes bucket,
    /// key and version once, for callers that derive millions of ids.
    pub fn record_ids(&self) -> RecordIds {
        let mut prefix = Sha256::new();
        for part in [
            self.bucket.as_bytes(),
            self.key.as_bytes(),
            self.version_id.as_deref().or(self.etag.as_deref()).unwrap_or("").as_bytes(),
        ] {
            hash_part(&mut prefix, part);
        }
        RecordIds { prefix }
    }
}

/// Record ids of one source object, equal to [`Source::record_id`].
#[derive(Debug, Clone)]
pub struct RecordIds {
    prefix: Sha256,
}

impl RecordIds {
    /// Derives the id of the record at `position`: 32 lower-case hex digits.
    pub fn id(&self, position: u64) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // The position is hashed as its decimal text, written without allocating.
        let mut buffer = [0u8; 20];
        let mut hasher = self.prefix.clone();
        hash_part(&mut hasher, decimal_digits(position, &mut buffer));
        let digest = hasher.finalize();
        let mut id = String::with_capacity(32);
        for byte in &digest[..16] {
            id.push(char::from(HEX[usize::from(byte >> 4)]));
            id.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        id
    }
}

/// Writes `value` in decimal at the end of `buffer` and returns those digits,
/// without allocating; faster than `format!` for millions of records.
pub fn decimal_digits(value: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut start = buffer.len();
    let mut rest = value;
    loop {
        start -= 1;
        buffer[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    &buffer[start..]
}

// Each part is length-prefixed so that ("ab", "c") and ("a", "bc") differ.
fn hash_part(hasher: &mut Sha256, part: &[u8]) {
    hasher.update((part.len() as u64).to_be_bytes());
    hasher.update(part);
}

/// One record and where it came from.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    /// Stable id derived from the source and the position ([`Source::record_id`]).
    pub id: String,
    /// Line of the file (1-based) where the record starts.
    pub line: u64,
    /// Element index (0-based) for records of a JSON array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The record as a JSON object, its values as they were written in the file.
    pub data: Box<RawValue>,
}

/// A record that was rejected before it reached the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// Stable id derived from the source and the position.
    pub id: String,
    /// Line of the file (1-based) where the record starts.
    pub line: u64,
    /// Element index (0-based) for records of a JSON array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Reason the record was rejected.
    pub reason: String,
    /// The start of the record's raw text, cut to a bounded length.
    pub raw: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(version_id: Option<&str>, etag: Option<&str>) -> Source {
        Source {
            bucket: "bucket".into(),
            key: "incoming/x.csv".into(),
            version_id: version_id.map(str::to_owned),
            etag: etag.map(str::to_owned),
        }
    }

    #[test]
    fn record_id_is_stable_and_positional() {
        let a = source(None, Some("e1"));
        assert_eq!(a.record_id(2), a.record_id(2));
        assert_ne!(a.record_id(2), a.record_id(3));
        assert_eq!(a.record_id(2).len(), 32);
    }

    #[test]
    fn record_id_keeps_its_published_value() {
        // Ids already stored downstream must not change with the implementation.
        assert_eq!(source(None, Some("e1")).record_id(2), "ffd8ea539b45c38f3d71bd7d37ae5b2f");
        // The same hash computed part by part, as the id is documented.
        let generator = source(Some("v1"), Some("e1")).record_ids();
        for position in [0, 7, 10, 12345, u64::MAX] {
            let mut hasher = Sha256::new();
            for part in ["bucket", "incoming/x.csv", "v1", &position.to_string()] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part);
            }
            let expected: String = hasher.finalize()[..16].iter().map(|byte| format!("{byte:02x}")).collect();
            assert_eq!(generator.id(position), expected, "{position}");
        }
    }

    #[test]
    fn record_id_depends_on_object_version() {
        assert_ne!(source(None, Some("e1")).record_id(2), source(None, Some("e2")).record_id(2));
        assert_ne!(source(Some("v1"), Some("e1")).record_id(2), source(Some("v2"), Some("e1")).record_id(2));
    }

    #[test]
    fn envelope_keeps_number_text() {
        let text = r#"{"version":1,"source":{"bucket":"b","key":"k","version_id":null,"etag":"e"},"dataset":"d","format":"jsonl","records":[{"id":"r","line":1,"data":{"amount":12345678901234567.89}}]}"#;
        let envelope: Envelope = serde_json::from_str(text).unwrap();
        assert_eq!(envelope.records[0].data.get(), r#"{"amount":12345678901234567.89}"#);
        assert_eq!(serde_json::to_string(&envelope).unwrap(), text);
    }
}
