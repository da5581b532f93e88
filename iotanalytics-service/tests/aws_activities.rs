//! The pipeline activities that call other AWS services (`lambda`, `deviceRegistryEnrich`,
//! `deviceShadowEnrich`) through aws-sdk-iotanalytics, against a local server that speaks the
//! wire protocols of Lambda Invoke, IoT DescribeThing and IoT data GetThingShadow; and their
//! refusal by a service without AWS clients.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::error::ProvideErrorMetadata;
use aws_sdk_iotanalytics::primitives::Blob;
use aws_sdk_iotanalytics::types::{
    ChannelActivity, DatastoreActivity, DeviceRegistryEnrichActivity, DeviceShadowEnrichActivity,
    LambdaActivity, PipelineActivity, ReprocessingStatus,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::*;
use iotanalytics_service::aws_activities::AwsActivityClients;
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::123456789012:role/enrich";

/// What the fake AWS server saw: (function, messages in the batch) per invocation.
type Invocations = Arc<Mutex<Vec<(String, usize)>>>;

/// Lambda `POST /2015-03-31/functions/{name}/invocations`: `double` adds `doubled` and the
/// batch's size to each message, `fails` reports a function error, `scalar` answers a number.
async fn invoke(
    State(seen): State<Invocations>,
    Path(function): Path<String>,
    body: Bytes,
) -> Response {
    let batch: Vec<Value> = serde_json::from_slice(&body).expect("the payload is a JSON array");
    seen.lock().unwrap().push((function.clone(), batch.len()));
    let n = batch.len();
    match function.as_str() {
        "double" => {
            let out: Vec<Value> = batch
                .into_iter()
                .map(|mut m| {
                    m["doubled"] = json!(m["temp"].as_i64().unwrap() * 2);
                    m["batch"] = json!(n);
                    m
                })
                .collect();
            (StatusCode::OK, serde_json::to_vec(&out).unwrap()).into_response()
        }
        "fails" => (
            StatusCode::OK,
            [("X-Amz-Function-Error", "Unhandled")],
            r#"{"errorMessage":"boom","errorType":"Exception"}"#,
        )
            .into_response(),
        "scalar" => (StatusCode::OK, "42").into_response(),
        _ => aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "Function not found",
        ),
    }
}

fn aws_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", code),
            ("content-type", "application/json"),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// IoT `GET /things/{thingName}`: `t1` exists.
async fn describe_thing(Path(thing): Path<String>, headers: HeaderMap) -> Response {
    assert!(headers.contains_key("authorization"), "requests are signed");
    if thing != "t1" {
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Thing {thing} cannot be found."),
        );
    }
    axum::Json(json!({
        "defaultClientId": "t1",
        "thingName": "t1",
        "thingId": "11111111-2222-3333-4444-555555555555",
        "thingArn": "arn:aws:iot:us-east-1:123456789012:thing/t1",
        "thingTypeName": "sensor",
        "attributes": {"site": "B"},
        "version": 3
    }))
    .into_response()
}

/// IoT data `GET /things/{thingName}/shadow`: only `t1` has a classic shadow.
async fn get_shadow(Path(thing): Path<String>) -> Response {
    if thing != "t1" {
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("No shadow exists with name: '{thing}'"),
        );
    }
    (
        StatusCode::OK,
        r#"{"state":{"reported":{"fw":"1.2"}},"version":9,"timestamp":1514925600}"#,
    )
        .into_response()
}

/// Starts the fake AWS server on loopback; returns its URL and what it was asked.
async fn fake_aws() -> (String, Invocations) {
    let seen = Invocations::default();
    let app = Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route("/things/{name}", get(describe_thing))
        .route("/things/{name}/shadow", get(get_shadow))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// A service whose AWS-calling activities go to the fake server; its SDK client; what the
/// fake server was asked.
async fn service_with_aws() -> (TestService, Client, Invocations) {
    let (url, seen) = fake_aws().await;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDFAKE", "fake", None, None, "tests",
        ))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let clients = AwsActivityClients::new(&sdk, None);
    let t = start_with(tempfile::tempdir().unwrap(), |c| {
        c.aws_activities = Some(clients)
    })
    .await;
    let client = client(&t.service.endpoint_url()).await;
    (t, client, seen)
}

fn lambda(function: &str, batch_size: i32) -> PipelineActivity {
    PipelineActivity::builder()
        .lambda(
            LambdaActivity::builder()
                .name("Middle")
                .lambda_name(function)
                .batch_size(batch_size)
                .next("Sink")
                .build()
                .unwrap(),
        )
        .build()
}

fn registry(thing_name: &str) -> PipelineActivity {
    PipelineActivity::builder()
        .device_registry_enrich(
            DeviceRegistryEnrichActivity::builder()
                .name("Middle")
                .attribute("metadata")
                .thing_name(thing_name)
                .role_arn(ROLE)
                .next("Sink")
                .build()
                .unwrap(),
        )
        .build()
}

