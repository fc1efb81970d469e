//! `local-pipeline report`: what the pipeline made of the uploaded files.
//!
//! Per file under a watched prefix: its size, the size and ratio of its
//! archive copy, and the records s3-to-sqs sent and rejected (from the
//! journal that `run` writes). Then the rows per table, read through the RDS
//! Data API, compared with counts saved before the run, and the messages in
//! the dead-letter queues.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use aws_sdk_rdsdata::types::Field;
use serde_json::Value;

use crate::journal::Entry;
use crate::template::Wiring;
use crate::{Error, run, setup};

/// Location of the database behind the Data API.
#[derive(Debug, Clone)]
pub struct Database {
    /// Cluster ARN; the local Data API accepts any well-formed ARN.
    pub cluster_arn: String,
    /// Secret ARN.
    pub secret_arn: String,
    /// Database name.
    pub database: String,
}

/// One uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileLine {
    /// Object key.
    pub key: String,
    /// Object size in bytes.
    pub size_bytes: i64,
    /// Size of the archive copy in bytes, when it exists.
    pub archive_bytes: Option<i64>,
    /// Records sent, from s3-to-sqs's response.
    pub sent: Option<u64>,
    /// Records rejected, from s3-to-sqs's response.
    pub rejected: Option<u64>,
}

/// Lists the files under the watched prefixes of every notified bucket,
/// with their archive copies at `<archive_prefix><key>.gz`.
pub async fn files(
    wiring: &Wiring,
    s3: &aws_sdk_s3::Client,
    archive_prefix: &str,
    journal: &[Entry],
) -> Result<Vec<(String, Vec<FileLine>)>, Error> {
    let mut buckets = Vec::new();
    for bucket in &wiring.buckets {
        let Some(prefixes) = setup::notification_prefixes(wiring, &bucket.name) else {
            continue;
        };
        let prefixes = if prefixes.is_empty() {
            vec![String::new()]
        } else {
            prefixes
        };
        let mut lines = Vec::new();
        for prefix in prefixes {
            let mut pages = s3
                .list_objects_v2()
                .bucket(&bucket.name)
                .prefix(&prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|error| Error::aws("ListObjectsV2", &bucket.name, error))?;
                for object in page.contents() {
                    let Some(key) = object.key() else { continue };
                    if key.starts_with(archive_prefix) || key.ends_with('/') {
                        continue;
                    }
                    let archive_key = format!("{archive_prefix}{key}.gz");
                    let archive_bytes = s3
                        .head_object()
                        .bucket(&bucket.name)
                        .key(&archive_key)
                        .send()
                        .await
                        .ok()
                        .and_then(|head| head.content_length);
                    let (sent, rejected) = record_counts(journal, &bucket.name, key);
                    lines.push(FileLine {
                        key: key.to_owned(),
                        size_bytes: object.size().unwrap_or_default(),
                        archive_bytes,
                        sent,
                        rejected,
                    });
                }
            }
        }
        buckets.push((bucket.name.clone(), lines));
    }
    Ok(buckets)
}

/// Returns the records sent and rejected for an object, from the latest
/// successful object-created response in the journal that reports them.
pub fn record_counts(journal: &[Entry], bucket: &str, key: &str) -> (Option<u64>, Option<u64>) {
    let latest = journal
        .iter()
        .rev()
        .filter(|entry| {
            entry.ok && entry.bucket.as_deref() == Some(bucket) && entry.key.as_deref() == Some(key)
        })
        .find_map(|entry| {
            // s3-to-sqs returns {"objects": [{"key": ..., "records": n, "rejected": n}], ...};
            // a flat object with the counts is read too.
            let summary = entry
                .response
                .get("objects")
                .and_then(Value::as_array)
                .and_then(|objects| {
                    objects
                        .iter()
                        .find(|object| object.get("key").and_then(Value::as_str) == Some(key))
                })
                .unwrap_or(&entry.response);
            let sent = first_number(summary, &["records", "records_sent", "sent"]);
            let rejected = first_number(summary, &["rejected", "records_rejected", "rejects"]);
            (sent.is_some() || rejected.is_some()).then_some((sent, rejected))
        });
    latest.unwrap_or((None, None))
}

