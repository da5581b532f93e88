//! The shape of the project's ingest workflow (defaults → list a page → Distributed Map of
//! worker loops → more pages? → continue as new → validation loop) run end to end on scripted
//! functions, with `${Placeholder}` substitution as the deployed template does it.

use async_trait::async_trait;
use local_stepfunctions::{Config, ExecutionStatus, LambdaError, ObjectError, Resources};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, atomic::AtomicBool};
use std::time::Duration;

const DEFINITION: &str = r#"{
  "Comment": "CSV objects from S3 into IoT Analytics (test copy of the workflow's shape)",
  "StartAt": "Initialize",
  "States": {
    "Initialize": {
      "Type": "Pass",
      "Parameters": {"config.$": "States.JsonMerge($.defaults, $.input, false)"},
      "InputPath": "$",
      "ResultPath": "$",
      "Next": "List page"
    },
    "List page": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"FunctionName": "${LauncherFunctionArn}", "Payload": {"config.$": "$.config"}},
      "ResultSelector": {"items.$": "$.Payload.items", "nextToken.$": "$.Payload.nextToken"},
      "ResultPath": "$.page",
      "Retry": [{"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"], "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2, "JitterStrategy": "FULL"}],
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Ingest failed"}],
      "Next": "Ingest page"
    },
    "Ingest page": {
      "Type": "Map",
      "Label": "IngestPage",
      "ItemsPath": "$.page.items",
      "MaxConcurrencyPath": "$.config.concurrency",
      "ItemSelector": {"key.$": "$$.Map.Item.Value", "config.$": "$.config"},
      "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Worker",
        "States": {
          "Worker": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${WorkerFunctionArn}", "Payload.$": "$"},
            "ResultSelector": {"done.$": "$.Payload.done", "rows.$": "$.Payload.rows", "checkpoint.$": "$.Payload.checkpoint"},
            "ResultPath": "$.result",
            "Retry": [{"ErrorEquals": ["Throttled"], "IntervalSeconds": 1, "MaxAttempts": 3}],
            "Next": "Done?"
          },
          "Done?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.result.done", "BooleanEquals": true, "Next": "Object done"}],
            "Default": "Carry checkpoint"
          },
          "Carry checkpoint": {
            "Type": "Pass",
            "Parameters": {"key.$": "$.key", "config.$": "$.config", "checkpoint.$": "$.result.checkpoint"},
            "Next": "Worker"
          },
          "Object done": {"Type": "Pass", "Parameters": {"rows.$": "$.result.rows"}, "End": true}
        }
      },
      "ResultSelector": {"objects.$": "States.ArrayLength($)", "rows.$": "$[*].rows"},
      "ResultPath": "$.ingested",
      "Next": "More pages?"
    },
    "More pages?": {
      "Type": "Choice",
      "Choices": [
        {"And": [{"Variable": "$.page.nextToken", "IsNull": false}, {"Variable": "$.config.pagesLeft", "NumericGreaterThan": 1}], "Next": "Next page"},
        {"Variable": "$.page.nextToken", "IsNull": false, "Next": "Continue as new"}
      ],
      "Default": "Start validation"
    },
    "Next page": {
      "Type": "Pass",
      "Parameters": {
        "config": {"token.$": "$.page.nextToken", "pagesLeft.$": "States.MathAdd($.config.pagesLeft, -1)", "concurrency.$": "$.config.concurrency", "pagesPerExecution.$": "$.config.pagesPerExecution"}
      },
      "Next": "List page"
    },
    "Continue as new": {
      "Type": "Task",
      "Resource": "arn:aws:states:::states:startExecution",
      "Parameters": {
        "StateMachineArn.$": "$$.StateMachine.Id",
        "Input": {"defaults": {}, "input": {"token.$": "$.page.nextToken", "pagesLeft.$": "$.config.pagesPerExecution", "pagesPerExecution.$": "$.config.pagesPerExecution", "concurrency.$": "$.config.concurrency"},
                  "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"}
      },
      "ResultPath": "$.continued",
      "Next": "Handed over"
    },
    "Handed over": {"Type": "Succeed"},
    "Start validation": {
      "Type": "Task",
      "Resource": "${ValidatorFunctionArn}",
      "Parameters": {"action": "start"},
      "ResultPath": "$.validation",
      "Next": "Wait for dataset"
    },
    "Wait for dataset": {"Type": "Wait", "SecondsPath": "$.validation.waitSeconds", "Next": "Check validation"},
    "Check validation": {
      "Type": "Task",
      "Resource": "${ValidatorFunctionArn}",
      "Parameters": {"action": "check"},
      "ResultPath": "$.validation",
      "Catch": [{"ErrorEquals": ["ValidationFailed", "DatasetContentFailed"], "ResultPath": "$.error", "Next": "Validation failed"}],
      "Next": "Dataset ready?"
    },
    "Dataset ready?": {
      "Type": "Choice",
      "Choices": [{"Variable": "$.validation.state", "StringEquals": "CREATING", "Next": "Wait for dataset"}],
      "Default": "Passed"
    },
    "Passed": {"Type": "Succeed"},
    "Validation failed": {"Type": "Fail", "Error": "ValidationFailed", "CausePath": "$.error.Cause"},
    "Ingest failed": {"Type": "Fail", "Error": "IngestFailed", "CausePath": "$.error.Cause"}
  }
}"#;

