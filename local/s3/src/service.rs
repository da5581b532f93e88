//! The S3 service the endpoint serves: s3s-fs, with conditional writes made atomic and
//! optional fault injection for the workflow's fault tests.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

/// Faults the endpoint injects; all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct S3Faults {
    /// Fraction (0–1) of GetObject, HeadObject, ListObjectsV2 and PutObject calls answered
    /// `500 InternalError` without being carried out.
    pub internal_errors: f64,
    /// Fraction (0–1) of GetObject bodies cut off part-way with a connection error.
    pub broken_bodies: f64,
    /// Seed of the draws (`None`: from entropy).
    pub seed: Option<u64>,
}

/// How many locks the keys are spread over.
const KEY_LOCKS: usize = 64;

/// Which of the [`KEY_LOCKS`] locks guards `bucket`/`key`.
fn key_lock(bucket: &str, key: &str) -> usize {
    use std::hash::Hasher as _;
    // Unkeyed, so every request for one key lands on the same lock.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(bucket.as_bytes());
    hasher.write_u8(b'/');
    hasher.write(key.as_bytes());
    (hasher.finish() % KEY_LOCKS as u64) as usize
}

/// s3s-fs behind per-key locks for conditional writes, and a fault injector.
pub(crate) struct LocalS3 {
    inner: Arc<s3s_fs::FileSystem>,
    /// The directory s3s-fs serves; each bucket is a directory in it.
    root: std::path::PathBuf,
    /// s3s-fs checks `If-Match`/`If-None-Match` and then writes, and a GET opens the file and
    /// then reads its ETag: writes hold their key's lock exclusively and GETs (until their body
    /// starts) shared, so a condition and its write are one step and a GET's body and ETag
    /// always belong together, as S3 guarantees. Keys are spread over [`KEY_LOCKS`] locks, so
    /// writes to different objects seldom wait for each other.
    key_locks: Arc<Vec<tokio::sync::RwLock<()>>>,
    faults: S3Faults,
    rng: Mutex<StdRng>,
}

impl LocalS3 {
    pub(crate) fn new(
        inner: s3s_fs::FileSystem,
        root: std::path::PathBuf,
        faults: S3Faults,
    ) -> Self {
        let rng = match faults.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            inner: Arc::new(inner),
            root,
            key_locks: Arc::new(
                (0..KEY_LOCKS)
                    .map(|_| tokio::sync::RwLock::new(()))
                    .collect(),
            ),
            faults,
            rng: Mutex::new(rng),
        }
    }

    fn draw(&self, probability: f64) -> bool {
        probability > 0.0
            && self
                .rng
                .lock()
                .expect("rng lock")
                .random_bool(probability.min(1.0))
    }

    fn maybe_fail(&self, operation: &str) -> S3Result<()> {
        if self.draw(self.faults.internal_errors) {
            tracing::debug!(operation, "injected InternalError");
            return Err(s3_error!(InternalError, "injected fault"));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3 for LocalS3 {
    // Forwarded unchanged.
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.inner.complete_multipart_upload(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.inner.copy_object(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.inner.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.inner.delete_objects(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.inner.list_objects(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.inner.list_parts(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.inner.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.inner.upload_part_copy(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.maybe_fail("HeadObject")?;
        self.inner.head_object(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.maybe_fail("ListObjectsV2")?;
        let bucket = req.input.bucket.clone();
        let context = (
            req.method.clone(),
            req.uri.clone(),
            req.headers.clone(),
            req.credentials.clone(),
            req.region.clone(),
            req.service.clone(),
        );
        let mut response = if req.input.delimiter.is_none() {
            if bucket.is_empty() || bucket.starts_with('.') || bucket.contains(['/', '\\']) {
                return Err(s3_error!(InvalidBucketName));
            }
            let dir = self.root.join(&bucket);
            let input = req.input;
            let output = tokio::task::spawn_blocking(move || crate::listing::page(dir, input))
                .await
                .map_err(|e| s3_error!(InternalError, "listing task ended abnormally: {e}"))??;
            S3Response::new(output)
        } else {
            self.inner.list_objects_v2(req).await?
        };
        // S3 lists every object with its ETag, and the workflow relies on it; s3s-fs leaves
        // it out, so it is taken from the object as HeadObject reports it.
        for object in response.output.contents.iter_mut().flatten() {
            if object.e_tag.is_some() {
                continue;
            }
            let Some(key) = object.key.clone() else {
                continue;
            };
            let head = S3Request {
                input: HeadObjectInput::builder()
                    .bucket(bucket.clone())
                    .key(key)
                    .build()
                    .map_err(|e| s3_error!(InternalError, "{e}"))?,
                method: context.0.clone(),
                uri: context.1.clone(),
                headers: context.2.clone(),
                extensions: Default::default(),
                credentials: context.3.clone(),
                region: context.4.clone(),
                service: context.5.clone(),
                trailing_headers: None,
            };
            if let Ok(found) = self.inner.head_object(head).await {
                object.e_tag = found.output.e_tag;
            }
        }
        Ok(response)
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.maybe_fail("PutObject")?;
        // s3s-fs renames the new file into place, then records its checksums and ETag. A
        // client that hangs up in between would cancel the handler there and leave the new
        // content with the old checksums, so the write runs to its end in a task of its own.
        let inner = Arc::clone(&self.inner);
        let locks = Arc::clone(&self.key_locks);
        let lock = key_lock(&req.input.bucket, &req.input.key);
        tokio::spawn(async move {
            let _one_at_a_time = locks[lock].write().await;
            inner.put_object(req).await
        })
        .await
        .map_err(|e| s3_error!(InternalError, "PutObject task ended abnormally: {e}"))?
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.maybe_fail("GetObject")?;
        let mut response = {
            let lock = key_lock(&req.input.bucket, &req.input.key);
            let _no_write_meanwhile = self.key_locks[lock].read().await;
            self.inner.get_object(req).await?
        };
        let length = response.output.content_length.unwrap_or(0);
        if length > 1 && self.draw(self.faults.broken_bodies) {
            let cut_at = self.rng.lock().expect("rng lock").random_range(1..length) as u64;
            if let Some(body) = response.output.body.take() {
                tracing::debug!(cut_at, "injected broken body");
                response.output.body = Some(StreamingBlob::wrap(cut_off(body, cut_at)));
            }
        }
        Ok(response)
    }
}

/// A body that ends with an error after `limit` bytes, like a reset connection.
fn cut_off(
    body: StreamingBlob,
    limit: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Sync + 'static {
    let mut sent = 0u64;
    let mut done = false;
    body.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        let left = limit.saturating_sub(sent);
        if done || (chunk.len() as u64) > left {
            done = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected: connection reset mid-body",
            ));
        }
        sent += chunk.len() as u64;
        Ok(chunk)
    })
    .take_while({
        let mut failed = false;
        move |item| {
            let go = !failed;
            failed |= item.is_err();
            futures::future::ready(go)
        }
    })
}
