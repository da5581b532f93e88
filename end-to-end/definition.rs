//! Static checks of `template.yaml` against `statemachine/ingest.asl.json` and the workspace:
//! what cfn-lint cannot see (it does not open `DefinitionUri` files), the project's own
//! least-privilege rules, and the deployed IoT Analytics-compatible service's guards (who may
//! read its key pair, TLS-only bucket, public function URL with a concurrency cap).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value as Yaml;

#[path = "definition/service.rs"]
mod service;

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
