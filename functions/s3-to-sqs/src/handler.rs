//! The Lambda handler: which objects of an event to read, and the outcome.

use lambda_runtime::LambdaEvent;
use pipeline_shared::event::{Notification, parse_notification};
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, error};

use crate::config::Config;
use crate::error::S3ToSqsError;
use crate::object::{ObjectSummary, process_object};

/// Configuration and SDK clients, built once per cold start.
#[derive(Debug, Clone)]
pub struct State {
    /// The function's configuration.
    pub config: Config,
    /// S3 client for GetObject.
    pub s3: aws_sdk_s3::Client,
    /// SQS client for SendMessageBatch.
    pub sqs: aws_sdk_sqs::Client,
}

/// Outcome of one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Response {
    /// One summary per object sent.
    pub objects: Vec<ObjectSummary>,
    /// Objects skipped: other event types, folder markers and archive copies.
    pub skipped: usize,
}

/// Handles an S3 notification in any shape that
/// [`parse_notification`] accepts.
///
/// Each object-created event is streamed to SQS. Test events, other event
/// types, folder markers and objects in the archive location are logged at
/// debug level and skipped. A key that does not match
/// `DATASET_KEY_PATTERN` fails its object (not skipped), so that a
/// misplaced upload reaches the function's failure destination instead of
/// vanishing. When objects fail, the others are still processed and the
/// invocation fails with every error. The retry then sends the succeeded
/// objects again with the same record ids, so the transform skips them.
pub async fn handle(state: &State, event: LambdaEvent<Value>) -> Result<Response, S3ToSqsError> {
    handle_notification(state, &event.payload).await
}

/// Handles a notification given as JSON, without a Lambda context; this is
/// what [`handle`] does, for benchmarks and tools that run outside Lambda.
pub async fn handle_notification(state: &State, payload: &Value) -> Result<Response, S3ToSqsError> {
    let notification = parse_notification(payload).map_err(|error| {
        error!(error = %error, "invalid event");
        S3ToSqsError::from(error)
    })?;
    let objects = match notification {
        Notification::Test => {
            debug!("S3 test event, nothing to read");
            return Ok(Response::default());
        }
        Notification::Objects(objects) => objects,
    };

    let mut response = Response::default();
    let mut errors = Vec::new();
    for object in &objects {
        let bucket = object.bucket.as_str();
        let key = object.key.as_str();
        if !object.is_object_created() {
            debug!(bucket, key, event_name = %object.event_name, "skipped: not an object-created event");
            response.skipped += 1;
            continue;
        }
        if object.is_folder_marker() {
            debug!(bucket, key, "skipped: folder marker");
            response.skipped += 1;
            continue;
        }
        if state.config.is_archived(bucket, key) {
            debug!(bucket, key, "skipped: archive copy");
            response.skipped += 1;
            continue;
        }

        let result = match state.config.dataset_for(key) {
            Some(dataset) => process_object(state, object, dataset).await,
            None => Err(S3ToSqsError::DatasetNotMatched {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                pattern: state.config.dataset_pattern.as_str().to_owned(),
            }),
        };
        match result {
            Ok(summary) => response.objects.push(summary),
            Err(failure) => {
                error!(bucket, key, error = %failure, retryable = failure.is_retryable(), "object not sent to SQS");
                errors.push(failure);
            }
        }
    }

    match errors.len() {
        0 => Ok(response),
        1 => Err(errors.remove(0)),
        _ => Err(S3ToSqsError::Objects { total: objects.len(), errors }),
    }
}
