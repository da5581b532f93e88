//! What the worker and the ledger both record about an object's progress: the
//! [`Checkpoint`] it resumes from, the [`BadRowPolicy`] it runs under and the rows it set
//! aside ([`BadRowReport`]).

use serde::{Deserialize, Serialize};

/// What to do with a row that cannot become a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BadRowPolicy {
    /// Set the object aside at its first bad row (the default): the rows before it are sent,
    /// the ledger records where it stopped and the run's report names the line.
    #[default]
    Fail,
    /// Set the row aside, named in the run's report, and ingest the rest of the object.
    Skip,
}

/// Where to resume an object, and what was done before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// Byte offset of the next row.
    pub byte_offset: u64,
    /// Data row number of the next row (its message id).
    pub next_row: u64,
    /// Physical line of the next row's first byte.
    #[serde(default)]
    pub next_line: u64,
    /// The object's header.
    pub header: Vec<String>,
    /// Rows acknowledged so far.
    pub rows_sent: u64,
    /// Batches acknowledged so far.
    #[serde(default)]
    pub batches: u64,
    /// Re-sends so far.
    #[serde(default)]
    pub retries: u64,
    /// Rows set aside so far.
    #[serde(default)]
    pub bad_rows: u64,
    /// Time spent so far, in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
}

/// A row set aside, or the row an object was set aside at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BadRowReport {
    /// Physical line where the row starts.
    pub line: u64,
    /// Its data row number.
    pub row: u64,
    /// Why it was set aside.
    pub reason: String,
}
