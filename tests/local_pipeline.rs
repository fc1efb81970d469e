//! Integration tests of `local-pipeline`: the wiring read from the real
//! template.yaml, and the triggers run against LocalStack with a fake
//! function endpoint served by the test on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use local_pipeline::events::EventShape;
use local_pipeline::run::RunOptions;
use local_pipeline::setup::EventQueues;
use local_pipeline::{LocalNaming, Wiring, run, setup, watch_env};
use serde_json::{Value, json};

fn repository_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn real_wiring() -> Wiring {
    Wiring::load(
        &repository_root().join("template.yaml"),
        &LocalNaming::default(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------
// The real template
// ---------------------------------------------------------------------------

#[test]
fn template_rules_route_watched_uploads() {
    let wiring = real_wiring();
    let bucket = &wiring.bucket("InputBucket").expect("InputBucket").name;
    let event = |key: &str| {
        json!({"source": "aws.s3", "detail-type": "Object Created",
               "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}}})
    };

    for binary in ["compress-on-upload", "s3-to-sqs"] {
        let function = wiring
            .function(binary)
            .unwrap_or_else(|| panic!("{binary} missing"));
        assert_eq!(function.rules.len(), 1, "{binary} has one rule");
        let pattern = &function.rules[0].pattern;
        assert!(
            local_pipeline::pattern::matches(pattern, &event("incoming/penguins/p.csv")),
            "{binary} takes uploads"
        );
        assert!(
            !local_pipeline::pattern::matches(
                pattern,
                &event("archive/incoming/penguins/p.csv.gz")
            ),
            "{binary} skips archive copies"
        );
    }
}

#[test]
fn template_records_queue_has_redrive() {
    let wiring = real_wiring();
    let queue = wiring.queue("RecordsQueue").expect("RecordsQueue");
    let dead_letter = wiring
        .queue("RecordsDeadLetterQueue")
        .expect("RecordsDeadLetterQueue");
    let policy = queue
        .redrive_policy
        .as_ref()
        .expect("RecordsQueue has a redrive policy");
    assert_eq!(policy.dead_letter_target_arn, dead_letter.arn);
    assert!(policy.max_receive_count >= 1);
    assert!(
        queue.visibility_timeout_secs.is_some(),
        "RecordsQueue sets VisibilityTimeout"
    );
}

#[test]
fn template_transform_polls_records_queue() {
    let wiring = real_wiring();
    let transform = wiring
        .function("transform-to-rds")
        .expect("transform-to-rds");
    assert_eq!(transform.sqs_sources.len(), 1);
    let source = &transform.sqs_sources[0];
    assert_eq!(source.queue_arn, wiring.queue("RecordsQueue").unwrap().arn);
    assert!(source.report_batch_item_failures);
    assert!(source.batch_size >= 1);
}

#[test]
fn watch_env_matches_template() {
    for function in &real_wiring().functions {
        let manifest = repository_root()
            .join("functions")
            .join(&function.binary)
            .join("Cargo.toml");
        let actual = watch_env::manifest_environment(&manifest).unwrap();
        let differences =
            watch_env::differences(&watch_env::expected_environment(function), &actual);
        assert!(
            differences.is_empty(),
            "{}: {differences:#?}\nrun `local-pipeline env` for the expected section",
            manifest.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Triggers against LocalStack, with a fake function endpoint
// ---------------------------------------------------------------------------

/// A template with two rule targets on different prefixes and one SQS
/// source whose queue has a short visibility timeout and a dead-letter queue.
const TEST_TEMPLATE: &str = r#"
Parameters:
  Receives: {Type: Number, Default: 2}
Resources:
  InputBucket:
    Type: AWS::S3::Bucket
  RecordsDeadLetterQueue:
    Type: AWS::SQS::Queue
  RecordsQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 2
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt RecordsDeadLetterQueue.Arn
        maxReceiveCount: !Ref Receives
  Uploads:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: uploads}}
    Properties:
      Events:
        Created:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.s3]
              detail-type: [Object Created]
              detail: {bucket: {name: [!Ref InputBucket]}, object: {key: [{prefix: incoming/}]}}
  Others:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: others}}
    Properties:
      Events:
        Created:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.s3]
              detail-type: [Object Created]
              detail: {bucket: {name: [!Ref InputBucket]}, object: {key: [{prefix: other/}]}}
  Writer:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: writer}}
    Properties:
      Events:
        Batch:
          Type: SQS
          Properties:
            Queue: !GetAtt RecordsQueue.Arn
            BatchSize: 10
            MaximumBatchingWindowInSeconds: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
