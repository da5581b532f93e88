//! Object keys to paths inside their bucket's directory and back: every key S3 accepts maps
//! to one file that never leaves the bucket, and listing maps the file back to the key.
//!
//! A key is split at `/`. A segment that is a plain file name stays as it is, so ordinary
//! keys (`dir/2024/a.csv`) are stored under their own names. Any other segment (empty, `.`,
//! `..`, one that starts with `%`, holds a control character or is too long for a file name)
//! is written as `%` followed by the segment with `%`, `.` and control characters
//! percent-encoded: `..` is `%%2E%2E`, an empty segment is `%`. A name starting with `%`
//! is therefore always an encoded segment, and decoding is exact.
//!
//! s3s-fs keeps each object's checksums and ETag in a file named after the base64 of the
//! bucket and the stored key, so a stored key must stay short; a key whose path would be too
//! long, or whose path is blocked by another key (`a` stored as a file when `a/b` arrives),
//! is stored under [`OVERFLOW_DIR`] by the SHA-256 of the key, with the key itself beside it.

use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// Bytes percent-encoded inside an encoded segment.
const SEGMENT_ESCAPES: &AsciiSet = &CONTROLS.add(b'%').add(b'.');

/// The directory (inside a bucket's) holding keys that cannot be stored under their path.
/// No key maps to it: an encoded segment always has its `.` encoded.
pub(crate) const OVERFLOW_DIR: &str = "%.long";

/// Suffix of the file beside an overflow object that holds its key.
const KEY_SUFFIX: &str = ".key";

/// Longest file name the filesystem takes (Linux's `NAME_MAX`).
const NAME_MAX: usize = 255;

/// Longest key S3 accepts, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// Appends `segment` as a file name.
fn encode_segment(segment: &str, out: &mut String) {
    let plain = !segment.is_empty()
        && segment != "."
        && segment != ".."
        && !segment.starts_with('%')
        && segment.len() <= NAME_MAX
        && !segment.chars().any(|c| c.is_ascii_control());
    if plain {
        out.push_str(segment);
    } else {
        out.push('%');
        out.extend(utf8_percent_encode(segment, SEGMENT_ESCAPES));
    }
}

/// The key's path inside its bucket, `/`-separated, every component a normal file name.
pub(crate) fn primary_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for (i, segment) in key.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        encode_segment(segment, &mut out);
    }
    out
}

/// The key a file name came from, `None` if no key maps to it.
fn decode_segment(name: &str) -> Option<String> {
    match name.strip_prefix('%') {
        None => Some(name.to_owned()),
        Some(encoded) => {
            let segment = percent_decode_str(encoded).decode_utf8().ok()?.into_owned();
            let mut again = String::new();
            encode_segment(&segment, &mut again);
            // Only the one name a segment encodes to decodes back to it.
            (again == name).then_some(segment)
        }
    }
}

/// Decodes one directory name (for walking with a prefix), as [`key_of`] does.
pub(crate) fn segment_of(name: &str) -> Option<String> {
    decode_segment(name)
}

/// The SHA-256 of the key, in hex: its file name under [`OVERFLOW_DIR`].
fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The key's path under [`OVERFLOW_DIR`].
pub(crate) fn overflow_path(key: &str) -> String {
    format!("{OVERFLOW_DIR}/{}", digest(key))
}

/// The file beside an overflow object that holds its key.
pub(crate) fn overflow_key_file(bucket_dir: &Path, stored: &str) -> PathBuf {
    bucket_dir.join(format!("{stored}{KEY_SUFFIX}"))
}

/// The key stored under the overflow file `name`, read from the file beside it.
pub(crate) fn overflow_key(overflow_dir: &Path, name: &str) -> Option<String> {
    if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let key = std::fs::read(overflow_dir.join(format!("{name}{KEY_SUFFIX}"))).ok()?;
    let key = String::from_utf8(key).ok()?;
    (digest(&key) == name).then_some(key)
}

/// Length of the base64 (no padding) of `n` bytes.
fn base64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// Whether s3s-fs can keep `stored` in `bucket`: its sidecar files, named
/// `.bucket-{b64 bucket}.object-{b64 stored}.upload-{uuid}.metadata.json`, must fit in a
/// file name, and so must each component of the path.
pub(crate) fn fits(bucket: &str, stored: &str) -> bool {
    const FIXED: usize =
        ".bucket-".len() + ".object-".len() + ".upload-".len() + 36 + ".metadata.json".len();
    FIXED + base64_len(bucket.len()) + base64_len(stored.len()) <= NAME_MAX
        && stored.split('/').all(|name| name.len() <= NAME_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a stored path, as a listing does name by name.
    fn key_of<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<String> {
        let names: Option<Vec<String>> = names.into_iter().map(segment_of).collect();
        Some(names?.join("/"))
    }

    fn round_trip(key: &str) -> String {
        let path = primary_path(key);
        assert_eq!(key_of(path.split('/')).as_deref(), Some(key), "{path}");
        path
    }

    #[test]
    fn ordinary_keys_are_stored_under_their_own_names() {
        for key in [
            "a.csv",
            "dir/2024/a b.csv",
            "é/日本.csv",
            "a..b",
            ".hidden",
            "x%",
        ] {
            assert_eq!(round_trip(key), key);
        }
    }

    #[test]
    fn dots_empty_segments_and_control_characters_become_plain_names() {
        assert_eq!(round_trip(".."), "%%2E%2E");
        assert_eq!(round_trip("."), "%%2E");
        assert_eq!(round_trip("/etc/x"), "%/etc/x");
        assert_eq!(round_trip("a//b/"), "a/%/b/%");
        assert_eq!(round_trip("a\0b"), "%a%00b");
        assert_eq!(round_trip("%2F"), "%%252F");
        assert_eq!(
            round_trip("../ingest-ledger/planted.txt"),
            "%%2E%2E/ingest-ledger/planted.txt"
        );
        let long = "x".repeat(300);
        assert!(round_trip(&long).starts_with('%'));
    }

    #[test]
    fn names_no_key_maps_to_decode_to_nothing() {
        assert_eq!(key_of(["%x"]), None);
        assert_eq!(key_of(["%.."]), None);
        assert_eq!(key_of([OVERFLOW_DIR, "abc"]), None);
        assert_eq!(key_of(["%%ZZ"]), None);
    }

    #[test]
    fn long_keys_do_not_fit_and_overflow_paths_always_do() {
        let bucket = "b".repeat(63);
        assert!(fits("src", "dir/a.csv"));
        assert!(!fits("src", &"k/".repeat(100)));
        assert!(fits(&bucket, &overflow_path(&"k".repeat(1024))));
    }
}
