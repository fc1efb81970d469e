//! Handler tests with the SDK's mock clients: S3 objects served from
//! memory and SendMessageBatch calls recorded, so that every request the
//! handler makes can be checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use lambda_runtime::{Context, LambdaEvent};
use pipeline_shared::Env;
use pipeline_shared::envelope::{Envelope, Source};
use serde_json::{Value, json};

use crate::send::tests::{Answer, Call, mock_sqs};
use crate::{Config, Format, ParseOptions, RetryPolicy, S3ToSqsError, State, envelopes_from_bytes, handle, json_text};

const BUCKET: &str = "input-bucket";
const ETAG: &str = "0123abcd";

/// An S3 object served by the mock: content and Content-Type.
type Objects = HashMap<&'static str, (Vec<u8>, Option<&'static str>)>;

fn mock_s3(objects: Objects) -> aws_sdk_s3::Client {
    let objects = Arc::new(objects);
    let rule = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|request| request.bucket() == Some(BUCKET))
        .then_compute_output(move |request| {
            // An unknown key gets an empty body; tests only ask for known keys.
            let (data, content_type) = objects.get(request.key().unwrap_or("")).cloned().unwrap_or_default();
            GetObjectOutput::builder()
                .body(ByteStream::from(data))
                .e_tag(format!("\"{ETAG}\""))
                .set_content_type(content_type.map(str::to_owned))
                .build()
        });
    mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule])
}

fn state_with(
    objects: Objects,
    answer: impl Fn(usize, &str) -> Answer + Send + Sync + 'static,
    env: &[(&str, &str)],
) -> (State, Arc<Mutex<Vec<Call>>>) {
    let mut pairs = vec![("QUEUE_URL", "http://127.0.0.1:4566/000000000000/records")];
    pairs.extend_from_slice(env);
    let mut config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
    config.retry =
        RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) };
    let (sqs, calls) = mock_sqs(answer);
    (State { config, s3: mock_s3(objects), sqs }, calls)
}

fn state(objects: Objects) -> (State, Arc<Mutex<Vec<Call>>>) {
    state_with(objects, |_, _| Answer::Success, &[])
}

fn s3_event(raw_key: &str) -> Value {
    json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":BUCKET},"object":{"key":raw_key,"size":10,"eTag":ETAG}}}]})
}

fn lambda_event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

/// Envelopes of every call, in the order sent.
fn envelopes(calls: &Arc<Mutex<Vec<Call>>>) -> Vec<Envelope> {
    let calls = calls.lock().unwrap();
    calls.iter().flatten().map(|(_, body)| serde_json::from_str(body).unwrap()).collect()
}

/// Records as (line, data text), in file order.
fn records(envelopes: &[Envelope]) -> Vec<(u64, String)> {
    let mut records: Vec<_> =
        envelopes.iter().flat_map(|e| &e.records).map(|r| (r.line, r.data.get().to_owned())).collect();
    records.sort();
    records
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn multi_member_gzip_through_handler() {
    // F1: `cat a.gz b.gz` of "id,v\n1,x\n" and "2,y\n".
    let mut data = gzip(b"id,v\n1,x\n");
    data.extend(gzip(b"2,y\n"));
    let (state, calls) = state(HashMap::from([("incoming/d/f1.csv.gz", (data, None))]));
    let response = handle(&state, lambda_event(s3_event("incoming/d/f1.csv.gz"))).await.unwrap();

    assert_eq!(response.objects.len(), 1);
    assert_eq!((response.objects[0].records, response.objects[0].rejected), (2, 0));
    let envelopes = envelopes(&calls);
    assert_eq!(records(&envelopes), [(2, r#"{"id":"1","v":"x"}"#.to_owned()), (3, r#"{"id":"2","v":"y"}"#.to_owned())]);
    let source =
        Source { bucket: BUCKET.into(), key: "incoming/d/f1.csv.gz".into(), version_id: None, etag: Some(ETAG.into()) };
    assert_eq!(envelopes[0].source, source);
    assert_eq!(envelopes[0].records[0].id, source.record_id(2));
    assert_eq!(envelopes[0].dataset, "d");
    assert_eq!(envelopes[0].format, "csv");
}

#[tokio::test]
async fn long_lines_respect_sqs_limits() {
    // F4: ten 30 KiB lines, then one line of 1.1 MiB.
    let mut data = String::new();
    for i in 0..10 {
        data.push_str(&format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "p".repeat(30 * 1024)));
    }
    data.push_str(&format!("{{\"big\":\"{}\"}}\n", "b".repeat(1_100 * 1024)));
    let (state, calls) = state(HashMap::from([("incoming/d/f4.jsonl", (data.into_bytes(), None))]));
    let response = handle(&state, lambda_event(s3_event("incoming/d/f4.jsonl"))).await.unwrap();

    assert_eq!((response.objects[0].records, response.objects[0].rejected), (10, 1));
    // SendMessageBatch limits: 10 entries and 1 MiB of bodies per call;
    // each message stays within the 256 KiB message budget.
    for call in calls.lock().unwrap().iter() {
        assert!(call.len() <= 10);
        let bytes: usize = call.iter().map(|(_, body)| body.len()).sum();
        assert!(bytes <= 1024 * 1024, "{bytes}");
        for (_, body) in call {
            assert!(body.len() <= 256 * 1024, "{}", body.len());
        }
    }
    let envelopes = envelopes(&calls);
    let lines: Vec<u64> = records(&envelopes).iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, (1..=10).collect::<Vec<_>>());
    let rejects: Vec<_> = envelopes.iter().flat_map(|e| &e.rejects).collect();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].line, 11);
    assert_eq!(
        rejects[0].reason,
        "line of 1126410 bytes is larger than the maximum record size of 1048576 bytes (MAX_RECORD_BYTES)"
    );
    assert_eq!(rejects[0].raw.len(), 1024);
    let reject_envelope = envelopes.iter().find(|e| !e.rejects.is_empty()).unwrap();
    assert_eq!(reject_envelope.source.key, "incoming/d/f4.jsonl");
}