"#;

/// One invocation that the fake endpoint received.
#[derive(Debug, Clone)]
struct Call {
    function: String,
    payload: Value,
}

/// How the fake function responds: status and body per call, given the
/// calls so far (including this one).
type Behaviour = Arc<dyn Fn(&[Call]) -> (StatusCode, Value) + Send + Sync>;

#[derive(Clone)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    behaviour: Behaviour,
}

async fn invoke(
    State(fake): State<Fake>,
    UrlPath(function): UrlPath<String>,
    Json(payload): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let calls = {
        let mut calls = fake.calls.lock().unwrap();
        calls.push(Call { function, payload });
        calls.clone()
    };
    let (status, body) = (fake.behaviour)(&calls);
    (status, Json(body))
}

/// Serves the Lambda Invoke API on 127.0.0.1 and returns its URL and the
/// list of calls it receives.
async fn serve_fake(behaviour: Behaviour) -> (String, Arc<Mutex<Vec<Call>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        calls: calls.clone(),
        behaviour,
    };
    let app = axum::Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

/// Sets up a fresh stack from the test template and returns its wiring.
async fn test_stack() -> (Wiring, LocalNaming) {
    let naming = LocalNaming {
        stack_name: common::unique_name("lp"),
        sqs_endpoint: common::localstack_url(),
        ..LocalNaming::default()
    };
    let template: serde_yaml::Value = serde_yaml::from_str(TEST_TEMPLATE).unwrap();
    let wiring = Wiring::from_value(&template, &naming).unwrap();
    setup::setup(&wiring, &naming, &common::s3().await, &common::sqs().await)
        .await
        .unwrap();
    (wiring, naming)
}

async fn run_until_drained(wiring: &Wiring, naming: &LocalNaming, invoke_url: &str) -> run::Stats {
    let options = RunOptions {
        invoke_url: invoke_url.to_owned(),
        invoke_timeout: Duration::from_secs(30),
        event_shape: EventShape::Eventbridge,
        retry_delay_secs: 1,
        max_concurrency: 1,
        drain_timeout: Some(Duration::from_secs(90)),
        quiet_period: Duration::from_secs(3),
        journal: None,
    };
    run::run(wiring, naming, common::sqs().await, options)
        .await
        .unwrap()
}

/// Receives and deletes every visible message of a queue, until a receive
/// returns none, and returns the bodies sorted.
async fn queue_bodies(url: &str) -> Vec<String> {
    let sqs = common::sqs().await;
    let mut bodies = Vec::new();
    loop {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
            bodies.push(message.body.unwrap());
        }
    }
    bodies.sort();
    bodies
}

async fn send(queue_url: &str, bodies: &[&str]) {
    let sqs = common::sqs().await;
    for body in bodies {
        sqs.send_message()
            .queue_url(queue_url)
            .message_body(*body)
            .send()
            .await
            .unwrap();
    }
}

