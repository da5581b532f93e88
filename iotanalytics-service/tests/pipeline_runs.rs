//! RunPipelineActivity, the math activity in a pipeline, and pipeline reprocessing through the
//! real SDK client, with the error cases of each.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::error::ProvideErrorMetadata;
use aws_sdk_iotanalytics::primitives::{Blob, DateTime};
use aws_sdk_iotanalytics::types::{
    AddAttributesActivity, ChannelActivity, ChannelMessages, FilterActivity, LambdaActivity,
    MathActivity, PipelineActivity, ReprocessingStatus, SelectAttributesActivity,
};
use common::*;
use serde_json::{Value, json};

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

fn math(expression: &str, attribute: &str) -> PipelineActivity {
    PipelineActivity::builder()
        .math(
            MathActivity::builder()
                .name("m")
                .attribute(attribute)
                .math(expression)
                .build()
                .unwrap(),
        )
        .build()
}

async fn run(client: &Client, activity: PipelineActivity, payloads: &[Value]) -> Vec<Value> {
    let mut req = client.run_pipeline_activity().pipeline_activity(activity);
    for p in payloads {
        req = req.payloads(Blob::new(p.to_string().into_bytes()));
    }
    req.send()
        .await
        .unwrap()
        .payloads()
        .iter()
        .map(|b| serde_json::from_slice(b.as_ref()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_pipeline_activity_applies_one_activity_to_the_payloads() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    let out = run(
        &client,
        math("((temp - 32) * 5.0) / 9.0", "tempC"),
        &[
            json!({"temp": 212}),
            json!({"temp": "32"}),
            json!({"other": 1}),
        ],
    )
    .await;
    assert_eq!(
        out,
        [
            json!({"temp": 212, "tempC": 100.0}),
            json!({"temp": "32", "tempC": 0.0}),
            json!({"other": 1}),
        ]
    );
    let filter = PipelineActivity::builder()
        .filter(
            FilterActivity::builder()
                .name("f")
                .filter("temp > 20")
                .build()
                .unwrap(),
        )
        .build();
    let out = run(&client, filter, &[json!({"temp": 10}), json!({"temp": 30})]).await;
    assert_eq!(out, [json!({"temp": 30})]);
    let select = PipelineActivity::builder()
        .select_attributes(
            SelectAttributesActivity::builder()
                .name("s")
                .attributes("a")
                .build()
                .unwrap(),
        )
        .build();
    assert_eq!(
        run(&client, select, &[json!({"a": 1, "b": 2})]).await,
        [json!({"a": 1})]
    );
    let add = PipelineActivity::builder()
        .add_attributes(
            AddAttributesActivity::builder()
                .name("a")
                .attributes("a", "a_copy")
                .build()
                .unwrap(),
        )
        .build();
    assert_eq!(
        run(&client, add, &[json!({"a": 1})]).await,
        [json!({"a": 1, "a_copy": 1})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_pipeline_activity_refuses_what_it_cannot_run_and_bad_payloads() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    let payload = || Blob::new(b"{\"temp\": 1}".to_vec());
    let lambda = PipelineActivity::builder()
        .lambda(
            LambdaActivity::builder()
                .name("l")
                .lambda_name("f")
                .batch_size(1)
                .build()
                .unwrap(),
        )
        .build();
    let e = client
        .run_pipeline_activity()
        .pipeline_activity(lambda)
        .payloads(payload())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert!(e.message().unwrap().contains("Lambda"), "{:?}", e.message());
    let channel = PipelineActivity::builder()
        .channel(
            ChannelActivity::builder()
                .name("c")
                .channel_name("c")
                .build()
                .unwrap(),
        )
        .build();
    let e = client
        .run_pipeline_activity()
        .pipeline_activity(channel)
        .payloads(payload())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = client
        .run_pipeline_activity()
        .pipeline_activity(math("temp +", "x"))
        .payloads(payload())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = client
        .run_pipeline_activity()
        .pipeline_activity(math("temp + 1", "x"))
        .payloads(Blob::new(b"not json".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let mut req = client
        .run_pipeline_activity()
        .pipeline_activity(math("temp + 1", "x"));
    for _ in 0..11 {
        req = req.payloads(payload());
    }
    assert_eq!(
        code(&req.send().await.unwrap_err()),
        "InvalidRequestException"
    );
}

async fn send(client: &Client, channel: &str, from: usize, n: usize) {
    for start in (from..from + n).step_by(100) {
        let mut req = client.batch_put_message().channel_name(channel);
        for i in start..(start + 100).min(from + n) {
            req = req.messages(message(i.to_string(), &format!(r#"{{"temp": {i}}}"#)));
        }
        req.send().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_math_activity_in_a_pipeline_adds_its_attribute_to_stored_messages() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    pipeline_with(&client, "m", Some(math("temp * 2 + 1", "doubled"))).await;
    send(&client, "m_channel", 1, 3).await;
    assert_eq!(
        run_sql(
            &client,
            "m_ds",
            "select temp, doubled from m_datastore order by temp"
        )
        .await,
        "temp,doubled\n1,3\n2,5\n3,7\n"
    );
}

async fn wait_reprocessing(client: &Client, pipeline: &str, id: &str) -> ReprocessingStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = client
            .describe_pipeline()
            .pipeline_name(pipeline)
            .send()
            .await
            .unwrap();
        let summary = out
            .pipeline()
            .unwrap()
            .reprocessing_summaries()
            .iter()
            .find(|s| s.id() == Some(id))
            .cloned()
            .expect("the run is listed");
        assert!(summary.creation_time().is_some());
        let status = summary.status().unwrap().clone();
        if status != ReprocessingStatus::Running {
            return status;
        }
        assert!(Instant::now() < deadline, "still RUNNING after 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(client: &Client, dataset: &str, datastore: &str) -> String {
    run_sql(
        client,
        dataset,
        &format!("select count(*) as n from {datastore}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocessing_reruns_the_channel_through_the_pipeline_and_reports_its_status() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    pipeline_with(&client, "r", None).await;
    let before = DateTime::from_secs(1_000_000_000);
    send(&client, "r_channel", 0, 250).await;
    assert_eq!(count(&client, "r_count1", "r_datastore").await, "n\n250\n");

    // A range that ended long before the channel existed selects nothing.
    let id = client
        .start_pipeline_reprocessing()
        .pipeline_name("r_pipeline")
        .end_time(before)
        .send()
        .await
        .unwrap()
        .reprocessing_id()
        .unwrap()
        .to_owned();
    assert_eq!(
        wait_reprocessing(&client, "r_pipeline", &id).await,
        ReprocessingStatus::Succeeded
    );
    assert_eq!(count(&client, "r_count2", "r_datastore").await, "n\n250\n");

    let id = client
        .start_pipeline_reprocessing()
        .pipeline_name("r_pipeline")
        .send()
        .await
        .unwrap()
        .reprocessing_id()
        .unwrap()
        .to_owned();
    assert_eq!(
        wait_reprocessing(&client, "r_pipeline", &id).await,
        ReprocessingStatus::Succeeded
    );
    assert_eq!(count(&client, "r_count3", "r_datastore").await, "n\n500\n");
    let listed = client.list_pipelines().send().await.unwrap();
    assert_eq!(
        listed.pipeline_summaries()[0]
            .reprocessing_summaries()
            .len(),
        2
    );

    let e = client
        .cancel_pipeline_reprocessing()
        .pipeline_name("r_pipeline")
        .reprocessing_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        "InvalidRequestException",
        "a finished run cannot be cancelled"
    );
    let e = client
        .cancel_pipeline_reprocessing()
        .pipeline_name("r_pipeline")
        .reprocessing_id("no-such-run")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = client
        .start_pipeline_reprocessing()
        .pipeline_name("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = client
        .start_pipeline_reprocessing()
        .pipeline_name("r_pipeline")
        .start_time(DateTime::from_secs(2_000_000_000))
        .end_time(DateTime::from_secs(1_900_000_000))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = client
        .start_pipeline_reprocessing()
        .pipeline_name("r_pipeline")
        .channel_messages(
            ChannelMessages::builder()
                .s3_paths("channel/x/y.json.gz")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_reprocessing_can_be_cancelled_and_blocks_a_second_one() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    pipeline_with(&client, "c", None).await;
    send(&client, "c_channel", 0, 20_000).await;
    let id = client
        .start_pipeline_reprocessing()
        .pipeline_name("c_pipeline")
        .send()
        .await
        .unwrap()
        .reprocessing_id()
        .unwrap()
        .to_owned();
    let e = client
        .start_pipeline_reprocessing()
        .pipeline_name("c_pipeline")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceAlreadyExistsException");
    client
        .cancel_pipeline_reprocessing()
        .pipeline_name("c_pipeline")
        .reprocessing_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        wait_reprocessing(&client, "c_pipeline", &id).await,
        ReprocessingStatus::Cancelled
    );
    let stored: u64 = count(&client, "c_count", "c_datastore")
        .await
        .trim_start_matches("n\n")
        .trim()
        .parse()
        .unwrap();
    assert!(
        (20_000..40_000).contains(&stored),
        "a cancelled run stores part of the channel at most: {stored}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_range_selects_batches_on_s3_and_whole_segments_on_the_filesystem() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    pipeline_with(&client, "tr", None).await;
    send(&client, "tr_channel", 0, 100).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let split = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    tokio::time::sleep(Duration::from_millis(50)).await;
    send(&client, "tr_channel", 100, 30).await;
    let id = client
        .start_pipeline_reprocessing()
        .pipeline_name("tr_pipeline")
        .start_time(DateTime::from_secs_f64(split))
        .send()
        .await
        .unwrap()
        .reprocessing_id()
        .unwrap()
        .to_owned();
    assert_eq!(
        wait_reprocessing(&client, "tr_pipeline", &id).await,
        ReprocessingStatus::Succeeded
    );
    // S3 records each batch's arrival: only the 30 later messages run again. The filesystem
    // keeps both batches in one segment, which the range overlaps: all 130 run again.
    let expected = if on_s3_backend() { 160 } else { 260 };
    assert_eq!(
        count(&client, "tr_count", "tr_datastore").await,
        format!("n\n{expected}\n")
    );
}
