//! Object keys through the real aws-sdk-s3 client: every key S3 accepts round-trips
//! exactly (put, list, get) and stays inside its bucket; longer keys get an S3 error.

use std::collections::BTreeSet;
use std::path::Path;

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::EncodingType;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

async fn client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "secret", None, None, "test"))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

/// An endpoint over a new directory holding `buckets`.
async fn serve(buckets: &[&str]) -> (tempfile::TempDir, local_s3::RunningS3, aws_sdk_s3::Client) {
    let root = tempfile::tempdir().unwrap();
    for bucket in buckets {
        local_s3::ensure_bucket(root.path(), bucket).unwrap();
    }
    let server = local_s3::start(local_s3::S3Config::new(root.path(), "local", "secret"))
        .await
        .unwrap();
    let s3 = client(&server.endpoint_url()).await;
    (root, server, s3)
}

/// Every key in `bucket`, in the order listed, a page of `page_size` at a time.
async fn list_all(s3: &aws_sdk_s3::Client, bucket: &str, page_size: i32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(page_size)
            .encoding_type(EncodingType::Url)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        for object in page.contents() {
            assert!(
                object.e_tag().is_some(),
                "{object:?} listed without its ETag"
            );
            let listed = object.key().unwrap();
            let key = percent_encoding::percent_decode_str(listed)
                .decode_utf8()
                .unwrap();
            keys.push(key.into_owned());
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return keys;
        }
    }
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3.get_object().bucket(bucket).key(key).send().await;
    let object = object.unwrap_or_else(|e| panic!("GET {key:?}: {e:?}"));
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Files under `root` outside `bucket`'s directory, other than s3s-fs's own records.
fn files_outside(root: &Path, bucket: &str) -> Vec<String> {
    let mut outside = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path == root.join(bucket) {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
                continue;
            }
            let name = entry.file_name().into_string().unwrap();
            // s3s-fs keeps checksums, ETags and temporary files at the root, and the endpoint
            // the lock that says it is running (a finished write leaves nothing else).
            let own = dir == root
                && (name.starts_with(".bucket-")
                    || name.starts_with(".tmp.")
                    || (name.starts_with(".pending-write-") && name.ends_with(".lock")));
            if !own {
                outside.push(path.display().to_string());
            }
        }
    }
    outside
}

/// Puts every key (its body names it), then checks the listing is exactly the keys in byte
/// order, every body comes back, and nothing landed outside the bucket; then deletes them.
async fn round_trip(
    s3: &aws_sdk_s3::Client,
    root: &Path,
    keys: &BTreeSet<String>,
) -> Result<(), TestCaseError> {
    // A failed case leaves its keys behind; the next one (a shrunk one) starts clean.
    for key in list_all(s3, "rtb", 1000).await {
        s3.delete_object()
            .bucket("rtb")
            .key(key)
            .send()
            .await
            .unwrap();
    }
    for key in keys {
        let put = s3
            .put_object()
            .bucket("rtb")
            .key(key)
            .body(ByteStream::from(format!("body of {key}").into_bytes()))
            .send()
            .await;
        prop_assert!(put.is_ok(), "PUT {key:?}: {put:?}");
    }
    let listed = list_all(s3, "rtb", 2).await;
    let expected: Vec<String> = keys.iter().cloned().collect();
    prop_assert_eq!(&listed, &expected);
    for key in keys {
        prop_assert_eq!(
            get(s3, "rtb", key).await,
            format!("body of {key}").into_bytes()
        );
    }
    prop_assert_eq!(
        list_all(s3, "ingest-ledger", 1000).await,
        Vec::<String>::new()
    );
    prop_assert_eq!(files_outside(root, "rtb"), Vec::<String>::new());
    for key in keys {
        s3.delete_object()
            .bucket("rtb")
            .key(key)
            .send()
            .await
            .unwrap();
    }
    prop_assert_eq!(list_all(s3, "rtb", 1000).await, Vec::<String>::new());
    Ok(())
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

#[tokio::test]
async fn keys_that_look_like_paths_stay_in_their_bucket_and_round_trip() {
    let (root, server, s3) = serve(&["rtb", "ingest-ledger"]).await;
    let long = format!("{}/{}", "d".repeat(300), "e".repeat(700));
    let keys = set(&[
        "..",
        ".",
        "/etc/x",
        "a\0b",
        "../ingest-ledger/planted.txt",
        "a/../../escape4.txt",
        "a",
        "a/b",
        "a/",
        "a//b",
        "%2F",
        "%.long/x",
        &long,
        &"k".repeat(1024),
    ]);
    round_trip(&s3, root.path(), &keys).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_key_longer_than_s3_allows_is_refused_with_an_s3_error() {
    let (_root, server, s3) = serve(&["rtb"]).await;
    let error = s3
        .put_object()
        .bucket("rtb")
        .key("k".repeat(1025))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(400), "{error:?}");
    let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&error);
    assert_eq!(code, Some("KeyTooLongError"), "{error:?}");
    server.shutdown().await;
}

