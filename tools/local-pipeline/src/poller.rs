//! A local SQS event source mapping: polls a queue, invokes a function with
//! batches, and deletes the messages that succeeded.
//!
//! It follows Lambda's documented behaviour for SQS: a batch closes when it
//! has `BatchSize` messages, when `MaximumBatchingWindowInSeconds` has passed
//! since its first message, or when the payload nears the 6 MB invocation
//! limit. A failed invocation deletes nothing. With `ReportBatchItemFailures`
//! only the messages listed in `batchItemFailures` stay. A response that is
//! not JSON, or that names an empty, null or unknown id, fails the whole batch.
//! Messages that stay become visible again after the queue's visibility
//! timeout, and SQS moves them to the dead-letter queue after the redrive
//! policy's `maxReceiveCount`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::Value;
use tokio::sync::watch;

use crate::Error;
use crate::journal::{Entry, now_ms};
use crate::run::{Context, Stats};
use crate::template::SqsSource;

/// Lambda's payload limit for a synchronous invocation: 6 MB.
const INVOKE_PAYLOAD_LIMIT_BYTES: usize = 6 * 1024 * 1024;
/// SQS's maximum message size (256 KiB), kept free per message that one more
/// receive may add, so that a batch never outgrows the payload limit.
const MESSAGE_LIMIT_BYTES: usize = 256 * 1024;
/// SQS's maximum messages per ReceiveMessage and DeleteMessageBatch: 10.
const SQS_MAX_BATCH: usize = 10;

/// One poller of an event source mapping.
#[derive(Debug, Clone)]
pub struct Poller {
    /// Function (binary) name.
    pub function: String,
    /// The mapping's settings.
    pub source: SqsSource,
    /// URL of the polled queue.
    pub queue_url: String,
}

/// Meaning of a function's response for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every message succeeded.
    AllSucceeded,
    /// The listed message ids failed; the others succeeded.
    SomeFailed(HashSet<String>),
    /// The whole batch failed, for the reason given.
    AllFailed(String),
}

/// Interprets a successful invocation's response for a batch with
/// `message_ids`, following Lambda's rules for `ReportBatchItemFailures`.
pub fn batch_outcome(
    response: &[u8],
    message_ids: &[String],
    report_batch_item_failures: bool,
) -> BatchOutcome {
    if !report_batch_item_failures {
        return BatchOutcome::AllSucceeded;
    }
    let text = String::from_utf8_lossy(response);
    if text.trim().is_empty() {
        return BatchOutcome::AllSucceeded;
    }
    let value: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(error) => return BatchOutcome::AllFailed(format!("response is not JSON: {error}")),
    };
    let failures = match value.get("batchItemFailures") {
        None | Some(Value::Null) => return BatchOutcome::AllSucceeded,
        Some(Value::Array(failures)) => failures,
        Some(other) => {
            return BatchOutcome::AllFailed(format!("batchItemFailures is not a list: {other}"));
        }
    };

    let mut failed = HashSet::new();
    for failure in failures {
        match failure.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if message_ids.iter().any(|known| known == id) => {
                failed.insert(id.to_owned());
            }
            Some("") | None => {
                return BatchOutcome::AllFailed(format!("invalid itemIdentifier in {failure}"));
            }
            Some(unknown) => {
                return BatchOutcome::AllFailed(format!(
                    "itemIdentifier {unknown} is not in the batch"
                ));
            }
        }
    }
    if failed.is_empty() {
        BatchOutcome::AllSucceeded
    } else {
        BatchOutcome::SomeFailed(failed)
    }
}

/// Builds the event that Lambda passes for a batch of SQS messages.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|message| sqs_message(message, queue_arn, region))
        .collect();
    event
}

fn sqs_message(message: &Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.md5_of_body = message.md5_of_body.clone();
    record.md5_of_message_attributes = message.md5_of_message_attributes.clone();
    record.attributes = message
        .attributes
        .iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
        .collect::<HashMap<_, _>>();
    record.message_attributes = message
        .message_attributes
        .iter()
        .flatten()
        .map(|(name, value)| {
            let mut attribute = SqsMessageAttribute::default();
            attribute.data_type = Some(value.data_type.clone());
            attribute.string_value = value.string_value.clone();
            attribute.binary_value = value.binary_value.as_ref().map(|blob| {
                let mut data = Base64Data::default();
                data.0 = blob.as_ref().to_vec();
                data
            });
            attribute.string_list_values = value.string_list_values.clone().unwrap_or_default();
            (name.clone(), attribute)
        })
        .collect();
    record.event_source_arn = Some(queue_arn.to_owned());
    record.event_source = Some("aws:sqs".to_owned());
    record.aws_region = Some(region.to_owned());
    record
}

