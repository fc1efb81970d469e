//! S3 object notifications in every shape the pipeline receives them.
//!
//! The same object-created notice can arrive as a direct S3 event (Lambda's
//! S3 trigger, or the body of an SQS message), as an SQS batch of such
//! bodies, as an S3 event wrapped by SNS, or as an EventBridge
//! "Object Created" event. S3 also sends an
//! `s3:TestEvent` when a notification configuration is saved. This module
//! turns all of them into [`ObjectEvent`]s with decoded keys.

use percent_encoding::percent_decode_str;
use serde_json::Value;

/// A notification that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The event lacks a field that the pipeline needs.
    #[error("invalid S3 event: record {index} has no {field}")]
    MissingField {
        /// Position of the record in the event.
        index: usize,
        /// JSON path of the missing field, such as `s3.object.key`.
        field: &'static str,
    },
    /// An object key whose percent-escapes are not UTF-8.
    #[error("invalid S3 event: key {raw:?} does not decode to UTF-8")]
    InvalidKey {
        /// The key as it arrived in the event.
        raw: String,
    },
    /// A JSON document that matches no known notification shape.
    #[error("unrecognised event: {reason}")]
    Unrecognised {
        /// Description of the document found instead.
        reason: String,
    },
}

/// A bucket and a key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix, empty for the whole bucket.
    pub prefix: String,
}

impl S3Location {
    /// Returns true when `bucket`/`key` lies inside this location.
    pub fn contains(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket && key.starts_with(&self.prefix)
    }
}

/// Content of a notification: a test event or object events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// The `s3:TestEvent` that S3 sends when notifications are configured.
    Test,
    /// One or more object events.
    Objects(Vec<ObjectEvent>),
}

/// One object event with its key already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// Event name, such as `ObjectCreated:Put` (S3) or `Object Created` (EventBridge).
    pub event_name: String,
    /// Bucket name.
    pub bucket: String,
    /// Decoded object key, as it must be passed to GetObject.
    pub key: String,
    /// Object size in bytes, when the event carries it.
    pub size: Option<u64>,
    /// Entity tag, without quotes, when the event carries it.
    pub etag: Option<String>,
    /// Version id, when the bucket is versioned.
    pub version_id: Option<String>,
}

impl ObjectEvent {
    /// Returns true for object-created events of every kind (Put, Post, Copy,
    /// CompleteMultipartUpload).
    pub fn is_object_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:") || self.event_name == "Object Created"
    }

    /// Returns true for a folder marker: a key that ends with `/`.
    pub fn is_folder_marker(&self) -> bool {
        self.key.ends_with('/')
    }
}

/// Decodes an object key from an S3 event.
///
/// S3 writes keys form-URL-encoded: `+` is a space and other bytes are
/// percent-escaped. The `+` must become a space before the percent-escapes
/// are decoded, or an escaped `%2B` would turn into a space too. LocalStack
/// writes a space as `%20`, which decodes to a space as well.
pub fn decode_key(raw: &str) -> Result<String, EventError> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| EventError::InvalidKey { raw: raw.to_owned() })
}

