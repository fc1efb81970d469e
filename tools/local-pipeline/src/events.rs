//! The stand-in for EventBridge: turns S3 notifications from the stand-in
//! queue into "Object Created" events and delivers each to the functions
//! whose rules match it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::Message;
use pipeline_shared::event::{Notification, ObjectEvent, parse_notification};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::journal::{Entry, now_ms};
use crate::run::{Context, Stats};
use crate::setup::EVENTS_VISIBILITY_TIMEOUT_SECS;
use crate::template::Wiring;
use crate::{Error, pattern};

/// The event shape that functions receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventShape {
    /// EventBridge's "Object Created" event, as the template's rules deliver it.
    Eventbridge,
    /// S3's own notification with one record, as an S3 trigger delivers it.
    S3,
}

/// A function and one of its rules.
#[derive(Debug, Clone)]
pub struct Target {
    /// Function (binary) name.
    pub function: String,
    /// The rule's pattern.
    pub pattern: Value,
}

/// Returns every rule of the template with its function.
pub fn targets(wiring: &Wiring) -> Vec<Target> {
    wiring
        .functions
        .iter()
        .flat_map(|function| {
            function.rules.iter().map(|rule| Target {
                function: function.binary.clone(),
                pattern: rule.pattern.clone(),
            })
        })
        .collect()
}

/// One object-created record of a notification, in both shapes.
#[derive(Debug, Clone)]
pub struct ObjectCreated {
    /// The record with its key decoded.
    pub object: ObjectEvent,
    /// The EventBridge "Object Created" event for the record.
    pub eventbridge: Value,
    /// An S3 event holding only this record.
    pub s3: Value,
}

/// Parses a notification body into its object-created records; a test
/// event or other event types give an empty list.
pub fn object_created(
    body: &str,
    account_id: &str,
    region: &str,
) -> Result<Vec<ObjectCreated>, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| format!("notification is not JSON: {error}"))?;
    let objects = match parse_notification(&value).map_err(|error| error.to_string())? {
        Notification::Test => return Ok(Vec::new()),
        Notification::Objects(objects) => objects,
    };
    let records = value
        .get("Records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if records.len() != objects.len() {
        return Err(format!(
            "expected {} S3 records, found {}",
            objects.len(),
            records.len()
        ));
    }

    Ok(objects
        .into_iter()
        .zip(records)
        .filter(|(object, _)| object.is_object_created())
        .map(|(object, record)| ObjectCreated {
            eventbridge: eventbridge_event(&object, &record, account_id, region),
            s3: json!({"Records": [record]}),
            object,
        })
        .collect())
}

/// Builds the event that S3 sends to EventBridge for an object-created
/// record. Unlike S3 notifications, EventBridge events carry the key as it
/// is, not URL-encoded.
fn eventbridge_event(
    object: &ObjectEvent,
    record: &Value,
    account_id: &str,
    region: &str,
) -> Value {
    let text = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    // EventBridge times have whole seconds: 2024-05-01T12:00:00Z.
    let event_time = text("/eventTime");
    let time = match event_time.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => event_time,
    };
    let reason = match object.event_name.trim_start_matches("ObjectCreated:") {
        "Put" => "PutObject",
        "Post" => "PostObject",
        "Copy" => "CopyObject",
        "CompleteMultipartUpload" => "CompleteMultipartUpload",
        other => other,
    };

    let mut detail_object = json!({"key": object.key, "sequencer": text("/s3/object/sequencer")});
    if let Some(size) = object.size {
        detail_object["size"] = json!(size);
    }
    if let Some(etag) = &object.etag {
        detail_object["etag"] = json!(etag);
    }
    if let Some(version_id) = &object.version_id {
        detail_object["version-id"] = json!(version_id);
    }

    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account_id,
        "time": time,
        "region": region,
        "resources": [format!("arn:aws:s3:::{}", object.bucket)],
        "detail": {
            "version": "0",
            "bucket": {"name": object.bucket},
            "object": detail_object,
            "request-id": text("/responseElements/x-amz-request-id"),
            "requester": account_id,
            "source-ip-address": text("/requestParameters/sourceIPAddress"),
            "reason": reason,
        }
    })
}

