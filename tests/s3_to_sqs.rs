//! s3-to-sqs against LocalStack: real uploads, the notification events
//! LocalStack delivers for them, and the messages that reach the queue,
//! checked against an independent parse by Python's csv and json modules.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use lambda_runtime::LambdaEvent;
use pipeline_shared::Env;
use pipeline_shared::envelope::{Envelope, Reject};
use s3_to_sqs::{Config, Response, State, handle};
use serde_json::{Value, json};

/// Placeholder bucket name in the sample events of `events/s3-to-sqs/`.
const SAMPLE_BUCKET: &str = "example-input-bucket";

struct Fixture {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    bucket: String,
    notifications: String,
    records_queue: String,
    state: State,
}

/// A bucket whose notifications go to one queue, and a function state that
/// sends records to another.
async fn fixture() -> Fixture {
    let s3 = common::s3().await;
    let sqs = common::sqs().await;
    let bucket = common::create_bucket(&s3, "s3-to-sqs").await;
    let notifications = common::notify_queue(&s3, &sqs, &bucket).await;
    let records_queue = common::create_queue(&sqs, "records").await;
    let env = Env::from_pairs([("QUEUE_URL", records_queue.as_str()), ("ARCHIVE_PREFIX", "archive/")]);
    let state = State { config: Config::from_env(&env).unwrap(), s3: s3.clone(), sqs: sqs.clone() };
    Fixture { s3, sqs, bucket, notifications, records_queue, state }
}

impl Fixture {
    async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3.put_object().bucket(&self.bucket).key(key).body(body.into()).send().await.unwrap();
    }

    /// Waits for the next object notification, skipping the s3:TestEvent.
    async fn notification(&self) -> Value {
        loop {
            let bodies = common::receive_bodies(&self.sqs, &self.notifications, 1).await;
            assert!(!bodies.is_empty(), "timed out waiting for a notification");
            for body in bodies {
                let event: Value = serde_json::from_str(&body).unwrap();
                if event.get("Event").is_none() {
                    return event;
                }
            }
        }
    }

    /// Uploads `body` and returns the notification LocalStack sends for it.
    async fn upload(&self, key: &str, body: Vec<u8>) -> Value {
        self.put(key, body).await;
        self.notification().await
    }

    async fn run(&self, event: Value) -> Response {
        handle(&self.state, LambdaEvent::new(event, common::lambda_context())).await.unwrap()
    }

    /// Receives `count` messages from the records queue and checks that no more arrived.
    async fn envelopes(&self, count: u64) -> Vec<Envelope> {
        let bodies = common::receive_bodies(&self.sqs, &self.records_queue, count as usize).await;
        assert_eq!(bodies.len() as u64, count, "messages received");
        let extra =
            self.sqs.receive_message().queue_url(&self.records_queue).wait_time_seconds(1).send().await.unwrap();
        assert!(extra.messages().is_empty(), "more messages than the summary counts");
        bodies.iter().map(|body| serde_json::from_str(body).unwrap()).collect()
    }
}

/// Records rebuilt from envelopes: position (line, or index for JSON
/// arrays) to (id, data). Fails on a duplicate position or id.
fn rebuild(envelopes: &[Envelope]) -> BTreeMap<u64, (String, Value)> {
    let mut records = BTreeMap::new();
    let mut ids = HashSet::new();
    for envelope in envelopes {
        for record in &envelope.records {
            let position = record.index.unwrap_or(record.line);
            assert_eq!(record.id, envelope.source.record_id(position), "id of record at {position}");
            assert!(ids.insert(record.id.clone()), "duplicate id {}", record.id);
            let data: Value = serde_json::from_str(record.data.get()).unwrap();
            assert!(records.insert(position, (record.id.clone(), data)).is_none(), "duplicate record at {position}");
        }
    }
    records
}

fn all_rejects(envelopes: &[Envelope]) -> Vec<Reject> {
    let mut rejects: Vec<Reject> = envelopes.iter().flat_map(|envelope| envelope.rejects.clone()).collect();
    rejects.sort_by_key(|reject| reject.line);
    rejects
}

/// Parses a file with Python's csv module (CSV) or json module (JSON
/// array) and returns (start line or index, record) pairs.
fn python_reference(path: &Path, format: &str, delimiter: &str) -> Vec<(u64, Value)> {
    let script = r#"
import csv, json, sys
path, fmt, delimiter = sys.argv[1:4]
out = []
if fmt == "csv":
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        line = 1
        for row in reader:
            out.append([line + 1, row])
            line = reader.line_num
else:
    with open(path, encoding="utf-8") as handle:
        out = [[index, element] for index, element in enumerate(json.load(handle))]
print(json.dumps(out))
"#;
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/venv/bin/python");
    let output =
        std::process::Command::new(python).arg("-c").arg(script).arg(path).arg(format).arg(delimiter).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let pairs: Vec<(u64, Value)> = serde_json::from_slice(&output.stdout).unwrap();
    pairs
}

