//! Dataset queries on Amazon Athena: start a dataset's SQL, follow its state, stop it.
//!
//! On AWS the service answers CreateDatasetContent by starting the dataset's SQL in one Athena
//! workgroup, against the Glue database that holds a table per datastore (see
//! [`crate::glue`]). The workgroup's configured result location is used (the workgroup
//! enforces it, so no `ResultConfiguration` is sent): Athena writes the result there as
//! `<QueryExecutionId>.csv` and GetQueryExecution reports its `s3://` URI, which the service
//! presigns as the content's `dataURI`.
//!
//! The dataset content's version id is sent as the `ClientRequestToken`, so a retried
//! CreateDatasetContent (a Lambda retried after a timeout, a client resending) starts one query,
//! not two: Athena answers a repeated token with the first query's id.

use std::fmt;

use aws_sdk_athena::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_athena::types::{QueryExecution, QueryExecutionContext, QueryExecutionState};

use crate::error::Error;

/// Shortest `ClientRequestToken` Athena accepts.
const MIN_TOKEN_CHARS: usize = 32;
/// Longest `ClientRequestToken` Athena accepts.
const MAX_TOKEN_CHARS: usize = 128;

/// Runs dataset SQL on Athena in one workgroup, over one Glue database.
#[derive(Debug, Clone)]
pub struct AthenaEngine {
    client: aws_sdk_athena::Client,
    workgroup: String,
    database: String,
}

/// Where a query stands, as far as a dataset content is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryState {
    /// `QUEUED` or `RUNNING`: the content is `CREATING`.
    Running,
    /// `SUCCEEDED`: the result CSV is at `output`.
    Succeeded {
        /// The result object Athena wrote.
        output: S3Location,
    },
    /// `FAILED` or `CANCELLED`: the content is `FAILED` with this reason.
    Failed {
        /// Athena's state change reason, with its error message when that adds to it.
        reason: String,
    },
}

/// An S3 object, as named by an `s3://bucket/key` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Object key (never empty, no leading `/`).
    pub key: String,
}

