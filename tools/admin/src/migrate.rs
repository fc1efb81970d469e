//! Applies the numbered SQL files of `migrations/` through the Data API.
//!
//! Each file runs in its own transaction together with its row in the
//! migrations table (version, file name, SHA-256 checksum), so a file is
//! either applied and recorded or not at all. A rerun skips recorded files
//! and stops with an error when a recorded file has changed since. An advisory
//! lock serialises concurrent runs.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use transform_to_rds::db::{Database, DbError};
use transform_to_rds::value::SqlValue;
use transform_to_rds::writer::RetryPolicy;

use crate::AdminError;
use crate::sql_split::split_statements;

/// Key of the PostgreSQL advisory lock that serialises migration runs.
const MIGRATION_LOCK_KEY: i64 = 7_061_502_918_113;

/// Time a migration run may take, retries included.
const RUN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    /// The number before the first `_`, such as `0002`.
    pub version: String,
    /// File name, such as `0002_penguins.sql`.
    pub name: String,
    /// File contents.
    pub sql: String,
    /// SHA-256 of the contents, in hex.
    pub checksum: String,
}

/// Outcome of a migration run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Files applied by this run.
    pub applied: Vec<String>,
    /// Files that an earlier run applied.
    pub already_applied: Vec<String>,
}

/// Reads `dir`'s migration files, named `<digits>_<name>.sql`, in version order.
pub fn load_dir(dir: &Path) -> Result<Vec<MigrationFile>, AdminError> {
    let read_error = |error: std::io::Error| AdminError::Read { path: dir.display().to_string(), reason: error.to_string() };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()).map(str::to_owned) else { continue };
        if !name.ends_with(".sql") {
            continue;
        }
        let version = name.split('_').next().unwrap_or_default().to_owned();
        let stem = &name[..name.len() - ".sql".len()];
        let valid = !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_digit())
            && stem.len() > version.len() + 1
            && stem.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(AdminError::InvalidMigrationName { file: name });
        }
        let sql = std::fs::read_to_string(&path).map_err(|error| AdminError::Read { path: path.display().to_string(), reason: error.to_string() })?;
        let checksum = Sha256::digest(sql.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect();
        files.push(MigrationFile { version, name, sql, checksum });
    }
    files.sort_by(|a, b| a.version.cmp(&b.version).then(a.name.cmp(&b.name)));
    for pair in files.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(AdminError::DuplicateVersion { first: pair[0].name.clone(), second: pair[1].name.clone() });
        }
    }
    Ok(files)
}

/// Applies the files that are not recorded in `migrations_table` yet, in order.
pub async fn migrate(db: &Database, files: &[MigrationFile], migrations_table: &str) -> Result<MigrationReport, AdminError> {
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut report = MigrationReport::default();
    for file in files {
        let applied = with_retries(deadline, || apply_one(db, file, migrations_table, deadline)).await?;
        if applied {
            tracing::info!(file = %file.name, "migration applied");
            report.applied.push(file.name.clone());
        } else {
            report.already_applied.push(file.name.clone());
        }
    }
    Ok(report)
}

/// Reads the state of each file: (file name, applied checksum if recorded).
pub async fn status(db: &Database, files: &[MigrationFile], migrations_table: &str) -> Result<Vec<(String, Option<String>)>, AdminError> {
    let deadline = Instant::now() + RUN_TIMEOUT;
    let exists = db
        .execute("SELECT count(*) FROM pg_class WHERE oid = to_regclass(:name)", vec![param("name", migrations_table)], None, deadline)
        .await
        .map_err(AdminError::Database)?;
    let mut states = Vec::new();
    let table_exists = first_long(&exists) == Some(1);
    for file in files {
        let checksum = if table_exists { recorded_checksum(db, migrations_table, &file.version, None, deadline).await.map_err(AdminError::Database)? } else { None };
        states.push((file.name.clone(), checksum));
    }
    Ok(states)
}