#[tokio::test]
async fn encoded_key_is_decoded() {
    // K1: S3 writes the key form-URL-encoded.
    let key = "reports/Q1 summary+final été.csv";
    let (state, calls) = state_with(
        HashMap::from([(key, (b"a\n1\n".to_vec(), None))]),
        |_, _| Answer::Success,
        &[("DATASET_KEY_PATTERN", "^(?P<dataset>[^/]+)/")],
    );
    let response =
        handle(&state, lambda_event(s3_event("reports/Q1+summary%2Bfinal+%C3%A9t%C3%A9.csv"))).await.unwrap();

    assert_eq!(response.objects[0].key, key);
    assert_eq!(response.objects[0].dataset, "reports");
    assert_eq!(envelopes(&calls)[0].source.key, key);
}

#[tokio::test]
async fn every_event_shape_gives_the_same_records() {
    // K2: SNS-wrapped, SQS-wrapped and EventBridge events are read like a direct one.
    let key = "incoming/d/x.csv";
    let direct = s3_event("incoming/d/x.csv");
    let shapes = [
        direct.clone(),
        json!({"Records":[{"EventSource":"aws:sns","Sns":{"Message": direct.to_string()}}]}),
        json!({"Records":[{"eventSource":"aws:sqs","messageId":"m1","body": direct.to_string()}]}),
        json!({"Records":[{"eventSource":"aws:sqs","messageId":"m1",
            "body": json!({"Type":"Notification","Message": direct.to_string()}).to_string()}]}),
        json!({"source":"aws.s3","detail-type":"Object Created",
            "detail":{"bucket":{"name":BUCKET},"object":{"key":key,"size":10,"etag":ETAG}}}),
    ];
    let mut outputs = Vec::new();
    for shape in shapes {
        let (state, calls) = state(HashMap::from([(key, (b"a,b\n1,2\n3,4\n".to_vec(), None))]));
        let response = handle(&state, lambda_event(shape.clone())).await.unwrap();
        assert_eq!(response.objects.len(), 1, "{shape}");
        let bodies: Vec<String> = calls.lock().unwrap().iter().flatten().map(|(_, body)| body.clone()).collect();
        outputs.push(bodies);
    }
    assert!(outputs.iter().all(|bodies| bodies == &outputs[0]), "{outputs:?}");
    assert_eq!(records(&envelopes_of(&outputs[0])).len(), 2);
}

fn envelopes_of(bodies: &[String]) -> Vec<Envelope> {
    bodies.iter().map(|body| serde_json::from_str(body).unwrap()).collect()
}

