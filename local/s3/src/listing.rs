//! ListObjects and ListObjectsV2: one synchronous walk of the bucket's directory per page (in
//! key order, stopping once the page is full, when no delimiter asks for the whole listing),
//! file names decoded back to keys, and file metadata read only for the keys the page
//! returns.
//!
//! s3s-fs answers every page by walking the whole bucket with a blocking-pool round trip per
//! directory entry and per file's metadata, which takes seconds per page on a bucket of
//! 200,000 objects, and it lists the stored names rather than the keys. The answer here is
//! S3's: keys in UTF-8 byte order, keys sharing a prefix up to the delimiter rolled into one
//! common prefix, the page after the later of `continuation-token` and `start-after`, the
//! last key or common prefix returned as the next token.

use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::{
    CommonPrefix, EncodingType, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object, Timestamp,
};
use s3s::{S3Result, s3_error};

use crate::keys;

/// What `encoding-type=url` leaves as it is in a key (`/` keeps prefixes readable).
const URL_KEEPS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// The first `want` keys under `bucket_dir` that start with `prefix` and sort after `after`,
/// sorted, with their files: a walk of the directories in key order that skips the ones
/// wholly before `after` and stops once it has enough, so a page costs about its own size
/// rather than the bucket's (a page loop over 200,000 keys walked 200,000 names per page).
fn first_keys(
    bucket: &str,
    bucket_dir: &Path,
    prefix: &str,
    after: Option<&str>,
    want: usize,
) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    let overflow = bucket_dir.join(keys::OVERFLOW_DIR);
    if overflow.is_dir() {
        overflow_keys(&overflow, prefix, &mut found)?;
        found.retain(|(key, _)| after.is_none_or(|after| key.as_str() > after));
    }
    let mut walk = OrderedWalk {
        bucket,
        prefix,
        after,
        want,
        found: Vec::new(),
    };
    walk.directory(bucket_dir, "", "")?;
    found.append(&mut walk.found);
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // A key moving between its path and the overflow directory is in both for a moment.
    found.dedup_by(|a, b| a.0 == b.0);
    found.truncate(want);
    Ok(found)
}

/// A walk of a bucket's directories in key order, collecting keys until it has `want`.
struct OrderedWalk<'a> {
    bucket: &'a str,
    prefix: &'a str,
    after: Option<&'a str>,
    want: usize,
    found: Vec<(String, PathBuf)>,
}