/// Polls until shutdown; a batch already received is still processed.
pub async fn poll_loop(context: Arc<Context>, poller: Poller, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let batch = match gather(&context, &poller, &mut shutdown).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(queue = %poller.queue_url, error = %error, "cannot poll the queue, retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if !batch.is_empty() {
            process_batch(&context, &poller, batch).await;
        }
    }
}

/// Receives messages until the batch is complete, as described in the
/// module documentation.
async fn gather(
    context: &Context,
    poller: &Poller,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Vec<Message>, Error> {
    let batch_size = poller.source.batch_size as usize;
    let window = Duration::from_secs(u64::from(poller.source.maximum_batching_window_secs));
    let mut batch: Vec<Message> = Vec::new();
    let mut payload_bytes = 0;
    let mut window_end: Option<Instant> = None;

    loop {
        let room_for =
            (INVOKE_PAYLOAD_LIMIT_BYTES.saturating_sub(payload_bytes)) / MESSAGE_LIMIT_BYTES;
        let wanted = SQS_MAX_BATCH
            .min(batch_size - batch.len())
            .min(room_for)
            .max(1);
        // Short polls while idle keep shutdown and draining prompt. Inside a
        // batching window the poll lasts until the window closes, up to SQS's
        // maximum wait of 20 s.
        let wait_secs = match window_end {
            None => 1,
            Some(end) => end
                .saturating_duration_since(Instant::now())
                .as_secs()
                .min(20) as i32,
        };
        let receive = context
            .sqs
            .receive_message()
            .queue_url(&poller.queue_url)
            .max_number_of_messages(wanted as i32)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        let output = tokio::select! {
            output = receive => output.map_err(|error| Error::aws("ReceiveMessage", &poller.queue_url, error))?,
            _ = shutdown.changed() => return Ok(batch),
        };

        for message in output.messages.unwrap_or_default() {
            payload_bytes += message.body.as_ref().map_or(0, String::len) + 1024;
            batch.push(message);
        }
        if batch.is_empty() {
            continue;
        }
        let end = *window_end.get_or_insert_with(|| Instant::now() + window);
        let full = batch.len() >= batch_size
            || payload_bytes + MESSAGE_LIMIT_BYTES > INVOKE_PAYLOAD_LIMIT_BYTES;
        if full || Instant::now() >= end || *shutdown.borrow() {
            return Ok(batch);
        }
    }
}

async fn process_batch(context: &Context, poller: &Poller, batch: Vec<Message>) {
    let function = &poller.function;
    let queue_arn = &poller.source.queue_arn;
    let message_ids: Vec<String> = batch
        .iter()
        .map(|m| m.message_id.clone().unwrap_or_default())
        .collect();
    let event = sqs_event(&batch, queue_arn, &context.naming.region);
    let payload = match serde_json::to_value(&event) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::error!(function = %function, error = %error, "cannot serialise the SQS event");
            return;
        }
    };

    let started = Instant::now();
    let result = context.invoker.invoke(function, &payload).await;
    let duration_ms = started.elapsed().as_millis() as u64;

    let (outcome, response) = match &result {
        Ok(response) => (
            batch_outcome(
                response,
                &message_ids,
                poller.source.report_batch_item_failures,
            ),
            response.clone(),
        ),
        Err(error) => (
            BatchOutcome::AllFailed(error.to_string()),
            bytes::Bytes::new(),
        ),
    };
    let succeeded: Vec<&Message> = match &outcome {
        BatchOutcome::AllSucceeded => batch.iter().collect(),
        BatchOutcome::SomeFailed(failed) => batch
            .iter()
            .filter(|m| !failed.contains(m.message_id.as_deref().unwrap_or_default()))
            .collect(),
        BatchOutcome::AllFailed(_) => Vec::new(),
    };
    let failed_count = batch.len() - succeeded.len();

    delete_messages(context, &poller.queue_url, &succeeded).await;

    match &outcome {
        BatchOutcome::AllFailed(reason) => {
            tracing::error!(function = %function, queue = %poller.queue_url, messages = batch.len(), error = %reason, "batch failed; its messages return after the visibility timeout");
        }
        _ if failed_count > 0 => {
            tracing::warn!(function = %function, queue = %poller.queue_url, messages = batch.len(), failed = failed_count, duration_ms, "batch partly failed; failed messages return after the visibility timeout");
        }
        _ => {
            tracing::info!(function = %function, queue = %poller.queue_url, messages = batch.len(), duration_ms, "batch succeeded")
        }
    }
    context.stats.add(|s: &mut Stats| {
        s.messages_deleted += succeeded.len() as u64;
        s.messages_failed += failed_count as u64;
        if result.is_ok() {
            s.invocations_ok += 1
        } else {
            s.invocations_failed += 1
        }
    });

    if let Some(journal) = &context.journal {
        journal.append(&Entry {
            time_ms: now_ms(),
            function: function.clone(),
            trigger: "sqs".to_owned(),
            bucket: None,
            key: None,
            messages: batch.len(),
            failed: failed_count,
            ok: matches!(outcome, BatchOutcome::AllSucceeded),
            error: match outcome {
                BatchOutcome::AllFailed(reason) => Some(reason),
                _ => None,
            },
            response: serde_json::from_slice(&response).unwrap_or(Value::Null),
            duration_ms,
        });
    }
}

