//! Applies a mapping to an envelope's records: rows per target table, and
//! the records that cannot become rows with the reason why.

use std::collections::HashMap;

use pipeline_shared::envelope::{Envelope, Record};
use serde_json::value::RawValue;

use crate::mapping::{ColumnValue, Computed, Mapping};
use crate::value::{self, Hint, SqlValue};

/// Pipeline stage that rejected a record, stored in the rejects table's `stage` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// s3-to-sqs could not parse the record from the file.
    Parse,
    /// The mapping could not convert the record.
    Transform,
    /// The database rejected the row (a constraint or a type check).
    Database,
}

impl Stage {
    /// Returns the name stored in the rejects table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Transform => "transform",
            Self::Database => "database",
        }
    }
}

/// A record that is not written, with everything needed to find and replay it.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRecord {
    /// Record id from the envelope, unique in the rejects table.
    pub record_id: String,
    /// Line of the file where the record starts.
    pub line: u64,
    /// Element index in a JSON array, when the file is one.
    pub index: Option<u64>,
    /// The record's JSON object (transform and database stages) or the start of its raw text (parse stage).
    pub raw: String,
    /// Reason for the rejection.
    pub reason: String,
    /// Stage that rejected it.
    pub stage: Stage,
    /// The table it was meant for, when known.
    pub table: Option<String>,
}

/// One row for a target table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Position of the record in the envelope's `records`.
    pub record: usize,
    /// One value per mapping column, in column order.
    pub values: Vec<SqlValue>,
}

/// The rows of one target table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRows {
    /// Target table.
    pub table: String,
    /// The upsert statement with one `:column` parameter per column.
    pub sql: String,
    /// Rows in record order.
    pub rows: Vec<Row>,
}

/// Rows and rejects of a message, before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Column names, in the order of each row's values.
    pub columns: Vec<String>,
    /// Rows per target table, the mapping's table first, then routes in mapping order.
    pub tables: Vec<TableRows>,
    /// Records rejected by s3-to-sqs or by the mapping.
    pub rejects: Vec<RejectedRecord>,
    /// Records that a `drop_if` condition removed.
    pub dropped: usize,
}

/// Applies `mapping` to every record of `envelope`; `ingested_at` is the
/// time of ingestion, UTC, formatted for the TIMESTAMP hint.
pub fn plan(mapping: &Mapping, envelope: &Envelope, ingested_at: &str) -> Plan {
    let mut tables: Vec<TableRows> = std::iter::once(&mapping.table)
        .chain(mapping.routes.iter().map(|route| &route.table))
        .map(|table| TableRows { table: table.clone(), sql: mapping.insert_sql(table), rows: Vec::new() })
        .collect();
    let mut rejects: Vec<RejectedRecord> = envelope
        .rejects
        .iter()
        .map(|reject| RejectedRecord {
            record_id: reject.id.clone(),
            line: reject.line,
            index: reject.index,
            raw: reject.raw.clone(),
            reason: reject.reason.clone(),
            stage: Stage::Parse,
            table: None,
        })
        .collect();
    let mut dropped = 0;

    for (position, record) in envelope.records.iter().enumerate() {
        let reject = |reason: String, table: &str| RejectedRecord {
            record_id: record.id.clone(),
            line: record.line,
            index: record.index,
            raw: record.data.get().to_owned(),
            reason,
            stage: Stage::Transform,
            table: Some(table.to_owned()),
        };

        let fields: HashMap<String, &RawValue> = match serde_json::from_str(record.data.get()) {
            Ok(fields) => fields,
            Err(_) => {
                rejects.push(reject("record is not a JSON object".to_owned(), &mapping.table));
                continue;
            }
        };
        if mapping.drop_if.iter().any(|condition| condition.holds(&fields, mapping.trim, &mapping.null_markers)) {
            dropped += 1;
            continue;
        }
        let target = mapping
            .routes
            .iter()
            .position(|route| route.when.holds(&fields, mapping.trim, &mapping.null_markers))
            .map_or(0, |route| route + 1);

        match row_values(mapping, envelope, record, &fields, ingested_at) {
            Ok(values) => tables[target].rows.push(Row { record: position, values }),
            Err(reason) => rejects.push(reject(reason, &tables[target].table)),
        }
    }

    tables.retain(|table| !table.rows.is_empty());
    Plan { columns: mapping.columns.iter().map(|column| column.name.clone()).collect(), tables, rejects, dropped }
}

