//! State machine semantics driven through aws-sdk-sfn over loopback: data flow, Choice,
//! intrinsics, Retry and Catch, Wait, Parallel, inline Map, Lambda and history events.

mod support;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{harness, output};

fn lambda_task(function: &str, next: Option<&str>) -> Value {
    let mut state = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload.$": "$"},
    });
    match next {
        Some(n) => state["Next"] = json!(n),
        None => state["End"] = json!(true),
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_flow_applies_input_path_parameters_result_selector_result_path_and_output_path() {
    let h = harness().await;
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "InputPath": "$.job",
                "Parameters": {
                    "FunctionName": "echo",
                    "Payload": {"file.$": "$.files[1]", "all.$": "$.files[*].name", "static": 7, "execution.$": "$$.Execution.Name", "state.$": "$$.State.Name"}
                },
                "ResultSelector": {"echoed.$": "$.Payload", "code.$": "$.StatusCode"},
                "ResultPath": "$.job.result",
                "OutputPath": "$.job",
                "Next": "Shape"
            },
            "Shape": {
                "Type": "Pass",
                "Parameters": {"name.$": "$.result.echoed.file.name", "quoted.$": "$['result']['echoed']['static']"},
                "ResultPath": "$.shaped",
                "Next": "Discard"
            },
            "Discard": {"Type": "Pass", "Result": {"ignored": true}, "ResultPath": null, "Next": "Nothing"},
            "Nothing": {"Type": "Pass", "InputPath": null, "ResultPath": "$.empty", "Next": "Done"},
            "Done": {"Type": "Succeed", "OutputPath": "$.empty"}
        }
    });
    let arn = h.create("dataflow", &definition).await;
    let exec = h
        .client
        .start_execution()
        .state_machine_arn(&arn)
        .name("run-1")
        .input(json!({"job": {"files": [{"name": "a"}, {"name": "b"}]}, "other": 1}).to_string())
        .send()
        .await
        .unwrap();
    let d = h.wait(exec.execution_arn()).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(output(&d), json!({}));
    let history = h.history(exec.execution_arn()).await;
    let shape_exit = history
        .iter()
        .filter_map(|e| e.state_exited_event_details())
        .find(|s| s.name() == "Shape")
        .unwrap();
    let shaped: Value = serde_json::from_str(shape_exit.output().unwrap()).unwrap();
    assert_eq!(shaped["shaped"], json!({"name": "b", "quoted": 7}));
    assert_eq!(shaped["result"]["code"], json!(200));
    assert_eq!(
        shaped["result"]["echoed"],
        json!({"file": {"name": "b"}, "all": ["a", "b"], "static": 7, "execution": "run-1", "state": "Call"})
    );
    assert!(
        shaped.get("other").is_none(),
        "OutputPath $.job dropped the rest: {shaped}"
    );
    let discard_exit = history
        .iter()
        .filter_map(|e| e.state_exited_event_details())
        .find(|s| s.name() == "Discard")
        .unwrap();
    let discarded: Value = serde_json::from_str(discard_exit.output().unwrap()).unwrap();
    assert_eq!(
        discarded, shaped,
        "ResultPath null passes the input through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_choice_operator_routes_as_the_states_language_defines() {
    let h = harness().await;
    // (operator, variable value, operand, expected match)
    let cases: Vec<(&str, Value, Value, bool)> = vec![
        ("StringEquals", json!("abc"), json!("abc"), true),
        ("StringEquals", json!(1), json!("1"), false),
        ("StringLessThan", json!("abc"), json!("abd"), true),
        ("StringGreaterThan", json!("b"), json!("a"), true),
        ("StringLessThanEquals", json!("a"), json!("a"), true),
        ("StringGreaterThanEquals", json!("a"), json!("b"), false),
        (
            "StringMatches",
            json!("log-2024.txt"),
            json!("log-*.txt"),
            true,
        ),
        ("StringMatches", json!("a*b"), json!("a\\*b"), true),
        ("NumericEquals", json!(3), json!(3.0), true),
        ("NumericEquals", json!("3"), json!(3), false),
        ("NumericLessThan", json!(2), json!(3), true),
        ("NumericGreaterThan", json!(2.5), json!(3), false),
        ("NumericLessThanEquals", json!(3), json!(3), true),
        ("NumericGreaterThanEquals", json!(4), json!(3), true),
        ("BooleanEquals", json!(false), json!(false), true),
        ("BooleanEquals", json!("false"), json!(false), false),
        (
            "TimestampEquals",
            json!("2024-01-01T00:00:00Z"),
            json!("2024-01-01T01:00:00+01:00"),
            true,
        ),
        (
            "TimestampLessThan",
            json!("2024-01-01T00:00:00Z"),
            json!("2024-01-02T00:00:00Z"),
            true,
        ),
        (
            "TimestampGreaterThan",
            json!("2024-01-01T00:00:00Z"),
            json!("2024-01-02T00:00:00Z"),
            false,
        ),
        (
            "TimestampLessThanEquals",
            json!("2024-01-01T00:00:00Z"),
            json!("2024-01-01T00:00:00Z"),
            true,
        ),
        (
            "TimestampGreaterThanEquals",
            json!("not a time"),
            json!("2024-01-01T00:00:00Z"),
            false,
        ),
        ("IsNull", json!(null), json!(true), true),
        ("IsNull", json!(0), json!(true), false),
        ("IsNumeric", json!(1.5), json!(true), true),
        ("IsString", json!(1), json!(false), true),
        ("IsBoolean", json!(true), json!(true), true),
        (
            "IsTimestamp",
            json!("2024-01-01T00:00:00Z"),
            json!(true),
            true,
        ),
        ("IsTimestamp", json!("2024-01-01"), json!(true), false),
    ];
    let mut states = serde_json::Map::new();
    let n = cases.len();
    for (i, (op, _, operand, _)) in cases.iter().enumerate() {
        let next = if i + 1 == n {
            "Presence".to_string()
        } else {
            format!("C{}", i + 1)
        };
        states.insert(
            format!("C{i}"),
            json!({"Type": "Choice", "Choices": [{"Variable": format!("$.v[{i}]"), *op: operand, "Next": format!("T{i}")}], "Default": format!("F{i}")}),
        );
        states.insert(format!("T{i}"), json!({"Type": "Pass", "Result": true, "ResultPath": format!("$.r.c{i}"), "Next": next}));
        states.insert(format!("F{i}"), json!({"Type": "Pass", "Result": false, "ResultPath": format!("$.r.c{i}"), "Next": next}));
    }
    // Path operands, combinators and IsPresent on a missing field.
    states.insert(
        "Presence".into(),
        json!({"Type": "Choice", "Choices": [
            {"And": [
                {"Variable": "$.missing", "IsPresent": false},
                {"Not": {"Variable": "$.x", "NumericGreaterThanPath": "$.y"}},
                {"Or": [{"Variable": "$.s", "StringEqualsPath": "$.t"}, {"Variable": "$.x", "NumericEquals": 99}]}
            ], "Next": "Yes"}
        ], "Default": "No"}),
    );
    states.insert(
        "Yes".into(),
        json!({"Type": "Pass", "Result": "yes", "ResultPath": "$.combined", "End": true}),
    );
    states.insert(
        "No".into(),
        json!({"Type": "Pass", "Result": "no", "ResultPath": "$.combined", "End": true}),
    );
    let definition = json!({"StartAt": "C0", "States": states});
    let input = json!({"v": cases.iter().map(|c| c.1.clone()).collect::<Vec<_>>(), "x": 1, "y": 2, "s": "q", "t": "q"});
    let d = h.run("choices", &definition, &input).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let out = output(&d);
    for (i, (op, value, operand, expected)) in cases.iter().enumerate() {
        assert_eq!(
            out["r"][format!("c{i}")],
            json!(expected),
            "{op} {value} {operand}"
        );
    }
    assert_eq!(out["combined"], json!("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_choice_without_match_or_default_fails_with_no_choice_matched() {
    let h = harness().await;
    let definition = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": 1, "Next": "S"}]},
        "S": {"Type": "Succeed"}
    }});
    let d = h.run("nomatch", &definition, &json!({"a": 2})).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.NoChoiceMatched"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intrinsic_functions_compute_values_in_parameters() {
    let h = harness().await;
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {
        "format.$": "States.Format('{} has {} rows', $.name, $.rows)",
        "json.$": "States.StringToJson($.text)",
        "text.$": "States.JsonToString($.obj)",
        "array.$": "States.Array($.name, 2, States.ArrayLength($.list))",
        "partition.$": "States.ArrayPartition($.list, 2)",
        "contains.$": "States.ArrayContains($.list, 3)",
        "range.$": "States.ArrayRange(1, 9, 4)",
        "item.$": "States.ArrayGetItem($.list, 1)",
        "unique.$": "States.ArrayUnique($.dupes)",
        "b64.$": "States.Base64Encode($.name)",
        "decoded.$": "States.Base64Decode(States.Base64Encode($.name))",
        "hash.$": "States.Hash($.name, 'SHA-256')",
        "merged.$": "States.JsonMerge($.obj, $.more, false)",
        "random.$": "States.MathRandom(1, 5)",
        "sum.$": "States.MathAdd($.rows, -2)",
        "split.$": "States.StringSplit('a,b,,c', ',')",
        "uuid.$": "States.UUID()"
    }, "End": true}}});
    let input = json!({"name": "data", "rows": 12, "text": "{\"k\":[1,2]}", "obj": {"a": 1, "b": {"c": 2}},
                       "more": {"b": 3}, "list": [1, 2, 3], "dupes": [1, 1, "x", "x", 2]});
    let d = h.run("intrinsics", &definition, &input).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(out["format"], json!("data has 12 rows"));
    assert_eq!(out["json"], json!({"k": [1, 2]}));
    assert_eq!(
        serde_json::from_str::<Value>(out["text"].as_str().unwrap()).unwrap(),
        input["obj"]
    );
    assert_eq!(out["array"], json!(["data", 2, 3]));
    assert_eq!(out["partition"], json!([[1, 2], [3]]));
    assert_eq!(out["contains"], json!(true));
    assert_eq!(out["range"], json!([1, 5, 9]));
    assert_eq!(out["item"], json!(2));
    assert_eq!(out["unique"], json!([1, "x", 2]));
    assert_eq!(out["b64"], json!("ZGF0YQ=="));
    assert_eq!(out["decoded"], json!("data"));
    assert_eq!(
        out["hash"],
        json!("3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7")
    );
    assert_eq!(out["merged"], json!({"a": 1, "b": 3}));
    let random = out["random"].as_i64().unwrap();
    assert!((1..5).contains(&random), "{random}");
    assert_eq!(out["sum"], json!(10));
    assert_eq!(out["split"], json!(["a", "b", "c"]));
    assert_eq!(out["uuid"].as_str().unwrap().len(), 36);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_intrinsic_raises_intrinsic_failure_that_catch_can_handle() {
    let h = harness().await;
    let definition = json!({"StartAt": "P", "States": {
        "P": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
              "Parameters": {"FunctionName": "echo", "Payload": {"x.$": "States.ArrayGetItem($.list, 10)"}},
              "Catch": [{"ErrorEquals": ["States.IntrinsicFailure"], "ResultPath": "$.err", "Next": "Caught"}], "End": true},
        "Caught": {"Type": "Pass", "End": true}
    }});
    let d = h
        .run("intrinsic-failure", &definition, &json!({"list": [1]}))
        .await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded);
    assert_eq!(output(&d)["err"]["Error"], json!("States.IntrinsicFailure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_and_then_catch() {
    let h = harness().await;
    let definition = json!({"StartAt": "Call", "States": {
        "Call": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "flaky", "Payload": {"succeedOn": 100}},
            "Retry": [
                {"ErrorEquals": ["Other"], "MaxAttempts": 5},
                {"ErrorEquals": ["Transient"], "IntervalSeconds": 4, "MaxAttempts": 3, "BackoffRate": 2.0}
            ],
            "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.failure", "Next": "Handled"}],
            "End": true
        },
        "Handled": {"Type": "Pass", "End": true}
    }});
    let started = Instant::now();
    let arn = h.create("retry", &definition).await;
    let exec = h.start(&arn, &json!({"keep": 1})).await;
    let d = h.wait(&exec).await;
    let elapsed = started.elapsed();
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    // 1 attempt + 3 retries, delays 4 s, 8 s, 16 s scaled by 0.01 = 0.28 s.
    assert_eq!(h.resources.calls_to("flaky"), 4);
    assert!(elapsed >= Duration::from_millis(280), "{elapsed:?}");
    let times = h.resources.call_times.lock().unwrap().clone();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(40)
            && gaps[1] >= Duration::from_millis(80)
            && gaps[2] >= Duration::from_millis(160),
        "{gaps:?}"
    );
    assert!(gaps[2] > gaps[0], "the delay grows: {gaps:?}");
    let out = output(&d);
    assert_eq!(out["keep"], json!(1));
    assert_eq!(out["failure"]["Error"], json!("Transient"));
    let cause: Value = serde_json::from_str(out["failure"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(
        cause,
        json!({"errorType": "Transient", "errorMessage": "attempt 4"})
    );
    let types = h.event_types(&exec).await;
    assert_eq!(types.iter().filter(|t| *t == "TaskScheduled").count(), 4);
    assert_eq!(types.iter().filter(|t| *t == "TaskFailed").count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_jitter_and_max_delay_keep_retry_delays_within_bounds() {
    let h = harness().await;
    let definition = json!({"StartAt": "Call", "States": {
        "Call": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "flaky", "Payload": {"succeedOn": 6}},
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 6,
                       "BackoffRate": 10.0, "MaxDelaySeconds": 20, "JitterStrategy": "FULL"}],
            "End": true
        }
    }});
    let started = Instant::now();
    let d = h.run("jitter", &definition, &json!({})).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(output(&d)["Payload"]["attempts"], json!(6));
    // Five delays, each at most MaxDelaySeconds (20 s × 0.01): at most 1 s in all, where
    // unbounded backoff would take 10+100+1000... seconds scaled.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_routes_named_errors_task_failed_and_states_all_in_order() {
    let h = harness().await;
    let definition = json!({"StartAt": "Named", "States": {
        "Named": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                  "Parameters": {"FunctionName": "fail", "Payload": {"errorType": "Custom"}},
                  "Catch": [{"ErrorEquals": ["Custom"], "ResultPath": "$.a", "Next": "Service"},
                            {"ErrorEquals": ["States.ALL"], "Next": "Wrong"}], "End": true},
        "Service": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "service"}, "ResultPath": "$.unused",
                    "Catch": [{"ErrorEquals": ["Lambda.ServiceException"], "ResultPath": "$.b", "Next": "Legacy"}], "End": true},
        "Legacy": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:fail",
                   "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.c", "Next": "Timeout"}], "End": true},
        "Timeout": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 1,
                    "Parameters": {"FunctionName": "hang"},
                    "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Wrong"},
                              {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.d", "Next": "Done"}], "End": true},
        "Wrong": {"Type": "Fail", "Error": "WrongCatcher"},
        "Done": {"Type": "Succeed"}
    }});
    let arn = h.create("catch", &definition).await;
    let exec = h.start(&arn, &json!({})).await;
    let d = h.wait(&exec).await;
    assert_eq!(
        *d.status(),
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        d.error(),
        d.cause()
    );
    let out = output(&d);
    assert_eq!(out["a"]["Error"], json!("Custom"));
    assert_eq!(
        out["b"],
        json!({"Error": "Lambda.ServiceException", "Cause": "the service is unavailable"})
    );
    assert_eq!(out["c"]["Error"], json!("Boom"));
    assert_eq!(out["d"]["Error"], json!("States.Timeout"));
    let types = h.event_types(&exec).await;
    for t in [
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionFailed",
        "TaskTimedOut",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_runtime_errors_are_not_caught_by_states_all() {
    let h = harness().await;
    let definition = json!({"StartAt": "Bad", "States": {
        "Bad": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "InputPath": "$.does.not.exist",
                "Parameters": {"FunctionName": "echo"},
                "Retry": [{"ErrorEquals": ["States.ALL"]}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": true},
        "Caught": {"Type": "Succeed"}
    }});
    let d = h.run("runtime", &definition, &json!({"does": {}})).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.Runtime"));
    assert!(
        d.cause().unwrap().contains("$.does.not.exist"),
        "{:?}",
        d.cause()
    );
    assert_eq!(h.resources.calls_to("echo"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_states_report_error_and_cause_from_fields_and_paths() {
    let h = harness().await;
    let definition = json!({"StartAt": "F", "States": {
        "F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('row {} is bad', $.row)"}
    }});
    let d = h
        .run(
            "fail",
            &definition,
            &json!({"e": "ValidationFailed", "row": 7}),
        )
        .await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("ValidationFailed"));
    assert_eq!(d.cause(), Some("row 7 is bad"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_states_honour_seconds_paths_and_timestamps_scaled() {
    let h = harness().await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(20))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let definition = json!({"StartAt": "W1", "States": {
        "W1": {"Type": "Wait", "Seconds": 10, "Next": "W2"},
        "W2": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "W3"},
        "W3": {"Type": "Wait", "TimestampPath": "$.at", "Next": "W4"},
        "W4": {"Type": "Wait", "Timestamp": "2001-01-01T00:00:00Z", "End": true}
    }});
    let started = Instant::now();
    let arn = h.create("wait", &definition).await;
    let exec = h.start(&arn, &json!({"delay": 10, "at": soon})).await;
    let d = h.wait(&exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    // 10 s + 10 s + ~20 s at 0.01 = ~0.4 s; a timestamp in the past does not wait.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    let types = h.event_types(&exec).await;
    assert_eq!(types.iter().filter(|t| *t == "WaitStateEntered").count(), 4);
    assert_eq!(types.iter().filter(|t| *t == "WaitStateExited").count(), 4);
    let bad = h.run("wait-bad", &json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.delay", "End": true}}}), &json!({"delay": "x"})).await;
    assert_eq!(bad.error(), Some("States.Runtime"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_map_honours_max_concurrency_and_item_selector_context() {
    let h = harness().await;
    let definition = json!({"StartAt": "Each", "States": {
        "Each": {
            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
            "ItemSelector": {"ms": 60, "index.$": "$$.Map.Item.Index", "value.$": "$$.Map.Item.Value", "shared.$": "$.shared"},
            "ItemProcessor": {"StartAt": "Slow", "States": {"Slow": {
                "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "slow", "Payload.$": "$"}, "OutputPath": "$.Payload", "End": true}}},
            "ResultSelector": {"count.$": "States.ArrayLength($)", "first.$": "$[0]"},
            "End": true
        }
    }});
    let d = h
        .run(
            "inline-map",
            &definition,
            &json!({"items": ["a", "b", "c", "d", "e"], "shared": "s"}),
        )
        .await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(out["count"], json!(5));
    assert_eq!(
        out["first"],
        json!({"ms": 60, "index": 0, "value": "a", "shared": "s"})
    );
    assert_eq!(
        h.resources
            .max_running
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_map_iteration_failure_fails_the_map_with_that_error() {
    let h = harness().await;
    let definition = json!({"StartAt": "Each", "States": {
        "Each": {"Type": "Map", "Iterator": {"StartAt": "Call", "States": {"Call": {
                "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName.$": "$.f"}, "End": true}}},
            "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.caught", "Next": "Done"}], "End": true},
        "Done": {"Type": "Succeed"}
    }});
    let arn = h.create("inline-fail", &definition).await;
    let exec = h.start(&arn, &json!([{"f": "echo"}, {"f": "fail"}])).await;
    let d = h.wait(&exec).await;
    assert_eq!(
        *d.status(),
        ExecutionStatus::Failed,
        "the Map input is an array, so ResultPath $.caught cannot apply"
    );
    assert_eq!(d.error(), Some("States.ResultPathMatchFailure"));
    let types = h.event_types(&exec).await;
    assert!(
        types.contains(&"MapIterationFailed".to_string()),
        "{types:?}"
    );
    assert!(types.contains(&"MapStateFailed".to_string()), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_run_concurrently_and_return_an_array() {
    let h = harness().await;
    let branch = |ms: u64| {
        json!({"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "slow", "Payload": {"ms": ms}}, "OutputPath": "$.Payload.ms", "End": true}}})
    };
    let definition = json!({"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "Branches": [branch(150), branch(100)], "End": true}}});
    let d = h.run("parallel", &definition, &json!({})).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(
        output(&d),
        json!([150, 100]),
        "branch results keep branch order"
    );
    assert_eq!(
        h.resources
            .max_running
            .load(std::sync::atomic::Ordering::SeqCst),
        2,
        "both branches ran at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_invoke_returns_the_aws_response_shape_and_history_has_the_task_events() {
    let h = harness().await;
    let definition = json!({"StartAt": "Call", "States": {"Call": lambda_task("echo", None)}});
    let arn = h.create("lambda", &definition).await;
    let exec = h.start(&arn, &json!({"x": 1})).await;
    let d = h.wait(&exec).await;
    let out = output(&d);
    assert_eq!(out["Payload"], json!({"x": 1}));
    assert_eq!(out["StatusCode"], json!(200));
    assert_eq!(out["ExecutedVersion"], json!("$LATEST"));
    assert_eq!(out["SdkHttpMetadata"]["HttpStatusCode"], json!(200));
    assert!(out["SdkResponseMetadata"]["RequestId"].is_string());
    assert_eq!(
        h.event_types(&exec).await,
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let history = h.history(&exec).await;
    let scheduled = history[2].task_scheduled_event_details().unwrap();
    assert_eq!(
        (scheduled.resource_type(), scheduled.resource()),
        ("lambda", "invoke")
    );
    assert_eq!(history[2].previous_event_id(), 2);
    // Pagination: two events per page, in order, with nextToken.
    let first = h
        .client
        .get_execution_history()
        .execution_arn(&exec)
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.events().len(), 2);
    let second = h
        .client
        .get_execution_history()
        .execution_arn(&exec)
        .max_results(2)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.events()[0].id(), 3);
    let reversed = h
        .client
        .get_execution_history()
        .execution_arn(&exec)
        .reverse_order(true)
        .send()
        .await
        .unwrap();
    assert_eq!(reversed.events()[0].r#type().as_str(), "ExecutionSucceeded");
    let without_data = h
        .client
        .get_execution_history()
        .execution_arn(&exec)
        .include_execution_data(false)
        .send()
        .await
        .unwrap();
    let entered = without_data.events()[1]
        .state_entered_event_details()
        .unwrap();
    assert_eq!((entered.name(), entered.input()), ("Call", None));
    let scheduled = without_data.events()[2]
        .task_scheduled_event_details()
        .unwrap();
    assert!(
        scheduled.parameters().contains("echo"),
        "parameters stay: the model requires them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_becomes_the_error_name_with_the_json_cause() {
    let h = harness().await;
    let definition = json!({"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:fail", "Payload": {"errorType": "DatasetContentFailed"}}, "End": true}}});
    let d = h.run("function-error", &definition, &json!({})).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("DatasetContentFailed"));
    let cause: Value = serde_json::from_str(d.cause().unwrap()).unwrap();
    assert_eq!(
        cause,
        json!({"errorType": "DatasetContentFailed", "errorMessage": "it failed"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_execution_aborts_a_running_execution() {
    let h = harness().await;
    let definition = json!({"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "hang"}, "End": true}}});
    let arn = h.create("stop", &definition).await;
    let exec = h.start(&arn, &json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.client
        .stop_execution()
        .execution_arn(&exec)
        .error("Operator")
        .cause("stopped by a test")
        .send()
        .await
        .unwrap();
    let d = h.wait(&exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Aborted);
    assert_eq!(d.error(), Some("Operator"));
    let listed = h
        .client
        .list_executions()
        .state_machine_arn(&arn)
        .status_filter(ExecutionStatus::Aborted)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.executions().len(), 1);
    let running = h
        .client
        .list_executions()
        .state_machine_arn(&arn)
        .status_filter(ExecutionStatus::Running)
        .send()
        .await
        .unwrap();
    assert!(running.executions().is_empty());
    assert_eq!(
        h.event_types(&exec).await.last().map(String::as_str),
        Some("ExecutionAborted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_machine_timeout_ends_the_execution_timed_out() {
    let h = harness().await;
    let definition = json!({"TimeoutSeconds": 1, "StartAt": "Call", "States": {"Call": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "hang"}, "End": true}}});
    let d = h.run("timeout", &definition, &json!({})).await;
    assert_eq!(*d.status(), ExecutionStatus::TimedOut);
    assert_eq!(d.error(), Some("States.Timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_function_fails_the_execution_instead_of_leaving_it_running() {
    let h = harness().await;
    let definition = json!({"StartAt": "Call", "States": {"Call": lambda_task("panic", None)}});
    let d = h.run("panics", &definition, &json!({})).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.Runtime"));
    assert!(
        d.cause().unwrap().contains("the test function panicked"),
        "{:?}",
        d.cause()
    );
}
