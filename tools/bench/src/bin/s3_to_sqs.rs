//! Benchmark of s3-to-sqs:
//!
//! 1. records per second of parsing and envelope building on a generated
//!    CSV (and the same rows as JSON Lines) in memory, one core, no network;
//! 2. SendMessageBatch requests per 100,000 records through LocalStack,
//!    against the ideal of one request per MiB of message bodies;
//! 3. the handler's peak memory (VmHWM) in a child process on objects of
//!    `BENCH_S3_TO_SQS_MIB` MiB (default `64,256`), to show that it stays flat.
//!
//! Run with `cargo run --release -p pipeline-bench --bin s3_to_sqs` while
//! `make local-up` is running. `BENCH_RUNS` sets the repetitions of step 1,
//! `BENCH_S3_TO_SQS_STEPS` (default `1,2,3`) the steps to run.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use aws_sdk_sqs::types::QueueAttributeName;
use pipeline_bench::{median, mib, peak_rss_bytes, runs, upload_multipart};
use pipeline_shared::Env;
use pipeline_shared::envelope::Source;
use s3_to_sqs::{Config, Format, ParseOptions, State, envelopes_from_bytes, handle_notification};

const MIB: usize = 1024 * 1024;
const KIB_256: usize = 256 * 1024;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("handler") {
        run_handler(&args[2], &args[3], &args[4]).await;
        return;
    }

    let steps = std::env::var("BENCH_S3_TO_SQS_STEPS").unwrap_or_else(|_| "1,2,3".to_owned());
    let runs = runs(5);
    println!("s3-to-sqs benchmark");
    if steps.contains('1') {
        println!();
        parse_throughput(runs);
    }
    if !steps.contains('2') && !steps.contains('3') {
        return;
    }
    let s3 = s3_client().await;
    let sqs = sqs_client().await;
    let bucket = format!("bench-s3-to-sqs-{}", std::process::id());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    if steps.contains('2') {
        println!();
        request_counts(&s3, &sqs, &bucket).await;
    }
    if steps.contains('3') {
        println!();
        peak_memory(&s3, &sqs, &bucket).await;
    }
}

/// Step 1: parse and build envelopes in memory, median of `runs`.
fn parse_throughput(runs: usize) {
    const RECORDS: usize = 1_000_000;
    let csv = generate_csv_records(RECORDS);
    let jsonl = csv_to_jsonl(&csv);
    let source =
        Source { bucket: "bench".into(), key: "incoming/bench/data".into(), version_id: None, etag: Some("e".into()) };
    println!("1. parse + envelopes in memory, {RECORDS} records, one core, median of {runs} runs");
    println!("| format | input | records/s | input MiB/s | messages (256 KiB) |");
    println!("|---|---|---|---|---|");
    for (name, format, data) in [("CSV", Format::Csv, &csv), ("JSON Lines", Format::JsonLines, &jsonl)] {
        let mut rates = Vec::new();
        let mut throughputs = Vec::new();
        let mut messages = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let bodies =
                envelopes_from_bytes(&source, "bench", format, data, &ParseOptions::default(), KIB_256).unwrap();
            let elapsed = started.elapsed().as_secs_f64();
            messages = bodies.len();
            rates.push(RECORDS as f64 / elapsed);
            throughputs.push(data.len() as f64 / MIB as f64 / elapsed);
        }
        let rate = median(&mut rates);
        let throughput = median(&mut throughputs);
        println!("| {name} | {} | {:.2} M | {throughput:.0} | {messages} |", mib(data.len() as u64), rate / 1e6);
    }
}

/// Step 2: SendMessageBatch calls per 100,000 records through LocalStack.
async fn request_counts(s3: &aws_sdk_s3::Client, sqs: &aws_sdk_sqs::Client, bucket: &str) {
    const RECORDS: usize = 100_000;
    let key = "incoming/bench/requests.csv";
    upload_multipart(s3, bucket, key, &generate_csv_records(RECORDS)).await;
    println!("2. SendMessageBatch requests for {RECORDS} CSV records through LocalStack");
    println!("| budget | messages | requests | body bytes | ideal requests (bytes / 1 MiB) | requests / ideal |");
    println!("|---|---|---|---|---|---|");
    for budget in [KIB_256, MIB] {
        let Some(queue_url) = create_queue(sqs, budget).await else {
            println!("| {} KiB | LocalStack refused MaximumMessageSize {budget} | | | | |", budget / 1024);
            continue;
        };
        let state = state(s3, sqs, &queue_url, budget);
        let response = handle_notification(&state, &event(bucket, key)).await.unwrap();
        let summary = &response.objects[0];
        assert_eq!(summary.records, RECORDS as u64);
        let ideal = summary.bytes.div_ceil(MIB as u64);
        println!(
            "| {} KiB | {} | {} | {} | {ideal} | {:.2} |",
            budget / 1024,
            summary.messages,
            summary.requests,
            mib(summary.bytes),
            summary.requests as f64 / ideal as f64
        );
        sqs.delete_queue().queue_url(&queue_url).send().await.unwrap();
    }
}

