//! compress-on-upload against LocalStack: real uploads, the notification
//! events LocalStack delivers for them, and the archive copies it stores.

mod common;

use std::collections::HashMap;
use std::io::Read;

use compress_on_upload::{Config, Outcome, State, Summary, handle};
use lambda_runtime::LambdaEvent;
use pipeline_shared::Env;
use serde_json::Value;

const PART_SIZE_BYTES: usize = 5 * 1024 * 1024;

struct Fixture {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    bucket: String,
    notifications: String,
    state: State,
}

/// A bucket whose notifications go to a queue, and a function state that
/// archives into the same bucket under `archive/`.
async fn fixture() -> Fixture {
    let s3 = common::s3().await;
    let sqs = common::sqs().await;
    let bucket = common::create_bucket(&s3, "compress").await;
    let notifications = common::notify_queue(&s3, &sqs, &bucket).await;
    let part_size = PART_SIZE_BYTES.to_string();
    let env = Env::from_pairs([("ARCHIVE_BUCKET", bucket.as_str()), ("PART_SIZE_BYTES", part_size.as_str())]);
    let state = State::new(Config::from_env(&env).unwrap(), s3.clone());
    Fixture { s3, sqs, bucket, notifications, state }
}

impl Fixture {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: Option<&str>, content_encoding: Option<&str>) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .set_content_type(content_type.map(str::to_owned))
            .set_content_encoding(content_encoding.map(str::to_owned))
            .send()
            .await
            .unwrap();
    }

    /// Waits for `count` notifications and returns them as LocalStack wrote
    /// them, dropping the s3:TestEvent sent when notifications were configured.
    async fn notifications(&self, count: usize) -> Vec<Value> {
        let mut events = Vec::new();
        while events.len() < count {
            let bodies = common::receive_bodies(&self.sqs, &self.notifications, 1).await;
            assert!(!bodies.is_empty(), "timed out waiting for notifications; got {}", events.len());
            for body in bodies {
                let event: Value = serde_json::from_str(&body).unwrap();
                if event.get("Event").is_none() {
                    events.push(event);
                }
            }
        }
        events
    }

    async fn archive(&self, key: &str) -> aws_sdk_s3::operation::get_object::GetObjectOutput {
        self.s3.get_object().bucket(&self.bucket).key(format!("archive/{key}.gz")).send().await.unwrap()
    }

    async fn archive_keys(&self) -> Vec<String> {
        let output = self.s3.list_objects_v2().bucket(&self.bucket).prefix("archive/").send().await.unwrap();
        output.contents().iter().filter_map(|object| object.key().map(str::to_owned)).collect()
    }
}

async fn invoke(state: &State, event: Value) -> Result<Summary, compress_on_upload::CompressError> {
    handle(state, LambdaEvent::new(event, common::lambda_context())).await
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
    let mut out = Vec::new();
    decoder.read_to_end(&mut out).unwrap();
    out
}

/// Bytes that gzip cannot shrink much, so that a few MiB make several parts.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn archives_awkward_keys_from_real_notifications() {
    let fixture = fixture().await;
    let sources: Vec<(&str, Vec<u8>)> = vec![
        ("incoming/plain.csv", b"id,name\n1,Alpha\n2,Beta\n".to_vec()),
        ("incoming/with space.csv", b"id\n1\n".to_vec()),
        ("incoming/Q1 summary+final \u{e9}t\u{e9}.csv", b"id,amount\n7,12.5\n".to_vec()),
        ("incoming/\u{65e5}\u{672c}/\u{30c7}\u{30fc}\u{30bf}.csv", b"k\nv\n".to_vec()),
    ];
    for (key, body) in &sources {
        fixture.put(key, body.clone(), Some("text/csv"), None).await;
    }

    let events = fixture.notifications(sources.len()).await;
    for event in events {
        let summary = invoke(&fixture.state, event).await.unwrap();
        assert_eq!(summary, Summary { archived: 1, skipped: 0 });
    }

    for (key, body) in &sources {
        let archive = fixture.archive(key).await;
        assert_eq!(archive.content_encoding(), Some("gzip"), "{key}");
        assert_eq!(archive.content_type(), Some("text/csv"), "{key}");
        let metadata = archive.metadata().unwrap().clone();
        let source = fixture.s3.head_object().bucket(&fixture.bucket).key(*key).send().await.unwrap();
        assert_eq!(metadata.get("source-etag").map(String::as_str), source.e_tag().map(|e| e.trim_matches('"')), "{key}");
        assert_eq!(metadata.get("source-size"), Some(&body.len().to_string()), "{key}");
        let archived = archive.body.collect().await.unwrap().into_bytes();
        assert_eq!(gunzip(&archived), *body, "{key}");
    }
}

