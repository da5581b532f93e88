//! Distributed Map as production definitions use it, and EXPRESS state machines, through
//! aws-sdk-sfn over loopback: EXPRESS child executions, the ItemBatcher, failure tolerance
//! counted per item, the ResultWriter's files in S3, and StartSyncExecution.

mod support;

use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::types::{ExecutionStatus, StateMachineType, SyncExecutionStatus};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use support::{Harness, harness, output};

/// A machine whose only state is a DISTRIBUTED Map over `$.items` running `function` on each
/// child input, with `extra` fields on the Map and the child execution type given.
fn map_machine(execution_type: &str, function: &str, extra: Value) -> Value {
    let mut map = json!({
        "Type": "Map", "ItemsPath": "$.items", "Label": "Items",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function, "Payload.$": "$"},
                "OutputPath": "$.Payload", "End": true}}
        },
        "End": true
    });
    for (k, v) in extra.as_object().unwrap() {
        map[k] = v.clone();
    }
    json!({"StartAt": "Map", "States": {"Map": map}})
}

fn items(n: u64, failing: &[u64]) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"id": i, "fail": failing.contains(&i)}))
        .collect();
    json!({"items": items})
}

async fn map_run_of(
    h: &Harness,
    execution_arn: &str,
) -> aws_sdk_sfn::operation::describe_map_run::DescribeMapRunOutput {
    let runs = h
        .client
        .list_map_runs()
        .execution_arn(execution_arn)
        .send()
        .await
        .unwrap();
    let arn = runs.map_runs()[0].map_run_arn().to_string();
    h.client
        .describe_map_run()
        .map_run_arn(arn)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express_children_run_every_item_but_are_not_kept_as_executions() {
    let h = harness().await;
    let sm = h
        .create(
            "express-children",
            &map_machine("EXPRESS", "item", json!({})),
        )
        .await;
    let execution = h.start(&sm, &items(5, &[])).await;
    let done = h.wait(&execution).await;
    assert_eq!(*done.status(), ExecutionStatus::Succeeded);
    assert_eq!(output(&done).as_array().unwrap().len(), 5);
    let run = map_run_of(&h, &execution).await;
    assert_eq!(run.item_counts().unwrap().succeeded(), 5);
    assert_eq!(run.execution_counts().unwrap().succeeded(), 5);
    let children = h
        .client
        .list_executions()
        .map_run_arn(run.map_run_arn())
        .send()
        .await
        .unwrap();
    assert!(
        children.executions().is_empty(),
        "Express children are not listed"
    );
    // The store writes records in the background: wait for the parent's, then count.
    let count_records = || {
        std::fs::read_dir(h.dir.path().join("executions"))
            .map(|dir| {
                dir.filter(|f| {
                    !f.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".events.jsonl")
                })
                .count()
            })
            .unwrap_or(0)
    };
    let mut records = count_records();
    for _ in 0..50 {
        if records > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        records = count_records();
    }
    assert_eq!(
        records, 1,
        "only the parent execution is written to the data directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_express_child_is_reported_by_the_map_run_with_its_error_and_cause() {
    let h = harness().await;
    let definition = map_machine("EXPRESS", "item", json!({"ToleratedFailureCount": 1}));
    let done = h.run("express-failure", &definition, &items(3, &[1])).await;
    assert_eq!(*done.status(), ExecutionStatus::Succeeded);
    let out = output(&done);
    assert_eq!(out[1]["Error"], "ItemBroken");
    assert!(
        out[1]["Cause"]
            .as_str()
            .unwrap()
            .contains("item 1 is broken")
    );
    let run = map_run_of(&h, done.execution_arn()).await;
    assert_eq!(run.item_counts().unwrap().failed(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redriving_a_map_run_starts_its_failed_express_children_again_from_the_beginning() {
    let h = harness().await;
    let sm = h
        .create(
            "express-redrive",
            &map_machine("EXPRESS", "item", json!({})),
        )
        .await;
    let execution = h.start(&sm, &items(3, &[2])).await;
    let failed = h.wait(&execution).await;
    assert_eq!(
        failed.error(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    h.resources.healed.store(true, Ordering::SeqCst);
    h.client
        .redrive_execution()
        .execution_arn(&execution)
        .send()
        .await
        .unwrap();
    let done = h.wait(&execution).await;
    assert_eq!(*done.status(), ExecutionStatus::Succeeded);
    let per_item = h.resources.per_item.lock().unwrap().clone();
    assert_eq!(per_item["2"], 2, "the failed item ran again");
    assert_eq!(per_item["0"], 1, "a succeeded item did not run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_batcher_gives_each_child_its_items_and_the_batch_input() {
    let h = harness().await;
    let definition = map_machine(
        "EXPRESS",
        "echo",
        json!({"ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.run"}}}),
    );
    let done = h
        .run(
            "batches",
            &definition,
            &json!({"run": "r1", "items": [1, 2, 3, 4, 5]}),
        )
        .await;
    let out = output(&done);
    assert_eq!(
        out,
        json!([
            {"BatchInput": {"run": "r1"}, "Items": [1, 2]},
            {"BatchInput": {"run": "r1"}, "Items": [3, 4]},
            {"BatchInput": {"run": "r1"}, "Items": [5]},
        ])
    );
    let run = map_run_of(&h, done.execution_arn()).await;
    assert_eq!(run.item_counts().unwrap().total(), 5);
    assert_eq!(run.execution_counts().unwrap().total(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_input_bytes_per_batch_bounds_the_json_size_of_every_child_input() {
    let h = harness().await;
    let definition = map_machine(
        "STANDARD",
        "echo",
        json!({"ItemBatcher": {"MaxInputBytesPerBatchPath": "$.bytes"}}),
    );
    let items: Vec<Value> = (0..20)
        .map(|i| json!({"id": i, "pad": "abcdefghij"}))
        .collect();
    let done = h
        .run("bytes", &definition, &json!({"bytes": 120, "items": items}))
        .await;
    let out = output(&done);
    let batches = out.as_array().unwrap();
    assert!(batches.len() > 1);
    for batch in batches {
        assert!(batch.to_string().len() <= 120, "{batch} is over 120 bytes");
    }
    let total: usize = batches
        .iter()
        .map(|b| b["Items"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_larger_than_max_input_bytes_per_batch_fails_the_map_state() {
    let h = harness().await;
    let definition = map_machine(
        "EXPRESS",
        "echo",
        json!({"ItemBatcher": {"MaxInputBytesPerBatch": 50}}),
    );
    let done = h
        .run(
            "too-big",
            &definition,
            &json!({"items": ["a", "x".repeat(60)]}),
        )
        .await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("States.Runtime"));
    assert!(
        done.cause().unwrap().contains("index 1"),
        "{:?}",
        done.cause()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_counts_all_its_items_against_the_tolerated_failure_percentage() {
    let h = harness().await;
    // Ten items in batches of five; one bad item fails its batch: five items (50%) failed.
    let batch_item = |percentage: u64| {
        let mut d = map_machine(
            "EXPRESS",
            "fail_batch",
            json!({"ItemBatcher": {"MaxItemsPerBatch": 5}, "ToleratedFailurePercentage": percentage}),
        );
        d["States"]["Map"]["ItemProcessor"]["States"]["Work"] = json!({
            "Type": "Choice",
            "Choices": [{"Variable": "$.Items[0].fail", "BooleanEquals": true, "Next": "Broken"}],
            "Default": "Fine"});
        d["States"]["Map"]["ItemProcessor"]["StartAt"] = json!("Work");
        d["States"]["Map"]["ItemProcessor"]["States"]["Broken"] =
            json!({"Type": "Fail", "Error": "BatchBroken", "Cause": "the first item is bad"});
        d["States"]["Map"]["ItemProcessor"]["States"]["Fine"] = json!({"Type": "Succeed"});
        d
    };
    let strict = h.run("batch-40", &batch_item(40), &items(10, &[5])).await;
    assert_eq!(
        strict.error(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    let run = map_run_of(&h, strict.execution_arn()).await;
    assert_eq!(run.item_counts().unwrap().failed(), 5);
    assert_eq!(run.execution_counts().unwrap().failed(), 1);
    let tolerant = h.run("batch-50", &batch_item(50), &items(10, &[5])).await;
    assert_eq!(*tolerant.status(), ExecutionStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_writer_exports_the_results_and_a_manifest_and_the_map_outputs_where_it_is() {
    let h = harness().await;
    let definition = map_machine(
        "STANDARD",
        "item",
        json!({"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "results", "Prefix.$": "$.prefix"}}}),
    );
    let mut input = items(3, &[]);
    input["prefix"] = json!("runs");
    let done = h.run("writer", &definition, &input).await;
    let out = output(&done);
    let map_run_arn = out["MapRunArn"].as_str().unwrap();
    let run_id = map_run_arn.rsplit(':').next().unwrap();
    let manifest_key = format!("runs/{run_id}/manifest.json");
    assert_eq!(
        out["ResultWriterDetails"],
        json!({"Bucket": "results", "Key": manifest_key})
    );
    let manifest = h.resources.json_object("results", &manifest_key);
    assert_eq!(manifest["DestinationBucket"], "results");
    assert_eq!(manifest["MapRunArn"], map_run_arn);
    assert_eq!(manifest["ResultFiles"]["FAILED"], json!([]));
    assert_eq!(manifest["ResultFiles"]["PENDING"], json!([]));
    let succeeded = &manifest["ResultFiles"]["SUCCEEDED"][0];
    let key = format!("runs/{run_id}/SUCCEEDED_0.json");
    assert_eq!(succeeded["Key"], key);
    let results = h.resources.json_object("results", &key);
    assert_eq!(
        succeeded["Size"].as_u64().unwrap() as usize,
        results.to_string().len()
    );
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        assert_eq!(r["Status"], "SUCCEEDED");
        let output: Value = serde_json::from_str(r["Output"].as_str().unwrap()).unwrap();
        let input: Value = serde_json::from_str(r["Input"].as_str().unwrap()).unwrap();
        assert_eq!(output["id"], input["id"]);
        assert!(
            r["ExecutionArn"]
                .as_str()
                .unwrap()
                .contains(":execution:writer/Items:")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_writer_writes_failed_children_with_error_and_cause_and_unstarted_items_as_pending()
{
    let h = harness().await;
    let definition = map_machine(
        "EXPRESS",
        "item",
        json!({"MaxConcurrency": 1, "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "results", "Prefix": "failed"}}}),
    );
    let done = h.run("writer-failed", &definition, &items(4, &[1])).await;
    assert_eq!(done.error(), Some("States.ExceedToleratedFailureThreshold"));
    let run = map_run_of(&h, done.execution_arn()).await;
    let run_id = run.map_run_arn().rsplit(':').next().unwrap().to_string();
    let manifest = h
        .resources
        .json_object("results", &format!("failed/{run_id}/manifest.json"));
    let failed = h
        .resources
        .json_object("results", &format!("failed/{run_id}/FAILED_0.json"));
    assert_eq!(failed[0]["Status"], "FAILED");
    assert_eq!(failed[0]["Error"], "ItemBroken");
    assert!(
        failed[0]["Cause"]
            .as_str()
            .unwrap()
            .contains("item 1 is broken")
    );
    assert!(
        failed[0]["ExecutionArn"]
            .as_str()
            .unwrap()
            .contains(":express:")
    );
    let pending = h
        .resources
        .json_object("results", &format!("failed/{run_id}/PENDING_0.json"));
    assert_eq!(pending.as_array().unwrap().len(), 2);
    assert_eq!(
        manifest["ResultFiles"]["SUCCEEDED"][0]["Key"],
        format!("failed/{run_id}/SUCCEEDED_0.json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_writer_compact_writes_only_the_outputs_of_the_children() {
    let h = harness().await;
    let definition = map_machine(
        "EXPRESS",
        "item",
        json!({"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "results"}, "WriterConfig": {"Transformation": "COMPACT"}}}),
    );
    let done = h.run("compact", &definition, &items(2, &[])).await;
    let key = output(&done)["ResultWriterDetails"]["Key"]
        .as_str()
        .unwrap()
        .to_string();
    let results_key = key.replace("manifest.json", "SUCCEEDED_0.json");
    let mut results = h.resources.json_object("results", &results_key);
    results
        .as_array_mut()
        .unwrap()
        .sort_by_key(|r| r["id"].as_u64());
    assert_eq!(
        results,
        json!([{"id": 0, "rows": 10}, {"id": 1, "rows": 10}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_writer_that_cannot_write_fails_with_states_result_writer_failed() {
    let h = harness().await;
    let definition = map_machine(
        "EXPRESS",
        "item",
        json!({"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "denied", "Prefix": "p"}}}),
    );
    let done = h.run("denied", &definition, &items(2, &[])).await;
    assert_eq!(done.error(), Some("States.ResultWriterFailed"));
    assert!(done.cause().unwrap().contains("AccessDenied"));
}

async fn create_express(h: &Harness, name: &str, definition: &Value) -> String {
    h.client
        .create_state_machine()
        .name(name)
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/test")
        .r#type(StateMachineType::Express)
        .send()
        .await
        .expect("CreateStateMachine EXPRESS succeeds")
        .state_machine_arn()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_sync_execution_runs_an_express_state_machine_and_answers_with_its_output() {
    let h = harness().await;
    let definition = json!({"StartAt": "Add", "States": {"Add": {"Type": "Pass",
        "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "End": true}}});
    let sm = create_express(&h, "sync", &definition).await;
    let described = h
        .client
        .describe_state_machine()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap();
    assert_eq!(*described.r#type(), StateMachineType::Express);
    let done = h
        .client
        .start_sync_execution()
        .state_machine_arn(&sm)
        .input(json!({"a": 2, "b": 3}).to_string())
        .send()
        .await
        .expect("StartSyncExecution succeeds");
    assert_eq!(*done.status(), SyncExecutionStatus::Succeeded);
    assert_eq!(
        serde_json::from_str::<Value>(done.output().unwrap()).unwrap(),
        json!({"sum": 5})
    );
    assert!(done.execution_arn().contains(":express:sync:"));
    assert_eq!(done.state_machine_arn(), Some(sm.as_str()));
    let billing = done.billing_details().unwrap();
    assert!(billing.billed_duration_in_milliseconds() >= 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_sync_execution_reports_a_failed_execution_with_its_error_and_cause() {
    let h = harness().await;
    let definition = json!({"StartAt": "No", "States": {"No": {"Type": "Fail",
        "Error": "Refused", "Cause": "not today"}}});
    let sm = create_express(&h, "sync-fail", &definition).await;
    let done = h
        .client
        .start_sync_execution()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap();
    assert_eq!(*done.status(), SyncExecutionStatus::Failed);
    assert_eq!(done.error(), Some("Refused"));
    assert_eq!(done.cause(), Some("not today"));
    assert!(done.output().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_sync_execution_is_refused_for_a_standard_state_machine() {
    let h = harness().await;
    let sm = h
        .create(
            "standard",
            &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
        )
        .await;
    let err = h
        .client
        .start_sync_execution()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("StateMachineTypeNotSupported"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_express_execution_started_asynchronously_cannot_be_described_or_listed() {
    let h = harness().await;
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    let sm = create_express(&h, "async", &definition).await;
    let execution = h.start(&sm, &json!({})).await;
    assert!(execution.contains(":express:async:"), "{execution}");
    let err = h
        .client
        .describe_execution()
        .execution_arn(&execution)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidArn"));
    let err = h
        .client
        .list_executions()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("StateMachineTypeNotSupported"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_the_executor_cannot_run_as_aws_does_are_refused_naming_the_field() {
    let h = harness().await;
    let cases = [
        (
            json!({"ItemBatcher": {"BatchInput": {"a": 1}}}),
            "ItemBatcher",
        ),
        (
            json!({"ItemBatcher": {"MaxInputBytesPerBatch": 262_145}}),
            "MaxInputBytesPerBatch",
        ),
        (
            json!({"ResultWriter": {"WriterConfig": {"Transformation": "FLATTEN", "OutputType": "JSON"}}}),
            "ResultWriter.Resource",
        ),
        (
            json!({"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": "b", "Key": "k"}}}),
            "ResultWriter.Parameters.Key",
        ),
    ];
    for (i, (extra, field)) in cases.into_iter().enumerate() {
        let err = h
            .client
            .create_state_machine()
            .name(format!("refused-{i}"))
            .definition(map_machine("EXPRESS", "item", extra).to_string())
            .role_arn("arn:aws:iam::123456789012:role/test")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidDefinition"));
        assert!(
            err.message().unwrap().contains(&format!("\"{field}\"")),
            "{field}: {:?}",
            err.message()
        );
    }
}
