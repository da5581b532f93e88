//! Sends batches with BatchPutMessage at a paced rate, re-sending only the messages that
//! failed, with capped exponential backoff and full jitter.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::DefaultDirectRateLimiter;

use crate::batches::Batch;
use crate::error::IngestError;
use crate::retry::Backoff;
use crate::service_errors::CallFailure;

/// How many throttled answers a batch may get for each attempt it may spend on failures.
const THROTTLED_PER_ATTEMPT: u32 = 3;

/// Per-entry error codes that no re-send can cure: the message itself is refused.
const PERMANENT_ENTRY_CODES: [&str; 1] = ["InvalidRequestException"];

/// How hard the sender tries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per batch, the first included, that may end in an error other than
    /// throttling; throttled attempts may number three times as many.
    pub max_attempts: u32,
    /// The wait between attempts.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            // 50 ms before the second attempt, doubling to 5 s, full jitter.
            backoff: Backoff {
                floor: Duration::ZERO,
                base: Duration::from_millis(50),
                max: Duration::from_secs(5),
            },
        }
    }
}

/// A message the service refused for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedMessage {
    /// Data row number (the message id).
    pub row: u64,
    /// Source line.
    pub line: u64,
    /// The service's code and message.
    pub reason: String,
}

/// What happened to one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Messages acknowledged.
    pub acknowledged: u64,
    /// Attempts after the first (whole-call and per-entry re-sends).
    pub retries: u64,
    /// Messages refused for good.
    pub refused: Vec<RefusedMessage>,
}

/// Sends one object's batches to a channel.
#[derive(Debug)]
pub struct BatchSender {
    client: aws_sdk_iotanalytics::Client,
    channel: String,
    bucket: String,
    key: String,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    policy: RetryPolicy,
}

