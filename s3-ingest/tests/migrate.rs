//! `s3-ingest migrate` against the local stack: the binary recreates resources from
//! describe-* output and a CloudFormation template, and the real SDK client finds them.

use std::path::Path;
use std::process::{Command, Output};

use aws_sdk_iotanalytics::Client;
use s3_ingest::stack::{LocalStack, StackOptions, WorkflowNames};

/// Runs the binary with the stack's export lines as its environment (and no AWS
/// configuration of the machine's own).
async fn migrate(stack: &LocalStack, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_s3-ingest"));
    command
        .arg("migrate")
        .args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (name, value) in stack.exports() {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn start(dir: &Path) -> LocalStack {
    LocalStack::start(StackOptions::new(dir), &WorkflowNames::default())
        .await
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// What `aws iotanalytics describe-*` printed for the old setup, read-only fields included.
const DESCRIBED: [(&str, &str); 4] = [
    (
        "channel.json",
        r#"{"channel": {"name": "old_raw", "arn": "arn:aws:iotanalytics:us-east-1:111122223333:channel/old_raw",
          "storage": {"serviceManagedS3": {}}, "status": "ACTIVE",
          "retentionPeriod": {"unlimited": false, "numberOfDays": 30},
          "creationTime": "2024-03-01T10:00:00+00:00", "lastUpdateTime": "2024-03-01T10:00:00+00:00",
          "lastMessageArrivalTime": "2025-12-14T23:59:00+00:00"}}"#,
    ),
    (
        "datastore.json",
        r#"{"datastore": {"name": "old_store", "storage": {"serviceManagedS3": {}},
          "arn": "arn:aws:iotanalytics:us-east-1:111122223333:datastore/old_store", "status": "ACTIVE",
          "retentionPeriod": {"unlimited": false, "numberOfDays": 90},
          "fileFormatConfiguration": {"jsonConfiguration": {}},
          "creationTime": "2024-03-01T10:00:00+00:00", "lastUpdateTime": "2024-03-01T10:00:00+00:00"},
          "statistics": {"size": {"estimatedSizeInBytes": 12345.0, "estimatedOn": "2025-12-14T00:00:00+00:00"}}}"#,
    ),
    (
        // list-pipelines and describe-pipeline output, concatenated.
        "pipeline.json",
        r#"{"pipelineSummaries": [{"pipelineName": "old_pipeline", "reprocessingSummaries": []}]}
        {"pipeline": {"name": "old_pipeline", "arn": "arn:aws:iotanalytics:us-east-1:111122223333:pipeline/old_pipeline",
          "activities": [
            {"channel": {"name": "from_channel", "channelName": "old_raw", "next": "to_fahrenheit"}},
            {"math": {"name": "to_fahrenheit", "attribute": "temp_f", "math": "temp * 9 / 5 + 32", "next": "hot_only"}},
            {"filter": {"name": "hot_only", "filter": "temp_f > 50", "next": "to_store"}},
            {"datastore": {"name": "to_store", "datastoreName": "old_store"}}],
          "reprocessingSummaries": [], "creationTime": "2024-03-01T10:00:00+00:00"}}"#,
    ),
    (
        "dataset.json",
        r#"[{"dataset": {"name": "old_daily", "arn": "arn:aws:iotanalytics:us-east-1:111122223333:dataset/old_daily",
          "actions": [{"actionName": "daily_query", "queryAction": {"sqlQuery": "SELECT deviceid, temp_f FROM old_store", "filters": []}}],
          "triggers": [{"schedule": {"expression": "cron(0 1 * * ? *)"}}],
          "contentDeliveryRules": [], "status": "ACTIVE",
          "creationTime": "2024-03-01T10:00:00+00:00", "lastUpdateTime": "2024-03-01T10:00:00+00:00",
          "retentionPeriod": {"unlimited": false, "numberOfDays": 7},
          "versioningConfiguration": {"unlimited": false, "maxVersions": 3}, "lateDataRules": []}}]"#,
    ),
];

/// The same kind of setup as a CloudFormation template, with parameters and intrinsics.
const TEMPLATE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Site:
    Type: String
    Default: mill
