//! Benchmark of compress-on-upload: a generated CSV of `BENCH_COMPRESS_MIB`
//! MiB (default 1024) is uploaded to LocalStack, then archived by
//!
//! 1. the function's handler, in a child process so that its peak memory is
//!    its own (also on a 64 MiB object, to show that memory stays flat);
//! 2. a typical Python handler: boto3 `get_object().read()`,
//!    `gzip.compress`, `put_object`;
//! 3. flate2 alone on the same bytes in memory, at the same level: the limit.
//!
//! Run with `make bench` (or `cargo run --release -p pipeline-bench --bin compress`)
//! while `make local-up` is running.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use pipeline_bench::{median, mib, mib_per_sec, peak_rss_bytes, runs, upload_multipart, venv_python};

const LEVEL: u32 = 6;
const MIB: usize = 1024 * 1024;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("handler") {
        run_handler(&args[2], &args[3]).await;
        return;
    }

    let size_mib: usize = std::env::var("BENCH_COMPRESS_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let runs = runs(3);
    let s3 = s3_client().await;
    let bucket = format!("bench-compress-{}", std::process::id());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    eprintln!("generating {size_mib} MiB of CSV and uploading it to LocalStack");
    let data = generate_csv(size_mib * MIB);
    upload_multipart(&s3, &bucket, "incoming/large.csv", &data).await;
    upload_multipart(&s3, &bucket, "incoming/small.csv", &data[..64 * MIB.min(data.len())]).await;

    eprintln!("flate2 in memory, level {LEVEL}, {runs} runs");
    let mut limit = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), flate2::Compression::new(LEVEL));
        encoder.write_all(&data).unwrap();
        let compressed = encoder.finish().unwrap();
        limit.push(mib_per_sec(data.len() as u64, started.elapsed()));
        drop(compressed);
    }
    let limit = median(&mut limit);
    let data_len = data.len() as u64;
    drop(data);

    eprintln!("compress-on-upload handler, {runs} runs");
    let mut seconds = Vec::new();
    let mut peak = 0;
    for _ in 0..runs {
        s3.delete_object().bucket(&bucket).key("archive/incoming/large.csv.gz").send().await.unwrap();
        let (elapsed, rss) = child_handler(&bucket, "incoming/large.csv");
        seconds.push(elapsed.as_secs_f64());
        peak = peak.max(rss);
    }
    let function_secs = median(&mut seconds);
    let (_, small_peak) = child_handler(&bucket, "incoming/small.csv");

    eprintln!("typical Python handler, 1 run");
    let python = Command::new(venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/compress_handler.py"))
        .args([&bucket, "incoming/large.csv", "archive-python/large.csv.gz"])
        .output()
        .unwrap();
    assert!(python.status.success(), "python handler failed: {}", String::from_utf8_lossy(&python.stderr));
    let python_report: serde_json::Value = serde_json::from_slice(&python.stdout).unwrap();
    let python_secs = python_report["seconds"].as_f64().unwrap();
    let python_peak = python_report["peak_rss_bytes"].as_u64().unwrap();

    let function_throughput = data_len as f64 / MIB as f64 / function_secs;
    println!("compress-on-upload, {} CSV, gzip level {LEVEL}, median of {runs} runs", mib(data_len));
    println!("| what | wall time | throughput | peak memory |");
    println!("|---|---|---|---|");
    println!("| flate2 in memory (the limit) | {:.1} s | {limit:.1} MiB/s | - |", data_len as f64 / MIB as f64 / limit);
    println!("| compress-on-upload handler | {function_secs:.1} s | {function_throughput:.1} MiB/s | {} |", mib(peak));
    println!("| compress-on-upload, 64 MiB object | - | - | {} |", mib(small_peak));
    println!("| Python handler (boto3 + gzip) | {python_secs:.1} s | {:.1} MiB/s | {} |", data_len as f64 / MIB as f64 / python_secs, mib(python_peak));
    println!();
    println!("handler throughput / flate2 limit: {:.0}%", 100.0 * function_throughput / limit);
    println!("handler peak memory, {} object / 64 MiB object: {:.2}", mib(data_len), peak as f64 / small_peak.max(1) as f64);
    println!("Python wall time / handler wall time: {:.1}x", python_secs / function_secs);
}

async fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into()))
        .load()
        .await;
    pipeline_shared::aws::s3_client(&config)
}

/// Generates CSV rows until `len` bytes: ids, names, cities, amounts, dates,
/// varied enough that gzip works about as hard as on real exports.
fn generate_csv(len: usize) -> Vec<u8> {
    const CITIES: [&str; 8] = ["Lisbon", "Osaka", "Nairobi", "Montréal", "Reykjavík", "Quito", "Hobart", "Tromsø"];
    let mut out = Vec::with_capacity(len + 256);
    out.extend_from_slice(b"id,customer,city,amount,currency,ordered_at,note\n");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut id = 0u64;
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        id += 1;
        let city = CITIES[(state % 8) as usize];
        let cents = state % 10_000_000;
        writeln!(
            out,
            "{id},customer-{:05},{city},{}.{:02},EUR,2026-{:02}-{:02}T{:02}:{:02}:{:02}Z,order {:x}",
            (state >> 8) % 50_000,
            cents / 100,
            cents % 100,
            1 + (state >> 16) % 12,
            1 + (state >> 20) % 28,
            (state >> 24) % 24,
            (state >> 28) % 60,
            (state >> 32) % 60,
            state >> 40
        )
        .unwrap();
    }
    out.truncate(len);
    out
}


/// Runs the handler in a child process; returns its wall time and peak memory.
fn child_handler(bucket: &str, key: &str) -> (Duration, u64) {
    // The same allocator setting as the function's environment in template.yaml.
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["handler", bucket, key])
        .env("MALLOC_MMAP_THRESHOLD_", "1048576")
        .output()
        .unwrap();
    assert!(output.status.success(), "handler failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (Duration::from_secs_f64(report["seconds"].as_f64().unwrap()), report["peak_rss_bytes"].as_u64().unwrap())
}

/// The child: one invocation of the real handler on an event for `bucket`/`key`.
async fn run_handler(bucket: &str, key: &str) {
    let s3 = s3_client().await;
    let env = pipeline_shared::Env::from_pairs([("ARCHIVE_BUCKET", bucket), ("COMPRESSION_LEVEL", "6")]);
    let state = compress_on_upload::State::new(compress_on_upload::Config::from_env(&env).unwrap(), s3);
    let event = serde_json::json!({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":bucket},"object":{"key":key}}}]});
    let started = Instant::now();
    let summary = compress_on_upload::handle(&state, lambda_runtime::LambdaEvent::new(event, Default::default())).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(summary.archived, 1);
    println!("{}", serde_json::json!({"seconds": seconds, "peak_rss_bytes": peak_rss_bytes()}));
}