fn row_values(
    mapping: &Mapping,
    envelope: &Envelope,
    record: &Record,
    fields: &HashMap<String, &RawValue>,
    ingested_at: &str,
) -> Result<Vec<SqlValue>, String> {
    let source = &envelope.source;
    let text = |value: Option<&String>| value.map_or(SqlValue::Null, |value| SqlValue::Text(value.clone()));
    mapping
        .columns
        .iter()
        .map(|column| match &column.value {
            ColumnValue::Source(source_column) => {
                let input = value::classify(fields.get(&source_column.field).copied());
                value::convert(source_column, input).map_err(|reason| format!("column {}: {reason}", column.name))
            }
            ColumnValue::Computed(computed) => Ok(match computed {
                Computed::RecordId => SqlValue::Text(record.id.clone()),
                Computed::Bucket => SqlValue::Text(source.bucket.clone()),
                Computed::Key => SqlValue::Text(source.key.clone()),
                Computed::VersionId => text(source.version_id.as_ref()),
                Computed::Etag => text(source.etag.as_ref()),
                Computed::SourceVersion => text(source.version_id.as_ref().or(source.etag.as_ref())),
                Computed::Line => SqlValue::Long(i64::try_from(record.line).unwrap_or(i64::MAX)),
                Computed::RecordIndex => record.index.map_or(SqlValue::Null, |index| SqlValue::Long(i64::try_from(index).unwrap_or(i64::MAX))),
                Computed::Dataset => SqlValue::Text(envelope.dataset.clone()),
                Computed::IngestedAt => SqlValue::Typed(ingested_at.to_owned(), Hint::Timestamp),
            }),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MAPPING: &str = r#"
dataset = "orders"
table = "s.orders"
null_markers = ["", "NA"]

[[drop_if]]
field = "status"
equals = "test"

[[route]]
table = "s.refunds"
when = { field = "status", equals = "refunded" }

[[columns]]
name = "record_id"
computed = "record_id"

[[columns]]
name = "amount"
source = "amount"
type = "numeric"
required = true

[[columns]]
name = "note"
source = "note"

[[columns]]
name = "src"
computed = "source_version"

[[columns]]
name = "line"
computed = "line"

[[columns]]
name = "idx"
computed = "record_index"

[[columns]]
name = "ds"
computed = "dataset"

[[columns]]
name = "at"
computed = "ingested_at"

[[columns]]
name = "bucket"
computed = "bucket"

[[columns]]
name = "object_key"
computed = "key"

[[columns]]
name = "etag"
computed = "etag"

[[columns]]
name = "version_id"
computed = "version_id"
"#;

    fn envelope() -> Envelope {
        serde_json::from_str(
            r#"{"version":1,"source":{"bucket":"b","key":"in/o.csv","version_id":null,"etag":"e1"},"dataset":"orders","format":"csv",
            "records":[
              {"id":"r1","line":2,"data":{"amount":"12345678901234567.89","note":"","status":"open"}},
              {"id":"r2","line":3,"data":{"amount":"abc","status":"open"}},
              {"id":"r3","line":4,"data":{"amount":"1","status":"test"}},
              {"id":"r4","line":5,"index":3,"data":{"amount":2.5,"note":" x ","status":"refunded"}},
              {"id":"r5","line":6,"data":[1,2]}
            ],
            "rejects":[{"id":"r6","line":7,"reason":"expected 3 fields, found 1","raw":"oops"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn plan_applies_every_step() {
        let mapping = Mapping::parse("m.toml", MAPPING).unwrap();
        let plan = plan(&mapping, &envelope(), "2024-01-02 03:04:05");

        assert_eq!(plan.columns[..3], ["record_id", "amount", "note"]);
        assert_eq!(plan.dropped, 1);
        assert_eq!(plan.tables.len(), 2);

        let orders = &plan.tables[0];
        assert_eq!(orders.table, "s.orders");
        assert_eq!(orders.rows.len(), 1);
        assert_eq!(
            orders.rows[0],
            Row {
                record: 0,
                values: vec![
                    SqlValue::Text("r1".into()),
                    SqlValue::Typed("12345678901234567.89".into(), Hint::Decimal),
                    SqlValue::Null,
                    SqlValue::Text("e1".into()),
                    SqlValue::Long(2),
                    SqlValue::Null,
                    SqlValue::Text("orders".into()),
                    SqlValue::Typed("2024-01-02 03:04:05".into(), Hint::Timestamp),
                    SqlValue::Text("b".into()),
                    SqlValue::Text("in/o.csv".into()),
                    SqlValue::Text("e1".into()),
                    SqlValue::Null,
                ],
            }
        );

        let refunds = &plan.tables[1];
        assert_eq!(refunds.table, "s.refunds");
        assert!(refunds.sql.starts_with("INSERT INTO \"s\".\"refunds\""), "{}", refunds.sql);
        assert_eq!(refunds.rows.len(), 1);
        assert_eq!(refunds.rows[0].record, 3);
        assert_eq!(refunds.rows[0].values[1], SqlValue::Typed("2.5".into(), Hint::Decimal));
        assert_eq!(refunds.rows[0].values[2], SqlValue::Text("x".into()));
        assert_eq!(refunds.rows[0].values[5], SqlValue::Long(3));

        let rejects: Vec<(&str, Stage, &str)> = plan.rejects.iter().map(|r| (r.record_id.as_str(), r.stage, r.reason.as_str())).collect();
        assert_eq!(
            rejects,
            [
                ("r6", Stage::Parse, "expected 3 fields, found 1"),
                ("r2", Stage::Transform, "column amount: field \"amount\": \"abc\" is not a decimal number"),
                ("r5", Stage::Transform, "record is not a JSON object"),
            ]
        );
        assert_eq!(plan.rejects[1].raw, r#"{"amount":"abc","status":"open"}"#);
        assert_eq!(plan.rejects[1].line, 3);
        assert_eq!(plan.rejects[1].table.as_deref(), Some("s.orders"));
        assert_eq!(plan.rejects[0].raw, "oops");
    }

    #[test]
    fn plan_leaves_out_empty_tables() {
        let mapping = Mapping::parse("m.toml", MAPPING).unwrap();
        let mut envelope = envelope();
        envelope.records.truncate(1);
        let plan = plan(&mapping, &envelope, "2024-01-02 03:04:05");
        assert_eq!(plan.tables.iter().map(|t| t.table.as_str()).collect::<Vec<_>>(), ["s.orders"]);
    }
}