#[tokio::test]
async fn test_event_and_skips_succeed() {
    let (state, calls) = state(HashMap::new());
    let test_event = json!({"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":BUCKET});
    assert_eq!(handle(&state, lambda_event(test_event)).await.unwrap(), crate::Response::default());

    let skipped = json!({"Records":[
        {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":BUCKET},"object":{"key":"incoming/d/x.csv"}}},
        {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":BUCKET},"object":{"key":"incoming/d/"}}}]});
    let response = handle(&state, lambda_event(skipped)).await.unwrap();
    assert_eq!((response.objects.len(), response.skipped), (0, 2));

    let (archived, _) = state_with(
        HashMap::new(),
        |_, _| Answer::Success,
        &[("ARCHIVE_BUCKET", BUCKET), ("ARCHIVE_PREFIX", "archive/")],
    );
    let response = handle(&archived, lambda_event(s3_event("archive/incoming/d/x.csv.gz"))).await.unwrap();
    assert_eq!(response.skipped, 1);
    assert!(calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn missing_fields() {
    // K3: size, eTag and versionId may be missing; bucket and key may not.
    let (state, calls) = state(HashMap::from([("incoming/d/x.csv", (b"a\n1\n".to_vec(), None))]));
    let minimal = json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":BUCKET},"object":{"key":"incoming/d/x.csv"}}}]});
    let response = handle(&state, lambda_event(minimal)).await.unwrap();
    assert_eq!(response.objects[0].records, 1);
    // The ETag then comes from GetObject, so the ids match those of a full event.
    assert_eq!(envelopes(&calls)[0].source.etag.as_deref(), Some(ETAG));

    let cases = [
        (json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"object":{"key":"k"}}}]}), "s3.bucket.name"),
        (
            json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":BUCKET},"object":{}}}]}),
            "s3.object.key",
        ),
        (
            json!({"source":"aws.s3","detail-type":"Object Created","detail":{"bucket":{"name":BUCKET},"object":{}}}),
            "detail.object.key",
        ),
    ];
    for (event, field) in cases {
        let error = handle(&state, lambda_event(event)).await.unwrap_err();
        assert!(matches!(error, S3ToSqsError::Event(_)), "{error:?}");
        assert!(error.to_string().contains(field), "{error}");
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn object_errors_name_bucket_and_key() {
    let objects = HashMap::from([
        ("incoming/d/not-array.json", (b"{\"a\":1}\n".to_vec(), None)),
        ("incoming/d/plain.csv.gz", (b"a,b\n1,2\n".to_vec(), None)),
        ("incoming/d/header.csv", (b"a,\xff\n1,2\n".to_vec(), None)),
        ("incoming/d/noformat.bin", (b"a,b\n".to_vec(), Some("application/octet-stream"))),
        ("incoming/d/typed", (b"a,b\n1,2\n".to_vec(), Some("text/csv"))),
    ]);
    let (state, _) = state_with(objects, |_, _| Answer::Success, &[]);
    let cases = [
        (
            "incoming/d/not-array.json",
            "s3://input-bucket/incoming/d/not-array.json: cannot parse as json at line 1: a JSON array file must start with '[', found '{'",
        ),
        (
            "incoming/d/plain.csv.gz",
            "s3://input-bucket/incoming/d/plain.csv.gz: not gzip data (no 1F 8B header) although the key or Content-Encoding says gzip",
        ),
        (
            "incoming/d/header.csv",
            "s3://input-bucket/incoming/d/header.csv: cannot parse as csv at line 1: header of column 2 is not valid UTF-8",
        ),
        (
            "other/d/x.csv",
            "s3://input-bucket/other/d/x.csv: key does not match DATASET_KEY_PATTERN \"^incoming/(?P<dataset>[^/]+)/\", so the data set is unknown; upload under a matching prefix or change the pattern",
        ),
    ];
    for (key, expected) in cases {
        let error = handle(&state, lambda_event(s3_event(key))).await.unwrap_err();
        assert_eq!(error.to_string(), expected);
        assert!(!error.is_retryable(), "{key}");
    }

    let error = handle(&state, lambda_event(s3_event("incoming/d/noformat.bin"))).await.unwrap_err();
    assert!(matches!(error, S3ToSqsError::UnknownFormat { .. }), "{error:?}");
    let response = handle(&state, lambda_event(s3_event("incoming/d/typed"))).await.unwrap();
    assert_eq!(response.objects[0].format, "csv");
}

#[tokio::test]
async fn decompression_bomb_is_stopped() {
    let mut data = b"a\n".to_vec();
    data.extend(std::iter::repeat_n(b'0', 20 * 1024 * 1024));
    let (state, calls) = state(HashMap::from([("incoming/d/bomb.csv.gz", (gzip(&data), None))]));
    let error = handle(&state, lambda_event(s3_event("incoming/d/bomb.csv.gz"))).await.unwrap_err();

    assert!(matches!(error, S3ToSqsError::DecompressionRatio { max_ratio: 200, .. }), "{error:?}");
    assert!(error.to_string().starts_with("s3://input-bucket/incoming/d/bomb.csv.gz: "), "{error}");
    assert!(calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unsent_entries_fail_the_invocation() {
    // Q1 through the handler: one entry keeps failing, so the invocation fails and S3 retries it.
    let data = (0..2000).map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat(500))).collect::<String>();
    let (state, calls) = state_with(
        HashMap::from([("incoming/d/x.jsonl", (data.into_bytes(), None))]),
        |_, id| if id == "line-1" { Answer::Failed { sender_fault: false } } else { Answer::Success },
        &[],
    );
    let error = handle(&state, lambda_event(s3_event("incoming/d/x.jsonl"))).await.unwrap_err();

    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        "s3://input-bucket/incoming/d/x.jsonl: 1 messages not sent to SQS: still failing after 3 attempts, last error InternalError: mock failure"
    );
    let calls = calls.lock().unwrap();
    let with_line_1: Vec<_> = calls.iter().filter(|call| call.iter().any(|(id, _)| id == "line-1")).collect();
    assert_eq!(with_line_1.len(), 3);
    for resend in &with_line_1[1..] {
        assert_eq!(resend.len(), 1);
    }
}

#[tokio::test]
async fn noncharacters_and_nul_are_escaped() {
    let data = "id,text\n1,a\u{ffff}b\n2,c\u{0}d\n3,\u{fffe}\n";
    let (state, calls) = state(HashMap::from([("incoming/d/x.csv", (data.as_bytes().to_vec(), None))]));
    handle(&state, lambda_event(s3_event("incoming/d/x.csv"))).await.unwrap();

    let calls = calls.lock().unwrap();
    let body = &calls[0][0].1;
    assert!(json_text::is_sqs_safe(body));
    assert!(body.contains(r#""text":"a\uffffb""#), "{body}");
    let envelope: Envelope = serde_json::from_str(body).unwrap();
    let texts: Vec<(u64, String)> = envelope
        .records
        .iter()
        .map(|record| {
            (
                record.line,
                serde_json::from_str::<Value>(record.data.get()).unwrap()["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(texts, [(2, "a\u{ffff}b".to_owned()), (3, "c\u{0}d".to_owned()), (4, "\u{fffe}".to_owned())]);
}

#[test]
fn envelopes_from_bytes_cases() {
    let source =
        Source { bucket: "b".into(), key: "incoming/d/f2.csv".into(), version_id: Some("v1".into()), etag: None };
    let data = b"id,comment,amount\n1,\"line one\nline two\",5\n2,\"a, b and \"\"c\"\"\",6\n3,short\n";
    let bodies = envelopes_from_bytes(&source, "d", Format::Csv, data, &ParseOptions::default(), 262_144).unwrap();
    assert_eq!(bodies.len(), 1);
    let envelope: Envelope = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(envelope.records.len(), 2);
    assert_eq!(envelope.records[1].id, source.record_id(4));
    assert_eq!(envelope.rejects[0].line, 5);
    assert_eq!(envelope.rejects[0].reason, "expected 3 fields, found 2");
    assert_eq!(envelope.rejects[0].raw, "3,short");

    let error = envelopes_from_bytes(&source, "d", Format::Csv, data, &ParseOptions::default(), 100).unwrap_err();
    assert_eq!(error.to_string(), "message budget of 100 bytes is outside the range 16384 to 1048576");
    let error =
        envelopes_from_bytes(&source, "d", Format::JsonArray, b"x", &ParseOptions::default(), 262_144).unwrap_err();
    assert_eq!(
        error.to_string(),
        "s3://b/incoming/d/f2.csv: cannot parse as json at line 1: a JSON array file must start with '[', found 'x'"
    );

    let array = br#"[{"n":12345678901234567.89},{"n":2}]"#;
    let bodies =
        envelopes_from_bytes(&source, "d", Format::JsonArray, array, &ParseOptions::default(), 262_144).unwrap();
    let envelope: Envelope = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(envelope.records[0].data.get(), r#"{"n":12345678901234567.89}"#);
    assert_eq!(envelope.records[1].index, Some(1));
    assert_eq!(envelope.records[1].id, source.record_id(1));
}