fn shadow(thing_name: &str) -> PipelineActivity {
    PipelineActivity::builder()
        .device_shadow_enrich(
            DeviceShadowEnrichActivity::builder()
                .name("Middle")
                .attribute("shadow")
                .thing_name(thing_name)
                .role_arn(ROLE)
                .next("Sink")
                .build()
                .unwrap(),
        )
        .build()
}

/// RunPipelineActivity's payloads and logResult.
async fn run(
    client: &Client,
    activity: PipelineActivity,
    payloads: &[Value],
) -> (Vec<Value>, Option<String>) {
    let mut req = client.run_pipeline_activity().pipeline_activity(activity);
    for p in payloads {
        req = req.payloads(Blob::new(p.to_string().into_bytes()));
    }
    let out = req.send().await.unwrap();
    let payloads = out
        .payloads()
        .iter()
        .map(|b| serde_json::from_slice(b.as_ref()).unwrap())
        .collect();
    (payloads, out.log_result().map(str::to_owned))
}

/// Channel `<prefix>_channel` → `middle` → datastore `<prefix>_datastore`.
async fn flow(client: &Client, prefix: &str, middle: PipelineActivity) {
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
    let source = ChannelActivity::builder()
        .name("Source")
        .channel_name(format!("{prefix}_channel"))
        .next("Middle")
        .build()
        .unwrap();
    let sink = DatastoreActivity::builder()
        .name("Sink")
        .datastore_name(format!("{prefix}_datastore"))
        .build()
        .unwrap();
    client
        .create_pipeline()
        .pipeline_name(format!("{prefix}_pipeline"))
        .pipeline_activities(PipelineActivity::builder().channel(source).build())
        .pipeline_activities(middle)
        .pipeline_activities(PipelineActivity::builder().datastore(sink).build())
        .send()
        .await
        .unwrap();
}

