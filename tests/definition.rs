//! Static checks of `template.yaml` against `statemachine/ingest.asl.json` and the workspace:
//! what cfn-lint cannot see (it does not open `DefinitionUri` files), the project's own
//! least-privilege rules, and the deployed IoT Analytics-compatible service's guards (who may
//! read its key pair, TLS-only bucket, public function URL with a concurrency cap).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value as Yaml;

/// Actions that accept no narrower resource than `*` (AWS's service authorization reference
/// lists no resource type for them), so a statement made only of these may use `*`.
const ACTIONS_WITHOUT_RESOURCE_LEVEL: &[&str] = &[
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The template, parsed with CloudFormation's short-form tags (`!Sub`, `!Ref`…) kept as tagged
/// values.
fn template() -> Yaml {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn definition_text() -> String {
    std::fs::read_to_string(root().join("statemachine/ingest.asl.json")).unwrap()
}

/// Every `${Name}` in `text`.
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        found.insert(rest[start + 2..start + len].to_owned());
        rest = &rest[start + len..];
    }
    found
}

fn resources(template: &Yaml) -> Vec<(String, &Yaml)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources is a mapping")
        .iter()
        .map(|(name, resource)| (name.as_str().unwrap().to_owned(), resource))
        .collect()
}

fn resources_of_type<'a>(template: &'a Yaml, kind: &str) -> Vec<(String, &'a Yaml)> {
    resources(template)
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .collect()
}

/// `value` as a list: a sequence's items, or the value itself.
fn as_list(value: &Yaml) -> Vec<&Yaml> {
    match value {
        Yaml::Sequence(items) => items.iter().collect(),
        Yaml::Null => Vec::new(),
        other => vec![other],
    }
}

/// The CloudFormation function `value` applies, if it is a short-form tag such as `!If`.
fn function_of(value: &Yaml) -> Option<(String, &Yaml)> {
    match value {
        Yaml::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        _ => None,
    }
}

/// What `value` can be once conditions are resolved: both branches of an `!If` (nested ones
/// too), without `!Ref AWS::NoValue`; any other value as itself.
fn branches(value: &Yaml) -> Vec<&Yaml> {
    match function_of(value) {
        Some((name, arguments)) if name == "If" => as_list(arguments)
            .into_iter()
            .skip(1)
            .flat_map(branches)
            .collect(),
        Some((name, argument)) if name == "Ref" && argument.as_str() == Some("AWS::NoValue") => {
            Vec::new()
        }
        _ => vec![value],
    }
}

/// `value` as YAML text, to look for the names a `!Sub`, `!Ref` or `!GetAtt` mentions.
fn text_of(value: &Yaml) -> String {
    serde_yaml_ng::to_string(value).unwrap()
}

/// `value` is `!Ref <name>`.
fn is_ref_to(value: &Yaml, name: &str) -> bool {
    function_of(value).is_some_and(|(f, arg)| f == "Ref" && arg.as_str() == Some(name))
}

/// The actions of a statement, as strings.
fn actions(statement: &Yaml) -> Vec<&str> {
    as_list(&statement["Action"])
        .into_iter()
        .map(|a| a.as_str().unwrap_or("<not a string>"))
        .collect()
}

/// Every IAM statement written in the template: inline `Policies` of functions and state
/// machines, and `PolicyDocument`s of IAM resources.
fn statements(template: &Yaml) -> Vec<(String, &Yaml)> {
    let mut found = Vec::new();
    for (name, resource) in resources(template) {
        let properties = &resource["Properties"];
        let policies: Vec<&Yaml> = as_list(&properties["Policies"])
            .into_iter()
            .flat_map(branches)
            .collect();
        let mut documents: Vec<&Yaml> = policies
            .iter()
            .copied()
            .filter(|p| p.get("Statement").is_some())
            .collect();
        for policy in policies {
            if policy.get("PolicyDocument").is_some() {
                documents.push(&policy["PolicyDocument"]);
            }
        }
        if properties.get("PolicyDocument").is_some() {
            documents.push(&properties["PolicyDocument"]);
        }
        for document in documents {
            for statement in as_list(&document["Statement"])
                .into_iter()
                .flat_map(branches)
            {
                found.push((name.clone(), statement));
            }
        }
    }
    found
}

