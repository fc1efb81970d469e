//! transform-to-rds: writes the records of SQS batches from s3-to-sqs into
//! Aurora PostgreSQL through the RDS Data API.
//!
//! Each message body is an [`Envelope`] of one data set. Its mapping (see
//! [`mapping`]) turns records into rows, which are upserted on their record id
//! in one transaction per message, so a redelivered message writes no
//! duplicates. Outcomes per message:
//! - written: the rows are committed. Records that the mapping or the
//!   database rejected are stored in the rejects table with their reason, and
//!   the message is acknowledged, because retrying cannot fix them.
//! - failed: a body that is no envelope, has an unknown version or names a
//!   data set without a mapping, or a database error that retries within the
//!   invocation's time did not overcome. The message is reported in
//!   `batchItemFailures`; SQS redelivers it and, after the queue's
//!   `maxReceiveCount`, moves it to the dead-letter queue.

pub mod db;
pub mod mapping;
pub mod transform;
pub mod value;
pub mod writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use lambda_runtime::{Error, LambdaEvent};
use pipeline_shared::envelope::{ENVELOPE_VERSION, Envelope};
use pipeline_shared::{ConfigError, Env};
use tokio::time::Instant;

use crate::db::Database;
use crate::mapping::{MappingError, Mappings};
use crate::writer::{RetryPolicy, WriteFailure, WriteOptions, Writer, Written};

/// Configuration read once at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Aurora cluster ARN (`DB_CLUSTER_ARN`).
    pub cluster_arn: String,
    /// Secrets Manager ARN of the database credentials (`DB_SECRET_ARN`).
    pub secret_arn: String,
    /// Database name (`DB_NAME`, default `pipeline`).
    pub database: String,
    /// Folder of mapping files to load instead of the compiled-in ones (`MAPPINGS_DIR`).
    pub mappings_dir: Option<PathBuf>,
    /// Rejects table, optionally schema-qualified (`REJECTS_TABLE`, default `rejected_records`).
    pub rejects_table: String,
    /// Time kept free before the invocation deadline to report the batch (`DEADLINE_MARGIN_MS`, default 2000).
    pub deadline_margin: Duration,
    /// Retry settings (`MAX_ATTEMPTS` default 8, `RETRY_BASE_DELAY_MS` default 100, `RETRY_MAX_DELAY_MS` default 5000).
    pub retry: RetryPolicy,
    /// Request size budget of one Data API call in bytes (`MAX_REQUEST_BYTES`, default and maximum 4 MiB).
    pub max_request_bytes: usize,
    /// Messages of a batch written at the same time (`MESSAGE_CONCURRENCY`, default 4).
    pub message_concurrency: usize,
}

impl Config {
    /// Reads the configuration; errors name the variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let rejects_table = env.optional("REJECTS_TABLE").unwrap_or("rejected_records").to_owned();
        if !mapping::is_valid_table(&rejects_table) {
            return Err(ConfigError::new("REJECTS_TABLE", format!("{rejects_table:?} must match [a-z_][a-z0-9_]{{0,62}}, optionally as schema.table")));
        }
        let base_delay_ms = env.parse_in_range("RETRY_BASE_DELAY_MS", 100u64, 1, 10_000)?;
        let max_delay_ms = env.parse_in_range("RETRY_MAX_DELAY_MS", 5_000u64, base_delay_ms, 60_000)?;
        Ok(Self {
            cluster_arn: env.required("DB_CLUSTER_ARN")?.to_owned(),
            secret_arn: env.required("DB_SECRET_ARN")?.to_owned(),
            database: env.optional("DB_NAME").unwrap_or("pipeline").to_owned(),
            mappings_dir: env.optional("MAPPINGS_DIR").map(PathBuf::from),
            rejects_table,
            deadline_margin: Duration::from_millis(env.parse_in_range("DEADLINE_MARGIN_MS", 2_000u64, 0, 60_000)?),
            retry: RetryPolicy {
                max_attempts: env.parse_in_range("MAX_ATTEMPTS", 8u32, 1, 100)?,
                base_delay: Duration::from_millis(base_delay_ms),
                max_delay: Duration::from_millis(max_delay_ms),
            },
            max_request_bytes: env.parse_in_range("MAX_REQUEST_BYTES", writer::DATA_API_MAX_REQUEST_BYTES, 64 * 1024, writer::DATA_API_MAX_REQUEST_BYTES)?,
            message_concurrency: env.parse_in_range("MESSAGE_CONCURRENCY", 4usize, 1, 32)?,
        })
    }
}

