//! Where each object lives under the root: s3s-fs does the reading and writing, always on a
//! stored path from [`crate::keys`] inside the bucket's directory, never on the key itself.

use std::path::{Path, PathBuf};

use s3s::dto::{ETag, HeadObjectInput, IfMatch, IfNoneMatch};
use s3s::{S3, S3Request, S3Result, s3_error};

use crate::keys;

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

/// A request carrying only its input, for calls the endpoint makes to s3s-fs itself.
pub(crate) fn bare<T>(input: T) -> S3Request<T> {
    S3Request {
        input,
        method: Default::default(),
        uri: Default::default(),
        headers: Default::default(),
        extensions: Default::default(),
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// Refuses a key S3 would refuse.
pub(crate) fn check_key(key: &str) -> S3Result<()> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "an object key cannot be empty"));
    }
    if key.len() > keys::MAX_KEY_BYTES {
        return Err(s3_error!(
            KeyTooLongError,
            "a key is at most {} bytes; this one has {}",
            keys::MAX_KEY_BYTES,
            key.len()
        ));
    }
    Ok(())
}

fn is_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Whether something already at `stored`'s path (a file where a directory must go, or a
/// directory where the file goes) keeps the object from being written there.
fn blocked(bucket_dir: &Path, stored: &str) -> bool {
    let mut path = bucket_dir.to_path_buf();
    let mut names = stored.split('/').peekable();
    while let Some(name) = names.next() {
        path.push(name);
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            return false;
        };
        let last = names.peek().is_none();
        if (last && !metadata.is_file()) || (!last && !metadata.is_dir()) {
            return true;
        }
    }
    false
}

/// s3s-fs over a root, with the keys placed safely and per-key locks.
pub(crate) struct Store {
    pub(crate) fs: s3s_fs::FileSystem,
    /// The directory s3s-fs serves; each bucket is a directory in it.
    pub(crate) root: PathBuf,
    /// s3s-fs checks `If-Match`/`If-None-Match` and then writes, and a GET opens the file and
    /// then reads its ETag: writes hold their key's lock exclusively and GETs (until their body
    /// starts) shared, so a condition and its write are one step and a GET's body and ETag
    /// always belong together, as S3 guarantees. Keys are spread over [`KEY_LOCKS`] locks, so
    /// writes to different objects seldom wait for each other.
    key_locks: Vec<tokio::sync::RwLock<()>>,
    /// Saves each object before a write replaces it, so a write finishes whole or not at all.
    pub(crate) journal: crate::journal::Journal,
}

impl Store {
    pub(crate) fn new(
        fs: s3s_fs::FileSystem,
        root: PathBuf,
        journal: crate::journal::Journal,
    ) -> Self {
        Self {
            fs,
            root,
            journal,
            key_locks: (0..KEY_LOCKS)
                .map(|_| tokio::sync::RwLock::new(()))
                .collect(),
        }
    }

    /// The lock of `bucket`/`key`.
    pub(crate) fn lock(&self, bucket: &str, key: &str) -> &tokio::sync::RwLock<()> {
        &self.key_locks[key_lock(bucket, key)]
    }

    /// The bucket's directory. s3s has checked the name already; this keeps the check
    /// that matters here, one plain directory name, whoever calls.
    pub(crate) fn bucket_dir(&self, bucket: &str) -> S3Result<PathBuf> {
        if bucket.is_empty() || bucket.starts_with('.') || bucket.contains(['/', '\\', '\0']) {
            return Err(s3_error!(InvalidBucketName));
        }
        Ok(self.root.join(bucket))
    }

    /// The bucket's directory, which must exist.
    pub(crate) fn existing_bucket(&self, bucket: &str) -> S3Result<PathBuf> {
        let dir = self.bucket_dir(bucket)?;
        if !dir.is_dir() {
            return Err(s3_error!(NoSuchBucket));
        }
        Ok(dir)
    }

    /// Where `key` is stored now (the path s3s-fs knows it by), if it exists.
    pub(crate) fn stored(&self, bucket: &str, key: &str) -> S3Result<Option<String>> {
        check_key(key)?;
        let dir = self.existing_bucket(bucket)?;
        let primary = keys::primary_path(key);
        if keys::fits(bucket, &primary) && is_file(&dir.join(&primary)) {
            return Ok(Some(primary));
        }
        let overflow = keys::overflow_path(key);
        Ok(is_file(&dir.join(&overflow)).then_some(overflow))
    }