fn assert_matches_reference(records: &BTreeMap<u64, (String, Value)>, reference: &[(u64, Value)]) {
    assert_eq!(records.len(), reference.len(), "record count");
    for (position, expected) in reference {
        let (_, data) = records.get(position).unwrap_or_else(|| panic!("no record at {position}"));
        assert_eq!(data, expected, "record at {position}");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn sqs_batch(bodies: &[&Value]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"eventSource":"aws:sqs","messageId":format!("m{i}"),"body":body.to_string()}))
        .collect();
    json!({"Records": records})
}

#[tokio::test]
async fn csv_files_match_python_csv() {
    let fixture = fixture().await;
    let files = [
        ("palmerpenguins/data/penguins-raw.csv", "incoming/penguins/penguins-raw.csv", false),
        ("vega_datasets/_data/seattle-weather.csv", "incoming/weather/seattle-weather.csv.gz", true),
        ("vega_datasets/_data/airports.csv", "incoming/airports/Q1 summary+final été.csv", false),
    ];
    for (file, key, compress) in files {
        let path = common::data_file(file);
        let bytes = std::fs::read(&path).unwrap();
        let event = fixture.upload(key, if compress { gzip(&bytes) } else { bytes }).await;
        let response = fixture.run(event).await;

        assert_eq!(response.objects.len(), 1, "{key}");
        let summary = &response.objects[0];
        assert_eq!(summary.key, key);
        assert_eq!((summary.format.as_str(), summary.rejected), ("csv", 0), "{key}");
        let envelopes = fixture.envelopes(summary.messages).await;
        assert!(
            envelopes.iter().all(|envelope| envelope.source.key == key && envelope.source.bucket == fixture.bucket)
        );
        let records = rebuild(&envelopes);
        assert_eq!(records.len() as u64, summary.records, "{key}");
        assert_matches_reference(&records, &python_reference(&path, "csv", ","));
    }
}

#[tokio::test]
async fn json_array_and_json_lines_match_python_json() {
    let fixture = fixture().await;
    let path = common::data_file("vega_datasets/_data/cars.json");
    let bytes = std::fs::read(&path).unwrap();
    let reference = python_reference(&path, "json", ",");

    let event = fixture.upload("incoming/cars/cars.json", bytes.clone()).await;
    let response = fixture.run(sqs_batch(&[&event])).await;
    let summary = &response.objects[0];
    assert_eq!((summary.format.as_str(), summary.records, summary.rejected), ("json", 406, 0));
    let records = rebuild(&fixture.envelopes(summary.messages).await);
    assert_matches_reference(&records, &reference);

    // The same cars as gzipped JSON Lines: positions are lines (index + 1).
    let elements: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    let lines: String = elements.iter().map(|element| format!("{element}\n")).collect();
    let event = fixture.upload("incoming/cars/cars.jsonl.gz", gzip(lines.as_bytes())).await;
    let response = fixture.run(event).await;
    let summary = &response.objects[0];
    assert_eq!((summary.format.as_str(), summary.records, summary.rejected), ("jsonl", 406, 0));
    let records = rebuild(&fixture.envelopes(summary.messages).await);
    let by_line: Vec<(u64, Value)> = reference.into_iter().map(|(index, value)| (index + 1, value)).collect();
    assert_matches_reference(&records, &by_line);
}