/// Everything built once per cold start.
#[derive(Debug)]
pub struct State {
    /// The configuration.
    pub config: Config,
    /// The checked mappings.
    pub mappings: Mappings,
    /// The Data API writer.
    pub writer: Writer,
}

impl State {
    /// Loads the mappings (from `MAPPINGS_DIR` or the compiled-in ones) and builds the writer.
    pub fn new(config: Config, client: aws_sdk_rdsdata::Client) -> Result<Self, MappingError> {
        let mappings = match &config.mappings_dir {
            Some(dir) => Mappings::from_dir(dir)?,
            None => Mappings::embedded()?,
        };
        Ok(Self::with_mappings(config, client, mappings))
    }

    /// Builds the state with mappings loaded by the caller.
    pub fn with_mappings(config: Config, client: aws_sdk_rdsdata::Client, mappings: Mappings) -> Self {
        let writer = Writer {
            db: Database {
                client,
                cluster_arn: config.cluster_arn.clone(),
                secret_arn: config.secret_arn.clone(),
                database: config.database.clone(),
            },
            rejects_table: config.rejects_table.clone(),
            max_request_bytes: config.max_request_bytes,
            retry: config.retry,
        };
        Self { config, mappings, writer }
    }
}

/// A message that was not written; it becomes a batch item failure.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The body is missing or is not an envelope.
    #[error("message {message_id}: body is not a valid envelope: {reason}")]
    InvalidBody {
        /// SQS message id.
        message_id: String,
        /// The parse error.
        reason: String,
    },
    /// The envelope has a version this function does not read.
    #[error("message {message_id}: envelope version {version} is not supported; expected {ENVELOPE_VERSION}")]
    UnsupportedVersion {
        /// SQS message id.
        message_id: String,
        /// The envelope's version.
        version: u32,
    },
    /// No mapping exists for the envelope's data set.
    #[error("message {message_id} (s3://{bucket}/{key}): no mapping for data set {dataset:?}")]
    UnknownDataset {
        /// SQS message id.
        message_id: String,
        /// Source bucket.
        bucket: String,
        /// Source key.
        key: String,
        /// The envelope's data set.
        dataset: String,
    },
    /// The database write failed after the retries this invocation allowed.
    #[error("message {message_id} (s3://{bucket}/{key}): {failure}")]
    Write {
        /// SQS message id.
        message_id: String,
        /// Source bucket.
        bucket: String,
        /// Source key.
        key: String,
        /// The last error and the attempts made.
        failure: WriteFailure,
    },
    /// The message was not started because the invocation deadline was too near.
    #[error("message {message_id}: not started, because the invocation deadline is near")]
    NotStarted {
        /// SQS message id.
        message_id: String,
    },
}

impl TransformError {
    /// Returns true when a later delivery can succeed without a change to the
    /// message, the mappings or the database.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidBody { .. } | Self::UnsupportedVersion { .. } | Self::UnknownDataset { .. } => false,
            Self::Write { failure, .. } => failure.error.is_transient() || failure.deadline_reached,
            Self::NotStarted { .. } => true,
        }
    }

    /// Returns the SQS message id.
    pub fn message_id(&self) -> &str {
        match self {
            Self::InvalidBody { message_id, .. }
            | Self::UnsupportedVersion { message_id, .. }
            | Self::UnknownDataset { message_id, .. }
            | Self::Write { message_id, .. }
            | Self::NotStarted { message_id } => message_id,
        }
    }
}

