//! The Lambda host: function URL events (the files in `events/`) go through `lambda_http` into
//! the same router an HTTP client reaches, over the same S3 bucket, and get the same answers.

mod common;

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use common::{client_with, embedded_s3, setup_flow};
use http_body_util::BodyExt as _;
use iotanalytics_service::{Credentials, S3Location, ServiceConfig, StorageConfig};
use tower::ServiceExt as _;

const KEY_ID: &str = "iotanalytics-service";
const SECRET: &str = "lambda-host-secret";

fn event(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Signs the event as a client of the function URL would, now, with the service's keys.
fn sign_event(event: &mut serde_json::Value) {
    let host = event["headers"]["host"].as_str().unwrap().to_owned();
    let method = event["requestContext"]["http"]["method"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("https://{host}{}", event["rawPath"].as_str().unwrap());
    let body = event["body"].as_str().unwrap_or_default().to_owned();
    let identity =
        aws_credential_types::Credentials::new(KEY_ID, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("iotanalytics")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [
        ("content-type", "application/json"),
        ("host", host.as_str()),
    ];
    let signable = SignableRequest::new(
        &method,
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let event_headers = event["headers"].as_object_mut().unwrap();
    for (name, value) in instructions.headers() {
        event_headers.insert(name.to_ascii_lowercase(), value.into());
    }
}

async fn through_lambda(
    router: &axum::Router,
    event: serde_json::Value,
) -> (u16, serde_json::Value) {
    let request = lambda_http::request::from_str(&event.to_string()).expect("a function URL event");
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_events_get_the_answers_http_clients_get() {
    let dir = tempfile::tempdir().unwrap();
    let (_s3, s3_client) = embedded_s3(dir.path()).await;
    let config = || {
        let mut config = ServiceConfig::new(dir.path().join("unused"));
        config.credentials = Some(Credentials::new(KEY_ID, SECRET));
        config.storage = StorageConfig::S3 {
            location: S3Location::parse("s3://iotanalytics/service/").unwrap(),
            client: s3_client.clone(),
        };
        config
    };
    // Two instances over one bucket, as on AWS: one served over HTTP, one as the Lambda host.
    let http = iotanalytics_service::start(config()).await.unwrap();
    let lambda = iotanalytics_service::app(config()).await.unwrap();
    let client = client_with(&http.endpoint_url(), KEY_ID, SECRET).await;
    setup_flow(&client, "bpm_blog").await;

    let mut put = event("iotanalytics-service-batch-put-message.json");
    let unsigned = through_lambda(&lambda.router, put.clone()).await;
    assert_eq!(
        unsigned.0, 403,
        "a stale signature is refused: {:?}",
        unsigned.1
    );
    sign_event(&mut put);
    let (status, body) = through_lambda(&lambda.router, put.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::json!({"batchPutMessageErrorEntries": []}));

    // The same request over HTTP gets the same answer.
    let messages: serde_json::Value = serde_json::from_str(put["body"].as_str().unwrap()).unwrap();
    let mut request = client.batch_put_message().channel_name("bpm_blog_channel");
    for m in messages["messages"].as_array().unwrap() {
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(m["payload"].as_str().unwrap())
            .unwrap();
        request = request.messages(common::message(
            m["messageId"].as_str().unwrap(),
            std::str::from_utf8(&payload).unwrap(),
        ));
    }
    let out = request.send().await.unwrap();
    assert!(out.batch_put_message_error_entries().is_empty());

    client
        .create_dataset()
        .dataset_name("bpm_blog_validation")
        .actions(common::query_action(
            "count",
            "SELECT count(*) AS row_count, count(DISTINCT rowid) AS rowids FROM bpm_blog_datastore",
        ))
        .send()
        .await
        .unwrap();
    let mut create = event("iotanalytics-service-create-dataset-content.json");
    sign_event(&mut create);
    let (status, body) = through_lambda(&lambda.router, create).await;
    assert_eq!(status, 200, "{body}");
    let version = body["versionId"].as_str().expect("a versionId").to_owned();

    // The HTTP instance sees the content the Lambda host started, and its result.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let uri = loop {
        let out = client
            .get_dataset_content()
            .dataset_name("bpm_blog_validation")
            .version_id(&version)
            .send()
            .await
            .unwrap();
        let state = out.status().unwrap().state().unwrap().as_str().to_owned();
        if state == "SUCCEEDED" {
            break out.entries()[0].data_uri().unwrap().to_owned();
        }
        assert_eq!(state, "CREATING", "{:?}", out.status());
        assert!(std::time::Instant::now() < deadline, "still CREATING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, _, csv) = common::http_get(&uri);
    assert_eq!(status, 200);
    assert_eq!(csv.lines().nth(1), Some("4,2"), "{csv}");
    http.shutdown().await;
}

/// One invocation of the function with `payload`, as the Lambda runtime hands it over.
async fn invoke(app: &iotanalytics_service::App, payload: &serde_json::Value) -> serde_json::Value {
    let raw = serde_json::value::RawValue::from_string(payload.to_string()).unwrap();
    iotanalytics_service::host::handle(
        app,
        lambda_http::LambdaEvent::new(raw, lambda_http::Context::default()),
    )
    .await
    .expect("the invocation is answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_start_due_schedules_once_and_requests_still_reach_the_router() {
    let dir = tempfile::tempdir().unwrap();
    local_s3::ensure_bucket(&dir.path().join("s3"), "delivered").unwrap();
    let (_s3, s3_client) = embedded_s3(dir.path()).await;
    let config = |clock: iotanalytics_service::ScheduleClock| {
        let mut config = ServiceConfig::new(dir.path().join("unused"));
        config.credentials = Some(Credentials::new(KEY_ID, SECRET));
        config.storage = StorageConfig::S3 {
            location: S3Location::parse("s3://iotanalytics/service/").unwrap(),
            client: s3_client.clone(),
        };
        config.schedules = clock;
        config
    };
    // The HTTP instance looks for due schedules once, at its start; the Lambda host's
    // schedule minute lasts a second, and only ticks run it.
    let http = iotanalytics_service::start(config(iotanalytics_service::ScheduleClock {
        minute: Duration::from_secs(60),
        check_every: Duration::from_secs(3600),
    }))
    .await
    .unwrap();
    let lambda = iotanalytics_service::app(config(iotanalytics_service::ScheduleClock {
        minute: Duration::from_secs(1),
        check_every: Duration::from_secs(3600),
    }))
    .await
    .unwrap();
    let client = client_with(&http.endpoint_url(), KEY_ID, SECRET).await;
    setup_flow(&client, "bpm_blog").await;
    let mut put = event("iotanalytics-service-batch-put-message.json");
    sign_event(&mut put);
    let answer = invoke(&lambda, &put).await;
    assert_eq!(answer["statusCode"], 200, "{answer}");

    let rule = aws_sdk_iotanalytics::types::DatasetContentDeliveryRule::builder()
        .destination(
            aws_sdk_iotanalytics::types::DatasetContentDeliveryDestination::builder()
                .s3_destination_configuration(
                    aws_sdk_iotanalytics::types::S3DestinationConfiguration::builder()
                        .bucket("delivered")
                        .key("ticks/!{iotanalytics:scheduleTime}.csv")
                        .role_arn("arn:aws:iam::123456789012:role/delivery")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build();
    client
        .create_dataset()
        .dataset_name("ticked")
        .actions(common::query_action(
            "count",
            "SELECT count(*) AS row_count FROM bpm_blog_datastore",
        ))
        .triggers(
            aws_sdk_iotanalytics::types::DatasetTrigger::builder()
                .schedule(
                    aws_sdk_iotanalytics::types::Schedule::builder()
                        .expression("cron(* * * * ? *)")
                        .build(),
                )
                .build(),
        )
        .content_delivery_rules(rule)
        .send()
        .await
        .unwrap();
    // The event the template's `Tick` schedule sends.
    let tick = event("iotanalytics-service-tick.json");
    // Early in a schedule minute that began after the dataset was created, that minute is
    // due, once: two ticks within it start one content.
    let created = lambda.schedule_clock_now();
    let minute_start = loop {
        let now = lambda.schedule_clock_now();
        if now - created > 61.0 && (1.0..10.0).contains(&(now % 60.0)) {
            break now - now % 60.0;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(invoke(&lambda, &tick).await["scheduled"], 1);
    assert_eq!(invoke(&lambda, &tick).await["scheduled"], 0);
    assert!(
        lambda.schedule_clock_now() < minute_start + 60.0,
        "both ticks fell within one schedule minute"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let key = loop {
        let listed = s3_client
            .list_objects_v2()
            .bucket("delivered")
            .prefix("ticks/")
            .send()
            .await
            .unwrap();
        if let Some(key) = listed.contents().first().and_then(|o| o.key()) {
            break key.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "nothing delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let contents = client
        .list_dataset_contents()
        .dataset_name("ticked")
        .send()
        .await
        .unwrap();
    let summary = &contents.dataset_content_summaries()[0];
    let scheduled = summary.schedule_time().unwrap().as_secs_f64();
    assert_eq!(
        scheduled, minute_start,
        "the content is scheduled at the minute's start"
    );
    assert_eq!(
        key,
        format!(
            "ticks/{}.csv",
            iotanalytics_service::delivery::key_time(scheduled)
        )
    );
    http.shutdown().await;
}
