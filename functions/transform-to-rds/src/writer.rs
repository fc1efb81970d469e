//! Writes a message's plan through the Data API in one transaction.
//!
//! The fast path sends each table's rows with BatchExecuteStatement (one
//! statement, one parameter set per row) in as few calls as the request size
//! limit allows, then the rejects, then commits. When the database rejects
//! a row, the transaction is rolled back and the message runs again in
//! isolation mode. There each call is wrapped in a savepoint. A call that
//! fails on data is rolled back to its savepoint and split in halves until
//! the rejected rows are alone. Those rows become rejects, and every other
//! row commits. Transient errors roll back and retry the whole message with
//! exponential backoff and jitter, until the attempts or the time run out.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_rdsdata::types::SqlParameter;
use pipeline_shared::envelope::Envelope;
use tokio::time::Instant;

use crate::db::{self, Database, DbError, ErrorKind};
use crate::mapping::quote_table;
use crate::transform::{Plan, RejectedRecord, Row, Stage, TableRows};
use crate::value::SqlValue;

/// The Data API rejects a request over 4 MiB, headers and JSON notation included
/// (BatchExecuteStatement reference, "maximum size of the HTTP request").
pub const DATA_API_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Bytes kept free in each request for the HTTP and SigV4 headers, the ARNs,
/// the database name and the transaction id.
const REQUEST_OVERHEAD_BYTES: usize = 16 * 1024;

/// Maximum parameter sets per BatchExecuteStatement call. The Data API sets
/// no count limit, but its response is capped at 1 MiB and contains one
/// `updateResults` entry (about 25 bytes) per set.
pub const MAX_ROWS_PER_CALL: usize = 10_000;

/// Retry settings for transient errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per message and invocation, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; it doubles for each further one.
    pub base_delay: Duration,
    /// Upper bound of a delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Returns the delay after failed attempt `attempt` (1-based): half the
    /// exponential step plus a random part up to the other half, so that
    /// messages that failed together do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let step = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Options of a message write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Roll the transaction back instead of committing, to see what would happen.
    pub dry_run: bool,
    /// Delete the rejects of records that are written or dropped now (used by replay).
    pub clear_rejects: bool,
}

/// Counts and rejects of a written message.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Rows accepted per table, in plan order.
    pub rows_by_table: Vec<(String, usize)>,
    /// Every rejected record: from s3-to-sqs, the mapping and the database.
    pub rejected: Vec<RejectedRecord>,
    /// Records dropped by a `drop_if` condition.
    pub dropped: usize,
    /// Reject rows deleted because their records now succeed (replay only).
    pub cleared: usize,
    /// Attempts it took, the first included.
    pub attempts: u32,
}

impl Written {
    /// Rows accepted over all tables.
    pub fn rows(&self) -> usize {
        self.rows_by_table.iter().map(|(_, rows)| rows).sum()
    }
}

/// A message that could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error} (after {attempts} attempts{})", if *.deadline_reached { ", at the invocation deadline" } else { "" })]
pub struct WriteFailure {
    /// The last error.
    pub error: DbError,
    /// Attempts made.
    pub attempts: u32,
    /// Whether the retries stopped because the invocation's time ran out.
    pub deadline_reached: bool,
}

/// Writes plans to the database.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Cluster, secret and database.
    pub db: Database,
    /// Rejects table, optionally schema-qualified.
    pub rejects_table: String,
    /// Request size budget of one Data API call, in bytes.
    pub max_request_bytes: usize,
    /// Retry settings for transient errors.
    pub retry: RetryPolicy,
}

impl Writer {
    /// Writes `plan`, built from `envelope`, retrying transient errors until
    /// `deadline`. Records rejected by the database are added to the rejects.
    pub async fn write(&self, envelope: &Envelope, plan: &Plan, options: WriteOptions, deadline: Instant) -> Result<Written, WriteFailure> {
        let mut attempts = 0;
        let mut isolate = false;
        loop {
            attempts += 1;
            let error = match self.write_once(envelope, plan, options, isolate, deadline).await {
                Ok(mut written) => {
                    written.attempts = attempts;
                    return Ok(written);
                }
                Err(error) => error,
            };

            match error.kind {
                // Run again at once, isolating the rejected rows behind savepoints.
                ErrorKind::Data if !isolate => {
                    isolate = true;
                    attempts -= 1;
                    continue;
                }
                ErrorKind::Transient if attempts < self.retry.max_attempts => {
                    let delay = self.retry.delay(attempts);
                    tracing::debug!(bucket = %envelope.source.bucket, key = %envelope.source.key, attempts, delay_ms = delay.as_millis() as u64, error = %error, "retrying after a transient error");
                    if !db::sleep_before(delay, deadline).await {
                        return Err(WriteFailure { error, attempts, deadline_reached: true });
                    }
                }
                _ => {
                    let deadline_reached = Instant::now() >= deadline;
                    return Err(WriteFailure { error, attempts, deadline_reached });
                }
            }
        }
    }

