//! The API's gate over real HTTP: old, future and replayed signatures are refused with AWS's
//! wording, unsigned requests are refused before their body is sent, and oversized requests
//! get 413 and 431 as awsJson1_0 errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use local_stepfunctions::{AccessKey, RunningStepFunctions};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY_ID: &str = "AKIDSTATES";
const SECRET: &str = "states/secret+key";

async fn start() -> (tempfile::TempDir, RunningStepFunctions) {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        local_stepfunctions::Config::new(dir.path(), Arc::new(local_stepfunctions::NoResources));
    config.access_key = Some(AccessKey::new(KEY_ID, SECRET));
    let sfn = local_stepfunctions::start(config).await.unwrap();
    (dir, sfn)
}

fn client(sfn: &RunningStepFunctions, at: Option<SystemTime>) -> aws_sdk_sfn::Client {
    let mut config = aws_sdk_sfn::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(KEY_ID, SECRET, None, None, "test"))
        .endpoint_url(sfn.endpoint_url());
    if let Some(at) = at {
        // Without retries: on InvalidSignatureException the SDK would re-sign at the server's
        // time (from the Date header) and try again, a new signature and not a replay.
        config = config
            .time_source(aws_smithy_async::time::StaticTimeSource::new(at))
            .retry_config(aws_sdk_sfn::config::retry::RetryConfig::disabled());
    }
    aws_sdk_sfn::Client::from_conf(config.build())
}

async fn state_machine(sfn: &RunningStepFunctions) -> String {
    client(sfn, None)
        .create_state_machine()
        .name("m")
        .role_arn("arn:aws:iam::123456789012:role/r")
        .definition(r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#)
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned()
}

async fn executions(sfn: &RunningStepFunctions, arn: &str) -> usize {
    client(sfn, None)
        .list_executions()
        .state_machine_arn(arn)
        .send()
        .await
        .unwrap()
        .executions()
        .len()
}

/// A StartExecution as aws-sdk-sfn writes it, signed at `at` by aws-sigv4, as raw HTTP/1.1.
fn signed_start_execution(addr: SocketAddr, arn: &str, at: SystemTime) -> Vec<u8> {
    let body = serde_json::json!({"stateMachineArn": arn, "input": "{}"}).to_string();
    let host = addr.to_string();
    let mut request = http::Request::post(format!("http://{host}/"))
        .header("host", &host)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "AWSStepFunctions.StartExecution")
        .header("content-length", body.len())
        .body(body.clone())
        .unwrap();
    let identity: Identity = Credentials::new(KEY_ID, SECRET, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("states")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        request.uri().to_string(),
        request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let mut raw = "POST / HTTP/1.1\r\nconnection: close\r\n".to_owned();
    for (name, value) in request.headers() {
        raw.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    raw.push_str("\r\n");
    raw.push_str(&body);
    raw.into_bytes()
}

/// Sends `request` and reads the answer: status, lower-cased headers, body.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server answers without waiting for the rest of the body")
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    (status, head.to_lowercase(), body.to_owned())
}

fn aws_json_type(headers: &str, body: &str) -> String {
    assert!(
        headers.contains("content-type: application/x-amz-json-1.0"),
        "{headers}"
    );
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert!(body["message"].is_string(), "{body}");
    body["__type"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_signed_on_2025_01_01_is_refused_as_expired() {
    let (_dir, sfn) = start().await;
    let arn = state_machine(&sfn).await;
    let new_year_2025 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600);
    let err = client(&sfn, Some(new_year_2025))
        .start_execution()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let message = err.message().unwrap();
    assert!(
        message.starts_with("Signature expired: 20250101T000000Z is now earlier than"),
        "{message}"
    );
    assert_eq!(executions(&sfn, &arn).await, 0);
    sfn.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_replayed_an_hour_later_is_refused_every_time() {
    let (_dir, sfn) = start().await;
    let arn = state_machine(&sfn).await;
    let addr = sfn.local_addr();
    // Signed now, it is served: the raw request is what a client really sends.
    let fresh = signed_start_execution(addr, &arn, SystemTime::now());
    let (status, _, body) = exchange(addr, &fresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(executions(&sfn, &arn).await, 1);
    // The same request captured an hour ago, sent three times.
    let old = signed_start_execution(addr, &arn, SystemTime::now() - Duration::from_secs(3600));
    for _ in 0..3 {
        let (status, headers, body) = exchange(addr, &old).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(aws_json_type(&headers, &body), "InvalidSignatureException");
        assert!(body.contains("Signature expired"), "{body}");
    }
    // And one signed 20 minutes ahead of the server clock.
    let future = signed_start_execution(addr, &arn, SystemTime::now() + Duration::from_secs(1200));
    let (status, headers, body) = exchange(addr, &future).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(aws_json_type(&headers, &body), "InvalidSignatureException");
    assert!(body.contains("Signature not yet current"), "{body}");
    assert_eq!(executions(&sfn, &arn).await, 1);
    sfn.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_oversized_requests_are_refused_from_their_headers_in_aws_json() {
    let (_dir, sfn) = start().await;
    let addr = sfn.local_addr();
    // Declares a 1 MiB body and sends none of it: the answer comes from the headers alone.
    let unsigned = "POST / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
                    x-amz-target: AWSStepFunctions.ListStateMachines\r\n\
                    content-type: application/x-amz-json-1.0\r\ncontent-length: 1048576\r\n\r\n";
    let (status, headers, body) = exchange(addr, unsigned.as_bytes()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        aws_json_type(&headers, &body),
        "MissingAuthenticationTokenException"
    );

    let too_long = "POST / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
                    x-amz-target: AWSStepFunctions.ListStateMachines\r\n\
                    content-type: application/x-amz-json-1.0\r\ncontent-length: 33554432\r\n\r\n";
    let (status, headers, body) = exchange(addr, too_long.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        aws_json_type(&headers, &body),
        "RequestEntityTooLargeException"
    );

    let mut many = "POST / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n".to_owned();
    for i in 0..150 {
        many.push_str(&format!("x-filler-{i}: {i}\r\n"));
    }
    many.push_str("content-length: 0\r\n\r\n");
    let (status, headers, body) = exchange(addr, many.as_bytes()).await;
    assert_eq!(status, 431, "{body}");
    assert_eq!(
        aws_json_type(&headers, &body),
        "RequestHeaderFieldsTooLargeException"
    );

    let large = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nx-large: {}\r\n\
         content-length: 0\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (status, headers, body) = exchange(addr, large.as_bytes()).await;
    assert_eq!(status, 431, "{body}");
    assert_eq!(
        aws_json_type(&headers, &body),
        "RequestHeaderFieldsTooLargeException"
    );
    sfn.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_access_key_the_size_limits_still_answer_in_aws_json() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        local_stepfunctions::Config::new(dir.path(), Arc::new(local_stepfunctions::NoResources));
    let sfn = local_stepfunctions::start(config).await.unwrap();
    let addr = sfn.local_addr();
    // 3 MiB declared, none sent.
    let request = "POST / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
                   x-amz-target: AWSStepFunctions.ListStateMachines\r\n\
                   content-type: application/x-amz-json-1.0\r\ncontent-length: 3145728\r\n\r\n";
    let (status, headers, body) = exchange(addr, request.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        aws_json_type(&headers, &body),
        "RequestEntityTooLargeException"
    );
    // Unsigned requests are served when no key is configured.
    let list = "POST / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
                x-amz-target: AWSStepFunctions.ListStateMachines\r\n\
                content-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\n\r\n{}";
    let (status, _, body) = exchange(addr, list.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    sfn.shutdown().await;
}
