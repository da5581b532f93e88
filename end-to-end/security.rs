//! Security of the local stack: every endpoint listens on loopback only and refuses requests
//! that are unsigned or signed with the wrong secret, and a whole run, logged at debug level
//! with the SDKs' own logs included, never writes the secret key.

use std::io::Write;
use std::sync::{Arc, Mutex};

use end_to_end::TestStack;
use s3_ingest::run::{run_on, summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "Xy7+never/logged/SecretKey0123456789abcd";

/// Sends one unsigned HTTP/1.1 request and returns the status code.
async fn unsigned_status(addr: std::net::SocketAddr, request: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {addr}: {text}"))
}

/// A log sink shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_listen_on_loopback_refuse_unsigned_requests_and_never_log_the_secret() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("a.csv"), "rid,val\n1,a\n2,b\n").unwrap();
    let test = TestStack::start_with(
        |args| {
            args.source = Some(source.path().to_path_buf());
            args.bucket = "secure".to_owned();
            args.channel = "secure_channel".to_owned();
            args.pipeline = "secure_pipeline".to_owned();
            args.datastore = "secure_datastore".to_owned();
        },
        |options| options.secret_access_key = SECRET.to_owned(),
    )
    .await
    .unwrap();
    let stack = &test.stack;
    let addrs = [
        ("S3", stack.s3.local_addr()),
        ("IoT Analytics", stack.iotanalytics.local_addr()),
        ("Step Functions", stack.stepfunctions.local_addr()),
    ];
    for (name, addr) in addrs {
        assert!(addr.ip().is_loopback(), "{name} listens on {addr}");
    }

    let s3 = unsigned_status(
        addrs[0].1,
        "GET /secure?list-type=2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let iota = unsigned_status(
        addrs[1].1,
        "GET /channels HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let sfn = unsigned_status(
        addrs[2].1,
        "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         X-Amz-Target: AWSStepFunctions.ListStateMachines\r\n\
         Content-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    for (name, status) in [("S3", s3), ("IoT Analytics", iota), ("Step Functions", sfn)] {
        assert!(
            (400..500).contains(&status) && status != 404,
            "{name} answered an unsigned request with {status}"
        );
    }

    // The same SDK clients with the wrong secret are refused too.
    let wrong = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "local",
            "wrong-secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let clients = ingest::Clients::for_endpoints(
        &wrong,
        &stack.s3.endpoint_url(),
        &stack.iotanalytics.endpoint_url(),
    );
    assert!(clients.s3.list_buckets().send().await.is_err());
    assert!(clients.iotanalytics.list_channels().send().await.is_err());
    let sfn_config = aws_sdk_sfn::config::Builder::from(&wrong)
        .endpoint_url(stack.stepfunctions.endpoint_url())
        .build();
    let sfn = aws_sdk_sfn::Client::from_conf(sfn_config);
    assert!(sfn.list_state_machines().send().await.is_err());

    let report = run_on(stack, &test.args, false).await.unwrap();
    assert!(report.passed(), "{}", summary(&report));
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logged.contains("secure_channel"),
        "the debug logs were not captured"
    );
    assert!(!logged.contains(SECRET), "the secret key is in the logs");
    test.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_a_request_signed_an_hour_ago() {
    use aws_sdk_sfn::error::ProvideErrorMetadata as _;
    let test = TestStack::start_with(
        |_| {},
        |options| {
            options.access_key_id = "hour".to_owned();
            options.secret_access_key = "hour-old-secret".to_owned();
        },
    )
    .await
    .unwrap();
    let stack = &test.stack;
    // The right key, an hour-old clock, and no retries: an SDK would otherwise re-sign at the
    // server's time (from its Date header), which is a new signature, not a replay.
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let old = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "hour",
            "hour-old-secret",
            None,
            None,
            "test",
        ))
        .time_source(aws_smithy_async::time::StaticTimeSource::new(hour_ago))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let clients = ingest::Clients::for_endpoints(
        &old,
        &stack.s3.endpoint_url(),
        &stack.iotanalytics.endpoint_url(),
    );
    let sfn = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(&old)
            .endpoint_url(stack.stepfunctions.endpoint_url())
            .build(),
    );
    let status =
        |r: Option<&aws_sdk_sfn::config::http::HttpResponse>| r.map(|r| r.status().as_u16());

    let e = clients.s3.list_buckets().send().await.unwrap_err();
    assert_eq!(status(e.raw_response()), Some(403), "S3: {e:?}");
    assert_eq!(e.code(), Some("RequestTimeTooSkewed"), "S3: {e:?}");
    let e = clients
        .iotanalytics
        .list_channels()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "IoT Analytics: {e:?}"
    );
    assert_eq!(
        e.code(),
        Some("InvalidSignatureException"),
        "IoT Analytics: {e:?}"
    );
    let e = sfn.list_state_machines().send().await.unwrap_err();
    assert_eq!(status(e.raw_response()), Some(403), "Step Functions: {e:?}");
    assert_eq!(
        e.code(),
        Some("InvalidSignatureException"),
        "Step Functions: {e:?}"
    );
    assert!(
        e.message()
            .is_some_and(|m| m.starts_with("Signature expired")),
        "Step Functions: {e:?}"
    );
    test.stack.shutdown().await;
}
