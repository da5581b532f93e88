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
use crate::payload::ValueMode;
use crate::sender::{BatchReport, BatchSender, RetryPolicy};
use crate::service_errors::CallFailure;

/// Rows reported one by one in the output when bad rows are set aside; the count covers all.
pub const MAX_REPORTED_BAD_ROWS: usize = 20;

fn default_margin() -> u64 {
    30
}
fn default_in_flight() -> usize {
    4
}
fn default_attempts() -> u32 {
    RetryPolicy::default().max_attempts
}

/// What to do with a row that cannot become a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BadRowPolicy {
    /// Stop the object at the bad row with [`IngestError::MalformedRow`] (the default): the
    /// rows before it are sent, the error names the line.
    #[default]
    Fail,
    /// Leave the row out, count it, and name it in the output's `badRows`.
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
    /// BatchPutMessage requests in flight at once (default 4).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Attempts per batch before failing (default 10).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
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
}

/// A row set aside under the `skip` policy.
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
        Ok(())
    }
}

/// Ingests the object named in `input` until it is done or `deadline` minus the time margin.
pub async fn ingest_object(
    clients: &Clients,
    input: &WorkerInput,
    deadline: SystemTime,
) -> Result<WorkerOutput, IngestError> {
    ingest_with_policy(clients, input, deadline, RetryPolicy::default()).await
}

