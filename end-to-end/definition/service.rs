//! The deployed IoT Analytics-compatible service's part of the template: created by default,
//! a public function URL with a concurrency cap, its environment, who may read its key pair,
//! what its role reaches, and its TLS-only bucket.

use std::collections::BTreeSet;

use serde_yaml_ng::Value as Yaml;

use super::{
    actions, as_list, branches, function_of, is_ref_to, resources, resources_of_type, statements,
    template, text_of,
};

/// The resources with a statement granting a `secretsmanager:` action.
fn secret_readers(template: &Yaml) -> BTreeSet<String> {
    statements(template)
        .into_iter()
        .filter(|(_, statement)| statement["Effect"].as_str() == Some("Allow"))
        .filter(|(_, statement)| {
            actions(statement)
                .iter()
                .any(|a| a.starts_with("secretsmanager:") || *a == "*")
        })
        .map(|(name, _)| name)
        .collect()
}

fn function<'a>(template: &'a Yaml, name: &str) -> &'a Yaml {
    let function = &template["Resources"][name];
    assert_eq!(
        function["Type"].as_str(),
        Some("AWS::Serverless::Function"),
        "{name}"
    );
    function
}

fn service_function(template: &Yaml) -> &Yaml {
    function(template, "IoTAnalyticsServiceFunction")
}

#[test]
fn the_service_is_deployed_by_default_and_no_iotanalytics_resource_type_remains() {
    let template = template();
    let parameters = &template["Parameters"];
    assert_eq!(
        parameters["DeployService"]["Default"].as_str(),
        Some("true")
    );
    assert_eq!(
        parameters["IoTAnalyticsEndpoint"]["Default"].as_str(),
        Some("")
    );
    assert!(
        parameters.get("CreateIoTAnalyticsResources").is_none(),
        "CloudFormation no longer creates IoT Analytics resources"
    );
    let rule = &template["Rules"]["AnEndpointWithoutTheService"];
    assert_eq!(
        text_of(&rule["RuleCondition"]),
        text_of(&serde_yaml_ng::from_str("!Equals [!Ref DeployService, \"false\"]").unwrap()),
        "without the service, an endpoint is required"
    );
    assert_eq!(
        text_of(&rule["Assertions"][0]["Assert"]),
        text_of(
            &serde_yaml_ng::from_str("!Not [!Equals [!Ref IoTAnalyticsEndpoint, \"\"]]").unwrap()
        ),
    );
    let kinds: Vec<String> = resources(&template)
        .into_iter()
        .filter_map(|(_, r)| r["Type"].as_str().map(str::to_owned))
        .filter(|kind| kind.starts_with("AWS::IoTAnalytics::"))
        .collect();
    assert!(kinds.is_empty(), "{kinds:?}");
    for (name, resource) in resources(&template) {
        if name.starts_with("Service") || name == "IoTAnalyticsServiceFunction" {
            assert_eq!(
                resource["Condition"].as_str(),
                Some("DeployTheService"),
                "{name}"
            );
        }
    }
}

#[test]
fn the_service_is_a_public_function_url_with_a_reserved_concurrency_cap() {
    let template = template();
    let properties = &service_function(&template)["Properties"];
    assert_eq!(
        properties["FunctionUrlConfig"]["AuthType"].as_str(),
        Some("NONE")
    );
    let reserved = branches(&properties["ReservedConcurrentExecutions"]);
    assert_eq!(
        reserved.len(),
        1,
        "a cap, or none when the parameter says -1"
    );
    assert!(is_ref_to(reserved[0], "ServiceReservedConcurrency"));
    let parameter = &template["Parameters"]["ServiceReservedConcurrency"];
    assert_eq!(parameter["Default"].as_u64(), Some(10));
    assert_eq!(
        text_of(&template["Conditions"]["HasServiceReservedConcurrency"]),
        text_of(
            &serde_yaml_ng::from_str("!Not [!Equals [!Ref ServiceReservedConcurrency, \"-1\"]]")
                .unwrap()
        ),
    );
}

