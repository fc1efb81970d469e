//! Helpers of the transform-to-rds integration tests: a PostgreSQL schema per
//! test, mappings pointed into it, handler state and SQS events.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use pipeline_shared::Env;
use pipeline_shared::envelope::Source;
use tokio::sync::OnceCell;
use transform_to_rds::mapping::Mappings;
use transform_to_rds::{Config, State};

use crate::common;

/// A schema of its own, with a rejects table shaped like the migrated one.
pub struct TestSchema {
    /// Schema name.
    pub name: String,
    /// Direct connection for set-up and checks.
    pub pg: tokio_postgres::Client,
}

impl TestSchema {
    /// Creates `tr_<pid>_<n>` and `<schema>.rejected_records`, after making
    /// sure that the migrations are applied (the rejects table is copied from
    /// `public.rejected_records`).
    pub async fn new() -> Self {
        migrate_public().await;
        let name = common::unique_name("tr").replace('-', "_");
        let pg = common::pg().await;
        pg.batch_execute(&format!(
            "CREATE SCHEMA {name}; CREATE TABLE {name}.rejected_records (LIKE public.rejected_records INCLUDING ALL);"
        ))
        .await
        .unwrap();
        Self { name, pg }
    }

    /// Runs SQL statements in the schema (the search path is set to it).
    pub async fn execute(&self, sql: &str) {
        self.pg.batch_execute(&format!("SET search_path TO {}; {sql}; RESET search_path", self.name)).await.unwrap();
    }

    /// Returns the rows of `sql` with every column cast to text by the query.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.pg.batch_execute(&format!("SET search_path TO {}", self.name)).await.unwrap();
        let rows = self.pg.query(sql, &[]).await.unwrap();
        self.pg.batch_execute("RESET search_path").await.unwrap();
        rows.iter().map(|row| (0..row.len()).map(|i| row.get::<_, Option<String>>(i)).collect()).collect()
    }

    /// Counts the rows of a table of the schema.
    pub async fn count(&self, table: &str) -> i64 {
        let row = self.pg.query_one(&format!("SELECT count(*) FROM {}.{table}", self.name), &[]).await.unwrap();
        row.get(0)
    }

    /// Creates a copy of a migrated table of `public` in the schema.
    pub async fn copy_table(&self, table: &str) {
        self.pg.batch_execute(&format!("CREATE TABLE {0}.{table} (LIKE public.{table} INCLUDING ALL)", self.name)).await.unwrap();
    }

    /// Reads the repository's mapping of `dataset` and points it at this schema's table.
    pub fn repository_mapping(&self, dataset: &str) -> (String, String) {
        let path = format!("{}/mappings/{dataset}.toml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let table_line = text.lines().find(|line| line.starts_with("table = ")).unwrap().to_owned();
        let table = table_line.trim_start_matches("table = ").trim_matches('"');
        (format!("{dataset}.toml"), text.replacen(&table_line, &format!("table = \"{}.{table}\"", self.name), 1))
    }

    /// Handler state whose rejects table is this schema's, with `mappings`
    /// ((file name, TOML) pairs) and extra environment variables.
    pub async fn state(&self, mappings: Vec<(String, String)>, extra_env: &[(&str, &str)]) -> State {
        self.state_for(common::CLUSTER_ARN, mappings, extra_env).await
    }

    /// Like [`TestSchema::state`], for another cluster ARN (fault injection is per ARN).
    pub async fn state_for(&self, cluster_arn: &str, mappings: Vec<(String, String)>, extra_env: &[(&str, &str)]) -> State {
        let rejects_table = format!("{}.rejected_records", self.name);
        let mut pairs = vec![
            ("DB_CLUSTER_ARN", cluster_arn),
            ("DB_SECRET_ARN", common::SECRET_ARN),
            ("DB_NAME", common::DATABASE),
            ("REJECTS_TABLE", rejects_table.as_str()),
            ("RETRY_BASE_DELAY_MS", "20"),
            ("RETRY_MAX_DELAY_MS", "200"),
        ];
        pairs.extend_from_slice(extra_env);
        let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
        let mappings = Mappings::from_files(mappings).unwrap();
        State::with_mappings(config, common::rds_data().await, mappings)
    }
}

