//! pipeline-admin: database chores of the pipeline, run from a workstation or CI.
//!
//! - `migrate` applies `migrations/*.sql` through the Data API and records them.
//! - `status` lists which migration files are applied.
//! - `replay-rejects` re-applies the current mapping to stored rejects.
//! - `check-mappings` checks mapping files without touching a database.

pub mod migrate;
pub mod replay;
pub mod sql_split;

use transform_to_rds::db::{DbError, ErrorKind};
use transform_to_rds::mapping::MappingError;
use transform_to_rds::writer::WriteFailure;

/// An error of an admin command.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A required setting is missing or invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file or folder cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// A migration file name is not `<digits>_<lower_case_name>.sql`.
    #[error("migration file {file} must be named <digits>_<name>.sql with lower-case letters, digits and '_'")]
    InvalidMigrationName {
        /// The file name.
        file: String,
    },
    /// Two migration files have the same version number.
    #[error("migration files {first} and {second} have the same version number")]
    DuplicateVersion {
        /// One file.
        first: String,
        /// The other file.
        second: String,
    },
    /// An applied migration file has changed since it was applied.
    #[error(
        "migration {file} was applied with checksum {applied_checksum} but the file now has {checksum}; \
         restore the applied file and put the change in a new migration"
    )]
    ChangedMigration {
        /// The file name.
        file: String,
        /// Checksum recorded when it was applied.
        applied_checksum: String,
        /// Checksum of the file now.
        checksum: String,
    },
    /// A statement of a migration file failed; the file's transaction was rolled back.
    #[error("migration {file}, statement {statement}: {error}")]
    Statement {
        /// The file name.
        file: String,
        /// Position of the statement in the file, from 1.
        statement: usize,
        /// The Data API error.
        error: DbError,
    },
    /// A Data API call failed.
    #[error("{0}")]
    Database(DbError),
    /// A mapping file is invalid.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// No mapping exists for the requested data set.
    #[error("no mapping for data set {dataset:?}; known data sets: {known}")]
    UnknownDataset {
        /// The requested data set.
        dataset: String,
        /// The mapped data sets.
        known: String,
    },
    /// A stored reject cannot be read back as a record.
    #[error("reject {record_id}: {reason}")]
    InvalidReject {
        /// Record id of the reject.
        record_id: String,
        /// The problem found.
        reason: String,
    },
    /// Writing replayed records failed.
    #[error("replaying records of s3://{bucket}/{key} failed: {failure}")]
    Replay {
        /// Source bucket.
        bucket: String,
        /// Source key.
        key: String,
        /// The write failure.
        failure: Box<WriteFailure>,
    },
}

impl AdminError {
    /// Returns true when running the command again later can succeed unchanged.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Statement { error, .. } | Self::Database(error) => error.kind == ErrorKind::Transient,
            Self::Replay { failure, .. } => failure.error.is_transient(),
            _ => false,
        }
    }
}