fn bodies_of(call: &Call) -> Vec<String> {
    call.payload["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn setup_applies_redrive_and_notifications() {
    let (wiring, naming) = test_stack().await;
    let sqs = common::sqs().await;
    let records = wiring.queue("RecordsQueue").unwrap();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&records.url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "2");
    let policy: Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(
        policy["deadLetterTargetArn"],
        wiring.queue("RecordsDeadLetterQueue").unwrap().arn.as_str()
    );
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "2");

    let bucket = &wiring.bucket("InputBucket").unwrap().name;
    let notifications = common::s3()
        .await
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let prefixes: Vec<String> = notifications
        .queue_configurations()
        .iter()
        .flat_map(|c| {
            c.filter()
                .and_then(|f| f.key())
                .map(|k| k.filter_rules().to_vec())
                .unwrap_or_default()
        })
        .filter_map(|rule| rule.value)
        .collect();
    assert_eq!(prefixes, vec!["incoming/".to_owned(), "other/".to_owned()]);

    // Running setup again changes nothing and does not fail.
    setup::setup(&wiring, &naming, &common::s3().await, &sqs)
        .await
        .unwrap();
}

#[tokio::test]
async fn upload_reaches_only_matching_function() {
    let (wiring, naming) = test_stack().await;
    let (url, calls) =
        serve_fake(Arc::new(|_: &[Call]| (StatusCode::OK, json!({"ok": true})))).await;
    let bucket = wiring.bucket("InputBucket").unwrap().name.clone();
    let key = "incoming/airports/US airports — été.csv";
    common::s3()
        .await
        .put_object()
        .bucket(&bucket)
        .key(key)
        .body(b"iata,name\nSEA,Seattle\n".to_vec().into())
        .send()
        .await
        .unwrap();
    common::s3()
        .await
        .put_object()
        .bucket(&bucket)
        .key("unwatched/x.csv")
        .body(b"a\n".to_vec().into())
        .send()
        .await
        .unwrap();

    let stats = run_until_drained(&wiring, &naming, &url).await;

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].function, "uploads");
    let event = &calls[0].payload;
    assert_eq!(event["source"], "aws.s3");
    assert_eq!(event["detail-type"], "Object Created");
    assert_eq!(event["detail"]["bucket"]["name"], bucket.as_str());
    assert_eq!(event["detail"]["object"]["key"], key);
    assert_eq!(event["detail"]["object"]["size"], 22);
    assert_eq!(stats.invocations_ok, 1);
    assert!(
        queue_bodies(&EventQueues::new(&naming).url)
            .await
            .is_empty(),
        "notification deleted"
    );
}

#[tokio::test]
async fn failed_delivery_is_retried() {
    let (wiring, naming) = test_stack().await;
    // The first call fails, later ones succeed.
    let (url, calls) = serve_fake(Arc::new(|calls: &[Call]| {
        if calls.len() == 1 {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"errorType": "Transient", "errorMessage": "try again"}),
            )
        } else {
            (StatusCode::OK, json!({}))
        }
    }))
    .await;
    let bucket = wiring.bucket("InputBucket").unwrap().name.clone();
    common::s3()
        .await
        .put_object()
        .bucket(&bucket)
        .key("incoming/d/a.csv")
        .body(b"a\n".to_vec().into())
        .send()
        .await
        .unwrap();

    let stats = run_until_drained(&wiring, &naming, &url).await;

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(
        calls[1].payload["detail"]["object"]["key"],
        "incoming/d/a.csv"
    );
    assert_eq!((stats.invocations_failed, stats.invocations_ok), (1, 1));
}

