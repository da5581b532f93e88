//! Unit tests of reading definitions into SDK types.

use super::*;
use serde_json::{Value, json};

fn obj(value: &Value) -> Obj<'_> {
    Obj::root(value.as_object().unwrap())
}

#[test]
fn a_pipeline_of_channel_math_filter_and_datastore_keeps_every_field_in_order() {
    let definition = json!({"pipelineActivities": [
        {"channel": {"name": "in", "channelName": "c", "next": "scale"}},
        {"math": {"name": "scale", "attribute": "f", "math": "temp * 1.8 + 32", "next": "hot"}},
        {"filter": {"name": "hot", "filter": "f > 90", "next": "out"}},
        {"datastore": {"name": "out", "datastoreName": "d"}}]});
    let activities = activities(&obj(&definition), "pipelineActivities")
        .unwrap()
        .unwrap();
    assert_eq!(activities.len(), 4);
    assert_eq!(activities[0].channel().unwrap().channel_name(), "c");
    let math = activities[1].math().unwrap();
    assert_eq!(
        (math.attribute(), math.math(), math.next()),
        ("f", "temp * 1.8 + 32", Some("hot"))
    );
    assert_eq!(activities[2].filter().unwrap().filter(), "f > 90");
    assert_eq!(activities[3].datastore().unwrap().datastore_name(), "d");
}

#[test]
fn a_missing_required_field_is_named_with_its_path() {
    let definition = json!({"pipelineActivities": [
        {"channel": {"name": "in", "channelName": "c", "next": "m"}},
        {"math": {"name": "m", "math": "a + 1"}}]});
    let error = activities(&obj(&definition), "pipelineActivities").unwrap_err();
    assert_eq!(error.path, "pipelineActivities[1].math");
    assert!(error.message.contains("attribute"), "{error}");
}

#[test]
fn numbers_and_booleans_written_as_strings_are_read_as_values() {
    let retention = json!({"numberOfDays": "30"});
    let period = retention_period(&obj(&retention)).unwrap();
    assert_eq!(period.number_of_days(), Some(30));
    let versions = json!({"unlimited": "false", "maxVersions": 5});
    let config = versioning(&obj(&versions)).unwrap();
    assert_eq!(
        (config.unlimited(), config.max_versions()),
        (false, Some(5))
    );
    let wrong = json!({"numberOfDays": "thirty"});
    assert_eq!(
        retention_period(&obj(&wrong)).unwrap_err().path,
        "numberOfDays"
    );
}

#[test]
fn a_dataset_action_carries_its_sql_and_delta_time_filter() {
    let action = json!({"actionName": "q", "queryAction": {
        "sqlQuery": "SELECT * FROM d",
        "filters": [{"deltaTime": {"offsetSeconds": -60, "timeExpression": "from_unixtime(t)"}}]}});
    let action = dataset_action(&obj(&action)).unwrap();
    let query = action.query_action().unwrap();
    assert_eq!(query.sql_query(), "SELECT * FROM d");
    let delta = query.filters()[0].delta_time().unwrap();
    assert_eq!(delta.offset_seconds(), -60);
    assert_eq!(delta.time_expression(), "from_unixtime(t)");
}

#[test]
fn triggers_and_delivery_rules_map_to_their_sdk_types() {
    let schedule = json!({"schedule": {"expression": "cron(0 12 * * ? *)"}});
    assert_eq!(
        trigger(&obj(&schedule))
            .unwrap()
            .schedule()
            .unwrap()
            .expression(),
        Some("cron(0 12 * * ? *)")
    );
    let rule = json!({"entryName": "e", "destination": {"s3DestinationConfiguration": {
        "bucket": "b", "key": "k/!{iotanalytics:versionId}.csv", "roleArn": "arn:aws:iam::1:role/r"}}});
    let rule = delivery_rule(&obj(&rule)).unwrap();
    let s3 = rule
        .destination()
        .unwrap()
        .s3_destination_configuration()
        .unwrap();
    assert_eq!(
        (s3.bucket(), s3.key()),
        ("b", "k/!{iotanalytics:versionId}.csv")
    );
}

#[test]
fn storage_and_file_format_choices_are_kept() {
    let storage = json!({"customerManagedS3": {"bucket": "b", "roleArn": "arn:aws:iam::1:role/r"}});
    let storage = channel_storage(&obj(&storage)).unwrap();
    assert_eq!(storage.customer_managed_s3().unwrap().bucket(), "b");
    let format = json!({"parquetConfiguration": {"schemaDefinition": {
        "columns": [{"name": "temp", "type": "double"}]}}});
    let format = file_format(&obj(&format)).unwrap();
    let columns = format
        .parquet_configuration()
        .unwrap()
        .schema_definition()
        .unwrap()
        .columns();
    assert_eq!((columns[0].name(), columns[0].r#type()), ("temp", "double"));
}
