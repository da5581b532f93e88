//! Why a request is refused, and how each AWS wire protocol writes that refusal.

use http::{HeaderValue, StatusCode, header};

/// A refused request: the AWS error code, its message and the HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// The AWS error code, e.g. `InvalidSignatureException`.
    pub code: &'static str,
    /// Human-readable text, worded as AWS words it where AWS has a wording.
    pub message: String,
    /// 403 for authentication failures, 413 and 431 for oversized requests.
    pub status: StatusCode,
}

/// The wire protocol a rejection is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// restJson1 (IoT Analytics): the code in `x-amzn-ErrorType`, the body `{"message": ...}`.
    RestJson1,
    /// awsJson1_0 (Step Functions): the body `{"__type": ..., "message": ...}`, content type
    /// `application/x-amz-json-1.0`.
    AwsJson1_0,
}

impl Rejection {
    /// A 403 authentication failure.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
            status: StatusCode::FORBIDDEN,
        }
    }

    /// The request carries no SigV4 authentication at all.
    pub fn missing_token() -> Rejection {
        Rejection::forbidden(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )
    }

    /// The `Authorization` header or `X-Amz-Date` is absent or malformed.
    pub fn incomplete(message: impl Into<String>) -> Rejection {
        Rejection::forbidden("IncompleteSignatureException", message)
    }

    /// The signature, its date or its scope is wrong.
    pub fn invalid(message: impl Into<String>) -> Rejection {
        Rejection::forbidden("InvalidSignatureException", message)
    }

    /// The access key id is not one the endpoint knows.
    pub fn unrecognized_client() -> Rejection {
        Rejection::forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    }

    /// The body is larger than the endpoint accepts (HTTP 413).
    pub fn body_too_large(limit: usize) -> Rejection {
        Rejection {
            code: "RequestEntityTooLargeException",
            message: format!("The request body is larger than the limit of {limit} bytes"),
            status: StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The request line and headers are larger than the endpoint accepts (HTTP 431).
    pub fn headers_too_large(message: impl Into<String>) -> Rejection {
        Rejection {
            code: "RequestHeaderFieldsTooLargeException",
            message: message.into(),
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// The body ended before its declared length or could not be read (HTTP 400).
    pub fn incomplete_body(message: impl Into<String>) -> Rejection {
        Rejection {
            code: "IncompleteBody",
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// The rejection as an HTTP response in `protocol`, with an `x-amzn-RequestId`.
    ///
    /// Both protocols carry the code in `x-amzn-ErrorType` too, as AWS endpoints do, so a
    /// client of either protocol finds it.
    pub fn to_response(&self, protocol: Protocol) -> http::Response<String> {
        let (content_type, body) = match protocol {
            Protocol::RestJson1 => (
                "application/json",
                serde_json::json!({ "message": self.message }),
            ),
            Protocol::AwsJson1_0 => (
                "application/x-amz-json-1.0",
                serde_json::json!({ "__type": self.code, "message": self.message }),
            ),
        };
        let mut response = http::Response::new(body.to_string());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        headers.insert(
            "x-amzn-RequestId",
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a UUID is ASCII"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_json_rejections_carry_the_code_in_a_header_and_a_message_in_json() {
        let response = Rejection::invalid("Signature expired").to_response(Protocol::RestJson1);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()["x-amzn-ErrorType"],
            "InvalidSignatureException"
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body, serde_json::json!({"message": "Signature expired"}));
    }

    #[test]
    fn aws_json_rejections_carry_the_type_in_the_body() {
        let response = Rejection::body_too_large(10).to_response(Protocol::AwsJson1_0);
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            response.headers()["content-type"],
            "application/x-amz-json-1.0"
        );
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["__type"], "RequestEntityTooLargeException");
        assert!(body["message"].as_str().unwrap().contains("10 bytes"));
    }
}
