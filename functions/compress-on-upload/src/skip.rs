//! Skip rules for objects that are not compressed, and archive copy naming.

use pipeline_shared::event::{ObjectEvent, S3Location};

/// First two bytes of every gzip member (RFC 1952).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// S3's maximum key length in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Reason an object is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Not an object-created event.
    NotObjectCreated,
    /// A folder marker (a key ending with `/`).
    FolderMarker,
    /// The object lies in the archive location: compressing it would loop.
    InArchive,
    /// The key ends with `.gz`.
    GzipSuffix,
    /// The object has `Content-Encoding: gzip`.
    GzipEncoding,
    /// The object starts with the gzip magic bytes.
    GzipMagic,
    /// The archive already contains a copy of this object version.
    AlreadyArchived,
    /// The object was deleted before it could be read.
    Deleted,
}

impl SkipReason {
    /// Short name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotObjectCreated => "not an object-created event",
            Self::FolderMarker => "folder marker",
            Self::InArchive => "inside the archive location",
            Self::GzipSuffix => "key ends with .gz",
            Self::GzipEncoding => "Content-Encoding is gzip",
            Self::GzipMagic => "content starts with the gzip magic bytes",
            Self::AlreadyArchived => "already archived",
            Self::Deleted => "deleted before processing",
        }
    }
}

/// Applies the rules that need only the event; the rules that need the
/// object's headers or first bytes run once it is opened.
pub fn skip_reason(object: &ObjectEvent, archive: &S3Location) -> Option<SkipReason> {
    if !object.is_object_created() {
        return Some(SkipReason::NotObjectCreated);
    }
    if object.is_folder_marker() {
        return Some(SkipReason::FolderMarker);
    }
    if archive.contains(&object.bucket, &object.key) {
        return Some(SkipReason::InArchive);
    }
    if has_gzip_suffix(&object.key) {
        return Some(SkipReason::GzipSuffix);
    }
    None
}

/// Returns true for keys ending in `.gz`, in any letter case.
pub fn has_gzip_suffix(key: &str) -> bool {
    key.len() >= 3 && key.as_bytes()[key.len() - 3..].eq_ignore_ascii_case(b".gz")
}

/// Returns true when a `Content-Encoding` header lists gzip.
pub fn is_gzip_encoding(content_encoding: Option<&str>) -> bool {
    content_encoding
        .is_some_and(|value| value.split(',').any(|coding| coding.trim().eq_ignore_ascii_case("gzip")))
}

/// Returns the archive key of `key`: `<prefix><key>.gz`.
pub fn archive_key(prefix: &str, key: &str) -> String {
    format!("{prefix}{key}.gz")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_name: &str, bucket: &str, key: &str) -> ObjectEvent {
        ObjectEvent {
            event_name: event_name.into(),
            bucket: bucket.into(),
            key: key.into(),
            size: None,
            etag: None,
            version_id: None,
        }
    }

    #[test]
    fn skip_reason_cases() {
        let same_bucket_archive = S3Location { bucket: "in".into(), prefix: "archive/".into() };
        let cases = [
            ("ObjectCreated:Put", "in", "incoming/r.csv", None),
            ("ObjectCreated:CompleteMultipartUpload", "in", "incoming/big.csv", None),
            ("Object Created", "in", "incoming/r.csv", None),
            ("ObjectRemoved:Delete", "in", "incoming/r.csv", Some(SkipReason::NotObjectCreated)),
            ("ObjectCreated:Put", "in", "incoming/2024/", Some(SkipReason::FolderMarker)),
            ("ObjectCreated:Put", "in", "archive/incoming/r.csv.gz", Some(SkipReason::InArchive)),
            ("ObjectCreated:Put", "in", "archive/r.csv", Some(SkipReason::InArchive)),
            ("ObjectCreated:Put", "other", "archive/r.csv", None),
            ("ObjectCreated:Put", "in", "incoming/r.csv.gz", Some(SkipReason::GzipSuffix)),
            ("ObjectCreated:Put", "in", "incoming/R.CSV.GZ", Some(SkipReason::GzipSuffix)),
            ("ObjectCreated:Put", "in", "incoming/r.gzip", None),
            ("ObjectCreated:Put", "in", "incoming/blob", None),
        ];
        for (event_name, bucket, key, expected) in cases {
            assert_eq!(skip_reason(&event(event_name, bucket, key), &same_bucket_archive), expected, "{key}");
        }
    }

    #[test]
    fn separate_archive_bucket_skipped_whole() {
        let archive = S3Location { bucket: "archive-bucket".into(), prefix: String::new() };
        let object = event("ObjectCreated:Put", "archive-bucket", "incoming/r.csv");
        assert_eq!(skip_reason(&object, &archive), Some(SkipReason::InArchive));
    }

    #[test]
    fn gzip_encoding_cases() {
        let cases = [(None, false), (Some("gzip"), true), (Some("GZIP"), true), (Some("identity"), false), (Some("aws-chunked, gzip"), true)];
        for (header, expected) in cases {
            assert_eq!(is_gzip_encoding(header), expected, "{header:?}");
        }
    }

    #[test]
    fn archive_key_cases() {
        let cases = [
            ("archive/", "incoming/r.csv", "archive/incoming/r.csv.gz"),
            ("archive/", "reports/Q1 summary+final été.csv", "archive/reports/Q1 summary+final été.csv.gz"),
            ("", "r.csv", "r.csv.gz"),
        ];
        for (prefix, key, expected) in cases {
            assert_eq!(archive_key(prefix, key), expected);
        }
    }
}
