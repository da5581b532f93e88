//! [`Progress`]: the counts over an object and the watermark of batches acknowledged
//! without a gap, which every checkpoint is taken from.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use crate::batches::{BadRow, Batch, Batcher, ResumePoint};
use crate::error::IngestError;
use crate::ledger::{Ledger, ObjectReport, REPORT_PART_ROWS};
use crate::sender::{BatchReport, BatchSender};

use super::io::{
    BadRowPolicy, BadRowReport, Checkpoint, MAX_REPORTED_BAD_ROWS, Outcome, WorkerInput,
    WorkerOutput,
};

/// The folder of this object's reports in the ledger bucket.
pub(super) fn report_folder(ledger: Ledger<'_>, input: &WorkerInput) -> String {
    let part = ledger
        .location()
        .report_key(&input.run_id, &input.bucket, &input.key, 0);
    part.rsplit_once('/')
        .map_or(part.clone(), |(folder, _)| format!("{folder}/"))
}

/// A dispatched batch not yet known to be acknowledged, in dispatch order.
pub(super) struct Pending {
    seq: u64,
    resume: ResumePoint,
    /// Rows set aside while reading up to this batch.
    bad_before: u64,
    report: Option<BatchReport>,
}

/// Counts over the object so far. `rows`, `batches` and `bad_rows` cover only the batches
/// acknowledged without a gap, so a checkpoint taken from them never skips an unsent row.
pub(super) struct Progress {
    pub(super) rows: u64,
    pub(super) batches: u64,
    pub(super) retries: u64,
    pub(super) bad_rows: u64,
    pub(super) duration_before_ms: u64,
    pub(super) started: Instant,
    pub(super) set_aside: u64,
    /// The acknowledged position; `None` until the header was read in this invocation.
    pub(super) watermark: Option<ResumePoint>,
    pub(super) pending: std::collections::VecDeque<Pending>,
    pub(super) next_seq: u64,
    /// Rows set aside since the last dispatched batch.
    pub(super) parse_bad_rows: u64,
    pub(super) since_checkpoint: u64,
    pub(super) details: Vec<BadRowReport>,
    /// Every set-aside row not yet in a report (only with a ledger).
    pub(super) unreported: Vec<BadRowReport>,
    pub(super) keep_reports: bool,
    pub(super) reports_written: bool,
}

impl Progress {
    pub(super) fn new(
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

    pub(super) fn note_bad_row(&mut self, report: BadRowReport) {
        if self.details.len() < MAX_REPORTED_BAD_ROWS {
            self.details.push(report.clone());
        }
        if self.keep_reports {
            self.unreported.push(report);
        }
    }

    /// Applies the bad-row policy: an error to stop on, or the row counted and named.
    pub(super) fn bad_row(&mut self, bad: BadRow, input: &WorkerInput) -> Result<(), IngestError> {
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
    pub(super) fn settle_parse_bad_rows(&mut self) {
        self.bad_rows += std::mem::take(&mut self.parse_bad_rows);
    }

    pub(super) fn dispatch(
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
    pub(super) fn acknowledge(&mut self, seq: u64, report: BatchReport) {
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
    pub(super) fn checkpoint(&self, batcher: &Batcher) -> Option<Checkpoint> {
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

    pub(super) fn duration_ms(&self) -> u64 {
        self.duration_before_ms + self.started.elapsed().as_millis() as u64
    }

    /// Writes the rows set aside in this invocation to report parts of at most
    /// [`REPORT_PART_ROWS`] rows; returns the object's report folder when there is one.
    pub(super) async fn flush_report(
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

    pub(super) fn output(
        self,
        input: &WorkerInput,
        outcome: Outcome,
        checkpoint: Option<Checkpoint>,
        stopped_at: Option<BadRowReport>,
        report: Option<String>,
    ) -> WorkerOutput {
        WorkerOutput {
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
            set_aside: self.set_aside,
            stopped_at,
            report,
            ..WorkerOutput::empty(input, outcome)
        }
    }
}

/// Waits for one batch; returns the error that should stop the object, if any.
pub(super) async fn collect(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::ValueMode;

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
}
