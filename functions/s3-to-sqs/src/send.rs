//! Sends envelopes with SendMessageBatch, several calls at once, and resends
//! the entries that SQS reports as failed.

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use tokio::task::JoinSet;
use tracing::warn;

use crate::batch::Message;
use crate::config::RetryPolicy;

/// SendMessageBatch takes at most 10 entries per call.
pub(crate) const MAX_BATCH_ENTRIES: usize = 10;

/// Failure of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SendFailure {
    /// Messages of the batch that were not sent.
    pub unsent: usize,
    /// SQS's error codes and messages.
    pub reason: String,
    /// Whether a later attempt may succeed.
    pub retryable: bool,
}

/// Counts of one object's sending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SendTotals {
    /// SendMessageBatch calls made, resends included.
    pub requests: u64,
    /// Messages sent.
    pub messages: u64,
    /// Entries resent after SQS reported them failed.
    pub resent: u64,
}

/// Queue, client and retry policy that messages are sent with.
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// Queue URL.
    pub queue_url: Arc<str>,
    /// MessageGroupId for a FIFO queue, `None` for a standard queue.
    pub group_id: Option<Arc<str>>,
    /// Backoff for failed entries.
    pub retry: RetryPolicy,
}

/// Groups messages into SendMessageBatch calls and keeps a bounded number
/// of calls running, so that reading the object waits (backpressure) when
/// SQS is slower than parsing. Memory stays below about
/// `(max_in_flight + 1) * batch_bytes`.
#[derive(Debug)]
pub(crate) struct SendPipeline {
    destination: Destination,
    max_in_flight: usize,
    batch_bytes: usize,
    batch: Vec<Message>,
    batch_size: usize,
    in_flight: JoinSet<Result<SendTotals, SendFailure>>,
    totals: SendTotals,
}

impl SendPipeline {
    /// Creates a pipeline whose calls carry at most `batch_bytes` of message bodies.
    pub fn new(destination: Destination, max_in_flight: usize, batch_bytes: usize) -> Self {
        Self {
            destination,
            max_in_flight: max_in_flight.max(1),
            batch_bytes,
            batch: Vec::with_capacity(MAX_BATCH_ENTRIES),
            batch_size: 0,
            in_flight: JoinSet::new(),
            totals: SendTotals::default(),
        }
    }

    /// Adds a message, sending the current batch first when the message
    /// would make it exceed 10 entries or `batch_bytes`.
    pub async fn push(&mut self, message: Message) -> Result<(), SendFailure> {
        // SendMessageBatch limits: 10 entries, and a total payload no larger
        // than the maximum message size (1 MiB, or 256 KiB on older queues).
        if self.batch.len() == MAX_BATCH_ENTRIES || self.batch_size + message.body.len() > self.batch_bytes {
            self.submit().await?;
        }
        self.batch_size += message.body.len();
        self.batch.push(message);
        Ok(())
    }

    /// Sends what is left and waits for every call to finish.
    pub async fn finish(mut self) -> Result<SendTotals, SendFailure> {
        self.submit().await?;
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        Ok(self.totals)
    }

    async fn submit(&mut self) -> Result<(), SendFailure> {
        if self.batch.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= self.max_in_flight {
            self.join_one().await?;
        }
        // A failure of an earlier call stops the object early.
        while let Some(result) = self.in_flight.try_join_next() {
            self.account(result)?;
        }

        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(MAX_BATCH_ENTRIES));
        self.batch_size = 0;
        self.in_flight.spawn(send_batch(self.destination.clone(), batch));
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), SendFailure> {
        match self.in_flight.join_next().await {
            Some(result) => self.account(result),
            None => Ok(()),
        }
    }

    fn account(
        &mut self,
        result: Result<Result<SendTotals, SendFailure>, tokio::task::JoinError>,
    ) -> Result<(), SendFailure> {
        let totals = result.map_err(|error| SendFailure {
            unsent: 0,
            reason: format!("sending task failed: {error}"),
            retryable: true,
        })??;
        self.totals.requests += totals.requests;
        self.totals.messages += totals.messages;
        self.totals.resent += totals.resent;
        Ok(())
    }
}

