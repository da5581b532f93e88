//! The S3 service the endpoint serves: s3s-fs on safely placed keys, with conditional writes
//! made atomic, conditional reads, and optional fault injection for the workflow's fault tests.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use crate::listing::Listing;
use crate::store::Store;

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

/// s3s-fs behind safe key placement and per-key locks, and a fault injector.
pub(crate) struct LocalS3 {
    store: Arc<Store>,
    faults: S3Faults,
    rng: Mutex<StdRng>,
}

impl LocalS3 {
    pub(crate) fn new(
        inner: s3s_fs::FileSystem,
        root: std::path::PathBuf,
        journal: crate::journal::Journal,
        faults: S3Faults,
    ) -> Self {
        let rng = match faults.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            store: Arc::new(Store::new(inner, root, journal)),
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

    /// Fills in each listed object's ETag: S3 lists every object with it, the workflow relies
    /// on it, and s3s-fs keeps it beside the object.
    /// A listing of `bucket` (either version of ListObjects), read off the disk away from the
    /// async threads, with each object's ETag as s3s-fs recorded it.
    async fn listed<I: Listing>(
        &self,
        operation: &str,
        input: I,
    ) -> S3Result<S3Response<I::Output>> {
        self.maybe_fail(operation)?;
        let bucket = input.bucket().to_owned();
        let dir = self.store.bucket_dir(&bucket)?;
        let url_encoded = input.url_encoded();
        let mut output = tokio::task::spawn_blocking(move || input.list(&dir))
            .await
            .map_err(|e| s3_error!(InternalError, "listing task ended abnormally: {e}"))??;
        if let Some(objects) = I::contents(&mut output) {
            self.fill_etags(&bucket, objects, url_encoded).await;
        }
        Ok(S3Response::new(output))
    }

    async fn fill_etags(&self, bucket: &str, objects: &mut [Object], url_encoded: bool) {
        for object in objects {
            let Some(listed) = object.key.as_deref() else {
                continue;
            };
            let key = if url_encoded {
                percent_encoding::percent_decode_str(listed)
                    .decode_utf8_lossy()
                    .into_owned()
            } else {
                listed.to_owned()
            };
            if let Ok(Some(stored)) = self.store.stored(bucket, &key)
                && let Ok(etag) = self.store.etag(bucket, &stored).await
            {
                object.e_tag = Some(etag);
            }
        }
    }
}

/// The source of a copy, as stored.
fn stored_source(store: &Store, source: &CopySource) -> S3Result<CopySource> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok(CopySource::Bucket {
            bucket: bucket.clone(),
            key: store.existing(bucket, key)?.into(),
            version_id: version_id.clone(),
        }),
        _ => Err(s3_error!(NotImplemented)),
    }
}

/// Writes `key` through `write` at its destination, moving it there from wherever it is
/// stored now, under the key's lock. `conditions` are the write's If-Match/If-None-Match,
/// checked here when the object moves (s3s-fs checks only its destination).
async fn write_key<T, F, Fut>(
    store: &Store,
    bucket: &str,
    key: &str,
    conditions: (Option<IfMatch>, Option<IfNoneMatch>),
    write: F,
) -> S3Result<T>
where
    F: FnOnce(String, bool) -> Fut,
    Fut: std::future::Future<Output = S3Result<T>>,
{
    let _one_at_a_time = store.lock(bucket, key).write().await;
    let current = store.stored(bucket, key)?;
    let destination = store.destination(bucket, key)?;
    let moving = current.filter(|c| *c != destination);
    if let Some(current) = &moving {
        store
            .check_write(
                bucket,
                current,
                conditions.0.as_ref(),
                conditions.1.as_ref(),
            )
            .await?;
    }
    let pending = store
        .journal
        .begin(bucket, &destination)
        .map_err(|e| s3_error!(InternalError, "saving {destination} before writing it: {e}"))?;
    let output = match write(destination.clone(), moving.is_some()).await {
        Ok(output) => {
            pending.finish().map_err(|e| {
                s3_error!(InternalError, "finishing the write of {destination}: {e}")
            })?;
            output
        }
        Err(error) => {
            if let Err(e) = pending.abandon() {
                tracing::error!(%destination, error = %e, "could not put an object back after a failed write");
            }
            return Err(error);
        }
    };
    if let Some(old) = moving {
        store.remove(bucket, &old)?;
    }
    Ok(output)
}