/// Parses any supported notification shape from a JSON value.
pub fn parse_notification(value: &Value) -> Result<Notification, EventError> {
    // S3's test event has no records: {"Service":"Amazon S3","Event":"s3:TestEvent",...}.
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }

    // An SNS notification as it arrives in an SQS body.
    if value.get("Type").and_then(Value::as_str) == Some("Notification") {
        let message = value.get("Message").and_then(Value::as_str).ok_or_else(|| EventError::Unrecognised {
            reason: "SNS notification without a Message string".to_owned(),
        })?;
        return parse_notification_text(message);
    }

    // EventBridge: {"source":"aws.s3","detail-type":"Object Created","detail":{...}}.
    if value.get("source").and_then(Value::as_str) == Some("aws.s3") {
        return parse_eventbridge(value).map(|event| Notification::Objects(vec![event]));
    }

    let Some(records) = value.get("Records").and_then(Value::as_array) else {
        return Err(EventError::Unrecognised {
            reason: "no Records array, Event, SNS Message or EventBridge source".to_owned(),
        });
    };

    // An SQS batch whose bodies are S3 notifications (S3 to SQS to Lambda).
    if records.iter().any(|record| record.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")) {
        let mut events = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let body = record.get("body").and_then(Value::as_str).ok_or(EventError::MissingField { index, field: "body" })?;
            if let Notification::Objects(inner) = parse_notification_text(body)? {
                events.extend(inner);
            }
        }
        return Ok(Notification::Objects(events));
    }

    // A Lambda SNS trigger: every record carries an SNS message with an S3 event inside.
    if records.iter().any(|record| record.get("Sns").is_some()) {
        let mut events = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let message = record.pointer("/Sns/Message").and_then(Value::as_str).ok_or(EventError::MissingField {
                index,
                field: "Sns.Message",
            })?;
            if let Notification::Objects(inner) = parse_notification_text(message)? {
                events.extend(inner);
            }
        }
        return Ok(Notification::Objects(events));
    }

    let events = records.iter().enumerate().map(|(index, record)| parse_s3_record(index, record)).collect::<Result<_, _>>()?;
    Ok(Notification::Objects(events))
}

/// Parses a notification from JSON text.
pub fn parse_notification_text(text: &str) -> Result<Notification, EventError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| EventError::Unrecognised { reason: format!("not JSON: {error}") })?;
    parse_notification(&value)
}

fn parse_s3_record(index: usize, record: &Value) -> Result<ObjectEvent, EventError> {
    let text = |pointer: &str| record.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());

    let event_name = text("/eventName").ok_or(EventError::MissingField { index, field: "eventName" })?;
    let bucket = text("/s3/bucket/name").ok_or(EventError::MissingField { index, field: "s3.bucket.name" })?;
    let raw_key = text("/s3/object/key").ok_or(EventError::MissingField { index, field: "s3.object.key" })?;

    Ok(ObjectEvent {
        event_name: event_name.to_owned(),
        bucket: bucket.to_owned(),
        key: decode_key(raw_key)?,
        size: record.pointer("/s3/object/size").and_then(Value::as_u64),
        etag: text("/s3/object/eTag").map(unquote),
        version_id: text("/s3/object/versionId").map(str::to_owned),
    })
}