/// Writes an SQS batch and reports the messages that failed.
///
/// # Errors
/// Fails the whole invocation only when a failed message has no `messageId`,
/// because Lambda would otherwise treat an empty item identifier as a failure
/// of the whole batch anyway.
pub async fn handle(state: &State, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let deadline = invocation_deadline(event.context.deadline, state.config.deadline_margin);
    let messages = event.payload.records;

    let outcomes: Vec<Result<Written, TransformError>> = futures::stream::iter(messages.iter().enumerate())
        .map(|(position, message)| process_message(state, position, message, deadline))
        .buffered(state.config.message_concurrency)
        .collect()
        .await;

    let mut response = SqsBatchResponse::default();
    let mut summary = Summary::default();
    for (message, outcome) in messages.iter().zip(outcomes) {
        match outcome {
            Ok(written) => summary.add(&written),
            Err(error) => {
                summary.failed += 1;
                match message.message_id.as_deref().filter(|id| !id.is_empty()) {
                    Some(message_id) => response.add_failure(message_id),
                    None => {
                        tracing::error!(error = %error, "a failed message has no messageId; failing the whole batch");
                        return Err(format!("a message without messageId failed: {error}").into());
                    }
                }
            }
        }
    }
    tracing::info!(
        messages = messages.len(),
        written = summary.written,
        rejected = summary.rejected,
        dropped = summary.dropped,
        failed = summary.failed,
        tables = %summary.tables(),
        "batch processed"
    );
    Ok(response)
}

/// Converts Lambda's deadline (milliseconds since the Unix epoch) to an
/// instant `margin` earlier.
///
/// `cargo lambda watch` (1.9) sends the function's timeout in milliseconds
/// instead of an epoch time, so a value before 2001-09-09 (10^12 ms) is read
/// as a duration from now. Without this, every local invocation would look
/// past its deadline and write nothing.
pub fn invocation_deadline(deadline_epoch_ms: u64, margin: Duration) -> Instant {
    const EARLIEST_EPOCH_MS: u64 = 1_000_000_000_000;
    let remaining = if deadline_epoch_ms < EARLIEST_EPOCH_MS {
        Duration::from_millis(deadline_epoch_ms)
    } else {
        let now_epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        Duration::from_millis(deadline_epoch_ms.saturating_sub(now_epoch_ms))
    };
    Instant::now() + remaining.saturating_sub(margin)
}

async fn process_message(state: &State, position: usize, message: &SqsMessage, deadline: Instant) -> Result<Written, TransformError> {
    let message_id = message.message_id.clone().unwrap_or_else(|| format!("(no messageId, position {position})"));
    let result = write_message(state, &message_id, message.body.as_deref(), deadline).await;
    match &result {
        Ok(written) if !written.rejected.is_empty() => tracing::warn!(
            message_id,
            records = written.rows(),
            rejected = written.rejected.len(),
            first_line = written.rejected[0].line,
            first_reason = %written.rejected[0].reason,
            "records rejected; stored in the rejects table"
        ),
        Ok(written) => tracing::debug!(message_id, records = written.rows(), dropped = written.dropped, attempts = written.attempts, "message written"),
        Err(error) => tracing::warn!(message_id, retryable = error.is_retryable(), error = %error, "message failed; reported as a batch item failure"),
    }
    result
}

async fn write_message(state: &State, message_id: &str, body: Option<&str>, deadline: Instant) -> Result<Written, TransformError> {
    let invalid = |reason: String| TransformError::InvalidBody { message_id: message_id.to_owned(), reason };
    let body = body.ok_or_else(|| invalid("the message has no body".to_owned()))?;
    let envelope: Envelope = serde_json::from_str(body).map_err(|error| invalid(error.to_string()))?;
    if envelope.version != ENVELOPE_VERSION {
        return Err(TransformError::UnsupportedVersion { message_id: message_id.to_owned(), version: envelope.version });
    }
    let source = &envelope.source;
    let Some(mapping) = state.mappings.get(&envelope.dataset) else {
        return Err(TransformError::UnknownDataset {
            message_id: message_id.to_owned(),
            bucket: source.bucket.clone(),
            key: source.key.clone(),
            dataset: envelope.dataset.clone(),
        });
    };

    if Instant::now() >= deadline {
        return Err(TransformError::NotStarted { message_id: message_id.to_owned() });
    }
    let plan = transform::plan(mapping, &envelope, &writer::now_timestamp());
    state.writer.write(&envelope, &plan, WriteOptions::default(), deadline).await.map_err(|failure| TransformError::Write {
        message_id: message_id.to_owned(),
        bucket: source.bucket.clone(),
        key: source.key.clone(),
        failure,
    })
}

