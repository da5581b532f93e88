//! The embedded S3 endpoint through the real aws-sdk-s3 client.

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

async fn client(endpoint: &str, secret: &str) -> aws_sdk_s3::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", secret, None, None, "test"))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

/// An endpoint over a new directory holding `bucket`, with the secret `secret`.
async fn serve(bucket: &str) -> (tempfile::TempDir, local_s3::RunningS3) {
    let root = tempfile::tempdir().unwrap();
    local_s3::ensure_bucket(root.path(), bucket).unwrap();
    let server = local_s3::start(local_s3::S3Config::new(root.path(), "local", "secret"))
        .await
        .unwrap();
    (root, server)
}

#[tokio::test]
async fn objects_list_in_pages_and_read_by_range() {
    let (_root, server) = serve("src").await;
    let s3 = client(&server.endpoint_url(), "secret").await;
    for i in 0..5 {
        s3.put_object()
            .bucket("src")
            .key(format!("dir/{i}.csv"))
            .body(ByteStream::from(format!("a,b\n{i},x\n").into_bytes()))
            .send()
            .await
            .unwrap();
    }
    let mut token = None;
    let mut keys = Vec::new();
    let mut pages = 0;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("src")
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        keys.extend(
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
    assert_eq!(pages, 3);
    assert_eq!(keys.len(), 5);
    let ranged = s3
        .get_object()
        .bucket("src")
        .key("dir/3.csv")
        .range("bytes=4-")
        .send()
        .await
        .unwrap();
    assert!(ranged.e_tag().is_some());
    let body = ranged.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"3,x\n");
    server.shutdown().await;
}

#[tokio::test]
async fn requests_signed_with_another_secret_are_refused() {
    let (_root, server) = serve("src").await;
    let s3 = client(&server.endpoint_url(), "wrong").await;
    let error = s3.list_objects_v2().bucket("src").send().await.unwrap_err();
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(403), "{error:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_conditional_writes_to_one_key_let_exactly_one_through() {
    let (_root, server) = serve("ledger").await;
    let s3 = client(&server.endpoint_url(), "secret").await;
    // Creates race on each of 4 keys, then updates race on the ETag each create left.
    let create = |key: String, writer: usize| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket("ledger")
                .key(key)
                .if_none_match("*")
                .body(ByteStream::from(
                    format!("{{\"writer\":{writer}}}").into_bytes(),
                ))
                .send()
                .await
        }
    };
    let stored_etag = |key: String| {
        let s3 = s3.clone();
        async move {
            let object = s3.get_object().bucket("ledger").key(key).send().await;
            object.unwrap().e_tag().map(str::to_owned)
        }
    };
    let creates = futures::future::join_all(
        (0..32).map(|writer| create(format!("objects/{}.json", writer % 4), writer)),
    )
    .await;
    let created: Vec<_> = creates.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(created.len(), 4, "one create per key");
    for key in 0..4 {
        let key = format!("objects/{key}.json");
        let etag = stored_etag(key.clone()).await.unwrap();
        let updates = futures::future::join_all((0..8).map(|writer| {
            let s3 = s3.clone();
            let (key, etag) = (key.clone(), etag.clone());
            async move {
                s3.put_object()
                    .bucket("ledger")
                    .key(key)
                    .if_match(etag)
                    .body(ByteStream::from(
                        format!("{{\"update\":{writer}}}").into_bytes(),
                    ))
                    .send()
                    .await
            }
        }))
        .await;
        let through: Vec<_> = updates.iter().filter(|r| r.is_ok()).collect();
        assert_eq!(through.len(), 1, "{key}: one update per ETag");
        let refused = updates
            .iter()
            .filter_map(|r| r.as_ref().err())
            .filter(|e| e.raw_response().is_some_and(|r| r.status().as_u16() == 412))
            .count();
        assert_eq!(refused, 7, "{key}: the others get 412");
        // What is stored is what the winner wrote, under the ETag it was told.
        assert_eq!(
            stored_etag(key.clone()).await.as_deref(),
            through[0].as_ref().unwrap().e_tag()
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_write_refused_for_its_checksum_leaves_the_object_as_it_was() {
    let (_root, server) = serve("ledger").await;
    let s3 = client(&server.endpoint_url(), "secret").await;
    let first = s3
        .put_object()
        .bucket("ledger")
        .key("objects/a.json")
        .body(ByteStream::from_static(b"{\"rows\":1}"))
        .send()
        .await
        .unwrap();
    let refused = s3
        .put_object()
        .bucket("ledger")
        .key("objects/a.json")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from_static(b"{\"rows\":2}"))
        .send()
        .await
        .expect_err("a body that does not match its checksum is refused");
    assert_eq!(
        refused.into_service_error().meta().code(),
        Some("BadDigest")
    );
    // Read with checksum validation on: the body, its ETag and its checksums still agree.
    let object = s3
        .get_object()
        .bucket("ledger")
        .key("objects/a.json")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(object.e_tag(), first.e_tag());
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"{\"rows\":1}");
}
