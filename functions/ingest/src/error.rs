//! The library's one error type, with the stable names the state machine's Retry and Catch match.

use std::fmt;

/// Everything that can stop a launcher, worker or validator invocation.
///
/// Each variant has a stable PascalCase name ([`IngestError::error_type`]) that the Lambda
/// runtime reports as `errorType` and that `statemachine/ingest.asl.json` matches in its
/// Retry and Catch clauses. [`IngestError::is_retryable`] says which ones a retry can cure.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr, strum::VariantNames, strum::EnumIter)]
pub enum IngestError {
    /// The invocation's input is missing a field or has a value out of range.
    #[error("invalid input: {field}: {reason}")]
    InvalidInput {
        /// The input field at fault, as spelled in the JSON input.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The source (or ledger) bucket does not exist.
    #[error("bucket {bucket} does not exist")]
    BucketNotFound {
        /// The bucket named in the input.
        bucket: String,
    },

    /// The credentials in use may not perform the call on the named resource.
    #[error("access denied: {operation} on {resource}")]
    AccessDenied {
        /// The S3 or IoT Analytics operation refused.
        operation: String,
        /// The bucket, key, channel or dataset it was refused on.
        resource: String,
    },

    /// The object named in the input is gone.
    #[error("object s3://{bucket}/{key} does not exist")]
    ObjectNotFound {
        /// Bucket of the object.
        bucket: String,
        /// Key of the object.
        key: String,
    },

    /// The object's ETag differs from the one the launcher listed, so its content changed
    /// between listing and reading (or between two invocations on one object).
    #[error("object s3://{bucket}/{key} changed: listed with ETag {expected}, now {actual}")]
    ObjectChanged {
        /// Bucket of the object.
        bucket: String,
        /// Key of the object.
        key: String,
        /// The ETag in the input.
        expected: String,
        /// The ETag S3 returned.
        actual: String,
    },

    /// The object's header row cannot become IoT Analytics attribute names.
    #[error("s3://{bucket}/{key} line 1: invalid header: {reason}")]
    InvalidHeader {
        /// Bucket of the object.
        bucket: String,
        /// Key of the object.
        key: String,
        /// Which column and why.
        reason: String,
    },

    /// A row that cannot become a message, with the `fail` bad-row policy.
    #[error(
        "s3://{bucket}/{key} line {line} (row {row}): {reason}; rows before it were sent ({rows_sent} rows), nothing from this row on"
    )]
    MalformedRow {
        /// Bucket of the object.
        bucket: String,
        /// Key of the object.
        key: String,
        /// Physical line (1-based, the header is line 1) where the row starts.
        line: u64,
        /// Data row number (the message id the row would have had).
        row: u64,
        /// What is wrong with the row.
        reason: String,
        /// Rows of this object acknowledged before the invocation stopped.
        rows_sent: u64,
    },

    /// The channel named in the input does not exist.
    #[error("channel {channel} does not exist")]
    ChannelNotFound {
        /// The channel name.
        channel: String,
    },

    /// BatchPutMessage kept failing after every attempt the retry policy allows.
    #[error(
        "s3://{bucket}/{key} rows {first_row}-{last_row}: BatchPutMessage still failing after {attempts} attempts: {reason}"
    )]
    BatchPutFailed {
        /// Bucket of the object.
        bucket: String,
        /// Key of the object.
        key: String,
        /// First data row of the batch.
        first_row: u64,
        /// Last data row of the batch.
        last_row: u64,
        /// Attempts made.
        attempts: u32,
        /// The last error seen.
        reason: String,
    },

    /// The service throttled a call that the function does not retry itself.
    #[error("throttled: {operation}: {message}")]
    Throttled {
        /// The operation throttled.
        operation: String,
        /// The service's message.
        message: String,
    },

    /// A transient failure of S3 or IoT Analytics (5xx, timeout, connection reset).
    #[error("{service} unavailable during {operation}: {message}")]
    ServiceUnavailable {
        /// `S3` or `IoTAnalytics`.
        service: &'static str,
        /// The operation that failed.
        operation: String,
        /// The error seen.
        message: String,
    },

    /// A call failed in a way no retry can cure (a malformed request, a missing resource).
    #[error("{service} {operation} failed: {message}")]
    ServiceError {
        /// `S3` or `IoTAnalytics`.
        service: &'static str,
        /// The operation that failed.
        operation: String,
        /// The error seen.
        message: String,
    },

    /// The dataset or datastore named in the validation input does not exist.
    #[error("{kind} {name} does not exist")]
    ResourceNotFound {
        /// `dataset` or `datastore`.
        kind: &'static str,
        /// Its name.
        name: String,
    },

    /// The dataset content ended in state FAILED.
    #[error("dataset {dataset} content {version_id} failed: {reason}")]
    DatasetContentFailed {
        /// Dataset name.
        dataset: String,
        /// Content version.
        version_id: String,
        /// The service's reason.
        reason: String,
    },

    /// The dataset's result differs from what the input expected.
    #[error("validation of dataset {dataset} failed: {mismatches}")]
    ValidationFailed {
        /// Dataset name.
        dataset: String,
        /// Every expected column with the value found, e.g. `rows: expected 10, actual 9`.
        mismatches: String,
    },

    /// Downloading or reading the dataset's result failed.
    #[error("reading dataset result {uri}: {message}")]
    ResultUnreadable {
        /// The `dataURI` of the content.
        uri: String,
        /// What went wrong.
        message: String,
    },
}

