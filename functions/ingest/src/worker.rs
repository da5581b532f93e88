//! The worker step: streams one object (or the rest of one, from a checkpoint) into a
//! channel, and returns a checkpoint when its time budget runs out.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::batches::{BadRow, Batch, Batcher, MAX_BATCH_MESSAGES, Produced, ResumePoint};
use crate::clients::Clients;
use crate::error::IngestError;
use crate::launcher::s3_error;
use crate::ledger::{
    Conflict, Decision, EntryState, LEASE_MARGIN_MS, Ledger, LedgerEntry, LedgerLocation,
    ObjectReport, REPORT_PART_ROWS, decide, now_ms, same_etag, to_ms,
};
use crate::pacing::Pacing;
use crate::payload::ValueMode;
use crate::sender::{BatchReport, BatchSender, RetryPolicy};
use crate::service_errors::CallFailure;

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
    /// How many workers share `rate` (the Map's concurrency); default 1.
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

impl WorkerInput {
    /// This worker's messages per second, `None` when unpaced. A shared rate is split
    /// evenly, rounding up so a small quota never pauses a worker entirely.
    pub fn worker_rate(&self) -> Option<NonZeroU32> {
        let rate = self.rate.filter(|&r| r > 0)?;
        let shared_by = self.rate_shared_by.unwrap_or(1).max(1);
        NonZeroU32::new(rate.div_ceil(shared_by))
    }