Resources:
  Raw:
    Type: AWS::IoTAnalytics::Channel
    Properties:
      ChannelName: !Sub "${Site}_raw"
      RetentionPeriod: {NumberOfDays: 14, Unlimited: false}
      Tags:
        - {Key: site, Value: !Ref Site}
        - {Key: owner, Value: plant-ops}
  Store:
    Type: AWS::IoTAnalytics::Datastore
    Properties:
      DatastoreName: !Join ["_", [!Ref Site, store]]
      RetentionPeriod: {Unlimited: true}
      Tags: [{Key: site, Value: mill}]
  Flow:
    Type: AWS::IoTAnalytics::Pipeline
    Properties:
      PipelineName: mill_pipeline
      PipelineActivities:
        - Channel: {Name: source, ChannelName: !Ref Raw, Next: scale}
        - Math: {Name: scale, Attribute: pressure_kpa, Math: "pressure * 100", Next: valid}
        - Filter: {Name: valid, Filter: "pressure_kpa BETWEEN 0 AND 1000", Next: sink}
        - Datastore: {Name: sink, DatastoreName: !Ref Store}
      Tags: [{Key: site, Value: mill}]
  Hourly:
    Type: AWS::IoTAnalytics::Dataset
    Properties:
      DatasetName: mill_hourly
      Actions:
        - ActionName: hourly_query
          QueryAction:
            SqlQuery: !Sub "SELECT count(*) AS readings FROM ${Store}"
      Triggers:
        - Schedule: {ScheduleExpression: "rate(1 hour)"}
      VersioningConfiguration: {MaxVersions: 5}
      RetentionPeriod: {NumberOfDays: 30}
      Tags: [{Key: site, Value: mill}]
