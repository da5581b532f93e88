//! Unit tests of reading CloudFormation templates.

use super::*;
use serde_json::json;

fn yaml(text: &str) -> Value {
    yaml_to_json(serde_yaml_ng::from_str(text).unwrap()).unwrap()
}

fn read_one(template: &Value) -> Result<Template, TemplateError> {
    read(template, "t.yaml", &HashMap::new())
}

const TEMPLATE: &str = r#"
Parameters:
  Prefix:
    Type: String
    Default: plant
Resources:
  Bucket:
    Type: AWS::S3::Bucket
  Raw:
    Type: AWS::IoTAnalytics::Channel
    Properties:
      ChannelName: !Sub "${Prefix}_raw"
      RetentionPeriod: {NumberOfDays: 30, Unlimited: false}
      Tags: [{Key: team, Value: !Ref Prefix}]
  Store:
    Type: AWS::IoTAnalytics::Datastore
    Properties:
      DatastorePartitions:
        Partitions:
          - Partition: {AttributeName: deviceid}
          - TimestampPartition: {AttributeName: ts, TimestampFormat: "yyyy-MM-dd"}
  Flow:
    Type: AWS::IoTAnalytics::Pipeline
    Properties:
      PipelineName: flow
      PipelineActivities:
        - Channel: {Name: in, ChannelName: !Ref Raw, Next: tag}
        - AddAttributes: {Name: tag, Attributes: {deviceId: device_id}, Next: out}
        - Datastore: {Name: out, DatastoreName: !Ref Store}
  Daily:
    Type: AWS::IoTAnalytics::Dataset
    Properties:
      Actions:
        - ActionName: q
          QueryAction: {SqlQuery: !Join [" ", [SELECT, "*", FROM, !Ref Store]]}
      Triggers:
        - Schedule: {ScheduleExpression: "cron(0 1 * * ? *)"}
        - TriggeringDataset: {DatasetName: other}
      ContentDeliveryRules:
        - Destination:
            S3DestinationConfiguration:
              Bucket: out
              Key: "x/!{iotanalytics:versionId}"
              RoleArn: arn:aws:iam::1:role/r
              GlueConfiguration: !Ref AWS::NoValue
"#;

#[test]
fn refs_resolve_to_parameter_defaults_and_other_resources_names() {
    let template = read_one(&yaml(TEMPLATE)).unwrap();
    let names: Vec<_> = template
        .resources
        .iter()
        .map(|r| (r.kind, r.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (Kind::Channel, "plant_raw"),
            (Kind::Datastore, "Store"),
            (Kind::Pipeline, "flow"),
            (Kind::Dataset, "Daily"),
        ]
    );
    let pipeline = Value::Object(template.resources[2].definition.clone());
    assert_eq!(
        pipeline["pipelineActivities"][0]["channel"]["channelName"],
        "plant_raw"
    );
    assert_eq!(
        pipeline["pipelineActivities"][2]["datastore"]["datastoreName"],
        "Store"
    );
    assert_eq!(
        template.resources[0].tags,
        [("team".to_owned(), "plant".to_owned())]
    );
    assert_eq!(template.notes.len(), 1, "{:?}", template.notes);
    assert!(template.notes[0].contains("Bucket"));
}

#[test]
fn pascal_case_properties_become_the_service_models_names() {
    let template = read_one(&yaml(TEMPLATE)).unwrap();
    let datastore = Value::Object(template.resources[1].definition.clone());
    assert_eq!(
        datastore["datastorePartitions"]["partitions"],
        json!([{"attributePartition": {"attributeName": "deviceid"}},
               {"timestampPartition": {"attributeName": "ts", "timestampFormat": "yyyy-MM-dd"}}])
    );
    let channel = Value::Object(template.resources[0].definition.clone());
    assert_eq!(
        channel,
        json!({"retentionPeriod": {"numberOfDays": 30, "unlimited": false}})
    );
    let pipeline = Value::Object(template.resources[2].definition.clone());
    // The attribute map's keys are the user's names and keep their case.
    assert_eq!(
        pipeline["pipelineActivities"][1]["addAttributes"]["attributes"],
        json!({"deviceId": "device_id"})
    );
    let dataset = Value::Object(template.resources[3].definition.clone());
    assert_eq!(
        dataset["triggers"],
        json!([{"schedule": {"expression": "cron(0 1 * * ? *)"}},
               {"dataset": {"name": "other"}}])
    );
    assert_eq!(
        dataset["actions"][0]["queryAction"]["sqlQuery"],
        "SELECT * FROM Store"
    );
    let s3 = &dataset["contentDeliveryRules"][0]["destination"]["s3DestinationConfiguration"];
    assert_eq!(s3["key"], "x/!{iotanalytics:versionId}");
    assert!(
        s3.get("glueConfiguration").is_none(),
        "AWS::NoValue removes it"
    );
}