/// Step 3: the handler's peak memory in a child process, per object size.
async fn peak_memory(s3: &aws_sdk_s3::Client, sqs: &aws_sdk_sqs::Client, bucket: &str) {
    let sizes: Vec<usize> = std::env::var("BENCH_S3_TO_SQS_MIB")
        .ok()
        .map(|value| value.split(',').filter_map(|size| size.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 256]);
    println!("3. handler peak memory (VmHWM of a child process), CSV objects, 256 KiB budget");
    println!("| object | records | messages | requests | wall time | records/s | peak memory |");
    println!("|---|---|---|---|---|---|---|");
    for size_mib in sizes {
        let key = format!("incoming/bench/memory-{size_mib}.csv");
        let data = generate_csv_bytes(size_mib * MIB);
        upload_multipart(s3, bucket, &key, &data).await;
        drop(data);
        let queue_url = create_queue(sqs, KIB_256).await.unwrap();
        let report = child_handler(bucket, &key, &queue_url);
        let records = report["records"].as_u64().unwrap();
        let seconds = report["seconds"].as_f64().unwrap();
        println!(
            "| {} | {records} | {} | {} | {seconds:.1} s | {:.0} | {} |",
            mib((size_mib * MIB) as u64),
            report["messages"],
            report["requests"],
            records as f64 / seconds,
            mib(report["peak_rss_bytes"].as_u64().unwrap())
        );
        sqs.delete_queue().queue_url(&queue_url).send().await.unwrap();
        s3.delete_object().bucket(bucket).key(&key).send().await.unwrap();
    }
}

fn child_handler(bucket: &str, key: &str, queue_url: &str) -> serde_json::Value {
    let output =
        Command::new(std::env::current_exe().unwrap()).args(["handler", bucket, key, queue_url]).output().unwrap();
    assert!(output.status.success(), "handler failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The child: one run of the real handler on an event for `bucket`/`key`.
async fn run_handler(bucket: &str, key: &str, queue_url: &str) {
    let state = state(&s3_client().await, &sqs_client().await, queue_url, KIB_256);
    let started = Instant::now();
    let response = handle_notification(&state, &event(bucket, key)).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let summary = &response.objects[0];
    let report = serde_json::json!({
        "seconds": seconds,
        "records": summary.records,
        "messages": summary.messages,
        "requests": summary.requests,
        "peak_rss_bytes": peak_rss_bytes(),
    });
    println!("{report}");
}

fn state(s3: &aws_sdk_s3::Client, sqs: &aws_sdk_sqs::Client, queue_url: &str, budget: usize) -> State {
    let budget = budget.to_string();
    let env = Env::from_pairs([("QUEUE_URL", queue_url), ("MESSAGE_BUDGET_BYTES", budget.as_str())]);
    State { config: Config::from_env(&env).unwrap(), s3: s3.clone(), sqs: sqs.clone() }
}

fn event(bucket: &str, key: &str) -> serde_json::Value {
    serde_json::json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":bucket},"object":{"key":key}}}]})
}

/// Creates a queue whose maximum message size is `budget`; `None` when
/// LocalStack does not accept that size.
async fn create_queue(sqs: &aws_sdk_sqs::Client, budget: usize) -> Option<String> {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("bench-s3-to-sqs-{}-{n}", std::process::id());
    let output = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::MaximumMessageSize, budget.to_string())
        .send()
        .await
        .ok()?;
    output.queue_url
}

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into()))
        .load()
        .await
}

async fn s3_client() -> aws_sdk_s3::Client {
    pipeline_shared::aws::s3_client(&sdk_config().await)
}

async fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config().await)
}

/// Generates CSV rows shaped like an airports list: code, name, city,
/// state, country, latitude, longitude (about 75 bytes a row).
fn generate_csv_records(records: usize) -> Vec<u8> {
    let mut rows = CsvRows::new();
    let mut out = Vec::with_capacity(records * 80);
    out.extend_from_slice(CsvRows::HEADER);
    for _ in 0..records {
        rows.write_row(&mut out);
    }
    out
}

/// Generates whole CSV rows until at least `len` bytes.
fn generate_csv_bytes(len: usize) -> Vec<u8> {
    let mut rows = CsvRows::new();
    let mut out = Vec::with_capacity(len + 128);
    out.extend_from_slice(CsvRows::HEADER);
    while out.len() < len {
        rows.write_row(&mut out);
    }
    out
}

struct CsvRows {
    state: u64,
    id: u64,
}

impl CsvRows {
    const HEADER: &[u8] = b"iata,name,city,state,country,latitude,longitude\n";
    const CITIES: [&str; 8] = [
        "Bay Springs",
        "Livingston",
        "Colorado City",
        "Fort Worth",
        "Montréal",
        "Tromsø",
        "\"Quito, Pichincha\"",
        "Hobart",
    ];

    fn new() -> Self {
        Self { state: 0x2545_f491_4f6c_dd1d, id: 0 }
    }

    fn write_row(&mut self, out: &mut Vec<u8>) {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.id += 1;
        let state = self.state;
        writeln!(
            out,
            "A{:05},Airport {} Municipal,{},{}{},USA,{}.{:08},-{}.{:08}",
            self.id,
            state % 100_000,
            Self::CITIES[(state % 8) as usize],
            char::from(b'A' + ((state >> 8) % 26) as u8),
            char::from(b'A' + ((state >> 13) % 26) as u8),
            20 + (state >> 18) % 40,
            (state >> 24) % 100_000_000,
            70 + (state >> 32) % 90,
            (state >> 40) % 100_000_000,
        )
        .unwrap();
    }
}

/// Converts the generated CSV to JSON Lines, every value a string as in the CSV.
fn csv_to_jsonl(csv: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = Vec::with_capacity(csv.len() * 2);
    for line in lines {
        // The generated rows quote only "Quito, Pichincha"; rejoin it.
        let line = line.replace("\"Quito, Pichincha\"", "Quito; Pichincha");
        let object: serde_json::Map<String, serde_json::Value> =
            header.iter().zip(line.split(',')).map(|(name, value)| ((*name).to_owned(), value.into())).collect();
        serde_json::to_writer(&mut out, &object).unwrap();
        out.push(b'\n');
    }
    out
}

