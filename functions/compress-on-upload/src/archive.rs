//! Streams one object through gzip into its archive copy.
//!
//! The source body is read chunk by chunk and fed to the encoder. Whenever
//! the compressed output reaches the part size, it is handed to a multipart
//! upload while the next part is being compressed. Memory is therefore
//! bounded by about `(1 + max_parts_in_flight) * part_size_bytes`, whatever
//! the object's size. An object whose compressed copy fits in one part is
//! written with a single PutObject instead.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use flate2::Compression;
use flate2::write::GzEncoder;
use pipeline_shared::ObjectEvent;
use tokio::task::JoinSet;

use crate::error::CompressError;
use crate::skip::{self, GZIP_MAGIC, MAX_KEY_BYTES, SkipReason};
use crate::State;

/// S3's maximum number of parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// Metadata key of the archive copy that records the source's ETag.
pub const METADATA_SOURCE_ETAG: &str = "source-etag";
/// Metadata key that records the source's version id, when versioned.
pub const METADATA_SOURCE_VERSION_ID: &str = "source-version-id";
/// Metadata key that records the source's size in bytes.
pub const METADATA_SOURCE_SIZE: &str = "source-size";

/// Outcome of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The archive copy was written.
    Archived {
        /// Key of the archive copy.
        archive_key: String,
        /// Bytes read from the source.
        bytes_in: u64,
        /// Bytes written to the archive copy.
        bytes_out: u64,
        /// Multipart upload parts, 0 for a single PutObject.
        parts: usize,
    },
    /// The object was left alone.
    Skipped(SkipReason),
}

/// Writes the gzip copy of `object` to the archive location.
pub async fn archive_object(state: &State, object: &ObjectEvent) -> Result<Outcome, CompressError> {
    let config = &state.config;
    let started = Instant::now();
    let (bucket, key) = (object.bucket.as_str(), object.key.as_str());
    let archive_key = skip::archive_key(&config.archive.prefix, key);
    if archive_key.len() > MAX_KEY_BYTES {
        return Err(CompressError::KeyTooLong { bucket: bucket.into(), key: key.into(), length: archive_key.len() });
    }

    let request = state.s3.get_object().bucket(bucket).key(key).set_version_id(object.version_id.clone());
    let source = match request.send().await {
        Ok(output) => output,
        Err(error) if matches!(error.code(), Some("NoSuchKey" | "NoSuchVersion")) => {
            tracing::warn!(bucket, key, "object was deleted before it could be archived");
            return Ok(Outcome::Skipped(SkipReason::Deleted));
        }
        Err(error) => return Err(CompressError::s3("GetObject", bucket, key, error)),
    };

    if skip::is_gzip_encoding(source.content_encoding()) {
        return Ok(skipped(object, SkipReason::GzipEncoding));
    }
    let etag = source.e_tag().map(|etag| etag.trim_matches('"').to_owned());
    let version_id = source.version_id().map(str::to_owned);
    if is_archived(state, &archive_key, etag.as_deref(), version_id.as_deref()).await? {
        return Ok(skipped(object, SkipReason::AlreadyArchived));
    }
    let content_length = source.content_length().and_then(|length| u64::try_from(length).ok());
    let content_type = source.content_type().unwrap_or("application/octet-stream").to_owned();
    let mut body = source.body;

    // Read at least two bytes (or the whole object, if shorter) to look for the gzip magic.
    let mut head = Vec::new();
    while head.len() < GZIP_MAGIC.len() {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(error)) => return Err(read_error(object, head.len() as u64, error)),
            None => break,
        }
    }
    if head.starts_with(&GZIP_MAGIC) {
        return Ok(skipped(object, SkipReason::GzipMagic));
    }

    let mut metadata = HashMap::from([(METADATA_SOURCE_SIZE.to_owned(), content_length.unwrap_or(0).to_string())]);
    metadata.extend(etag.map(|etag| (METADATA_SOURCE_ETAG.to_owned(), etag)));
    metadata.extend(version_id.map(|version| (METADATA_SOURCE_VERSION_ID.to_owned(), version)));
    let part_size = part_size_for(config.part_size_bytes, content_length.unwrap_or(0));
    let mut upload = PartUploader {
        s3: state.s3.clone(),
        bucket: config.archive.bucket.clone(),
        key: archive_key.clone(),
        content_type,
        metadata,
        upload_id: None,
        in_flight: JoinSet::new(),
        completed: Vec::new(),
        bytes_sent: 0,
        next_part_number: 1,
        max_in_flight: config.max_parts_in_flight,
    };

    let compressed = compress_body(object, head, body, part_size, config.compression_level, content_length, &mut upload).await;
    let (bytes_in, last_part) = match compressed {
        Ok(result) => result,
        Err(error) => {
            upload.abort().await;
            return Err(error);
        }
    };
    let last_part_size = last_part.len() as u64;
    let parts = match upload.finish(last_part).await {
        Ok(parts) => parts,
        Err(error) => {
            upload.abort().await;
            return Err(error);
        }
    };

    let bytes_out = upload.bytes_sent + if parts == 0 { last_part_size } else { 0 };

    if config.delete_source {
        // A plain delete (no version id) leaves the version history of a versioned bucket intact.
        state
            .s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| CompressError::s3("DeleteObject", bucket, key, error))?;
    }

    tracing::info!(
        bucket,
        key,
        archive_bucket = %config.archive.bucket,
        archive_key = %archive_key,
        bytes_in,
        bytes_out,
        parts,
        source_deleted = config.delete_source,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "object archived"
    );
    Ok(Outcome::Archived { archive_key, bytes_in, bytes_out, parts })
}