/// Sends one batch, resending the entries that come back in `Failed` (or
/// in neither list) with exponential backoff, up to `retry.max_attempts`.
pub(crate) async fn send_batch(destination: Destination, messages: Vec<Message>) -> Result<SendTotals, SendFailure> {
    let mut totals = SendTotals { messages: messages.len() as u64, ..SendTotals::default() };
    let mut pending = messages;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let entries = pending.iter().map(|message| entry(&destination, message)).collect::<Result<Vec<_>, _>>()?;
        totals.requests += 1;
        let output = destination
            .sqs
            .send_message_batch()
            .queue_url(destination.queue_url.as_ref())
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| call_failure(&error, pending.len()))?;

        let successful: HashSet<&str> = output.successful().iter().map(|entry| entry.id()).collect();
        let failed = output.failed();
        if successful.len() + failed.len() != pending.len() {
            warn!(
                sent = pending.len(),
                successful = successful.len(),
                failed = failed.len(),
                "SendMessageBatch response does not account for every entry; resending the missing ones"
            );
        }
        if let Some(entry) = failed.iter().find(|entry| entry.sender_fault()) {
            // A sender fault (a malformed or oversized entry) fails again on every resend.
            return Err(SendFailure {
                unsent: pending.len() - successful.len(),
                reason: format!(
                    "SQS rejected entry {}: {}: {}",
                    entry.id(),
                    entry.code(),
                    entry.message().unwrap_or("")
                ),
                retryable: false,
            });
        }
        let last_error = failed.first().map(|entry| format!("{}: {}", entry.code(), entry.message().unwrap_or("")));

        pending.retain(|message| !successful.contains(message.entry_id.as_str()));
        if pending.is_empty() {
            return Ok(totals);
        }
        if attempt >= destination.retry.max_attempts {
            return Err(SendFailure {
                unsent: pending.len(),
                reason: format!(
                    "still failing after {attempt} attempts, last error {}",
                    last_error.as_deref().unwrap_or("none: entries missing from the response")
                ),
                retryable: true,
            });
        }

        let delay = destination.retry.delay(attempt);
        warn!(
            attempt,
            unsent = pending.len(),
            delay_ms = delay.as_millis() as u64,
            error = last_error.as_deref().unwrap_or(""),
            "resending failed SendMessageBatch entries"
        );
        totals.resent += pending.len() as u64;
        tokio::time::sleep(delay).await;
    }
}

fn entry(destination: &Destination, message: &Message) -> Result<SendMessageBatchRequestEntry, SendFailure> {
    let mut builder = SendMessageBatchRequestEntry::builder().id(&message.entry_id).message_body(&message.body);
    // NOTE: the FIFO fields are covered by no test against a FIFO queue.
    if let Some(group_id) = &destination.group_id {
        // The first record's id (32 hex digits, within the 128-character limit) makes a
        // redelivered object's messages duplicates that a FIFO queue drops.
        builder = builder.message_group_id(group_id.as_ref()).message_deduplication_id(&message.first_record_id);
    }
    builder.build().map_err(|error| SendFailure {
        unsent: 1,
        reason: format!("invalid SendMessageBatch entry {}: {error}", message.entry_id),
        retryable: false,
    })
}