/// Polls the stand-in queue until shutdown, delivering each notification.
pub async fn deliver_loop(
    context: Arc<Context>,
    targets: Vec<Target>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Targets that already succeeded per message, so that a retry invokes
    // only the ones that failed, as EventBridge retries each target alone.
    let mut delivered: HashMap<String, HashSet<(usize, String)>> = HashMap::new();
    let queue_url = context.events_queue_url.clone();

    while !*shutdown.borrow() {
        let receive = context
            .sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send();
        let output = tokio::select! {
            output = receive => output,
            _ = shutdown.changed() => break,
        };
        let messages = match output {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(queue = %queue_url, error = %Error::aws("ReceiveMessage", &queue_url, error), "cannot poll the stand-in queue, retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        for message in messages {
            deliver_message(&context, &targets, &message, &mut delivered).await;
        }
    }
}

async fn deliver_message(
    context: &Context,
    targets: &[Target],
    message: &Message,
    delivered: &mut HashMap<String, HashSet<(usize, String)>>,
) {
    let message_id = message.message_id.clone().unwrap_or_default();
    let receipt_handle = message.receipt_handle.clone().unwrap_or_default();
    let body = message.body.as_deref().unwrap_or_default();
    let queue_url = &context.events_queue_url;

    let records = match object_created(body, &context.naming.account_id, &context.naming.region) {
        Ok(records) => records,
        Err(reason) => {
            // Left for the retry policy, which moves it to the dead-letter
            // queue where it can be inspected.
            tracing::error!(message_id = %message_id, error = %reason, "unreadable notification");
            retry_later(context, &receipt_handle, &message_id).await;
            return;
        }
    };
    if records.is_empty() {
        tracing::debug!(message_id = %message_id, "notification without object-created records, skipped");
        delete(context, queue_url, &receipt_handle, &message_id).await;
        return;
    }

    let done = delivered.entry(message_id.clone()).or_default();
    let mut all_succeeded = true;
    for (index, record) in records.iter().enumerate() {
        let bucket = &record.object.bucket;
        let key = &record.object.key;
        let matching: Vec<&Target> = targets
            .iter()
            .filter(|t| pattern::matches(&t.pattern, &record.eventbridge))
            .collect();
        if matching.is_empty() {
            tracing::debug!(bucket = %bucket, key = %key, "no rule matches, skipped");
            continue;
        }

        let pending: Vec<&Target> = matching
            .into_iter()
            .filter(|t| !done.contains(&(index, t.function.clone())))
            .collect();
        let payload = match context.event_shape {
            EventShape::Eventbridge => &record.eventbridge,
            EventShape::S3 => &record.s3,
        };
        let invocations = pending.iter().map(|target| async move {
            let started = Instant::now();
            let result = context.invoker.invoke(&target.function, payload).await;
            (target, result, started.elapsed())
        });
        let results = with_heartbeat(
            context,
            &receipt_handle,
            &message_id,
            futures::future::join_all(invocations),
        )
        .await;
        for (target, result, elapsed) in results {
            let mut entry = Entry {
                time_ms: now_ms(),
                function: target.function.clone(),
                trigger: "object-created".to_owned(),
                bucket: Some(bucket.clone()),
                key: Some(key.clone()),
                messages: 0,
                failed: 0,
                ok: result.is_ok(),
                error: None,
                response: Value::Null,
                duration_ms: elapsed.as_millis() as u64,
            };
            match result {
                Ok(response) => {
                    entry.response = serde_json::from_slice(&response).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&response).into_owned())
                    });
                    tracing::info!(function = %target.function, bucket = %bucket, key = %key, duration_ms = entry.duration_ms, "object delivered");
                    done.insert((index, target.function.clone()));
                    context.stats.add(|s: &mut Stats| s.invocations_ok += 1);
                }
                Err(error) => {
                    tracing::error!(function = %target.function, bucket = %bucket, key = %key, error = %error, "delivery failed, will retry");
                    entry.error = Some(error.to_string());
                    all_succeeded = false;
                    context.stats.add(|s: &mut Stats| s.invocations_failed += 1);
                }
            }
            if let Some(journal) = &context.journal {
                journal.append(&entry);
            }
        }
    }

    if all_succeeded {
        delivered.remove(&message_id);
        delete(context, queue_url, &receipt_handle, &message_id).await;
    } else {
        retry_later(context, &receipt_handle, &message_id).await;
    }
}

