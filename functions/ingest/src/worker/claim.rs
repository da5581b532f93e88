//! The ledger claim protocol as the worker uses it: take the object's entry with a
//! conditional write (or learn there is nothing to do), then save checkpoints and the end
//! state under that claim, noticing when another run has taken it over.

use crate::error::IngestError;
use crate::ledger::{Decision, EntryState, Ledger, LedgerEntry, Write, decide, now_ms};

use super::io::{Checkpoint, Outcome, WorkerInput, WorkerOutput};
use super::progress::Progress;

/// Logs a claim another run took over after this invocation's lease ended: the rows this
/// invocation sent are in the channel, and the other run resumes from its own checkpoint.
pub(super) fn lost_claim(input: &WorkerInput) {
    tracing::warn!(key = %input.key, run = %input.run_id, "the ledger entry was taken over by another run");
}

/// The checkpoint further into the object, of the input's and the ledger's.
pub(super) fn later_checkpoint(a: Option<Checkpoint>, b: Option<Checkpoint>) -> Option<Checkpoint> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.byte_offset > a.byte_offset { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A change to the ledger entry.
pub(super) enum LedgerUpdate {
    /// Still in progress, resumable from here.
    InProgress(Option<Checkpoint>),
    /// Finished.
    Ingested,
    /// Stopped for good at a bad row or header.
    SetAside {
        checkpoint: Option<Checkpoint>,
        reason: String,
        report: Option<String>,
    },
}

/// This worker's claim on an object in the ledger.
pub(super) struct Claim<'a> {
    ledger: Ledger<'a>,
    entry: LedgerEntry,
    version: String,
    /// Counts earlier runs recorded for this ETag; the entry holds them plus this run's.
    earlier: Counts,
}

/// Rows, batches, re-sends and bad rows.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    rows: u64,
    batches: u64,
    retries: u64,
    bad_rows: u64,
}

/// What saving under a claim gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(super) enum Saved {
    /// The entry now holds the update.
    Written,
    /// Another run took the entry over since this claim last wrote it: nothing was written.
    TakenOver,
}

/// What taking a claim gave.
pub(super) enum Claimed<'a> {
    /// Work to do, maybe from a checkpoint.
    Work(Claim<'a>, Option<Checkpoint>),
    /// Nothing to do: the finished output.
    Nothing(WorkerOutput),
}