    async fn write_once(&self, envelope: &Envelope, plan: &Plan, options: WriteOptions, isolate: bool, deadline: Instant) -> Result<Written, DbError> {
        let transaction = self.db.begin(deadline).await?;
        match self.write_in(&transaction, envelope, plan, options, isolate, deadline).await {
            Ok(written) if options.dry_run => {
                self.db.rollback(&transaction, deadline).await?;
                Ok(written)
            }
            Ok(written) => {
                self.db.commit(&transaction, deadline).await?;
                Ok(written)
            }
            Err(error) => {
                // The Data API drops an abandoned transaction after three
                // minutes, so a failed rollback only delays that.
                let grace = deadline.max(Instant::now() + Duration::from_millis(500));
                if let Err(rollback_error) = self.db.rollback(&transaction, grace).await {
                    tracing::debug!(error = %rollback_error, "rollback failed");
                }
                Err(error)
            }
        }
    }

    async fn write_in(&self, transaction: &str, envelope: &Envelope, plan: &Plan, options: WriteOptions, isolate: bool, deadline: Instant) -> Result<Written, DbError> {
        let mut rejected = plan.rejects.clone();
        let mut rows_by_table = Vec::with_capacity(plan.tables.len());

        for table in &plan.tables {
            let (chunks, oversized) = self.chunks(plan, table);
            let mut rejected_rows = oversized.len();
            for row in oversized {
                rejected.push(database_reject(envelope, table, row, format!("the row exceeds the Data API request limit of {} bytes", self.max_request_bytes)));
            }
            for chunk in chunks {
                if isolate {
                    for (row, reason) in self.write_isolating(transaction, plan, table, &chunk, deadline).await? {
                        rejected.push(database_reject(envelope, table, row, reason));
                        rejected_rows += 1;
                    }
                } else {
                    self.db.batch_execute(&table.sql, parameter_sets(&plan.columns, &chunk), transaction, deadline).await?;
                }
            }
            rows_by_table.push((table.table.clone(), table.rows.len() - rejected_rows));
        }

        let mut cleared = 0;
        if options.clear_rejects {
            let still_rejected: HashSet<&str> = rejected.iter().map(|reject| reject.record_id.as_str()).collect();
            let ids: Vec<&str> = envelope.records.iter().map(|record| record.id.as_str()).filter(|id| !still_rejected.contains(id)).collect();
            cleared = self.clear_rejects(transaction, &ids, deadline).await?;
        }
        self.store_rejects(transaction, envelope, &rejected, deadline).await.map_err(fatal_if_data)?;

        Ok(Written { rows_by_table, rejected, dropped: plan.dropped, cleared, attempts: 0 })
    }