fn parse_eventbridge(value: &Value) -> Result<ObjectEvent, EventError> {
    let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());

    let detail_type = text("/detail-type").ok_or(EventError::MissingField { index: 0, field: "detail-type" })?;
    let bucket = text("/detail/bucket/name").ok_or(EventError::MissingField { index: 0, field: "detail.bucket.name" })?;
    // EventBridge writes keys as they are, not URL-encoded.
    let key = text("/detail/object/key").ok_or(EventError::MissingField { index: 0, field: "detail.object.key" })?;

    Ok(ObjectEvent {
        event_name: detail_type.to_owned(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: value.pointer("/detail/object/size").and_then(Value::as_u64),
        etag: text("/detail/object/etag").map(unquote),
        version_id: text("/detail/object/version-id").map(str::to_owned),
    })
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decode_key_cases() {
        let cases = [
            ("plain/key.csv", "plain/key.csv"),
            ("reports/Q1+summary%2Bfinal+%C3%A9t%C3%A9.csv", "reports/Q1 summary+final été.csv"),
            ("reports/Q1%20summary.csv", "reports/Q1 summary.csv"),
            ("a%25b", "a%b"),
            ("a%252B", "a%2B"),
            ("%E6%97%A5%E6%9C%AC/file", "日本/file"),
            ("trailing+", "trailing "),
        ];
        for (raw, expected) in cases {
            assert_eq!(decode_key(raw).unwrap(), expected, "{raw}");
        }
    }

    #[test]
    fn decode_key_rejects_invalid_utf8() {
        assert!(matches!(decode_key("bad%FF"), Err(EventError::InvalidKey { .. })));
    }

    #[test]
    fn test_event_is_recognised() {
        let event = json!({"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T12:00:00.000Z","Bucket":"example-bucket","RequestId":"R1","HostId":"H1"});
        assert_eq!(parse_notification(&event).unwrap(), Notification::Test);
    }

    #[test]
    fn record_without_optional_fields_parses() {
        let event = json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"in/a+b.csv"}}}]});
        let Notification::Objects(objects) = parse_notification(&event).unwrap() else { panic!("expected objects") };
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].key, "in/a b.csv");
        assert_eq!(objects[0].size, None);
        assert!(objects[0].is_object_created());
    }

    #[test]
    fn record_missing_key_names_field() {
        let event = json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{}}}]});
        let error = parse_notification(&event).unwrap_err();
        assert_eq!(error.to_string(), "invalid S3 event: record 0 has no s3.object.key");
    }

    #[test]
    fn record_missing_bucket_names_field() {
        let event = json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"object":{"key":"k"}}}]});
        let error = parse_notification(&event).unwrap_err();
        assert_eq!(error.to_string(), "invalid S3 event: record 0 has no s3.bucket.name");
    }

    #[test]
    fn sns_wrapped_event_in_sqs_body_parses() {
        let inner = json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"x%2By","size":3,"eTag":"\"e1\""}}}]});
        let event = json!({"Type":"Notification","Message": inner.to_string()});
        let Notification::Objects(objects) = parse_notification(&event).unwrap() else { panic!("expected objects") };
        assert_eq!(objects[0].key, "x+y");
        assert_eq!(objects[0].etag.as_deref(), Some("e1"));
        assert_eq!(objects[0].size, Some(3));
    }

    #[test]
    fn sns_trigger_event_parses() {
        let inner = json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]});
        let event = json!({"Records":[{"EventSource":"aws:sns","Sns":{"Message": inner.to_string()}}]});
        let Notification::Objects(objects) = parse_notification(&event).unwrap() else { panic!("expected objects") };
        assert_eq!(objects[0].bucket, "b");
    }

    #[test]
    fn sqs_batch_of_notifications_parses() {
        let inner = json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%20b"}}}]});
        let test = json!({"Event":"s3:TestEvent"});
        let event = json!({"Records":[
            {"eventSource":"aws:sqs","messageId":"m1","body": inner.to_string()},
            {"eventSource":"aws:sqs","messageId":"m2","body": test.to_string()}]});
        let Notification::Objects(objects) = parse_notification(&event).unwrap() else { panic!("expected objects") };
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].key, "a b");
    }

    #[test]
    fn eventbridge_key_is_not_decoded() {
        let event = json!({"source":"aws.s3","detail-type":"Object Created","detail":{"bucket":{"name":"b"},"object":{"key":"a+b %41.csv","size":10,"etag":"e2","version-id":"v1"}}});
        let Notification::Objects(objects) = parse_notification(&event).unwrap() else { panic!("expected objects") };
        assert_eq!(objects[0].key, "a+b %41.csv");
        assert_eq!(objects[0].version_id.as_deref(), Some("v1"));
        assert!(objects[0].is_object_created());
    }

    #[test]
    fn other_json_is_unrecognised() {
        assert!(matches!(parse_notification(&json!({"hello":1})), Err(EventError::Unrecognised { .. })));
    }

    #[test]
    fn location_contains_by_bucket_and_prefix() {
        let archive = S3Location { bucket: "b".into(), prefix: "archive/".into() };
        assert!(archive.contains("b", "archive/x.gz"));
        assert!(!archive.contains("b", "incoming/x"));
        assert!(!archive.contains("other", "archive/x.gz"));
    }
}
