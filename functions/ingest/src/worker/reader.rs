//! [`ObjectReader`]: the source object's bytes from an offset, always of the listed ETag,
//! reopened with a ranged GET after a broken stream.

use bytes::Bytes;

use crate::error::IngestError;
use crate::ledger::same_etag;
use crate::service_errors::{CallFailure, s3_error};

use super::io::WorkerInput;

/// Streams an object's bytes from an offset, reopening with a ranged GET after a broken
/// connection so a long object survives a reset without re-reading what was read.
pub(super) struct ObjectReader<'a> {
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
    pub(super) async fn open(
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
        // Every read is of the listed version: S3 checks If-Match before the range, so an
        // object replaced by a shorter one answers 412, never a 416 mistaken for its end.
        // Inputs may carry the ETag with or without its quotes; the header needs them.
        if !self.etag.is_empty() {
            request = request.if_match(format!("\"{}\"", self.etag.trim_matches('"')));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let failure = CallFailure::from_sdk(&e);
                if failure.status == Some(412) {
                    return Err(IngestError::ObjectChanged {
                        bucket: self.bucket.to_owned(),
                        key: self.key.to_owned(),
                        expected: self.etag.to_owned(),
                        actual: "another version (If-Match refused)".to_owned(),
                    });
                }
                // A range starting at the listed version's end: nothing left to read.
                if failure.status == Some(416) {
                    self.body = Some(aws_sdk_s3::primitives::ByteStream::from_static(b""));
                    return Ok(());
                }
                let missing_object = failure.has_code("NoSuchKey")
                    || (failure.status == Some(404) && !failure.has_code("NoSuchBucket"));
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
        if !self.etag.is_empty() && !same_etag(actual, self.etag) {
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
    pub(super) async fn next_chunk(&mut self) -> Result<Option<Bytes>, IngestError> {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_s3::operation::get_object::GetObjectOutput;
    use aws_sdk_s3::primitives::ByteStream;
    use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};

    use super::super::ingest_object;
    use super::super::test_support::{Sent, clients, input, later};
    use crate::clients::Clients;

    #[tokio::test]
    async fn an_object_changed_since_listing_is_refused() {
        let (c, _) = clients(b"a\n1\n");
        let error = ingest_object(&c, &input(serde_json::json!({"etag": "\"old\""})), later())
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "ObjectChanged");
    }

    /// S3 holding `"e2"`, a shorter object than the `"e1"` the worker listed: a GET under
    /// another ETag is refused with 412, and a range past the end answers 416, as S3 does.
    fn replaced_by_a_shorter_object() -> (Clients, Sent, Arc<Mutex<Vec<Option<String>>>>) {
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        let (mut c, sent) = clients(b"");
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let record = seen.clone();
        let get = mock!(aws_sdk_s3::Client::get_object).then_compute_response(move |req| {
            record
                .lock()
                .unwrap()
                .push(req.if_match().map(str::to_owned));
            let error = |status: u16, code: &str| {
                let body = format!("<Error><Code>{code}</Code><Message>{code}</Message></Error>");
                MockResponse::Http(Response::new(
                    StatusCode::try_from(status).unwrap(),
                    SdkBody::from(body),
                ))
            };
            if req.if_match().is_some_and(|etag| etag != "\"e2\"") {
                return error(412, "PreconditionFailed");
            }
            error(416, "InvalidRange")
        });
        c.s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&get]);
        (c, sent, seen)
    }

    #[tokio::test]
    async fn a_resumed_read_of_an_object_replaced_by_a_shorter_one_is_refused() {
        let (c, sent, seen) = replaced_by_a_shorter_object();
        let checkpoint = serde_json::json!({
            "byteOffset": 4000, "nextRow": 1001, "nextLine": 1002,
            "header": ["a"], "rowsSent": 1000,
        });
        let error = ingest_object(
            &c,
            &input(serde_json::json!({"checkpoint": checkpoint})),
            later(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.error_type(), "ObjectChanged", "{error}");
        assert!(sent.lock().unwrap().is_empty());
        assert_eq!(*seen.lock().unwrap(), [Some("\"e1\"".to_owned())]);
    }

    #[tokio::test]
    async fn every_read_of_an_object_names_the_listed_etag() {
        let (c, _) = clients(b"a\n1\n");
        let get = mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|req| req.if_match() == Some("\"e1\""))
            .then_output(|| {
                GetObjectOutput::builder()
                    .e_tag("\"e1\"")
                    .body(ByteStream::from_static(b"a\n1\n"))
                    .build()
            });
        // Strict: a GET without the listed ETag matches no rule and fails the read.
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, &[&get]);
        let c = Clients { s3, ..c };
        // Given without its quotes, the ETag is still sent as S3 wants it.
        let output = ingest_object(&c, &input(serde_json::json!({"etag": "e1"})), later())
            .await
            .unwrap();
        assert_eq!(output.rows, 1);
        assert_eq!(get.num_calls(), 1);
    }
}