/// Applies one file in a transaction; returns false when it was already applied.
async fn apply_one(db: &Database, file: &MigrationFile, migrations_table: &str, deadline: Instant) -> Result<bool, AdminError> {
    let transaction = db.begin(deadline).await.map_err(AdminError::Database)?;
    let result = apply_in(db, &transaction, file, migrations_table, deadline).await;
    match result {
        Ok(true) => {
            db.commit(&transaction, deadline).await.map_err(AdminError::Database)?;
            Ok(true)
        }
        Ok(false) => {
            db.rollback(&transaction, deadline).await.map_err(AdminError::Database)?;
            Ok(false)
        }
        Err(error) => {
            if let Err(rollback_error) = db.rollback(&transaction, deadline).await {
                tracing::debug!(error = %rollback_error, "rollback failed");
            }
            Err(error)
        }
    }
}

async fn apply_in(db: &Database, transaction: &str, file: &MigrationFile, migrations_table: &str, deadline: Instant) -> Result<bool, AdminError> {
    let tx = Some(transaction);
    let table = transform_to_rds::mapping::quote_table(migrations_table);

    // pg_advisory_xact_lock returns void, which the Data API cannot return, hence the count.
    db.execute(&format!("SELECT count(*) FROM (SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})) AS locked"), Vec::new(), tx, deadline)
        .await
        .map_err(AdminError::Database)?;
    db.execute(
        &format!("CREATE TABLE IF NOT EXISTS {table} (version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"),
        Vec::new(),
        tx,
        deadline,
    )
    .await
    .map_err(AdminError::Database)?;

    if let Some(applied_checksum) = recorded_checksum(db, migrations_table, &file.version, tx, deadline).await.map_err(AdminError::Database)? {
        if applied_checksum != file.checksum {
            return Err(AdminError::ChangedMigration { file: file.name.clone(), applied_checksum, checksum: file.checksum.clone() });
        }
        return Ok(false);
    }

    for (index, statement) in split_statements(&file.sql).iter().enumerate() {
        db.execute(statement, Vec::new(), tx, deadline).await.map_err(|error| AdminError::Statement {
            file: file.name.clone(),
            statement: index + 1,
            error,
        })?;
    }
    db.execute(
        &format!("INSERT INTO {table} (version, name, checksum) VALUES (:version, :name, :checksum)"),
        vec![param("version", &file.version), param("name", &file.name), param("checksum", &file.checksum)],
        tx,
        deadline,
    )
    .await
    .map_err(AdminError::Database)?;
    Ok(true)
}

async fn recorded_checksum(db: &Database, migrations_table: &str, version: &str, transaction: Option<&str>, deadline: Instant) -> Result<Option<String>, DbError> {
    let table = transform_to_rds::mapping::quote_table(migrations_table);
    let output = db.execute(&format!("SELECT checksum FROM {table} WHERE version = :version"), vec![param("version", version)], transaction, deadline).await?;
    Ok(output.records().first().and_then(|row| row.first()).and_then(|field| field.as_string_value().ok()).cloned())
}

/// Runs `attempt` again after transient errors, because a paused Aurora
/// cluster returns DatabaseResumingException for its first seconds.
async fn with_retries<T, F, Fut>(deadline: Instant, mut attempt: F) -> Result<T, AdminError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AdminError>>,
{
    let policy = RetryPolicy { max_attempts: 12, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(10) };
    let mut attempts = 0;
    loop {
        attempts += 1;
        match attempt().await {
            Err(error) if error.is_transient() && attempts < policy.max_attempts => {
                let delay = policy.delay(attempts);
                tracing::warn!(attempts, delay_ms = delay.as_millis() as u64, error = %error, "retrying after a transient error");
                if !transform_to_rds::db::sleep_before(delay, deadline).await {
                    return Err(error);
                }
            }
            other => return other,
        }
    }
}

fn param(name: &str, value: &str) -> aws_sdk_rdsdata::types::SqlParameter {
    transform_to_rds::db::parameter(name, &SqlValue::Text(value.to_owned()))
}

fn first_long(output: &aws_sdk_rdsdata::operation::execute_statement::ExecuteStatementOutput) -> Option<i64> {
    output.records().first().and_then(|row| row.first()).and_then(|field| field.as_long_value().ok()).copied()
}