"#;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn tags(client: &Client, arn: Option<&str>) -> Vec<(String, String)> {
    let mut tags: Vec<_> = client
        .list_tags_for_resource()
        .resource_arn(arn.unwrap())
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_output_and_a_template_are_recreated_field_for_field_and_a_second_run_skips_them()
{
    let dir = tempfile::tempdir().unwrap();
    let stack = start(&dir.path().join("stack")).await;
    let mut files: Vec<String> = DESCRIBED
        .iter()
        .map(|(name, text)| write(dir.path(), name, text))
        .collect();
    files.push(write(dir.path(), "template.yaml", TEMPLATE));
    let args: Vec<&str> = files.iter().map(String::as_str).collect();

    let output = migrate(&stack, &args).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{:?}", output);
    // Dependency order: channels, datastores, pipelines, datasets.
    let created: Vec<&str> = out.lines().filter(|l| l.starts_with("created")).collect();
    assert_eq!(
        created,
        [
            "created channel old_raw",
            "created channel mill_raw",
            "created datastore old_store",
            "created datastore mill_store",
            "created pipeline old_pipeline",
            "created pipeline mill_pipeline",
            "created dataset old_daily",
            "created dataset mill_hourly",
        ],
        "{out}"
    );
    assert!(
        out.contains("8 created, 0 updated, 0 skipped, 0 failed"),
        "{out}"
    );

    let client = &stack.clients.iotanalytics;
    let channel = client
        .describe_channel()
        .channel_name("old_raw")
        .send()
        .await
        .unwrap();
    let channel = channel.channel().unwrap();
    assert_eq!(
        channel.retention_period().unwrap().number_of_days(),
        Some(30)
    );
    assert!(channel.storage().unwrap().service_managed_s3().is_some());
    let mill = client
        .describe_channel()
        .channel_name("mill_raw")
        .send()
        .await
        .unwrap();
    let mill = mill.channel().unwrap();
    assert_eq!(mill.retention_period().unwrap().number_of_days(), Some(14));
    assert_eq!(
        tags(client, mill.arn()).await,
        [
            ("owner".to_owned(), "plant-ops".to_owned()),
            ("site".to_owned(), "mill".to_owned())
        ]
    );

    let store = client
        .describe_datastore()
        .datastore_name("old_store")
        .send()
        .await
        .unwrap();
    let store = store.datastore().unwrap();
    assert_eq!(store.retention_period().unwrap().number_of_days(), Some(90));
    assert!(
        store
            .file_format_configuration()
            .unwrap()
            .json_configuration()
            .is_some()
    );
    let mill_store = client
        .describe_datastore()
        .datastore_name("mill_store")
        .send()
        .await
        .unwrap();
    let mill_store = mill_store.datastore().unwrap();
    assert!(mill_store.retention_period().unwrap().unlimited());
    assert_eq!(
        tags(client, mill_store.arn()).await,
        [("site".to_owned(), "mill".to_owned())]
    );

    let pipeline = client
        .describe_pipeline()
        .pipeline_name("old_pipeline")
        .send()
        .await
        .unwrap();
    let activities = pipeline.pipeline().unwrap().activities();
    assert_eq!(activities.len(), 4);
    assert_eq!(activities[0].channel().unwrap().channel_name(), "old_raw");
    let math = activities[1].math().unwrap();
    assert_eq!(
        (math.attribute(), math.math()),
        ("temp_f", "temp * 9 / 5 + 32")
    );
    assert_eq!(activities[2].filter().unwrap().filter(), "temp_f > 50");
    assert_eq!(
        activities[3].datastore().unwrap().datastore_name(),
        "old_store"
    );
    let mill_pipeline = client
        .describe_pipeline()
        .pipeline_name("mill_pipeline")
        .send()
        .await
        .unwrap();
    let mill_pipeline = mill_pipeline.pipeline().unwrap();
    let activities = mill_pipeline.activities();
    assert_eq!(activities[0].channel().unwrap().channel_name(), "mill_raw");
    assert_eq!(activities[1].math().unwrap().math(), "pressure * 100");
    assert_eq!(
        activities[2].filter().unwrap().filter(),
        "pressure_kpa BETWEEN 0 AND 1000"
    );
    assert_eq!(
        activities[3].datastore().unwrap().datastore_name(),
        "mill_store"
    );
    assert_eq!(
        tags(client, mill_pipeline.arn()).await,
        [("site".to_owned(), "mill".to_owned())]
    );

    let dataset = client
        .describe_dataset()
        .dataset_name("old_daily")
        .send()
        .await
        .unwrap();
    let dataset = dataset.dataset().unwrap();
    assert_eq!(
        dataset.actions()[0].query_action().unwrap().sql_query(),
        "SELECT deviceid, temp_f FROM old_store"
    );
    assert_eq!(
        dataset.triggers()[0].schedule().unwrap().expression(),
        Some("cron(0 1 * * ? *)")
    );
    assert_eq!(
        dataset.versioning_configuration().unwrap().max_versions(),
        Some(3)
    );
    assert_eq!(
        dataset.retention_period().unwrap().number_of_days(),
        Some(7)
    );
    let hourly = client
        .describe_dataset()
        .dataset_name("mill_hourly")
        .send()
        .await
        .unwrap();
    let hourly = hourly.dataset().unwrap();
    assert_eq!(
        hourly.actions()[0].query_action().unwrap().sql_query(),
        "SELECT count(*) AS readings FROM mill_store"
    );
    assert_eq!(
        hourly.triggers()[0].schedule().unwrap().expression(),
        Some("rate(1 hour)")
    );
    assert_eq!(
        hourly.versioning_configuration().unwrap().max_versions(),
        Some(5)
    );
    assert_eq!(
        tags(client, hourly.arn()).await,
        [("site".to_owned(), "mill".to_owned())]
    );

    // A second run finds everything and changes nothing.
    let again = migrate(&stack, &args).await;
    let out = stdout(&again);
    assert_eq!(again.status.code(), Some(0), "{out}");
    assert!(
        out.contains("0 created, 0 updated, 8 skipped, 0 failed"),
        "{out}"
    );
    assert!(out.contains("skipped channel mill_raw: it exists"), "{out}");

    // --update replaces the definitions: a longer retention and a new tag.
    let changed = TEMPLATE
        .replace("NumberOfDays: 14", "NumberOfDays: 60")
        .replace("Value: plant-ops", "Value: data-team");
    let template = write(dir.path(), "changed.yaml", &changed);
    let updated = migrate(&stack, &["--update", &template]).await;
    let out = stdout(&updated);
    assert_eq!(updated.status.code(), Some(0), "{out}");
    assert!(
        out.contains("0 created, 4 updated, 0 skipped, 0 failed"),
        "{out}"
    );
    let mill = client
        .describe_channel()
        .channel_name("mill_raw")
        .send()
        .await
        .unwrap();
    let mill = mill.channel().unwrap();
    assert_eq!(mill.retention_period().unwrap().number_of_days(), Some(60));
    assert!(
        tags(client, mill.arn())
            .await
            .contains(&("owner".to_owned(), "data-team".to_owned()))
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_with_an_unresolvable_intrinsic_fails_naming_it_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start(&dir.path().join("stack")).await;
    let template = TEMPLATE.replace(
        "DatastoreName: !Ref Store}",
        "DatastoreName: !GetAtt Store.DatastoreName}",
    );
    let file = write(dir.path(), "template.yaml", &template);
    let output = migrate(&stack, &[&file]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "resource Flow (AWS::IoTAnalytics::Pipeline), property \
             PipelineActivities[3].Datastore.DatastoreName: Fn::GetAtt cannot be resolved"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
    let channels = stack
        .clients
        .iotanalytics
        .list_channels()
        .send()
        .await
        .unwrap();
    assert!(
        !channels
            .channel_summaries()
            .iter()
            .any(|c| c.channel_name() == Some("mill_raw")),
        "nothing is created from a template that cannot be read"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_resource_fails_alone_a_dry_run_calls_nothing_and_a_silent_endpoint_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start(&dir.path().join("stack")).await;
    let file = write(
        dir.path(),
        "exported.json",
        r#"{"channel": {"name": "enrich_in"}}
        {"datastore": {"name": "enrich_out"}}
        {"pipeline": {"name": "enrich", "activities": [
            {"channel": {"name": "a", "channelName": "enrich_in", "next": "b"}},
            {"lambda": {"name": "b", "lambdaName": "enrich_fn", "batchSize": 10, "next": "c"}},
            {"datastore": {"name": "c", "datastoreName": "enrich_out"}}]}}
        {"dataset": {"name": "enrich_report", "actions": [{"actionName": "q",
            "queryAction": {"sqlQuery": "SELECT * FROM enrich_out"}}]}}"#,
    );
    // --endpoint-url instead of the environment's endpoint.
    let endpoint = stack.iotanalytics.endpoint_url();
    let mut command_args = vec!["--endpoint-url", endpoint.as_str(), file.as_str()];
    let output = migrate(&stack, &command_args).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let failed = out
        .lines()
        .find(|l| l.starts_with("failed pipeline enrich"))
        .unwrap_or_else(|| panic!("no failure line in {out}"));
    assert!(failed.contains("InvalidRequestException"), "{failed}");
    assert!(failed.to_lowercase().contains("lambda"), "{failed}");
    assert!(out.contains("created channel enrich_in"), "{out}");
    assert!(out.contains("created dataset enrich_report"), "{out}");
    assert!(
        out.contains("3 created, 0 updated, 0 skipped, 1 failed"),
        "{out}"
    );

    // --dry-run prints the requests and calls nothing.
    command_args.insert(0, "--dry-run");
    let dry = migrate(&stack, &command_args).await;
    let out = stdout(&dry);
    assert_eq!(dry.status.code(), Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("would create pipeline enrich"))
        .unwrap_or_else(|| panic!("{out}"));
    let body: serde_json::Value = serde_json::from_str(&line[line.find('{').unwrap()..]).unwrap();
    assert_eq!(body["pipelineName"], "enrich");
    assert_eq!(
        body["pipelineActivities"][1]["lambda"]["lambdaName"],
        "enrich_fn"
    );

    // An endpoint that does not answer stops the command at the first resource.
    let nowhere = migrate(&stack, &["--endpoint-url", "http://127.0.0.1:1", &file]).await;
    let out = stdout(&nowhere);
    let stderr = String::from_utf8_lossy(&nowhere.stderr);
    assert_eq!(nowhere.status.code(), Some(1), "{out}{stderr}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("failed channel enrich_in"), "{out}");
    assert!(
        stderr.contains("no answer from the IoT Analytics endpoint"),
        "{stderr}"
    );
    stack.shutdown().await;
}