#[tokio::test]
async fn archives_object_larger_than_two_parts() {
    let fixture = fixture().await;
    let body = incompressible(2 * PART_SIZE_BYTES + 1024 * 1024 + 17);
    fixture.put("incoming/large.bin", body.clone(), None, None).await;

    let event = fixture.notifications(1).await.remove(0);
    let key = "incoming/large.bin";
    let object = match pipeline_shared::event::parse_notification(&event).unwrap() {
        pipeline_shared::Notification::Objects(mut objects) => objects.remove(0),
        other => panic!("unexpected {other:?}"),
    };
    let outcome = compress_on_upload::archive::archive_object(&fixture.state, &object).await.unwrap();
    let Outcome::Archived { parts, bytes_in, .. } = outcome else { panic!("not archived: {outcome:?}") };
    assert!(parts >= 3, "expected at least three parts, got {parts}");
    assert_eq!(bytes_in, body.len() as u64);

    let archive = fixture.archive(key).await;
    let source = fixture.s3.head_object().bucket(&fixture.bucket).key(key).send().await.unwrap();
    assert_eq!(archive.content_type(), source.content_type());
    let archived = archive.body.collect().await.unwrap().into_bytes();
    assert_eq!(gunzip(&archived), body);
    let uploads = fixture.s3.list_multipart_uploads().bucket(&fixture.bucket).send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "multipart uploads left open: {:?}", uploads.uploads());
}

#[tokio::test]
async fn skips_objects_that_must_not_be_compressed() {
    let fixture = fixture().await;
    fixture.put("incoming/r.csv.gz", gzip(b"id\n1\n"), None, None).await;
    fixture.put("incoming/blob", gzip(b"no suffix but gzip inside"), None, None).await;
    fixture.put("incoming/encoded.csv", b"id\n1\n".to_vec(), Some("text/csv"), Some("gzip")).await;
    fixture.put("incoming/2024/", Vec::new(), None, None).await;
    fixture.put("archive/incoming/old.csv", b"id\n1\n".to_vec(), None, None).await;

    let events = fixture.notifications(5).await;
    let mut skipped = 0;
    for event in events {
        let summary = invoke(&fixture.state, event).await.unwrap();
        assert_eq!(summary.archived, 0);
        skipped += summary.skipped;
    }
    assert_eq!(skipped, 5);
    assert_eq!(fixture.archive_keys().await, vec!["archive/incoming/old.csv".to_owned()]);
}

#[tokio::test]
async fn empty_object_becomes_valid_empty_gzip() {
    let fixture = fixture().await;
    fixture.put("incoming/empty.csv", Vec::new(), None, None).await;

    let event = fixture.notifications(1).await.remove(0);
    assert_eq!(invoke(&fixture.state, event).await.unwrap(), Summary { archived: 1, skipped: 0 });

    let archived = fixture.archive("incoming/empty.csv").await.body.collect().await.unwrap().into_bytes();
    assert!(!archived.is_empty());
    assert_eq!(gunzip(&archived), Vec::<u8>::new());
}

#[tokio::test]
async fn redelivered_event_writes_one_archive() {
    let fixture = fixture().await;
    fixture.put("incoming/twice.csv", b"id\n1\n2\n".to_vec(), None, None).await;
    let event = fixture.notifications(1).await.remove(0);

    assert_eq!(invoke(&fixture.state, event.clone()).await.unwrap(), Summary { archived: 1, skipped: 0 });
    let first = fixture.archive("incoming/twice.csv").await;
    assert_eq!(invoke(&fixture.state, event).await.unwrap(), Summary { archived: 0, skipped: 1 });
    let second = fixture.archive("incoming/twice.csv").await;

    assert_eq!(first.e_tag(), second.e_tag());
    assert_eq!(fixture.archive_keys().await, vec!["archive/incoming/twice.csv.gz".to_owned()]);
}