fn status<E>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    error.raw_response().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn reads_honour_if_match_before_the_range() {
    let (_root, server, s3) = serve(&["rtb"]).await;
    let put = |body: &'static [u8]| {
        s3.put_object()
            .bucket("rtb")
            .key("a.csv")
            .body(ByteStream::from_static(body))
            .send()
    };
    let old = put(b"a\n1\n2\n3\n").await.unwrap();
    let new = put(b"a\n").await.unwrap();
    // The replaced object is shorter than the range: If-Match wins, as in S3.
    let stale = s3
        .get_object()
        .bucket("rtb")
        .key("a.csv")
        .range("bytes=6-")
        .if_match(old.e_tag().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&stale), Some(412), "{stale:?}");
    let past_end = s3
        .get_object()
        .bucket("rtb")
        .key("a.csv")
        .range("bytes=6-")
        .if_match(new.e_tag().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&past_end), Some(416), "{past_end:?}");
    let unchanged = s3
        .head_object()
        .bucket("rtb")
        .key("a.csv")
        .if_none_match(new.e_tag().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&unchanged), Some(304), "{unchanged:?}");
    let current = s3
        .get_object()
        .bucket("rtb")
        .key("a.csv")
        .if_match(new.e_tag().unwrap())
        .send()
        .await
        .unwrap();
    let body = current.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"a\n");
    server.shutdown().await;
}

#[tokio::test]
async fn a_delimiter_lists_common_prefixes_a_page_at_a_time() {
    let (_root, server, s3) = serve(&["rtb"]).await;
    for key in [
        "a/1.csv",
        "a/2.csv",
        "a-b.csv",
        "b/x/1.csv",
        "c.csv",
        "../d.csv",
    ] {
        s3.put_object()
            .bucket("rtb")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let mut entries = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("rtb")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        entries.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .map(str::to_owned),
        );
        entries.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .map(str::to_owned),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    entries.sort();
    assert_eq!(entries, ["../", "a-b.csv", "a/", "b/", "c.csv"]);
    server.shutdown().await;
}

/// One path segment: the troublesome ones often, anything else sometimes.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["", ".", "..", "%", "%2F", "%.long", "a", "b.csv", "\0", "\u{7f}"])
            .prop_map(str::to_owned),
        2 => "[a-c./%\\\\ ]{1,4}",
        2 => prop::collection::vec(any::<char>(), 1..8).prop_map(|c| c.into_iter().collect()),
        1 => (200usize..400).prop_map(|n| "x".repeat(n)),
    ]
}

/// A set of keys S3 accepts: 1 to 1,024 bytes of UTF-8. aws-sdk-s3 itself refuses to
/// send a key of nothing but white space (it takes it for a missing key), so none is made.
fn key_set() -> impl Strategy<Value = BTreeSet<String>> {
    let key = prop::collection::vec(segment(), 1..5)
        .prop_map(|segments| segments.join("/"))
        .prop_filter("S3 keys are 1 to 1,024 bytes", |k| {
            !k.trim().is_empty() && k.len() <= 1024
        });
    prop::collection::btree_set(key, 1..6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_keys_round_trip_and_stay_in_their_bucket() {
    let (root, server, s3) = serve(&["rtb", "ingest-ledger"]).await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&key_set(), |keys| {
            handle.block_on(round_trip(&s3, root.path(), &keys))
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn conditional_writes_hold_for_a_key_moving_out_of_the_overflow_directory() {
    let (root, server, s3) = serve(&["rtb"]).await;
    let put = |key: &'static str, body: &'static [u8]| {
        s3.put_object()
            .bucket("rtb")
            .key(key)
            .body(ByteStream::from_static(body))
    };
    put("a/b", b"under a").send().await.unwrap();
    // `a` is a directory now, so the object `a` goes to the overflow directory.
    let first = put("a", b"first").send().await.unwrap();
    s3.delete_object()
        .bucket("rtb")
        .key("a/b")
        .send()
        .await
        .unwrap();
    std::fs::remove_dir(root.path().join("rtb/a")).unwrap();
    // The next write of `a` goes to its own path; the conditions still see the old object.
    let refused = put("a", b"second")
        .if_none_match("*")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&refused), Some(412), "{refused:?}");
    let stale = put("a", b"second")
        .if_match("\"0123\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&stale), Some(412), "{stale:?}");
    put("a", b"second")
        .if_match(first.e_tag().unwrap())
        .send()
        .await
        .unwrap();
    assert!(root.path().join("rtb/a").is_file());
    assert_eq!(list_all(&s3, "rtb", 1000).await, ["a"]);
    assert_eq!(get(&s3, "rtb", "a").await, b"second");
    server.shutdown().await;
}

#[tokio::test]
async fn requests_are_counted_by_bucket_and_operation() {
    let (_root, server, s3) = serve(&["counted", "other"]).await;
    for key in ["a.csv", "b.csv"] {
        s3.put_object()
            .bucket("counted")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    get(&s3, "counted", "a.csv").await;
    list_all(&s3, "other", 10).await;
    let counts = server.requests().snapshot();
    let count = |bucket: &str, op: &str| {
        counts
            .get(&(bucket.to_owned(), op.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(count("counted", "PutObject"), 2, "{counts:?}");
    assert_eq!(count("counted", "GetObject"), 1, "{counts:?}");
    assert_eq!(count("other", "ListObjectsV2"), 1, "{counts:?}");
    assert_eq!(counts.values().sum::<u64>(), 4, "{counts:?}");
}
