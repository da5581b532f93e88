//! JSONata states as AWS documents them ("Transforming data with JSONata in Step Functions"):
//! QueryLanguage at the top and per state, Arguments and Output in place of the JSONPath
//! fields, `{% %}` expressions in every field that takes one, `$states`, AWS's own functions
//! and States.QueryEvaluationError. Each test states the AWS result it checks; all run through
//! aws-sdk-sfn over loopback.

mod support;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use support::{Harness, harness, output};

const ECHO: &str = "arn:aws:lambda:us-east-1:123456789012:function:echo";
const FAIL: &str = "arn:aws:lambda:us-east-1:123456789012:function:fail";

/// A JSONata machine of the given states, starting at the first named.
fn machine(start: &str, states: Value) -> Value {
    json!({"QueryLanguage": "JSONata", "StartAt": start, "States": states})
}

/// Runs a machine that must fail and answers its error and cause.
async fn fails(h: &Harness, name: &str, definition: &Value, input: Value) -> (String, String) {
    let d = h.run(name, definition, &input).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed, "{:?}", d.output());
    (
        d.error().unwrap_or_default().to_string(),
        d.cause().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_evaluates_every_expression_string_and_copies_everything_else() {
    let h = harness().await;
    let definition = machine(
        "P",
        json!({"P": {"Type": "Pass", "End": true, "Output": {
            "sum": "{% $states.input.a + $states.input.b %}",
            "names": "{% $states.input.items[price > 10].name %}",
            "literal": "not {% an expression",
            "nested": [1, {"upper": "{% $uppercase($states.input.s) %}"}],
        }}}),
    );
    let out = h.succeeds("output",
        &definition,
        json!({"a": 1, "b": 2, "s": "hi", "items": [{"name": "x", "price": 5}, {"name": "y", "price": 50}]}),
    )
    .await;
    assert_eq!(
        out,
        json!({"sum": 3, "names": "y", "literal": "not {% an expression", "nested": [1, {"upper": "HI"}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_arguments_read_states_input_and_output_reads_states_result() {
    let h = harness().await;
    let definition = machine(
        "T",
        json!({"T": {"Type": "Task", "Resource": ECHO, "End": true,
            "Arguments": {"x": "{% $states.input.v * 10 %}"},
            "Output": {"doubled": "{% $states.result.x * 2 %}", "input": "{% $states.input %}"}}}),
    );
    let out = h.succeeds("task-args", &definition, json!({"v": 2})).await;
    assert_eq!(out, json!({"doubled": 40, "input": {"v": 2}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_without_output_passes_on_its_result_and_a_pass_its_input() {
    let h = harness().await;
    let definition = machine(
        "P",
        json!({
            "P": {"Type": "Pass", "Next": "T"},
            "T": {"Type": "Task", "Resource": ECHO, "Arguments": {"from": "task"}, "End": true}
        }),
    );
    let out = h
        .succeeds("defaults", &definition, json!({"ignored": true}))
        .await;
    assert_eq!(out, json!({"from": "task"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_may_switch_to_jsonata_in_a_jsonpath_machine_but_not_back() {
    let h = harness().await;
    let mixed = json!({"StartAt": "Path", "States": {
        "Path": {"Type": "Pass", "Parameters": {"a.$": "$.a"}, "Next": "Ata"},
        "Ata": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input.a + 1 %}", "End": true}
    }});
    assert_eq!(h.succeeds("mixed", &mixed, json!({"a": 1})).await, json!(2));
    let back = machine(
        "P",
        json!({"P": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": true}}),
    );
    let message = h.refusal("back", &back).await.expect("refused");
    assert!(message.contains("QueryLanguage"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonpath_fields_are_refused_in_jsonata_states_and_jsonata_fields_in_jsonpath_states() {
    let h = harness().await;
    for (i, field) in [
        "InputPath",
        "OutputPath",
        "ResultPath",
        "ResultSelector",
        "Parameters",
    ]
    .into_iter()
    .enumerate()
    {
        let value = if field.ends_with("Path") {
            json!("$")
        } else {
            json!({})
        };
        let mut task = json!({"Type": "Task", "Resource": ECHO, "End": true});
        task[field] = value;
        let message = h
            .refusal(&format!("jsonpath-{i}"), &machine("T", json!({"T": task})))
            .await
            .expect("refused");
        assert!(message.contains(field), "{message}");
    }
    for (i, field) in ["Arguments", "Output"].into_iter().enumerate() {
        let mut task = json!({"Type": "Task", "Resource": ECHO, "End": true});
        task[field] = json!({});
        let definition = json!({"StartAt": "T", "States": {"T": task}});
        let message = h
            .refusal(&format!("jsonata-{i}"), &definition)
            .await
            .expect("refused");
        assert!(message.contains(field), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expression_with_a_syntax_error_is_refused_at_creation() {
    let h = harness().await;
    let definition = machine(
        "P",
        json!({"P": {"Type": "Pass", "Output": "{% $states.input[ %}", "End": true}}),
    );
    let message = h.refusal("syntax", &definition).await.expect("refused");
    assert!(message.contains("Output"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choice_takes_the_first_rule_whose_condition_is_true_and_its_output() {
    let h = harness().await;
    let definition = machine(
        "C",
        json!({
            "C": {"Type": "Choice", "Default": "Low", "Choices": [
                {"Condition": "{% $states.input.n > 10 %}", "Next": "High",
                 "Output": {"picked": "{% 'high ' & $states.input.n %}"}},
                {"Condition": "{% $states.input.n > 5 %}", "Next": "Low"}
            ]},
            "High": {"Type": "Succeed"},
            "Low": {"Type": "Pass", "Output": "low", "End": true}
        }),
    );
    assert_eq!(
        h.succeeds("choice-high", &definition, json!({"n": 11}))
            .await,
        json!({"picked": "high 11"})
    );
    assert_eq!(
        h.succeeds("choice-low", &definition, json!({"n": 1})).await,
        json!("low")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_that_is_not_a_boolean_fails_with_states_query_evaluation_error() {
    let h = harness().await;
    let definition = machine(
        "C",
        json!({
            "C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.n %}", "Next": "S"}]},
            "S": {"Type": "Succeed"}
        }),
    );
    let (error, cause) = fails(&h, "condition", &definition, json!({"n": 3})).await;
    assert_eq!(error, "States.QueryEvaluationError");
    assert!(cause.contains("Condition"), "{cause}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expression_that_returns_nothing_fails_with_states_query_evaluation_error() {
    let h = harness().await;
    let definition = machine(
        "P",
        json!({"P": {"Type": "Pass", "Output": "{% $states.input.missing %}", "End": true}}),
    );
    let (error, cause) = fails(&h, "undefined", &definition, json!({})).await;
    assert_eq!(error, "States.QueryEvaluationError");
    assert!(
        cause.starts_with("An error occurred while executing the state 'P'")
            && cause.contains("returned nothing (undefined)"),
        "{cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_evaluation_error_can_be_caught_and_the_catcher_reads_states_error_output() {
    let h = harness().await;
    let definition = machine(
        "T",
        json!({
            "T": {"Type": "Task", "Resource": ECHO, "Arguments": "{% $number('x') + {} %}", "End": true,
                  "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "Caught",
                             "Output": {"error": "{% $states.errorOutput.Error %}", "input": "{% $states.input %}"}}]},
            "Caught": {"Type": "Succeed"}
        }),
    );
    let out = h.succeeds("caught", &definition, json!({"k": 1})).await;
    assert_eq!(
        out,
        json!({"error": "States.QueryEvaluationError", "input": {"k": 1}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catcher_without_output_passes_on_the_error_output() {
    let h = harness().await;
    let definition = machine(
        "T",
        json!({
            "T": {"Type": "Task", "Resource": FAIL, "Arguments": {"errorType": "Broken"}, "End": true,
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]},
            "Caught": {"Type": "Succeed"}
        }),
    );
    let out = h.succeeds("catch-default", &definition, json!({})).await;
    assert_eq!(out["Error"], json!("Broken"));
    assert!(
        out["Cause"].as_str().unwrap().contains("it failed"),
        "{out}"
    );
    assert_eq!(out.as_object().unwrap().len(), 2, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_items_item_selector_and_max_concurrency_take_expressions() {
    let h = harness().await;
    let definition = machine(
        "M",
        json!({"M": {"Type": "Map", "End": true,
            "Items": "{% $states.input.list %}",
            "MaxConcurrency": "{% 1 + 1 %}",
            "ItemSelector": {
                "value": "{% $states.context.Map.Item.Value * 10 %}",
                "index": "{% $states.context.Map.Item.Index %}",
                "tag": "{% $states.input.tag %}"
            },
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "Output": "{% $states.result.(value + index) %}"
        }}),
    );
    let out = h
        .succeeds("map", &definition, json!({"list": [1, 2, 3], "tag": "t"}))
        .await;
    assert_eq!(out, json!([10, 21, 32]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_items_that_are_not_an_array_fail_with_states_query_evaluation_error() {
    let h = harness().await;
    let definition = machine(
        "M",
        json!({"M": {"Type": "Map", "End": true, "Items": "{% $states.input.n %}",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}),
    );
    let (error, cause) = fails(&h, "map-items", &definition, json!({"n": 1})).await;
    assert_eq!(error, "States.QueryEvaluationError");
    assert!(cause.contains("Items"), "{cause}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_arguments_are_every_branch_input_and_states_result_is_the_array_of_outputs() {
    let h = harness().await;
    let branch = |n: i64| json!({"StartAt": "B", "States": {"B": {"Type": "Pass", "Output": format!("{{% $states.input.base + {n} %}}"), "End": true}}});
    let definition = machine(
        "Par",
        json!({"Par": {"Type": "Parallel", "End": true,
            "Arguments": {"base": "{% $states.input.x * 100 %}"},
            "Branches": [branch(1), branch(2)],
            "Output": {"sum": "{% $sum($states.result) %}", "all": "{% $states.result %}"}}}),
    );
    let out = h.succeeds("parallel", &definition, json!({"x": 1})).await;
    assert_eq!(out, json!({"sum": 203, "all": [101, 102]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_seconds_and_timestamp_take_expressions() {
    let h = harness().await;
    let definition = machine(
        "W1",
        json!({
            "W1": {"Type": "Wait", "Seconds": "{% $states.input.s %}", "Next": "W2"},
            "W2": {"Type": "Wait", "Timestamp": "{% $states.input.t %}", "Output": "{% $states.input.s %}", "End": true}
        }),
    );
    let out = h
        .succeeds(
            "wait",
            &definition,
            json!({"s": 0, "t": "2016-03-14T01:59:00Z"}),
        )
        .await;
    assert_eq!(out, json!(0));
    let (error, _) = fails(&h, "wait-bad", &definition, json!({"s": "soon"})).await;
    assert_eq!(error, "States.QueryEvaluationError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_timeout_seconds_takes_an_expression() {
    let h = harness().await;
    let definition = machine(
        "T",
        json!({"T": {"Type": "Task", "Resource": ECHO, "TimeoutSeconds": "{% $states.input.limit %}", "End": true}}),
    );
    let arn = h.create("timeout", &definition).await;
    let execution = h.start(&arn, &json!({"limit": 7})).await;
    let d = h.wait(&execution).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let scheduled = h
        .history(&execution)
        .await
        .into_iter()
        .find_map(|e| e.lambda_function_scheduled_event_details().cloned())
        .expect("scheduled");
    assert_eq!(scheduled.timeout_in_seconds(), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_error_and_cause_take_expressions() {
    let h = harness().await;
    let definition = machine(
        "F",
        json!({"F": {"Type": "Fail", "Error": "{% 'Custom.' & $states.input.kind %}",
                     "Cause": "{% 'count was ' & $string($states.input.n) %}"}}),
    );
    let (error, cause) = fails(&h, "fail", &definition, json!({"kind": "Bad", "n": 3})).await;
    assert_eq!(
        (error.as_str(), cause.as_str()),
        ("Custom.Bad", "count was 3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_context_is_the_context_object() {
    let h = harness().await;
    let definition = machine(
        "Named",
        json!({"Named": {"Type": "Pass", "End": true, "Output": {
            "state": "{% $states.context.State.Name %}",
            "execution": "{% $states.context.Execution.Name %}"
        }}}),
    );
    let arn = h.create("context", &definition).await;
    let execution = h.start(&arn, &json!({})).await;
    let d = h.wait(&execution).await;
    let name = execution.rsplit(':').next().unwrap();
    assert_eq!(output(&d), json!({"state": "Named", "execution": name}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_functions_partition_range_hash_random_uuid_and_parse_are_available() {
    let h = harness().await;
    let definition = machine(
        "P",
        json!({"P": {"Type": "Pass", "End": true, "Output": {
            "partition": "{% $partition([1,2,3,4,5], 2) %}",
            "range": "{% $range(0, 10, 5) %}",
            "hash": "{% $hash('abc', 'SHA-1') %}",
            "seeded": "{% $random(1) = $random(1) %}",
            "uuid": "{% $length($uuid()) %}",
            "parse": "{% $parse($states.input.text).a %}"
        }}}),
    );
    let out = h
        .succeeds("functions", &definition, json!({"text": "{\"a\": [1]}"}))
        .await;
    assert_eq!(
        out,
        json!({
            "partition": [[1, 2], [3, 4], [5]],
            "range": [0, 5, 10],
            "hash": "a9993e364706816aba3e25717850c26c9cd0d89d",
            "seeded": true,
            "uuid": 36,
            "parse": [1]
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_map_takes_item_reader_and_result_writer_arguments_and_batch_input_expressions()
 {
    let h = harness().await;
    let items: Vec<Value> = (0..3).map(|i| json!({"id": i})).collect();
    h.resources.objects.lock().unwrap().insert(
        ("bucket".into(), "pages/1.json".into()),
        serde_json::to_vec(&items).unwrap(),
    );
    let definition = machine(
        "M",
        json!({"M": {"Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                           "ReaderConfig": {"InputType": "JSON", "MaxItems": "{% $states.input.max %}"},
                           "Arguments": {"Bucket": "bucket", "Key": "{% $states.input.key %}"}},
            "ItemBatcher": {"MaxItemsPerBatch": "{% 1 + 1 %}", "BatchInput": {"page": "{% $states.input.key %}"}},
            "MaxConcurrency": "{% 2 %}",
            "ToleratedFailureCount": "{% 0 %}",
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                             "Arguments": {"Bucket": "bucket", "Prefix": "{% 'out/' & $states.input.run %}"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Count", "States": {"Count": {"Type": "Pass", "End": true,
                    "Output": {"page": "{% $states.input.BatchInput.page %}", "n": "{% $count($states.input.Items) %}"}}}},
            "Output": "{% $states.result.ResultWriterDetails %}"
        }}),
    );
    let out = h
        .succeeds(
            "dmap",
            &definition,
            json!({"key": "pages/1.json", "max": 3, "run": "r1"}),
        )
        .await;
    assert_eq!(out["Bucket"], json!("bucket"));
    let manifest_key = out["Key"].as_str().unwrap();
    assert!(manifest_key.starts_with("out/r1/"), "{manifest_key}");
    let manifest = h.resources.json_object("bucket", manifest_key);
    let succeeded = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
        .as_str()
        .unwrap();
    let results = h.resources.json_object("bucket", succeeded);
    let outputs: Vec<Value> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(r["Output"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        outputs,
        [
            json!({"page": "pages/1.json", "n": 2}),
            json!({"page": "pages/1.json", "n": 1})
        ]
    );
}