impl IngestError {
    /// The stable name reported as the Lambda `errorType` and matched by the state machine:
    /// the variant's name.
    pub fn error_type(&self) -> &'static str {
        self.into()
    }

    /// Whether calling the function again with the same input may succeed; the state machine
    /// retries exactly these.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::BatchPutFailed { .. }
                | Self::Throttled { .. }
                | Self::ServiceUnavailable { .. }
                | Self::ResultUnreadable { .. }
        )
    }

    /// The names of the error types a retry may cure.
    pub fn retryable_types() -> Vec<&'static str> {
        <Self as strum::IntoEnumIterator>::iter()
            .filter(Self::is_retryable)
            .map(|e| e.error_type())
            .collect()
    }

    /// What Lambda reports when an invocation is cut short rather than failing: a timeout
    /// and a crashed runtime. The state machine retries both; the worker resumes from its
    /// ledger checkpoint.
    pub const CUT_SHORT_TYPES: [&'static str; 2] = ["Sandbox.Timedout", "Runtime.ExitError"];

    /// Every error type name, in the order docs/functions.md lists them.
    pub const ALL_TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;

    pub(crate) fn invalid_input(field: &str, reason: impl fmt::Display) -> Self {
        Self::InvalidInput {
            field: field.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// The error-type name and message a Lambda runtime reports for an error.
///
/// The functions report it as `lambda_runtime::Diagnostic` (feature `lambda`); the local
/// executor uses it directly, so both report the same `errorType`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReport {
    /// Stable PascalCase error name.
    pub error_type: String,
    /// Human-readable message naming the input at fault.
    pub error_message: String,
}

impl From<&IngestError> for ErrorReport {
    fn from(error: &IngestError) -> Self {
        Self {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(feature = "lambda")]
impl From<IngestError> for lambda_runtime::Diagnostic {
    fn from(error: IngestError) -> Self {
        let report = ErrorReport::from(&error);
        Self {
            error_type: report.error_type,
            error_message: report.error_message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_reports_its_own_listed_name() {
        let mut seen = Vec::new();
        for error in <IngestError as strum::IntoEnumIterator>::iter() {
            let report = ErrorReport::from(&error);
            assert!(IngestError::ALL_TYPES.contains(&report.error_type.as_str()));
            assert_eq!(
                report.error_type,
                format!("{error:?}").split([' ', '{']).next().unwrap()
            );
            seen.push(report.error_type);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), IngestError::ALL_TYPES.len());
        assert_eq!(seen.len(), 16);
    }

    #[test]
    fn only_service_side_and_transient_failures_are_retryable() {
        assert_eq!(
            IngestError::retryable_types(),
            [
                "BatchPutFailed",
                "Throttled",
                "ServiceUnavailable",
                "ResultUnreadable"
            ]
        );
    }

    #[test]
    fn malformed_rows_name_object_line_and_progress() {
        let error = IngestError::MalformedRow {
            bucket: "src".into(),
            key: "1/a.csv".into(),
            line: 7,
            row: 6,
            reason: "3 fields where the header has 6".into(),
            rows_sent: 5,
        };
        let report = ErrorReport::from(&error);
        assert_eq!(report.error_type, "MalformedRow");
        assert!(report.error_message.contains("s3://src/1/a.csv line 7"));
        assert!(report.error_message.contains("5 rows"));
        assert!(!error.is_retryable());
    }
}
