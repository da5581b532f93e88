//! Helpers shared by the integration tests: a service on a temporary directory, an SDK client
//! pointed at it, a plain HTTP GET, and the dataset round trip.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::primitives::Blob;
use aws_sdk_iotanalytics::types::{
    ChannelActivity, DatasetAction, DatasetContentState, DatastoreActivity, Message,
    PipelineActivity, SqlQueryDatasetAction,
};
use iotanalytics_service::{RunningService, S3Location, ServiceConfig, StorageConfig};

/// A service on its own temporary data directory (and, on the S3 backend, its embedded S3).
pub struct TestService {
    pub service: RunningService,
    pub dir: tempfile::TempDir,
    pub s3: Option<local_s3::RunningS3>,
}

/// Whether these tests run on the S3 storage backend (`IOTANALYTICS_TEST_STORAGE=s3`) rather
/// than the filesystem one.
pub fn on_s3_backend() -> bool {
    std::env::var("IOTANALYTICS_TEST_STORAGE").as_deref() == Ok("s3")
}

/// An embedded S3 under `dir` with bucket `iotanalytics`, and a client of it.
pub async fn embedded_s3(dir: &std::path::Path) -> (local_s3::RunningS3, aws_sdk_s3::Client) {
    let root = dir.join("s3");
    local_s3::ensure_bucket(&root, "iotanalytics").expect("bucket directory");
    let s3 = local_s3::start(local_s3::S3Config::new(root, "AKIDTEST", "test-secret"))
        .await
        .expect("S3 starts");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "tests",
        ))
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .endpoint_url(s3.endpoint_url())
        .force_path_style(true)
        .build();
    (s3, aws_sdk_s3::Client::from_conf(config))
}

pub async fn start_with(
    dir: tempfile::TempDir,
    edit: impl FnOnce(&mut ServiceConfig),
) -> TestService {
    let mut config = ServiceConfig::new(dir.path());
    config.seed = Some(42);
    let s3 = if on_s3_backend() {
        let (s3, client) = embedded_s3(dir.path()).await;
        config.storage = StorageConfig::S3 {
            location: S3Location::parse("s3://iotanalytics/service/").unwrap(),
            client,
        };
        Some(s3)
    } else {
        None
    };
    edit(&mut config);
    let service = iotanalytics_service::start(config)
        .await
        .expect("service starts");
    TestService { service, dir, s3 }
}

pub async fn start() -> TestService {
    start_with(tempfile::tempdir().expect("temp dir"), |_| {}).await
}

/// An SDK client for `endpoint`, signing with the given key pair, without retries so that
/// every error reaches the test.
pub async fn client_with(endpoint: &str, key_id: &str, secret: &str) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            key_id, secret, None, None, "tests",
        ))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    Client::new(&config)
}

pub async fn client(endpoint: &str) -> Client {
    client_with(endpoint, "AKIDTEST", "test-secret").await
}

