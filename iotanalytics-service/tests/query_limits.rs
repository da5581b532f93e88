//! A dataset query cannot take the service down: it fails within its memory, time and result
//! limits, deleting its dataset cancels it, and the other operations keep answering meanwhile.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::types::DatasetContentState;
use common::{client, message, query_action, setup_flow, start_with, wait_content};
use iotanalytics_service::QueryLimits;

const CROSS_JOIN: &str = "SELECT a.value x, b.value y FROM generate_series(1,100000) a \
                          CROSS JOIN generate_series(1,100000) b";
const ENDLESS: &str =
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM t) SELECT count(*) FROM t";

async fn start_content(client: &Client, dataset: &str, sql: &str) {
    client
        .create_dataset()
        .dataset_name(dataset)
        .actions(query_action("q", sql))
        .send()
        .await
        .unwrap();
    client
        .create_dataset_content()
        .dataset_name(dataset)
        .send()
        .await
        .unwrap();
}

/// The slowest of several ListChannels and BatchPutMessage calls made while `dataset`'s
/// content is being created.
async fn slowest_call_while_creating(client: &Client, dataset: &str) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        client.list_channels().send().await.unwrap();
        client
            .batch_put_message()
            .channel_name("limits_channel")
            .messages(message(i.to_string(), r#"{"n": 1}"#))
            .send()
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = client
        .get_dataset_content()
        .dataset_name(dataset)
        .send()
        .await
        .unwrap()
        .status()
        .unwrap()
        .state()
        .cloned();
    assert_eq!(
        state,
        Some(DatasetContentState::Creating),
        "the calls were measured while the query ran"
    );
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_queries_fail_within_their_limits_while_the_service_keeps_answering() {
    let t = start_with(tempfile::tempdir().unwrap(), |c| {
        c.query_limits = QueryLimits {
            memory_bytes: 64 << 20,
            time: Duration::from_secs(4),
            result_bytes: 512 << 20,
            concurrent: 2,
        };
    })
    .await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "limits").await;

    start_content(&client, "cross_join", CROSS_JOIN).await;
    start_content(&client, "endless", ENDLESS).await;
    let slowest = slowest_call_while_creating(&client, "endless").await;
    eprintln!(
        "slowest ListChannels + BatchPutMessage pair during two runaway queries: {slowest:?}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "calls took up to {slowest:?} while two runaway queries ran"
    );
    for dataset in ["cross_join", "endless"] {
        let (state, reason, _) = wait_content(&client, dataset).await;
        assert_eq!(state, DatasetContentState::Failed, "{dataset}");
        let reason = reason.unwrap_or_default();
        assert!(
            reason.contains("limit"),
            "{dataset} names the limit it hit: {reason}"
        );
    }
    t.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_dataset_cancels_its_running_query() {
    let t = start_with(tempfile::tempdir().unwrap(), |c| {
        c.query_limits = QueryLimits {
            time: Duration::from_secs(600),
            concurrent: 1,
            ..QueryLimits::default()
        };
    })
    .await;
    let client = client(&t.service.endpoint_url()).await;
    start_content(&client, "endless", ENDLESS).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .delete_dataset()
        .dataset_name("endless")
        .send()
        .await
        .unwrap();
    // One query at a time: this one runs only once the endless one has let go.
    let started = Instant::now();
    start_content(&client, "after", "SELECT 42 AS answer").await;
    let (state, reason, _) = wait_content(&client, "after").await;
    assert_eq!(state, DatasetContentState::Succeeded, "{reason:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the next query waited {:?}",
        started.elapsed()
    );
    t.service.shutdown().await;
}