/// Compresses the rest of `body`, handing full parts to `upload`.
///
/// Returns the number of bytes read and the compressed bytes that remain for
/// the last part. Fails when the bytes read differ from `content_length`.
async fn compress_body(
    object: &ObjectEvent,
    head: Vec<u8>,
    mut body: ByteStream,
    part_size: usize,
    level: u32,
    content_length: Option<u64>,
    upload: &mut PartUploader,
) -> Result<(u64, Vec<u8>), CompressError> {
    // Headroom over the part size so that one chunk's output rarely reallocates.
    let buffer_capacity = part_size + 256 * 1024;
    let mut encoder = GzEncoder::new(Vec::with_capacity(buffer_capacity), Compression::new(level));
    let mut bytes_read = head.len() as u64;
    compress_chunk(&mut encoder, &head, part_size, buffer_capacity, object, upload).await?;

    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| read_error(object, bytes_read, error))?;
        bytes_read += chunk.len() as u64;
        compress_chunk(&mut encoder, &chunk, part_size, buffer_capacity, object, upload).await?;
    }

    if let Some(content_length) = content_length
        && bytes_read != content_length
    {
        return Err(CompressError::LengthMismatch {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            bytes_read,
            content_length,
        });
    }
    let last_part = encoder.finish().map_err(|error| read_error(object, bytes_read, error))?;
    Ok((bytes_read, last_part))
}

/// Compresses `chunk`, handing the output to `upload` whenever it reaches a
/// part. The chunk is fed in slices of at most 1 MiB, so that one large
/// chunk (a body already in memory, say) cannot grow the buffer past a part.
async fn compress_chunk(
    encoder: &mut GzEncoder<Vec<u8>>,
    chunk: &[u8],
    part_size: usize,
    buffer_capacity: usize,
    object: &ObjectEvent,
    upload: &mut PartUploader,
) -> Result<(), CompressError> {
    for slice in chunk.chunks(1024 * 1024) {
        // Writing into a Vec fails only when memory runs out, which aborts the
        // process, so this error is not expected; it is mapped, not unwrapped.
        encoder.write_all(slice).map_err(|error| read_error(object, 0, error))?;
        if encoder.get_ref().len() >= part_size {
            let part = std::mem::replace(encoder.get_mut(), Vec::with_capacity(buffer_capacity));
            upload.push_part(part).await?;
        }
    }
    Ok(())
}

/// Returns the part size to use for an object of `content_length` bytes.
///
/// S3 allows at most 10,000 parts, and gzip output can be slightly larger
/// than its input, so objects over about 9,000 parts of the configured size
/// get larger parts.
pub fn part_size_for(configured_bytes: usize, content_length: u64) -> usize {
    let needed = content_length.div_ceil(MAX_PARTS - 1_000);
    let mebibyte = 1024 * 1024;
    let needed = usize::try_from(needed.div_ceil(mebibyte) * mebibyte).unwrap_or(usize::MAX);
    configured_bytes.max(needed)
}

async fn is_archived(
    state: &State,
    archive_key: &str,
    etag: Option<&str>,
    version_id: Option<&str>,
) -> Result<bool, CompressError> {
    let bucket = &state.config.archive.bucket;
    let head = match state.s3.head_object().bucket(bucket).key(archive_key).send().await {
        Ok(head) => head,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => return Ok(false),
        Err(error) => return Err(CompressError::s3("HeadObject", bucket, archive_key, error)),
    };
    let metadata = head.metadata();
    let recorded = |name: &str| metadata.and_then(|m| m.get(name)).map(String::as_str);
    Ok(etag.is_some() && recorded(METADATA_SOURCE_ETAG) == etag && recorded(METADATA_SOURCE_VERSION_ID) == version_id)
}

fn skipped(object: &ObjectEvent, reason: SkipReason) -> Outcome {
    tracing::debug!(bucket = %object.bucket, key = %object.key, reason = reason.as_str(), "skipping object");
    Outcome::Skipped(reason)
}