impl OrderedWalk<'_> {
    /// Walks `dir` (whose keys start with `dir_key`); returns whether enough keys are found.
    fn directory(&mut self, dir: &Path, dir_key: &str, dir_stored: &str) -> std::io::Result<bool> {
        // (what the entry sorts as: a directory as its keys' common start, with `/`)
        let mut entries: Vec<(String, String, PathBuf, bool)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if dir_stored.is_empty() && name == keys::OVERFLOW_DIR {
                continue;
            }
            let Some(segment) = keys::segment_of(&name) else {
                continue;
            };
            let file_type = entry.file_type()?;
            if !file_type.is_dir() && !file_type.is_file() {
                continue;
            }
            let is_dir = file_type.is_dir();
            let sorts_as = format!("{dir_key}{segment}{}", if is_dir { "/" } else { "" });
            entries.push((
                sorts_as,
                format!("{dir_stored}{name}"),
                entry.path(),
                is_dir,
            ));
        }
        // Every key under a directory starts with its `key/`, and no sibling's key does, so
        // sorting siblings this way puts the keys of the whole bucket in byte order.
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, stored, path, is_dir) in entries {
            if is_dir {
                let may_hold_prefix = key.starts_with(self.prefix) || self.prefix.starts_with(&key);
                // Every key under it sorts before `after` when `after` leaves it for good.
                let wholly_before = self
                    .after
                    .is_some_and(|after| after > key.as_str() && !after.starts_with(&key));
                if may_hold_prefix
                    && !wholly_before
                    && self.directory(&path, &key, &format!("{stored}/"))?
                {
                    return Ok(true);
                }
            } else if key.starts_with(self.prefix)
                && self.after.is_none_or(|after| key.as_str() > after)
                && keys::fits(self.bucket, &stored)
            {
                self.found.push((key, path));
                if self.found.len() >= self.want {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The keys stored in the overflow directory that start with `prefix`.
fn overflow_keys(
    dir: &Path,
    prefix: &str,
    found: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !entry.file_type()?.is_file() {
            continue;
        }
        if let Some(key) = keys::overflow_key(dir, &name)
            && key.starts_with(prefix)
        {
            found.push((key, entry.path()));
        }
    }
    Ok(())
}

/// A listing request, V1 or V2.
pub(crate) struct Query {
    pub(crate) bucket: String,
    pub(crate) prefix: Option<String>,
    pub(crate) delimiter: Option<String>,
    /// The later of the continuation token and start-after (V2) or the marker (V1).
    pub(crate) after: Option<String>,
    pub(crate) max_keys: Option<i32>,
}

/// One page of a listing.
pub(crate) struct Page {
    pub(crate) objects: Vec<Object>,
    pub(crate) common_prefixes: Vec<String>,
    pub(crate) is_truncated: bool,
    /// The last key or common prefix returned, when there is more.
    pub(crate) next: Option<String>,
    pub(crate) max_keys: i32,
}

/// One page of the listing of `bucket_dir`.
pub(crate) fn page(bucket_dir: &Path, query: &Query) -> S3Result<Page> {
    if !bucket_dir.is_dir() {
        return Err(s3_error!(NoSuchBucket));
    }
    let prefix = query.prefix.as_deref().unwrap_or("");
    let delimiter = query.delimiter.as_deref().filter(|d| !d.is_empty());
    let max_keys = query.max_keys.unwrap_or(1000);
    let limit = usize::try_from(max_keys.max(0)).unwrap_or(0);
    let after = query.after.as_deref();
    // Without a delimiter a page is its first keys after the token (one more tells whether
    // it is truncated); with one, any number of keys may roll up into one entry.
    let all = match delimiter {
        None => first_keys(&query.bucket, bucket_dir, prefix, after, limit + 1),
        Some(_) => first_keys(&query.bucket, bucket_dir, prefix, None, usize::MAX),
    }
    .map_err(|e| s3_error!(InternalError, "listing {}: {e}", query.bucket))?;
    // Entries in order: a key, or the common prefix it rolls up into. Entries never go
    // backwards as keys go forwards, so "after the token" is a comparison of entries.
    // Keys under a common prefix already returned sort after it, and are skipped below.
    let first = after.map_or(0, |after| all.partition_point(|(k, _)| k.as_str() <= after));
    let mut entries: Vec<(&str, Option<&Path>)> = Vec::new();
    let mut is_truncated = false;
    for (key, path) in &all[first..] {
        let rolled = delimiter.and_then(|d| {
            let rest = &key[prefix.len()..];
            rest.find(d).map(|at| &key[..prefix.len() + at + d.len()])
        });
        let entry = rolled.unwrap_or(key);
        if after.is_some_and(|after| entry <= after)
            || (rolled.is_some() && entries.last().is_some_and(|(last, _)| *last == entry))
        {
            continue;
        }
        if entries.len() == limit {
            is_truncated = limit > 0;
            break;
        }
        entries.push((entry, rolled.is_none().then_some(path.as_path())));
    }
    let next = is_truncated
        .then(|| entries.last().map(|(entry, _)| (*entry).to_owned()))
        .flatten();
    let mut objects = Vec::with_capacity(entries.len());
    let mut common_prefixes = Vec::new();
    for (entry, path) in entries {
        let Some(path) = path else {
            common_prefixes.push(entry.to_owned());
            continue;
        };
        let metadata = match std::fs::metadata(path) {
            Ok(m) => m,
            // Deleted since the walk: no longer part of the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(s3_error!(InternalError, "{entry}: {e}")),
        };
        let modified = metadata
            .modified()
            .map_err(|e| s3_error!(InternalError, "{entry}: {e}"))?;
        objects.push(Object {
            key: Some(entry.to_owned()),
            last_modified: Some(Timestamp::from(modified)),
            size: Some(i64::try_from(metadata.len()).unwrap_or(i64::MAX)),
            ..Default::default()
        });
    }
    Ok(Page {
        objects,
        common_prefixes,
        is_truncated,
        next,
        max_keys,
    })
}

/// `value` as `encoding-type=url` returns it.
fn url(value: String, encoded: bool) -> String {
    if encoded {
        utf8_percent_encode(&value, URL_KEEPS).to_string()
    } else {
        value
    }
}

impl Page {
    fn parts(mut self, url_encoded: bool) -> (Option<Vec<Object>>, Option<Vec<CommonPrefix>>, i32) {
        for object in &mut self.objects {
            object.key = object.key.take().map(|k| url(k, url_encoded));
        }
        let count = self.objects.len() + self.common_prefixes.len();
        let prefixes: Vec<CommonPrefix> = self
            .common_prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(url(p, url_encoded)),
            })
            .collect();
        (
            (!self.objects.is_empty()).then_some(self.objects),
            (!prefixes.is_empty()).then_some(prefixes),
            i32::try_from(count).unwrap_or(i32::MAX),
        )
    }
}

