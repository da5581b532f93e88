//! Every supported operation through the real SDK client, and the error cases of each.

mod common;

use aws_sdk_iotanalytics::error::ProvideErrorMetadata;
use aws_sdk_iotanalytics::types::{
    ChannelActivity, DatasetContentState, DatastoreActivity, FilterActivity, PipelineActivity,
    VersioningConfiguration,
};
use common::*;

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_can_be_created_described_listed_paged_and_deleted() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    for name in ["c_a", "c_b", "c_c"] {
        let out = client
            .create_channel()
            .channel_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(out.channel_name(), Some(name));
        assert_eq!(
            out.channel_arn(),
            Some(format!("arn:aws:iotanalytics:us-east-1:000000000000:channel/{name}").as_str())
        );
    }
    let described = client
        .describe_channel()
        .channel_name("c_a")
        .include_statistics(true)
        .send()
        .await
        .unwrap();
    let channel = described.channel().unwrap();
    assert_eq!(channel.name(), Some("c_a"));
    assert_eq!(channel.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert!(channel.creation_time().is_some());
    assert!(described.statistics().unwrap().size().is_some());

    let first = client.list_channels().max_results(2).send().await.unwrap();
    assert_eq!(first.channel_summaries().len(), 2);
    let token = first.next_token().expect("a second page").to_owned();
    let second = client
        .list_channels()
        .next_token(token)
        .send()
        .await
        .unwrap();
    let names: Vec<_> = second
        .channel_summaries()
        .iter()
        .filter_map(|c| c.channel_name())
        .collect();
    assert_eq!(names, ["c_c"]);
    assert!(second.next_token().is_none());

    client
        .delete_channel()
        .channel_name("c_b")
        .send()
        .await
        .unwrap();
    let err = client
        .describe_channel()
        .channel_name("c_b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
    assert_eq!(
        client
            .list_channels()
            .send()
            .await
            .unwrap()
            .channel_summaries()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_badly_named_resources_are_rejected() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "dup").await;
    let e = client
        .create_channel()
        .channel_name("dup_channel")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceAlreadyExistsException");
    let e = client
        .create_datastore()
        .datastore_name("dup_datastore")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceAlreadyExistsException");
    let e = client
        .create_channel()
        .channel_name("bad-name")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = client
        .create_datastore()
        .datastore_name("x".repeat(129))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    client
        .create_dataset()
        .dataset_name("dup_dataset")
        .actions(query_action("a", "select 1"))
        .send()
        .await
        .unwrap();
    let e = client
        .create_dataset()
        .dataset_name("dup_dataset")
        .actions(query_action("a", "select 1"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceAlreadyExistsException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_resources_answer_resource_not_found() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    let e = client
        .describe_datastore()
        .datastore_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = client
        .describe_pipeline()
        .pipeline_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = client
        .delete_dataset()
        .dataset_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = client
        .batch_put_message()
        .channel_name("nope")
        .messages(message("1", "{}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = client
        .create_dataset_content()
        .dataset_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_put_message_enforces_the_request_limits() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_channel()
        .channel_name("limits")
        .send()
        .await
        .unwrap();
    let send = |msgs: Vec<aws_sdk_iotanalytics::types::Message>| {
        client
            .batch_put_message()
            .channel_name("limits")
            .set_messages(Some(msgs))
            .send()
    };
    let e = send(vec![]).await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = send((0..101).map(|i| message(i.to_string(), "{}")).collect())
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert!(
        send((0..100).map(|i| message(i.to_string(), "{}")).collect())
            .await
            .is_ok()
    );
    let e = send(vec![message("1", "{}"), message("1", "{}")])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert!(
        e.message().unwrap().contains("more than once"),
        "{:?}",
        e.message()
    );
    let e = send(vec![message("m".repeat(129), "{}")])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert!(send(vec![message("m".repeat(128), "{}")]).await.is_ok());
    let e = send(vec![message("", "{}")]).await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let big = format!(r#"{{"a": "{}"}}"#, "x".repeat(128 * 1024));
    let e = send(vec![message("1", &big)]).await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let fits = format!(r#"{{"a": "{}"}}"#, "x".repeat(128 * 1024 - 10));
    assert!(send(vec![message("1", &fits)]).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_are_reported_per_message_and_the_rest_is_stored() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "bad").await;
    let out = client
        .batch_put_message()
        .channel_name("bad_channel")
        .messages(message("ok", r#"{"temp": 1}"#))
        .messages(message("digit", r#"{"1temp": 1}"#))
        .messages(message("dash", r#"{"te-mp": 1}"#))
        .messages(message("array", "[1, 2]"))
        .messages(message("text", "not json"))
        .messages(message("case", r#"{"temp": 1, "TEMP": 2}"#))
        .send()
        .await
        .unwrap();
    let mut failed: Vec<_> = out
        .batch_put_message_error_entries()
        .iter()
        .map(|e| {
            (
                e.message_id().unwrap().to_owned(),
                e.error_code().unwrap().to_owned(),
            )
        })
        .collect();
    failed.sort();
    let expected: Vec<_> = ["array", "case", "dash", "digit", "text"]
        .iter()
        .map(|id| (id.to_string(), "InvalidRequestException".to_owned()))
        .collect();
    assert_eq!(failed, expected);
    assert!(
        out.batch_put_message_error_entries()[0]
            .error_message()
            .is_some()
    );

    let sample = client
        .sample_channel_data()
        .channel_name("bad_channel")
        .send()
        .await
        .unwrap();
    let payloads: Vec<_> = sample
        .payloads()
        .iter()
        .map(|p| p.as_ref().to_vec())
        .collect();
    assert_eq!(payloads, [br#"{"temp": 1}"#.to_vec()]);
    assert_eq!(
        run_sql(&client, "bad_ds", "select count(*) as n from bad_datastore").await,
        "n\n1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_channel_data_returns_the_latest_messages() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_channel()
        .channel_name("sampled")
        .send()
        .await
        .unwrap();
    let mut req = client.batch_put_message().channel_name("sampled");
    for i in 0..20 {
        req = req.messages(message(i.to_string(), &format!(r#"{{"i": {i}}}"#)));
    }
    req.send().await.unwrap();
    let out = client
        .sample_channel_data()
        .channel_name("sampled")
        .max_messages(3)
        .send()
        .await
        .unwrap();
    let got: Vec<String> = out
        .payloads()
        .iter()
        .map(|p| String::from_utf8(p.as_ref().to_vec()).unwrap())
        .collect();
    assert_eq!(got, [r#"{"i": 17}"#, r#"{"i": 18}"#, r#"{"i": 19}"#]);
    let e = client
        .sample_channel_data()
        .channel_name("sampled")
        .max_messages(11)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_filter_and_reshape_messages_and_reject_unsupported_activities() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_channel()
        .channel_name("raw")
        .send()
        .await
        .unwrap();
    client
        .create_datastore()
        .datastore_name("hot")
        .send()
        .await
        .unwrap();
    let activities = vec![
        PipelineActivity::builder()
            .channel(
                ChannelActivity::builder()
                    .name("in")
                    .channel_name("raw")
                    .next("hot_only")
                    .build()
                    .unwrap(),
            )
            .build(),
        PipelineActivity::builder()
            .filter(
                FilterActivity::builder()
                    .name("hot_only")
                    .filter("temp > 40")
                    .next("trim")
                    .build()
                    .unwrap(),
            )
            .build(),
        PipelineActivity::builder()
            .remove_attributes(
                aws_sdk_iotanalytics::types::RemoveAttributesActivity::builder()
                    .name("trim")
                    .attributes("secret")
                    .next("out")
                    .build()
                    .unwrap(),
            )
            .build(),
        PipelineActivity::builder()
            .datastore(
                DatastoreActivity::builder()
                    .name("out")
                    .datastore_name("hot")
                    .build()
                    .unwrap(),
            )
            .build(),
    ];
    client
        .create_pipeline()
        .pipeline_name("hot_pipeline")
        .set_pipeline_activities(Some(activities.clone()))
        .send()
        .await
        .unwrap();
    let described = client
        .describe_pipeline()
        .pipeline_name("hot_pipeline")
        .send()
        .await
        .unwrap();
    assert_eq!(described.pipeline().unwrap().activities().len(), 4);
    assert_eq!(
        client
            .list_pipelines()
            .send()
            .await
            .unwrap()
            .pipeline_summaries()
            .len(),
        1
    );

    client
        .batch_put_message()
        .channel_name("raw")
        .messages(message("1", r#"{"temp": "10", "secret": "s"}"#))
        .messages(message("2", r#"{"temp": "50", "secret": "s"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(
        run_sql(&client, "hot_ds", "select * from hot").await,
        "temp\n50\n"
    );

    let mut with_lambda = activities.clone();
    with_lambda[2] = PipelineActivity::builder()
        .lambda(
            aws_sdk_iotanalytics::types::LambdaActivity::builder()
                .name("trim")
                .lambda_name("f")
                .batch_size(1)
                .next("out")
                .build()
                .unwrap(),
        )
        .build();
    let e = client
        .create_pipeline()
        .pipeline_name("lambda_pipeline")
        .set_pipeline_activities(Some(with_lambda.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert!(
        e.message().unwrap().contains("'lambda'"),
        "{:?}",
        e.message()
    );
    let e = client
        .update_pipeline()
        .pipeline_name("hot_pipeline")
        .set_pipeline_activities(Some(with_lambda))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");

    client
        .delete_pipeline()
        .pipeline_name("hot_pipeline")
        .send()
        .await
        .unwrap();
    assert!(
        client
            .list_pipelines()
            .send()
            .await
            .unwrap()
            .pipeline_summaries()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_and_their_contents_go_through_every_operation() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "ds").await;
    client
        .batch_put_message()
        .channel_name("ds_channel")
        .messages(message("1", r#"{"v": 1}"#))
        .messages(message("2", r#"{"v": 2}"#))
        .send()
        .await
        .unwrap();
    client
        .create_dataset()
        .dataset_name("sums")
        .actions(query_action("q", "select sum(v) as s from ds_datastore"))
        .versioning_configuration(VersioningConfiguration::builder().max_versions(5).build())
        .send()
        .await
        .unwrap();
    let described = client
        .describe_dataset()
        .dataset_name("sums")
        .send()
        .await
        .unwrap();
    let sql = described.dataset().unwrap().actions()[0]
        .query_action()
        .unwrap()
        .sql_query();
    assert_eq!(sql, "select sum(v) as s from ds_datastore");
    assert_eq!(
        client
            .list_datasets()
            .send()
            .await
            .unwrap()
            .dataset_summaries()
            .len(),
        1
    );
    let e = client
        .get_dataset_content()
        .dataset_name("sums")
        .version_id("$LATEST")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");

    let v1 = client
        .create_dataset_content()
        .dataset_name("sums")
        .send()
        .await
        .unwrap();
    let v1 = v1.version_id().unwrap().to_owned();
    let e = client
        .create_dataset_content()
        .dataset_name("sums")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        "ThrottlingException",
        "a second content within a second is throttled"
    );
    let (state, _, uri) = wait_content(&client, "sums").await;
    assert_eq!(state, DatasetContentState::Succeeded);
    assert_eq!(http_get(&uri.unwrap()).2, "s\n3\n");

    // The workflow's validator updates the SQL of an existing dataset.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    client
        .update_dataset()
        .dataset_name("sums")
        .actions(query_action("q", "select max(v) as m from ds_datastore"))
        .send()
        .await
        .unwrap();
    let v2 = client
        .create_dataset_content()
        .dataset_name("sums")
        .send()
        .await
        .unwrap();
    let v2 = v2.version_id().unwrap().to_owned();
    let (_, _, uri) = wait_content(&client, "sums").await;
    assert_eq!(http_get(&uri.unwrap()).2, "m\n2\n");

    let by_id = client
        .get_dataset_content()
        .dataset_name("sums")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(http_get(by_id.entries()[0].data_uri().unwrap()).2, "s\n3\n");
    let listed = client
        .list_dataset_contents()
        .dataset_name("sums")
        .send()
        .await
        .unwrap();
    let versions: Vec<_> = listed
        .dataset_content_summaries()
        .iter()
        .filter_map(|s| s.version())
        .collect();
    assert_eq!(versions, [v2.as_str(), v1.as_str()], "newest first");

    client
        .delete_dataset_content()
        .dataset_name("sums")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    let latest = client
        .get_dataset_content()
        .dataset_name("sums")
        .version_id("$LATEST_SUCCEEDED")
        .send()
        .await
        .unwrap();
    assert_eq!(
        http_get(latest.entries()[0].data_uri().unwrap()).2,
        "s\n3\n"
    );

    client
        .delete_dataset()
        .dataset_name("sums")
        .send()
        .await
        .unwrap();
    assert!(
        client
            .list_datasets()
            .send()
            .await
            .unwrap()
            .dataset_summaries()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_query_leaves_failed_content_with_the_reason() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_dataset()
        .dataset_name("broken")
        .actions(query_action("q", "select nothing from no_such_datastore"))
        .send()
        .await
        .unwrap();
    client
        .create_dataset_content()
        .dataset_name("broken")
        .send()
        .await
        .unwrap();
    let (state, reason, uri) = wait_content(&client, "broken").await;
    assert_eq!(state, DatasetContentState::Failed);
    assert!(reason.unwrap().contains("no_such_datastore"));
    assert!(uri.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datastores_describe_with_statistics_and_delete() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "st").await;
    client
        .batch_put_message()
        .channel_name("st_channel")
        .messages(message("1", r#"{"a": 1}"#))
        .send()
        .await
        .unwrap();
    let out = client
        .describe_datastore()
        .datastore_name("st_datastore")
        .include_statistics(true)
        .send()
        .await
        .unwrap();
    let size = out
        .statistics()
        .unwrap()
        .size()
        .unwrap()
        .estimated_size_in_bytes()
        .unwrap();
    assert!(size >= 9.0, "size {size}");
    assert!(
        out.datastore()
            .unwrap()
            .last_message_arrival_time()
            .is_some()
    );
    let listed = client.list_datastores().send().await.unwrap();
    assert_eq!(
        listed.datastore_summaries()[0]
            .file_format_type()
            .map(|f| f.as_str()),
        Some("JSON")
    );
    client
        .delete_datastore()
        .datastore_name("st_datastore")
        .send()
        .await
        .unwrap();
    assert!(!t.dir.path().join("datastores/st_datastore").exists());
    let e = client
        .delete_datastore()
        .datastore_name("st_datastore")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
}
