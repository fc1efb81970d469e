//! Reads one S3 object as a stream and sends its records to SQS.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use async_compression::tokio::bufread::GzipDecoder;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use pipeline_shared::ObjectEvent;
use pipeline_shared::envelope::Source;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader, ReadBuf};
use tracing::{info, warn};

use crate::batch::Batcher;
use crate::config::DECOMPRESSION_CHECK_FLOOR_BYTES;
use crate::error::S3ToSqsError;
use crate::format;
use crate::handler::State;
use crate::parse::{ParseError, RecordParser};
use crate::send::{Destination, SendFailure, SendPipeline};

/// Bytes read from the object per step.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Result of one object: counts of records, rejects, messages and bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectSummary {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Data set name taken from the key.
    pub dataset: String,
    /// Format the object was parsed as.
    pub format: String,
    /// Records sent.
    pub records: u64,
    /// Records rejected, sent in the envelopes' `rejects`.
    pub rejected: u64,
    /// Messages sent.
    pub messages: u64,
    /// SendMessageBatch calls made, resends included.
    pub requests: u64,
    /// Bytes of all message bodies.
    pub bytes: u64,
    /// Bytes read from S3 (compressed, for a gzip object).
    pub object_bytes: u64,
}

/// Streams `event`'s object through parser, batcher and sender.
///
/// NOTE: the Lambda deadline is not watched. An object too large to send
/// within the function's timeout fails by timeout, and its retry sends the
/// same records again from the start.
pub(crate) async fn process_object(
    state: &State,
    event: &ObjectEvent,
    dataset: &str,
) -> Result<ObjectSummary, S3ToSqsError> {
    let started = Instant::now();
    let bucket = event.bucket.as_str();
    let key = event.key.as_str();
    let config = &state.config;

    let mut request = state.s3.get_object().bucket(bucket).key(key);
    if let Some(version_id) = &event.version_id {
        request = request.version_id(version_id);
    }
    let output = request.send().await.map_err(|error| get_object_failure(bucket, key, &error))?;

    let detected = format::detect(key, output.content_type(), output.content_encoding());
    let format = config.format.or(detected.format).ok_or_else(|| S3ToSqsError::UnknownFormat {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        content_type: output.content_type().map(str::to_owned),
    })?;
    let mut options = config.parse.clone();
    if detected.tab_separated {
        options.csv_delimiter = b'\t';
    }
    // The object as read decides the record ids, so a redelivered event
    // with fewer fields still yields the same ids.
    let source = Source {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: output.version_id().map(str::to_owned).or_else(|| event.version_id.clone()),
        etag: output.e_tag().map(|etag| etag.trim_matches('"').to_owned()).or_else(|| event.etag.clone()),
    };

    let compressed_bytes = Arc::new(AtomicU64::new(0));
    let counted = CountingReader { inner: Box::pin(output.body.into_async_read()), count: compressed_bytes.clone() };
    let (mut reader, gzip) = open_body(counted, detected.declared_gzip).await.map_err(|error| match error {
        OpenError::Read(source) => {
            S3ToSqsError::Read { bucket: bucket.to_owned(), key: key.to_owned(), bytes: 0, source }
        }
        OpenError::NotGzip => S3ToSqsError::NotGzip { bucket: bucket.to_owned(), key: key.to_owned() },
    })?;

    let mut parser = RecordParser::new(format, &options);
    let mut batcher = Batcher::new(&source, dataset, format, config.message_budget_bytes, options.max_reject_raw_bytes);
    let destination = Destination {
        sqs: state.sqs.clone(),
        queue_url: Arc::from(config.queue_url.as_str()),
        group_id: config.queue_url.ends_with(".fifo").then(|| Arc::from(dataset)),
        retry: config.retry,
    };
    let mut pipeline = SendPipeline::new(destination, config.max_batches_in_flight, config.batch_budget_bytes);
    let unparseable = |error: ParseError| S3ToSqsError::Unparseable {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        format: format.to_string(),
        line: error.line,
        reason: error.reason,
    };
    let send_failed = |failure: SendFailure| S3ToSqsError::Send {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        unsent: failure.unsent,
        reason: failure.reason,
        retryable: failure.retryable,
    };

    let mut buffer = vec![0; READ_CHUNK_BYTES];
    let mut decompressed_bytes: u64 = 0;
    loop {
        let read = reader.read(&mut buffer).await.map_err(|source| {
            let bytes = compressed_bytes.load(Ordering::Relaxed);
            read_failure(bucket, key, gzip, bytes, source)
        })?;
        if read == 0 {
            break;
        }
        decompressed_bytes += read as u64;
        if gzip {
            check_ratio(config.max_decompression_ratio, compressed_bytes.load(Ordering::Relaxed), decompressed_bytes)
                .map_err(|(compressed_bytes, decompressed_bytes)| S3ToSqsError::DecompressionRatio {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                compressed_bytes,
                decompressed_bytes,
                max_ratio: config.max_decompression_ratio,
            })?;
        }

        parser.feed(&buffer[..read], &mut batcher).map_err(unparseable)?;
        for message in batcher.drain_ready().collect::<Vec<_>>() {
            pipeline.push(message).await.map_err(send_failed)?;
        }
    }

    parser.finish(&mut batcher).map_err(unparseable)?;
    batcher.finish();
    for message in batcher.drain_ready().collect::<Vec<_>>() {
        pipeline.push(message).await.map_err(send_failed)?;
    }
    let sent = pipeline.finish().await.map_err(send_failed)?;

    let totals = batcher.totals();
    let summary = ObjectSummary {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        dataset: dataset.to_owned(),
        format: format.to_string(),
        records: totals.records,
        rejected: totals.rejects,
        messages: sent.messages,
        requests: sent.requests,
        bytes: totals.bytes,
        object_bytes: compressed_bytes.load(Ordering::Relaxed),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if summary.rejected > 0 {
        warn!(
            bucket, key, dataset, format = %format, records = summary.records, rejected = summary.rejected,
            messages = summary.messages, requests = summary.requests, bytes = summary.bytes, resent = sent.resent,
            elapsed_ms, "object sent to SQS with rejected records"
        );
    } else {
        info!(
            bucket, key, dataset, format = %format, records = summary.records, rejected = summary.rejected,
            messages = summary.messages, requests = summary.requests, bytes = summary.bytes, resent = sent.resent,
            elapsed_ms, "object sent to SQS"
        );
    }
    Ok(summary)
}

enum OpenError {
    Read(std::io::Error),
    NotGzip,
}

/// Peeks at the first two bytes and returns a reader of the decompressed
/// data, and whether it is gzip. Gzip is recognised by its magic bytes
/// 1F 8B; an object that claims gzip (by `.gz` or Content-Encoding) without
/// them is an error. Every member of a multi-member gzip file is read, as
/// `cat a.gz b.gz` produces.
async fn open_body(
    mut body: CountingReader,
    declared_gzip: bool,
) -> Result<(Pin<Box<dyn AsyncRead + Send>>, bool), OpenError> {
    let mut magic = [0u8; 2];
    let mut filled = 0;
    while filled < magic.len() {
        let read = body.read(&mut magic[filled..]).await.map_err(OpenError::Read)?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    let head = std::io::Cursor::new(magic[..filled].to_vec());
    let stream = head.chain(body);

    let gzip = magic[..filled] == [0x1f, 0x8b];
    if gzip {
        let mut decoder = GzipDecoder::new(BufReader::with_capacity(64 * 1024, stream));
        decoder.multiple_members(true);
        return Ok((Box::pin(decoder), true));
    }
    // An empty object has no magic bytes but no records either.
    if declared_gzip && filled > 0 {
        return Err(OpenError::NotGzip);
    }
    Ok((Box::pin(stream), false))
}

/// Checks the decompression ratio once the output passed the floor;
/// returns the two counts when the ratio is exceeded.
fn check_ratio(max_ratio: u64, compressed: u64, decompressed: u64) -> Result<(), (u64, u64)> {
    if decompressed > DECOMPRESSION_CHECK_FLOOR_BYTES && decompressed > compressed.max(1).saturating_mul(max_ratio) {
        return Err((compressed, decompressed));
    }
    Ok(())
}

fn read_failure(bucket: &str, key: &str, gzip: bool, bytes: u64, source: std::io::Error) -> S3ToSqsError {
    use std::io::ErrorKind;
    // The decoder reports damaged or truncated gzip data with these kinds;
    // network errors from the body stream have others.
    if gzip && matches!(source.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof | ErrorKind::InvalidInput) {
        return S3ToSqsError::InvalidGzip { bucket: bucket.to_owned(), key: key.to_owned(), source };
    }
    S3ToSqsError::Read { bucket: bucket.to_owned(), key: key.to_owned(), bytes, source }
}

fn get_object_failure<R: std::fmt::Debug>(
    bucket: &str,
    key: &str,
    error: &SdkError<GetObjectError, R>,
) -> S3ToSqsError {
    let retryable = match error {
        SdkError::ServiceError(service) => match service.err() {
            GetObjectError::NoSuchKey(_) | GetObjectError::InvalidObjectState(_) => false,
            other => {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                !matches!(other.code(), Some("AccessDenied" | "NoSuchBucket" | "NoSuchVersion"))
            }
        },
        _ => true,
    };
    S3ToSqsError::GetObject {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message: DisplayErrorContext(error).to_string(),
        retryable,
    }
}

/// Counts the bytes read from S3, which the decompression ratio is based on.
struct CountingReader {
    inner: Pin<Box<dyn tokio::io::AsyncBufRead + Send>>,
    count: Arc<AtomicU64>,
}

impl AsyncRead for CountingReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = self.inner.as_mut().poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.count.fetch_add(read as u64, Ordering::Relaxed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_checked_only_beyond_the_floor() {
        let floor = DECOMPRESSION_CHECK_FLOOR_BYTES;
        assert!(check_ratio(200, 1000, floor).is_ok());
        assert!(check_ratio(200, 1000, floor + 1).is_err());
        assert!(check_ratio(200, floor, floor * 2).is_ok());
        assert_eq!(check_ratio(10, 1_000_000, 20_000_000), Err((1_000_000, 20_000_000)));
    }

    async fn read_all(data: &[u8], declared_gzip: bool) -> Result<(Vec<u8>, bool), String> {
        let body =
            CountingReader { inner: Box::pin(std::io::Cursor::new(data.to_vec())), count: Arc::new(AtomicU64::new(0)) };
        let (mut reader, gzip) = match open_body(body, declared_gzip).await {
            Ok(opened) => opened,
            Err(OpenError::NotGzip) => return Err("not gzip".to_owned()),
            Err(OpenError::Read(error)) => return Err(error.to_string()),
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.map_err(|error| format!("{:?}", error.kind()))?;
        Ok((out, gzip))
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[tokio::test]
    async fn multi_member_gzip_yields_every_member() {
        // F1: `cat a.gz b.gz`.
        let mut data = gzip(b"id,v\n1,x\n");
        data.extend(gzip(b"2,y\n"));
        assert_eq!(read_all(&data, true).await.unwrap(), (b"id,v\n1,x\n2,y\n".to_vec(), true));
    }

    #[tokio::test]
    async fn body_cases() {
        assert_eq!(read_all(b"a,b\n", false).await.unwrap(), (b"a,b\n".to_vec(), false));
        assert_eq!(read_all(&gzip(b"a\n"), false).await.unwrap(), (b"a\n".to_vec(), true));
        assert_eq!(read_all(b"", true).await.unwrap(), (Vec::new(), false));
        assert_eq!(read_all(b"a", false).await.unwrap(), (b"a".to_vec(), false));
        assert_eq!(read_all(b"a,b\n", true).await.unwrap_err(), "not gzip");
        let truncated = gzip(b"some text that is long enough to be cut");
        assert_eq!(read_all(&truncated[..truncated.len() - 10], true).await.unwrap_err(), "UnexpectedEof");
    }
}
