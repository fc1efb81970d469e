//! Configuration read once from the environment at cold start.

use std::time::Duration;

use pipeline_shared::{ConfigError, Env};
use regex::Regex;

use crate::batch::{MAX_MESSAGE_BUDGET_BYTES, MIN_MESSAGE_BUDGET_BYTES};
use crate::format::Format;
use crate::parse::ParseOptions;

/// Default `DATASET_KEY_PATTERN`: the folder right under `incoming/`.
pub const DEFAULT_DATASET_KEY_PATTERN: &str = "^incoming/(?P<dataset>[^/]+)/";

/// Default message budget: 256 KiB, the SQS maximum message size of queues
/// created before 2025, so messages fit every queue.
pub const DEFAULT_MESSAGE_BUDGET_BYTES: usize = 256 * 1024;

/// Decompressed size below which the decompression ratio is not checked:
/// small files of repetitive text compress far better than 200 to 1.
pub const DECOMPRESSION_CHECK_FLOOR_BYTES: u64 = 8 * 1024 * 1024;

/// Settings of the s3-to-sqs function.
#[derive(Debug, Clone)]
pub struct Config {
    /// `QUEUE_URL` (required): the queue that receives the envelopes. A URL
    /// ending in `.fifo` gets MessageGroupId = data set and
    /// MessageDeduplicationId = the first record's id.
    pub queue_url: String,
    /// `ARCHIVE_BUCKET`: bucket of the gzip archive copies. Objects there
    /// (under `ARCHIVE_PREFIX`, if set) are skipped.
    pub archive_bucket: Option<String>,
    /// `ARCHIVE_PREFIX`: key prefix of the archive copies, in
    /// `ARCHIVE_BUCKET` or, when that is unset, in any bucket.
    pub archive_prefix: Option<String>,
    /// `FORMAT` (`csv`, `jsonl` or `json`): overrides the format given by
    /// the key suffix and Content-Type.
    pub format: Option<Format>,
    /// `DATASET_KEY_PATTERN`: regex with a named group `dataset` that takes
    /// the data set name from the key; default [`DEFAULT_DATASET_KEY_PATTERN`].
    pub dataset_pattern: Regex,
    /// `CSV_DELIMITER` (one ASCII character, or `tab`; default `,`) and
    /// `MAX_RECORD_BYTES` (default 1 MiB, 1 KiB to 64 MiB).
    pub parse: ParseOptions,
    /// `MESSAGE_BUDGET_BYTES`: maximum size of one message body; 16 KiB to
    /// 1 MiB, default 256 KiB.
    pub message_budget_bytes: usize,
    /// Maximum sum of message bodies in one SendMessageBatch call
    /// (`BATCH_BUDGET_BYTES`, default and maximum 1 MiB, at least the message budget).
    pub batch_budget_bytes: usize,
    /// `MAX_DECOMPRESSION_RATIO`: maximum ratio of decompressed to
    /// compressed bytes, checked beyond [`DECOMPRESSION_CHECK_FLOOR_BYTES`];
    /// default 200.
    pub max_decompression_ratio: u64,
    /// `MAX_BATCHES_IN_FLIGHT`: SendMessageBatch calls running at once per
    /// object, 1 to 64, default 8.
    pub max_batches_in_flight: usize,
    /// `SEND_MAX_ATTEMPTS` (1 to 20, default 5) and the backoff between
    /// resends of entries that SQS reported as failed.
    pub retry: RetryPolicy,
}

/// Exponential backoff with jitter for resending failed batch entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per batch, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; it doubles for each further one.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// Returns the delay after failed attempt `attempt` (1-based): a random
    /// value between half and all of `base_delay * 2^(attempt - 1)`, capped
    /// at `max_delay`. The jitter spreads the resends of concurrent batches.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let ceiling = self.base_delay.saturating_mul(factor).min(self.max_delay);
        ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

