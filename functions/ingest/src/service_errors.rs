//! Sorts AWS SDK errors into what a retry can cure and what it cannot.

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

    /// Throttled by the service.
    pub fn is_throttling(&self) -> bool {
        self.status == Some(429)
            || matches!(
                self.code.as_deref(),
                Some(
                    "ThrottlingException" | "Throttling" | "SlowDown" | "TooManyRequestsException"
                )
            )
    }

    /// A failure that may pass: throttling, a 5xx, or no response at all (timeout, reset).
    pub fn is_transient(&self) -> bool {
        self.is_throttling()
            || self.status.is_none_or(|s| s >= 500)
            || matches!(
                self.code.as_deref(),
                Some("InternalFailureException" | "ServiceUnavailableException" | "RequestTimeout")
            )
    }

    /// The caller may not do this.
    pub fn is_access_denied(&self) -> bool {
        self.status == Some(403)
            || matches!(
                self.code.as_deref(),
                Some("AccessDenied" | "AccessDeniedException" | "UnrecognizedClientException")
            )
    }

    /// The named resource does not exist.
    pub fn is_not_found(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// An IoT Analytics call's failure as the library's error, naming the operation.
pub(crate) fn iota_error(operation: &str, resource: &str, failure: CallFailure) -> IngestError {
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
            service: "IoTAnalytics",
            operation: operation.to_owned(),
            message: failure.message,
        }
    } else {
        IngestError::ServiceError {
            service: "IoTAnalytics",
            operation: operation.to_owned(),
            message: failure.message,
        }
    }
}