#[test]
fn the_service_gets_its_storage_engine_workgroup_database_secret_and_query_limit() {
    let template = template();
    let variables = &service_function(&template)["Properties"]["Environment"]["Variables"];
    let names: BTreeSet<&str> = variables
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "IOTANALYTICS_ATHENA_WORKGROUP",
            "IOTANALYTICS_CREDENTIALS_SECRET",
            "IOTANALYTICS_GLUE_DATABASE",
            "IOTANALYTICS_IOT_DATA_ENDPOINT",
            "IOTANALYTICS_MAX_QUERY_SECONDS",
            "IOTANALYTICS_QUERY_ENGINE",
            "IOTANALYTICS_STORAGE",
        ])
    );
    assert_eq!(
        variables["IOTANALYTICS_QUERY_ENGINE"].as_str(),
        Some("athena")
    );
    assert_eq!(
        function_of(&variables["IOTANALYTICS_STORAGE"]).map(|(f, v)| (f, v.as_str())),
        Some((
            "Sub".to_owned(),
            Some("s3://${ServiceBucket}/iotanalytics/")
        ))
    );
    for (variable, target) in [
        ("IOTANALYTICS_ATHENA_WORKGROUP", "ServiceAthenaWorkGroup"),
        ("IOTANALYTICS_GLUE_DATABASE", "ServiceGlueDatabase"),
        ("IOTANALYTICS_CREDENTIALS_SECRET", "ServiceCredentials"),
        ("IOTANALYTICS_MAX_QUERY_SECONDS", "ServiceMaxQuerySeconds"),
    ] {
        assert!(is_ref_to(&variables[variable], target), "{variable}");
    }
    let workgroup =
        &template["Resources"]["ServiceAthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"];
    assert_eq!(
        workgroup["EnforceWorkGroupConfiguration"].as_bool(),
        Some(true)
    );
    assert!(is_ref_to(
        &workgroup["BytesScannedCutoffPerQuery"],
        "AthenaBytesScannedCutoffPerQuery"
    ));
    assert_eq!(
        text_of(&workgroup["ResultConfiguration"]["OutputLocation"]),
        text_of(&serde_yaml_ng::from_str("!Sub s3://${ServiceBucket}/athena-results/").unwrap())
    );
}

#[test]
fn the_worker_and_validator_send_to_the_deployed_service_unless_an_endpoint_is_given() {
    let template = template();
    for name in ["WorkerFunction", "ValidatorFunction"] {
        let variables = &function(&template, name)["Properties"]["Environment"]["Variables"];
        let endpoint = &variables["AWS_ENDPOINT_URL_IOTANALYTICS"];
        let (f, arguments) = function_of(endpoint).expect("an !If");
        assert_eq!(f, "If", "{name}");
        let arguments = as_list(arguments);
        assert_eq!(
            arguments[0].as_str(),
            Some("HasIoTAnalyticsEndpoint"),
            "{name}"
        );
        assert!(is_ref_to(arguments[1], "IoTAnalyticsEndpoint"), "{name}");
        let otherwise = text_of(arguments[2]);
        assert!(
            otherwise.contains("DeployTheService")
                && otherwise.contains("IoTAnalyticsServiceFunctionUrl.FunctionUrl"),
            "{name}: without an endpoint, the service's URL: {otherwise}"
        );
        let secret = branches(&variables["IOTANALYTICS_CREDENTIALS_SECRET"]);
        assert!(
            secret.len() == 1 && is_ref_to(secret[0], "ServiceCredentials"),
            "{name} signs with the service's key pair"
        );
    }
    let launcher = &function(&template, "LauncherFunction")["Properties"];
    assert!(
        !text_of(launcher).contains("IOTANALYTICS_CREDENTIALS_SECRET"),
        "the launcher never calls the service"
    );
}

#[test]
fn the_service_key_pair_is_readable_only_by_the_worker_the_validator_and_the_service() {
    let template = template();
    assert_eq!(
        secret_readers(&template),
        BTreeSet::from([
            "IoTAnalyticsServiceFunction".to_owned(),
            "ValidatorFunction".to_owned(),
            "WorkerFunction".to_owned(),
        ])
    );
    for (name, statement) in statements(&template) {
        if !actions(statement)
            .iter()
            .any(|a| a.starts_with("secretsmanager:"))
        {
            continue;
        }
        assert_eq!(
            actions(statement),
            vec!["secretsmanager:GetSecretValue"],
            "{name}"
        );
        assert!(
            is_ref_to(&statement["Resource"], "ServiceCredentials"),
            "{name}: {statement:?}"
        );
    }
    // Named managed policies (strings in a function's Policies) could grant it too; a secret
    // resource policy could grant it to anyone.
    for (name, resource) in resources_of_type(&template, "AWS::Serverless::Function") {
        for policy in as_list(&resource["Properties"]["Policies"]) {
            assert!(
                policy.as_str().is_none(),
                "{name}: managed policy {policy:?}"
            );
        }
    }
    assert!(resources_of_type(&template, "AWS::SecretsManager::ResourcePolicy").is_empty());
    let generate =
        &template["Resources"]["ServiceCredentials"]["Properties"]["GenerateSecretString"];
    assert_eq!(
        generate["GenerateStringKey"].as_str(),
        Some("secretAccessKey")
    );
    assert_eq!(generate["ExcludePunctuation"].as_bool(), Some(true));
    assert!(text_of(&generate["SecretStringTemplate"]).contains("accessKeyId"));
}

