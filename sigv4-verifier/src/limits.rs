//! Size limits on a request: its head (431) and its body (413), enforced without ever holding
//! more than the limit in memory.

use bytes::Bytes;
use http::request::Parts;
use http_body_util::BodyExt as _;

use crate::Rejection;

/// Default largest request line plus headers, in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Default largest number of header fields.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// How large a request may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body, in bytes.
    pub max_body_bytes: usize,
    /// Largest request target plus header names and values, in bytes.
    pub max_header_bytes: usize,
    /// Largest number of header fields.
    pub max_headers: usize,
}

impl Limits {
    /// A body limit with the default header limits (32 KiB, 100 fields).
    pub fn new(max_body_bytes: usize) -> Limits {
        Limits {
            max_body_bytes,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }

    /// Checks the head: header count and size (431), and a declared `Content-Length` over the
    /// body limit (413), so that an oversized body is refused before any of it is read.
    pub fn check_head(&self, parts: &Parts) -> Result<(), Rejection> {
        if parts.headers.len() > self.max_headers {
            return Err(Rejection::headers_too_large(format!(
                "The request has {} header fields; the limit is {}",
                parts.headers.len(),
                self.max_headers
            )));
        }
        // Each field as it travels: name, ": ", value, CRLF.
        let size = parts.uri.to_string().len()
            + parts
                .headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum::<usize>();
        if size > self.max_header_bytes {
            return Err(Rejection::headers_too_large(format!(
                "The request headers are {size} bytes; the limit is {} bytes",
                self.max_header_bytes
            )));
        }
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(Rejection::body_too_large(self.max_body_bytes));
        }
        Ok(())
    }

    /// Reads the whole body, stopping with 413 as soon as it passes the limit.
    pub async fn read_body<B>(&self, body: B) -> Result<Bytes, Rejection>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let limited = http_body_util::Limited::new(body, self.max_body_bytes);
        match limited.collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err(Rejection::body_too_large(self.max_body_bytes))
            }
            Err(e) => Err(Rejection::incomplete_body(format!(
                "The request body could not be read: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn parts(builder: http::request::Builder) -> Parts {
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let head = parts(http::Request::post("/").header("content-length", "11"));
        let err = Limits::new(10).check_head(&head).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        let head = parts(http::Request::post("/").header("content-length", "10"));
        Limits::new(10).check_head(&head).unwrap();
    }

    #[test]
    fn too_many_or_too_large_headers_answer_431() {
        let mut builder = http::Request::get("/");
        for i in 0..=DEFAULT_MAX_HEADERS {
            builder = builder.header(format!("x-h{i}"), "v");
        }
        let err = Limits::new(10).check_head(&parts(builder)).unwrap_err();
        assert_eq!(err.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let big = "a".repeat(DEFAULT_MAX_HEADER_BYTES);
        let err = Limits::new(10)
            .check_head(&parts(http::Request::get("/").header("x-big", big)))
            .unwrap_err();
        assert_eq!(err.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_one_at_the_limit_read() {
        let limits = Limits::new(4);
        let body = http_body_util::Full::new(Bytes::from_static(b"12345"));
        let err = limits.read_body(body).await.unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        let body = http_body_util::Full::new(Bytes::from_static(b"1234"));
        assert_eq!(limits.read_body(body).await.unwrap(), "1234");
    }
}