impl BatchSender {
    /// A sender paced by `limiter` (`None`: unpaced), which its execution environment keeps
    /// across invocations ([`crate::pacing::Pacing`]).
    pub fn new(
        client: aws_sdk_iotanalytics::Client,
        channel: &str,
        bucket: &str,
        key: &str,
        limiter: Option<Arc<DefaultDirectRateLimiter>>,
        policy: RetryPolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            channel: channel.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            limiter,
            policy,
        })
    }

    /// Sends `batch` until every message is acknowledged or refused for good.
    ///
    /// Entries in `batchPutMessageErrorEntries` are re-sent alone; throttling, 5xx and
    /// connection failures re-send what was pending. After `max_attempts` it fails with
    /// [`IngestError::BatchPutFailed`] naming the rows still pending.
    pub async fn send(&self, batch: Batch) -> Result<BatchReport, IngestError> {
        // Positions in `batch.messages` of the messages not yet acknowledged or refused. Each
        // attempt sends clones of those (a payload's clone shares its bytes); the batch keeps
        // the originals, so a refused message's source line is found without a map built for
        // every batch when almost none has an error entry.
        let mut pending: Vec<usize> = (0..batch.messages.len()).collect();
        let mut report = BatchReport::default();
        let mut attempt = 0u32;
        // Throttling is the channel pacing its senders, not a failure: it has its own, larger
        // allowance, so a busy channel does not fail a batch that other errors would not.
        let mut failures = 0u32;
        let mut throttles = 0u32;
        loop {
            attempt += 1;
            if let Some(limiter) = &self.limiter {
                let n = NonZeroU32::new(pending.len() as u32).expect("pending is never empty");
                // The batch limit never exceeds the rate, so n always fits the burst.
                let _ = limiter.until_n_ready(n).await;
            }
            let result = self
                .client
                .batch_put_message()
                .channel_name(&self.channel)
                .set_messages(Some(
                    pending.iter().map(|&i| batch.messages[i].clone()).collect(),
                ))
                .send()
                .await;
            let mut throttled = false;
            let last_error = match result {
                Ok(output) => {
                    let entries = output.batch_put_message_error_entries();
                    if entries.is_empty() {
                        report.acknowledged += pending.len() as u64;
                        return Ok(report);
                    }
                    let position: HashMap<&str, usize> = pending
                        .iter()
                        .map(|&i| (batch.messages[i].message_id(), i))
                        .collect();
                    // Every pending message is acknowledged unless an entry names it: those
                    // with a permanent code are refused, the others are sent again.
                    let mut answered = HashSet::new();
                    let mut retry = HashSet::new();
                    for entry in entries {
                        let id = entry.message_id().unwrap_or_default();
                        let Some(&index) = position.get(id) else {
                            continue;
                        };
                        if !answered.insert(index) {
                            continue;
                        }
                        let code = entry.error_code().unwrap_or("UnknownError");
                        if PERMANENT_ENTRY_CODES.contains(&code) {
                            report.refused.push(RefusedMessage {
                                row: id.parse().unwrap_or(0),
                                line: batch.lines.get(index).copied().unwrap_or(0),
                                reason: format!(
                                    "{code}: {}",
                                    entry.error_message().unwrap_or_default()
                                ),
                            });
                        } else {
                            retry.insert(index);
                        }
                    }
                    report.acknowledged += (pending.len() - answered.len()) as u64;
                    pending.retain(|i| retry.contains(i));
                    if pending.is_empty() {
                        return Ok(report);
                    }
                    format!("{} entries failed", pending.len())
                }
                Err(error) => {
                    let failure = CallFailure::from_sdk(&error);
                    if failure.has_code("ResourceNotFoundException") {
                        return Err(IngestError::ChannelNotFound {
                            channel: self.channel.clone(),
                        });
                    }
                    if failure.is_access_denied() {
                        return Err(IngestError::AccessDenied {
                            operation: "BatchPutMessage".to_owned(),
                            resource: self.channel.clone(),
                        });
                    }
                    throttled = failure.is_throttling();
                    if !failure.is_transient() {
                        return Err(IngestError::ServiceError {
                            service: "IoTAnalytics",
                            operation: "BatchPutMessage".to_owned(),
                            message: failure.message,
                        });
                    }
                    failure.message
                }
            };
            let exhausted = if throttled {
                throttles += 1;
                throttles
                    >= self
                        .policy
                        .max_attempts
                        .saturating_mul(THROTTLED_PER_ATTEMPT)
            } else {
                failures += 1;
                failures >= self.policy.max_attempts
            };
            if exhausted {
                let rows: Vec<u64> = pending
                    .iter()
                    .filter_map(|&i| batch.messages[i].message_id().parse().ok())
                    .collect();
                return Err(IngestError::BatchPutFailed {
                    bucket: self.bucket.clone(),
                    key: self.key.clone(),
                    first_row: rows.iter().copied().min().unwrap_or(batch.first_row),
                    last_row: rows.iter().copied().max().unwrap_or(batch.last_row),
                    attempts: attempt,
                    reason: last_error,
                });
            }
            report.retries += 1;
            let delay = self.policy.backoff.delay(attempt);
            tracing::debug!(
                key = %self.key,
                attempt,
                pending = pending.len(),
                delay_ms = delay.as_millis() as u64,
                reason = %last_error,
                "re-sending"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::batches::ResumePoint;
    use aws_sdk_iotanalytics::operation::batch_put_message::{
        BatchPutMessageError, BatchPutMessageOutput,
    };
    use aws_sdk_iotanalytics::primitives::Blob;
    use aws_sdk_iotanalytics::types::error::{ResourceNotFoundException, ThrottlingException};
    use aws_sdk_iotanalytics::types::{BatchPutMessageErrorEntry, Message};
    use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
    use std::sync::Mutex;

    fn batch(rows: std::ops::RangeInclusive<u64>) -> Batch {
        let messages: Vec<Message> = rows
            .clone()
            .map(|r| {
                Message::builder()
                    .message_id(r.to_string())
                    .payload(Blob::new(format!("{{\"n\":\"{r}\"}}")))
                    .build()
                    .unwrap()
            })
            .collect();
        Batch {
            lines: rows.clone().map(|r| r + 1).collect(),
            first_row: *rows.start(),
            last_row: *rows.end(),
            messages,
            resume: ResumePoint {
                byte_offset: 0,
                line: 1,
                next_row: 1,
            },
        }
    }

    /// A mocked client that, like the worker's, leaves retries to the sender.
    fn client(mode: RuleMode, rule: &aws_smithy_mocks::Rule) -> aws_sdk_iotanalytics::Client {
        mock_client!(aws_sdk_iotanalytics, mode, [rule], |c| c
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled()))
    }

    /// Errors parsed off the wire carry their code; mocked ones need it set.
    pub(crate) fn code(code: &str) -> aws_smithy_types::error::ErrorMetadata {
        aws_smithy_types::error::ErrorMetadata::builder()
            .code(code)
            .build()
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            backoff: Backoff {
                floor: Duration::ZERO,
                base: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
        }
    }

    fn entry(id: &str, code: &str) -> BatchPutMessageErrorEntry {
        BatchPutMessageErrorEntry::builder()
            .message_id(id)
            .error_code(code)
            .error_message("injected")
            .build()
    }

    #[tokio::test]
    async fn only_the_failed_entries_are_resent() {
        let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let record = seen.clone();
        let rule = mock!(aws_sdk_iotanalytics::Client::batch_put_message)
            .match_requests(move |req| {
                let ids = req
                    .messages()
                    .iter()
                    .map(|m| m.message_id().to_owned())
                    .collect();
                record.lock().unwrap().push(ids);
                true
            })
            .sequence()
            .output(|| {
                BatchPutMessageOutput::builder()
                    .batch_put_message_error_entries(entry("2", "InternalFailureException"))
                    .batch_put_message_error_entries(entry("4", "ServiceUnavailableException"))
                    .build()
            })
            .output(|| BatchPutMessageOutput::builder().build())
            .build();
        let iota = client(RuleMode::Sequential, &rule);
        let sender = BatchSender::new(iota, "ch", "b", "k", None, fast());
        let report = sender.send(batch(1..=5)).await.unwrap();
        assert_eq!(report.acknowledged, 5);
        assert_eq!(report.retries, 1);
        let seen = seen.lock().unwrap();
        assert_eq!(seen[1], vec!["2".to_owned(), "4".to_owned()]);
    }

    #[tokio::test]
    async fn throttled_batches_are_resent_whole() {
        let rule = mock!(aws_sdk_iotanalytics::Client::batch_put_message)
            .sequence()
            .error(|| {
                BatchPutMessageError::ThrottlingException(
                    ThrottlingException::builder()
                        .message("slow down")
                        .meta(code("ThrottlingException"))
                        .build(),
                )
            })
            .times(2)
            .output(|| BatchPutMessageOutput::builder().build())
            .build();
        let iota = client(RuleMode::Sequential, &rule);
        let sender = BatchSender::new(iota, "ch", "b", "k", None, fast());
        let report = sender.send(batch(1..=3)).await.unwrap();
        assert_eq!(report.acknowledged, 3);
        assert_eq!(report.retries, 2);
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn a_batch_that_never_gets_through_names_its_rows() {
        let rule = mock!(aws_sdk_iotanalytics::Client::batch_put_message).then_error(|| {
            BatchPutMessageError::ThrottlingException(
                ThrottlingException::builder()
                    .meta(code("ThrottlingException"))
                    .build(),
            )
        });
        let iota = client(RuleMode::MatchAny, &rule);
        let sender = BatchSender::new(iota, "ch", "src", "a.csv", None, fast());
        let error = sender.send(batch(201..=300)).await.unwrap_err();
        assert_eq!(error.error_type(), "BatchPutFailed");
        let text = error.to_string();
        assert!(text.contains("s3://src/a.csv rows 201-300"), "{text}");
        // Throttled answers have three times the allowance of other errors.
        assert!(text.contains("12 attempts"), "{text}");
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn throttling_does_not_use_up_the_attempts_other_errors_have() {
        let throttled = || {
            BatchPutMessageError::ThrottlingException(
                ThrottlingException::builder()
                    .meta(code("ThrottlingException"))
                    .build(),
            )
        };
        // A 500 as the service sends it, through the client's own error parsing.
        let failing = || {
            let mut response = aws_smithy_runtime_api::http::Response::new(
                500.try_into().unwrap(),
                aws_smithy_types::body::SdkBody::from(r#"{"message":"injected"}"#),
            );
            response
                .headers_mut()
                .insert("x-amzn-ErrorType", "InternalFailureException");
            response
        };
        // Six throttled answers, more than the 4 attempts, then through.
        let rule = mock!(aws_sdk_iotanalytics::Client::batch_put_message)
            .sequence()
            .error(throttled)
            .times(6)
            .output(|| BatchPutMessageOutput::builder().build())
            .build();
        let sender = BatchSender::new(
            client(RuleMode::Sequential, &rule),
            "ch",
            "b",
            "k",
            None,
            fast(),
        );
        assert_eq!(sender.send(batch(1..=3)).await.unwrap().acknowledged, 3);
        // Four internal failures, throttling in between: the fourth failure ends it.
        let rule = mock!(aws_sdk_iotanalytics::Client::batch_put_message)
            .sequence()
            .http_response(failing)
            .times(2)
            .error(throttled)
            .times(3)
            .http_response(failing)
            .times(2)
            .output(|| BatchPutMessageOutput::builder().build())
            .build();
        let sender = BatchSender::new(
            client(RuleMode::Sequential, &rule),
            "ch",
            "b",
            "k",
            None,
            fast(),
        );
        let error = sender.send(batch(1..=3)).await.unwrap_err();
        assert!(error.to_string().contains("7 attempts"), "{error}");
        assert_eq!(rule.num_calls(), 7);
    }

    #[tokio::test]
    async fn refused_entries_are_reported_not_resent() {
        let rule =
            mock!(aws_sdk_iotanalytics::Client::batch_put_message).then_compute_response(|req| {
                let entries = req
                    .messages()
                    .iter()
                    .filter(|m| m.message_id() == "7")
                    .map(|m| entry(m.message_id(), "InvalidRequestException"))
                    .collect();
                MockResponse::Output(
                    BatchPutMessageOutput::builder()
                        .set_batch_put_message_error_entries(Some(entries))
                        .build(),
                )
            });
        let iota = client(RuleMode::MatchAny, &rule);
        let sender = BatchSender::new(iota, "ch", "b", "k", None, fast());
        let report = sender.send(batch(5..=8)).await.unwrap();
        assert_eq!(report.acknowledged, 3);
        assert_eq!(report.refused.len(), 1);
        assert_eq!(report.refused[0].row, 7);
        assert_eq!(report.refused[0].line, 8);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_missing_channel_is_not_retried() {
        let rule = mock!(aws_sdk_iotanalytics::Client::batch_put_message).then_error(|| {
            BatchPutMessageError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .meta(code("ResourceNotFoundException"))
                    .build(),
            )
        });
        let iota = client(RuleMode::MatchAny, &rule);
        let sender = BatchSender::new(iota, "nochannel", "b", "k", None, fast());
        let error = sender.send(batch(1..=2)).await.unwrap_err();
        assert_eq!(error.error_type(), "ChannelNotFound");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn the_limiter_paces_messages_at_the_rate() {
        let rule = mock!(aws_sdk_iotanalytics::Client::batch_put_message)
            .then_output(|| BatchPutMessageOutput::builder().build());
        let iota = client(RuleMode::MatchAny, &rule);
        let rate = NonZeroU32::new(200).unwrap();
        let limiter =
            crate::pacing::Pacing::new().limiter("ch", rate, NonZeroU32::new(100).unwrap());
        let sender = BatchSender::new(iota, "ch", "b", "k", Some(limiter), fast());
        let started = std::time::Instant::now();
        // One batch in hand at the start: 500 messages at 200/s take two seconds.
        for first in (1..=500).step_by(100) {
            sender.send(batch(first..=first + 99)).await.unwrap();
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(3500), "{elapsed:?}");
    }
}
