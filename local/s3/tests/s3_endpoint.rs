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

#[tokio::test]
async fn objects_list_in_pages_and_read_by_range() {
    let root = tempfile::tempdir().unwrap();
    local_s3::ensure_bucket(root.path(), "src").unwrap();
    let server = local_s3::start(local_s3::S3Config::new(root.path(), "local", "secret"))
        .await
        .unwrap();
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
    let root = tempfile::tempdir().unwrap();
    local_s3::ensure_bucket(root.path(), "src").unwrap();
    let server = local_s3::start(local_s3::S3Config::new(root.path(), "local", "secret"))
        .await
        .unwrap();
    let s3 = client(&server.endpoint_url(), "wrong").await;
    let error = s3.list_objects_v2().bucket("src").send().await.unwrap_err();
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(403), "{error:?}");
    server.shutdown().await;
}