fn read_error(object: &ObjectEvent, bytes_read: u64, error: impl std::fmt::Display) -> CompressError {
    CompressError::Read {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        bytes_read,
        message: error.to_string(),
    }
}

/// The archive copy being written: a multipart upload started on the first
/// full part, or a single PutObject if there is never more than one part.
struct PartUploader {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    content_type: String,
    metadata: HashMap<String, String>,
    upload_id: Option<String>,
    in_flight: JoinSet<Result<(CompletedPart, u64), CompressError>>,
    completed: Vec<CompletedPart>,
    bytes_sent: u64,
    next_part_number: i32,
    max_in_flight: usize,
}

impl PartUploader {
    /// Starts uploading `part`, after waiting for a free upload slot.
    async fn push_part(&mut self, part: Vec<u8>) -> Result<(), CompressError> {
        let upload_id = match &self.upload_id {
            Some(upload_id) => upload_id.clone(),
            None => self.create().await?,
        };
        while self.in_flight.len() >= self.max_in_flight {
            self.join_one().await?;
        }

        let part_number = self.next_part_number;
        let size = part.len() as u64;
        self.next_part_number += 1;
        let request = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(part_number)
            .content_length(part.len() as i64)
            .body(ByteStream::from(part));
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        self.in_flight.spawn(async move {
            let output = request.send().await.map_err(|error| CompressError::s3("UploadPart", &bucket, &key, error))?;
            let part = CompletedPart::builder().part_number(part_number).set_e_tag(output.e_tag).build();
            Ok((part, size))
        });
        Ok(())
    }


    async fn create(&mut self) -> Result<String, CompressError> {
        let output = self
            .s3
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type(&self.content_type)
            .content_encoding("gzip")
            .set_metadata(Some(self.metadata.clone()))
            .send()
            .await
            .map_err(|error| CompressError::s3("CreateMultipartUpload", &self.bucket, &self.key, error))?;
        let upload_id = output.upload_id.ok_or_else(|| CompressError::S3 {
            operation: "CreateMultipartUpload",
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            message: "response has no UploadId".to_owned(),
        })?;
        self.upload_id = Some(upload_id.clone());
        Ok(upload_id)
    }

    async fn join_one(&mut self) -> Result<(), CompressError> {
        if let Some(joined) = self.in_flight.join_next().await {
            let (part, bytes) = joined.map_err(|error| CompressError::S3 {
                operation: "UploadPart",
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                message: format!("upload task failed: {error}"),
            })??;
            self.bytes_sent += bytes;
            self.completed.push(part);
        }
        Ok(())
    }

    /// Writes the last part and completes the upload; returns the part count.
    async fn finish(&mut self, last_part: Vec<u8>) -> Result<usize, CompressError> {
        if self.upload_id.is_none() {
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .content_encoding("gzip")
                .set_metadata(Some(self.metadata.clone()))
                .content_length(last_part.len() as i64)
                .body(ByteStream::from(last_part))
                .send()
                .await
                .map_err(|error| CompressError::s3("PutObject", &self.bucket, &self.key, error))?;
            return Ok(0);
        }

        self.push_part(last_part).await?;
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        let mut parts = std::mem::take(&mut self.completed);
        parts.sort_by_key(|part| part.part_number());
        let count = parts.len();
        self.s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_upload_id(self.upload_id.clone())
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|error| CompressError::s3("CompleteMultipartUpload", &self.bucket, &self.key, error))?;
        self.upload_id = None;
        Ok(count)
    }

    /// Stops the uploads in flight and aborts the multipart upload, so that
    /// no orphaned parts are left to pay for.
    async fn abort(&mut self) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        let Some(upload_id) = self.upload_id.take() else { return };
        let result = self.s3.abort_multipart_upload().bucket(&self.bucket).key(&self.key).upload_id(&upload_id).send().await;
        match result {
            Ok(_) => tracing::warn!(bucket = %self.bucket, key = %self.key, upload_id, "multipart upload aborted"),
            Err(error) => tracing::error!(
                bucket = %self.bucket,
                key = %self.key,
                upload_id,
                error = %aws_sdk_s3::error::DisplayErrorContext(error),
                "aborting the multipart upload failed; its parts stay until a lifecycle rule removes them"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_only_for_huge_objects() {
        let eight_mib = 8 * 1024 * 1024;
        let cases = [
            (0, eight_mib),
            (1024 * 1024 * 1024, eight_mib),
            (70 * 1024 * 1024 * 1024, eight_mib),
            (1024 * 1024 * 1024 * 1024, 117 * 1024 * 1024),
        ];
        for (content_length, expected) in cases {
            assert_eq!(part_size_for(eight_mib, content_length), expected, "{content_length}");
        }
    }
}
