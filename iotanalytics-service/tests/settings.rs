//! Tags, logging options, UpdateChannel and UpdateDatastore through the real SDK client, with
//! the error cases of each.

mod common;

use aws_sdk_iotanalytics::error::ProvideErrorMetadata;
use aws_sdk_iotanalytics::types::{
    ChannelStorage, CustomerManagedDatastoreS3Storage, DatastoreStorage, FileFormatConfiguration,
    LoggingLevel, LoggingOptions, ParquetConfiguration, RetentionPeriod,
    ServiceManagedChannelS3Storage, Tag,
};
use common::*;

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:iotanalytics:us-east-1:000000000000:{kind}/{name}")
}

fn days(n: i32) -> RetentionPeriod {
    RetentionPeriod::builder().number_of_days(n).build()
}

async fn tags_of(client: &aws_sdk_iotanalytics::Client, arn: &str) -> Vec<(String, String)> {
    client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_given_at_creation_are_listed_changed_and_removed_on_every_resource_kind() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_channel()
        .channel_name("tc")
        .tags(tag("env", "test"))
        .send()
        .await
        .unwrap();
    client
        .create_datastore()
        .datastore_name("td")
        .tags(tag("env", "test"))
        .send()
        .await
        .unwrap();
    setup_flow(&client, "tp").await;
    client
        .create_dataset()
        .dataset_name("tds")
        .actions(query_action("a", "select 1"))
        .tags(tag("owner", "data"))
        .send()
        .await
        .unwrap();

    assert_eq!(
        tags_of(&client, &arn("channel", "tc")).await,
        pairs(&[("env", "test")])
    );
    assert_eq!(
        tags_of(&client, &arn("dataset", "tds")).await,
        pairs(&[("owner", "data")])
    );
    assert!(
        tags_of(&client, &arn("pipeline", "tp_pipeline"))
            .await
            .is_empty()
    );

    for (kind, name) in [
        ("channel", "tc"),
        ("datastore", "td"),
        ("pipeline", "tp_pipeline"),
        ("dataset", "tds"),
    ] {
        client
            .tag_resource()
            .resource_arn(arn(kind, name))
            .tags(tag("env", "prod"))
            .tags(tag("team", "iot"))
            .send()
            .await
            .unwrap();
        let tags = tags_of(&client, &arn(kind, name)).await;
        assert!(
            tags.contains(&("env".into(), "prod".into())),
            "{kind}: {tags:?}"
        );
        assert!(
            tags.contains(&("team".into(), "iot".into())),
            "{kind}: {tags:?}"
        );
        client
            .untag_resource()
            .resource_arn(arn(kind, name))
            .tag_keys("env")
            .tag_keys("not_there")
            .send()
            .await
            .unwrap();
        let tags = tags_of(&client, &arn(kind, name)).await;
        assert!(!tags.iter().any(|(k, _)| k == "env"), "{kind}: {tags:?}");
        assert!(
            tags.contains(&("team".into(), "iot".into())),
            "{kind}: {tags:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_operations_refuse_bad_arns_missing_resources_and_too_many_tags() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_channel()
        .channel_name("c")
        .send()
        .await
        .unwrap();

    let e = client
        .list_tags_for_resource()
        .resource_arn(arn("channel", "missing"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    // TagResource on what it cannot tag: (resource ARN, tag, error).
    for (resource, bad, expected) in [
        (
            "arn:aws:s3:::some-bucket-name".to_owned(),
            tag("k", "v"),
            "InvalidRequestException",
        ),
        (
            "arn:aws:iotanalytics:eu-west-1:000000000000:channel/c".to_owned(),
            tag("k", "v"),
            "ResourceNotFoundException",
        ),
        (arn("channel", "c"), tag("k", ""), "InvalidRequestException"),
    ] {
        let e = client
            .tag_resource()
            .resource_arn(&resource)
            .tags(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), expected, "{resource}");
    }
    let e = client
        .untag_resource()
        .resource_arn(arn("datastore", "missing"))
        .tag_keys("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");

    let many: Vec<Tag> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
    client
        .tag_resource()
        .resource_arn(arn("channel", "c"))
        .set_tags(Some(many))
        .send()
        .await
        .unwrap();
    let e = client
        .tag_resource()
        .resource_arn(arn("channel", "c"))
        .tags(tag("one_more", "v"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "LimitExceededException");
    assert_eq!(tags_of(&client, &arn("channel", "c")).await.len(), 50);

    let e = client
        .create_channel()
        .channel_name("dup_tags")
        .tags(tag("k", "a"))
        .tags(tag("k", "b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_options_are_stored_validated_and_described() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    let e = client.describe_logging_options().send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");

    let options = |role: &str, level: &str, enabled: bool| {
        LoggingOptions::builder()
            .role_arn(role)
            .level(LoggingLevel::from(level))
            .enabled(enabled)
            .build()
            .unwrap()
    };
    let role = "arn:aws:iam::000000000000:role/iotanalytics-logs";
    client
        .put_logging_options()
        .logging_options(options(role, "ERROR", true))
        .send()
        .await
        .unwrap();
    client
        .put_logging_options()
        .logging_options(options(role, "ERROR", false))
        .send()
        .await
        .unwrap();
    let described = client.describe_logging_options().send().await.unwrap();
    let got = described.logging_options().unwrap();
    assert_eq!(got.role_arn(), role);
    assert_eq!(got.level().as_str(), "ERROR");
    assert!(!got.enabled());

    for (role, level) in [(role, "DEBUG"), ("not-a-role-arn-at-all", "ERROR")] {
        let e = client
            .put_logging_options()
            .logging_options(options(role, level, true))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidRequestException", "{role} {level}");
    }
    let still = client.describe_logging_options().send().await.unwrap();
    assert!(!still.logging_options().unwrap().enabled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_channel_changes_retention_but_not_storage() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_channel()
        .channel_name("uc")
        .send()
        .await
        .unwrap();
    client
        .update_channel()
        .channel_name("uc")
        .retention_period(days(7))
        .send()
        .await
        .unwrap();
    let channel = client
        .describe_channel()
        .channel_name("uc")
        .send()
        .await
        .unwrap();
    let retention = channel.channel().unwrap().retention_period().unwrap();
    assert_eq!(retention.number_of_days(), Some(7));
    assert!(!retention.unlimited());

    // The same storage given again is fine.
    client
        .update_channel()
        .channel_name("uc")
        .channel_storage(
            ChannelStorage::builder()
                .service_managed_s3(ServiceManagedChannelS3Storage::builder().build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let e = client
        .update_channel()
        .channel_name("uc")
        .channel_storage(
            ChannelStorage::builder()
                .customer_managed_s3(
                    aws_sdk_iotanalytics::types::CustomerManagedChannelS3Storage::builder()
                        .bucket("my-bucket")
                        .role_arn("arn:aws:iam::000000000000:role/r")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = client
        .update_channel()
        .channel_name("uc")
        .retention_period(days(0))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = client
        .update_channel()
        .channel_name("uc")
        .retention_period(
            RetentionPeriod::builder()
                .unlimited(true)
                .number_of_days(3)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = client
        .update_channel()
        .channel_name("missing")
        .retention_period(days(1))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let unchanged = client
        .describe_channel()
        .channel_name("uc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        unchanged
            .channel()
            .unwrap()
            .retention_period()
            .unwrap()
            .number_of_days(),
        Some(7)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_datastore_changes_retention_but_not_storage_or_format() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    client
        .create_datastore()
        .datastore_name("ud")
        .send()
        .await
        .unwrap();
    client
        .update_datastore()
        .datastore_name("ud")
        .retention_period(RetentionPeriod::builder().unlimited(true).build())
        .send()
        .await
        .unwrap();
    client
        .update_datastore()
        .datastore_name("ud")
        .retention_period(days(30))
        .send()
        .await
        .unwrap();
    let described = client
        .describe_datastore()
        .datastore_name("ud")
        .send()
        .await
        .unwrap();
    let datastore = described.datastore().unwrap();
    assert_eq!(
        datastore.retention_period().unwrap().number_of_days(),
        Some(30)
    );

    let e = client
        .update_datastore()
        .datastore_name("ud")
        .file_format_configuration(
            FileFormatConfiguration::builder()
                .parquet_configuration(ParquetConfiguration::builder().build())
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = client
        .update_datastore()
        .datastore_name("ud")
        .datastore_storage(DatastoreStorage::CustomerManagedS3(
            CustomerManagedDatastoreS3Storage::builder()
                .bucket("my-bucket")
                .role_arn("arn:aws:iam::000000000000:role/r")
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = client
        .update_datastore()
        .datastore_name("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = client
        .create_datastore()
        .datastore_name("bad_retention")
        .retention_period(days(0))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
}
