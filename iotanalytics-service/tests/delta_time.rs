//! `deltaTime` dataset filters through the real SDK client: each content sees only the
//! messages whose time expression falls after the previous content's window.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::types::{
    DatasetAction, DatasetContentState, DeltaTime, QueryFilter, SqlQueryDatasetAction,
};
use common::*;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn send(client: &Client, first_id: usize, times: &[i64]) {
    let mut req = client.batch_put_message().channel_name("dt_channel");
    for (i, t) in times.iter().enumerate() {
        req = req.messages(message(
            (first_id + i).to_string(),
            &format!(r#"{{"time": {t}}}"#),
        ));
    }
    req.send().await.unwrap();
}

async fn content(client: &Client) -> String {
    client
        .create_dataset_content()
        .dataset_name("windowed")
        .send()
        .await
        .unwrap();
    let (state, reason, uri) = wait_content(client, "windowed").await;
    assert_eq!(state, DatasetContentState::Succeeded, "{reason:?}");
    http_get(&uri.unwrap()).2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_content_sees_only_the_messages_since_the_previous_window() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "dt").await;
    let action = DatasetAction::builder()
        .action_name("q")
        .query_action(
            SqlQueryDatasetAction::builder()
                .sql_query("select count(*) as n from dt_datastore")
                .filters(
                    QueryFilter::builder()
                        .delta_time(
                            DeltaTime::builder()
                                .offset_seconds(0)
                                .time_expression("from_unixtime(time)")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .build();
    client
        .create_dataset()
        .dataset_name("windowed")
        .actions(action)
        .send()
        .await
        .unwrap();

    let past = now() - 1000;
    send(&client, 0, &[past, past + 1, now() + 10_000]).await;
    assert_eq!(
        content(&client).await,
        "n\n2\n",
        "the first window runs up to now"
    );

    send(&client, 10, &[now(), now(), now()]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        content(&client).await,
        "n\n3\n",
        "the second window holds only the newer messages"
    );
}
