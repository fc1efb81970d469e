//! compress-on-upload: writes a gzip copy of every object uploaded to the
//! input bucket into the archive location, streaming, in constant memory.
//!
//! The handler accepts every shape an S3 notification takes (direct S3
//! event, SQS batch of S3 events, SNS-wrapped, EventBridge "Object Created").
//! Objects that must not be compressed are skipped with a debug log; see
//! [`skip`]. A failure of any object fails the invocation so that Lambda
//! retries it. Objects already archived are then skipped cheaply, because
//! the archive copy records the source's ETag and version.

pub mod archive;
pub mod error;
pub mod skip;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use futures::StreamExt;
use lambda_runtime::LambdaEvent;
use pipeline_shared::event::{Notification, ObjectEvent, S3Location, parse_notification};
use pipeline_shared::{ConfigError, Env};
use serde::Serialize;

pub use archive::Outcome;
pub use error::CompressError;

/// S3's minimum size of every part of a multipart upload but the last: 5 MiB.
pub const MIN_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024;
/// S3's maximum part size: 5 GiB.
pub const MAX_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Configuration, read once per cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Archive location: `ARCHIVE_BUCKET` and `ARCHIVE_PREFIX` (default `archive/`).
    pub archive: S3Location,
    /// gzip level from 0 (store) to 9 (smallest): `COMPRESSION_LEVEL`, default 6.
    pub compression_level: u32,
    /// Size of each multipart upload part: `PART_SIZE_BYTES`, default 8 MiB, at least 5 MiB.
    pub part_size_bytes: usize,
    /// Parts uploaded at once per object: `MAX_PARTS_IN_FLIGHT`, default 1: uploading a part takes
    /// less time than compressing the next one, so more only costs memory.
    pub max_parts_in_flight: usize,
    /// Objects of one event processed at once: `MAX_CONCURRENT_OBJECTS`, default 4.
    pub max_concurrent_objects: usize,
    /// Deletes the source after its archive copy is verified: `DELETE_SOURCE`, default false.
    pub delete_source: bool,
}

impl Config {
    /// Reads and checks the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let prefix = env.optional("ARCHIVE_PREFIX").unwrap_or("archive/").to_owned();
        let part_size_bytes =
            env.parse_in_range("PART_SIZE_BYTES", 8 * 1024 * 1024, MIN_PART_SIZE_BYTES, MAX_PART_SIZE_BYTES)?;
        Ok(Self {
            archive: S3Location { bucket: env.required("ARCHIVE_BUCKET")?.to_owned(), prefix },
            compression_level: env.parse_in_range("COMPRESSION_LEVEL", 6, 0, 9)?,
            part_size_bytes: usize::try_from(part_size_bytes)
                .map_err(|_| ConfigError::new("PART_SIZE_BYTES", "does not fit in memory addresses"))?,
            max_parts_in_flight: env.parse_in_range("MAX_PARTS_IN_FLIGHT", 1, 1, 16)?,
            max_concurrent_objects: env.parse_in_range("MAX_CONCURRENT_OBJECTS", 4, 1, 64)?,
            delete_source: env.flag("DELETE_SOURCE", false)?,
        })
    }
}

/// Configuration and clients shared by every invocation.
#[derive(Debug, Clone)]
pub struct State {
    /// The configuration.
    pub config: Arc<Config>,
    /// S3 client.
    pub s3: aws_sdk_s3::Client,
}

impl State {
    /// Bundles the configuration and the S3 client.
    pub fn new(config: Config, s3: aws_sdk_s3::Client) -> Self {
        Self { config: Arc::new(config), s3 }
    }
}

/// Counts of one invocation's outcomes, returned to the caller.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Objects written to the archive.
    pub archived: usize,
    /// Objects skipped (not ours, already compressed, already archived, deleted).
    pub skipped: usize,
}

/// Handles one notification: archives every object it names.
///
/// Returns an error when any object failed, after every object of the event
/// has been tried, so that Lambda retries the event.
pub async fn handle(state: &State, event: LambdaEvent<serde_json::Value>) -> Result<Summary, CompressError> {
    let objects = match parse_notification(&event.payload)? {
        Notification::Test => {
            tracing::debug!("ignoring s3:TestEvent");
            return Ok(Summary::default());
        }
        Notification::Objects(objects) => objects,
    };

    let outcomes: Vec<Result<Outcome, CompressError>> = futures::stream::iter(objects)
        .map(|object| process(state, object))
        .buffer_unordered(state.config.max_concurrent_objects)
        .collect()
        .await;

    let mut summary = Summary::default();
    let mut errors = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(Outcome::Archived { .. }) => summary.archived += 1,
            Ok(_) => summary.skipped += 1,
            Err(error) => errors.push(error),
        }
    }
    match errors.len() {
        0 => Ok(summary),
        1 => Err(errors.remove(0)),
        _ => Err(CompressError::Several { count: errors.len(), first: Box::new(errors.remove(0)) }),
    }
}

async fn process(state: &State, object: ObjectEvent) -> Result<Outcome, CompressError> {
    if let Some(reason) = skip::skip_reason(&object, &state.config.archive) {
        tracing::debug!(bucket = %object.bucket, key = %object.key, reason = reason.as_str(), "skipping object");
        return Ok(Outcome::Skipped(reason));
    }
    let result = archive::archive_object(state, &object).await;
    if let Err(error) = &result {
        tracing::error!(bucket = %object.bucket, key = %object.key, error = %error, "archiving failed");
    }
    result
}