impl S3Location {
    /// Reads `s3://bucket/key`. `None` when the scheme is not `s3://`, or the bucket or the key
    /// is empty: such a location names no object.
    pub fn parse(uri: &str) -> Option<S3Location> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/')?;
        if bucket.is_empty() || key.is_empty() {
            return None;
        }
        Some(S3Location {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl AthenaEngine {
    /// An engine that runs queries in `workgroup` with `database` (the Glue database holding
    /// the datastores' tables) as the default database.
    pub fn new(
        client: aws_sdk_athena::Client,
        workgroup: impl Into<String>,
        database: impl Into<String>,
    ) -> Self {
        AthenaEngine {
            client,
            workgroup: workgroup.into(),
            database: database.into(),
        }
    }

    /// The workgroup queries run in.
    pub fn workgroup(&self) -> &str {
        &self.workgroup
    }

    /// The Glue database unqualified table names resolve in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Starts `sql` (StartQueryExecution) and returns its QueryExecutionId.
    ///
    /// `token` is the dataset content's version id, sent as the `ClientRequestToken` so that a
    /// retried call starts one query; Athena requires 32 to 128 characters (a UUID is 36).
    pub async fn start(&self, sql: &str, token: &str) -> Result<String, Error> {
        let chars = token.chars().count();
        if !(MIN_TOKEN_CHARS..=MAX_TOKEN_CHARS).contains(&chars) {
            return Err(Error::InvalidRequest(format!(
                "An Athena client request token must have {MIN_TOKEN_CHARS} to \
                 {MAX_TOKEN_CHARS} characters, got {chars}"
            )));
        }
        let context = QueryExecutionContext::builder()
            .database(&self.database)
            .build();
        let out = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&self.workgroup)
            .query_execution_context(context)
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("Athena StartQueryExecution", e))?;
        let id = out.query_execution_id().ok_or_else(|| {
            Error::InternalFailure("Athena StartQueryExecution returned no QueryExecutionId".into())
        })?;
        tracing::debug!(query_execution_id = id, workgroup = %self.workgroup, "Athena query started");
        Ok(id.to_owned())
    }

    /// The state of a query (GetQueryExecution), mapped to what a dataset content shows.
    pub async fn state(&self, query_execution_id: &str) -> Result<QueryState, Error> {
        let out = self
            .client
            .get_query_execution()
            .query_execution_id(query_execution_id)
            .send()
            .await
            .map_err(|e| sdk_error("Athena GetQueryExecution", e))?;
        let execution = out.query_execution().ok_or_else(|| {
            Error::InternalFailure(format!(
                "Athena GetQueryExecution returned no QueryExecution for {query_execution_id}"
            ))
        })?;
        query_state(execution)
    }

    /// Stops a query (StopQueryExecution), as when its dataset or content is deleted.
    pub async fn cancel(&self, query_execution_id: &str) -> Result<(), Error> {
        self.client
            .stop_query_execution()
            .query_execution_id(query_execution_id)
            .send()
            .await
            .map_err(|e| sdk_error("Athena StopQueryExecution", e))?;
        tracing::debug!(query_execution_id, "Athena query stopped");
        Ok(())
    }
}

/// Maps one QueryExecution to a [`QueryState`].
///
/// A query that succeeded without a readable result location is reported as failed: its
/// content can never get a `dataURI`, and saying so beats staying `CREATING` forever. A state
/// this code does not know (or none) is an error, not a guess.
fn query_state(execution: &QueryExecution) -> Result<QueryState, Error> {
    let id = execution.query_execution_id().unwrap_or("(unknown)");
    let status = execution.status();
    let state = status.and_then(|s| s.state()).ok_or_else(|| {
        Error::InternalFailure(format!("Athena reported no state for query {id}"))
    })?;
    let reason = || {
        let said = status.and_then(|s| s.state_change_reason());
        let detail = status
            .and_then(|s| s.athena_error())
            .and_then(|e| e.error_message());
        failure_reason(said, detail, state.as_str())
    };
    Ok(match state {
        QueryExecutionState::Queued | QueryExecutionState::Running => QueryState::Running,
        QueryExecutionState::Failed | QueryExecutionState::Cancelled => {
            QueryState::Failed { reason: reason() }
        }
        QueryExecutionState::Succeeded => {
            let uri = execution
                .result_configuration()
                .and_then(|r| r.output_location());
            match uri.and_then(S3Location::parse) {
                Some(output) => QueryState::Succeeded { output },
                None => QueryState::Failed {
                    reason: format!(
                        "Athena reported query {id} SUCCEEDED with no readable result location ({})",
                        uri.unwrap_or("none")
                    ),
                },
            }
        }
        other => {
            return Err(Error::InternalFailure(format!(
                "Athena reported query {id} in state {other}, which this service does not know"
            )));
        }
    })
}

/// Athena's `StateChangeReason`, with the `AthenaError` message when it says more. The two
/// often repeat each other, and the reason is shown to users once.
fn failure_reason(reason: Option<&str>, detail: Option<&str>, state: &str) -> String {
    let reason = reason.map(str::trim).filter(|s| !s.is_empty());
    let detail = detail.map(str::trim).filter(|s| !s.is_empty());
    match (reason, detail) {
        (Some(r), Some(d)) if r.contains(d) => r.to_owned(),
        (Some(r), Some(d)) if d.contains(r) => d.to_owned(),
        (Some(r), Some(d)) => format!("{r}: {d}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) if state == "CANCELLED" => "The query was cancelled".to_owned(),
        (None, None) => format!("Athena reported the query {state} without a reason"),
    }
}

/// Error codes that mean "too much, later": Athena's `TooManyRequestsException`, the generic
/// throttling codes AWS services answer with, and Glue's `ConcurrentModificationException`
/// (another writer got there first; the same call later succeeds).
const THROTTLING_CODES: &[&str] = &[
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "ConcurrentModificationException",
];

/// Error codes that mean the request itself was refused: Athena's `InvalidRequestException`
/// (e.g. SQL it rejects before queueing) and Glue's `InvalidInputException`.
const INVALID_CODES: &[&str] = &["InvalidRequestException", "InvalidInputException"];

/// Maps an Athena or Glue SDK error to the service's error, in one place: throttling codes to
/// [`Error::Throttling`], refused requests to [`Error::InvalidRequest`] with the AWS service's
/// own message, everything else (access denied, internal errors, timeouts, connection
/// failures) to [`Error::InternalFailure`] naming the operation. `operation` reads like
/// `"Athena StartQueryExecution"`.
pub(crate) fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug,
{
    let code = err.code().map(str::to_owned);
    let message = err.message().map(str::to_owned);
    match code.as_deref() {
        Some(c) if THROTTLING_CODES.contains(&c) => Error::Throttling(format!(
            "{operation} was throttled: {}",
            message.as_deref().unwrap_or(c)
        )),
        Some(c) if INVALID_CODES.contains(&c) => {
            Error::InvalidRequest(message.unwrap_or_else(|| c.to_owned()))
        }
        Some(c) => Error::InternalFailure(match message {
            Some(m) => format!("{operation} failed: {c}: {m}"),
            None => format!("{operation} failed: {c}"),
        }),
        None => {
            Error::InternalFailure(format!("{operation} failed: {}", DisplayErrorContext(&err)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_athena::operation::get_query_execution::GetQueryExecutionOutput;
    use aws_sdk_athena::operation::start_query_execution::{
        StartQueryExecutionError, StartQueryExecutionOutput,
    };
    use aws_sdk_athena::operation::stop_query_execution::{
        StopQueryExecutionError, StopQueryExecutionOutput,
    };
    use aws_sdk_athena::types::error::{
        InternalServerException, InvalidRequestException, TooManyRequestsException,
    };
    use aws_sdk_athena::types::{AthenaError, QueryExecutionStatus, ResultConfiguration};
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use std::sync::{Arc, Mutex};

    const TOKEN: &str = "5f0c4a36-8d1e-4c55-9a7e-1f0f3b2f8a11";

    /// A mocked client without SDK retries, so each rule answers exactly one call.
    fn engine(rules: &[&Rule]) -> AthenaEngine {
        let client = mock_client!(aws_sdk_athena, RuleMode::MatchAny, rules, |c| c
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled()));
        AthenaEngine::new(client, "iotanalytics", "iotanalytics_db")
    }

    /// Errors parsed off the wire carry their code; mocked ones need it set.
    fn code(code: &str, message: &str) -> aws_smithy_types::error::ErrorMetadata {
        aws_smithy_types::error::ErrorMetadata::builder()
            .code(code)
            .message(message)
            .build()
    }

    fn execution(state: &str) -> aws_sdk_athena::types::builders::QueryExecutionBuilder {
        QueryExecution::builder().query_execution_id("q-1").status(
            QueryExecutionStatus::builder()
                .state(QueryExecutionState::from(state))
                .build(),
        )
    }

    async fn state_of(execution: QueryExecution) -> QueryState {
        let get = mock!(aws_sdk_athena::Client::get_query_execution)
            .match_requests(|req| req.query_execution_id() == Some("q-1"))
            .then_output(move || {
                GetQueryExecutionOutput::builder()
                    .query_execution(execution.clone())
                    .build()
            });
        let state = engine(&[&get]).state("q-1").await.unwrap();
        assert_eq!(get.num_calls(), 1);
        state
    }

    #[test]
    fn s3_uris_split_into_bucket_and_key() {
        assert_eq!(
            S3Location::parse("s3://results-bucket/athena/q-1.csv"),
            Some(S3Location {
                bucket: "results-bucket".into(),
                key: "athena/q-1.csv".into()
            })
        );
        let location = S3Location::parse("s3://b/k.csv").unwrap();
        assert_eq!(location.to_string(), "s3://b/k.csv");
        for bad in [
            "",
            "s3://",
            "s3://bucket",
            "s3://bucket/",
            "s3:///key.csv",
            "https://bucket/key.csv",
            "bucket/key.csv",
        ] {
            assert_eq!(S3Location::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_query_goes_to_the_workgroup_and_database_with_the_version_id_as_token() {
        let seen = Arc::new(Mutex::new(None));
        let record = seen.clone();
        let start = mock!(aws_sdk_athena::Client::start_query_execution)
            .match_requests(move |req| {
                *record.lock().unwrap() = Some(req.clone());
                true
            })
            .then_output(|| {
                StartQueryExecutionOutput::builder()
                    .query_execution_id("q-1")
                    .build()
            });
        let sql = "SELECT count(*) FROM sensors WHERE dt >= '2026-11-01'";
        let id = engine(&[&start]).start(sql, TOKEN).await.unwrap();
        assert_eq!(id, "q-1");
        let sent = seen.lock().unwrap().take().unwrap();
        assert_eq!(sent.query_string(), Some(sql));
        assert_eq!(sent.work_group(), Some("iotanalytics"));
        assert_eq!(
            sent.query_execution_context().and_then(|c| c.database()),
            Some("iotanalytics_db")
        );
        assert_eq!(sent.client_request_token(), Some(TOKEN));
        // The workgroup's enforced result location applies; none is sent.
        assert!(sent.result_configuration().is_none());
    }

    #[tokio::test]
    async fn a_token_athena_would_refuse_is_refused_before_calling_it() {
        let start = mock!(aws_sdk_athena::Client::start_query_execution).then_output(|| {
            StartQueryExecutionOutput::builder()
                .query_execution_id("q-1")
                .build()
        });
        let engine = engine(&[&start]);
        let error = engine.start("SELECT 1", "short").await.unwrap_err();
        assert!(matches!(error, Error::InvalidRequest(_)), "{error:?}");
        let error = engine
            .start("SELECT 1", &"x".repeat(129))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidRequest(_)), "{error:?}");
        assert_eq!(start.num_calls(), 0);
    }

    #[tokio::test]
    async fn queued_and_running_queries_are_running() {
        for state in ["QUEUED", "RUNNING"] {
            assert_eq!(
                state_of(execution(state).build()).await,
                QueryState::Running,
                "{state}"
            );
        }
    }

    #[tokio::test]
    async fn a_succeeded_query_points_at_its_result_csv() {
        let done = execution("SUCCEEDED")
            .result_configuration(
                ResultConfiguration::builder()
                    .output_location("s3://stack-results/athena/q-1.csv")
                    .build(),
            )
            .build();
        assert_eq!(
            state_of(done).await,
            QueryState::Succeeded {
                output: S3Location {
                    bucket: "stack-results".into(),
                    key: "athena/q-1.csv".into()
                }
            }
        );
    }

    #[tokio::test]
    async fn a_succeeded_query_without_a_result_location_fails_the_content() {
        let QueryState::Failed { reason } = state_of(execution("SUCCEEDED").build()).await else {
            panic!("expected a failure");
        };
        assert!(reason.contains("no readable result location"), "{reason}");
    }

    #[tokio::test]
    async fn a_failed_query_carries_athenas_reason_and_error_message() {
        let status = |reason: Option<&str>, message: Option<&str>| {
            let mut error = AthenaError::builder().error_category(2).error_type(1006);
            if let Some(m) = message {
                error = error.error_message(m);
            }
            let mut status = QueryExecutionStatus::builder()
                .state(QueryExecutionState::Failed)
                .athena_error(error.build());
            if let Some(r) = reason {
                status = status.state_change_reason(r);
            }
            QueryExecution::builder()
                .query_execution_id("q-1")
                .status(status.build())
                .build()
        };
        let reason = "line 1:8: Column 'tmp' cannot be resolved";
        let cases = [
            (Some(reason), Some(reason), reason.to_owned()),
            (Some(reason), None, reason.to_owned()),
            (None, Some(reason), reason.to_owned()),
            (
                Some("HIVE_BAD_DATA: Error parsing field value"),
                Some("for field 3: For input string: \"abc\""),
                "HIVE_BAD_DATA: Error parsing field value: for field 3: For input string: \"abc\""
                    .to_owned(),
            ),
            (
                None,
                None,
                "Athena reported the query FAILED without a reason".to_owned(),
            ),
        ];
        for (said, detail, expected) in cases {
            assert_eq!(
                state_of(status(said, detail)).await,
                QueryState::Failed { reason: expected }
            );
        }
    }

    #[tokio::test]
    async fn a_cancelled_query_fails_the_content() {
        assert_eq!(
            state_of(execution("CANCELLED").build()).await,
            QueryState::Failed {
                reason: "The query was cancelled".into()
            }
        );
        let stopped = QueryExecution::builder()
            .query_execution_id("q-1")
            .status(
                QueryExecutionStatus::builder()
                    .state(QueryExecutionState::Cancelled)
                    .state_change_reason("Query cancelled by user")
                    .build(),
            )
            .build();
        assert_eq!(
            state_of(stopped).await,
            QueryState::Failed {
                reason: "Query cancelled by user".into()
            }
        );
    }

    #[tokio::test]
    async fn a_state_this_service_does_not_know_is_an_error_not_a_guess() {
        let get = mock!(aws_sdk_athena::Client::get_query_execution).then_output(|| {
            GetQueryExecutionOutput::builder()
                .query_execution(execution("PAUSED").build())
                .build()
        });
        let error = engine(&[&get]).state("q-1").await.unwrap_err();
        assert!(matches!(error, Error::InternalFailure(_)), "{error:?}");
        assert!(error.to_string().contains("PAUSED"), "{error}");
    }

    #[tokio::test]
    async fn cancel_stops_the_named_query() {
        let stop = mock!(aws_sdk_athena::Client::stop_query_execution)
            .match_requests(|req| req.query_execution_id() == Some("q-7"))
            .then_output(|| StopQueryExecutionOutput::builder().build());
        engine(&[&stop]).cancel("q-7").await.unwrap();
        assert_eq!(stop.num_calls(), 1);
    }

    #[tokio::test]
    async fn athena_errors_map_to_throttling_invalid_request_or_internal_failure() {
        let throttled = mock!(aws_sdk_athena::Client::start_query_execution).then_error(|| {
            StartQueryExecutionError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("Rate exceeded")
                    .meta(code("TooManyRequestsException", "Rate exceeded"))
                    .build(),
            )
        });
        let error = engine(&[&throttled])
            .start("SELECT 1", TOKEN)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Throttling(_)), "{error:?}");

        let message = "line 1:1: mismatched input 'SELEC'";
        let invalid = mock!(aws_sdk_athena::Client::start_query_execution).then_error(move || {
            StartQueryExecutionError::InvalidRequestException(
                InvalidRequestException::builder()
                    .message(message)
                    .meta(code("InvalidRequestException", message))
                    .build(),
            )
        });
        let error = engine(&[&invalid])
            .start("SELEC 1", TOKEN)
            .await
            .unwrap_err();
        match error {
            Error::InvalidRequest(m) => assert_eq!(m, message),
            other => panic!("expected InvalidRequest, got {other:?}"),
        }

        let internal = mock!(aws_sdk_athena::Client::stop_query_execution).then_error(|| {
            StopQueryExecutionError::InternalServerException(
                InternalServerException::builder()
                    .message("oops")
                    .meta(code("InternalServerException", "oops"))
                    .build(),
            )
        });
        let error = engine(&[&internal]).cancel("q-1").await.unwrap_err();
        match error {
            Error::InternalFailure(m) => assert_eq!(
                m,
                "Athena StopQueryExecution failed: InternalServerException: oops"
            ),
            other => panic!("expected InternalFailure, got {other:?}"),
        }
    }
}