    /// Where `key` is stored now, or `NoSuchKey`.
    pub(crate) fn existing(&self, bucket: &str, key: &str) -> S3Result<String> {
        self.stored(bucket, key)?
            .ok_or_else(|| s3_error!(NoSuchKey, "no object with this key"))
    }

    /// Where a write of `key` goes: its own path, unless that is too long for s3s-fs or
    /// blocked by another key, and then the overflow directory (with the key beside it).
    pub(crate) fn destination(&self, bucket: &str, key: &str) -> S3Result<String> {
        check_key(key)?;
        let dir = self.existing_bucket(bucket)?;
        let primary = keys::primary_path(key);
        if keys::fits(bucket, &primary) && !blocked(&dir, &primary) {
            return Ok(primary);
        }
        let overflow = keys::overflow_path(key);
        let key_file = keys::overflow_key_file(&dir, &overflow);
        if !is_file(&key_file) {
            std::fs::create_dir_all(dir.join(keys::OVERFLOW_DIR))
                .and_then(|()| {
                    // Written whole under another name first: a listing never reads half a key.
                    let partial = key_file.with_extension("key.partial");
                    std::fs::write(&partial, key.as_bytes())?;
                    std::fs::rename(&partial, &key_file)
                })
                .map_err(|e| s3_error!(InternalError, "storing a long key: {e}"))?;
        }
        Ok(overflow)
    }

    /// The ETag of the object stored at `stored`.
    pub(crate) async fn etag(&self, bucket: &str, stored: &str) -> S3Result<ETag> {
        let input = HeadObjectInput::builder()
            .bucket(bucket.to_owned())
            .key(stored.to_owned())
            .build()
            .map_err(|e| s3_error!(InternalError, "{e}"))?;
        let head = self.fs.head_object(bare(input)).await?;
        head.output
            .e_tag
            .ok_or_else(|| s3_error!(InternalError, "no ETag for {stored}"))
    }

    /// A write's `If-Match`/`If-None-Match` against the object at `current`, for a write
    /// that goes elsewhere (s3s-fs checks only the path it writes).
    pub(crate) async fn check_write(
        &self,
        bucket: &str,
        current: &str,
        if_match: Option<&IfMatch>,
        if_none_match: Option<&IfNoneMatch>,
    ) -> S3Result<()> {
        if if_none_match.is_some_and(|c| c.is_any()) {
            return Err(s3_error!(PreconditionFailed, "Object already exists"));
        }
        if let Some(expected) = if_match.and_then(|c| c.as_etag()) {
            let etag = self.etag(bucket, current).await?;
            if !etag.strong_cmp(expected) {
                return Err(s3_error!(PreconditionFailed, "ETag does not match"));
            }
        }
        Ok(())
    }

    /// A read's `If-Match` (412) and `If-None-Match` (304), checked before any range.
    pub(crate) async fn check_read(
        &self,
        bucket: &str,
        stored: &str,
        if_match: Option<&IfMatch>,
        if_none_match: Option<&IfNoneMatch>,
    ) -> S3Result<()> {
        if if_match.is_none() && if_none_match.is_none() {
            return Ok(());
        }
        let etag = self.etag(bucket, stored).await?;
        if let Some(expected) = if_match.and_then(|c| c.as_etag())
            && !etag.strong_cmp(expected)
        {
            return Err(s3_error!(PreconditionFailed, "ETag does not match"));
        }
        let none_matches = match if_none_match {
            Some(condition) => {
                condition.is_any() || condition.as_etag().is_some_and(|e| etag.weak_cmp(e))
            }
            None => false,
        };
        if none_matches {
            return Err(s3_error!(NotModified));
        }
        Ok(())
    }

    /// Removes the object stored at `stored`, and its key file if it has one. Emptied
    /// directories stay: removing one could race a write creating a file in it.
    pub(crate) fn remove(&self, bucket: &str, stored: &str) -> S3Result<()> {
        let dir = self.existing_bucket(bucket)?;
        // The body first (with it the object is gone), then its attributes and checksums:
        // left behind, they would be read as a later object's until that object's own were
        // written.
        for path in crate::journal::object_files(&self.root, bucket, stored) {
            crate::journal::remove_if_there(&path)
                .map_err(|e| s3_error!(InternalError, "removing {}: {e}", path.display()))?;
        }
        if stored.starts_with(keys::OVERFLOW_DIR) {
            let _ = std::fs::remove_file(keys::overflow_key_file(&dir, stored));
        }
        Ok(())
    }
}