#[test]
fn the_service_role_reaches_only_its_own_bucket_database_workgroup_and_secret() {
    let template = template();
    let own = [
        "ServiceBucket",
        "ServiceGlueDatabase",
        "ServiceAthenaWorkGroup",
        "ServiceCredentials",
        // The one bucket dataset contents may be delivered to, when the parameter names one.
        "DeliveryBucketName",
        // The functions lambda activities may invoke, when the parameter names them.
        "PipelineLambdaFunctions",
        // The account's things in the stack's region, for the enrich activities, when allowed.
        ":iot:${AWS::Region}:${AWS::AccountId}:thing/*",
    ];
    let service_statements: Vec<&Yaml> = statements(&template)
        .into_iter()
        .filter(|(name, _)| name == "IoTAnalyticsServiceFunction")
        .map(|(_, statement)| statement)
        .collect();
    assert!(service_statements.len() >= 4);
    let mut granted = BTreeSet::new();
    for statement in service_statements {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"));
        for resource in as_list(&statement["Resource"]) {
            let text = text_of(resource);
            assert!(
                own.iter().any(|name| text.contains(name)) || text.ends_with(":catalog\n"),
                "{text}"
            );
        }
        granted.extend(actions(statement));
    }
    let allowed = BTreeSet::from([
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:ListBucketMultipartUploads",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "glue:GetDatabase",
        "glue:GetTable",
        "glue:CreateTable",
        "glue:UpdateTable",
        "glue:DeleteTable",
        "glue:GetPartitions",
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:StopQueryExecution",
        "athena:GetWorkGroup",
        "secretsmanager:GetSecretValue",
        "lambda:InvokeFunction",
        "iot:DescribeThing",
        "iot:GetThingShadow",
    ]);
    let extra: Vec<_> = granted.difference(&allowed).collect();
    assert!(
        extra.is_empty(),
        "actions beyond the service's needs: {extra:?}"
    );
}

#[test]
fn content_delivery_may_only_put_objects_in_the_named_bucket_and_only_when_one_is_named() {
    let template = template();
    let policies = &service_function(&template)["Properties"]["Policies"];
    let delivery: Vec<&Yaml> = as_list(policies)
        .into_iter()
        .flat_map(|policy| as_list(&policy["Statement"]))
        .filter(|statement| text_of(statement).contains("DeliveryBucketName"))
        .collect();
    assert_eq!(
        delivery.len(),
        1,
        "one statement mentions the delivery bucket"
    );
    let Some((function, arguments)) = function_of(delivery[0]) else {
        panic!("the delivery statement is conditional");
    };
    assert_eq!(function, "If");
    assert_eq!(as_list(arguments)[0].as_str(), Some("HasDeliveryBucket"));
    let granted = branches(delivery[0]);
    assert_eq!(granted.len(), 1, "the other branch grants nothing");
    assert_eq!(actions(granted[0]), ["s3:PutObject"]);
    assert_eq!(
        text_of(&granted[0]["Resource"]).trim(),
        "!Sub arn:${AWS::Partition}:s3:::${DeliveryBucketName}/*"
    );
    assert_eq!(
        template["Parameters"]["DeliveryBucketName"]["Default"].as_str(),
        Some("")
    );
}

/// The one statement of the service's policies that mentions `needle`: conditional on
/// `condition`, its other branch granting nothing. Returns the granted branch.
fn conditional_statement<'a>(template: &'a Yaml, needle: &str, condition: &str) -> &'a Yaml {
    let policies = &service_function(template)["Properties"]["Policies"];
    let found: Vec<&Yaml> = as_list(policies)
        .into_iter()
        .flat_map(|policy| as_list(&policy["Statement"]))
        .filter(|statement| text_of(statement).contains(needle))
        .collect();
    assert_eq!(found.len(), 1, "one statement mentions {needle}");
    let Some((function, arguments)) = function_of(found[0]) else {
        panic!("the {needle} statement is conditional");
    };
    assert_eq!(function, "If");
    assert_eq!(as_list(arguments)[0].as_str(), Some(condition));
    let granted = branches(found[0]);
    assert_eq!(granted.len(), 1, "the other branch grants nothing");
    granted[0]
}

