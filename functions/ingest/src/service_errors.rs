//! Sorts AWS SDK errors into what a retry can cure and what it cannot, and maps S3 and
//! IoT Analytics failures to the library's error.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response;

use crate::error::IngestError;

/// What the library needs to know about a failed SDK call.
#[derive(Debug, Clone)]
pub(crate) struct CallFailure {
    /// The service's error code (`NoSuchBucket`, `ThrottlingException`...), if it sent one.
    pub code: Option<String>,
    /// HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// A readable description.
    pub message: String,
}

impl CallFailure {
    /// Reads code, status and message out of an SDK error.
    pub fn from_sdk<E>(error: &SdkError<E, Response>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = error.raw_response().map(|r| r.status().as_u16());
        let code = error.code().map(str::to_owned);
        let message = match (error.code(), error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => aws_smithy_types::error::display::DisplayErrorContext(error).to_string(),
        };
        Self {
            code,
            status,
            message,
        }
    }

    /// Throttled by the service: a 429, or one of the codes the AWS SDK itself retries as
    /// throttling.
    pub fn is_throttling(&self) -> bool {
        self.status == Some(429)
            || self
                .code
                .as_deref()
                .is_some_and(|code| THROTTLING_ERRORS.contains(&code))
    }

    /// A failure that may pass: throttling, a 5xx, no response at all (timeout, reset), or
    /// one of the codes the AWS SDK retries as transient.
    pub fn is_transient(&self) -> bool {
        self.is_throttling()
            || self.status.is_none_or(|s| s >= 500)
            || self
                .code
                .as_deref()
                .is_some_and(|code| TRANSIENT_ERRORS.contains(&code))
    }

    /// The caller may not do this.
    pub fn is_access_denied(&self) -> bool {
        self.status == Some(403)
            || matches!(
                self.code.as_deref(),
                Some("AccessDenied" | "AccessDeniedException" | "UnrecognizedClientException")
            )
    }

    /// The service answered with this error code.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// An IoT Analytics call's failure as the library's error, naming the operation.
pub(crate) fn iota_error(operation: &str, resource: &str, failure: CallFailure) -> IngestError {
    service_error("IoTAnalytics", operation, resource, failure)
}

/// Maps an S3 failure of `operation` on `resource` in `bucket`.
pub(crate) fn s3_error(
    operation: &str,
    bucket: &str,
    resource: &str,
    failure: CallFailure,
) -> IngestError {
    if failure.has_code("NoSuchBucket") {
        IngestError::BucketNotFound {
            bucket: bucket.to_owned(),
        }
    } else {
        service_error("S3", operation, resource, failure)
    }
}

/// The library's error for a failed call: throttled, denied, transient, or none of those.
fn service_error(
    service: &'static str,
    operation: &str,
    resource: &str,
    failure: CallFailure,
) -> IngestError {
    if failure.is_throttling() {
        IngestError::Throttled {
            operation: operation.to_owned(),
            message: failure.message,
        }
    } else if failure.is_access_denied() {
        IngestError::AccessDenied {
            operation: operation.to_owned(),
            resource: resource.to_owned(),
        }
    } else if failure.is_transient() {
        IngestError::ServiceUnavailable {
            service,
            operation: operation.to_owned(),
            message: failure.message,
        }
    } else {
        IngestError::ServiceError {
            service,
            operation: operation.to_owned(),
            message: failure.message,
        }
    }
}