#[tokio::test]
async fn malformed_records_become_exact_rejects() {
    let fixture = fixture().await;
    let jsonl =
        "{\"id\":1,\"amount\":12345678901234567.89}\n{\"id\":2,\n[1,2]\n\n{\"id\":5,\"text\":\"x\u{ffff}\"}\n7\n";
    let event = fixture.upload("incoming/mixed/m.jsonl", jsonl.as_bytes().to_vec()).await;
    let response = fixture.run(event).await;
    let summary = &response.objects[0];
    assert_eq!((summary.records, summary.rejected), (2, 3));
    let envelopes = fixture.envelopes(summary.messages).await;

    let all: Vec<_> = envelopes.iter().flat_map(|envelope| &envelope.records).collect();
    let first = all.iter().find(|record| record.line == 1).unwrap();
    assert_eq!(first.data.get(), r#"{"id":1,"amount":12345678901234567.89}"#);
    let fifth = all.iter().find(|record| record.line == 5).unwrap();
    assert_eq!(fifth.data.get(), r#"{"id":5,"text":"x\uffff"}"#);
    let rejects: Vec<(u64, String, String)> =
        all_rejects(&envelopes).into_iter().map(|reject| (reject.line, reject.reason, reject.raw)).collect();
    assert_eq!(
        rejects,
        [
            (2, "invalid JSON: EOF while parsing an object at line 1 column 8".to_owned(), "{\"id\":2,".to_owned()),
            (3, "expected a JSON object, found an array".to_owned(), "[1,2]".to_owned()),
            (6, "expected a JSON object, found a number".to_owned(), "7".to_owned()),
        ]
    );

    let csv = b"id,comment,amount\n1,\"line one\nline two\",5\n2,\"a, b and \"\"c\"\"\",6\n3,short\n".to_vec();
    let event = fixture.upload("incoming/mixed/f2.csv", csv).await;
    let response = fixture.run(event).await;
    let envelopes = fixture.envelopes(response.objects[0].messages).await;
    let records = rebuild(&envelopes);
    assert_eq!(records[&2].1["comment"], "line one\nline two");
    assert_eq!(records[&4].1["comment"], "a, b and \"c\"");
    let rejects = all_rejects(&envelopes);
    assert_eq!(rejects.len(), 1);
    assert_eq!(
        (rejects[0].line, rejects[0].reason.as_str(), rejects[0].raw.as_str()),
        (5, "expected 3 fields, found 2", "3,short")
    );
    assert_eq!(rejects[0].id, envelopes[0].source.record_id(5));
}

#[tokio::test]
async fn redelivery_yields_the_same_ids() {
    let fixture = fixture().await;
    let bytes = std::fs::read(common::data_file("palmerpenguins/data/penguins-raw.csv")).unwrap();
    let event = fixture.upload("incoming/penguins/again.csv", bytes).await;

    let mut runs = Vec::new();
    for _ in 0..2 {
        let response = fixture.run(event.clone()).await;
        let records = rebuild(&fixture.envelopes(response.objects[0].messages).await);
        runs.push(records.into_iter().map(|(line, (id, _))| (line, id)).collect::<Vec<_>>());
    }
    assert_eq!(runs[0].len(), 344);
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn failures_and_skips_from_real_events() {
    let fixture = fixture().await;
    let event = fixture.upload("incoming/broken/not-array.json", b"{\"a\":1}".to_vec()).await;
    let error = handle(&fixture.state, LambdaEvent::new(event, common::lambda_context())).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "s3://{}/incoming/broken/not-array.json: cannot parse as json at line 1: a JSON array file must start with '[', found '{{'",
            fixture.bucket
        )
    );

    let event = fixture.upload("elsewhere/x.csv", b"a\n1\n".to_vec()).await;
    let error = handle(&fixture.state, LambdaEvent::new(event, common::lambda_context())).await.unwrap_err();
    assert!(matches!(error, s3_to_sqs::S3ToSqsError::DatasetNotMatched { .. }), "{error:?}");

    let archive = fixture.upload("archive/incoming/penguins/p.csv.gz", gzip(b"a\n1\n")).await;
    let folder = fixture.upload("incoming/penguins/", Vec::new()).await;
    let response = fixture.run(sqs_batch(&[&archive, &folder])).await;
    assert_eq!((response.objects.len(), response.skipped), (0, 2));
    fixture.envelopes(0).await;
}

/// Replays one sample event with the test's bucket in place of the placeholder.
async fn replay(fixture: &Fixture, file: &str) -> Response {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/s3-to-sqs").join(file);
    let text = std::fs::read_to_string(&path).unwrap().replace(SAMPLE_BUCKET, &fixture.bucket);
    fixture.run(serde_json::from_str(&text).unwrap()).await
}

#[tokio::test]
async fn sample_events_replay() {
    let fixture = fixture().await;
    let penguins = std::fs::read(common::data_file("palmerpenguins/data/penguins-raw.csv")).unwrap();
    let cars = std::fs::read(common::data_file("vega_datasets/_data/cars.json")).unwrap();
    let airports = std::fs::read(common::data_file("vega_datasets/_data/airports.csv")).unwrap();
    fixture.put("incoming/penguins/penguins-raw.csv", penguins).await;
    fixture
        .put("incoming/reports/Q1 summary+final été.csv", b"quarter,total\nQ1,12345678901234567.89\n".to_vec())
        .await;
    fixture.put("incoming/cars/cars.json", cars).await;
    fixture.put("incoming/airports/airports.csv.gz", gzip(&airports)).await;

    let cases = [
        ("put.json", Some(("incoming/penguins/penguins-raw.csv", "penguins", 344))),
        ("put-encoded-key.json", Some(("incoming/reports/Q1 summary+final été.csv", "reports", 1))),
        ("test-event.json", None),
        ("sns.json", Some(("incoming/cars/cars.json", "cars", 406))),
        ("eventbridge.json", Some(("incoming/airports/airports.csv.gz", "airports", 3376))),
    ];
    for (file, expected) in cases {
        let response = replay(&fixture, file).await;
        match expected {
            None => assert_eq!(response, Response::default(), "{file}"),
            Some((key, dataset, records)) => {
                assert_eq!(response.objects.len(), 1, "{file}");
                let summary = &response.objects[0];
                assert_eq!(
                    (summary.key.as_str(), summary.dataset.as_str(), summary.records, summary.rejected),
                    (key, dataset, records, 0),
                    "{file}"
                );
                let envelopes = fixture.envelopes(summary.messages).await;
                assert_eq!(rebuild(&envelopes).len() as u64, records, "{file}");
            }
        }
    }
}
