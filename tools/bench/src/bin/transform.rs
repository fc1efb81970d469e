//! Benchmark of transform-to-rds's writer: rows per second written through
//! the local Data API, beside, in the same run,
//!
//! 1. a direct multi-row INSERT into PostgreSQL with tokio-postgres (the
//!    limit: no HTTP, no JSON), with the same message size and concurrency;
//! 2. a typical Python handler: boto3 `execute_statement` once per record
//!    (`tools/bench/python/per_record_insert.py`).
//!
//! Rows are synthetic (integer, decimal, text, date and timestamp columns),
//! `BENCH_TRANSFORM_ROWS` (default 20000) in messages of 1000 records, four
//! messages at a time like the function's default `MESSAGE_CONCURRENCY`.
//! The Python handler writes `BENCH_TRANSFORM_PYTHON_ROWS` (default 2000),
//! because it is slow; rows per second compare all the same.
//!
//! Run with `cargo run --release -p pipeline-bench --bin transform` while
//! `make local-up` is running and after `make migrate`.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_rdsdata::config::{BehaviorVersion, Credentials, Region};
use pipeline_bench::{median, runs, venv_python};
use pipeline_shared::envelope::{Envelope, Source};
use tokio::task::JoinSet;
use transform_to_rds::db::Database;
use transform_to_rds::mapping::Mapping;
use transform_to_rds::writer::{DATA_API_MAX_REQUEST_BYTES, RetryPolicy, WriteOptions, Writer};

const SCHEMA: &str = "bench_transform";
const RECORDS_PER_MESSAGE: usize = 1000;
const CONCURRENCY: usize = 4;
const CLUSTER_ARN: &str = "arn:aws:rds:us-east-1:000000000000:cluster:local";
const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:local";

const MAPPING: &str = r#"
dataset = "bench"
table = "bench_transform.rows"

[[columns]]
name = "record_id"
computed = "record_id"

[[columns]]
name = "n"
source = "n"
type = "integer"

[[columns]]
name = "amount"
source = "amount"
type = "numeric"

[[columns]]
name = "label"
source = "label"

[[columns]]
name = "day"
source = "day"
type = "date"

[[columns]]
name = "created_at"
source = "created_at"
type = "timestamp"
"#;

#[tokio::main]
async fn main() {
    let rows: usize = env_number("BENCH_TRANSFORM_ROWS", 20_000);
    let python_rows: usize = env_number("BENCH_TRANSFORM_PYTHON_ROWS", 2_000);
    let runs = runs(3);
    let pg_url = std::env::var("PIPELINE_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/pipeline".to_owned());
    let data_api_url = std::env::var("PIPELINE_DATA_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8089".to_owned());

    let pg = connect(&pg_url).await;
    pg.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {SCHEMA};
         DROP TABLE IF EXISTS {SCHEMA}.rows;
         CREATE TABLE {SCHEMA}.rows (record_id text PRIMARY KEY, n integer NOT NULL, amount numeric(12,2) NOT NULL,
             label text NOT NULL, day date NOT NULL, created_at timestamp NOT NULL);
         CREATE TABLE IF NOT EXISTS {SCHEMA}.rejected_records (LIKE public.rejected_records INCLUDING ALL);"
    ))
    .await
    .unwrap_or_else(|error| panic!("set-up failed ({error}); run make local-up and make migrate first"));

    let bodies = generate_bodies(rows);
    let writer = Arc::new(writer(&data_api_url).await);
    let mapping = Arc::new(Mapping::parse("bench.toml", MAPPING).unwrap());

    let mut writer_rates = Vec::new();
    let mut direct_rates = Vec::new();
    let mut python_rates = Vec::new();
    for run in 1..=runs {
        eprintln!("run {run}/{runs}: writer through the Data API, {rows} rows");
        truncate(&pg).await;
        let elapsed = write_with_writer(&writer, &mapping, &bodies).await;
        assert_eq!(count(&pg).await, rows as i64, "the writer wrote every row");
        writer_rates.push(rows as f64 / elapsed.as_secs_f64());

        eprintln!("run {run}/{runs}: multi-row INSERT with tokio-postgres, {rows} rows");
        truncate(&pg).await;
        let elapsed = write_direct(&pg_url, &bodies).await;
        assert_eq!(count(&pg).await, rows as i64, "the direct INSERT wrote every row");
        direct_rates.push(rows as f64 / elapsed.as_secs_f64());

        eprintln!("run {run}/{runs}: Python, execute_statement per record, {python_rows} rows");
        truncate(&pg).await;
        let (written, seconds) = write_with_python(&data_api_url, &bodies, python_rows);
        assert_eq!(count(&pg).await, written as i64, "the Python handler wrote what it reported");
        python_rates.push(written as f64 / seconds);
    }

    let writer_rate = median(&mut writer_rates);
    let direct_rate = median(&mut direct_rates);
    let python_rate = median(&mut python_rates);
    println!("transform-to-rds writer benchmark: median of {runs} runs, {rows} rows in messages of {RECORDS_PER_MESSAGE}, {CONCURRENCY} at a time");
    println!("  writer (BatchExecuteStatement via the local Data API) {writer_rate:>10.0} rows/s");
    println!("  direct multi-row INSERT (tokio-postgres, the limit)   {direct_rate:>10.0} rows/s");
    println!("  Python execute_statement per record ({python_rows} rows)    {python_rate:>10.0} rows/s");
    println!("  writer / limit  = {:.2} (target >= 0.5)", writer_rate / direct_rate);
    println!("  writer / Python = {:.1} (target >= 20)", writer_rate / python_rate);
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