async fn delete_messages(context: &Context, queue_url: &str, messages: &[&Message]) {
    for chunk in messages.chunks(SQS_MAX_BATCH) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(index, message)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        match context
            .sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                for failure in output.failed {
                    tracing::warn!(queue = %queue_url, entry = %failure.id, error = %failure.message.unwrap_or_default(), "message not deleted; it will be delivered again");
                }
            }
            Err(error) => {
                tracing::warn!(queue = %queue_url, error = %Error::aws("DeleteMessageBatch", queue_url, error), "messages not deleted; they will be delivered again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["m1".to_owned(), "m2".to_owned(), "m3".to_owned()]
    }

    #[test]
    fn batch_outcome_cases() {
        let failed =
            |list: &[&str]| BatchOutcome::SomeFailed(list.iter().map(|s| s.to_string()).collect());
        let cases: Vec<(&str, BatchOutcome)> = vec![
            ("", BatchOutcome::AllSucceeded),
            ("null", BatchOutcome::AllSucceeded),
            ("{}", BatchOutcome::AllSucceeded),
            (r#"{"batchItemFailures":null}"#, BatchOutcome::AllSucceeded),
            (r#"{"batchItemFailures":[]}"#, BatchOutcome::AllSucceeded),
            (
                r#"{"batchItemFailures":[{"itemIdentifier":"m2"}]}"#,
                failed(&["m2"]),
            ),
            (
                r#"{"batchItemFailures":[{"itemIdentifier":"m1"},{"itemIdentifier":"m3"}]}"#,
                failed(&["m1", "m3"]),
            ),
        ];
        for (response, expected) in cases {
            assert_eq!(
                batch_outcome(response.as_bytes(), &ids(), true),
                expected,
                "{response}"
            );
        }
    }

    #[test]
    fn invalid_responses_fail_whole_batch() {
        let cases = [
            "not json",
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemId":"m1"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"m9"}]}"#,
            r#"{"batchItemFailures":"m1"}"#,
        ];
        for response in cases {
            assert!(
                matches!(
                    batch_outcome(response.as_bytes(), &ids(), true),
                    BatchOutcome::AllFailed(_)
                ),
                "{response}"
            );
        }
    }

    #[test]
    fn without_reporting_response_is_ignored() {
        let response = br#"{"batchItemFailures":[{"itemIdentifier":"m2"}]}"#;
        assert_eq!(
            batch_outcome(response, &ids(), false),
            BatchOutcome::AllSucceeded
        );
    }

    #[test]
    fn sqs_event_has_lambda_fields() {
        let message = Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body("{}")
            .md5_of_body("99914b932bd37a50b983c5e7c90ae93b")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .build();
        let event = serde_json::to_value(sqs_event(
            &[message],
            "arn:aws:sqs:us-east-1:000000000000:q",
            "us-east-1",
        ))
        .unwrap();
        let record = &event["Records"][0];
        assert_eq!(record["messageId"], "m1");
        assert_eq!(record["receiptHandle"], "r1");
        assert_eq!(record["body"], "{}");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(
            record["eventSourceARN"],
            "arn:aws:sqs:us-east-1:000000000000:q"
        );
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
    }
}
