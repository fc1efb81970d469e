//! Errors of compress-on-upload.

use pipeline_shared::EventError;

/// A failure to archive an object.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// The event itself is invalid; a retry cannot help.
    #[error(transparent)]
    Event(#[from] EventError),
    /// An S3 call failed.
    #[error("{operation} failed for s3://{bucket}/{key}: {message}")]
    S3 {
        /// The S3 operation, such as `GetObject` or `UploadPart`.
        operation: &'static str,
        /// Bucket of the object concerned.
        bucket: String,
        /// Key of the object concerned.
        key: String,
        /// The SDK's error with its source chain.
        message: String,
    },
    /// Reading the source's body failed midway.
    #[error("reading s3://{bucket}/{key} failed after {bytes_read} bytes: {message}")]
    Read {
        /// Source bucket.
        bucket: String,
        /// Source key.
        key: String,
        /// Bytes read before the failure.
        bytes_read: u64,
        /// The underlying error.
        message: String,
    },
    /// The source's body was shorter or longer than its Content-Length.
    #[error("s3://{bucket}/{key}: read {bytes_read} bytes but Content-Length is {content_length}; upload aborted")]
    LengthMismatch {
        /// Source bucket.
        bucket: String,
        /// Source key.
        key: String,
        /// Bytes read.
        bytes_read: u64,
        /// Content-Length of the GetObject response.
        content_length: u64,
    },
    /// The archive key would exceed S3's 1024-byte key limit.
    #[error("archive key for s3://{bucket}/{key} would be {length} bytes, over S3's 1024-byte limit")]
    KeyTooLong {
        /// Source bucket.
        bucket: String,
        /// Source key.
        key: String,
        /// Length of the archive key in bytes.
        length: usize,
    },
    /// Several objects of one event failed; the first is kept.
    #[error("{count} objects failed; first: {first}")]
    Several {
        /// Number of failed objects.
        count: usize,
        /// The first failure.
        first: Box<CompressError>,
    },
}

impl CompressError {
    /// Returns true when retrying the same event can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Event(_) | Self::KeyTooLong { .. } => false,
            Self::S3 { .. } | Self::Read { .. } | Self::LengthMismatch { .. } => true,
            Self::Several { first, .. } => first.is_retryable(),
        }
    }

    /// Builds a [`CompressError::S3`] from an SDK error, keeping its whole source chain.
    pub fn s3(operation: &'static str, bucket: &str, key: &str, error: impl std::error::Error) -> Self {
        let message = aws_sdk_s3::error::DisplayErrorContext(error).to_string();
        Self::S3 { operation, bucket: bucket.to_owned(), key: key.to_owned(), message }
    }
}

impl From<CompressError> for lambda_runtime::Diagnostic {
    fn from(error: CompressError) -> Self {
        let error_type = match &error {
            CompressError::Event(_) => "InvalidEvent",
            CompressError::S3 { .. } => "S3Error",
            CompressError::Read { .. } => "ReadError",
            CompressError::LengthMismatch { .. } => "LengthMismatch",
            CompressError::KeyTooLong { .. } => "KeyTooLong",
            CompressError::Several { .. } => "SeveralObjectsFailed",
        };
        lambda_runtime::Diagnostic { error_type: error_type.to_owned(), error_message: error.to_string() }
    }
}