/// SQS message bodies of synthetic records, as s3-to-sqs would send them.
fn generate_bodies(rows: usize) -> Vec<String> {
    let source = Source { bucket: "bench".into(), key: "incoming/bench.csv".into(), version_id: None, etag: Some("bench".into()) };
    let source_json = serde_json::to_string(&source).unwrap();
    (0..rows)
        .collect::<Vec<_>>()
        .chunks(RECORDS_PER_MESSAGE)
        .map(|positions| {
            let records: Vec<String> = positions
                .iter()
                .map(|&i| {
                    let line = i as u64 + 2;
                    format!(
                        r#"{{"id":"{}","line":{line},"data":{{"n":"{i}","amount":"{}.{:02}","label":"label {i} of the benchmark","day":"2024-{:02}-{:02}","created_at":"2024-03-05T14:{:02}:{:02}.{:03}"}}}}"#,
                        source.record_id(line),
                        i * 7 % 100_000,
                        i % 100,
                        i % 12 + 1,
                        i % 28 + 1,
                        i % 60,
                        (i / 60) % 60,
                        i % 1000
                    )
                })
                .collect();
            format!(r#"{{"version":1,"source":{source_json},"dataset":"bench","format":"csv","records":[{}]}}"#, records.join(","))
        })
        .collect()
}

async fn writer(data_api_url: &str) -> Writer {
    let config = aws_sdk_rdsdata::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        .endpoint_url(data_api_url)
        .build();
    Writer {
        db: Database {
            client: aws_sdk_rdsdata::Client::from_conf(config),
            cluster_arn: CLUSTER_ARN.to_owned(),
            secret_arn: SECRET_ARN.to_owned(),
            database: "pipeline".to_owned(),
        },
        rejects_table: format!("{SCHEMA}.rejected_records"),
        max_request_bytes: DATA_API_MAX_REQUEST_BYTES,
        retry: RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) },
    }
}

/// Parses, plans and writes every message as the handler does, `CONCURRENCY` at a time.
async fn write_with_writer(writer: &Arc<Writer>, mapping: &Arc<Mapping>, bodies: &[String]) -> Duration {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for body in bodies {
        if tasks.len() == CONCURRENCY {
            tasks.join_next().await.unwrap().unwrap();
        }
        let (writer, mapping, body) = (Arc::clone(writer), Arc::clone(mapping), body.clone());
        tasks.spawn(async move {
            let envelope: Envelope = serde_json::from_str(&body).unwrap();
            let plan = transform_to_rds::transform::plan(&mapping, &envelope, &transform_to_rds::writer::now_timestamp());
            let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
            let written = writer.write(&envelope, &plan, WriteOptions::default(), deadline).await.unwrap();
            assert!(written.rejected.is_empty(), "{:?}", written.rejected.first());
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    started.elapsed()
}

/// Writes the same rows with one multi-row INSERT per message, in a
/// transaction per message, `CONCURRENCY` connections at a time.
async fn write_direct(pg_url: &str, bodies: &[String]) -> Duration {
    let mut clients = Vec::new();
    for _ in 0..CONCURRENCY {
        clients.push(Arc::new(tokio::sync::Mutex::new(connect(pg_url).await)));
    }
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (index, body) in bodies.iter().enumerate() {
        if tasks.len() == CONCURRENCY {
            tasks.join_next().await.unwrap().unwrap();
        }
        let client = Arc::clone(&clients[index % CONCURRENCY]);
        let body = body.clone();
        tasks.spawn(async move {
            let envelope: Envelope = serde_json::from_str(&body).unwrap();
            let mut values: Vec<String> = Vec::with_capacity(envelope.records.len() * 6);
            for record in &envelope.records {
                let data: serde_json::Map<String, serde_json::Value> = serde_json::from_str(record.data.get()).unwrap();
                values.push(record.id.clone());
                for field in ["n", "amount", "label", "day", "created_at"] {
                    values.push(data[field].as_str().unwrap().to_owned());
                }
            }
            let placeholders: Vec<String> = (0..envelope.records.len())
                .map(|row| {
                    let p = row * 6;
                    format!("(${}, ${}::text::int, ${}::text::numeric, ${}, ${}::text::date, ${}::text::timestamp)", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6)
                })
                .collect();
            let sql = format!(
                "INSERT INTO {SCHEMA}.rows (record_id, n, amount, label, day, created_at) VALUES {} ON CONFLICT (record_id) DO NOTHING",
                placeholders.join(", ")
            );
            let parameters: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values.iter().map(|value| value as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            let mut client = client.lock().await;
            let transaction = client.transaction().await.unwrap();
            transaction.execute(sql.as_str(), &parameters).await.unwrap();
            transaction.commit().await.unwrap();
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    started.elapsed()
}

/// Runs the Python handler on the first `rows` records; returns (rows written, seconds).
fn write_with_python(data_api_url: &str, bodies: &[String], rows: usize) -> (u64, f64) {
    let messages = rows.div_ceil(RECORDS_PER_MESSAGE).min(bodies.len());
    let path = std::env::temp_dir().join(format!("bench-transform-{}.jsonl", std::process::id()));
    std::fs::write(&path, bodies[..messages].join("\n")).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/per_record_insert.py");
    let output = Command::new(venv_python())
        .arg(&script)
        .arg(&path)
        .arg(format!("{SCHEMA}.rows"))
        .env("PIPELINE_DATA_API_URL", data_api_url)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (report["rows"].as_u64().unwrap(), report["seconds"].as_f64().unwrap())
}

async fn connect(pg_url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(pg_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn truncate(pg: &tokio_postgres::Client) {
    pg.batch_execute(&format!("TRUNCATE {SCHEMA}.rows")).await.unwrap();
}

async fn count(pg: &tokio_postgres::Client) -> i64 {
    pg.query_one(&format!("SELECT count(*) FROM {SCHEMA}.rows"), &[]).await.unwrap().get(0)
}
