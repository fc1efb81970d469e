//! The local pipeline's error type.

use crate::invoke::InvokeError;
use crate::template::TemplateError;

/// A failure of `local-pipeline`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template cannot be read or resolved.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A call to S3, SQS or the Data API failed.
    #[error("{operation} on {resource} failed: {message}")]
    Aws {
        /// API operation, such as `CreateQueue`.
        operation: &'static str,
        /// Bucket, queue URL or table concerned.
        resource: String,
        /// The error with its sources.
        message: String,
    },
    /// A function invocation failed.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The template lacks something the command needs.
    #[error("{0}")]
    Wiring(String),
    /// `run --drain-timeout-secs` ran out of time with messages left.
    #[error("the queues did not drain within {timeout_secs} s: {remaining}")]
    NotDrained {
        /// The drain timeout in seconds.
        timeout_secs: u64,
        /// Messages left per queue.
        remaining: String,
    },
}

impl Error {
    /// Wraps an AWS SDK error with the operation and resource it concerns.
    pub fn aws(
        operation: &'static str,
        resource: impl Into<String>,
        error: impl std::error::Error,
    ) -> Self {
        Self::Aws {
            operation,
            resource: resource.into(),
            message: aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
        }
    }

    /// Returns true when running the command again can help: a service or
    /// function that was not reachable, or a queue that was slow to drain.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Aws { .. } | Self::Invoke(_) | Self::NotDrained { .. }
        )
    }
}
