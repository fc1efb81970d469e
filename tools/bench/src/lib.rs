//! Helpers shared by the benchmark binaries in `src/bin/`.
//!
//! Benchmarks run against the local stack (LocalStack on 127.0.0.1:4566, the
//! local Data API on 127.0.0.1:8089) and print medians; they are not tests.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

/// Returns the median of `values`, which must not be empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 }
}

/// Returns this process's peak resident set size in bytes (VmHWM), or 0
/// where /proc is not available.
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Number of repetitions: `BENCH_RUNS`, default `default`.
pub fn runs(default: usize) -> usize {
    std::env::var("BENCH_RUNS").ok().and_then(|value| value.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

/// Formats a byte count in MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Formats a throughput in MiB/s.
pub fn mib_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

/// Path of the Python interpreter of `.local/venv`, which has boto3.
pub fn venv_python() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.local/venv/bin/python")
}

/// Uploads `data` as a CSV object in 64 MiB parts, so that objects of any
/// size reach LocalStack; panics on failure, as benchmarks do.
#[allow(clippy::unwrap_used)]
pub async fn upload_multipart(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) {
    let upload = s3.create_multipart_upload().bucket(bucket).key(key).content_type("text/csv").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (index, chunk) in data.chunks(64 * 1024 * 1024).enumerate() {
        let part_number = index as i32 + 1;
        let output = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(CompletedPart::builder().part_number(part_number).set_e_tag(output.e_tag).build());
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
}
