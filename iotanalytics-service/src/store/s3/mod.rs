//! The S3 backend: everything the service keeps, in one bucket under a prefix, so that the
//! service can run as many stateless Lambda instances at once.
//!
//! ```text
//! PREFIX catalog/{channels,datastores,pipelines,datasets}/NAME.json   one object per resource
//!        schemas/DATASTORE.json                                        attributes seen, typed
//!        channels/NAME/dt=YYYY-MM-DD/MILLIS-UUID.jsonl                 raw payloads
//!        datastores/NAME/dt=YYYY-MM-DD/MILLIS-UUID.jsonl               pipeline output
//!        results/DATASET/VERSION.csv                                   dataset contents (DataFusion)
//! ```
//! Every catalog write is conditional (`If-None-Match: *` to create, `If-Match` to change), so
//! of two concurrent writers exactly one wins. A `BatchPutMessage` is answered once its objects
//! are stored. Datastore objects are partitioned by datastore, then day, so Athena prunes.

mod catalog;
mod messages;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::error::Error;
#[cfg(feature = "lambda-host")]
use crate::glue::GlueTables;
use crate::validate::AttrType;

/// How long a channel found to exist, or a datastore's schema, is trusted without reading it
/// again. Other instances' deletions and schema changes are seen after at most this long.
const CACHE_FOR: Duration = Duration::from_secs(2);

/// How long a presigned dataset content URL stays valid.
const PRESIGNED_FOR: Duration = Duration::from_secs(3600);

/// A datastore's attributes as this instance last read or wrote them, and when.
type KnownSchema = (Vec<(String, AttrType)>, Instant);

/// Where in S3 the service keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix: empty or ending with `/`.
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket` or `s3://bucket/prefix` (a missing trailing `/` is added).
    pub fn parse(uri: &str) -> Result<Self, Error> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| {
            Error::Config(format!("storage location {uri:?} must start with s3://"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Config(format!(
                "storage location {uri:?} names no bucket"
            )));
        }
        let mut prefix = prefix.to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix,
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The service's state in S3.
pub struct S3Backend {
    client: aws_sdk_s3::Client,
    location: S3Location,
    #[cfg(feature = "lambda-host")]
    glue: Option<GlueTables>,
    channels_seen: Mutex<HashMap<String, Instant>>,
    schemas: Mutex<HashMap<String, KnownSchema>>,
}

impl S3Backend {
    /// A backend over `location`.
    pub fn new(client: aws_sdk_s3::Client, location: S3Location) -> Self {
        Self {
            client,
            location,
            #[cfg(feature = "lambda-host")]
            glue: None,
            channels_seen: Mutex::new(HashMap::new()),
            schemas: Mutex::new(HashMap::new()),
        }
    }

    /// The same backend declaring every datastore's schema change to its Glue table, so that
    /// Athena can query it.
    #[cfg(feature = "lambda-host")]
    pub fn with_glue_tables(self, glue: GlueTables) -> Self {
        Self {
            glue: Some(glue),
            ..self
        }
    }

    /// The bucket and prefix.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.location.prefix)
    }

    /// An object's content and the ETag it was read with; `None` when there is none.
    async fn get_versioned(&self, key: &str) -> Result<Option<(bytes::Bytes, String)>, Error> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.location.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match classify("GetObject", key, e) {
                    S3Failure::NotFound | S3Failure::ConditionFailed => Ok(None),
                    S3Failure::Other(e) => Err(e),
                };
            }
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::InternalFailure(format!("reading {key}: {e}")))?
            .into_bytes();
        Ok(Some((bytes, etag)))
    }

    /// Deletes an object; one that is not there is no error, as in S3.
    async fn delete_key(&self, key: &str) -> Result<(), Error> {
        self.client
            .delete_object()
            .bucket(&self.location.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_failure("DeleteObject", key, e))
    }

    /// A time-limited GET URL of an object, for `dataURI`.
    pub async fn presign(&self, bucket: &str, key: &str) -> Result<String, Error> {
        let config = PresigningConfig::expires_in(PRESIGNED_FOR)
            .map_err(|e| Error::InternalFailure(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_failure("presign", key, e))?;
        Ok(request.uri().to_owned())
    }

    /// The presigned URL of a dataset content written by DataFusion.
    pub async fn result_uri(&self, dataset: &str, version: &str) -> Result<String, Error> {
        let key = self.result_key(dataset, version);
        self.presign(&self.location.bucket.clone(), &key).await
    }

    fn result_key(&self, dataset: &str, version: &str) -> String {
        self.key(&format!("results/{dataset}/{version}.csv"))
    }

    pub(super) async fn save_result(
        &self,
        dataset: &str,
        version: &str,
        file: &std::path::Path,
    ) -> Result<(), Error> {
        let key = self.result_key(dataset, version);
        let body = aws_sdk_s3::primitives::ByteStream::from_path(file)
            .await
            .map_err(|e| Error::InternalFailure(format!("reading the query result: {e}")))?;
        self.client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&key)
            .content_type("text/csv")
            .body(body)
            .send()
            .await
            .map_err(|e| s3_failure("PutObject", &key, e))?;
        let _ = std::fs::remove_file(file);
        Ok(())
    }

    pub(super) async fn read_result(
        &self,
        dataset: &str,
        version: &str,
        result: Option<&str>,
    ) -> Result<bytes::Bytes, Error> {
        let (bucket, key) = match result {
            Some(uri) => {
                let (bucket, key) = uri
                    .strip_prefix("s3://")
                    .and_then(|r| r.split_once('/'))
                    .ok_or_else(|| {
                        Error::InternalFailure(format!("unusable result location {uri}"))
                    })?;
                (bucket.to_owned(), key.to_owned())
            }
            None => (
                self.location.bucket.clone(),
                self.result_key(dataset, version),
            ),
        };
        let out = self
            .client
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_failure("GetObject", &key, e))?;
        Ok(out
            .body
            .collect()
            .await
            .map_err(|e| Error::InternalFailure(format!("reading {key}: {e}")))?
            .into_bytes())
    }

    pub(super) async fn delete_results(&self, dataset: &str, versions: &[String]) {
        for version in versions {
            let key = self.result_key(dataset, version);
            if let Err(error) = self.delete_key(&key).await {
                tracing::warn!(key, %error, "dataset content not deleted");
            }
        }
    }
}