impl Config {
    /// Reads the configuration; every error names its variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let queue_url = env.required("QUEUE_URL")?.to_owned();
        let archive_bucket = env.optional("ARCHIVE_BUCKET").map(str::to_owned);
        let archive_prefix = env.optional("ARCHIVE_PREFIX").map(str::to_owned);
        let format =
            env.optional("FORMAT").map(str::parse).transpose().map_err(|reason| ConfigError::new("FORMAT", reason))?;

        let pattern = env.optional("DATASET_KEY_PATTERN").unwrap_or(DEFAULT_DATASET_KEY_PATTERN);
        let dataset_pattern = Regex::new(pattern)
            .map_err(|error| ConfigError::new("DATASET_KEY_PATTERN", format!("invalid regex: {error}")))?;
        if !dataset_pattern.capture_names().any(|name| name == Some("dataset")) {
            return Err(ConfigError::new("DATASET_KEY_PATTERN", "needs a named group (?P<dataset>...)"));
        }

        let csv_delimiter = parse_delimiter(env.optional("CSV_DELIMITER"))?;
        let max_record_bytes = env.parse_in_range("MAX_RECORD_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024)?;
        let parse = ParseOptions { csv_delimiter, max_record_bytes, ..ParseOptions::default() };

        // SQS maximum message size: 1 MiB (1,048,576 bytes); 256 KiB on queues set up with the old limit.
        let message_budget_bytes = env.parse_in_range(
            "MESSAGE_BUDGET_BYTES",
            DEFAULT_MESSAGE_BUDGET_BYTES,
            MIN_MESSAGE_BUDGET_BYTES,
            MAX_MESSAGE_BUDGET_BYTES,
        )?;
        // SendMessageBatch: the sum of the bodies of one call is at most 1 MiB
        // (1,048,576 bytes), so four 256 KiB messages fit in one call.
        // NOTE: if a queue still on the 256 KiB limit refuses larger calls,
        // set BATCH_BUDGET_BYTES to 262144.
        let batch_budget_bytes = env.parse_in_range(
            "BATCH_BUDGET_BYTES",
            MAX_MESSAGE_BUDGET_BYTES,
            message_budget_bytes,
            MAX_MESSAGE_BUDGET_BYTES,
        )?;
        let max_decompression_ratio = env.parse_in_range("MAX_DECOMPRESSION_RATIO", 200, 2, 1_000_000)?;
        let max_batches_in_flight = env.parse_in_range("MAX_BATCHES_IN_FLIGHT", 8, 1, 64)?;
        let max_attempts = env.parse_in_range("SEND_MAX_ATTEMPTS", 5, 1, 20)?;

        Ok(Self {
            queue_url,
            archive_bucket,
            archive_prefix,
            format,
            dataset_pattern,
            parse,
            message_budget_bytes,
            batch_budget_bytes,
            max_decompression_ratio,
            max_batches_in_flight,
            retry: RetryPolicy { max_attempts, ..RetryPolicy::default() },
        })
    }

    /// Returns the data set named by `key`, or `None` when the key does not
    /// match [`Config::dataset_pattern`] or the group is empty.
    pub fn dataset_for<'k>(&self, key: &'k str) -> Option<&'k str> {
        let captures = self.dataset_pattern.captures(key)?;
        captures.name("dataset").map(|group| group.as_str()).filter(|name| !name.is_empty())
    }

    /// Returns true for an object in the archive location, which this
    /// function must not read back (the archive copies are gzip files of the
    /// same records).
    pub fn is_archived(&self, bucket: &str, key: &str) -> bool {
        let prefix = self.archive_prefix.as_deref();
        match self.archive_bucket.as_deref() {
            Some(archive_bucket) => archive_bucket == bucket && key.starts_with(prefix.unwrap_or("")),
            None => prefix.is_some_and(|prefix| key.starts_with(prefix)),
        }
    }
}

