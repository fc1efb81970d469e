//! The errors of the s3-to-sqs function.

use pipeline_shared::EventError;

use crate::batch::{MAX_MESSAGE_BUDGET_BYTES, MIN_MESSAGE_BUDGET_BYTES};

/// An error of the s3-to-sqs function. [`S3ToSqsError::is_retryable`] tells
/// whether running the same event again can help.
#[derive(Debug, thiserror::Error)]
pub enum S3ToSqsError {
    /// The event is not a notification this function understands.
    #[error(transparent)]
    Event(#[from] EventError),

    /// The key does not match `DATASET_KEY_PATTERN`, so the data set is unknown.
    #[error(
        "s3://{bucket}/{key}: key does not match DATASET_KEY_PATTERN {pattern:?}, so the data set is unknown; \
         upload under a matching prefix or change the pattern"
    )]
    DatasetNotMatched {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The pattern in use.
        pattern: String,
    },

    /// Neither `FORMAT`, the key suffix nor the Content-Type names a format.
    #[error(
        "s3://{bucket}/{key}: unknown format (Content-Type {content_type:?}); name the object .csv, .tsv, .jsonl, \
         .ndjson or .json (optionally with .gz) or set FORMAT"
    )]
    UnknownFormat {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The object's Content-Type, if any.
        content_type: Option<String>,
    },

    /// GetObject failed.
    #[error("s3://{bucket}/{key}: GetObject failed: {message}")]
    GetObject {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The SDK's error with its cause.
        message: String,
        /// Whether a later attempt may succeed (false for a missing object or no access).
        retryable: bool,
    },

    /// Reading the object's body failed, usually a network error.
    #[error("s3://{bucket}/{key}: reading the object failed after {bytes} bytes: {source}")]
    Read {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Bytes read before the failure.
        bytes: u64,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The key or headers indicate gzip but the data does not start with the gzip magic bytes.
    #[error("s3://{bucket}/{key}: not gzip data (no 1F 8B header) although the key or Content-Encoding says gzip")]
    NotGzip {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },

    /// The gzip stream is damaged or truncated.
    #[error("s3://{bucket}/{key}: invalid gzip data: {source}")]
    InvalidGzip {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The decoder's error.
        source: std::io::Error,
    },

    /// The object decompresses to far more bytes than it has, as a gzip bomb does.
    #[error(
        "s3://{bucket}/{key}: {compressed_bytes} compressed bytes expanded to {decompressed_bytes} bytes, \
         more than MAX_DECOMPRESSION_RATIO {max_ratio} times; raise the limit if the file is genuine"
    )]
    DecompressionRatio {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Compressed bytes read so far.
        compressed_bytes: u64,
        /// Decompressed bytes produced so far.
        decompressed_bytes: u64,
        /// The configured limit.
        max_ratio: u64,
    },

    /// The object cannot be parsed as a whole, for example a JSON array
    /// file that does not start with `[` or a CSV header that is not UTF-8.
    #[error("s3://{bucket}/{key}: cannot parse as {format} at line {line}: {reason}")]
    Unparseable {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The format the object was parsed as.
        format: String,
        /// Line (1-based) where parsing stopped.
        line: u64,
        /// Reason the object cannot be parsed.
        reason: String,
    },

    /// Some messages could not be sent to SQS.
    #[error("s3://{bucket}/{key}: {unsent} messages not sent to SQS: {reason}")]
    Send {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Messages of the failed batch that were not sent.
        unsent: usize,
        /// The SQS error codes and messages.
        reason: String,
        /// Whether a later attempt may succeed.
        retryable: bool,
    },

    /// A message budget outside the range that SQS allows.
    #[error(
        "message budget of {budget_bytes} bytes is outside the range {MIN_MESSAGE_BUDGET_BYTES} to {MAX_MESSAGE_BUDGET_BYTES}"
    )]
    Budget {
        /// The budget that was given.
        budget_bytes: usize,
    },

    /// Several objects of one event failed.
    #[error("{} of {total} objects failed: {}", errors.len(), join(errors))]
    Objects {
        /// Objects in the event.
        total: usize,
        /// One error per failed object.
        errors: Vec<S3ToSqsError>,
    },
}

impl S3ToSqsError {
    /// Returns true when running the same event again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::GetObject { retryable, .. } | Self::Send { retryable, .. } => *retryable,
            Self::Read { .. } => true,
            Self::Objects { errors, .. } => errors.iter().any(Self::is_retryable),
            Self::Event(_)
            | Self::DatasetNotMatched { .. }
            | Self::UnknownFormat { .. }
            | Self::NotGzip { .. }
            | Self::InvalidGzip { .. }
            | Self::DecompressionRatio { .. }
            | Self::Unparseable { .. }
            | Self::Budget { .. } => false,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Event(_) => "InvalidEvent",
            Self::DatasetNotMatched { .. } => "DatasetNotMatched",
            Self::UnknownFormat { .. } => "UnknownFormat",
            Self::GetObject { .. } => "GetObjectFailed",
            Self::Read { .. } => "ReadFailed",
            Self::NotGzip { .. } => "NotGzip",
            Self::InvalidGzip { .. } => "InvalidGzip",
            Self::DecompressionRatio { .. } => "DecompressionRatioExceeded",
            Self::Unparseable { .. } => "Unparseable",
            Self::Send { .. } => "SendFailed",
            Self::Budget { .. } => "InvalidBudget",
            Self::Objects { .. } => "ObjectsFailed",
        }
    }
}

impl From<S3ToSqsError> for lambda_runtime::Diagnostic {
    fn from(error: S3ToSqsError) -> Self {
        Self { error_type: error.kind().to_owned(), error_message: error.to_string() }
    }
}

fn join(errors: &[S3ToSqsError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
