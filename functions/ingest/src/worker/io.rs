//! What a worker invocation takes and gives: [`WorkerInput`], [`WorkerOutput`], the
//! [`Outcome`] of an object and the [`Checkpoint`] it resumes from.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

pub use crate::checkpoint::{BadRowPolicy, BadRowReport, Checkpoint};
use crate::error::IngestError;
use crate::ledger::LedgerLocation;
use crate::payload::ValueMode;
use crate::sender::RetryPolicy;

/// Rows reported one by one in the output when bad rows are set aside; the count covers all.
pub const MAX_REPORTED_BAD_ROWS: usize = 20;

fn default_margin() -> u64 {
    30
}
/// BatchPutMessage requests a worker keeps in flight unless told otherwise: enough to cover
/// the round trip at the service (tens of milliseconds on AWS) without waiting.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

fn default_in_flight() -> usize {
    DEFAULT_MAX_IN_FLIGHT
}
fn default_attempts() -> u32 {
    RetryPolicy::default().max_attempts
}
fn default_run_id() -> String {
    "manual".to_owned()
}
fn default_checkpoint_every() -> u64 {
    10
}

/// Input of one worker invocation (`events/worker.json`, `events/worker-resume.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerInput {
    /// Source bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// ETag listed by the launcher; the object must still have it (empty: not checked).
    #[serde(default)]
    pub etag: String,
    /// Size listed by the launcher (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Channel receiving the messages.
    pub channel_name: String,
    /// Messages per second for this worker; absent or 0: unpaced. With `rateSharedBy`, a
    /// channel-wide rate that this worker takes its share of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// How many workers share `rate` (those the page's Map runs at once, as the launcher
    /// planned them); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_shared_by: Option<u32>,
    /// Where an earlier invocation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// `strings` (default) or `typed`.
    #[serde(default)]
    pub values: ValueMode,
    /// `fail` (default) or `skip`.
    #[serde(default)]
    pub bad_rows: BadRowPolicy,
    /// Stop and return a checkpoint when fewer seconds than this remain (default 30).
    #[serde(default = "default_margin")]
    pub time_margin_seconds: u64,
    /// BatchPutMessage requests in flight at once (default 16).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Attempts per batch that may end in an error before failing (default 10); throttled
    /// answers may number three times as many.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// The run this invocation belongs to: owns ledger claims and names the report folder
    /// (the state machine passes the first execution's name).
    #[serde(default = "default_run_id")]
    pub run_id: String,
    /// Where the ledger is; absent: no ledger, no claims, no reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerLocation>,
    /// Acknowledged batches between two ledger checkpoints (default 10).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Add the row's identity (`_src`, `_row`) to every payload, so validation can count
    /// each object's rows in the datastore (default false).
    #[serde(default)]
    pub row_identity: bool,
}

/// How an object ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Rows were read (and sent, or set aside).
    Ingested,
    /// The object has no bytes (or only blank lines): nothing to send.
    Empty,
    /// The object has a header and no rows.
    HeaderOnly,
    /// The time budget ran out; call again with the checkpoint.
    InProgress,
    /// The ledger says this ETag was already ingested: nothing sent.
    AlreadyIngested,
    /// Another run holds a live claim on the object: nothing sent by this one.
    HeldElsewhere,
    /// A bad header, or a bad row under the `fail` policy, stopped the object; `stoppedAt`
    /// names the line, the rows before it were sent.
    SetAside,
}

