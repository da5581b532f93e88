//! Behaviour that must match AWS Step Functions, each test stating the AWS result it checks:
//! intrinsic functions, the context object, timestamps, bracket notation, definitions AWS
//! accepts, the wording of runtime errors and the shape of the history. Driven through
//! aws-sdk-sfn over loopback.

mod support;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use support::{Harness, harness, output};

/// Runs a one-state Pass machine whose Parameters are `parameters` and answers its output.
async fn pass_output(h: &Harness, name: &str, parameters: Value, input: Value) -> Value {
    let definition = json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Parameters": parameters, "End": true}}});
    let d = h.run(name, &definition, &input).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    output(&d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_format_renders_objects_as_key_equals_value_and_arrays_as_lists() {
    let h = harness().await;
    let out = pass_output(
        &h,
        "format",
        json!({
            "object.$": "States.Format('{}', $.object)",
            "nested.$": "States.Format('a {} b', $.nested)",
        }),
        json!({"object": {"Arg1": 1, "Arg2": []}, "nested": [1, "x", {"k": [true, null]}]}),
    )
    .await;
    assert_eq!(out["object"], json!("{Arg1=1, Arg2=[]}"));
    assert_eq!(out["nested"], json!("a [1, x, {k=[true, null]}] b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_to_json_reads_empty_and_blank_strings_as_null_and_minus_zero_as_zero() {
    let h = harness().await;
    let out = pass_output(
        &h,
        "stringtojson",
        json!({
            "empty.$": "States.StringToJson('')",
            "blank.$": "States.StringToJson(' ')",
            "minusZero.$": "States.StringToJson('-0')",
            "object.$": "States.StringToJson($.text)",
        }),
        json!({"text": "{\"a\":[1,-0]}"}),
    )
    .await;
    assert_eq!(out["empty"], Value::Null);
    assert_eq!(out["blank"], Value::Null);
    assert_eq!(out["minusZero"].to_string(), "0");
    assert_eq!(out["object"].to_string(), r#"{"a":[1,0]}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn math_add_takes_non_integers_and_rounds_them_as_aws_does() {
    let h = harness().await;
    let out = pass_output(
        &h,
        "mathadd",
        json!({
            "a.$": "States.MathAdd(1.49, 1.5)",
            "b.$": "States.MathAdd(-1.5, 0)",
            "c.$": "States.MathAdd(-0.5, 0.5)",
            "d.$": "States.MathAdd($.x, -3)",
        }),
        json!({"x": 10}),
    )
    .await;
    assert_eq!(out, json!({"a": 3, "b": -1, "c": 1, "d": 7}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_context_of_a_pass_state_is_entered_time_and_name_only() {
    let h = harness().await;
    let out = pass_output(
        &h,
        "statecontext",
        json!({"state.$": "$$.State"}),
        json!({}),
    )
    .await;
    let mut keys: Vec<&String> = out["state"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["EnteredTime", "Name"]);
    assert_eq!(out["state"]["Name"], json!("P"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machine_context_formats_as_id_and_name() {
    let h = harness().await;
    let out = pass_output(
        &h,
        "smcontext",
        json!({"text.$": "States.Format('{}', $$.StateMachine)"}),
        json!({}),
    )
    .await;
    assert_eq!(
        out["text"],
        json!("{Id=arn:aws:states:us-east-1:123456789012:stateMachine:smcontext, Name=smcontext}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_without_the_t_separator_are_refused_when_written_in_the_definition() {
    let h = harness().await;
    let wait = |timestamp: &str| json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": timestamp, "End": true}}});
    let choice = |timestamp: &str| {
        json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.t", "TimestampEquals": timestamp, "Next": "D"}], "Default": "D"},
            "D": {"Type": "Succeed"}}})
    };
    assert!(
        h.refusal("wait-space", &wait("2016-12-05 21:29:29Z"))
            .await
            .is_some()
    );
    assert!(
        h.refusal("choice-space", &choice("2016-12-05 21:29:29Z"))
            .await
            .is_some()
    );
    assert!(
        h.refusal("wait-t", &wait("2016-12-05T21:29:29Z"))
            .await
            .is_none()
    );
    assert!(
        h.refusal("choice-t", &choice("2016-12-05T21:29:29Z"))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_path_to_a_value_without_the_t_separator_fails_with_states_runtime() {
    let h = harness().await;
    let definition = json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "TimestampPath": "$.t", "End": true}}});
    let d = h
        .run(
            "waitpath",
            &definition,
            &json!({"t": "2016-12-05 21:29:29Z"}),
        )
        .await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.Runtime"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bracket_notation_reads_a_backslash_as_escaping_the_next_character() {
    let h = harness().await;
    let out = pass_output(
        &h,
        "brackets",
        json!({
            "quotes.$": r#"$['Test\"\"Name"']"#,
            "oneEscape.$": r#"$['Test\""Name"']"#,
            "apostrophe.$": r"$['it\'s\\']",
        }),
        json!({"Test\"\"Name\"": 1, "it's\\": 2}),
    )
    .await;
    assert_eq!(out, json!({"quotes": 1, "oneEscape": 1, "apostrophe": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_map_with_processor_config_inside_iterator_runs() {
    let h = harness().await;
    let definition = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items",
        "Iterator": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "I",
            "States": {"I": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let d = h
        .run("legacymap", &definition, &json!({"items": [1, 2]}))
        .await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(output(&d), json!([1, 2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_map_with_parameters_uses_them_as_its_item_selector() {
    let h = harness().await;
    let definition = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items",
        "Parameters": {"item.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let d = h
        .run("dmapparams", &definition, &json!({"items": ["a", "b"]}))
        .await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(output(&d), json!([{"item": "a"}, {"item": "b"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameters_path_that_matches_nothing_names_the_state_its_event_and_the_field() {
    let h = harness().await;
    let definition = json!({"StartAt": "Check Name", "States": {
        "Check Name": {"Type": "Pass", "Result": {"flagged": false}, "Next": "Check Address"},
        "Check Address": {"Type": "Pass", "Parameters": {"address.$": "$.application.address"}, "End": true}}});
    let d = h.run("missingparam", &definition, &json!({})).await;
    assert_eq!(d.error(), Some("States.Runtime"));
    assert_eq!(
        d.cause(),
        Some(
            "An error occurred while executing the state 'Check Address' (entered at the event id #4). \
             The JSONPath '$.application.address' specified for the field 'address.$' could not be found \
             in the input '{\"flagged\":false}'"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_path_that_matches_nothing_is_an_invalid_path_in_bracket_notation() {
    let h = harness().await;
    let definition = json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "InputPath": "$.a.b[0]", "End": true}}});
    let d = h.run("missinginput", &definition, &json!({"a": {}})).await;
    assert_eq!(d.error(), Some("States.Runtime"));
    assert_eq!(
        d.cause(),
        Some(
            "An error occurred while executing the state 'P' (entered at the event id #2). \
             Invalid path '$.a.b[0]' : No results for path: $['a']['b'][0]"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_state_entered_event_points_back_to_event_zero() {
    let h = harness().await;
    let definition = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": true}}});
    let arn = h.create("firstevent", &definition).await;
    let exec = h.start(&arn, &json!({})).await;
    h.wait(&exec).await;
    let ids: Vec<(i64, i64, String)> = h
        .history(&exec)
        .await
        .iter()
        .map(|e| {
            (
                e.id(),
                e.previous_event_id(),
                e.r#type().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            (1, 0, "ExecutionStarted".to_string()),
            (2, 0, "PassStateEntered".to_string()),
            (3, 2, "PassStateExited".to_string()),
            (4, 3, "PassStateEntered".to_string()),
            (5, 4, "PassStateExited".to_string()),
            (6, 5, "ExecutionSucceeded".to_string()),
        ]
    );
}

/// A Retry that tries a failing Parallel or Map twice more, then gives up.
fn retried(state: Value) -> Value {
    let mut state = state;
    state["Retry"] =
        json!([{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2}]);
    state["End"] = json!(true);
    json!({"StartAt": "S", "States": {"S": state}})
}

fn count(types: &[String], wanted: &str) -> usize {
    types.iter().filter(|t| t.as_str() == wanted).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_parallel_or_map_records_one_failed_event_after_the_last_attempt() {
    let h = harness().await;
    let fail = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom"}}});
    let parallel = retried(json!({"Type": "Parallel", "Branches": [fail]}));
    let map = retried(json!({"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": fail}));
    for (name, definition, prefix) in [
        ("retriedparallel", parallel, "Parallel"),
        ("retriedmap", map, "Map"),
    ] {
        let arn = h.create(name, &definition).await;
        let exec = h.start(&arn, &json!({"items": [1]})).await;
        let d = h.wait(&exec).await;
        assert_eq!(d.error(), Some("Boom"));
        let types = h.event_types(&exec).await;
        assert_eq!(
            count(&types, &format!("{prefix}StateStarted")),
            3,
            "{types:?}"
        );
        assert_eq!(
            count(&types, &format!("{prefix}StateFailed")),
            1,
            "{types:?}"
        );
        let failed = types
            .iter()
            .position(|t| *t == format!("{prefix}StateFailed"))
            .unwrap();
        assert_eq!(types[failed + 1], "ExecutionFailed", "{types:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_run_without_a_label_is_named_with_a_uuid() {
    let h = harness().await;
    let definition = json!({"StartAt": "Fan out", "States": {"Fan out": {
        "Type": "Map", "ItemsPath": "$.items",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let arn = h.create("unlabelled", &definition).await;
    let exec = h.start(&arn, &json!({"items": [1]})).await;
    h.wait(&exec).await;
    let runs = h
        .client
        .list_map_runs()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    let map_run_arn = runs.map_runs()[0].map_run_arn();
    let name = map_run_arn
        .split_once(":mapRun:unlabelled/")
        .unwrap_or_else(|| panic!("{map_run_arn}"))
        .1;
    let (label, id) = name.split_once(':').unwrap();
    assert!(uuid::Uuid::parse_str(label).is_ok(), "{map_run_arn}");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{map_run_arn}");
}