/// Runs `work` while extending the message's visibility timeout, so that it
/// does not return to the queue while its invocations are still running.
async fn with_heartbeat<T>(
    context: &Context,
    receipt_handle: &str,
    message_id: &str,
    work: impl Future<Output = T>,
) -> T {
    let period = Duration::from_secs(u64::from(EVENTS_VISIBILITY_TIMEOUT_SECS / 3));
    let heartbeat = async {
        loop {
            tokio::time::sleep(period).await;
            let result = context
                .sqs
                .change_message_visibility()
                .queue_url(&context.events_queue_url)
                .receipt_handle(receipt_handle)
                .visibility_timeout(EVENTS_VISIBILITY_TIMEOUT_SECS as i32)
                .send()
                .await;
            if let Err(error) = result {
                tracing::warn!(message_id = %message_id, error = %Error::aws("ChangeMessageVisibility", &context.events_queue_url, error), "visibility not extended; the notification may be delivered twice");
            }
        }
    };
    tokio::select! {
        output = work => output,
        () = heartbeat => unreachable!("the heartbeat loop never ends"),
    }
}

async fn delete(context: &Context, queue_url: &str, receipt_handle: &str, message_id: &str) {
    if let Err(error) = context
        .sqs
        .delete_message()
        .queue_url(queue_url)
        .receipt_handle(receipt_handle)
        .send()
        .await
    {
        tracing::warn!(message_id = %message_id, error = %Error::aws("DeleteMessage", queue_url, error), "notification not deleted; it will be delivered again");
    }
}

/// Makes a failed notification visible again after the retry delay, rather
/// than after the stand-in queue's long visibility timeout.
async fn retry_later(context: &Context, receipt_handle: &str, message_id: &str) {
    let queue_url = &context.events_queue_url;
    let delay = context.retry_delay_secs.min(43_200) as i32;
    let result = context
        .sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(delay)
        .send()
        .await;
    if let Err(error) = result {
        tracing::warn!(message_id = %message_id, error = %Error::aws("ChangeMessageVisibility", queue_url, error), "retry delay not set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTIFICATION: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
        "eventTime":"2024-05-01T12:00:00.123Z","eventName":"ObjectCreated:Put",
        "requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"R1"},
        "s3":{"bucket":{"name":"input"},"object":{"key":"incoming/airports/US+airports+%E2%80%94+%C3%A9t%C3%A9.csv","size":42,"eTag":"\"abc\"","sequencer":"0055"}}}]}"#;

    #[test]
    fn eventbridge_event_has_decoded_key() {
        let records = object_created(NOTIFICATION, "000000000000", "us-east-1").unwrap();
        assert_eq!(records.len(), 1);
        let event = &records[0].eventbridge;
        assert_eq!(
            event["detail"]["object"]["key"],
            "incoming/airports/US airports — été.csv"
        );
        assert_eq!(event["detail"]["object"]["size"], 42);
        assert_eq!(event["detail"]["object"]["etag"], "abc");
        assert_eq!(event["detail"]["reason"], "PutObject");
        assert_eq!(event["time"], "2024-05-01T12:00:00Z");
        assert_eq!(event["resources"][0], "arn:aws:s3:::input");
    }

    #[test]
    fn s3_shape_keeps_the_record() {
        let records = object_created(NOTIFICATION, "000000000000", "us-east-1").unwrap();
        assert_eq!(
            records[0].s3["Records"][0]["s3"]["object"]["key"],
            "incoming/airports/US+airports+%E2%80%94+%C3%A9t%C3%A9.csv"
        );
    }

    #[test]
    fn test_event_has_no_records() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"input"}"#;
        assert!(
            object_created(body, "000000000000", "us-east-1")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn removal_is_skipped() {
        let body = NOTIFICATION.replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert!(
            object_created(&body, "000000000000", "us-east-1")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(object_created("not json", "000000000000", "us-east-1").is_err());
    }
}