#[test]
fn an_unresolvable_intrinsic_is_refused_naming_the_resource_and_property() {
    let template = yaml(
        "Resources:\n  Flow:\n    Type: AWS::IoTAnalytics::Pipeline\n    Properties:\n      \
         PipelineActivities:\n        - Channel: {Name: in, ChannelName: !ImportValue shared, Next: out}\n",
    );
    let error = read_one(&template).unwrap_err();
    assert_eq!(
        error,
        TemplateError::Property {
            resource: "Flow".into(),
            kind: "AWS::IoTAnalytics::Pipeline".into(),
            property: "PipelineActivities[0].Channel.ChannelName".into(),
            reason: "Fn::ImportValue cannot be resolved without a deployed stack; replace it \
                     with its value"
                .into(),
        }
    );
}

#[test]
fn a_ref_to_nothing_known_and_a_getatt_in_sub_are_refused() {
    let template = json!({"Resources": {"C": {"Type": "AWS::IoTAnalytics::Channel",
        "Properties": {"ChannelStorage": {"CustomerManagedS3": {
            "Bucket": {"Ref": "DataBucket"}, "RoleArn": "arn:aws:iam::1:role/r"}}}}}});
    let error = read_one(&template).unwrap_err().to_string();
    assert!(
        error.contains("ChannelStorage.CustomerManagedS3.Bucket"),
        "{error}"
    );
    assert!(
        error.contains("Ref DataBucket cannot be resolved"),
        "{error}"
    );
    let template = json!({"Resources": {"C": {"Type": "AWS::IoTAnalytics::Channel",
        "Properties": {"ChannelName": {"Fn::Sub": "${Bucket.Arn}"}}}}});
    let error = read_one(&template).unwrap_err().to_string();
    assert!(error.contains("property ChannelName"), "{error}");
}

#[test]
fn a_parameter_given_on_the_command_line_overrides_its_default() {
    let parameters = HashMap::from([("Prefix".to_owned(), "mill".to_owned())]);
    let template = read(&yaml(TEMPLATE), "t.yaml", &parameters).unwrap();
    assert_eq!(template.resources[0].name, "mill_raw");
}

#[test]
fn an_unknown_property_is_refused() {
    let template = json!({"Resources": {"C": {"Type": "AWS::IoTAnalytics::Channel",
        "Properties": {"RetentionPeriods": {"Unlimited": true}}}}});
    let error = read_one(&template).unwrap_err().to_string();
    assert!(
        error.contains("RetentionPeriods: not a property"),
        "{error}"
    );
}

#[test]
fn sub_keeps_escaped_placeholders_and_uses_its_own_variables() {
    let template = json!({"Resources": {"C": {"Type": "AWS::IoTAnalytics::Channel",
        "Properties": {"ChannelName": {"Fn::Sub": ["${a}_${!b}", {"a": "x"}]}}}}});
    assert_eq!(read_one(&template).unwrap().resources[0].name, "x_${b}");
}

#[test]
fn container_variables_late_data_rules_and_delta_time_take_the_models_names() {
    let template = yaml(
        r#"
Resources:
  Report:
    Type: AWS::IoTAnalytics::Dataset
    Properties:
      Actions:
        - ActionName: q
          QueryAction:
            SqlQuery: SELECT * FROM s
            Filters: [{DeltaTime: {OffsetSeconds: -30, TimeExpression: from_unixtime(ts)}}]
        - ActionName: c
          ContainerAction:
            Image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/model:latest
            ExecutionRoleArn: arn:aws:iam::123456789012:role/r
            ResourceConfiguration: {ComputeType: ACU_1, VolumeSizeInGB: 2}
            Variables:
              - {VariableName: input, DatasetContentVersionValue: {DatasetName: other}}
              - {VariableName: out, OutputFileUriValue: {FileName: out.csv}}
      LateDataRules:
        - RuleName: late
          RuleConfiguration: {DeltaTimeSessionWindowConfiguration: {TimeoutInMinutes: 15}}
"#,
    );
    let template = read_one(&template).unwrap();
    let dataset = Value::Object(template.resources[0].definition.clone());
    assert_eq!(
        dataset["actions"][0]["queryAction"]["filters"][0],
        json!({"deltaTime": {"offsetSeconds": -30, "timeExpression": "from_unixtime(ts)"}})
    );
    let container = &dataset["actions"][1]["containerAction"];
    assert_eq!(
        container["resourceConfiguration"],
        json!({"computeType": "ACU_1", "volumeSizeInGB": 2})
    );
    assert_eq!(
        container["variables"],
        json!([{"name": "input", "datasetContentVersionValue": {"datasetName": "other"}},
               {"name": "out", "outputFileUriValue": {"fileName": "out.csv"}}])
    );
    assert_eq!(
        dataset["lateDataRules"][0]["ruleConfiguration"]["deltaTimeSessionWindowConfiguration"]["timeoutInMinutes"],
        15
    );
    // And the SDK reads every one of them.
    let o = crate::migrate::shapes::Obj::root(&template.resources[0].definition);
    let actions = o
        .each("actions", crate::migrate::shapes::dataset_action)
        .unwrap()
        .unwrap();
    let variables = actions[1].container_action().unwrap().variables();
    assert_eq!(variables[0].name(), "input");
    assert_eq!(
        variables[1].output_file_uri_value().unwrap().file_name(),
        "out.csv"
    );
}