/// [`ingest_object`] with an explicit retry policy (tests shorten the backoff).
pub async fn ingest_with_policy(
    clients: &Clients,
    input: &WorkerInput,
    deadline: SystemTime,
    mut policy: RetryPolicy,
) -> Result<WorkerOutput, IngestError> {
    input.validate()?;
    policy.max_attempts = input.max_attempts;
    let started = Instant::now();
    let stop_at = stop_instant(deadline, Duration::from_secs(input.time_margin_seconds));
    let rate = input.worker_rate();
    let batch_limit = rate.map_or(MAX_BATCH_MESSAGES, |r| {
        (r.get() as usize).min(MAX_BATCH_MESSAGES)
    });

    let mut batcher = match &input.checkpoint {
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
    let mut source = ObjectReader::open(&clients.s3, input, batcher.offset()).await?;
    let sender = BatchSender::new(
        clients.iotanalytics.clone(),
        &input.channel_name,
        &input.bucket,
        &input.key,
        rate,
        policy,
    );
    let previous = input.checkpoint.as_ref();
    let mut progress = Progress {
        rows: previous.map_or(0, |c| c.rows_sent),
        batches: previous.map_or(0, |c| c.batches),
        retries: previous.map_or(0, |c| c.retries),
        bad_rows: previous.map_or(0, |c| c.bad_rows),
        details: Vec::new(),
    };
    let mut in_flight: JoinSet<Result<BatchReport, IngestError>> = JoinSet::new();
    let mut failure: Option<IngestError> = None;
    let mut dispatched_to: Option<ResumePoint> = None;
    let mut out_of_time = false;

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
        let (produced, used) = if at_end {
            (batcher.finish(), 0)
        } else {
            match batcher.push(&chunk) {
                Ok((produced, used)) => (Ok(produced), used),
                Err(problem) => (Err(problem), 0),
            }
        };
        let produced = produced.map_err(|p| header_error(input, p.0))?;
        chunk = chunk.slice(used..);
        match produced {
            Produced::NeedInput | Produced::Header => {}
            Produced::End => break,
            Produced::Batch(batch) => {
                dispatch(&mut in_flight, &sender, batch, &mut dispatched_to);
                while in_flight.len() >= input.max_in_flight {
                    if let Some(e) = collect(&mut in_flight, &mut progress).await {
                        failure = Some(e);
                    }
                }
                if failure.is_some() {
                    break;
                }
                if Instant::now() >= stop_at {
                    out_of_time = true;
                    break;
                }
            }
            Produced::BadRow(bad) => {
                if let Err(e) = apply_policy(bad, input, &mut progress) {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    // On a bad row with the `fail` policy the rows before it still go out, so that the
    // error's "rows before it were sent" holds; after another failure they stay unsent.
    let flush = !out_of_time
        && match &failure {
            None => true,
            Some(e) => matches!(e, IngestError::MalformedRow { .. }),
        };
    if flush && let Some(batch) = batcher.take_batch() {
        dispatch(&mut in_flight, &sender, batch, &mut dispatched_to);
    }
    while !in_flight.is_empty() {
        if let Some(e) = collect(&mut in_flight, &mut progress).await {
            failure.get_or_insert(e);
        }
    }
    let duration_ms = previous.map_or(0, |c| c.duration_ms) + started.elapsed().as_millis() as u64;

    if let Some(error) = failure {
        let error = match error {
            IngestError::MalformedRow {
                bucket,
                key,
                line,
                row,
                reason,
                ..
            } => IngestError::MalformedRow {
                bucket,
                key,
                line,
                row,
                reason,
                rows_sent: progress.rows,
            },
            other => other,
        };
        tracing::warn!(key = %input.key, rows = progress.rows, error = %error, "object stopped");
        return Err(error);
    }

    let outcome = if out_of_time {
        Outcome::InProgress
    } else if !batcher.has_header() {
        Outcome::Empty
    } else if batcher.resume_point().next_row == 1 {
        Outcome::HeaderOnly
    } else {
        Outcome::Ingested
    };
    let checkpoint = out_of_time.then(|| {
        let at = dispatched_to.unwrap_or_else(|| batcher.resume_point());
        Checkpoint {
            byte_offset: at.byte_offset,
            next_row: at.next_row,
            next_line: at.line,
            header: batcher.header().to_vec(),
            rows_sent: progress.rows,
            batches: progress.batches,
            retries: progress.retries,
            bad_rows: progress.bad_rows,
            duration_ms,
        }
    });
    tracing::info!(
        key = %input.key,
        rows = progress.rows,
        batches = progress.batches,
        retries = progress.retries,
        bad_rows = progress.bad_rows,
        done = !out_of_time,
        "object {}",
        if out_of_time { "paused at the time budget" } else { "finished" }
    );
    Ok(WorkerOutput {
        done: !out_of_time,
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        outcome,
        rows: progress.rows,
        batches: progress.batches,
        retries: progress.retries,
        bad_rows: progress.bad_rows,
        bad_row_details: progress.details,
        duration_ms,
        checkpoint,
    })
}

/// Counts over the object so far.
struct Progress {
    rows: u64,
    batches: u64,
    retries: u64,
    bad_rows: u64,
    details: Vec<BadRowReport>,
}

impl Progress {
    fn set_aside(&mut self, line: u64, row: u64, reason: String) {
        self.bad_rows += 1;
        if self.details.len() < MAX_REPORTED_BAD_ROWS {
            self.details.push(BadRowReport { line, row, reason });
        }
    }
}

/// Applies the bad-row policy: an error to stop on, or the row counted and named.
fn apply_policy(
    bad: BadRow,
    input: &WorkerInput,
    progress: &mut Progress,
) -> Result<(), IngestError> {
    match input.bad_rows {
        BadRowPolicy::Fail => Err(IngestError::MalformedRow {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            line: bad.line,
            row: bad.row,
            reason: bad.problem.to_string(),
            rows_sent: progress.rows,
        }),
        BadRowPolicy::Skip => {
            tracing::warn!(key = %input.key, line = bad.line, row = bad.row, reason = %bad.problem, "row set aside");
            progress.set_aside(bad.line, bad.row, bad.problem.to_string());
            Ok(())
        }
    }
}

fn dispatch(
    in_flight: &mut JoinSet<Result<BatchReport, IngestError>>,
    sender: &Arc<BatchSender>,
    batch: Batch,
    dispatched_to: &mut Option<ResumePoint>,
) {
    *dispatched_to = Some(batch.resume);
    let sender = Arc::clone(sender);
    in_flight.spawn(async move { sender.send(batch).await });
}

/// Waits for one batch; returns the error that should stop the object, if any.
async fn collect(
    in_flight: &mut JoinSet<Result<BatchReport, IngestError>>,
    progress: &mut Progress,
) -> Option<IngestError> {
    match in_flight.join_next().await? {
        Ok(Ok(report)) => {
            progress.rows += report.acknowledged;
            progress.batches += 1;
            progress.retries += report.retries;
            for refused in report.refused {
                progress.set_aside(refused.line, refused.row, refused.reason);
            }
            None
        }
        Ok(Err(error)) => Some(error),
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
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let failure = CallFailure::from_sdk(&e);
                // A range starting at the object's end: nothing left to read.
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
        if !self.etag.is_empty() && unquote(actual) != unquote(self.etag) {
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

fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iotanalytics::operation::batch_put_message::BatchPutMessageOutput;
    use aws_sdk_s3::operation::get_object::GetObjectOutput;
    use aws_sdk_s3::primitives::ByteStream;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
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
    async fn a_ragged_row_stops_the_object_after_sending_the_rows_before_it() {
        let (c, sent) = clients(b"a,b\n1,2\n3,4\n5\n7,8\n");
        let error = ingest_object(&c, &input(serde_json::json!({})), later())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "MalformedRow");
        let text = error.to_string();
        assert!(text.contains("s3://src/1/a.csv line 4 (row 3)"), "{text}");
        assert!(text.contains("1 fields where the header has 2"), "{text}");
        assert!(text.contains("(2 rows)"), "{text}");
        assert_eq!(sent.lock().unwrap().len(), 2);
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
    async fn a_header_iot_analytics_would_reject_fails_the_object() {
        let (c, sent) = clients(b"device-id,Temp,temp\n1,2,3\n");
        let error = ingest_object(&c, &input(serde_json::json!({})), later())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "InvalidHeader");
        assert!(error.to_string().contains("device-id"));
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
