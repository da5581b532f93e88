//! Channel quotas and fault injection, seen by a client.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_iotanalytics::error::ProvideErrorMetadata;
use common::*;
use iotanalytics_service::FaultConfig;

fn batch(n: usize) -> Vec<aws_sdk_iotanalytics::types::Message> {
    (0..n)
        .map(|i| message(i.to_string(), &format!(r#"{{"i": {i}}}"#)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_over_its_quota_is_throttled_until_the_bucket_refills() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_channel()
        .channel_name("slow")
        .send()
        .await
        .unwrap();
    client
        .create_channel()
        .channel_name("fast")
        .send()
        .await
        .unwrap();
    t.service.set_channel_quota("slow", Some(150));
    let put = |c: &'static str| {
        client
            .batch_put_message()
            .channel_name(c)
            .set_messages(Some(batch(100)))
            .send()
    };
    put("slow").await.unwrap();
    let e = put("slow").await.unwrap_err();
    assert_eq!(e.code(), Some("ThrottlingException"));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(429));
    // Other channels keep the default quota.
    put("fast").await.unwrap();
    put("fast").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put("slow").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_default_quota_applies_to_every_channel() {
    let t = start_with(tempfile::tempdir().unwrap(), |c| c.channel_quota = 120).await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_channel()
        .channel_name("any")
        .send()
        .await
        .unwrap();
    let put = || {
        client
            .batch_put_message()
            .channel_name("any")
            .set_messages(Some(batch(100)))
            .send()
    };
    put().await.unwrap();
    assert_eq!(put().await.unwrap_err().code(), Some("ThrottlingException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_throttle_fail_reject_entries_and_delay() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "f").await;
    let put = || {
        client
            .batch_put_message()
            .channel_name("f_channel")
            .set_messages(Some(batch(100)))
            .send()
    };

    t.service.set_channel_faults(
        "f_channel",
        Some(FaultConfig {
            throttle_probability: 1.0,
            ..Default::default()
        }),
    );
    assert_eq!(put().await.unwrap_err().code(), Some("ThrottlingException"));

    t.service.set_channel_faults(
        "f_channel",
        Some(FaultConfig {
            server_error_probability: 1.0,
            ..Default::default()
        }),
    );
    let e = put().await.unwrap_err();
    assert_eq!(e.code(), Some("InternalFailureException"));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(500));

    t.service.controls().reseed(1);
    t.service.set_channel_faults(
        "f_channel",
        Some(FaultConfig {
            entry_error_probability: 0.3,
            ..Default::default()
        }),
    );
    let out = put().await.unwrap();
    let rejected = out.batch_put_message_error_entries().len();
    assert!(
        (10..=50).contains(&rejected),
        "{rejected} of 100 rejected at p=0.3"
    );
    assert!(
        out.batch_put_message_error_entries()
            .iter()
            .all(|e| e.error_code() == Some("InternalFailureException"))
    );

    t.service.set_channel_faults(
        "f_channel",
        Some(FaultConfig {
            latency: Duration::from_millis(300),
            ..Default::default()
        }),
    );
    let started = Instant::now();
    put().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));

    t.service.set_channel_faults("f_channel", None);
    put().await.unwrap();
    let stored = run_sql(&client, "count", "select count(*) as n from f_datastore").await;
    assert_eq!(stored, format!("n\n{}\n", 100 - rejected + 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_entry_faults_repeat_exactly() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let t = start_with(tempfile::tempdir().unwrap(), |c| {
            c.seed = Some(99);
            c.faults.entry_error_probability = 0.2;
        })
        .await;
        let client = client(&t.service.endpoint_url()).await;
        client
            .create_channel()
            .channel_name("seeded")
            .send()
            .await
            .unwrap();
        let out = client
            .batch_put_message()
            .channel_name("seeded")
            .set_messages(Some(batch(100)))
            .send()
            .await
            .unwrap();
        let ids: Vec<String> = out
            .batch_put_message_error_entries()
            .iter()
            .map(|e| e.message_id().unwrap().to_owned())
            .collect();
        runs.push(ids);
    }
    assert!(!runs[0].is_empty());
    assert_eq!(runs[0], runs[1]);
}