/// Parses `CSV_DELIMITER`: one ASCII character other than a quote or a line
/// end, or `tab` / `\t` (a literal tab would be trimmed away as blank).
fn parse_delimiter(value: Option<&str>) -> Result<u8, ConfigError> {
    let Some(value) = value else {
        return Ok(b',');
    };
    if value.eq_ignore_ascii_case("tab") || value == "\\t" {
        return Ok(b'\t');
    }
    match value.as_bytes() {
        [byte] if byte.is_ascii() && !matches!(byte, b'"' | b'\n' | b'\r') => Ok(*byte),
        _ => Err(ConfigError::new(
            "CSV_DELIMITER",
            format!("{value:?} is not one ASCII character other than '\"', or tab"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all = vec![("QUEUE_URL", "http://127.0.0.1:4566/000000000000/q")];
        all.extend_from_slice(pairs);
        Config::from_env(&Env::from_pairs(all))
    }

    #[test]
    fn defaults() {
        let config = config(&[]).unwrap();
        assert_eq!(config.message_budget_bytes, 262_144);
        assert_eq!(config.parse, ParseOptions::default());
        assert_eq!(config.max_decompression_ratio, 200);
        assert_eq!(config.format, None);
        assert_eq!(config.dataset_for("incoming/penguins/2024/p.csv"), Some("penguins"));
        assert_eq!(config.dataset_for("other/penguins/p.csv"), None);
        assert_eq!(config.dataset_for("incoming/p.csv"), None);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases: [(&str, &str); 9] = [
            ("QUEUE_URL", " "),
            ("MESSAGE_BUDGET_BYTES", "2000000"),
            ("MESSAGE_BUDGET_BYTES", "1000"),
            ("FORMAT", "xml"),
            ("DATASET_KEY_PATTERN", "^incoming/([^/]+)/"),
            ("DATASET_KEY_PATTERN", "(?P<dataset>"),
            ("CSV_DELIMITER", ";;"),
            ("CSV_DELIMITER", "\""),
            ("MAX_RECORD_BYTES", "lots"),
        ];
        for (variable, value) in cases {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value:?}: {error}");
        }
    }

    #[test]
    fn custom_values() {
        let config = config(&[
            ("CSV_DELIMITER", "tab"),
            ("FORMAT", "JSONL"),
            ("DATASET_KEY_PATTERN", "^data/(?P<dataset>[a-z]+)-"),
            ("MESSAGE_BUDGET_BYTES", "1048576"),
        ])
        .unwrap();
        assert_eq!(config.parse.csv_delimiter, b'\t');
        assert_eq!(config.format, Some(Format::JsonLines));
        assert_eq!(config.dataset_for("data/cars-2024.json"), Some("cars"));
        assert_eq!(config.message_budget_bytes, 1_048_576);
    }

    #[test]
    fn archive_location_cases() {
        let both = config(&[("ARCHIVE_BUCKET", "arch"), ("ARCHIVE_PREFIX", "archive/")]).unwrap();
        assert!(both.is_archived("arch", "archive/incoming/d/x.csv.gz"));
        assert!(!both.is_archived("arch", "incoming/d/x.csv"));
        assert!(!both.is_archived("input", "archive/x.gz"));

        let bucket_only = config(&[("ARCHIVE_BUCKET", "arch")]).unwrap();
        assert!(bucket_only.is_archived("arch", "incoming/d/x.csv.gz"));
        assert!(!bucket_only.is_archived("input", "incoming/d/x.csv"));

        let prefix_only = config(&[("ARCHIVE_PREFIX", "archive/")]).unwrap();
        assert!(prefix_only.is_archived("input", "archive/x.gz"));
        assert!(!prefix_only.is_archived("input", "incoming/x.csv"));

        let none = config(&[]).unwrap();
        assert!(!none.is_archived("input", "archive/x.gz"));
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let policy =
            RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        for _ in 0..100 {
            let first = policy.delay(1);
            assert!(first >= Duration::from_millis(50), "{first:?}");
            assert!(first <= Duration::from_millis(100), "{first:?}");
            let third = policy.delay(3);
            assert!(third >= Duration::from_millis(200), "{third:?}");
            assert!(third <= Duration::from_millis(400), "{third:?}");
            assert!(policy.delay(30) <= Duration::from_secs(1));
        }
    }
}