/// The statements that grant `Resource: "*"` to an action outside
/// [`ACTIONS_WITHOUT_RESOURCE_LEVEL`], as `resource: action` lines.
fn wildcard_grants(template: &Yaml) -> Vec<String> {
    let mut offences = Vec::new();
    for (name, statement) in statements(template) {
        let wildcard = as_list(&statement["Resource"])
            .iter()
            .any(|r| r.as_str() == Some("*"));
        if !wildcard || statement["Effect"].as_str() == Some("Deny") {
            continue;
        }
        for action in as_list(&statement["Action"]) {
            let action = action.as_str().unwrap_or("<not a string>");
            if !ACTIONS_WITHOUT_RESOURCE_LEVEL.contains(&action) {
                offences.push(format!("{name}: {action}"));
            }
        }
    }
    offences
}

/// The `Allow` statements whose actions hold a wildcard, as `resource: action` lines.
fn wildcard_actions(template: &Yaml) -> Vec<String> {
    statements(template)
        .into_iter()
        .filter(|(_, statement)| statement["Effect"].as_str() != Some("Deny"))
        .flat_map(|(name, statement)| {
            actions(statement)
                .into_iter()
                .filter(|action| action.contains('*'))
                .map(move |action| format!("{name}: {action}"))
        })
        .collect()
}

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
fn every_placeholder_of_the_definition_has_a_substitution_and_every_substitution_is_used() {
    let template = template();
    let machines = resources_of_type(&template, "AWS::Serverless::StateMachine");
    assert_eq!(machines.len(), 1, "one state machine");
    let (_, machine) = &machines[0];
    assert_eq!(
        machine["Properties"]["DefinitionUri"].as_str(),
        Some("statemachine/ingest.asl.json")
    );
    let provided: BTreeSet<String> = machine["Properties"]["DefinitionSubstitutions"]
        .as_mapping()
        .expect("DefinitionSubstitutions is a mapping")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let used = placeholders(&definition_text());
    assert!(!used.is_empty(), "the definition has placeholders");
    let missing: Vec<_> = used.difference(&provided).collect();
    let unused: Vec<_> = provided.difference(&used).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "placeholders without a DefinitionSubstitutions entry: {missing:?}; entries the definition does not use: {unused:?}"
    );
}