#[test]
fn pipeline_activities_invoke_only_the_named_functions_and_read_things_only_when_allowed() {
    let template = template();
    let lambda = conditional_statement(
        &template,
        "PipelineLambdaFunctions",
        "HasPipelineLambdaFunctions",
    );
    assert_eq!(actions(lambda), ["lambda:InvokeFunction"]);
    assert_eq!(
        text_of(&lambda["Resource"]).trim(),
        "!Sub arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${PipelineLambdaFunctions}"
    );
    let enrich = conditional_statement(&template, "iot:", "AllowsDeviceEnrich");
    assert_eq!(actions(enrich), ["iot:DescribeThing", "iot:GetThingShadow"]);
    assert_eq!(
        text_of(&enrich["Resource"]).trim(),
        "!Sub arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:thing/*"
    );
    let parameters = &template["Parameters"];
    assert_eq!(
        parameters["PipelineLambdaFunctions"]["Default"].as_str(),
        Some("")
    );
    assert_eq!(
        parameters["AllowDeviceEnrich"]["Default"].as_str(),
        Some("false")
    );
    let variables = &service_function(&template)["Properties"]["Environment"]["Variables"];
    let endpoint = branches(&variables["IOTANALYTICS_IOT_DATA_ENDPOINT"]);
    assert!(endpoint.len() == 1 && is_ref_to(endpoint[0], "IotDataEndpoint"));
}

#[test]
fn a_tick_every_minute_runs_the_service_schedules() {
    let template = template();
    let tick = &service_function(&template)["Properties"]["Events"]["Tick"];
    assert_eq!(tick["Type"].as_str(), Some("ScheduleV2"));
    assert_eq!(
        tick["Properties"]["ScheduleExpression"].as_str(),
        Some("rate(1 minute)")
    );
    let input: serde_json::Value =
        serde_json::from_str(tick["Properties"]["Input"].as_str().unwrap()).unwrap();
    // The same event as the one the Lambda host's test sends.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/iotanalytics-service-tick.json"
    );
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(input, event);
}

#[test]
fn the_service_bucket_is_encrypted_private_and_denies_requests_without_tls() {
    let template = template();
    let bucket = &template["Resources"]["ServiceBucket"]["Properties"];
    assert!(
        bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            .as_sequence()
            .is_some_and(|rules| !rules.is_empty())
    );
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            bucket["PublicAccessBlockConfiguration"][setting].as_bool(),
            Some(true),
            "{setting}"
        );
    }
    let policies: Vec<&Yaml> = resources_of_type(&template, "AWS::S3::BucketPolicy")
        .into_iter()
        .map(|(_, policy)| &policy["Properties"])
        .filter(|p| is_ref_to(&p["Bucket"], "ServiceBucket"))
        .collect();
    assert_eq!(policies.len(), 1, "one policy on the service's bucket");
    let denies_plain_http = as_list(&policies[0]["PolicyDocument"]["Statement"])
        .into_iter()
        .any(|statement| {
            let resources = text_of(&statement["Resource"]);
            statement["Effect"].as_str() == Some("Deny")
                && statement["Principal"].as_str() == Some("*")
                && actions(statement) == vec!["s3:*"]
                && resources.contains("ServiceBucket.Arn")
                && resources.contains("${ServiceBucket.Arn}/*")
                && statement["Condition"]["Bool"]["aws:SecureTransport"].as_str() == Some("false")
        });
    assert!(denies_plain_http, "{:?}", policies[0]);
}

#[test]
fn the_outputs_name_the_service_url_bucket_and_secret() {
    let template = template();
    for output in [
        "ServiceUrl",
        "ServiceBucketName",
        "ServiceCredentialsSecretArn",
    ] {
        assert_eq!(
            template["Outputs"][output]["Condition"].as_str(),
            Some("DeployTheService"),
            "{output}"
        );
    }
    assert!(
        text_of(&template["Outputs"]["ServiceUrl"]["Value"])
            .contains("IoTAnalyticsServiceFunctionUrl.FunctionUrl")
    );
}

#[test]
fn the_reader_rule_sees_conditional_grants_and_bare_wildcards() {
    let template: Yaml = serde_yaml_ng::from_str(
        r#"
Resources:
  Conditional:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - !If
          - Cond
          - Statement:
              - Effect: Allow
                Action: secretsmanager:GetSecretValue
                Resource: !Ref ServiceCredentials
          - !Ref AWS::NoValue
  Everything:
    Type: AWS::IAM::Policy
    Properties:
      PolicyDocument:
        Statement:
          - Effect: Allow
            Action: "*"
            Resource: !Ref ServiceCredentials
  Denied:
    Type: AWS::IAM::Policy
    Properties:
      PolicyDocument:
        Statement:
          - Effect: Deny
            Action: secretsmanager:GetSecretValue
            Resource: "*"
"#,
    )
    .unwrap();
    assert_eq!(
        secret_readers(&template),
        BTreeSet::from(["Conditional".to_owned(), "Everything".to_owned()])
    );
}