#[tokio::test]
async fn deleted_source_is_skipped() {
    let fixture = fixture().await;
    fixture.put("incoming/gone.csv", b"id\n1\n".to_vec(), None, None).await;
    let event = fixture.notifications(1).await.remove(0);
    fixture.s3.delete_object().bucket(&fixture.bucket).key("incoming/gone.csv").send().await.unwrap();

    assert_eq!(invoke(&fixture.state, event).await.unwrap(), Summary { archived: 0, skipped: 1 });
    assert!(fixture.archive_keys().await.is_empty());
}

#[tokio::test]
async fn deletes_source_only_when_configured() {
    let fixture = fixture().await;
    let env = Env::from_pairs([("ARCHIVE_BUCKET", fixture.bucket.as_str()), ("DELETE_SOURCE", "true")]);
    let state = State::new(Config::from_env(&env).unwrap(), fixture.s3.clone());
    fixture.put("incoming/delete-me.csv", b"id\n1\n".to_vec(), None, None).await;
    let event = fixture.notifications(1).await.remove(0);

    assert_eq!(invoke(&state, event).await.unwrap(), Summary { archived: 1, skipped: 0 });

    let source = fixture.s3.head_object().bucket(&fixture.bucket).key("incoming/delete-me.csv").send().await;
    assert!(source.is_err(), "source still exists");
    let archived = fixture.archive("incoming/delete-me.csv").await.body.collect().await.unwrap().into_bytes();
    assert_eq!(gunzip(&archived), b"id\n1\n");
}

#[tokio::test]
async fn missing_archive_bucket_fails_invocation() {
    let fixture = fixture().await;
    let env = Env::from_pairs([("ARCHIVE_BUCKET", "no-such-archive-bucket-for-tests")]);
    let state = State::new(Config::from_env(&env).unwrap(), fixture.s3.clone());
    fixture.put("incoming/nowhere.csv", b"id\n1\n".to_vec(), None, None).await;
    let event = fixture.notifications(1).await.remove(0);

    let error = invoke(&state, event).await.unwrap_err();
    assert!(error.is_retryable());
    assert!(error.to_string().contains("no-such-archive-bucket-for-tests"), "{error}");
}

/// Loads a sample event from `events/` with the test's bucket in place of the example one.
fn sample_event(name: &str, bucket: &str) -> Value {
    let path = format!("{}/events/compress-on-upload/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap().replace("example-input-bucket", bucket);
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn replays_sample_events() {
    let fixture = fixture().await;
    fixture.put("incoming/penguins/penguins.csv", b"species,island\nAdelie,Torgersen\n".to_vec(), None, None).await;
    fixture.put("reports/Q1 summary+final \u{e9}t\u{e9}.csv", b"id\n1\n".to_vec(), None, None).await;

    let cases = [
        ("put-plain-key.json", Summary { archived: 1, skipped: 0 }, Some("incoming/penguins/penguins.csv")),
        ("put-encoded-key.json", Summary { archived: 1, skipped: 0 }, Some("reports/Q1 summary+final \u{e9}t\u{e9}.csv")),
        ("test-event.json", Summary { archived: 0, skipped: 0 }, None),
    ];
    for (name, expected, key) in cases {
        let summary = invoke(&fixture.state, sample_event(name, &fixture.bucket)).await.unwrap();
        assert_eq!(summary, expected, "{name}");
        if let Some(key) = key {
            fixture.archive(key).await;
        }
    }
    let metadata: HashMap<String, String> =
        fixture.archive("incoming/penguins/penguins.csv").await.metadata().unwrap().clone();
    assert!(metadata.contains_key("source-etag"));
}

#[tokio::test]
async fn record_without_key_fails_with_field_name() {
    let fixture = fixture().await;
    let event = serde_json::json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name": fixture.bucket},"object":{}}}]});
    let error = invoke(&fixture.state, event).await.unwrap_err();
    assert_eq!(error.to_string(), "invalid S3 event: record 0 has no s3.object.key");
    assert!(!error.is_retryable());
}
