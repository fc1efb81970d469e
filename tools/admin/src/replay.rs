//! Replays rejected records through the current mapping.
//!
//! The rejects of one data set are read page by page, grouped by source
//! object into envelopes and written by the transform's own writer with
//! `clear_rejects`: a record that is written or dropped now loses its reject
//! row in the same transaction, and a record that still fails keeps its row
//! with the new reason. With `dry_run` every transaction is rolled back.

use std::time::Duration;

use pipeline_shared::envelope::{ENVELOPE_VERSION, Envelope, Record, Source};
use serde_json::value::RawValue;
use tokio::time::Instant;
use transform_to_rds::mapping::{Mapping, quote_table};
use transform_to_rds::transform;
use transform_to_rds::value::SqlValue;
use transform_to_rds::writer::{WriteOptions, Writer};

use crate::AdminError;

/// Time one envelope's write may take, retries included.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Counts of a replay (or, in a dry run, of what it would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Reject rows read.
    pub examined: usize,
    /// Records written to their tables.
    pub written: usize,
    /// Records that a `drop_if` condition now drops.
    pub dropped: usize,
    /// Records that still fail.
    pub still_rejected: usize,
    /// Parse-stage rejects, which hold no record to replay.
    pub skipped_parse: usize,
}

/// One row of the rejects table.
#[derive(Debug)]
struct StoredReject {
    id: i64,
    record_id: String,
    source: Source,
    line: u64,
    index: Option<u64>,
    raw: String,
    stage: String,
}

/// Replays the rejects of `mapping`'s data set, `page_size` rows per read.
pub async fn replay_rejects(writer: &Writer, mapping: &Mapping, page_size: u32, dry_run: bool) -> Result<ReplayReport, AdminError> {
    let mut report = ReplayReport::default();
    let mut after_id = 0;
    loop {
        let page = read_page(writer, &mapping.dataset, after_id, page_size).await?;
        let Some(last) = page.last() else { break };
        after_id = last.id;
        report.examined += page.len();

        let mut groups: Vec<(Source, Vec<Record>)> = Vec::new();
        for reject in page {
            if reject.stage == "parse" {
                report.skipped_parse += 1;
                continue;
            }
            let data = RawValue::from_string(reject.raw.clone())
                .map_err(|error| AdminError::InvalidReject { record_id: reject.record_id.clone(), reason: error.to_string() })?;
            let record = Record { id: reject.record_id, line: reject.line, index: reject.index, data };
            match groups.iter_mut().find(|(source, _)| *source == reject.source) {
                Some((_, records)) => records.push(record),
                None => groups.push((reject.source, vec![record])),
            }
        }

        for (source, records) in groups {
            let envelope =
                Envelope { version: ENVELOPE_VERSION, source, dataset: mapping.dataset.clone(), format: "replay".to_owned(), records, rejects: Vec::new() };
            let plan = transform::plan(mapping, &envelope, &transform_to_rds::writer::now_timestamp());
            let options = WriteOptions { dry_run, clear_rejects: true };
            let written = writer.write(&envelope, &plan, options, Instant::now() + WRITE_TIMEOUT).await.map_err(|failure| AdminError::Replay {
                bucket: envelope.source.bucket.clone(),
                key: envelope.source.key.clone(),
                failure: Box::new(failure),
            })?;
            report.written += written.rows();
            report.dropped += written.dropped;
            report.still_rejected += written.rejected.len();
        }
    }
    Ok(report)
}

async fn read_page(writer: &Writer, dataset: &str, after_id: i64, page_size: u32) -> Result<Vec<StoredReject>, AdminError> {
    let sql = format!(
        "SELECT id, record_id, source_bucket, source_key, source_version_id, source_etag, line, record_index, raw_record, stage \
         FROM {} WHERE dataset = :dataset AND id > :after_id ORDER BY id LIMIT :page_size",
        quote_table(&writer.rejects_table)
    );
    let parameters = vec![
        transform_to_rds::db::parameter("dataset", &SqlValue::Text(dataset.to_owned())),
        transform_to_rds::db::parameter("after_id", &SqlValue::Long(after_id)),
        transform_to_rds::db::parameter("page_size", &SqlValue::Long(page_size.into())),
    ];
    let output = writer.db.execute(&sql, parameters, None, Instant::now() + WRITE_TIMEOUT).await.map_err(AdminError::Database)?;

    output
        .records()
        .iter()
        .map(|row| {
            let text = |index: usize| row.get(index).and_then(|field| field.as_string_value().ok()).cloned();
            let long = |index: usize| row.get(index).and_then(|field| field.as_long_value().ok()).copied();
            let invalid = |column: &str| AdminError::InvalidReject { record_id: text(1).unwrap_or_default(), reason: format!("column {column} is missing or has the wrong type") };
            Ok(StoredReject {
                id: long(0).ok_or_else(|| invalid("id"))?,
                record_id: text(1).ok_or_else(|| invalid("record_id"))?,
                source: Source {
                    bucket: text(2).ok_or_else(|| invalid("source_bucket"))?,
                    key: text(3).ok_or_else(|| invalid("source_key"))?,
                    version_id: text(4),
                    etag: text(5),
                },
                line: long(6).and_then(|line| u64::try_from(line).ok()).ok_or_else(|| invalid("line"))?,
                index: long(7).and_then(|index| u64::try_from(index).ok()),
                raw: text(8).ok_or_else(|| invalid("raw_record"))?,
                stage: text(9).ok_or_else(|| invalid("stage"))?,
            })
        })
        .collect()
}