/// Applies the repository's migrations to `public` once per test process.
pub async fn migrate_public() {
    static MIGRATED: OnceCell<()> = OnceCell::const_new();
    MIGRATED
        .get_or_init(|| async {
            drop_stale_schemas().await;
            let files = pipeline_admin::migrate::load_dir(&migrations_dir()).unwrap();
            pipeline_admin::migrate::migrate(&database(common::CLUSTER_ARN).await, &files, "schema_migrations").await.unwrap();
        })
        .await;
}

/// Drops the `tr_<pid>_<n>` schemas of earlier test runs whose process has
/// ended; a failed run's schema stays until then, for inspection.
async fn drop_stale_schemas() {
    let pg = common::pg().await;
    let rows = pg.query("SELECT nspname FROM pg_namespace WHERE nspname ~ '^tr_[0-9]+_[0-9]+$'", &[]).await.unwrap();
    for row in rows {
        let schema: String = row.get(0);
        let pid = schema.split('_').nth(1).unwrap_or_default();
        if !std::path::Path::new("/proc").join(pid).exists() {
            pg.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
        }
    }
}

/// Returns the repository's migrations folder.
pub fn migrations_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// Data API target for the admin functions.
pub async fn database(cluster_arn: &str) -> transform_to_rds::db::Database {
    transform_to_rds::db::Database {
        client: common::rds_data().await,
        cluster_arn: cluster_arn.to_owned(),
        secret_arn: common::SECRET_ARN.to_owned(),
        database: common::DATABASE.to_owned(),
    }
}

/// Builds an SQS event of (message id, body) pairs, shaped as Lambda delivers it.
pub fn sqs_event(messages: &[(&str, &str)]) -> LambdaEvent<SqsEvent> {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id, "receiptHandle": format!("handle-{id}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:records", "awsRegion": "us-east-1"
            })
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    LambdaEvent::new(event, common::lambda_context())
}

/// Converts the response to JSON, to compare it with the exact expected document.
pub fn response_json(response: &SqsBatchResponse) -> serde_json::Value {
    serde_json::to_value(response).unwrap()
}

/// Builds the source object of a test.
pub fn source(key: &str) -> Source {
    Source { bucket: "test-input".into(), key: key.into(), version_id: None, etag: Some("etag-1".into()) }
}

/// Builds an envelope body of records given as (line, JSON object text).
/// The text goes in unchanged, as s3-to-sqs keeps each record's text.
pub fn envelope_body(source: &Source, dataset: &str, records: &[(u64, &str)]) -> String {
    let records: Vec<String> =
        records.iter().map(|(line, data)| format!(r#"{{"id":"{}","line":{line},"data":{data}}}"#, source.record_id(*line))).collect();
    let source = serde_json::to_string(source).unwrap();
    format!(r#"{{"version":1,"source":{source},"dataset":"{dataset}","format":"jsonl","records":[{}]}}"#, records.join(","))
}

/// Queues faults in the local Data API for `cluster_arn`: `POST /_local/faults`.
pub fn inject_faults(cluster_arn: &str, error: &str, count: u32) {
    let body = serde_json::json!({"error": error, "count": count, "resourceArn": cluster_arn}).to_string();
    local_request("POST", "/_local/faults", &body);
}

/// Clears the faults still queued for `cluster_arn`: `DELETE /_local/faults`.
pub fn clear_faults(cluster_arn: &str) {
    // ARNs contain only characters that are safe in a query string except ':'.
    local_request("DELETE", &format!("/_local/faults?resourceArn={}", cluster_arn.replace(':', "%3A")), "");
}

/// Sends one HTTP/1.1 request to the local Data API and checks for a 2xx status.
fn local_request(method: &str, path: &str, body: &str) {
    let address = common::data_api_url().trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 2"), "{method} {path} failed: {response}");
}