/// Pages of object keys; each object takes two worker calls (a checkpoint, then done).
#[derive(Default)]
struct Workflow {
    worker_calls: Mutex<HashMap<String, u32>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    checks: AtomicUsize,
    throttle_once: AtomicBool,
}

const PAGES: &[&[&str]] = &[&["a", "b", "c"], &["d", "e"], &["f"], &["g", "h"]];

#[async_trait]
impl Resources for Workflow {
    async fn invoke_lambda(&self, function: &str, payload: Value) -> Result<Value, LambdaError> {
        match function {
            "arn:aws:lambda:us-east-1:123456789012:function:launcher" => {
                let page = payload["config"]["token"]
                    .as_str()
                    .map(|t| t.parse::<usize>().unwrap())
                    .unwrap_or(0);
                let next = (page + 1 < PAGES.len()).then(|| (page + 1).to_string());
                Ok(json!({"items": PAGES[page], "nextToken": next}))
            }
            "arn:aws:lambda:us-east-1:123456789012:function:worker" => {
                if payload["key"] == json!("e") && !self.throttle_once.swap(true, Ordering::SeqCst)
                {
                    return Err(LambdaError::Function {
                        error_type: "Throttled".into(),
                        error_message: "slow down".into(),
                    });
                }
                let key = payload["key"].as_str().unwrap().to_string();
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                *self.worker_calls.lock().unwrap().entry(key).or_default() += 1;
                Ok(match payload.get("checkpoint") {
                    None => json!({"done": false, "rows": 5, "checkpoint": {"offset": 100}}),
                    Some(c) => {
                        assert_eq!(c, &json!({"offset": 100}), "the checkpoint comes back");
                        json!({"done": true, "rows": 10, "checkpoint": null})
                    }
                })
            }
            "arn:aws:lambda:us-east-1:123456789012:function:validator" => {
                match payload["action"].as_str() {
                    Some("start") => Ok(json!({"waitSeconds": 5})),
                    _ => {
                        let n = self.checks.fetch_add(1, Ordering::SeqCst);
                        Ok(
                            json!({"state": if n < 2 { "CREATING" } else { "SUCCEEDED" }, "waitSeconds": 5}),
                        )
                    }
                }
            }
            other => Err(LambdaError::Service {
                error: "Lambda.ResourceNotFoundException".into(),
                message: format!("no function {other}"),
            }),
        }
    }

    async fn get_object(&self, _bucket: &str, _key: &str) -> Result<Vec<u8>, ObjectError> {
        Err(ObjectError {
            code: "NoSuchKey".into(),
            message: "unused".into(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_workflow_shape_pages_loops_workers_continues_as_new_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = Arc::new(Workflow::default());
    let mut config = Config::new(dir.path(), workflow.clone());
    config.time_scale = 0.01;
    let sfn = local_stepfunctions::start(config).await.unwrap();
    let handle = sfn.handle();
    let substitutions: HashMap<String, String> = [
        ("LauncherFunctionArn", "launcher"),
        ("WorkerFunctionArn", "worker"),
        ("ValidatorFunctionArn", "validator"),
    ]
    .into_iter()
    .map(|(k, v)| {
        (
            k.to_string(),
            format!("arn:aws:lambda:us-east-1:123456789012:function:{v}"),
        )
    })
    .collect();
    let arn = handle
        .register_state_machine("ingest", DEFINITION, &substitutions)
        .unwrap();
    let input = json!({"defaults": {"concurrency": 2, "pagesLeft": 2, "pagesPerExecution": 2, "token": null}, "input": {}});
    let first = handle.start_execution(&arn, Some("first"), input).unwrap();
    let d = handle
        .wait_for_execution(&first, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        d.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        d.error,
        d.cause
    );
    let output = d.output.unwrap();
    assert_eq!(
        output["ingested"],
        json!({"objects": 2, "rows": [10, 10]}),
        "{output}"
    );
    let second = output["continued"]["ExecutionArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        handle.map_runs(&first).len(),
        2,
        "two pages in the first execution"
    );

    let d = handle
        .wait_for_execution(&second, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        d.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        d.error,
        d.cause
    );
    let output = d.output.unwrap();
    assert_eq!(
        output["validation"],
        json!({"state": "SUCCEEDED", "waitSeconds": 5})
    );
    assert_eq!(
        workflow.checks.load(Ordering::SeqCst),
        3,
        "CREATING twice, then SUCCEEDED"
    );
    let calls = workflow.worker_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 8, "every object of every page: {calls:?}");
    assert!(
        calls.values().all(|n| *n == 2),
        "each object took a checkpoint and a resume: {calls:?}"
    );
    assert_eq!(workflow.max_running.load(Ordering::SeqCst), 2);
    let first_events = handle.history(&first).unwrap().len();
    assert!(
        first_events < 60,
        "the parent history stays small: {first_events} events"
    );
    sfn.shutdown().await;
}