fn call_failure<E, R>(error: &SdkError<E, R>, unsent: usize) -> SendFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let retryable = match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("");
            code.contains("Throttl") || code.contains("InternalError") || code.contains("ServiceUnavailable")
        }
        _ => true,
    };
    SendFailure {
        unsent,
        reason: format!("SendMessageBatch failed: {}", aws_sdk_sqs::error::DisplayErrorContext(error)),
        retryable,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! SendMessageBatch responses that LocalStack cannot produce (partial
    //! failures), returned by the SDK's own mock client.

    use std::sync::Mutex;
    use std::time::Duration;

    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    /// One SendMessageBatch call as the mock saw it: (entry id, body).
    pub type Call = Vec<(String, String)>;

    /// The mock's result for one entry.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Answer {
        Success,
        Failed { sender_fault: bool },
        Missing,
    }

    /// Builds an SQS client whose SendMessageBatch returns
    /// `answer(call_number, entry_id)` for each entry and records every call.
    pub fn mock_sqs(
        answer: impl Fn(usize, &str) -> Answer + Send + Sync + 'static,
    ) -> (aws_sdk_sqs::Client, Arc<Mutex<Vec<Call>>>) {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let recorded = calls.clone();
        let rule = mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(move |request| {
            let mut calls = recorded.lock().unwrap();
            let call_number = calls.len() + 1;
            let entries = request.entries();
            calls.push(entries.iter().map(|entry| (entry.id().to_owned(), entry.message_body().to_owned())).collect());
            let mut successful = Vec::new();
            let mut failed = Vec::new();
            for entry in entries {
                match answer(call_number, entry.id()) {
                    Answer::Success => {
                        let result = SendMessageBatchResultEntry::builder()
                            .id(entry.id())
                            .message_id(format!("m-{}", entry.id()))
                            .md5_of_message_body("0")
                            .build()
                            .unwrap();
                        successful.push(result);
                    }
                    Answer::Failed { sender_fault } => {
                        let code = if sender_fault { "InvalidParameterValue" } else { "InternalError" };
                        let result = BatchResultErrorEntry::builder()
                            .id(entry.id())
                            .sender_fault(sender_fault)
                            .code(code)
                            .message("mock failure")
                            .build()
                            .unwrap();
                        failed.push(result);
                    }
                    Answer::Missing => {}
                }
            }
            SendMessageBatchOutput::builder().set_successful(Some(successful)).set_failed(Some(failed)).build().unwrap()
        });
        (mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&rule]), calls)
    }

    fn destination(sqs: aws_sdk_sqs::Client, max_attempts: u32) -> Destination {
        Destination {
            sqs,
            queue_url: Arc::from("http://127.0.0.1:4566/000000000000/q"),
            group_id: None,
            retry: RetryPolicy {
                max_attempts,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(4),
            },
        }
    }

    fn message(entry_id: &str, body_bytes: usize) -> Message {
        Message {
            entry_id: entry_id.to_owned(),
            first_record_id: format!("id-{entry_id}"),
            body: "x".repeat(body_bytes),
            records: 1,
            rejects: 0,
        }
    }

    fn ids(call: &Call) -> Vec<&str> {
        call.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[tokio::test]
    async fn failed_entries_are_resent_alone() {
        // Q1: a 200 response with some entries in Failed.
        let (sqs, calls) = mock_sqs(|call, id| match (call, id) {
            (1, "line-5" | "line-9") | (2, "line-9") => Answer::Failed { sender_fault: false },
            _ => Answer::Success,
        });
        let messages = vec![message("line-1", 10), message("line-5", 10), message("line-9", 10)];
        let totals = send_batch(destination(sqs, 5), messages).await.unwrap();

        assert_eq!(totals, SendTotals { requests: 3, messages: 3, resent: 3 });
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(ids(&calls[0]), ["line-1", "line-5", "line-9"]);
        assert_eq!(ids(&calls[1]), ["line-5", "line-9"]);
        assert_eq!(ids(&calls[2]), ["line-9"]);
    }

    #[tokio::test]
    async fn entries_still_failing_fail_the_batch() {
        let (sqs, calls) =
            mock_sqs(|_, id| if id == "line-9" { Answer::Failed { sender_fault: false } } else { Answer::Success });
        let messages = vec![message("line-1", 10), message("line-9", 10)];
        let failure = send_batch(destination(sqs, 3), messages).await.unwrap_err();

        assert_eq!(failure.unsent, 1);
        assert!(failure.retryable);
        assert_eq!(failure.reason, "still failing after 3 attempts, last error InternalError: mock failure");
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(ids(&calls[1]), ["line-9"]);
        assert_eq!(ids(&calls[2]), ["line-9"]);
    }

    #[tokio::test]
    async fn entries_missing_from_response_are_resent() {
        // successful + failed must account for every entry sent.
        let (sqs, calls) =
            mock_sqs(|call, id| if call == 1 && id == "line-2" { Answer::Missing } else { Answer::Success });
        let messages = vec![message("line-1", 10), message("line-2", 10)];
        let totals = send_batch(destination(sqs, 5), messages).await.unwrap();

        assert_eq!(totals.requests, 2);
        assert_eq!(ids(&calls.lock().unwrap()[1]), ["line-2"]);
    }

    #[tokio::test]
    async fn sender_fault_is_not_resent() {
        let (sqs, calls) =
            mock_sqs(|_, id| if id == "line-2" { Answer::Failed { sender_fault: true } } else { Answer::Success });
        let messages = vec![message("line-1", 10), message("line-2", 10)];
        let failure = send_batch(destination(sqs, 5), messages).await.unwrap_err();

        assert!(!failure.retryable);
        assert_eq!(failure.unsent, 1);
        assert_eq!(failure.reason, "SQS rejected entry line-2: InvalidParameterValue: mock failure");
        assert_eq!(calls.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn pipeline_respects_entry_and_byte_limits() {
        let (sqs, calls) = mock_sqs(|_, _| Answer::Success);
        let mut pipeline = SendPipeline::new(destination(sqs, 5), 2, 1000);
        let sizes = [100; 25].into_iter().chain([600, 600, 300, 1000, 50]);
        for (i, size) in sizes.enumerate() {
            pipeline.push(message(&format!("line-{i}"), size)).await.unwrap();
        }
        let totals = pipeline.finish().await.unwrap();

        assert_eq!(totals.messages, 30);
        let calls = calls.lock().unwrap();
        let mut seen: Vec<String> = calls.iter().flatten().map(|(id, _)| id.clone()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 30);
        for call in calls.iter() {
            assert!(call.len() <= MAX_BATCH_ENTRIES, "{call:?}");
            assert!(call.iter().map(|(_, body)| body.len()).sum::<usize>() <= 1000, "{call:?}");
        }
        let shapes: Vec<usize> = calls.iter().map(Vec::len).collect();
        let mut sorted = shapes.clone();
        sorted.sort();
        assert_eq!(sorted, [1, 1, 1, 2, 5, 10, 10], "{shapes:?}");
    }
}