/// Whether the request asked for `encoding-type=url`.
pub(crate) fn is_url(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|e| e.as_str() == EncodingType::URL)
}

/// The key a continuation token resumes after. Tokens are the hex of that key, so any key
/// fits in XML; a token that is not (one from before tokens were encoded) is the key itself.
fn token_key(token: &str) -> String {
    hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| token.to_owned())
}

/// ListObjectsV2 over `bucket_dir`.
pub(crate) fn list_v2(
    bucket_dir: &Path,
    input: ListObjectsV2Input,
) -> S3Result<ListObjectsV2Output> {
    let url_encoded = is_url(input.encoding_type.as_ref());
    let query = Query {
        bucket: input.bucket.clone(),
        prefix: input.prefix.clone(),
        delimiter: input.delimiter.clone(),
        after: match (
            input.continuation_token.as_deref().map(token_key),
            input.start_after.clone(),
        ) {
            (Some(token), Some(start)) => Some(token.max(start)),
            (token, start) => token.or(start),
        },
        max_keys: input.max_keys,
    };
    let page = page(bucket_dir, &query)?;
    let (max_keys, is_truncated, next) = (page.max_keys, page.is_truncated, page.next.clone());
    let (contents, common_prefixes, key_count) = page.parts(url_encoded);
    Ok(ListObjectsV2Output {
        key_count: Some(key_count),
        max_keys: Some(max_keys),
        is_truncated: Some(is_truncated),
        next_continuation_token: next.map(|n| hex::encode(n.as_bytes())),
        contents,
        common_prefixes,
        continuation_token: input.continuation_token,
        delimiter: input.delimiter.map(|d| url(d, url_encoded)),
        encoding_type: input.encoding_type,
        name: Some(input.bucket),
        prefix: input.prefix.map(|p| url(p, url_encoded)),
        start_after: input.start_after.map(|s| url(s, url_encoded)),
        ..Default::default()
    })
}

/// ListObjects (V1) over `bucket_dir`.
pub(crate) fn list_v1(bucket_dir: &Path, input: ListObjectsInput) -> S3Result<ListObjectsOutput> {
    let url_encoded = is_url(input.encoding_type.as_ref());
    let query = Query {
        bucket: input.bucket.clone(),
        prefix: input.prefix.clone(),
        delimiter: input.delimiter.clone(),
        after: input.marker.clone(),
        max_keys: input.max_keys,
    };
    let page = page(bucket_dir, &query)?;
    let (max_keys, is_truncated, next) = (page.max_keys, page.is_truncated, page.next.clone());
    let (contents, common_prefixes, _) = page.parts(url_encoded);
    Ok(ListObjectsOutput {
        max_keys: Some(max_keys),
        is_truncated: Some(is_truncated),
        next_marker: next.map(|n| url(n, url_encoded)),
        contents,
        common_prefixes,
        marker: input.marker.map(|m| url(m, url_encoded)),
        delimiter: input.delimiter.map(|d| url(d, url_encoded)),
        encoding_type: input.encoding_type,
        name: Some(input.bucket),
        prefix: input.prefix.map(|p| url(p, url_encoded)),
        ..Default::default()
    })
}

/// A ListObjects request of either version, answered from a bucket's folder.
pub(crate) trait Listing: Send + 'static {
    /// The answer.
    type Output: Send + 'static;
    /// The bucket listed.
    fn bucket(&self) -> &str;
    /// Whether keys are answered URL-encoded (`encoding-type=url`).
    fn url_encoded(&self) -> bool;
    /// Lists the bucket stored in `bucket_dir`.
    fn list(self, bucket_dir: &Path) -> S3Result<Self::Output>;
    /// The objects of an answer.
    fn contents(output: &mut Self::Output) -> Option<&mut Vec<Object>>;
}

impl Listing for ListObjectsInput {
    type Output = ListObjectsOutput;
    fn bucket(&self) -> &str {
        &self.bucket
    }
    fn url_encoded(&self) -> bool {
        is_url(self.encoding_type.as_ref())
    }
    fn list(self, bucket_dir: &Path) -> S3Result<Self::Output> {
        list_v1(bucket_dir, self)
    }
    fn contents(output: &mut Self::Output) -> Option<&mut Vec<Object>> {
        output.contents.as_mut()
    }
}