/// Counts over a batch, for its summary log line.
#[derive(Debug, Default)]
struct Summary {
    written: usize,
    rejected: usize,
    dropped: usize,
    failed: usize,
    rows_by_table: BTreeMap<String, usize>,
}

impl Summary {
    fn add(&mut self, written: &Written) {
        self.written += written.rows();
        self.rejected += written.rejected.len();
        self.dropped += written.dropped;
        for (table, rows) in &written.rows_by_table {
            *self.rows_by_table.entry(table.clone()).or_default() += rows;
        }
    }

    fn tables(&self) -> String {
        self.rows_by_table.iter().map(|(table, rows)| format!("{table}={rows}")).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = vec![("DB_CLUSTER_ARN", "arn:cluster"), ("DB_SECRET_ARN", "arn:secret")];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn invocation_deadline_reads_epoch_or_duration() {
        let margin = Duration::from_secs(2);
        let now_epoch_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let cases = [(now_epoch_ms + 60_000, 58), (600_000, 598), (now_epoch_ms - 1_000, 0)];
        for (deadline_ms, expected_secs) in cases {
            let remaining = invocation_deadline(deadline_ms, margin).saturating_duration_since(Instant::now());
            assert!(remaining.as_secs() + 1 >= expected_secs, "{deadline_ms}: {remaining:?}");
            assert!(remaining.as_secs() <= expected_secs, "{deadline_ms}: {remaining:?}");
        }
    }

    #[test]
    fn config_defaults() {
        let config = Config::from_env(&env(&[])).unwrap();
        assert_eq!(config.database, "pipeline");
        assert_eq!(config.rejects_table, "rejected_records");
        assert_eq!(config.deadline_margin, Duration::from_millis(2_000));
        assert_eq!(config.retry.max_attempts, 8);
        assert_eq!(config.max_request_bytes, 4 * 1024 * 1024);
        assert_eq!(config.message_concurrency, 4);
        assert!(config.mappings_dir.is_none());
    }

    #[test]
    fn config_errors_name_variable() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("REJECTS_TABLE", "Rejects")], "REJECTS_TABLE"),
            (&[("MAX_REQUEST_BYTES", "5000000")], "MAX_REQUEST_BYTES"),
            (&[("MESSAGE_CONCURRENCY", "0")], "MESSAGE_CONCURRENCY"),
            (&[("RETRY_BASE_DELAY_MS", "500"), ("RETRY_MAX_DELAY_MS", "100")], "RETRY_MAX_DELAY_MS"),
            (&[("DEADLINE_MARGIN_MS", "soon")], "DEADLINE_MARGIN_MS"),
        ];
        for (extra, variable) in cases {
            let error = Config::from_env(&env(extra)).unwrap_err();
            assert_eq!(error.variable, variable, "{error}");
        }
        let error = Config::from_env(&Env::from_pairs([("DB_SECRET_ARN", "s")])).unwrap_err();
        assert_eq!(error.variable, "DB_CLUSTER_ARN");
    }

    #[tokio::test]
    async fn deadline_keeps_margin() {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let deadline = invocation_deadline(now_ms + 10_000, Duration::from_millis(2_000));
        let remaining = deadline - Instant::now();
        assert!(remaining <= Duration::from_millis(8_000), "{remaining:?}");
        assert!(remaining >= Duration::from_millis(7_000), "{remaining:?}");
        // A deadline already past leaves no time at all.
        assert!(invocation_deadline(now_ms - 5_000, Duration::from_millis(2_000)) <= Instant::now());
    }
}