fn first_number(value: &Value, names: &[&str]) -> Option<u64> {
    names.iter().find_map(|name| match value.get(name) {
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::Array(items)) => Some(items.len() as u64),
        _ => None,
    })
}

/// Returns the tables that the pipeline writes: the `table` of every
/// mapping file in `mappings_dir`, and each function's `REJECTS_TABLE`.
/// An empty list means every table.
pub fn pipeline_tables(mappings_dir: &Path, wiring: &Wiring) -> Vec<String> {
    let mut tables: Vec<String> = std::fs::read_dir(mappings_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "toml")
        })
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter_map(|text| text.parse::<toml::Table>().ok())
        .filter_map(|mapping| {
            mapping
                .get("table")
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    if tables.is_empty() {
        return tables;
    }
    tables.extend(
        wiring
            .functions
            .iter()
            .filter_map(|function| function.environment.get("REJECTS_TABLE").cloned()),
    );
    tables.sort();
    tables.dedup();
    tables
}

/// Counts the rows of `tables` (every table outside the system schemas when
/// empty) through the Data API. Tables that do not exist are left out.
pub async fn table_counts(
    client: &aws_sdk_rdsdata::Client,
    database: &Database,
    tables: &[String],
) -> Result<BTreeMap<String, i64>, Error> {
    let tables_sql = "SELECT table_schema, table_name FROM information_schema.tables \
                      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') \
                      ORDER BY 1, 2";
    let listed = execute(client, database, tables_sql).await?;
    let mut counts = BTreeMap::new();
    for row in listed {
        let (Some(Field::StringValue(schema)), Some(Field::StringValue(table))) =
            (row.first(), row.get(1))
        else {
            continue;
        };
        let name = if schema == "public" {
            table.clone()
        } else {
            format!("{schema}.{table}")
        };
        if !tables.is_empty() && !tables.contains(&name) {
            continue;
        }
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_identifier(schema),
            quote_identifier(table)
        );
        let rows = execute(client, database, &sql).await?;
        let count = match rows.first().and_then(|row| row.first()) {
            Some(Field::LongValue(count)) => *count,
            Some(Field::StringValue(text)) => text.parse().unwrap_or_default(),
            _ => 0,
        };
        counts.insert(name, count);
    }
    Ok(counts)
}

async fn execute(
    client: &aws_sdk_rdsdata::Client,
    database: &Database,
    sql: &str,
) -> Result<Vec<Vec<Field>>, Error> {
    let output = client
        .execute_statement()
        .resource_arn(&database.cluster_arn)
        .secret_arn(&database.secret_arn)
        .database(&database.database)
        .sql(sql)
        .send()
        .await
        .map_err(|error| Error::aws("ExecuteStatement", &database.database, error))?;
    Ok(output.records.unwrap_or_default())
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads table counts saved by `counts --save`.
pub fn load_counts(path: &Path) -> Result<BTreeMap<String, i64>, Error> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    serde_json::from_str(&text).map_err(|error| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(error),
    })
}

/// Saves table counts as JSON.
pub fn save_counts(path: &Path, counts: &BTreeMap<String, i64>) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let text =
        serde_json::to_string_pretty(counts).map_err(|error| io(std::io::Error::other(error)))?;
    std::fs::write(path, text).map_err(io)
}

/// Returns the messages left in each queue that is some queue's dead-letter
/// queue, including the stand-in's.
pub async fn dead_letter_counts(
    wiring: &Wiring,
    events: &setup::EventQueues,
    sqs: &aws_sdk_sqs::Client,
) -> Result<Vec<(String, u64)>, Error> {
    let mut urls: Vec<String> = wiring
        .queues
        .iter()
        .filter(|queue| {
            wiring.queues.iter().any(|q| {
                q.redrive_policy
                    .as_ref()
                    .is_some_and(|p| p.dead_letter_target_arn == queue.arn)
            })
        })
        .map(|queue| queue.url.clone())
        .collect();
    match setup::events_dead_letter(wiring).0 {
        Some(arn) => urls.extend(
            wiring
                .queue_by_arn(&arn)
                .map(|queue| queue.url.clone())
                .filter(|url| !urls.contains(url)),
        ),
        None => urls.push(events.dead_letter_url.clone()),
    }
    run::remaining_messages(sqs, &urls).await
}