    /// Splits a table's rows into calls that fit the request budget and
    /// [`MAX_ROWS_PER_CALL`]; a row that alone exceeds the budget is returned apart.
    fn chunks<'p>(&self, plan: &Plan, table: &'p TableRows) -> (Vec<Vec<&'p Row>>, Vec<&'p Row>) {
        let budget = self.max_request_bytes.saturating_sub(REQUEST_OVERHEAD_BYTES + db::escaped_len(&table.sql));
        let mut chunks = Vec::new();
        let mut oversized = Vec::new();
        let mut current = Vec::new();
        let mut current_bytes = 0;
        for row in &table.rows {
            let row_bytes = 2 + row.values.iter().zip(&plan.columns).map(|(value, name)| db::parameter_size_bytes(name, value)).sum::<usize>();
            if row_bytes > budget {
                oversized.push(row);
                continue;
            }
            if !current.is_empty() && (current_bytes + row_bytes > budget || current.len() == MAX_ROWS_PER_CALL) {
                chunks.push(std::mem::take(&mut current));
                current_bytes = 0;
            }
            current.push(row);
            current_bytes += row_bytes;
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        (chunks, oversized)
    }

    /// Writes `rows` behind savepoints, halving any call that fails on data,
    /// and returns the rows the database rejected with its reason.
    async fn write_isolating<'r>(&self, transaction: &str, plan: &Plan, table: &TableRows, rows: &[&'r Row], deadline: Instant) -> Result<Vec<(&'r Row, String)>, DbError> {
        let mut rejected = Vec::new();
        let mut pending = vec![rows];
        while let Some(part) = pending.pop() {
            self.db.execute("SAVEPOINT isolate_rows", Vec::new(), Some(transaction), deadline).await?;
            match self.db.batch_execute(&table.sql, parameter_sets(&plan.columns, part), transaction, deadline).await {
                Ok(()) => {
                    self.db.execute("RELEASE SAVEPOINT isolate_rows", Vec::new(), Some(transaction), deadline).await?;
                }
                Err(error) if error.kind == ErrorKind::Data => {
                    self.db.execute("ROLLBACK TO SAVEPOINT isolate_rows", Vec::new(), Some(transaction), deadline).await?;
                    self.db.execute("RELEASE SAVEPOINT isolate_rows", Vec::new(), Some(transaction), deadline).await?;
                    if let [row] = part {
                        rejected.push((*row, error.message.clone()));
                    } else {
                        let (left, right) = part.split_at(part.len() / 2);
                        pending.push(right);
                        pending.push(left);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(rejected)
    }

    /// Upserts rejects, keyed on record id so that redelivery updates
    /// `last_seen` and `occurrences` instead of adding rows.
    async fn store_rejects(&self, transaction: &str, envelope: &Envelope, rejects: &[RejectedRecord], deadline: Instant) -> Result<(), DbError> {
        if rejects.is_empty() {
            return Ok(());
        }
        let table = quote_table(&self.rejects_table);
        let sql = format!(
            "INSERT INTO {table} AS r (record_id, dataset, source_bucket, source_key, source_version_id, source_etag, line, record_index, raw_record, reason, stage, target_table) \
             VALUES (:record_id, :dataset, :source_bucket, :source_key, :source_version_id, :source_etag, :line, :record_index, :raw_record, :reason, :stage, :target_table) \
             ON CONFLICT (record_id) DO UPDATE SET raw_record = EXCLUDED.raw_record, reason = EXCLUDED.reason, stage = EXCLUDED.stage, \
             target_table = EXCLUDED.target_table, last_seen = now(), occurrences = r.occurrences + 1"
        );
        let source = &envelope.source;
        let text = |value: &str| SqlValue::Text(without_nul(value));
        let optional = |value: Option<&String>| value.map_or(SqlValue::Null, |value| text(value));
        let sets: Vec<Vec<SqlParameter>> = rejects
            .iter()
            .map(|reject| {
                let values = [
                    ("record_id", text(&reject.record_id)),
                    ("dataset", text(&envelope.dataset)),
                    ("source_bucket", text(&source.bucket)),
                    ("source_key", text(&source.key)),
                    ("source_version_id", optional(source.version_id.as_ref())),
                    ("source_etag", optional(source.etag.as_ref())),
                    ("line", SqlValue::Long(i64::try_from(reject.line).unwrap_or(i64::MAX))),
                    ("record_index", reject.index.map_or(SqlValue::Null, |index| SqlValue::Long(i64::try_from(index).unwrap_or(i64::MAX)))),
                    ("raw_record", text(&reject.raw)),
                    ("reason", text(&reject.reason)),
                    ("stage", text(reject.stage.as_str())),
                    ("target_table", optional(reject.table.as_ref())),
                ];
                values.iter().map(|(name, value)| db::parameter(name, value)).collect()
            })
            .collect();
        for chunk in split_sets(sets, self.max_request_bytes.saturating_sub(REQUEST_OVERHEAD_BYTES + sql.len())) {
            self.db.batch_execute(&sql, chunk, transaction, deadline).await?;
        }
        Ok(())
    }

    /// Deletes the rejects of `record_ids`, returning how many records were asked for.
    async fn clear_rejects(&self, transaction: &str, record_ids: &[&str], deadline: Instant) -> Result<usize, DbError> {
        if record_ids.is_empty() {
            return Ok(0);
        }
        let sql = format!("DELETE FROM {} WHERE record_id = :record_id", quote_table(&self.rejects_table));
        let sets: Vec<Vec<SqlParameter>> =
            record_ids.iter().map(|id| vec![db::parameter("record_id", &SqlValue::Text((*id).to_owned()))]).collect();
        for chunk in split_sets(sets, self.max_request_bytes.saturating_sub(REQUEST_OVERHEAD_BYTES + sql.len())) {
            self.db.batch_execute(&sql, chunk, transaction, deadline).await?;
        }
        Ok(record_ids.len())
    }
}

fn parameter_sets(columns: &[String], rows: &[&Row]) -> Vec<Vec<SqlParameter>> {
    rows.iter().map(|row| columns.iter().zip(&row.values).map(|(name, value)| db::parameter(name, value)).collect()).collect()
}

/// Splits parameter sets into calls of at most `budget` bytes (estimated).
fn split_sets(sets: Vec<Vec<SqlParameter>>, budget: usize) -> Vec<Vec<Vec<SqlParameter>>> {
    let size = |set: &Vec<SqlParameter>| {
        2 + set
            .iter()
            .map(|parameter| {
                let text = parameter.value().and_then(|value| value.as_string_value().ok()).map_or(0, |text| db::escaped_len(text));
                60 + parameter.name().map_or(0, str::len) + text.max(25)
            })
            .sum::<usize>()
    };
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for set in sets {
        let bytes = size(&set);
        if !current.is_empty() && (current_bytes + bytes > budget || current.len() == MAX_ROWS_PER_CALL) {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += bytes;
        current.push(set);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

fn database_reject(envelope: &Envelope, table: &TableRows, row: &Row, reason: String) -> RejectedRecord {
    let record = &envelope.records[row.record];
    RejectedRecord {
        record_id: record.id.clone(),
        line: record.line,
        index: record.index,
        raw: record.data.get().to_owned(),
        reason,
        stage: Stage::Database,
        table: Some(table.table.clone()),
    }
}

/// PostgreSQL text cannot hold NUL, so a reason or raw text that has one keeps a visible replacement.
fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// Turns a data error into a fatal one. A data error while storing rejects
/// cannot be isolated, so the message fails instead.
fn fatal_if_data(error: DbError) -> DbError {
    if error.kind == ErrorKind::Data { DbError { kind: ErrorKind::Fatal, ..error } } else { error }
}

/// Formats `now` for a TIMESTAMP parameter (UTC).
pub fn now_timestamp() -> String {
    crate::value::format_timestamp(chrono::Utc::now().naive_utc())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mapping::Mapping;

    fn writer(max_request_bytes: usize) -> Writer {
        let config = aws_sdk_rdsdata::Config::builder().behavior_version(aws_sdk_rdsdata::config::BehaviorVersion::latest()).build();
        Writer {
            db: Database {
                client: aws_sdk_rdsdata::Client::from_conf(config),
                cluster_arn: "arn".into(),
                secret_arn: "secret".into(),
                database: "db".into(),
            },
            rejects_table: "rejected_records".into(),
            max_request_bytes,
            retry: RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(100), max_delay: Duration::from_millis(1000) },
        }
    }

    fn plan_of(rows: usize, text_bytes: usize) -> Plan {
        let mapping = Mapping::parse("m.toml", "dataset = \"d\"\ntable = \"t\"\n[[columns]]\nname = \"record_id\"\ncomputed = \"record_id\"\n[[columns]]\nname = \"v\"\nsource = \"v\"\n").unwrap();
        let rows = (0..rows).map(|record| Row { record, values: vec![SqlValue::Text(format!("r{record}")), SqlValue::Text("x".repeat(text_bytes))] }).collect();
        Plan { columns: vec!["record_id".into(), "v".into()], tables: vec![TableRows { table: "t".into(), sql: mapping.insert_sql("t"), rows }], rejects: Vec::new(), dropped: 0 }
    }

    #[test]
    fn chunks_stay_under_request_budget() {
        let writer = writer(64 * 1024 + REQUEST_OVERHEAD_BYTES);
        let plan = plan_of(100, 2000);
        let (chunks, oversized) = writer.chunks(&plan, &plan.tables[0]);
        assert!(oversized.is_empty());
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 100);
        assert!(chunks.len() >= 4, "{} chunks", chunks.len());
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(|row| 2 + row.values.iter().zip(&plan.columns).map(|(v, n)| db::parameter_size_bytes(n, v)).sum::<usize>()).sum();
            assert!(bytes <= 64 * 1024, "{bytes}");
        }
    }

    #[test]
    fn oversized_row_is_set_apart() {
        let writer = writer(64 * 1024 + REQUEST_OVERHEAD_BYTES);
        let plan = plan_of(1, 70 * 1024);
        let (chunks, oversized) = writer.chunks(&plan, &plan.tables[0]);
        assert!(chunks.is_empty());
        assert_eq!(oversized.len(), 1);
    }

    #[test]
    fn chunks_respect_row_cap() {
        let writer = writer(DATA_API_MAX_REQUEST_BYTES);
        let plan = plan_of(MAX_ROWS_PER_CALL + 1, 1);
        let (chunks, _) = writer.chunks(&plan, &plan.tables[0]);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [MAX_ROWS_PER_CALL, 1]);
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let policy = RetryPolicy { max_attempts: 10, base_delay: Duration::from_millis(100), max_delay: Duration::from_millis(1000) };
        for _ in 0..50 {
            let first = policy.delay(1);
            assert!(first >= Duration::from_millis(50), "{first:?}");
            assert!(first <= Duration::from_millis(100), "{first:?}");
            let third = policy.delay(3);
            assert!(third >= Duration::from_millis(200), "{third:?}");
            assert!(third <= Duration::from_millis(400), "{third:?}");
            let late = policy.delay(30);
            assert!(late >= Duration::from_millis(500), "{late:?}");
            assert!(late <= Duration::from_millis(1000), "{late:?}");
        }
    }
}
