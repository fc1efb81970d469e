//! A JSON-lines record of every invocation that `run` makes, which
//! `report` reads back to show per-file results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One invocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Milliseconds since the Unix epoch when the invocation ended.
    pub time_ms: u64,
    /// Function (binary) name.
    pub function: String,
    /// `object-created` or `sqs`.
    pub trigger: String,
    /// Bucket of the object, for object-created invocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Decoded key of the object, for object-created invocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Messages in the batch, for SQS invocations.
    #[serde(default)]
    pub messages: usize,
    /// Messages the function reported as failed, for SQS invocations.
    #[serde(default)]
    pub failed: usize,
    /// Whether the invocation succeeded.
    pub ok: bool,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The response payload, as JSON when it parses.
    #[serde(default)]
    pub response: serde_json::Value,
    /// Duration of the invocation in milliseconds.
    pub duration_ms: u64,
}

/// An append-only journal file; writes from concurrent tasks are serialised.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Journal {
    /// Opens `path` for appending, creating it and its folder.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Appends one entry; a failed write is logged, because losing a journal
    /// line loses no data.
    pub fn append(&self, entry: &Entry) {
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        let result = match self.file.lock() {
            Ok(mut file) => file.write_all(line.as_bytes()),
            Err(_) => return,
        };
        if let Err(error) = result {
            tracing::warn!(path = %self.path.display(), error = %error, "cannot write journal entry");
        }
    }
}

/// Reads every entry of a journal, skipping lines that do not parse.
pub fn read(path: &Path) -> std::io::Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