impl<'a> Claim<'a> {
    /// Reads the object's entry and, when there is work, claims it with a conditional write.
    pub(super) async fn take(
        ledger: Ledger<'a>,
        input: &WorkerInput,
        lease_until_ms: u64,
    ) -> Result<Claimed<'a>, IngestError> {
        // Two rounds: a lost race means another writer just changed the entry; read it again.
        for _ in 0..3 {
            let stored = ledger.read(&input.bucket, &input.key).await?;
            let mut earlier = Counts::default();
            let decision = decide(
                stored.as_ref().map(|s| &s.entry),
                &input.etag,
                &input.run_id,
                input.bad_rows,
                now_ms(),
            );
            let checkpoint = match decision {
                Decision::Start => None,
                // Another run's checkpoint gives the position; its counts stay that run's,
                // so this run's totals count only what this run sent.
                Decision::Resume(Some(mut checkpoint))
                    if stored
                        .as_ref()
                        .is_some_and(|s| s.entry.run_id != input.run_id) =>
                {
                    earlier = Counts {
                        rows: checkpoint.rows_sent,
                        batches: checkpoint.batches,
                        retries: checkpoint.retries,
                        bad_rows: checkpoint.bad_rows,
                    };
                    checkpoint.rows_sent = 0;
                    checkpoint.batches = 0;
                    checkpoint.retries = 0;
                    checkpoint.bad_rows = 0;
                    checkpoint.duration_ms = 0;
                    Some(checkpoint)
                }
                Decision::Resume(checkpoint) => checkpoint,
                Decision::AlreadyIngested
                    if stored
                        .as_ref()
                        .is_some_and(|s| s.entry.run_id == input.run_id) =>
                {
                    // An earlier attempt of this run finished it, and its output was lost with
                    // the attempt (a retried batch, a lost response): the rows are this run's.
                    let entry = &stored.as_ref().expect("decided from an entry").entry;
                    tracing::info!(key = %input.key, rows = entry.rows, "finished by an earlier attempt of this run");
                    return Ok(Claimed::Nothing(WorkerOutput {
                        rows: entry.rows,
                        batches: entry.batches,
                        retries: entry.retries,
                        bad_rows: entry.bad_rows,
                        ..WorkerOutput::empty(input, Outcome::AlreadyIngested)
                    }));
                }
                Decision::AlreadyIngested | Decision::AlreadySetAside => {
                    let entry = &stored.as_ref().expect("decided from an entry").entry;
                    let outcome = if decision == Decision::AlreadyIngested {
                        Outcome::AlreadyIngested
                    } else {
                        Outcome::SetAside
                    };
                    tracing::info!(key = %input.key, etag = %input.etag, ?outcome, "nothing to do");
                    return Ok(Claimed::Nothing(skipped_output(input, outcome, entry)));
                }
                Decision::HeldElsewhere { run_id } => {
                    tracing::info!(key = %input.key, holder = %run_id, "another run is ingesting the object");
                    let mut output = skipped_output(
                        input,
                        Outcome::HeldElsewhere,
                        &stored.expect("decided from an entry").entry,
                    );
                    // Its rows are the holder's to count.
                    output.skipped_rows = 0;
                    return Ok(Claimed::Nothing(output));
                }
            };
            let entry = LedgerEntry {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                etag: input.etag.clone(),
                state: EntryState::InProgress,
                run_id: input.run_id.clone(),
                lease_until_ms,
                updated_ms: now_ms(),
                checkpoint: checkpoint.clone(),
                rows: earlier.rows + checkpoint.as_ref().map_or(0, |c| c.rows_sent),
                batches: earlier.batches + checkpoint.as_ref().map_or(0, |c| c.batches),
                retries: earlier.retries + checkpoint.as_ref().map_or(0, |c| c.retries),
                bad_rows: earlier.bad_rows + checkpoint.as_ref().map_or(0, |c| c.bad_rows),
                reason: None,
                report: None,
            };
            let previous = stored.as_ref().map(|s| s.version.as_str());
            if let Write::Stored(version) = ledger.write(&entry, previous).await? {
                return Ok(Claimed::Work(
                    Claim {
                        ledger,
                        entry,
                        version,
                        earlier,
                    },
                    checkpoint,
                ));
            }
        }
        Err(IngestError::ServiceUnavailable {
            service: "S3",
            operation: "PutObject".to_owned(),
            message: format!(
                "the ledger entry of s3://{}/{} kept changing while it was being claimed",
                input.bucket, input.key
            ),
        })
    }

    /// Writes the entry with `update`; [`Saved::TakenOver`] when another run took it over.
    pub(super) async fn save(
        &mut self,
        update: LedgerUpdate,
        progress: &Progress,
    ) -> Result<Saved, IngestError> {
        let mut entry = self.entry.clone();
        entry.updated_ms = now_ms();
        entry.rows = self.earlier.rows + progress.rows;
        entry.batches = self.earlier.batches + progress.batches;
        entry.retries = self.earlier.retries + progress.retries;
        entry.bad_rows = self.earlier.bad_rows + progress.bad_rows;
        match update {
            LedgerUpdate::InProgress(checkpoint) => entry.checkpoint = checkpoint,
            LedgerUpdate::Ingested => {
                entry.state = EntryState::Ingested;
                entry.checkpoint = None;
            }
            LedgerUpdate::SetAside {
                checkpoint,
                reason,
                report,
            } => {
                entry.state = EntryState::SetAside;
                entry.checkpoint = checkpoint;
                entry.reason = Some(reason);
                entry.report = report;
            }
        }
        match self.ledger.write(&entry, Some(&self.version)).await? {
            Write::Stored(version) => {
                self.version = version;
                self.entry = entry;
                Ok(Saved::Written)
            }
            Write::Conflict => Ok(Saved::TakenOver),
        }
    }
}

/// The output for an object with nothing to do, counted from its ledger entry.
pub(super) fn skipped_output(
    input: &WorkerInput,
    outcome: Outcome,
    entry: &LedgerEntry,
) -> WorkerOutput {
    WorkerOutput {
        skipped: 1,
        skipped_rows: entry.rows,
        report: entry.report.clone(),
        ..WorkerOutput::empty(input, outcome)
    }
}