#[test]
fn placeholders_are_found_wherever_they_are_and_only_there() {
    let found = placeholders(r#"{"a": "${One}", "b": "x-${Two}-y", "c": "$Three {Four}"}"#);
    assert_eq!(
        found,
        BTreeSet::from(["One".to_owned(), "Two".to_owned()]),
        "the scanner behind the substitution test"
    );
}

#[test]
fn no_statement_grants_a_wildcard_resource_where_a_narrower_one_exists() {
    let template = template();
    assert!(
        statements(&template).len() >= 5,
        "the template's inline statements are found"
    );
    let offences = wildcard_grants(&template);
    assert!(
        offences.is_empty(),
        "Resource \"*\" granted to: {offences:#?}"
    );
}

#[test]
fn the_wildcard_rule_catches_an_action_that_has_resource_level_permissions() {
    let template: Yaml = serde_yaml_ng::from_str(
        r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [xray:PutTraceSegments, s3:GetObject]
              Resource: "*"
            - Effect: Allow
              Action: s3:PutObject
              Resource: !Sub arn:aws:s3:::b/*
"#,
    )
    .unwrap();
    assert_eq!(wildcard_grants(&template), vec!["Fn: s3:GetObject"]);
}

#[test]
fn no_role_is_granted_a_wildcard_action() {
    let template = template();
    assert!(
        statements(&template)
            .iter()
            .any(|(name, _)| name == "IoTAnalyticsServiceFunction"),
        "the service's statements are found"
    );
    let offences = wildcard_actions(&template);
    assert!(offences.is_empty(), "wildcard actions: {offences:#?}");
}

#[test]
fn the_wildcard_action_rule_looks_inside_conditional_policies_and_skips_denials() {
    let template: Yaml = serde_yaml_ng::from_str(
        r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - !If
          - Cond
          - Statement:
              - Effect: Allow
                Action: [s3:GetObject, "glue:Get*"]
                Resource: !Sub arn:aws:glue:r:1:catalog
          - !Ref AWS::NoValue
  Policy:
    Type: AWS::S3::BucketPolicy
    Properties:
      PolicyDocument:
        Statement:
          - Effect: Deny
            Action: s3:*
            Resource: "*"
"#,
    )
    .unwrap();
    assert_eq!(wildcard_actions(&template), vec!["Fn: glue:Get*"]);
    assert_eq!(secret_readers(&template), BTreeSet::new());
}

#[test]
fn no_policy_is_a_full_access_managed_policy() {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    assert!(
        !text.contains("FullAccess"),
        "template.yaml names a *FullAccess policy"
    );
}

#[test]
fn each_function_is_built_by_cargo_lambda_from_its_workspace_package() {
    let template = template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    let names: BTreeSet<&str> = functions.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "IoTAnalyticsServiceFunction",
            "LauncherFunction",
            "ValidatorFunction",
            "WorkerFunction"
        ])
    );
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(
        as_list(&globals["Architectures"])[0].as_str(),
        Some("arm64")
    );
    assert_eq!(globals["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));
    assert_eq!(globals["Tracing"].as_str(), Some("Active"));
    for (name, function) in functions {
        assert_eq!(
            function["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name}"
        );
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap();
        let code_uri = function["Properties"]["CodeUri"].as_str().unwrap();
        // The service is a shipped component of its own, at the workspace's top level.
        let expected = if binary == "iotanalytics-service" {
            binary.to_owned()
        } else {
            format!("functions/{binary}")
        };
        assert_eq!(code_uri, expected, "{name}");
        let manifest = std::fs::read_to_string(root().join(code_uri).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{name}: {code_uri}/Cargo.toml: {e}"));
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "{name}: package {code_uri} does not build a binary named {binary}"
        );
        assert_eq!(
            name.to_lowercase(),
            format!("{}function", binary.replace('-', "")),
            "the function's logical id names its binary"
        );
    }
}

#[test]
fn the_schedule_sends_the_sample_schedule_input_with_the_default_parameters() {
    let template = template();
    let machines = resources_of_type(&template, "AWS::Serverless::StateMachine");
    let schedule = &machines[0].1["Properties"]["Events"]["Schedule"];
    assert_eq!(schedule["Type"].as_str(), Some("ScheduleV2"));
    assert_eq!(
        template["Parameters"]["ScheduleState"]["Default"].as_str(),
        Some("DISABLED")
    );
    let Yaml::Tagged(input) = &schedule["Properties"]["Input"] else {
        panic!("Input is a !Sub string");
    };
    let mut text = input.value.as_str().unwrap().to_owned();
    for parameter in placeholders(&text) {
        let default = &template["Parameters"][parameter.as_str()]["Default"];
        let default = match default {
            Yaml::Number(n) => n.to_string(),
            other => other.as_str().unwrap().to_owned(),
        };
        text = text.replace(&format!("${{{parameter}}}"), &default);
    }
    let sent: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/schedule.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sent, sample);
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
    ]);
    let extra: Vec<_> = granted.difference(&allowed).collect();
    assert!(
        extra.is_empty(),
        "actions beyond the service's needs: {extra:?}"
    );
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
