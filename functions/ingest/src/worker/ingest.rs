//! One invocation, as a story: claim the object in the ledger, read it from its checkpoint,
//! send its rows, checkpoint what was acknowledged, and finish with an outcome.

use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime};

use super::claim::{Claim, Claimed, LedgerUpdate, Saved, Session, later_checkpoint, lost_claim};
use super::io::{BadRowReport, Checkpoint, Outcome, WorkerInput, WorkerOutput, header_error};
use super::progress::{Progress, report_folder};
use super::read_loop::{LoopEnd, Reading, Stop, read_and_send};
use super::reader::ObjectReader;
use crate::batches::{Batcher, MAX_BATCH_MESSAGES, ResumePoint};
use crate::clients::Clients;
use crate::error::IngestError;
use crate::ledger::{LEASE_MARGIN_MS, Ledger, ObjectReport, to_ms};
use crate::pacing::Pacing;
use crate::sender::{BatchSender, RetryPolicy};

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
    input.validate()?;
    let Some(location) = input.ledger.as_ref() else {
        return ingest_claimed(clients, pacing, input, deadline, None).await;
    };
    // Claim: the ledger says whether there is work at all, and may know a later checkpoint
    // than the input (a crashed or timed-out invocation checkpoints there, not in the state).
    let session = Session::new(
        Ledger::new(&clients.s3, location),
        input.checkpoint_every,
        1,
    );
    let claimed = session
        .claim(&[input], lease_until_ms(deadline))
        .await?
        .pop()
        .expect("one claim per object");
    let result = ingest_claimed(clients, pacing, input, deadline, Some(claimed)).await;
    end_session(&session, result).await
}

/// Until when an invocation ending at `deadline` holds its claims.
pub(super) fn lease_until_ms(deadline: SystemTime) -> u64 {
    to_ms(deadline) + LEASE_MARGIN_MS
}

/// Writes what `session` still holds, and gives `result`: an object's error comes first, and
/// an error writing the ledger fails an invocation that otherwise succeeded (its retry finds
/// the objects where the ledger last recorded them).
pub(super) async fn end_session<T>(
    session: &Session<'_>,
    result: Result<T, IngestError>,
) -> Result<T, IngestError> {
    match (session.finish().await, result) {
        (Err(written), Err(error)) => {
            tracing::warn!(error = %written, "the ledger could not be written after the error");
            Err(error)
        }
        (Err(written), Ok(_)) => Err(written),
        (Ok(()), result) => result,
    }
}

/// Ingests an object under its claim (`None`: the run keeps no ledger).
pub(super) async fn ingest_claimed(
    clients: &Clients,
    pacing: &Pacing,
    input: &WorkerInput,
    deadline: SystemTime,
    claimed: Option<Claimed<'_>>,
) -> Result<WorkerOutput, IngestError> {
    let policy = RetryPolicy {
        max_attempts: input.max_attempts,
        ..RetryPolicy::default()
    };
    let started = Instant::now();
    let rate = input.worker_rate();
    let batch_limit = rate.map_or(MAX_BATCH_MESSAGES, |r| {
        (r.get() as usize).min(MAX_BATCH_MESSAGES)
    });
    let ledger = input
        .ledger
        .as_ref()
        .map(|location| Ledger::new(&clients.s3, location));
    let mut claim = None;
    let mut start_at = input.checkpoint.clone();
    match claimed {
        Some(Claimed::Work(taken, checkpoint)) => {
            start_at = later_checkpoint(start_at, checkpoint);
            claim = Some(taken);
        }
        Some(Claimed::Nothing(output)) => return Ok(output),
        None => {}
    }
    // Taken before the GET, so this environment's share of the rate banks while it takes its
    // round trip, and the first batches spend it.
    let limiter =
        rate.map(|rate| pacing.limiter(&input.channel_name, rate, first_batch(batch_limit)));

    // Open: the batcher at the checkpoint, the object at its byte offset.
    let stop_at = stop_instant(deadline, Duration::from_secs(input.time_margin_seconds));
    let mut batcher = open_batcher(input, start_at.as_ref(), batch_limit)?;
    let mut progress = Progress::new(start_at.as_ref(), &batcher, claim.is_some(), started);
    let mut source = ObjectReader::open(&clients.s3, input, batcher.offset()).await?;
    tracing::debug!(key = %input.key, offset = batcher.offset(), claimed = claim.is_some(), "object opened");
    let sender = BatchSender::new(
        clients.iotanalytics.clone(),
        &input.channel_name,
        &input.bucket,
        &input.key,
        limiter,
        policy,
    );

    // Read and send, until the object ends or something stops it.
    let LoopEnd { failure, stop } = read_and_send(Reading {
        input,
        batcher: &mut batcher,
        progress: &mut progress,
        source: &mut source,
        sender: &sender,
        claim: claim.as_mut(),
        stop_at,
    })
    .await?;

    // Checkpoint what was acknowledged, and report the rows set aside.
    let checkpoint = progress.checkpoint(&batcher);
    let report = match ledger {
        Some(ledger) => progress.flush_report(ledger, input).await?,
        None => None,
    };

    // Finish: set aside, failed, taken over, paused or done.
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
    if stop == Some(Stop::ClaimLost) {
        tracing::warn!(key = %input.key, rows = progress.rows, "another run took the object over; stopping");
        return Ok(progress.output(input, Outcome::HeldElsewhere, None, None, report));
    }
    if stop == Some(Stop::OutOfTime) {
        if let Some(claim) = claim.as_mut()
            && claim
                .save(LedgerUpdate::InProgress(checkpoint.clone()), &progress)
                .await?
                == Saved::TakenOver
        {
            lost_claim(input);
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
    if let Some(claim) = claim.as_mut()
        && claim.save(LedgerUpdate::Ingested, &progress).await? == Saved::TakenOver
    {
        lost_claim(input);
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

/// A batch of `batch_limit` messages, what a new execution environment's limiter holds at the
/// start so its first batch need not wait.
fn first_batch(batch_limit: usize) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(batch_limit).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
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
        if claim.save(update, &progress).await? == Saved::TakenOver {
            lost_claim(input);
        }
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

/// The batcher at the object's start, or past its header at `start_at`; with row identity
/// when the input asks for it.
fn open_batcher(
    input: &WorkerInput,
    start_at: Option<&Checkpoint>,
    batch_limit: usize,
) -> Result<Batcher, IngestError> {
    let mut batcher = match start_at {
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
    Ok(batcher)
}

/// The instant to stop starting batches: `margin` before `deadline`.
pub(super) fn stop_instant(deadline: SystemTime, margin: Duration) -> Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::test_support::{clients, input, later};
    use super::*;

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
}