/// What an S3 call's failure means to the service.
pub(crate) enum S3Failure {
    /// 404 / NoSuchKey.
    NotFound,
    /// 412, or 409 from a concurrent conditional write: another writer won.
    ConditionFailed,
    /// Anything else, as the service's error.
    Other(Error),
}

pub(crate) fn classify<E>(operation: &str, key: &str, e: SdkError<E, HttpResponse>) -> S3Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_owned);
    match (status, code.as_deref()) {
        (Some(404), _) | (_, Some("NoSuchKey" | "NotFound")) => S3Failure::NotFound,
        (Some(412 | 409), _) | (_, Some("PreconditionFailed" | "ConditionalRequestConflict")) => {
            S3Failure::ConditionFailed
        }
        (Some(503), _) | (_, Some("SlowDown")) => S3Failure::Other(Error::Throttling(format!(
            "The service's storage is throttling ({operation} {key}); retry later"
        ))),
        _ => S3Failure::Other(Error::InternalFailure(format!(
            "The service's storage failed ({operation} {key}): {}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        ))),
    }
}

/// An S3 failure as the service's error, whatever it was.
pub(crate) fn s3_failure<E>(operation: &str, key: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(operation, key, e) {
        S3Failure::Other(e) => e,
        S3Failure::NotFound => {
            Error::InternalFailure(format!("The service's storage has no {key} ({operation})"))
        }
        S3Failure::ConditionFailed => Error::InternalFailure(format!(
            "A concurrent change of {key} won ({operation}); retry"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_and_without_a_prefix() {
        let l = S3Location::parse("s3://bucket/some/prefix").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("bucket", "some/prefix/")
        );
        let l = S3Location::parse("s3://bucket").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bucket", ""));
        assert!(S3Location::parse("bucket/prefix").is_err());
        assert!(S3Location::parse("s3:///prefix").is_err());
    }
}