/// Output of one worker invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerOutput {
    /// Whether the object is finished.
    pub done: bool,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Rows acknowledged, over every invocation on this object.
    pub rows: u64,
    /// Batches acknowledged, over every invocation.
    pub batches: u64,
    /// Re-sends, over every invocation.
    pub retries: u64,
    /// Rows set aside, over every invocation.
    pub bad_rows: u64,
    /// The first set-aside rows of this invocation (at most [`MAX_REPORTED_BAD_ROWS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_row_details: Vec<BadRowReport>,
    /// Time spent, over every invocation, in milliseconds.
    pub duration_ms: u64,
    /// Where to resume when `done` is false (pass it back in the next invocation's input);
    /// `null` when done, so the state machine can always read the field.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    /// 1 when nothing was sent because the ledger had it ingested or another run holds it.
    #[serde(default)]
    pub skipped: u64,
    /// Rows the ledger records for an object skipped as already ingested.
    #[serde(default)]
    pub skipped_rows: u64,
    /// 1 when the object was set aside.
    #[serde(default)]
    pub set_aside: u64,
    /// Where and why a set-aside object stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<BadRowReport>,
    /// The folder of this object's reports in the ledger bucket, when rows were set aside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl WorkerOutput {
    /// The output for `input`'s object, ended as `outcome`, before anything is counted.
    pub(super) fn empty(input: &WorkerInput, outcome: Outcome) -> Self {
        Self {
            done: true,
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            outcome,
            rows: 0,
            batches: 0,
            retries: 0,
            bad_rows: 0,
            bad_row_details: Vec::new(),
            duration_ms: 0,
            checkpoint: None,
            skipped: 0,
            skipped_rows: 0,
            set_aside: 0,
            stopped_at: None,
            report: None,
        }
    }
}

impl WorkerInput {
    /// This worker's messages per second, `None` when unpaced. A shared rate is split
    /// evenly, rounding up so a small quota never pauses a worker entirely.
    pub fn worker_rate(&self) -> Option<NonZeroU32> {
        let rate = self.rate.filter(|&r| r > 0)?;
        let shared_by = self.rate_shared_by.unwrap_or(1).max(1);
        NonZeroU32::new(rate.div_ceil(shared_by))
    }

    pub(super) fn validate(&self) -> Result<(), IngestError> {
        if self.bucket.is_empty() {
            return Err(IngestError::invalid_input("bucket", "must not be empty"));
        }
        if self.key.is_empty() {
            return Err(IngestError::invalid_input("key", "must not be empty"));
        }
        let name_ok = (1..=128).contains(&self.channel_name.len())
            && self
                .channel_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            return Err(IngestError::invalid_input(
                "channelName",
                format!(
                    "{:?} must be 1–128 letters, digits or underscores",
                    self.channel_name
                ),
            ));
        }
        if !(1..=64).contains(&self.max_in_flight) {
            return Err(IngestError::invalid_input(
                "maxInFlight",
                format!("{} is outside 1–64", self.max_in_flight),
            ));
        }
        if self.max_attempts == 0 {
            return Err(IngestError::invalid_input(
                "maxAttempts",
                "must be at least 1",
            ));
        }
        if self.checkpoint_every == 0 {
            return Err(IngestError::invalid_input(
                "checkpointEvery",
                "must be at least 1",
            ));
        }
        if self.run_id.is_empty() || self.run_id.contains('/') {
            return Err(IngestError::invalid_input(
                "runId",
                "must be non-empty and contain no '/'",
            ));
        }
        if self.ledger.is_some() && self.etag.is_empty() {
            return Err(IngestError::invalid_input(
                "etag",
                "is required with a ledger, which records what was ingested by ETag",
            ));
        }
        Ok(())
    }
}

/// The error for a header that cannot become message attributes.
pub(super) fn header_error(input: &WorkerInput, reason: String) -> IngestError {
    IngestError::InvalidHeader {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::super::ingest_object;
    use super::super::test_support::{clients, input, later};

    #[test]
    fn a_shared_rate_is_split_between_the_workers() {
        let shared = input(serde_json::json!({"rate": 1000, "rateSharedBy": 10}));
        assert_eq!(shared.worker_rate().map(NonZeroU32::get), Some(100));
        let uneven = input(serde_json::json!({"rate": 1000, "rateSharedBy": 3}));
        assert_eq!(uneven.worker_rate().map(NonZeroU32::get), Some(334));
        let unpaced = input(serde_json::json!({"rate": 0}));
        assert_eq!(unpaced.worker_rate(), None);
    }

    #[tokio::test]
    async fn a_bad_channel_name_is_refused_before_any_call() {
        let (c, _) = clients(b"a\n1\n");
        let error = ingest_object(
            &c,
            &input(serde_json::json!({"channelName": "a-b"})),
            later(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("channelName"));
    }
}