/// Renders the report as text.
pub fn render(
    files: &[(String, Vec<FileLine>)],
    before: Option<&BTreeMap<String, i64>>,
    after: &BTreeMap<String, i64>,
    dead_letters: &[(String, u64)],
    elapsed_secs: Option<f64>,
) -> String {
    let mut out = String::new();
    for (bucket, lines) in files {
        let _ = writeln!(out, "Files in s3://{bucket}");
        let _ = writeln!(
            out,
            "  {:<52} {:>10} {:>10} {:>7} {:>8} {:>8}",
            "key", "bytes", "archive", "ratio", "sent", "rejected"
        );
        for line in lines {
            // compress-on-upload leaves files that are gzip already (key ending in .gz) as they are.
            let already_gzip = line.key.to_ascii_lowercase().ends_with(".gz");
            let archive = match line.archive_bytes {
                Some(bytes) => bytes.to_string(),
                None if already_gzip => "(gzip)".to_owned(),
                None => "missing".to_owned(),
            };
            let ratio = match line.archive_bytes {
                Some(archive) if line.size_bytes > 0 => {
                    format!("{:.1}%", 100.0 * archive as f64 / line.size_bytes as f64)
                }
                _ => "-".to_owned(),
            };
            let count = |value: Option<u64>| value.map_or("?".to_owned(), |n| n.to_string());
            let _ = writeln!(
                out,
                "  {:<52} {:>10} {:>10} {:>7} {:>8} {:>8}",
                line.key,
                line.size_bytes,
                archive,
                ratio,
                count(line.sent),
                count(line.rejected)
            );
        }
    }

    let _ = writeln!(
        out,
        "Rows per table{}",
        if before.is_some() {
            " (before this run -> now)"
        } else {
            ""
        }
    );
    if after.is_empty() {
        let _ = writeln!(out, "  no tables; run scripts/migrate.sh");
    }
    for (table, rows) in after {
        match before {
            Some(before) => {
                let previous = before.get(table).copied().unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {table:<40} {previous:>8} -> {rows:>8} ({:+})",
                    rows - previous
                );
            }
            None => {
                let _ = writeln!(out, "  {table:<40} {rows:>8}");
            }
        }
    }

    for (url, count) in dead_letters {
        let name = url.rsplit('/').next().unwrap_or(url);
        let _ = writeln!(out, "Dead-letter queue {name}: {count} messages");
    }
    if let Some(secs) = elapsed_secs {
        let _ = writeln!(out, "Time from upload to drained: {secs:.1} s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(key: &str, ok: bool, response: Value) -> Entry {
        Entry {
            time_ms: 0,
            function: "s3-to-sqs".into(),
            trigger: "object-created".into(),
            bucket: Some("b".into()),
            key: Some(key.into()),
            messages: 0,
            failed: 0,
            ok,
            error: None,
            response,
            duration_ms: 1,
        }
    }

    #[test]
    fn record_counts_takes_latest_reporting_response() {
        let journal = vec![
            entry("k", true, json!({"records_sent": 5, "records_rejected": 1})),
            entry(
                "k",
                true,
                json!({"objects": [{"key": "other", "records": 1, "rejected": 1}, {"key": "k", "records": 7, "rejected": 0}], "skipped": 0}),
            ),
            entry("k", true, json!({"archive_key": "archive/k.gz"})),
            entry("k", false, json!(null)),
        ];
        assert_eq!(record_counts(&journal, "b", "k"), (Some(7), Some(0)));
        assert_eq!(record_counts(&journal, "b", "other"), (None, None));
    }

    #[test]
    fn render_shows_ratio_and_row_change() {
        let files = vec![(
            "b".to_owned(),
            vec![FileLine {
                key: "incoming/x.csv".into(),
                size_bytes: 1000,
                archive_bytes: Some(250),
                sent: Some(10),
                rejected: Some(1),
            }],
        )];
        let before = BTreeMap::from([("penguins".to_owned(), 10)]);
        let after = BTreeMap::from([("penguins".to_owned(), 10)]);
        let text = render(&files, Some(&before), &after, &[], Some(1.5));
        assert!(text.contains("25.0%"), "{text}");
        assert!(text.contains("10 ->       10 (+0)"), "{text}");
        assert!(text.contains("1.5 s"), "{text}");
    }
}