/// Plain HTTP/1.1 GET; returns status, headers (lower-cased names) and body.
pub fn http_get(url: &str) -> (u16, Vec<(String, String)>, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

pub fn message(id: impl Into<String>, payload: &str) -> Message {
    Message::builder()
        .message_id(id)
        .payload(Blob::new(payload.as_bytes().to_vec()))
        .build()
        .unwrap()
}

/// Creates channel `<prefix>_channel`, datastore `<prefix>_datastore` and a pipeline between.
pub async fn setup_flow(client: &Client, prefix: &str) {
    pipeline_with(client, prefix, None).await;
}

/// Creates channel `<prefix>_channel`, datastore `<prefix>_datastore` and pipeline
/// `<prefix>_pipeline` from one to the other through the math activity `middle`, if any.
pub async fn pipeline_with(client: &Client, prefix: &str, middle: Option<PipelineActivity>) {
    client
        .create_channel()
        .channel_name(format!("{prefix}_channel"))
        .send()
        .await
        .unwrap();
    client
        .create_datastore()
        .datastore_name(format!("{prefix}_datastore"))
        .send()
        .await
        .unwrap();
    create_pipeline(
        client,
        &format!("{prefix}_pipeline"),
        &format!("{prefix}_channel"),
        middle,
        &format!("{prefix}_datastore"),
    )
    .await;
}

/// Creates pipeline `name` from `channel` through the math activity `middle`, if any, to
/// `datastore`.
pub async fn create_pipeline(
    client: &Client,
    name: &str,
    channel: &str,
    middle: Option<PipelineActivity>,
    datastore: &str,
) {
    let first = if middle.is_some() { "Middle" } else { "Sink" };
    let mut req = client
        .create_pipeline()
        .pipeline_name(name)
        .pipeline_activities(
            PipelineActivity::builder()
                .channel(
                    ChannelActivity::builder()
                        .name("Source")
                        .channel_name(channel)
                        .next(first)
                        .build()
                        .unwrap(),
                )
                .build(),
        );
    if let Some(middle) = middle {
        let mut math = middle.math.expect("a math activity");
        math.name = "Middle".into();
        math.next = Some("Sink".into());
        req = req.pipeline_activities(PipelineActivity::builder().math(math).build());
    }
    req.pipeline_activities(
        PipelineActivity::builder()
            .datastore(
                DatastoreActivity::builder()
                    .name("Sink")
                    .datastore_name(datastore)
                    .build()
                    .unwrap(),
            )
            .build(),
    )
    .send()
    .await
    .unwrap();
}

pub fn query_action(name: &str, sql: &str) -> DatasetAction {
    DatasetAction::builder()
        .action_name(name)
        .query_action(
            SqlQueryDatasetAction::builder()
                .sql_query(sql)
                .build()
                .unwrap(),
        )
        .build()
}

/// Waits until the dataset's `$LATEST` content leaves CREATING; returns the final state,
/// the reason and the first entry's data URI.
pub async fn wait_content(
    client: &Client,
    dataset: &str,
) -> (DatasetContentState, Option<String>, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = client
            .get_dataset_content()
            .dataset_name(dataset)
            .version_id("$LATEST")
            .send()
            .await
            .unwrap();
        let status = out.status().unwrap();
        let state = status.state().unwrap().clone();
        if state != DatasetContentState::Creating {
            let uri = out
                .entries()
                .first()
                .and_then(|e| e.data_uri())
                .map(str::to_owned);
            return (state, status.reason().map(str::to_owned), uri);
        }
        assert!(
            Instant::now() < deadline,
            "dataset content still CREATING after 60 s"
        );
        // Short, so that the benchmark's query times are not rounded up by much.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Creates (or updates) a dataset with `sql`, creates its content, waits and downloads the CSV.
pub async fn run_sql(client: &Client, dataset: &str, sql: &str) -> String {
    let exists = client
        .describe_dataset()
        .dataset_name(dataset)
        .send()
        .await
        .is_ok();
    if exists {
        client
            .update_dataset()
            .dataset_name(dataset)
            .actions(query_action("query", sql))
            .send()
            .await
            .unwrap();
    } else {
        client
            .create_dataset()
            .dataset_name(dataset)
            .actions(query_action("query", sql))
            .send()
            .await
            .unwrap();
    }
    // CreateDatasetContent allows one call per second per dataset.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client
            .create_dataset_content()
            .dataset_name(dataset)
            .send()
            .await
        {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline && format!("{e:?}").contains("Throttling") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("create_dataset_content failed: {e:?}"),
        }
    }
    let (state, reason, uri) = wait_content(client, dataset).await;
    assert_eq!(
        state,
        DatasetContentState::Succeeded,
        "query failed: {reason:?}"
    );
    let (status, _, body) = http_get(&uri.expect("a data URI"));
    assert_eq!(status, 200);
    body
}