    fn validate(&self) -> Result<(), IngestError> {
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

/// Ingests the object named in `input` until it is done or `deadline` minus the time margin,
/// in an execution environment of its own (pacing starts cold).
pub async fn ingest_object(
    clients: &Clients,
    input: &WorkerInput,
    deadline: SystemTime,
) -> Result<WorkerOutput, IngestError> {
    ingest_object_in(clients, &Pacing::new(), input, deadline).await
}

/// [`ingest_object`] in an execution environment whose pacing carries over from the
/// invocations before it (a Lambda function's process, or one the local stack emulates).
pub async fn ingest_object_in(
    clients: &Clients,
    pacing: &Pacing,
    input: &WorkerInput,
    deadline: SystemTime,
) -> Result<WorkerOutput, IngestError> {
    ingest_with_policy(clients, pacing, input, deadline, RetryPolicy::default()).await
}

/// [`ingest_object_in`] with an explicit retry policy (tests shorten the backoff).
pub async fn ingest_with_policy(
    clients: &Clients,
    pacing: &Pacing,
    input: &WorkerInput,
    deadline: SystemTime,
    mut policy: RetryPolicy,
) -> Result<WorkerOutput, IngestError> {
    input.validate()?;
    policy.max_attempts = input.max_attempts;
    let started = Instant::now();
    let lease_until_ms = to_ms(deadline) + LEASE_MARGIN_MS;

    // The ledger says whether there is work at all, and may know a later checkpoint than the
    // input (a crashed or timed-out invocation checkpoints there, not in the state).
    let ledger = input
        .ledger
        .as_ref()
        .map(|location| Ledger::new(&clients.s3, location));
    let mut claim = None;
    let mut start_at = input.checkpoint.clone();
    if let Some(ledger) = ledger {
        match Claim::take(ledger, input, lease_until_ms).await? {
            Claimed::Work(taken, checkpoint) => {
                start_at = later_checkpoint(start_at, checkpoint);
                claim = Some(taken);
            }
            Claimed::Nothing(output) => return Ok(output),
        }
    }

    let stop_at = stop_instant(deadline, Duration::from_secs(input.time_margin_seconds));
    let rate = input.worker_rate();
    let batch_limit = rate.map_or(MAX_BATCH_MESSAGES, |r| {
        (r.get() as usize).min(MAX_BATCH_MESSAGES)
    });
    let mut batcher = match &start_at {
        None => Batcher::at_start(input.values, batch_limit),
        Some(cp) => Batcher::resume(
            cp.header.clone(),
            ResumePoint {
                byte_offset: cp.byte_offset,
                line: cp.next_line.max(1),
                next_row: cp.next_row,
            },
            input.values,
            batch_limit,
        )
        .map_err(|p| header_error(input, p.0))?,
    };
    if input.row_identity {
        let id = crate::completeness::source_id(&input.bucket, &input.key, &input.etag);
        batcher = batcher
            .with_row_identity(&id)
            .map_err(|p| header_error(input, p.0))?;
    }
    let mut progress = Progress::new(start_at.as_ref(), &batcher, claim.is_some(), started);
    let mut source = ObjectReader::open(&clients.s3, input, batcher.offset()).await?;
    tracing::debug!(key = %input.key, offset = batcher.offset(), claimed = claim.is_some(), "object opened");
    let sender = BatchSender::new(
        clients.iotanalytics.clone(),
        &input.channel_name,
        &input.bucket,
        &input.key,
        rate.map(|rate| pacing.limiter(&input.channel_name, rate, first_batch(batch_limit))),
        policy,
    );
    let mut in_flight: JoinSet<(u64, Result<BatchReport, IngestError>)> = JoinSet::new();
    let mut failure: Option<IngestError> = None;
    let mut stop = Stop::No;

    let mut chunk = Bytes::new();
    let mut at_end = false;
    loop {
        if chunk.is_empty() && !at_end {
            match source.next_chunk().await {
                Ok(Some(bytes)) => chunk = bytes,
                Ok(None) => at_end = true,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            continue;
        }
        let produced = if at_end {
            batcher.finish()
        } else {
            match batcher.push(&chunk) {
                Ok((produced, used)) => {
                    chunk = chunk.slice(used..);
                    Ok(produced)
                }
                Err(problem) => Err(problem),
            }
        };
        let produced = match produced {
            Ok(produced) => produced,
            Err(problem) => {
                failure = Some(header_error(input, problem.0));
                break;
            }
        };
        match produced {
            Produced::NeedInput | Produced::Header => {}
            Produced::End => break,
            Produced::Batch(batch) => {
                progress.dispatch(&mut in_flight, &sender, batch);
                // Bounded by the batches not yet under the watermark, not by the tasks still
                // running: batches acknowledged out of order past a slow one cannot be
                // checkpointed, so after a crash they would all be sent again.
                while progress.pending.len() >= input.max_in_flight && !in_flight.is_empty() {
                    if let Some(e) = collect(&mut in_flight, &mut progress).await {
                        failure = Some(e);
                    }
                }
                if failure.is_some() {
                    break;
                }
                if let Some(claim) = claim.as_mut()
                    && progress.since_checkpoint >= input.checkpoint_every
                {
                    let at = progress.checkpoint(&batcher);
                    if claim
                        .save(LedgerUpdate::InProgress(at), &progress)
                        .await?
                        .is_err()
                    {
                        stop = Stop::ClaimLost;
                        break;
                    }
                    progress.since_checkpoint = 0;
                }
                if Instant::now() >= stop_at {
                    stop = Stop::OutOfTime;
                    break;
                }
            }
            Produced::BadRow(bad) => {
                if let Err(e) = progress.bad_row(bad, input) {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    // A bad row or header under the `fail` policy sets the object aside: the rows before it
    // still go out, so the ledger's checkpoint lands exactly on the bad row. After any other
    // failure the rows not yet dispatched stay unsent.
    let set_aside = matches!(
        failure,
        Some(IngestError::MalformedRow { .. } | IngestError::InvalidHeader { .. })
    );
    let flush = stop == Stop::No && (failure.is_none() || set_aside);
    if flush && let Some(batch) = batcher.take_batch() {
        progress.dispatch(&mut in_flight, &sender, batch);
    }
    while !in_flight.is_empty() {
        if let Some(e) = collect(&mut in_flight, &mut progress).await {
            failure.get_or_insert(e);
        }
    }
    if failure.is_none() && stop == Stop::No {
        progress.settle_parse_bad_rows();
    }
    let checkpoint = progress.checkpoint(&batcher);
    let report = match ledger {
        Some(ledger) => progress.flush_report(ledger, input).await?,
        None => None,
    };

    if let Some(error) = failure {
        return match error {
            IngestError::MalformedRow {
                line, row, reason, ..
            } => {
                let stopped = BadRowReport { line, row, reason };
                set_aside_output(input, claim, progress, checkpoint, stopped, report, ledger).await
            }
            IngestError::InvalidHeader { reason, .. } => {
                let stopped = BadRowReport {
                    line: 1,
                    row: 0,
                    reason: format!("invalid header: {reason}"),
                };
                set_aside_output(input, claim, progress, None, stopped, report, ledger).await
            }
            other => {
                // Keep what was acknowledged, so the retry re-sends only the rest.
                if let Some(claim) = claim.as_mut() {
                    let _ = claim
                        .save(LedgerUpdate::InProgress(checkpoint), &progress)
                        .await;
                }
                tracing::warn!(key = %input.key, rows = progress.rows, error = %other, "object stopped");
                Err(other)
            }
        };
    }
    if stop == Stop::ClaimLost {
        tracing::warn!(key = %input.key, rows = progress.rows, "another run took the object over; stopping");
        return Ok(progress.output(input, Outcome::HeldElsewhere, None, None, report));
    }
    if stop == Stop::OutOfTime {
        if let Some(claim) = claim.as_mut() {
            claim
                .save(LedgerUpdate::InProgress(checkpoint.clone()), &progress)
                .await?
                .unwrap_or_else(|_| lost_claim(input));
        }
        tracing::info!(key = %input.key, rows = progress.rows, batches = progress.batches, "object paused at the time budget");
        let mut output = progress.output(input, Outcome::InProgress, checkpoint, None, report);
        output.done = false;
        return Ok(output);
    }

    let outcome = if !batcher.has_header() {
        Outcome::Empty
    } else if batcher.resume_point().next_row == 1 {
        Outcome::HeaderOnly
    } else {
        Outcome::Ingested
    };
    if let Some(claim) = claim.as_mut() {
        claim
            .save(LedgerUpdate::Ingested, &progress)
            .await?
            .unwrap_or_else(|_| lost_claim(input));
    }
    tracing::info!(
        key = %input.key,
        rows = progress.rows,
        batches = progress.batches,
        retries = progress.retries,
        bad_rows = progress.bad_rows,
        "object finished"
    );
    Ok(progress.output(input, outcome, None, None, report))
}

/// Logs a claim another run took over after this invocation's lease ended: the rows this
/// invocation sent are in the channel, and the other run resumes from its own checkpoint.
fn lost_claim(input: &WorkerInput) {
    tracing::warn!(key = %input.key, run = %input.run_id, "the ledger entry was taken over by another run");
}

/// Why the read loop ended early without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// It did not.
    No,
    /// The time budget ran out.
    OutOfTime,
    /// Another run took the object over (this claim's lease had ended).
    ClaimLost,
}

/// The checkpoint further into the object, of the input's and the ledger's.
/// A batch of `batch_limit` messages, what a new execution environment's limiter holds at the
/// start so its first batch need not wait.
fn first_batch(batch_limit: usize) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(batch_limit).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

fn later_checkpoint(a: Option<Checkpoint>, b: Option<Checkpoint>) -> Option<Checkpoint> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.byte_offset > a.byte_offset { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Ends a set-aside object: records it in the ledger and returns the outcome.
async fn set_aside_output(
    input: &WorkerInput,
    mut claim: Option<Claim<'_>>,
    mut progress: Progress,
    checkpoint: Option<Checkpoint>,
    stopped: BadRowReport,
    report: Option<String>,
    ledger: Option<Ledger<'_>>,
) -> Result<WorkerOutput, IngestError> {
    let report = match ledger {
        Some(ledger) => {
            let part = ObjectReport {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                etag: input.etag.clone(),
                policy: input.bad_rows,
                first_line: stopped.line,
                stopped_at: Some(stopped.clone()),
                bad_rows: Vec::new(),
            };
            ledger.write_report(&input.run_id, &part).await?;
            Some(report.unwrap_or_else(|| report_folder(ledger, input)))
        }
        None => report,
    };
    progress.set_aside = 1;
    if let Some(claim) = claim.as_mut() {
        let update = LedgerUpdate::SetAside {
            checkpoint: checkpoint.clone(),
            reason: format!("line {}: {}", stopped.line, stopped.reason),
            report: report.clone(),
        };
        claim
            .save(update, &progress)
            .await?
            .unwrap_or_else(|_| lost_claim(input));
    }
    tracing::warn!(
        key = %input.key,
        line = stopped.line,
        row = stopped.row,
        reason = %stopped.reason,
        rows = progress.rows,
        "object set aside"
    );
    Ok(progress.output(input, Outcome::SetAside, checkpoint, Some(stopped), report))
}

fn report_folder(ledger: Ledger<'_>, input: &WorkerInput) -> String {
    let part = ledger
        .location()
        .report_key(&input.run_id, &input.bucket, &input.key, 0);
    part.rsplit_once('/')
        .map_or(part.clone(), |(folder, _)| format!("{folder}/"))
}

/// A change to the ledger entry.
enum LedgerUpdate {
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
struct Claim<'a> {
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

/// What taking a claim gave.
enum Claimed<'a> {
    /// Work to do, maybe from a checkpoint.
    Work(Claim<'a>, Option<Checkpoint>),
    /// Nothing to do: the finished output.
    Nothing(WorkerOutput),
}

impl<'a> Claim<'a> {
    /// Reads the object's entry and, when there is work, claims it with a conditional write.
    async fn take(
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
            if let Ok(version) = ledger.write(&entry, previous).await? {
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

    /// Writes the entry with `update`; `Err(Conflict)` when another run took it over.
    async fn save(
        &mut self,
        update: LedgerUpdate,
        progress: &Progress,
    ) -> Result<Result<(), Conflict>, IngestError> {
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
            Ok(version) => {
                self.version = version;
                self.entry = entry;
                Ok(Ok(()))
            }
            Err(conflict) => Ok(Err(conflict)),
        }
    }
}

/// The output for an object with nothing to do, counted from its ledger entry.
fn skipped_output(input: &WorkerInput, outcome: Outcome, entry: &LedgerEntry) -> WorkerOutput {
    WorkerOutput {
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
        skipped: 1,
        skipped_rows: entry.rows,
        set_aside: 0,
        stopped_at: None,
        report: entry.report.clone(),
    }
}

/// A dispatched batch not yet known to be acknowledged, in dispatch order.
struct Pending {
    seq: u64,
    resume: ResumePoint,
    /// Rows set aside while reading up to this batch.
    bad_before: u64,
    report: Option<BatchReport>,
}

/// Counts over the object so far. `rows`, `batches` and `bad_rows` cover only the batches
/// acknowledged without a gap, so a checkpoint taken from them never skips an unsent row.
struct Progress {
    rows: u64,
    batches: u64,
    retries: u64,
    bad_rows: u64,
    duration_before_ms: u64,
    started: Instant,
    set_aside: u64,
    /// The acknowledged position; `None` until the header was read in this invocation.
    watermark: Option<ResumePoint>,
    pending: std::collections::VecDeque<Pending>,
    next_seq: u64,
    /// Rows set aside since the last dispatched batch.
    parse_bad_rows: u64,
    since_checkpoint: u64,
    details: Vec<BadRowReport>,
    /// Every set-aside row not yet in a report (only with a ledger).
    unreported: Vec<BadRowReport>,
    keep_reports: bool,
    reports_written: bool,
}

impl Progress {
    fn new(
        previous: Option<&Checkpoint>,
        batcher: &Batcher,
        keep_reports: bool,
        started: Instant,
    ) -> Self {
        Self {
            rows: previous.map_or(0, |c| c.rows_sent),
            batches: previous.map_or(0, |c| c.batches),
            retries: previous.map_or(0, |c| c.retries),
            bad_rows: previous.map_or(0, |c| c.bad_rows),
            duration_before_ms: previous.map_or(0, |c| c.duration_ms),
            started,
            set_aside: 0,
            watermark: previous.map(|_| batcher.resume_point()),
            pending: std::collections::VecDeque::new(),
            next_seq: 0,
            parse_bad_rows: 0,
            since_checkpoint: 0,
            details: Vec::new(),
            unreported: Vec::new(),
            keep_reports,
            reports_written: false,
        }
    }

    fn note_bad_row(&mut self, report: BadRowReport) {
        if self.details.len() < MAX_REPORTED_BAD_ROWS {
            self.details.push(report.clone());
        }
        if self.keep_reports {
            self.unreported.push(report);
        }
    }

    /// Applies the bad-row policy: an error to stop on, or the row counted and named.
    fn bad_row(&mut self, bad: BadRow, input: &WorkerInput) -> Result<(), IngestError> {
        match input.bad_rows {
            BadRowPolicy::Fail => Err(IngestError::MalformedRow {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                line: bad.line,
                row: bad.row,
                reason: bad.problem.to_string(),
                rows_sent: self.rows,
            }),
            BadRowPolicy::Skip => {
                tracing::warn!(key = %input.key, line = bad.line, row = bad.row, reason = %bad.problem, "row set aside");
                self.parse_bad_rows += 1;
                self.note_bad_row(BadRowReport {
                    line: bad.line,
                    row: bad.row,
                    reason: bad.problem.to_string(),
                });
                Ok(())
            }
        }
    }

    /// Counts rows set aside after the last batch (at the object's end).
    fn settle_parse_bad_rows(&mut self) {
        self.bad_rows += std::mem::take(&mut self.parse_bad_rows);
    }

    fn dispatch(
        &mut self,
        in_flight: &mut JoinSet<(u64, Result<BatchReport, IngestError>)>,
        sender: &Arc<BatchSender>,
        batch: Batch,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Pending {
            seq,
            resume: batch.resume,
            bad_before: std::mem::take(&mut self.parse_bad_rows),
            report: None,
        });
        let sender = Arc::clone(sender);
        in_flight.spawn(async move { (seq, sender.send(batch).await) });
    }

    /// Records an acknowledged batch and moves the watermark over every batch acknowledged
    /// without a gap before it.
    fn acknowledge(&mut self, seq: u64, report: BatchReport) {
        self.retries += report.retries;
        for refused in &report.refused {
            self.note_bad_row(BadRowReport {
                line: refused.line,
                row: refused.row,
                reason: refused.reason.clone(),
            });
        }
        if let Some(pending) = self.pending.iter_mut().find(|p| p.seq == seq) {
            pending.report = Some(report);
        }
        while self.pending.front().is_some_and(|p| p.report.is_some()) {
            let done = self.pending.pop_front().expect("checked above");
            let report = done.report.expect("checked above");
            self.rows += report.acknowledged;
            self.batches += 1;
            self.bad_rows += done.bad_before + report.refused.len() as u64;
            self.watermark = Some(done.resume);
            self.since_checkpoint += 1;
        }
    }

    /// Where to resume: the acknowledged position, `None` before the header was read.
    fn checkpoint(&self, batcher: &Batcher) -> Option<Checkpoint> {
        let at = self.watermark?;
        Some(Checkpoint {
            byte_offset: at.byte_offset,
            next_row: at.next_row,
            next_line: at.line,
            header: batcher.header().to_vec(),
            rows_sent: self.rows,
            batches: self.batches,
            retries: self.retries,
            bad_rows: self.bad_rows,
            duration_ms: self.duration_ms(),
        })
    }

    fn duration_ms(&self) -> u64 {
        self.duration_before_ms + self.started.elapsed().as_millis() as u64
    }

    /// Writes the rows set aside in this invocation to report parts of at most
    /// [`REPORT_PART_ROWS`] rows; returns the object's report folder when there is one.
    async fn flush_report(
        &mut self,
        ledger: Ledger<'_>,
        input: &WorkerInput,
    ) -> Result<Option<String>, IngestError> {
        let rows = std::mem::take(&mut self.unreported);
        for part in rows.chunks(REPORT_PART_ROWS) {
            let report = ObjectReport {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                etag: input.etag.clone(),
                policy: input.bad_rows,
                first_line: part[0].line,
                stopped_at: None,
                bad_rows: part.to_vec(),
            };
            let key = ledger.write_report(&input.run_id, &report).await?;
            tracing::info!(key = %input.key, report = %key, rows = part.len(), "bad rows reported");
            self.reports_written = true;
        }
        Ok((self.reports_written || self.bad_rows > 0).then(|| report_folder(ledger, input)))
    }

    fn output(
        self,
        input: &WorkerInput,
        outcome: Outcome,
        checkpoint: Option<Checkpoint>,
        stopped_at: Option<BadRowReport>,
        report: Option<String>,
    ) -> WorkerOutput {
        WorkerOutput {
            done: true,
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            outcome,
            rows: self.rows,
            batches: self.batches,
            retries: self.retries,
            bad_rows: self.bad_rows,
            duration_ms: self.duration_ms(),
            bad_row_details: self.details,
            checkpoint: if outcome == Outcome::InProgress {
                checkpoint
            } else {
                None
            },
            skipped: u64::from(outcome == Outcome::HeldElsewhere),
            skipped_rows: 0,
            set_aside: self.set_aside,
            stopped_at,
            report,
        }
    }
}

/// Waits for one batch; returns the error that should stop the object, if any.
async fn collect(
    in_flight: &mut JoinSet<(u64, Result<BatchReport, IngestError>)>,
    progress: &mut Progress,
) -> Option<IngestError> {
    match in_flight.join_next().await? {
        Ok((seq, Ok(report))) => {
            progress.acknowledge(seq, report);
            None
        }
        Ok((_, Err(error))) => Some(error),
        Err(join) => Some(IngestError::ServiceUnavailable {
            service: "IoTAnalytics",
            operation: "BatchPutMessage".to_owned(),
            message: format!("sending task ended abnormally: {join}"),
        }),
    }
}

fn header_error(input: &WorkerInput, reason: String) -> IngestError {
    IngestError::InvalidHeader {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        reason,
    }
}

/// The instant to stop starting batches: `margin` before `deadline`.
fn stop_instant(deadline: SystemTime, margin: Duration) -> Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left.saturating_sub(margin)
}

/// Streams an object's bytes from an offset, reopening with a ranged GET after a broken
/// connection so a long object survives a reset without re-reading what was read.
struct ObjectReader<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: &'a str,
    etag: &'a str,
    offset: u64,
    body: Option<aws_sdk_s3::primitives::ByteStream>,
    reopens: u32,
    at_start: bool,
}

/// Reopens allowed per invocation after a broken stream.
const MAX_REOPENS: u32 = 5;

impl<'a> ObjectReader<'a> {
    async fn open(
        s3: &'a aws_sdk_s3::Client,
        input: &'a WorkerInput,
        offset: u64,
    ) -> Result<Self, IngestError> {
        let mut reader = Self {
            s3,
            bucket: &input.bucket,
            key: &input.key,
            etag: &input.etag,
            offset,
            body: None,
            reopens: 0,
            at_start: offset == 0,
        };
        reader.reopen().await?;
        Ok(reader)
    }

    async fn reopen(&mut self) -> Result<(), IngestError> {
        let mut request = self.s3.get_object().bucket(self.bucket).key(self.key);
        if self.offset > 0 {
            request = request.range(format!("bytes={}-", self.offset));
        }
        // Every read is of the listed version: S3 checks If-Match before the range, so an
        // object replaced by a shorter one answers 412, never a 416 mistaken for its end.
        // Inputs may carry the ETag with or without its quotes; the header needs them.
        if !self.etag.is_empty() {
            request = request.if_match(format!("\"{}\"", self.etag.trim_matches('"')));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let failure = CallFailure::from_sdk(&e);
                if failure.status == Some(412) {
                    return Err(IngestError::ObjectChanged {
                        bucket: self.bucket.to_owned(),
                        key: self.key.to_owned(),
                        expected: self.etag.to_owned(),
                        actual: "another version (If-Match refused)".to_owned(),
                    });
                }
                // A range starting at the listed version's end: nothing left to read.
                if failure.status == Some(416) {
                    self.body = Some(aws_sdk_s3::primitives::ByteStream::from_static(b""));
                    return Ok(());
                }
                let missing_object = failure.is_not_found("NoSuchKey")
                    || (failure.status == Some(404) && !failure.is_not_found("NoSuchBucket"));
                return Err(if missing_object {
                    IngestError::ObjectNotFound {
                        bucket: self.bucket.to_owned(),
                        key: self.key.to_owned(),
                    }
                } else {
                    s3_error(
                        "GetObject",
                        self.bucket,
                        &format!("{}/{}", self.bucket, self.key),
                        failure,
                    )
                });
            }
        };
        let actual = response.e_tag().unwrap_or_default();
        if !self.etag.is_empty() && !same_etag(actual, self.etag) {
            return Err(IngestError::ObjectChanged {
                bucket: self.bucket.to_owned(),
                key: self.key.to_owned(),
                expected: self.etag.to_owned(),
                actual: actual.to_owned(),
            });
        }
        self.body = Some(response.body);
        Ok(())
    }

    /// The next chunk, `None` at the end. The object's first chunk holds at least 3 bytes
    /// (unless the object is shorter), so a byte-order mark is always seen whole.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, IngestError> {
        let first = self.next_raw().await?;
        if !std::mem::take(&mut self.at_start) {
            return Ok(first);
        }
        let Some(mut head) = first else {
            return Ok(None);
        };
        while head.len() < 3 {
            match self.next_raw().await? {
                Some(more) => head = [head.as_ref(), more.as_ref()].concat().into(),
                None => break,
            }
        }
        Ok(Some(head))
    }

    async fn next_raw(&mut self) -> Result<Option<Bytes>, IngestError> {
        loop {
            let body = self.body.as_mut().expect("opened before reading");
            match body.next().await {
                None => return Ok(None),
                Some(Ok(bytes)) => {
                    self.offset += bytes.len() as u64;
                    if bytes.is_empty() {
                        continue;
                    }
                    return Ok(Some(bytes));
                }
                Some(Err(error)) => {
                    if self.reopens >= MAX_REOPENS {
                        return Err(IngestError::ServiceUnavailable {
                            service: "S3",
                            operation: "GetObject".to_owned(),
                            message: format!(
                                "s3://{}/{} stream broke at byte {} after {} reopens: {error}",
                                self.bucket, self.key, self.offset, self.reopens
                            ),
                        });
                    }
                    self.reopens += 1;
                    tracing::warn!(key = %self.key, offset = self.offset, %error, "reopening object stream");
                    self.reopen().await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iotanalytics::operation::batch_put_message::BatchPutMessageOutput;
    use aws_sdk_s3::operation::get_object::GetObjectOutput;
    use aws_sdk_s3::primitives::ByteStream;
    use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
    use std::sync::Mutex;

    type Sent = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

    /// Clients over `object` (ranged GETs honoured, ETag `"e1"`) that record every message.
    fn clients(object: &'static [u8]) -> (Clients, Sent) {
        let get = mock!(aws_sdk_s3::Client::get_object).then_compute_output(move |req| {
            let start = req
                .range()
                .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
                .unwrap_or(0usize);
            GetObjectOutput::builder()
                .e_tag("\"e1\"")
                .body(ByteStream::from_static(&object[start..]))
                .build()
        });
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&get]);
        let sent: Sent = Arc::default();
        let record = sent.clone();
        let put = mock!(aws_sdk_iotanalytics::Client::batch_put_message)
            .match_requests(move |req| {
                let mut sent = record.lock().unwrap();
                for m in req.messages() {
                    let payload = serde_json::from_slice(m.payload().as_ref()).unwrap();
                    sent.push((m.message_id().to_owned(), payload));
                }
                true
            })
            .then_output(|| BatchPutMessageOutput::builder().build());
        let iotanalytics = mock_client!(aws_sdk_iotanalytics, RuleMode::MatchAny, &[&put]);
        (Clients { s3, iotanalytics }, sent)
    }

    fn input(json: serde_json::Value) -> WorkerInput {
        let mut base = serde_json::json!({
            "bucket": "src", "key": "1/a.csv", "etag": "\"e1\"", "channelName": "ch"
        });
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(900)
    }

    #[tokio::test]
    async fn every_row_becomes_a_message_numbered_by_its_row() {
        let (clients, sent) = clients(b"\xEF\xBB\xBFdeviceid,temp\r\n1,20\r\n2,\"2,5\"\r\n");
        let out = ingest_object(&clients, &input(serde_json::json!({})), later())
            .await
            .unwrap();
        assert!(out.done);
        assert_eq!(out.outcome, Outcome::Ingested);
        assert_eq!((out.rows, out.batches), (2, 1));
        let sent = sent.lock().unwrap();
        assert_eq!(sent[0].0, "1");
        assert_eq!(
            sent[0].1,
            serde_json::json!({"deviceid": "1", "temp": "20"})
        );
        assert_eq!(
            sent[1].1,
            serde_json::json!({"deviceid": "2", "temp": "2,5"})
        );
    }

    #[tokio::test]
    async fn batches_hold_at_most_a_hundred_rows_or_the_rate() {
        let mut csv = String::from("n\n");
        for i in 0..250 {
            csv.push_str(&format!("{i}\n"));
        }
        let data: &'static [u8] = Box::leak(csv.into_bytes().into_boxed_slice());
        let (c, sent) = clients(data);
        let out = ingest_object(&c, &input(serde_json::json!({})), later())
            .await
            .unwrap();
        assert_eq!((out.rows, out.batches), (250, 3));
        let (c, _) = clients(data);
        let paced = ingest_object(&c, &input(serde_json::json!({"rate": 1000})), later())
            .await
            .unwrap();
        assert_eq!(paced.batches, 3);
        // Paced from an empty bucket, 70 rows at 30/s take over two seconds.
        let few: String = (1..=70).map(|i| format!("{i}\n")).collect();
        let few: &'static [u8] = Box::leak(format!("n\n{few}").into_bytes().into_boxed_slice());
        let (c, _) = clients(few);
        let small = ingest_object(&c, &input(serde_json::json!({"rate": 30})), later())
            .await
            .unwrap();
        assert_eq!(
            (small.rows, small.batches),
            (70, 3),
            "batches of at most 30"
        );
        let ids: std::collections::HashSet<_> = sent
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(ids.len(), 250);
    }

    #[tokio::test]
    async fn a_worker_out_of_time_returns_a_checkpoint_that_finishes_the_object() {
        let mut csv = String::from("a,b\n");
        for i in 1..=450 {
            csv.push_str(&format!("{i},\"x\ny\"\n"));
        }
        let data: &'static [u8] = Box::leak(csv.into_bytes().into_boxed_slice());
        let (c, sent) = clients(data);
        // A deadline exactly one margin away: stop after the first batch.
        let first = ingest_object(
            &c,
            &input(serde_json::json!({"timeMarginSeconds": 60})),
            SystemTime::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert!(!first.done);
        assert_eq!(first.outcome, Outcome::InProgress);
        let checkpoint = first.checkpoint.clone().unwrap();
        assert_eq!(checkpoint.rows_sent, 100);
        assert_eq!(checkpoint.next_row, 101);
        assert_eq!(checkpoint.next_line, 202);
        assert_eq!(checkpoint.header, vec!["a", "b"]);
        let resumed = ingest_object(
            &c,
            &input(serde_json::json!({"checkpoint": checkpoint})),
            later(),
        )
        .await
        .unwrap();
        assert!(resumed.done);
        assert_eq!(resumed.rows, 450);
        let sent = sent.lock().unwrap();
        let ids: Vec<u64> = sent.iter().map(|(id, _)| id.parse().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (1..=450).collect::<Vec<_>>(),
            "no row lost or sent twice"
        );
        let row_101 = sent.iter().find(|(id, _)| id == "101").unwrap();
        assert_eq!(row_101.1, serde_json::json!({"a": "101", "b": "x\ny"}));
    }

    #[tokio::test]
    async fn a_ragged_row_sets_the_object_aside_after_sending_the_rows_before_it() {
        let (c, sent) = clients(b"a,b\n1,2\n3,4\n5\n7,8\n");
        let out = ingest_object(&c, &input(serde_json::json!({})), later())
            .await
            .unwrap();
        assert!(out.done);
        assert_eq!(out.outcome, Outcome::SetAside);
        assert_eq!((out.rows, out.set_aside), (2, 1));
        let stopped = out.stopped_at.unwrap();
        assert_eq!((stopped.line, stopped.row), (4, 3));
        assert!(
            stopped.reason.contains("1 fields where the header has 2"),
            "{}",
            stopped.reason
        );
        assert_eq!(sent.lock().unwrap().len(), 2);
    }

    #[test]
    fn the_checkpoint_never_passes_a_batch_not_yet_acknowledged() {
        let batcher = Batcher::at_start(ValueMode::Strings, 100);
        let mut progress = Progress::new(None, &batcher, false, Instant::now());
        let at = |n: u64| ResumePoint {
            byte_offset: n * 10,
            line: n + 1,
            next_row: n,
        };
        for n in 1..=3 {
            progress.pending.push_back(Pending {
                seq: n - 1,
                resume: at(n),
                bad_before: 0,
                report: None,
            });
        }
        let acked = |n| BatchReport {
            acknowledged: n,
            retries: 0,
            refused: Vec::new(),
        };
        progress.acknowledge(1, acked(100));
        progress.acknowledge(2, acked(100));
        assert_eq!(progress.watermark, None, "batch 0 is still in flight");
        assert_eq!(progress.rows, 0);
        progress.acknowledge(0, acked(100));
        assert_eq!(progress.watermark, Some(at(3)));
        assert_eq!((progress.rows, progress.batches), (300, 3));
    }

    #[tokio::test]
    async fn the_skip_policy_sets_bad_rows_aside_and_names_them() {
        let (c, sent) = clients(b"a,b\n1,2\n3\n\xff,4\n5,6\n7,\"open\n");
        let out = ingest_object(&c, &input(serde_json::json!({"badRows": "skip"})), later())
            .await
            .unwrap();
        assert_eq!((out.rows, out.bad_rows), (2, 3));
        let lines: Vec<u64> = out.bad_row_details.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4, 6]);
        assert!(out.bad_row_details[1].reason.contains("UTF-8"));
        assert!(out.bad_row_details[2].reason.contains("never closed"));
        assert_eq!(sent.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn empty_and_header_only_objects_say_so() {
        let (c, _) = clients(b"");
        let out = ingest_object(&c, &input(serde_json::json!({})), later())
            .await
            .unwrap();
        assert_eq!((out.outcome, out.rows), (Outcome::Empty, 0));
        let (c, _) = clients(b"a,b\r\n");
        let out = ingest_object(&c, &input(serde_json::json!({})), later())
            .await
            .unwrap();
        assert_eq!((out.outcome, out.rows), (Outcome::HeaderOnly, 0));
    }

    #[tokio::test]
    async fn a_header_iot_analytics_would_reject_sets_the_object_aside() {
        let (c, sent) = clients(b"device-id,Temp,temp\n1,2,3\n");
        let out = ingest_object(&c, &input(serde_json::json!({})), later())
            .await
            .unwrap();
        assert_eq!(out.outcome, Outcome::SetAside);
        let stopped = out.stopped_at.unwrap();
        assert_eq!(stopped.line, 1);
        assert!(stopped.reason.contains("device-id"), "{}", stopped.reason);
        assert!(sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_object_changed_since_listing_is_refused() {
        let (c, _) = clients(b"a\n1\n");
        let error = ingest_object(&c, &input(serde_json::json!({"etag": "\"old\""})), later())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "ObjectChanged");
    }

    /// S3 holding `"e2"`, a shorter object than the `"e1"` the worker listed: a GET under
    /// another ETag is refused with 412, and a range past the end answers 416, as S3 does.
    fn replaced_by_a_shorter_object() -> (Clients, Sent, Arc<Mutex<Vec<Option<String>>>>) {
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        let (mut c, sent) = clients(b"");
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let record = seen.clone();
        let get = mock!(aws_sdk_s3::Client::get_object).then_compute_response(move |req| {
            record
                .lock()
                .unwrap()
                .push(req.if_match().map(str::to_owned));
            let error = |status: u16, code: &str| {
                let body = format!("<Error><Code>{code}</Code><Message>{code}</Message></Error>");
                MockResponse::Http(Response::new(
                    StatusCode::try_from(status).unwrap(),
                    SdkBody::from(body),
                ))
            };
            if req.if_match().is_some_and(|etag| etag != "\"e2\"") {
                return error(412, "PreconditionFailed");
            }
            error(416, "InvalidRange")
        });
        c.s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&get]);
        (c, sent, seen)
    }

    #[tokio::test]
    async fn a_resumed_read_of_an_object_replaced_by_a_shorter_one_is_refused() {
        let (c, sent, seen) = replaced_by_a_shorter_object();
        let checkpoint = serde_json::json!({
            "byteOffset": 4000, "nextRow": 1001, "nextLine": 1002,
            "header": ["a"], "rowsSent": 1000,
        });
        let error = ingest_object(
            &c,
            &input(serde_json::json!({"checkpoint": checkpoint})),
            later(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.error_type(), "ObjectChanged", "{error}");
        assert!(sent.lock().unwrap().is_empty());
        assert_eq!(*seen.lock().unwrap(), [Some("\"e1\"".to_owned())]);
    }

    #[tokio::test]
    async fn every_read_of_an_object_names_the_listed_etag() {
        let (c, _) = clients(b"a\n1\n");
        let get = mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|req| req.if_match() == Some("\"e1\""))
            .then_output(|| {
                GetObjectOutput::builder()
                    .e_tag("\"e1\"")
                    .body(ByteStream::from_static(b"a\n1\n"))
                    .build()
            });
        // Strict: a GET without the listed ETag matches no rule and fails the read.
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, &[&get]);
        let c = Clients { s3, ..c };
        // Given without its quotes, the ETag is still sent as S3 wants it.
        let output = ingest_object(&c, &input(serde_json::json!({"etag": "e1"})), later())
            .await
            .unwrap();
        assert_eq!(output.rows, 1);
        assert_eq!(get.num_calls(), 1);
    }

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
    async fn typed_values_become_numbers() {
        let (c, sent) = clients(b"a,b,c\n1,2.5,x\n");
        ingest_object(&c, &input(serde_json::json!({"values": "typed"})), later())
            .await
            .unwrap();
        assert_eq!(
            sent.lock().unwrap()[0].1,
            serde_json::json!({"a": 1, "b": 2.5, "c": "x"})
        );
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
