//! ListObjectsV2 without a delimiter: one synchronous walk of the bucket's directory per page,
//! and file metadata read only for the keys the page returns.
//!
//! s3s-fs answers every page by walking the whole bucket with a blocking-pool round trip per
//! directory entry and per file's metadata, which takes seconds per page on a bucket of
//! 200,000 objects. The answer here is the same: keys in UTF-8 byte order, the page after
//! the later of `continuation-token` and `start-after`, the last key returned as the next
//! token.

use std::path::{Path, PathBuf};

use s3s::dto::{ListObjectsV2Input, ListObjectsV2Output, Object, Timestamp};
use s3s::{S3Result, s3_error};

/// The keys under `bucket_dir` that start with `prefix`, sorted. Names that are not UTF-8
/// cannot be keys and are left out, as s3s-fs leaves them out.
fn keys(bucket_dir: &Path, prefix: &str) -> std::io::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut dirs = vec![(bucket_dir.to_path_buf(), String::new())];
    while let Some((dir, dir_key)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let key = format!("{dir_key}{name}");
            if entry.file_type()?.is_dir() {
                // Only directories that can hold a key with the prefix are walked.
                let as_prefix = format!("{key}/");
                if as_prefix.starts_with(prefix) || prefix.starts_with(&as_prefix) {
                    dirs.push((entry.path(), as_prefix));
                }
            } else if key.starts_with(prefix) {
                keys.push(key);
            }
        }
    }
    keys.sort_unstable();
    Ok(keys)
}

/// One page of the listing of `bucket_dir`, as ListObjectsV2 without a delimiter answers it.
pub(crate) fn page(
    bucket_dir: PathBuf,
    input: ListObjectsV2Input,
) -> S3Result<ListObjectsV2Output> {
    if !bucket_dir.is_dir() {
        return Err(s3_error!(NoSuchBucket));
    }
    let prefix = input.prefix.as_deref().unwrap_or("");
    let all = keys(&bucket_dir, prefix)
        .map_err(|e| s3_error!(InternalError, "listing {}: {e}", input.bucket))?;
    let max_keys = input.max_keys.unwrap_or(1000);
    let limit = usize::try_from(max_keys.max(0)).unwrap_or(0);
    let after = match (
        input.continuation_token.as_deref(),
        input.start_after.as_deref(),
    ) {
        (Some(token), Some(start)) => Some(token.max(start)),
        (token, start) => token.or(start),
    };
    let first = after.map_or(0, |after| all.partition_point(|k| k.as_str() <= after));
    let rest = &all[first..];
    let taken = &rest[..limit.min(rest.len())];
    let mut contents = Vec::with_capacity(taken.len());
    for key in taken {
        let metadata = match std::fs::metadata(bucket_dir.join(key)) {
            Ok(m) => m,
            // Deleted since the walk: no longer part of the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(s3_error!(InternalError, "{key}: {e}")),
        };
        let modified = metadata
            .modified()
            .map_err(|e| s3_error!(InternalError, "{key}: {e}"))?;
        contents.push(Object {
            key: Some(key.clone()),
            last_modified: Some(Timestamp::from(modified)),
            size: Some(i64::try_from(metadata.len()).unwrap_or(i64::MAX)),
            ..Default::default()
        });
    }
    let is_truncated = limit > 0 && rest.len() > taken.len();
    Ok(ListObjectsV2Output {
        key_count: Some(i32::try_from(contents.len()).unwrap_or(i32::MAX)),
        max_keys: Some(max_keys),
        is_truncated: Some(is_truncated),
        next_continuation_token: is_truncated.then(|| taken.last().cloned()).flatten(),
        contents: (!contents.is_empty()).then_some(contents),
        continuation_token: input.continuation_token,
        encoding_type: input.encoding_type,
        name: Some(input.bucket),
        prefix: input.prefix,
        start_after: input.start_after,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(keys: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for key in keys {
            let path = dir.path().join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, key.as_bytes()).unwrap();
        }
        dir
    }

    fn list(
        dir: &Path,
        prefix: Option<&str>,
        after: Option<&str>,
        max: i32,
    ) -> ListObjectsV2Output {
        let mut input = ListObjectsV2Input::builder();
        input.set_bucket("b".to_owned());
        input.set_prefix(prefix.map(str::to_owned));
        input.set_continuation_token(after.map(str::to_owned));
        input.set_max_keys(Some(max));
        let input = input.build().unwrap();
        page(dir.to_path_buf(), input).unwrap()
    }

    fn names(output: &ListObjectsV2Output) -> Vec<&str> {
        output
            .contents
            .iter()
            .flatten()
            .filter_map(|o| o.key.as_deref())
            .collect()
    }

    #[test]
    fn keys_come_in_byte_order_across_directories_page_by_page() {
        let dir = bucket(&["b.csv", "a/2.csv", "a/10.csv", "a-b.csv", "a/x/1.csv"]);
        let first = list(dir.path(), None, None, 3);
        // '-' (0x2d) sorts before '/' (0x2f), so "a-b.csv" comes before "a/…".
        assert_eq!(names(&first), ["a-b.csv", "a/10.csv", "a/2.csv"]);
        assert_eq!(first.is_truncated, Some(true));
        assert_eq!(first.next_continuation_token.as_deref(), Some("a/2.csv"));
        let second = list(dir.path(), None, Some("a/2.csv"), 3);
        assert_eq!(names(&second), ["a/x/1.csv", "b.csv"]);
        assert_eq!(second.is_truncated, Some(false));
        assert_eq!(second.next_continuation_token, None);
        assert_eq!(second.key_count, Some(2));
        let sizes: Vec<i64> = second
            .contents
            .iter()
            .flatten()
            .filter_map(|o| o.size)
            .collect();
        assert_eq!(sizes, [9, 5]);
    }

    #[test]
    fn a_prefix_keeps_only_its_keys_and_may_end_inside_a_name() {
        let dir = bucket(&[
            "logs/2024/a.csv",
            "logs/2025/b.csv",
            "logsx.csv",
            "other.csv",
        ]);
        assert_eq!(
            names(&list(dir.path(), Some("logs/2025"), None, 1000)),
            ["logs/2025/b.csv"]
        );
        assert_eq!(
            names(&list(dir.path(), Some("logs"), None, 1000)),
            ["logs/2024/a.csv", "logs/2025/b.csv", "logsx.csv"]
        );
        assert_eq!(
            names(&list(dir.path(), Some("nothing"), None, 1000)),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_missing_bucket_is_no_such_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let input = ListObjectsV2Input::builder()
            .bucket("b".to_owned())
            .build()
            .unwrap();
        let error = page(dir.path().join("missing"), input).unwrap_err();
        assert_eq!(error.code().as_str(), "NoSuchBucket");
    }
}
