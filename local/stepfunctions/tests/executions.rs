//! Executions as a whole, through aws-sdk-sfn over loopback: Distributed Map runs, ItemReader,
//! continue-as-new, the history limit, redrive, persistence across a restart, and what the API
//! rejects.

mod support;

use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{harness, harness_scaled, output};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn distributed_map(extra: Value) -> Value {
    let mut map = json!({
        "Type": "Map",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "item", "Payload.$": "$"}, "OutputPath": "$.Payload", "End": true}}
        },
        "End": true
    });
    for (k, v) in extra.as_object().unwrap() {
        map[k] = v.clone();
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_map_runs_children_outside_the_parent_history_and_honours_max_concurrency() {
    let h = harness().await;
    let definition = json!({"StartAt": "Ingest", "States": {"Ingest": {
        "Type": "Map", "ItemsPath": "$.keys", "MaxConcurrencyPath": "$.concurrency", "Label": "Ingest",
        "ItemSelector": {"key.$": "$$.Map.Item.Value", "ms": 40},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Slow", "States": {"Slow": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "slow", "Payload.$": "$"}, "ResultSelector": {"key.$": "$.Payload.key"}, "End": true}}},
        "End": true}}});
    let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    let arn = h.create("dmap", &definition).await;
    let exec = h
        .start(&arn, &json!({"keys": keys, "concurrency": 3}))
        .await;
    let d = h.wait(&exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(out.as_array().unwrap().len(), 12);
    assert_eq!(out[11], json!({"key": "k11"}));
    assert_eq!(h.resources.max_running.load(Ordering::SeqCst), 3);

    let types = h.event_types(&exec).await;
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "MapStateEntered",
            "MapStateStarted",
            "MapRunStarted",
            "MapRunSucceeded",
            "MapStateSucceeded",
            "MapStateExited",
            "ExecutionSucceeded"
        ]
    );
    let runs = h
        .client
        .list_map_runs()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    assert_eq!(runs.map_runs().len(), 1);
    let map_run_arn = runs.map_runs()[0].map_run_arn().to_string();
    assert!(
        map_run_arn.contains(":mapRun:dmap/Ingest:"),
        "{map_run_arn}"
    );
    let described = h
        .client
        .describe_map_run()
        .map_run_arn(&map_run_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(described.status().as_str(), "SUCCEEDED");
    assert_eq!(described.max_concurrency(), 3);
    let counts = described.item_counts().unwrap();
    assert_eq!(
        (counts.succeeded(), counts.total(), counts.failed()),
        (12, 12, 0)
    );

    let children = h
        .client
        .list_executions()
        .map_run_arn(&map_run_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(children.executions().len(), 12);
    let child = children.executions()[0].execution_arn();
    assert!(child.contains(":execution:dmap/Ingest:"), "{child}");
    assert_eq!(
        h.event_types(child).await,
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
    let child_machine = h
        .client
        .describe_state_machine_for_execution()
        .execution_arn(child)
        .send()
        .await
        .unwrap();
    assert_eq!(child_machine.name(), "dmap/Ingest");
    assert!(child_machine.definition().contains("\"Slow\""));
    let top = h
        .client
        .list_executions()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        top.executions().len(),
        1,
        "children are not listed with the state machine"
    );
    let progress = h.sfn.handle().map_runs(&exec);
    assert_eq!(progress[0].items.succeeded, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_map_tolerates_failures_up_to_the_threshold_and_fails_beyond() {
    let h = harness().await;
    let items: Vec<Value> = (0..10).map(|i| json!({"id": i, "fail": i < 2})).collect();
    let tolerant = json!({"StartAt": "M", "States": {"M": distributed_map(json!({"ToleratedFailurePercentage": 20}))}});
    let d = h.run("tolerant", &tolerant, &json!(items)).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(out[0]["Error"], json!("ItemBroken"));
    assert_eq!(out[5], json!({"id": 5, "rows": 10}));

    let strict = json!({"StartAt": "M", "States": {"M": distributed_map(json!({"ToleratedFailureCount": 1, "MaxConcurrency": 1}))}});
    let d = h.run("strict", &strict, &json!(items)).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.ExceedToleratedFailureThreshold"));

    let caught = json!({"StartAt": "M", "States": {
        "M": distributed_map(json!({"Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "ResultPath": null, "Next": "After"}], "End": null})),
        "After": {"Type": "Pass", "Result": "recovered", "End": true}}});
    let mut caught = caught;
    caught["States"]["M"].as_object_mut().unwrap().remove("End");
    caught["States"]["M"]["Next"] = json!("After");
    let d = h.run("caught", &caught, &json!(items)).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(output(&d), json!("recovered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_reader_reads_a_json_array_of_items_from_s3() {
    let h = harness().await;
    let items: Vec<Value> = (0..7).map(|i| json!({"id": i})).collect();
    h.resources.objects.lock().unwrap().insert(
        ("bucket".into(), "pages/1.json".into()),
        serde_json::to_vec(&items).unwrap(),
    );
    let definition = json!({"StartAt": "M", "States": {"M": distributed_map(json!({
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON", "MaxItems": 5},
                       "Parameters": {"Bucket": "bucket", "Key.$": "$.key"}},
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"page.$": "$.key"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Echo",
            "States": {"Echo": {"Type": "Pass", "End": true}}}
    }))}});
    let d = h
        .run("reader", &definition, &json!({"key": "pages/1.json"}))
        .await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(
        out.as_array().unwrap().len(),
        3,
        "5 items in batches of 2: {out}"
    );
    assert_eq!(
        out[0],
        json!({"Items": [{"id": 0}, {"id": 1}], "BatchInput": {"page": "pages/1.json"}})
    );
    assert_eq!(out[2]["Items"], json!([{"id": 4}]));

    let d = h
        .run("reader-missing", &definition, &json!({"key": "nope.json"}))
        .await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.ItemReaderFailed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_as_new_starts_a_new_execution_of_the_same_state_machine() {
    let h = harness().await;
    let definition = json!({"StartAt": "More?", "States": {
        "More?": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "Again"}], "Default": "Done"},
        "Again": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                  "Parameters": {"StateMachineArn.$": "$$.StateMachine.Id",
                                 "Input": {"n.$": "States.MathAdd($.n, 1)", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"}},
                  "ResultSelector": {"next.$": "$.ExecutionArn", "started.$": "$.StartDate"},
                  "Next": "Handed over"},
        "Handed over": {"Type": "Succeed"},
        "Done": {"Type": "Succeed"}
    }});
    let arn = h.create("continue", &definition).await;
    let first = h.start(&arn, &json!({"n": 0})).await;
    let d = h.wait(&first).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let next = output(&d)["next"].as_str().unwrap().to_string();
    assert!(
        next.starts_with("arn:aws:states:us-east-1:123456789012:execution:continue:"),
        "{next}"
    );
    assert!(output(&d)["started"].is_number());
    // Follow the chain to its end: n = 0, 1, 2, 3.
    let mut seen = 1;
    let mut current = next;
    loop {
        let d = h.wait(&current).await;
        seen += 1;
        assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
        match output(&d).get("next").and_then(Value::as_str) {
            Some(n) => current = n.to_string(),
            None => {
                assert_eq!(output(&d)["n"], json!(3));
                break;
            }
        }
    }
    assert_eq!(seen, 4);
    let listed = h
        .client
        .list_executions()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.executions().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_that_exceeds_25000_history_events_fails_with_states_runtime() {
    let h = harness().await;
    let definition = json!({"StartAt": "Count", "States": {
        "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Loop?"},
        "Loop?": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericLessThan": 1000000, "Next": "Count"}], "Default": "Done"},
        "Done": {"Type": "Succeed"}
    }});
    let arn = h.create("forever", &definition).await;
    let exec = h.start(&arn, &json!({"n": 0})).await;
    let d = h.wait(&exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.Runtime"));
    assert!(d.cause().unwrap().contains("25000"), "{:?}", d.cause());
    let history = h.history(&exec).await;
    assert_eq!(history.len(), 25_000);
    assert_eq!(history.last().unwrap().r#type().as_str(), "ExecutionFailed");
    let redrive = h
        .client
        .redrive_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap_err();
    assert_eq!(redrive.code(), Some("ExecutionNotRedrivable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_of_a_failed_distributed_map_reruns_only_failed_items() {
    let h = harness().await;
    let definition = json!({"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "echo", "Payload.$": "$"}, "OutputPath": "$.Payload", "Next": "M"},
        "M": distributed_map(json!({"ItemsPath": "$.items", "MaxConcurrency": 4, "ResultSelector": {"n.$": "States.ArrayLength($)"}, "ResultPath": "$.done"}))
    }});
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"id": i, "fail": i == 3 || i == 7}))
        .collect();
    let arn = h.create("redrive", &definition).await;
    let exec = h.start(&arn, &json!({"items": items})).await;
    let d = h.wait(&exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Failed);
    assert_eq!(d.error(), Some("States.ExceedToleratedFailureThreshold"));
    assert_eq!(d.redrive_status().map(|s| s.as_str()), Some("REDRIVABLE"));
    let calls_before: HashMap<String, u32> = h.resources.per_item.lock().unwrap().clone();
    let map_run = h
        .client
        .list_map_runs()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap()
        .map_runs()[0]
        .map_run_arn()
        .to_string();
    let failed_children = h
        .client
        .list_executions()
        .map_run_arn(&map_run)
        .status_filter(ExecutionStatus::Failed)
        .send()
        .await
        .unwrap();
    let failed_child = failed_children.executions()[0].execution_arn().to_string();
    let child_redrive = h
        .client
        .redrive_execution()
        .execution_arn(&failed_child)
        .send()
        .await
        .unwrap_err();
    assert_eq!(child_redrive.code(), Some("ExecutionNotRedrivable"));

    h.resources.healed.store(true, Ordering::SeqCst);
    h.client
        .redrive_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    let d = h.wait(&exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(d.redrive_count(), Some(1));
    assert_eq!(output(&d)["done"], json!({"n": 10}));
    let calls_after = h.resources.per_item.lock().unwrap().clone();
    // Items that succeeded keep their results; failed items and items the failed run never
    // started run once more.
    for i in 0..10 {
        let before = calls_before.get(&i.to_string()).copied().unwrap_or(0);
        let after = calls_after[&i.to_string()];
        if i == 3 || i == 7 {
            assert_eq!(
                after,
                before + 1,
                "failed item {i} ran {before} then {after} times"
            );
        } else {
            assert_eq!(after, 1, "item {i} ran {before} then {after} times");
        }
    }
    assert!(calls_before.len() < 10 || calls_before.values().all(|n| *n == 1));
    assert_eq!(
        h.resources.calls_to("echo"),
        1,
        "the state before the Map is not rerun"
    );
    let types = h.event_types(&exec).await;
    assert!(types.contains(&"ExecutionRedriven".to_string()));
    assert!(types.contains(&"MapRunRedriven".to_string()));
    let child = h
        .client
        .describe_execution()
        .execution_arn(&failed_child)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (child.status().as_str(), child.redrive_count()),
        ("SUCCEEDED", Some(1))
    );
    let again = h
        .client
        .redrive_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("ExecutionNotRedrivable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_resumes_from_the_failed_state_with_the_input_it_had() {
    let h = harness().await;
    let definition = json!({"StartAt": "First", "States": {
        "First": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                  "Parameters": {"FunctionName": "echo", "Payload": {"step": 1}}, "ResultPath": "$.first", "Next": "Second"},
        "Second": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                   "Parameters": {"FunctionName": "item", "Payload": {"id": "second", "fail": true}}, "ResultPath": "$.second", "End": true}
    }});
    let arn = h.create("redrive-task", &definition).await;
    let exec = h.start(&arn, &json!({"input": true})).await;
    assert_eq!(*h.wait(&exec).await.status(), ExecutionStatus::Failed);
    h.resources.healed.store(true, Ordering::SeqCst);
    h.sfn.handle().redrive_execution(&exec).unwrap();
    let d = h.wait(&exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(out["input"], json!(true));
    assert_eq!(out["first"]["Payload"], json!({"step": 1}));
    assert_eq!(out["second"]["Payload"]["id"], json!("second"));
    assert_eq!(h.resources.calls_to("echo"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_persist_and_resume_across_a_restart() {
    let h = harness_scaled(1.0).await;
    let definition = json!({"StartAt": "Before", "States": {
        "Before": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                   "Parameters": {"FunctionName": "echo", "Payload": {"before": true}}, "ResultPath": "$.before", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "After"},
        "After": {"Type": "Pass", "Result": "after", "ResultPath": "$.after", "End": true}
    }});
    let arn = h.create("persist", &definition).await;
    let done = h.start(&arn, &json!({"run": 1})).await;
    assert_eq!(*h.wait(&done).await.status(), ExecutionStatus::Succeeded);
    let running = h.start(&arn, &json!({"run": 2})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let support::Harness {
        sfn,
        resources,
        dir,
        ..
    } = h;
    sfn.shutdown().await;

    let restarted = support::start_at(dir.path(), resources.clone(), 1.0).await;
    let client = support::client(&restarted.endpoint_url());
    let d = support::wait_with(&client, &running).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(
        (out["run"].clone(), out["after"].clone()),
        (json!(2), json!("after"))
    );
    assert_eq!(
        resources.calls_to("echo"),
        2,
        "the resumed execution did not rerun its finished task"
    );
    let old = client
        .describe_execution()
        .execution_arn(&done)
        .send()
        .await
        .unwrap();
    assert_eq!(*old.status(), ExecutionStatus::Succeeded);
    let history = client
        .get_execution_history()
        .execution_arn(&done)
        .send()
        .await
        .unwrap();
    let types: Vec<&str> = history
        .events()
        .iter()
        .map(|e| e.r#type().as_str())
        .collect();
    assert_eq!(
        types.len(),
        11,
        "the history survived the restart: {types:?}"
    );
    assert_eq!(
        (types[0], types[10]),
        ("ExecutionStarted", "ExecutionSucceeded")
    );
    let resumed = client
        .get_execution_history()
        .execution_arn(&running)
        .send()
        .await
        .unwrap();
    let ids: Vec<i64> = resumed.events().iter().map(|e| e.id()).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "event ids continue across the restart"
    );
    let machines = client.list_state_machines().send().await.unwrap();
    assert_eq!(machines.state_machines().len(), 1);
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_fields_are_rejected_naming_the_state_and_field() {
    let h = harness().await;
    let cases = [
        (
            json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "f"}, "HeartbeatSeconds": 10, "End": true}}}),
            "\"T\"",
            "HeartbeatSeconds",
        ),
        (
            json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {}, "End": true}}}),
            "\"T\"",
            "Resource",
        ),
        (
            json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ResultWriter": {}, "ItemProcessor": {"StartAt": "P",
            "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
            "\"M\"",
            "ResultWriter",
        ),
        (
            json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {}, "End": true}}}),
            "\"P\"",
            "Parameters",
        ),
        (
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": {"x": 1}, "End": true}}}),
            "\"P\"",
            "Output",
        ),
        (
            json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ToleratedFailureCount": 1, "ItemProcessor": {"StartAt": "P",
            "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
            "\"M\"",
            "ToleratedFailureCount",
        ),
        (
            json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEqualz": "x", "Next": "C"}]}}}),
            "\"C\"",
            "StringEqualz",
        ),
        (
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"x.$": "States.Nope($)"}, "End": true}}}),
            "\"P\"",
            "Parameters.x.$",
        ),
    ];
    for (i, (definition, state, field)) in cases.iter().enumerate() {
        let err = h
            .client
            .create_state_machine()
            .name(format!("bad-{i}"))
            .definition(definition.to_string())
            .role_arn("arn:aws:iam::123456789012:role/test")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidDefinition"), "case {i}");
        let message = err.message().unwrap_or_default();
        assert!(
            message.contains(state) && message.contains(field),
            "case {i}: {message}"
        );
    }
    let unknown = h
        .sfn
        .handle()
        .register_state_machine(
            "subs",
            r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Result":"${Bucket}","End":true}}}"#,
            &HashMap::new(),
        )
        .unwrap_err();
    assert!(unknown.to_string().contains("Bucket"), "{unknown}");
    let subs = HashMap::from([("Bucket".to_string(), "my-bucket".to_string())]);
    let arn = h
        .sfn
        .handle()
        .register_state_machine(
            "subs",
            r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Result":"${Bucket}","End":true}}}"#,
            &subs,
        )
        .unwrap();
    let exec = h
        .sfn
        .handle()
        .start_execution(&arn, None, json!({}))
        .unwrap();
    let info = h
        .sfn
        .handle()
        .wait_for_execution(&exec, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(info.output, Some(json!("my-bucket")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_use_aws_error_types_and_unknown_operations_are_named() {
    let h = harness().await;
    let missing = h
        .client
        .describe_execution()
        .execution_arn("arn:aws:states:us-east-1:123456789012:execution:none:x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("ExecutionDoesNotExist"));
    let bad_arn = h
        .client
        .describe_execution()
        .execution_arn("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad_arn.code(), Some("InvalidArn"));
    let no_machine = h
        .client
        .start_execution()
        .state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(no_machine.code(), Some("StateMachineDoesNotExist"));
    let arn = h
        .create(
            "dupe",
            &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
        )
        .await;
    h.client
        .start_execution()
        .state_machine_arn(&arn)
        .name("same")
        .input("{}")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dupe = h
        .client
        .start_execution()
        .state_machine_arn(&arn)
        .name("same")
        .input("{\"x\":1}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(dupe.code(), Some("ExecutionAlreadyExists"));

    let mut stream = tokio::net::TcpStream::connect(h.sfn.local_addr())
        .await
        .unwrap();
    let body = "{}";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: AWSStepFunctions.SendTaskSuccess\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    let json_body: Value =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json_body["__type"], json!("UnknownOperationException"));
    assert!(
        json_body["message"]
            .as_str()
            .unwrap()
            .contains("SendTaskSuccess")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_map_of_a_thousand_items_completes_with_every_child_recorded() {
    let h = harness().await;
    let definition = json!({"StartAt": "M", "States": {"M": distributed_map(json!({"MaxConcurrency": 100,
        "ResultSelector": {"n.$": "States.ArrayLength($)"}}))}});
    let items: Vec<Value> = (0..1000).map(|i| json!({"id": i})).collect();
    let started = std::time::Instant::now();
    let d = h.run("thousand", &definition, &json!(items)).await;
    let elapsed = started.elapsed();
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(output(&d), json!({"n": 1000}));
    assert_eq!(h.resources.calls_to("item"), 1000);
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    tracing::info!(?elapsed, "1000 Map Run children");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_of_an_inline_map_reruns_only_the_iterations_that_failed() {
    let h = harness().await;
    let definition = json!({"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "MaxConcurrency": 1,
        "ItemProcessor": {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "item", "Payload.$": "$"}, "OutputPath": "$.Payload", "End": true}}},
        "End": true}}});
    let items: Vec<Value> = (0..4).map(|i| json!({"id": i, "fail": i == 2})).collect();
    let arn = h.create("inline-redrive", &definition).await;
    let exec = h.start(&arn, &json!(items)).await;
    let d = h.wait(&exec).await;
    assert_eq!(
        (d.status().as_str(), d.error()),
        ("FAILED", Some("ItemBroken"))
    );
    h.resources.healed.store(true, Ordering::SeqCst);
    h.client
        .redrive_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    let d = h.wait(&exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(output(&d).as_array().unwrap().len(), 4);
    let calls = h.resources.per_item.lock().unwrap().clone();
    assert_eq!(
        (calls["0"], calls["1"], calls["2"], calls["3"]),
        (1, 1, 2, 1),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_an_execution_aborts_its_map_run_and_children() {
    let h = harness().await;
    let definition = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Hang",
            "States": {"Hang": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "hang"}, "End": true}}},
        "End": true}}});
    let arn = h.create("stop-map", &definition).await;
    let exec = h.start(&arn, &json!([1, 2, 3])).await;
    let mut map_run = None;
    for _ in 0..100 {
        let runs = h
            .client
            .list_map_runs()
            .execution_arn(&exec)
            .send()
            .await
            .unwrap();
        if let Some(run) = runs.map_runs().first() {
            map_run = Some(run.map_run_arn().to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let map_run = map_run.expect("the Map Run started");
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.client
        .stop_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    assert_eq!(*h.wait(&exec).await.status(), ExecutionStatus::Aborted);
    let described = h
        .client
        .describe_map_run()
        .map_run_arn(&map_run)
        .send()
        .await
        .unwrap();
    assert_eq!(described.status().as_str(), "ABORTED");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let children = h
        .client
        .list_executions()
        .map_run_arn(&map_run)
        .send()
        .await
        .unwrap();
    assert_eq!(children.executions().len(), 3);
    assert!(
        children
            .executions()
            .iter()
            .all(|e| *e.status() == ExecutionStatus::Aborted),
        "{children:?}"
    );
    assert!(
        h.event_types(&exec)
            .await
            .contains(&"MapRunAborted".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_access_key_only_requests_signed_with_it_are_served() {
    use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
    let dir = tempfile::tempdir().unwrap();
    let mut config = local_stepfunctions::Config::new(
        dir.path(),
        std::sync::Arc::new(local_stepfunctions::NoResources),
    );
    config.access_key = Some(local_stepfunctions::AccessKey {
        id: "test".into(),
        secret: "test".into(),
    });
    let sfn = local_stepfunctions::start(config).await.unwrap();
    let client_in = |region: &'static str, id: &str, secret: &str| {
        aws_sdk_sfn::Client::from_conf(
            aws_sdk_sfn::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region))
                .credentials_provider(Credentials::new(id, secret, None, None, "test"))
                .endpoint_url(sfn.endpoint_url())
                .build(),
        )
    };
    let client_with = |id: &str, secret: &str| client_in("us-east-1", id, secret);
    let listed = client_with("test", "test")
        .list_state_machines()
        .send()
        .await
        .unwrap();
    assert!(listed.state_machines().is_empty());
    let wrong_secret = client_with("test", "nope")
        .list_state_machines()
        .send()
        .await
        .unwrap_err();
    assert_eq!(wrong_secret.code(), Some("InvalidSignatureException"));
    let wrong_key = client_with("other", "test")
        .list_state_machines()
        .send()
        .await
        .unwrap_err();
    assert_eq!(wrong_key.code(), Some("UnrecognizedClientException"));
    // The endpoint is in us-east-1 (the Config default): another region's scope is refused.
    let wrong_region = client_in("eu-west-1", "test", "test")
        .list_state_machines()
        .send()
        .await
        .unwrap_err();
    assert_eq!(wrong_region.code(), Some("InvalidSignatureException"));
    assert_eq!(
        wrong_region.raw_response().map(|r| r.status().as_u16()),
        Some(403)
    );
    sfn.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_map_resumes_after_a_restart_without_rerunning_finished_items() {
    let h = harness_scaled(1.0).await;
    let definition = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "MaxConcurrency": 2,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Pause",
            "States": {
                "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Work"},
                "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                         "Parameters": {"FunctionName": "item", "Payload.$": "$"}, "OutputPath": "$.Payload", "End": true}}},
        "End": true}}});
    let items: Vec<Value> = (0..6).map(|i| json!({"id": i})).collect();
    let arn = h.create("resume-map", &definition).await;
    let exec = h.start(&arn, &json!(items)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let support::Harness {
        sfn,
        resources,
        dir,
        ..
    } = h;
    sfn.shutdown().await;
    let finished_before = resources.per_item.lock().unwrap().len();
    assert!(
        (2..6).contains(&finished_before),
        "{finished_before} items had finished at the restart"
    );

    let restarted = support::start_at(dir.path(), resources.clone(), 1.0).await;
    let client = support::client(&restarted.endpoint_url());
    let d = support::wait_with(&client, &exec).await;
    assert_eq!(*d.status(), ExecutionStatus::Succeeded, "{:?}", d.cause());
    assert_eq!(output(&d).as_array().unwrap().len(), 6);
    let calls = resources.per_item.lock().unwrap().clone();
    assert_eq!(calls.len(), 6);
    assert!(
        calls.values().all(|n| *n == 1),
        "every item ran exactly once: {calls:?}"
    );
    let progress = restarted.handle().map_runs(&exec);
    assert_eq!((progress.len(), progress[0].items.succeeded), (1, 6));
    restarted.shutdown().await;
}
