//! Counts of the requests the endpoint served, by bucket and operation, for benchmarks that
//! price a run by its S3 requests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};

/// Requests served, by (bucket, operation name as s3s names it, e.g. `GetObject`); a request
/// naming no bucket counts under an empty bucket name. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounts {
    counts: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl RequestCounts {
    /// A copy of the counts so far.
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn add(&self, bucket: &str, operation: &str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((bucket.to_owned(), operation.to_owned()))
            .or_default() += 1;
    }
}

#[async_trait::async_trait]
impl S3Access for RequestCounts {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let bucket = cx.s3_path().get_bucket_name().unwrap_or("");
        self.add(bucket, cx.s3_op().name());
        // What s3s does without an access checker: a request must carry credentials.
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3s::s3_error!(AccessDenied, "Signature is required")),
        }
    }
}
