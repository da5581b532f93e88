//! Storage seen from outside: Parquet datastores, state across restarts, signature checks.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_iotanalytics::error::ProvideErrorMetadata;
use aws_sdk_iotanalytics::types::{
    Column, DatasetContentState, FileFormatConfiguration, ParquetConfiguration, SchemaDefinition,
};
use common::*;
use iotanalytics_service::Credentials;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_datastore_keeps_its_schema_and_writes_parquet_files() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    let schema = SchemaDefinition::builder()
        .columns(
            Column::builder()
                .name("rowid")
                .r#type("string")
                .build()
                .unwrap(),
        )
        .columns(
            Column::builder()
                .name("temp")
                .r#type("bigint")
                .build()
                .unwrap(),
        )
        .build();
    client
        .create_datastore()
        .datastore_name("pq_datastore")
        .file_format_configuration(
            FileFormatConfiguration::builder()
                .parquet_configuration(
                    ParquetConfiguration::builder()
                        .schema_definition(schema)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    client
        .create_channel()
        .channel_name("pq_channel")
        .send()
        .await
        .unwrap();
    create_pipeline(&client, "pq_pipeline", "pq_channel", None, "pq_datastore").await;
    client
        .batch_put_message()
        .channel_name("pq_channel")
        .messages(message("1", r#"{"rowid": "b", "temp": "63", "extra": 1}"#))
        .messages(message("2", r#"{"rowid": "a", "temp": 10}"#))
        .send()
        .await
        .unwrap();
    let listed = client.list_datastores().send().await.unwrap();
    assert_eq!(
        listed.datastore_summaries()[0]
            .file_format_type()
            .map(|f| f.as_str()),
        Some("PARQUET")
    );

    // Idle segments of a Parquet datastore are converted shortly after the writes stop.
    let dir = t.dir.path().join("datastores/pq_datastore");
    let deadline = Instant::now() + Duration::from_secs(20);
    let has_parquet = || {
        std::fs::read_dir(&dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
    };
    let mut most_pending = 0;
    while !has_parquet() {
        most_pending = most_pending.max(t.service.pending_background_work());
        assert!(
            Instant::now() < deadline,
            "no Parquet file appeared in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The sealed segment counted as pending until its conversion finished, and not after.
    assert!(
        t.service
            .wait_for_background_work(Duration::from_secs(20))
            .await,
        "the converted segment is still counted as pending"
    );
    assert_eq!(t.service.pending_background_work(), 0);
    assert!(
        most_pending <= 1,
        "one sealed segment was counted {most_pending} times"
    );
    let csv = run_sql(&client, "pq", "select * from pq_datastore order by rowid").await;
    assert_eq!(csv, "rowid,temp\na,10\nb,63\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_data_and_contents_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let t = start_with(dir, |_| {}).await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "keep").await;
    client
        .batch_put_message()
        .channel_name("keep_channel")
        .messages(message("1", r#"{"k": "x"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(
        run_sql(&client, "keep_ds", "select k from keep_datastore").await,
        "k\nx\n"
    );
    let TestService { service, dir, .. } = t;
    service.shutdown().await;

    let t = start_with(dir, |_| {}).await;
    assert_eq!(t.dir.path(), path);
    let client = common::client(&t.service.endpoint_url()).await;
    client
        .describe_channel()
        .channel_name("keep_channel")
        .send()
        .await
        .unwrap();
    client
        .describe_pipeline()
        .pipeline_name("keep_pipeline")
        .send()
        .await
        .unwrap();
    let old = client
        .get_dataset_content()
        .dataset_name("keep_ds")
        .version_id("$LATEST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.status().unwrap().state(),
        Some(&DatasetContentState::Succeeded)
    );
    assert_eq!(http_get(old.entries()[0].data_uri().unwrap()).2, "k\nx\n");
    client
        .batch_put_message()
        .channel_name("keep_channel")
        .messages(message("1", r#"{"k": "y"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(
        run_sql(
            &client,
            "keep_ds",
            "select k from keep_datastore order by k"
        )
        .await,
        "k\nx\ny\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_wrong_signature_are_rejected() {
    let t = start_with(tempfile::tempdir().unwrap(), |c| {
        c.credentials = Some(Credentials::new("AKIDGOOD", "right-secret"));
    })
    .await;
    let url = t.service.endpoint_url();
    let good = client_with(&url, "AKIDGOOD", "right-secret").await;
    good.create_channel()
        .channel_name("signed")
        .send()
        .await
        .unwrap();
    good.list_channels().send().await.unwrap();
    // A query string (`versionId=%24LATEST`, `maxResults`) is part of what is signed.
    let e = good
        .get_dataset_content()
        .dataset_name("none")
        .version_id("$LATEST")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
    good.list_channels().max_results(5).send().await.unwrap();

    let wrong_secret = client_with(&url, "AKIDGOOD", "wrong-secret").await;
    let e = wrong_secret.list_channels().send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidSignatureException"));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(403));

    let wrong_key = client_with(&url, "AKIDOTHER", "right-secret").await;
    let e = wrong_key.list_channels().send().await.unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"));

    let (status, headers, body) = http_get(&format!("{url}/channels"));
    assert_eq!(status, 403);
    assert!(headers.contains(&(
        "x-amzn-errortype".into(),
        "MissingAuthenticationTokenException".into()
    )));
    assert!(body.contains("\"message\""));
}
