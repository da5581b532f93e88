//! Workflow variables as AWS documents them ("Passing data between states with variables"):
//! Assign on Pass, Task, Map, Parallel, Choice (and its rules), Wait and catchers; reading
//! `$name` in JSONata and in JSONPath paths and intrinsics; the values as of state entry; the
//! scopes of Parallel branches, inline and distributed Map iterations; and the size limits.
//! Each test states the AWS result it checks; all run through aws-sdk-sfn over loopback.

mod support;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use support::{harness, output};

const ECHO: &str = "arn:aws:lambda:us-east-1:123456789012:function:echo";
const FAIL: &str = "arn:aws:lambda:us-east-1:123456789012:function:fail";

/// A JSONata machine of the given states, starting at the first named.
fn jsonata(start: &str, states: Value) -> Value {
    json!({"QueryLanguage": "JSONata", "StartAt": start, "States": states})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_assigned_in_one_state_is_read_by_any_later_state() {
    let h = harness().await;
    let definition = jsonata(
        "A",
        json!({
            "A": {"Type": "Pass", "Assign": {"order": "{% $states.input.order %}", "count": 42}, "Next": "B"},
            "B": {"Type": "Pass", "Output": {"other": "output"}, "Next": "C"},
            "C": {"Type": "Pass", "Output": {"id": "{% $order.id %}", "count": "{% $count %}"}, "End": true}
        }),
    );
    let out = h
        .succeeds("later", &definition, json!({"order": {"id": "o-1"}}))
        .await;
    assert_eq!(out, json!({"id": "o-1", "count": 42}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_and_output_read_the_variables_as_they_were_when_the_state_was_entered() {
    let h = harness().await;
    let definition = jsonata(
        "A",
        json!({
            "A": {"Type": "Pass", "Assign": {"x": 1}, "Next": "B"},
            "B": {"Type": "Pass", "Assign": {"x": "{% $x + 1 %}", "old": "{% $x %}"},
                  "Output": "{% $x %}", "Next": "C"},
            "C": {"Type": "Pass", "Output": {"x": "{% $x %}", "old": "{% $old %}", "passed": "{% $states.input %}"}, "End": true}
        }),
    );
    let out = h.succeeds("entry", &definition, json!({})).await;
    assert_eq!(out, json!({"x": 2, "old": 1, "passed": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonpath_states_read_variables_as_dollar_name_in_paths_and_intrinsics() {
    let h = harness().await;
    let definition = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"cfg": {"n": 3, "tags": ["a", "b"]}, "copy.$": "$.v"}, "Next": "B"},
        "B": {"Type": "Pass", "Parameters": {
            "n.$": "$cfg.n",
            "first.$": "$cfg.tags[0]",
            "copy.$": "$copy",
            "text.$": "States.Format('n={}', $cfg.n)"
        }, "End": true}
    }});
    let out = h
        .succeeds("jsonpath", &definition, json!({"v": "input value"}))
        .await;
    assert_eq!(
        out,
        json!({"n": 3, "first": "a", "copy": "input value", "text": "n=3"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonpath_task_assign_reads_the_result_as_dollar() {
    let h = harness().await;
    let definition = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": ECHO, "Parameters": {"x.$": "$.v"},
              "Assign": {"fromResult.$": "$.x"}, "ResultPath": null, "Next": "Read"},
        "Read": {"Type": "Pass", "Parameters": {"got.$": "$fromResult"}, "End": true}
    }});
    let out = h
        .succeeds("jsonpath-task", &definition, json!({"v": 7}))
        .await;
    assert_eq!(out, json!({"got": 7}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_assign_reads_states_result_in_jsonata() {
    let h = harness().await;
    let definition = jsonata(
        "T",
        json!({
            "T": {"Type": "Task", "Resource": ECHO, "Arguments": {"price": 5},
                  "Assign": {"price": "{% $states.result.price %}"}, "Output": {}, "Next": "Read"},
            "Read": {"Type": "Pass", "Output": "{% $price * 2 %}", "End": true}
        }),
    );
    assert_eq!(
        h.succeeds("task-result", &definition, json!({})).await,
        json!(10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_read_outer_variables_and_their_assignments_do_not_leak_out() {
    let h = harness().await;
    let branch = json!({"StartAt": "In", "States": {
        "In": {"Type": "Pass", "Assign": {"outer": "changed", "inner": 1}, "Next": "Read"},
        "Read": {"Type": "Pass", "Output": "{% $outer %}", "End": true}
    }});
    let definition = jsonata(
        "Set",
        json!({
            "Set": {"Type": "Pass", "Assign": {"outer": "original"}, "Next": "Par"},
            "Par": {"Type": "Parallel", "Branches": [branch.clone(), branch], "Next": "After",
                    "Output": "{% $states.result %}"},
            "After": {"Type": "Pass", "Output": {
                "branches": "{% $states.input %}",
                "outer": "{% $outer %}",
                "innerVisible": "{% $exists($inner) %}"
            }, "End": true}
        }),
    );
    let out = h.succeeds("parallel-scope", &definition, json!({})).await;
    assert_eq!(
        out,
        json!({"branches": ["changed", "changed"], "outer": "original", "innerVisible": false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_map_iterations_read_outer_variables_and_their_assignments_do_not_leak_out() {
    let h = harness().await;
    let definition = jsonata(
        "Set",
        json!({
            "Set": {"Type": "Pass", "Assign": {"factor": 10}, "Next": "Map"},
            "Map": {"Type": "Map", "Items": "{% [1, 2] %}", "Next": "After",
                "ItemProcessor": {"StartAt": "Mul", "States": {
                    "Mul": {"Type": "Pass", "Assign": {"factor": 0, "seen": true},
                            "Output": "{% $states.input * $factor %}", "End": true}
                }}},
            "After": {"Type": "Pass", "Output": {
                "results": "{% $states.input %}", "factor": "{% $factor %}", "seen": "{% $exists($seen) %}"
            }, "End": true}
        }),
    );
    let out = h.succeeds("map-scope", &definition, json!({})).await;
    assert_eq!(
        out,
        json!({"results": [10, 20], "factor": 10, "seen": false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_map_children_cannot_read_outer_variables() {
    let h = harness().await;
    let map = |processor_output: &str| {
        jsonata(
            "Set",
            json!({
                "Set": {"Type": "Pass", "Assign": {"secret": 1}, "Next": "Map"},
                "Map": {"Type": "Map", "Items": "{% [1] %}", "End": true,
                    "ItemSelector": {"passed": "{% $secret %}"},
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "Read", "States": {
                            "Read": {"Type": "Pass", "Output": processor_output, "End": true}
                        }}}
            }),
        )
    };
    // ItemSelector is evaluated in the parent, where the variable is in scope.
    let out = h
        .succeeds("dmap-passed", &map("{% $states.input.passed %}"), json!({}))
        .await;
    assert_eq!(out, json!([1]));
    let d = h.run("dmap-outer", &map("{% $secret %}"), &json!({})).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed, "{:?}", d.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matched_choice_rule_applies_its_assign_and_the_default_applies_the_state_assign() {
    let h = harness().await;
    let definition = jsonata(
        "C",
        json!({
            "C": {"Type": "Choice", "Default": "Done", "Assign": {"path": "default"},
                  "Choices": [{"Condition": "{% $states.input.go %}", "Next": "Done", "Assign": {"path": "rule"}}]},
            "Done": {"Type": "Pass", "Output": "{% $path %}", "End": true}
        }),
    );
    assert_eq!(
        h.succeeds("choice-rule", &definition, json!({"go": true}))
            .await,
        json!("rule")
    );
    assert_eq!(
        h.succeeds("choice-default", &definition, json!({"go": false}))
            .await,
        json!("default")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_error_applies_the_catcher_assign_and_not_the_state_assign() {
    let h = harness().await;
    let definition = jsonata(
        "T",
        json!({
            "T": {"Type": "Task", "Resource": FAIL, "Arguments": {"errorType": "Broken"},
                  "Assign": {"state": "assigned"}, "Next": "Done",
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done",
                             "Assign": {"caught": "{% $states.errorOutput.Error %}"}}]},
            "Done": {"Type": "Pass", "Output": {
                "caught": "{% $caught %}", "stateAssigned": "{% $exists($state) %}"
            }, "End": true}
        }),
    );
    let out = h.succeeds("catch-assign", &definition, json!({})).await;
    assert_eq!(out, json!({"caught": "Broken", "stateAssigned": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_state_assigns_variables() {
    let h = harness().await;
    let definition = json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 0, "Assign": {"waited.$": "$.n"}, "Next": "Read"},
        "Read": {"Type": "Pass", "Parameters": {"waited.$": "$waited"}, "End": true}
    }});
    let out = h
        .succeeds("wait-assign", &definition, json!({"n": 5}))
        .await;
    assert_eq!(out, json!({"waited": 5}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_over_256_kib_fails_the_execution() {
    let h = harness().await;
    let definition = jsonata(
        "Big",
        json!({"Big": {"Type": "Pass", "Assign": {"big": "{% $pad('', 262145, 'x') %}"}, "End": true}}),
    );
    let d = h.run("too-big", &definition, &json!({})).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.Runtime"));
    assert!(
        d.cause().unwrap_or_default().contains("'big'"),
        "{:?}",
        d.cause()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeed_and_fail_states_cannot_assign() {
    let h = harness().await;
    let succeed = json!({"StartAt": "S", "States": {"S": {"Type": "Succeed", "Assign": {"x": 1}}}});
    assert!(
        h.refusal("succeed-assign", &succeed)
            .await
            .is_some_and(|m| m.contains("Assign"))
    );
    let fail = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Assign": {"x": 1}}}});
    assert!(
        h.refusal("fail-assign", &fail)
            .await
            .is_some_and(|m| m.contains("Assign"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_cannot_be_named_states_or_start_with_a_digit() {
    let h = harness().await;
    for (i, name) in ["states", "1x", "a-b"].into_iter().enumerate() {
        let definition = jsonata(
            "P",
            json!({"P": {"Type": "Pass", "Assign": {name: 1}, "End": true}}),
        );
        assert!(
            h.refusal(&format!("name-{i}"), &definition)
                .await
                .is_some_and(|m| m.contains("Assign")),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redriven_execution_keeps_the_variables_assigned_before_the_failed_state() {
    let h = harness().await;
    let item = "arn:aws:lambda:us-east-1:123456789012:function:item";
    let definition = jsonata(
        "Set",
        json!({
            "Set": {"Type": "Pass", "Assign": {"kept": "{% $states.input.v %}"}, "Next": "Work"},
            "Work": {"Type": "Task", "Resource": item, "Arguments": {"id": "w", "fail": true},
                     "Output": {"kept": "{% $kept %}", "rows": "{% $states.result.rows %}"}, "End": true}
        }),
    );
    let arn = h.create("redrive-vars", &definition).await;
    let exec = h.start(&arn, &json!({"v": "before"})).await;
    assert_eq!(*h.wait(&exec).await.status(), ExecutionStatus::Failed);
    h.resources
        .healed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    h.sfn.handle().redrive_execution(&exec).unwrap();
    let d = h.wait(&exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(output(&d), json!({"kept": "before", "rows": 10}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_exited_event_records_the_assigned_variables_as_json_text() {
    let h = harness().await;
    let definition = jsonata(
        "A",
        json!({"A": {"Type": "Pass", "Assign": {"n": 1, "s": "text", "o": {"k": [true]}}, "End": true}}),
    );
    let arn = h.create("history", &definition).await;
    let execution = h.start(&arn, &json!({})).await;
    h.wait(&execution).await;
    let exited = h
        .history(&execution)
        .await
        .into_iter()
        .find_map(|e| e.state_exited_event_details().cloned())
        .expect("exited");
    let assigned = exited.assigned_variables().expect("assignedVariables");
    assert_eq!(assigned.get("n").map(String::as_str), Some("1"));
    assert_eq!(assigned.get("s").map(String::as_str), Some("\"text\""));
    assert_eq!(
        assigned.get("o").map(String::as_str),
        Some("{\"k\":[true]}")
    );
    assert_eq!(
        exited.assigned_variables_details().map(|d| d.truncated()),
        Some(false)
    );
}
