//! Retention on a shortened clock: a channel's and a datastore's `retentionPeriod` removes the
//! messages older than it, and leaves newer ones and unlimited resources alone.

mod common;

use std::time::Duration;

use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::types::RetentionPeriod;
use common::*;
use iotanalytics_service::RetentionClock;

async fn send(client: &Client, from: usize, n: usize) {
    let mut req = client.batch_put_message().channel_name("ret_channel");
    for i in from..from + n {
        req = req.messages(message(i.to_string(), &format!(r#"{{"n": {i}}}"#)));
    }
    req.send().await.unwrap();
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
async fn data_older_than_the_retention_period_is_removed_and_newer_data_kept() {
    let t = start_with(tempfile::tempdir().unwrap(), |c| {
        c.retention = RetentionClock {
            day: Duration::from_secs(2),
            sweep_every: Duration::from_millis(100),
        };
    })
    .await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "ret").await;
    client
        .create_datastore()
        .datastore_name("kept")
        .send()
        .await
        .unwrap();
    create_pipeline(&client, "kept_pipeline", "ret_channel", None, "kept").await;
    let one_day = RetentionPeriod::builder().number_of_days(1).build();
    client
        .update_channel()
        .channel_name("ret_channel")
        .retention_period(one_day.clone())
        .send()
        .await
        .unwrap();
    client
        .update_datastore()
        .datastore_name("ret_datastore")
        .retention_period(one_day)
        .send()
        .await
        .unwrap();

    send(&client, 0, 10).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    send(&client, 10, 5).await;

    assert_eq!(count(&client, "ret_count", "ret_datastore").await, "n\n5\n");
    assert_eq!(count(&client, "kept_count", "kept").await, "n\n15\n");
    let sample = client
        .sample_channel_data()
        .channel_name("ret_channel")
        .send()
        .await
        .unwrap();
    assert_eq!(
        sample.payloads().len(),
        5,
        "only the newer messages are left in the channel"
    );
    let describe = client
        .describe_datastore()
        .datastore_name("ret_datastore")
        .include_statistics(true)
        .send()
        .await
        .unwrap();
    assert!(describe.statistics().unwrap().size().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_contents_older_than_the_dataset_retention_period_are_removed() {
    let t = start_with(tempfile::tempdir().unwrap(), |c| {
        c.retention = RetentionClock {
            day: Duration::from_secs(2),
            sweep_every: Duration::from_millis(100),
        };
    })
    .await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_dataset()
        .dataset_name("old")
        .actions(query_action("q", "select 1 as one"))
        .retention_period(RetentionPeriod::builder().number_of_days(1).build())
        .send()
        .await
        .unwrap();
    client
        .create_dataset()
        .dataset_name("young")
        .actions(query_action("q", "select 1 as one"))
        .retention_period(RetentionPeriod::builder().number_of_days(30).build())
        .send()
        .await
        .unwrap();
    for dataset in ["old", "young"] {
        client
            .create_dataset_content()
            .dataset_name(dataset)
            .send()
            .await
            .unwrap();
        wait_content(&client, dataset).await;
    }
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let versions = |name: &'static str| {
        let client = client.clone();
        async move {
            client
                .list_dataset_contents()
                .dataset_name(name)
                .send()
                .await
                .unwrap()
                .dataset_content_summaries()
                .len()
        }
    };
    assert_eq!(versions("old").await, 0, "the 1-day-old content is gone");
    assert_eq!(versions("young").await, 1);
}
