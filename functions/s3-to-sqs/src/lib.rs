//! s3-to-sqs: streams an object uploaded to S3, splits it into records and
//! sends them to SQS in size-bounded JSON envelopes.
//!
//! The object is never held whole in memory. The GetObject body is read in
//! chunks and gunzipped when needed. A push parser (CSV, JSON Lines or a JSON
//! array) cuts it into records, which are packed into envelopes of at most
//! `MESSAGE_BUDGET_BYTES` and sent with SendMessageBatch while the next
//! chunk is read. A record that cannot be used is carried as a reject in
//! the envelope, so that nothing is lost silently.
//!
//! [`envelopes_from_bytes`] runs the same parser and batcher on bytes in
//! memory, for tests and benchmarks of the downstream function.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod batch;
mod config;
mod error;
mod format;
mod handler;
mod json_text;
mod object;
mod parse;
mod send;

use pipeline_shared::envelope::Source;

pub use batch::{MAX_MESSAGE_BUDGET_BYTES, MIN_MESSAGE_BUDGET_BYTES};
pub use config::{
    Config, DECOMPRESSION_CHECK_FLOOR_BYTES, DEFAULT_DATASET_KEY_PATTERN, DEFAULT_MESSAGE_BUDGET_BYTES, RetryPolicy,
};
pub use error::S3ToSqsError;
pub use format::Format;
pub use handler::{Response, State, handle, handle_notification};
pub use object::ObjectSummary;
pub use parse::{ParseError, ParseOptions};

/// Parses `data` (uncompressed) as `format` and returns the SQS message
/// bodies that the handler would send for it, each at most `budget_bytes`
/// long. `budget_bytes` must lie within [`MIN_MESSAGE_BUDGET_BYTES`] and
/// [`MAX_MESSAGE_BUDGET_BYTES`].
pub fn envelopes_from_bytes(
    source: &Source,
    dataset: &str,
    format: Format,
    data: &[u8],
    options: &ParseOptions,
    budget_bytes: usize,
) -> Result<Vec<String>, S3ToSqsError> {
    if !(MIN_MESSAGE_BUDGET_BYTES..=MAX_MESSAGE_BUDGET_BYTES).contains(&budget_bytes) {
        return Err(S3ToSqsError::Budget { budget_bytes });
    }

    let mut parser = parse::RecordParser::new(format, options);
    let mut batcher = batch::Batcher::new(source, dataset, format, budget_bytes, options.max_reject_raw_bytes);
    let result = parser.feed(data, &mut batcher).and_then(|()| parser.finish(&mut batcher));
    result.map_err(|error| S3ToSqsError::Unparseable {
        bucket: source.bucket.clone(),
        key: source.key.clone(),
        format: format.to_string(),
        line: error.line,
        reason: error.reason,
    })?;
    batcher.finish();
    Ok(batcher.drain_ready().map(|message| message.body).collect())
}

#[cfg(test)]
mod tests;
