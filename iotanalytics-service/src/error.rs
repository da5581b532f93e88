//! The library's error type, and how each error is answered on the wire
//! (`x-amzn-ErrorType` header plus a JSON body with `message`).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Every failure of the service, whether answered to a client or returned to a Rust caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a service limit.
    #[error("{0}")]
    InvalidRequest(String),
    /// The named resource does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// A resource with this name already exists.
    #[error("{message}")]
    ResourceAlreadyExists {
        /// Human readable text.
        message: String,
        /// Name of the existing resource.
        resource_id: String,
        /// ARN of the existing resource.
        resource_arn: String,
    },
    /// An internal limit would be exceeded (such as 50 tags on one resource).
    #[error("{0}")]
    LimitExceeded(String),
    /// A rate limit was exceeded; the caller should retry later.
    #[error("{0}")]
    Throttling(String),
    /// An internal failure (also used for injected faults).
    #[error("{0}")]
    InternalFailure(String),
    /// The operation exists in the real service but not in this one, or the path is unknown.
    #[error("{message}")]
    UnsupportedOperation {
        /// HTTP status to answer with.
        status: u16,
        /// Human readable text naming the operation or path.
        message: String,
    },
    /// The configuration given to [`crate::start`] is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file system operation failed.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// Stored JSON could not be read or written.
    #[error("JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// A dataset query failed.
    #[error("{0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// Arrow data could not be converted.
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A Parquet file could not be read or written.
    #[error("{0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
}

impl Error {
    /// The error code clients see (`x-amzn-ErrorType`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "InvalidRequestException",
            Error::ResourceNotFound(_) => "ResourceNotFoundException",
            Error::ResourceAlreadyExists { .. } => "ResourceAlreadyExistsException",
            Error::LimitExceeded(_) => "LimitExceededException",
            Error::Throttling(_) => "ThrottlingException",
            Error::UnsupportedOperation { status: 404, .. } => "UnknownOperationException",
            Error::UnsupportedOperation { .. } => "InvalidRequestException",
            _ => "InternalFailureException",
        }
    }

    /// The HTTP status the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Error::ResourceNotFound(_) => StatusCode::NOT_FOUND,
            Error::ResourceAlreadyExists { .. } => StatusCode::CONFLICT,
            Error::LimitExceeded(_) => StatusCode::GONE,
            Error::Throttling(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::UnsupportedOperation { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn not_found(kind: &str, name: &str) -> Self {
        Error::ResourceNotFound(format!("A {kind} with name {name} does not exist."))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), error = %self, "request failed");
        } else {
            tracing::debug!(code = self.code(), error = %self, "request rejected");
        }
        let mut body = serde_json::json!({ "message": self.to_string() });
        if let Error::ResourceAlreadyExists {
            resource_id,
            resource_arn,
            ..
        } = &self
        {
            body["resourceId"] = resource_id.clone().into();
            body["resourceArn"] = resource_arn.clone().into();
        }
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(self.code()));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        response
    }
}