impl Listing for ListObjectsV2Input {
    type Output = ListObjectsV2Output;
    fn bucket(&self) -> &str {
        &self.bucket
    }
    fn url_encoded(&self) -> bool {
        is_url(self.encoding_type.as_ref())
    }
    fn list(self, bucket_dir: &Path) -> S3Result<Self::Output> {
        list_v2(bucket_dir, self)
    }
    fn contents(output: &mut Self::Output) -> Option<&mut Vec<Object>> {
        output.contents.as_mut()
    }
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
        input.set_continuation_token(after.map(|a| hex::encode(a.as_bytes())));
        input.set_max_keys(Some(max));
        let input = input.build().unwrap();
        list_v2(dir, input).unwrap()
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
        assert_eq!(
            first.next_continuation_token.as_deref(),
            Some("612f322e637376")
        );
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
    fn the_ordered_walk_pages_exactly_as_the_whole_listing_does() {
        let keys = [
            "b.csv",
            "a/2.csv",
            "a/10.csv",
            "a-b.csv",
            "a/x/1.csv",
            "a/x-y.csv",
            "a0",
            "p/q/r/s.csv",
            "p/q-r.csv",
            "p/q/r-s.csv",
            "z/1",
            "z/2",
            "z/3",
        ];
        let dir = bucket(&keys);
        let mut everything: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        everything.sort();
        for prefix in [
            None,
            Some("a"),
            Some("a/"),
            Some("p/q"),
            Some("z/"),
            Some("nothing"),
        ] {
            for page_size in [1, 2, 3, 1000] {
                let mut listed = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let page = list(dir.path(), prefix, after.as_deref(), page_size);
                    listed.extend(names(&page).into_iter().map(str::to_owned));
                    match page.next_continuation_token {
                        Some(token) => after = Some(token_key(&token)),
                        None => break,
                    }
                }
                let expected: Vec<String> = everything
                    .iter()
                    .filter(|k| k.starts_with(prefix.unwrap_or("")))
                    .cloned()
                    .collect();
                assert_eq!(listed, expected, "prefix {prefix:?}, pages of {page_size}");
            }
        }
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
        let error = list_v2(&dir.path().join("missing"), input).unwrap_err();
        assert_eq!(error.code().as_str(), "NoSuchBucket");
    }

    fn list_with(
        dir: &Path,
        delimiter: &str,
        after: Option<&str>,
        max: i32,
    ) -> ListObjectsV2Output {
        let mut input = ListObjectsV2Input::builder();
        input.set_bucket("b".to_owned());
        input.set_delimiter(Some(delimiter.to_owned()));
        input.set_continuation_token(after.map(|a| hex::encode(a.as_bytes())));
        input.set_max_keys(Some(max));
        list_v2(dir, input.build().unwrap()).unwrap()
    }

    fn prefixes(output: &ListObjectsV2Output) -> Vec<&str> {
        output
            .common_prefixes
            .iter()
            .flatten()
            .filter_map(|p| p.prefix.as_deref())
            .collect()
    }

    #[test]
    fn a_delimiter_rolls_keys_up_into_common_prefixes_across_pages() {
        let dir = bucket(&["a/1.csv", "a/2.csv", "a-b.csv", "b/x/1.csv", "c.csv"]);
        let first = list_with(dir.path(), "/", None, 2);
        assert_eq!(names(&first), ["a-b.csv"]);
        assert_eq!(prefixes(&first), ["a/"]);
        assert_eq!(first.next_continuation_token.as_deref(), Some("612f"));
        let second = list_with(dir.path(), "/", Some("a/"), 2);
        assert_eq!(prefixes(&second), ["b/"]);
        assert_eq!(names(&second), ["c.csv"]);
        assert_eq!(second.is_truncated, Some(false));
        assert_eq!(second.key_count, Some(2));
    }

    #[test]
    fn stored_names_list_as_their_keys_and_stray_names_not_at_all() {
        let dir = bucket(&[
            "%%2E%2E/x.csv",
            "%/etc/x",
            "a/%a%00b",
            "%stray",
            "%.long/zz",
        ]);
        let listed = list(dir.path(), None, None, 1000);
        // `.` (0x2e) sorts before `/` (0x2f).
        assert_eq!(names(&listed), ["../x.csv", "/etc/x", "a/a\0b"]);
    }

    #[test]
    fn url_encoding_percent_encodes_keys_but_not_slashes() {
        let dir = bucket(&["a b/%c%01"]);
        let mut input = ListObjectsV2Input::builder();
        input.set_bucket("b".to_owned());
        input.set_encoding_type(Some(EncodingType::from_static(EncodingType::URL)));
        let listed = list_v2(dir.path(), input.build().unwrap()).unwrap();
        assert_eq!(names(&listed), ["a%20b/c%01"]);
    }
}
