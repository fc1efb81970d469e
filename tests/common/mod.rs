//! Helpers shared by the integration tests: clients pointed at the local stack
//! that `make local-up` starts, and unique names so that tests run in parallel.
//!
//! Defaults match `scripts/local-stack.sh`; the variables below override them.
//! - `AWS_ENDPOINT_URL`: LocalStack, default `http://127.0.0.1:4566`.
//! - `PIPELINE_DATA_API_URL`: the local RDS Data API, default `http://127.0.0.1:8089`.
//! - `PIPELINE_PG_URL`: PostgreSQL behind it, default `postgres://postgres@127.0.0.1:54329/pipeline`.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;

/// Endpoint of LocalStack.
pub fn localstack_url() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".to_owned())
}

/// Endpoint of the local RDS Data API.
pub fn data_api_url() -> String {
    std::env::var("PIPELINE_DATA_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8089".to_owned())
}

/// Connection string of the PostgreSQL database behind the local Data API.
pub fn pg_url() -> String {
    std::env::var("PIPELINE_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/pipeline".to_owned())
}

/// Cluster ARN that the local Data API accepts; any well-formed ARN works.
pub const CLUSTER_ARN: &str = "arn:aws:rds:us-east-1:000000000000:cluster:local";
/// Secret ARN that the local Data API accepts.
pub const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:local";
/// Database name.
pub const DATABASE: &str = "pipeline";

/// SDK configuration for LocalStack: fixed test credentials and region.
pub async fn localstack_config() -> SdkConfig {
    sdk_config(&localstack_url()).await
}

/// SDK configuration for the local Data API.
pub async fn data_api_config() -> SdkConfig {
    sdk_config(&data_api_url()).await
}

async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "integration-tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// S3 client for LocalStack, with path-style addressing.
pub async fn s3() -> aws_sdk_s3::Client {
    pipeline_shared::aws::s3_client(&localstack_config().await)
}

/// SQS client for LocalStack.
pub async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&localstack_config().await)
}

/// RDS Data API client for the local Data API.
pub async fn rds_data() -> aws_sdk_rdsdata::Client {
    aws_sdk_rdsdata::Client::new(&data_api_config().await)
}

/// Direct connection to PostgreSQL, for checking rows by SQL.
pub async fn pg() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Returns a name that no other test of this run uses: `prefix-<pid>-<n>`,
/// lower case and valid as a bucket, queue or table name once `-` is mapped.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Creates a bucket with a unique name and returns the name.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
    let bucket = unique_name(prefix);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    bucket
}

/// Creates a queue with a unique name and returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    sqs.create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// Sends S3 notifications of `bucket` for object-created events to a new
/// queue, and returns the queue URL. The queue then receives exactly what
/// the notification would deliver to a function in AWS.
pub async fn notify_queue(
    s3: &aws_sdk_s3::Client,
    sqs: &aws_sdk_sqs::Client,
    bucket: &str,
) -> String {
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};

    let queue_url = create_queue(sqs, "notifications").await;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let queue_arn =
        attributes.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let configuration = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .queue_arn(queue_arn)
                .events(Event::S3ObjectCreated)
                .build()
                .unwrap(),
        )
        .build();
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(configuration)
        .send()
        .await
        .unwrap();
    queue_url
}

/// Receives messages from `queue_url` until `expected` have arrived or 30 s
/// have passed, deleting each, and returns their bodies.
pub async fn receive_bodies(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut bodies = Vec::new();
    while bodies.len() < expected && std::time::Instant::now() < deadline {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in output.messages.unwrap_or_default() {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
            bodies.push(message.body.unwrap());
        }
    }
    bodies
}

/// Builds a Lambda context for calling a handler directly.
pub fn lambda_context() -> lambda_runtime::Context {
    let mut context = lambda_runtime::Context::default();
    context.request_id = unique_name("request");
    // Fifteen minutes from now, as Lambda's maximum timeout would give.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    context.deadline = now_ms + 15 * 60 * 1000;
    context
}

/// Returns the path of a data file shipped by a Python package that
/// `scripts/python-env.sh` installs into `.local/venv`, for example
/// `palmerpenguins/data/penguins-raw.csv` or `vega_datasets/_data/cars.json`.
pub fn data_file(relative: &str) -> std::path::PathBuf {
    let venv_lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/venv/lib");
    for entry in std::fs::read_dir(&venv_lib)
        .unwrap_or_else(|error| panic!("{}: {error}; run make local-up", venv_lib.display()))
    {
        let candidate = entry.unwrap().path().join("site-packages").join(relative);
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "{relative} not found under {}; run scripts/python-env.sh",
        venv_lib.display()
    );
}