#[async_trait::async_trait]
impl S3 for LocalS3 {
    // Forwarded unchanged: they name no key.
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.store.fs.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store.fs.delete_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.store.fs.get_bucket_location(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store.fs.head_bucket(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.store.fs.list_buckets(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.store.fs.upload_part(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.store.fs.list_parts(req).await
    }

    // Every key below reaches s3s-fs as the path `keys` stores it under.
    async fn abort_multipart_upload(
        &self,
        mut req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        req.input.key = self.store.destination(&req.input.bucket, &req.input.key)?;
        self.store.fs.abort_multipart_upload(req).await
    }

    async fn create_multipart_upload(
        &self,
        mut req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let key = req.input.key.clone();
        // The upload's attributes are kept under the destination it has now; completing
        // the upload looks for them there.
        req.input.key = self.store.destination(&req.input.bucket, &key)?;
        let mut response = self.store.fs.create_multipart_upload(req).await?;
        response.output.key = Some(key);
        Ok(response)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let store = Arc::clone(&self.store);
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let conditions = (req.input.if_match.clone(), req.input.if_none_match.clone());
        // Like PutObject: once begun, the write runs to its end even if the client leaves.
        tokio::spawn(async move {
            let written = write_key(&store, &bucket, &key, conditions, |to, moving| {
                let mut req = req;
                req.input.key = to;
                if moving {
                    req.input.if_match = None;
                    req.input.if_none_match = None;
                }
                let store = Arc::clone(&store);
                async move {
                    let mut response = store.fs.complete_multipart_upload(req).await?;
                    let done = response.output.future.take();
                    let mut finished = match done {
                        Some(future) => future.await?,
                        None => std::mem::take(&mut response.output),
                    };
                    finished.future = None;
                    response.output = finished;
                    Ok(response)
                }
            })
            .await?;
            let mut response = written;
            response.output.key = Some(key);
            Ok(response)
        })
        .await
        .map_err(|e| {
            s3_error!(
                InternalError,
                "CompleteMultipartUpload ended abnormally: {e}"
            )
        })?
    }

    async fn copy_object(
        &self,
        mut req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        req.input.copy_source = stored_source(&self.store, &req.input.copy_source)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        write_key(&self.store, &bucket, &key, (None, None), |to, _| {
            req.input.key = to;
            self.store.fs.copy_object(req)
        })
        .await
    }

    async fn upload_part_copy(
        &self,
        mut req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        req.input.copy_source = stored_source(&self.store, &req.input.copy_source)?;
        self.store.fs.upload_part_copy(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (&req.input.bucket, &req.input.key);
        let _one_at_a_time = self.store.lock(bucket, key).write().await;
        // Deleting a key that does not exist succeeds, as in S3.
        if let Some(stored) = self.store.stored(bucket, key)? {
            self.store.remove(bucket, &stored)?;
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let bucket = &req.input.bucket;
        self.store.existing_bucket(bucket)?;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in &req.input.delete.objects {
            let key = &object.key;
            let _one_at_a_time = self.store.lock(bucket, key).write().await;
            let outcome = self
                .store
                .stored(bucket, key)
                .and_then(|stored| stored.map_or(Ok(()), |s| self.store.remove(bucket, &s)));
            match outcome {
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(key.clone()),
                    version_id: object.version_id.clone(),
                    ..Default::default()
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(key.clone()),
                    message: e.message().map(str::to_owned),
                    ..Default::default()
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        mut req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.maybe_fail("HeadObject")?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let _no_write_meanwhile = self.store.lock(&bucket, &key).read().await;
        let stored = self.store.existing(&bucket, &key)?;
        self.store
            .check_read(
                &bucket,
                &stored,
                req.input.if_match.as_ref(),
                req.input.if_none_match.as_ref(),
            )
            .await?;
        req.input.key = stored;
        self.store.fs.head_object(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.listed("ListObjects", req.input).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.listed("ListObjectsV2", req.input).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.maybe_fail("PutObject")?;
        // s3s-fs renames the new file into place, then records its checksums and ETag. A
        // client that hangs up in between would cancel the handler there and leave the new
        // content with the old checksums, so the write runs to its end in a task of its own.
        let store = Arc::clone(&self.store);
        tokio::spawn(async move {
            let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
            let conditions = (req.input.if_match.clone(), req.input.if_none_match.clone());
            write_key(&store, &bucket, &key, conditions, |to, moving| {
                let mut req = req;
                req.input.key = to;
                if moving {
                    req.input.if_match = None;
                    req.input.if_none_match = None;
                }
                store.fs.put_object(req)
            })
            .await
        })
        .await
        .map_err(|e| s3_error!(InternalError, "PutObject task ended abnormally: {e}"))?
    }

    async fn get_object(
        &self,
        mut req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.maybe_fail("GetObject")?;
        let mut response = {
            let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
            let _no_write_meanwhile = self.store.lock(&bucket, &key).read().await;
            let stored = self.store.existing(&bucket, &key)?;
            // Conditions come before the range, as in S3: a changed object is a 412 even
            // where the range would be past its end.
            self.store
                .check_read(
                    &bucket,
                    &stored,
                    req.input.if_match.as_ref(),
                    req.input.if_none_match.as_ref(),
                )
                .await?;
            req.input.key = stored;
            self.store.fs.get_object(req).await?
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
