//! Faults that LocalStack cannot produce, through the SDK's mock clients:
//! every one must abort the multipart upload and fail the invocation.

use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::operation::upload_part::{UploadPartError, UploadPartOutput};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::error::NotFound;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use pipeline_shared::{Env, ObjectEvent};

use crate::archive::archive_object;
use crate::{CompressError, Config, State};

const BUCKET: &str = "input-bucket";

/// Bytes that gzip cannot shrink, so that 6 MiB make more than one 5 MiB part.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn object() -> ObjectEvent {
    ObjectEvent {
        event_name: "ObjectCreated:Put".into(),
        bucket: BUCKET.into(),
        key: "incoming/big.bin".into(),
        size: None,
        etag: None,
        version_id: None,
    }
}

fn state(rules: &[&Rule]) -> State {
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, rules);
    let env = Env::from_pairs([("ARCHIVE_BUCKET", BUCKET), ("PART_SIZE_BYTES", "5242880")]);
    State::new(Config::from_env(&env).unwrap(), s3)
}

struct Rules {
    head: Rule,
    create: Rule,
    abort: Rule,
    complete: Rule,
}

fn upload_rules() -> Rules {
    Rules {
        head: mock!(aws_sdk_s3::Client::head_object).then_error(|| HeadObjectError::NotFound(NotFound::builder().build())),
        create: mock!(aws_sdk_s3::Client::create_multipart_upload)
            .then_output(|| CreateMultipartUploadOutput::builder().upload_id("upload-1").build()),
        abort: mock!(aws_sdk_s3::Client::abort_multipart_upload).then_output(|| AbortMultipartUploadOutput::builder().build()),
        complete: mock!(aws_sdk_s3::Client::complete_multipart_upload)
            .then_output(|| aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput::builder().build()),
    }
}

#[tokio::test]
async fn short_body_aborts_upload() {
    let body = incompressible(6 * 1024 * 1024);
    let content_length = body.len() as i64 + 1000;
    let get = mock!(aws_sdk_s3::Client::get_object).then_output(move || {
        GetObjectOutput::builder().body(ByteStream::from(body.clone())).content_length(content_length).e_tag("\"e1\"").build()
    });
    let part = mock!(aws_sdk_s3::Client::upload_part).then_output(|| UploadPartOutput::builder().e_tag("\"p\"").build());
    let rules = upload_rules();
    let state = state(&[&get, &rules.head, &rules.create, &part, &rules.abort, &rules.complete]);

    let error = archive_object(&state, &object()).await.unwrap_err();

    assert!(matches!(error, CompressError::LengthMismatch { bytes_read: 6_291_456, content_length: 6_292_456, .. }), "{error}");
    assert!(error.is_retryable());
    assert_eq!(rules.create.num_calls(), 1);
    assert_eq!(rules.abort.num_calls(), 1);
    assert_eq!(rules.complete.num_calls(), 0);
}

#[tokio::test]
async fn failed_part_aborts_upload() {
    let body = incompressible(11 * 1024 * 1024);
    let content_length = body.len() as i64;
    let get = mock!(aws_sdk_s3::Client::get_object).then_output(move || {
        GetObjectOutput::builder().body(ByteStream::from(body.clone())).content_length(content_length).e_tag("\"e1\"").build()
    });
    let part = mock!(aws_sdk_s3::Client::upload_part).then_error(|| {
        UploadPartError::generic(aws_sdk_s3::error::ErrorMetadata::builder().code("InternalError").message("mock failure").build())
    });
    let rules = upload_rules();
    let state = state(&[&get, &rules.head, &rules.create, &part, &rules.abort, &rules.complete]);

    let error = archive_object(&state, &object()).await.unwrap_err();

    assert!(matches!(error, CompressError::S3 { operation: "UploadPart", .. }), "{error}");
    assert!(error.to_string().contains("mock failure"), "{error}");
    assert_eq!(rules.abort.num_calls(), 1);
    assert_eq!(rules.complete.num_calls(), 0);
}