#[tokio::test]
async fn batch_deletes_only_successful_messages() {
    let (wiring, naming) = test_stack().await;
    // Messages whose body starts with "fail" are reported as failures.
    let (url, calls) = serve_fake(Arc::new(|calls: &[Call]| {
        let records = calls.last().unwrap().payload["Records"]
            .as_array()
            .unwrap()
            .clone();
        let failures: Vec<Value> = records
            .iter()
            .filter(|r| r["body"].as_str().unwrap().starts_with("fail"))
            .map(|r| json!({"itemIdentifier": r["messageId"]}))
            .collect();
        (StatusCode::OK, json!({"batchItemFailures": failures}))
    }))
    .await;
    let records = wiring.queue("RecordsQueue").unwrap().clone();
    let dead_letter = wiring.queue("RecordsDeadLetterQueue").unwrap().clone();
    send(&records.url, &["ok-1", "ok-2", "fail-1", "fail-2"]).await;

    let stats = run_until_drained(&wiring, &naming, &url).await;

    let calls = calls.lock().unwrap().clone();
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for call in &calls {
        assert_eq!(call.function, "writer");
        for record in call.payload["Records"].as_array().unwrap() {
            assert_eq!(record["eventSource"], "aws:sqs");
            assert_eq!(record["eventSourceARN"], records.arn.as_str());
            assert!(
                record["receiptHandle"]
                    .as_str()
                    .is_some_and(|h| !h.is_empty())
            );
            assert!(
                record["attributes"]["ApproximateReceiveCount"]
                    .as_str()
                    .is_some()
            );
        }
        for body in bodies_of(call) {
            *deliveries.entry(body).or_default() += 1;
        }
    }
    assert_eq!(
        deliveries["ok-1"], 1,
        "a successful message is deleted after its first delivery"
    );
    assert_eq!(deliveries["ok-2"], 1);
    assert_eq!(
        deliveries["fail-1"], 2,
        "a failed message returns until maxReceiveCount (2)"
    );
    assert_eq!(deliveries["fail-2"], 2);
    assert_eq!(stats.messages_deleted, 2);
    assert_eq!(stats.messages_failed, 4);
    assert_eq!(
        queue_bodies(&dead_letter.url).await,
        vec!["fail-1".to_owned(), "fail-2".to_owned()]
    );
    assert!(queue_bodies(&records.url).await.is_empty());
}

#[tokio::test]
async fn failed_invocation_deletes_nothing() {
    let (wiring, naming) = test_stack().await;
    // An invocation with messages on their first receive returns a function
    // error; the retry succeeds, however SQS splits the messages into batches.
    let (url, calls) = serve_fake(Arc::new(|calls: &[Call]| {
        let records = calls.last().unwrap().payload["Records"]
            .as_array()
            .unwrap()
            .clone();
        if records
            .iter()
            .any(|r| r["attributes"]["ApproximateReceiveCount"] == "1")
        {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"errorType": "Unhandled", "errorMessage": "boom"}),
            )
        } else {
            (StatusCode::OK, json!({"batchItemFailures": []}))
        }
    }))
    .await;
    let records = wiring.queue("RecordsQueue").unwrap().clone();
    send(&records.url, &["a", "b"]).await;

    let stats = run_until_drained(&wiring, &naming, &url).await;

    let calls = calls.lock().unwrap().clone();
    let mut delivered: Vec<String> = calls.iter().flat_map(bodies_of).collect();
    delivered.sort();
    assert_eq!(
        delivered,
        vec!["a", "a", "b", "b"],
        "both messages return after the failed invocation"
    );
    let second_receives = calls
        .iter()
        .flat_map(|call| call.payload["Records"].as_array().unwrap().clone());
    let second_receives = second_receives
        .filter(|r| r["attributes"]["ApproximateReceiveCount"] == "2")
        .count();
    assert_eq!(second_receives, 2, "each message came back once");
    assert_eq!(stats.messages_deleted, 2);
    assert_eq!(stats.messages_failed, 2);
    assert!(
        queue_bodies(&wiring.queue("RecordsDeadLetterQueue").unwrap().url)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn invalid_batch_response_fails_whole_batch() {
    let (wiring, naming) = test_stack().await;
    // An unknown itemIdentifier makes Lambda treat the whole batch as failed.
    let (url, calls) = serve_fake(Arc::new(|calls: &[Call]| {
        if calls.len() == 1 {
            (
                StatusCode::OK,
                json!({"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}),
            )
        } else {
            (StatusCode::OK, json!(null))
        }
    }))
    .await;
    let records = wiring.queue("RecordsQueue").unwrap().clone();
    send(&records.url, &["only"]).await;

    run_until_drained(&wiring, &naming, &url).await;

    let delivered: Vec<String> = calls.lock().unwrap().iter().flat_map(bodies_of).collect();
    assert_eq!(delivered, vec!["only", "only"]);
}