async fn put(client: &Client, channel: &str, payloads: &[Value]) {
    let mut req = client.batch_put_message().channel_name(channel);
    for (i, p) in payloads.iter().enumerate() {
        req = req.messages(message(i.to_string(), &p.to_string()));
    }
    let out = req.send().await.unwrap();
    assert!(out.batch_put_message_error_entries().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_pipeline_activity_invokes_the_function_in_batches() {
    let (_t, client, seen) = service_with_aws().await;
    let temps: Vec<Value> = (1..=3).map(|t| json!({ "temp": t })).collect();
    let (out, log) = run(&client, lambda("double", 2), &temps).await;
    assert_eq!(
        out,
        [
            json!({"temp": 1, "doubled": 2, "batch": 2}),
            json!({"temp": 2, "doubled": 4, "batch": 2}),
            json!({"temp": 3, "doubled": 6, "batch": 1}),
        ]
    );
    assert_eq!(log, None);
    // Batches are sent concurrently, so they may arrive in any order.
    let mut invocations = seen.lock().unwrap().clone();
    invocations.sort();
    assert_eq!(
        invocations,
        [("double".to_owned(), 1), ("double".to_owned(), 2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_function_drops_its_batch_and_says_so() {
    let (_t, client, _seen) = service_with_aws().await;
    let (out, log) = run(&client, lambda("fails", 10), &[json!({"temp": 1})]).await;
    assert!(out.is_empty(), "{out:?}");
    let log = log.expect("a logResult");
    assert!(log.contains("fails") && log.contains("boom"), "{log}");
    let (out, log) = run(&client, lambda("scalar", 10), &[json!({"temp": 1})]).await;
    assert!(out.is_empty(), "{out:?}");
    assert!(log.unwrap().contains("not a JSON array"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_enrichment_adds_the_thing_description() {
    let (_t, client, _seen) = service_with_aws().await;
    let (out, log) = run(
        &client,
        registry("device.thingName"),
        &[
            json!({"temp": 50, "device": {"thingName": "t1"}}),
            json!({"temp": 51, "device": {"thingName": "unknown"}}),
            json!({"temp": 52}),
        ],
    )
    .await;
    assert_eq!(
        out[0]["metadata"],
        json!({
            "defaultClientId": "t1",
            "thingName": "t1",
            "thingId": "11111111-2222-3333-4444-555555555555",
            "thingArn": "arn:aws:iot:us-east-1:123456789012:thing/t1",
            "thingTypeName": "sensor",
            "attributes": {"site": "B"},
            "version": 3
        })
    );
    // An unknown thing, or a message without a thing name, goes on unchanged.
    assert_eq!(
        out[1],
        json!({"temp": 51, "device": {"thingName": "unknown"}})
    );
    assert_eq!(out[2], json!({"temp": 52}));
    let log = log.expect("a logResult");
    assert!(log.contains("'unknown' has no registry entry"), "{log}");
    assert!(log.contains("no thing name at 'device.thingName'"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_enrichment_adds_the_classic_shadow() {
    let (_t, client, _seen) = service_with_aws().await;
    let (out, log) = run(
        &client,
        shadow("id"),
        &[json!({"id": "t1"}), json!({"id": "no_shadow"})],
    )
    .await;
    assert_eq!(
        out,
        [
            json!({"id": "t1", "shadow": {
                "state": {"reported": {"fw": "1.2"}}, "version": 9, "timestamp": 1514925600
            }}),
            json!({"id": "no_shadow"}),
        ]
    );
    assert!(log.unwrap().contains("'no_shadow' has no shadow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_put_message_runs_a_lambda_pipeline_into_the_datastore() {
    let (_t, client, seen) = service_with_aws().await;
    flow(&client, "l", lambda("double", 2)).await;
    let temps: Vec<Value> = (1..=5).map(|t| json!({ "temp": t })).collect();
    put(&client, "l_channel", &temps).await;
    let mut invocations: Vec<usize> = seen.lock().unwrap().iter().map(|(_, n)| *n).collect();
    invocations.sort();
    assert_eq!(invocations, [1, 2, 2]);
    assert_eq!(
        run_sql(
            &client,
            "l_ds",
            "select temp, doubled, batch from l_datastore order by temp"
        )
        .await,
        "temp,doubled,batch\n1,2,2\n2,4,2\n3,6,2\n4,8,2\n5,10,1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocessing_runs_the_channel_through_the_lambda_activity_again() {
    let (_t, client, seen) = service_with_aws().await;
    flow(&client, "r", lambda("double", 2)).await;
    let temps: Vec<Value> = (1..=3).map(|t| json!({ "temp": t })).collect();
    put(&client, "r_channel", &temps).await;
    let id = client
        .start_pipeline_reprocessing()
        .pipeline_name("r_pipeline")
        .send()
        .await
        .unwrap()
        .reprocessing_id()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = client
            .describe_pipeline()
            .pipeline_name("r_pipeline")
            .send()
            .await
            .unwrap();
        let status = out.pipeline().unwrap().reprocessing_summaries()[0]
            .status()
            .cloned()
            .unwrap();
        assert_eq!(
            out.pipeline().unwrap().reprocessing_summaries()[0].id(),
            Some(id.as_str())
        );
        if status != ReprocessingStatus::Running {
            assert_eq!(status, ReprocessingStatus::Succeeded);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still RUNNING");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        4,
        "2 batches when put, 2 when reprocessed"
    );
    assert_eq!(
        run_sql(
            &client,
            "r_ds",
            "select temp, doubled, count(*) as n from r_datastore group by temp, doubled order by temp"
        )
        .await,
        "temp,doubled,n\n1,2,2\n2,4,2\n3,6,2\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_in_a_pipeline_keeps_the_messages_in_the_channel_only() {
    let (_t, client, _seen) = service_with_aws().await;
    flow(&client, "f", lambda("fails", 10)).await;
    put(
        &client,
        "f_channel",
        &[json!({"temp": 1}), json!({"temp": 2})],
    )
    .await;
    let sample = client
        .sample_channel_data()
        .channel_name("f_channel")
        .send()
        .await
        .unwrap();
    assert_eq!(sample.payloads().len(), 2);
    assert_eq!(
        run_sql(&client, "f_ds", "select count(*) as n from f_datastore").await,
        "n\n0\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_aws_activities_are_refused_when_the_clients_exist() {
    let (_t, client, _seen) = service_with_aws().await;
    let mut bad_role = registry("id");
    if let Some(a) = bad_role.device_registry_enrich.as_mut() {
        a.role_arn = "arn:aws:s3:::not-a-role-at-all".into();
    }
    for (activity, says) in [
        (lambda("bad name!", 1), "lambdaName"),
        (lambda("f", 1001), "batchSize"),
        (bad_role, "roleArn"),
    ] {
        let e = client
            .run_pipeline_activity()
            .pipeline_activity(activity)
            .payloads(Blob::new(b"{}".to_vec()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InvalidRequestException"));
        assert!(e.message().unwrap().contains(says), "{:?}", e.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_aws_clients_the_activities_are_refused_saying_why() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    let mut said = HashMap::new();
    for (kind, activity) in [
        ("lambda", lambda("double", 1)),
        ("deviceRegistryEnrich", registry("id")),
        ("deviceShadowEnrich", shadow("id")),
    ] {
        client
            .create_channel()
            .channel_name(format!("{}_channel", kind.to_lowercase()))
            .send()
            .await
            .unwrap();
        let e = client
            .run_pipeline_activity()
            .pipeline_activity(activity.clone())
            .payloads(Blob::new(b"{}".to_vec()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InvalidRequestException"));
        said.insert(kind, e.message().unwrap().to_owned());
        let e = client
            .create_pipeline()
            .pipeline_name(format!("{}_pipeline", kind.to_lowercase()))
            .pipeline_activities(
                PipelineActivity::builder()
                    .channel(
                        ChannelActivity::builder()
                            .name("Source")
                            .channel_name(format!("{}_channel", kind.to_lowercase()))
                            .next("Middle")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .pipeline_activities(activity)
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InvalidRequestException"));
        assert_eq!(e.message(), said.get(kind).map(String::as_str));
    }
    for (kind, message) in said {
        assert!(message.contains(&format!("'{kind}'")), "{message}");
        assert!(message.contains("only when it runs on AWS"), "{message}");
    }
}
