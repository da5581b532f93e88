//! Differential test: `statemachine/ingest.asl.json` executed by moto's Step Functions
//! interpreter and by the embedded executor (`local-stepfunctions`) must end the same way and
//! pass through the same states.
//!
//! Both interpreters drive the same functions: the library handlers, called in-process, over
//! real SDK clients to an embedded S3 and IoT Analytics (one stack per interpreter, so their
//! data cannot meet). moto reaches them through a small Lambda Invoke API served by this test
//! (`POST /2015-03-31/functions/{name}/invocations`, errors reported as Lambda reports them:
//! HTTP 200, `X-Amz-Function-Error: Unhandled`, `{"errorType", "errorMessage"}`); moto's
//! interpreter sends every AWS call to `http://localhost:$MOTO_PORT`, so the same endpoint also
//! answers the Distributed Map ItemReader's S3 GetObject of the launcher's manifest. The
//! embedded executor reaches them through its `Resources` trait.
//!
//! The data set is small and makes five executions:
//! - `good/`: three objects; the first worker call for `good/retried.csv` fails with the
//!   retryable `ServiceUnavailable` (injected by the test's function host), the Retry clause
//!   calls it again, and the run validates with a dataset query;
//! - `empty/` (no objects) with an expected row count the datastore does not have: the
//!   validator's `ValidationFailed` is caught by `Check validation` and routed to the
//!   `Validation failed` Fail state;
//! - `bad/`: one object with a malformed row, which the worker sets aside with a report: the
//!   item succeeds and the run validates;
//! - `good/` again in pages of two objects, one page per execution: the first execution
//!   continues as a new one (`states:startExecution` on itself), which validates;
//! - `changed/`: one object whose worker call always fails with `ObjectChanged` (injected by
//!   the test's function host), caught inside the item processor and routed to the
//!   `Object failed` Fail state, which fails the item.
//!
//! The continue-as-new execution ingests `good/` again, so it uses a ledger of its own: with
//! the shared one it would find every object already ingested.
//!
//! What is compared in full (the first three executions): the status; for a success the output,
//! for a failure the error name and the cause (as JSON when it is JSON), with the dataset
//! content's `versionId` (a random id) masked; the sequence of top-level states entered,
//! without the validation poll loop's turns after checks that found the content still
//! CREATING (their number depends on how long the dataset content takes, not on the
//! interpreter); the sequence of Lambda invocations with how each ended (this stands for the
//! item processor's states: moto's history has no events for the states of Distributed Map
//! items; items run one at a time, `maxConcurrency` 1, so the order is the manifest's); and
//! each Map Run's item counts.
//!
//! What moto 5.2.5 cannot run as AWS does, and how the test narrows the comparison:
//! - continue-as-new: moto fails the `Continue as new execution` task with `States.Runtime`
//!   (a KeyError inside moto) before calling StartExecution, when `Input` is a JSON object as
//!   in the definition. For that execution the test compares the states entered, the
//!   invocations and the Map Run's item counts up to that task, and checks that the embedded
//!   executor's chain of two executions succeeds and validates (and that moto still fails
//!   there, so a moto that learns it makes the test ask for a full comparison). The endpoint
//!   passes moto's own Step Functions calls back to moto, so the comparison is not limited by
//!   the test itself;
//! - a failed Distributed Map item: moto never enforces `ToleratedFailurePercentage`, so its
//!   Map succeeds with a null result for the failed item and the execution goes on, where AWS
//!   and the embedded executor fail the Map Run with `States.ExceedToleratedFailureThreshold`
//!   (checked on the embedded side). For the `bad/` execution only the launcher and worker
//!   invocations and the item counts are compared;
//! - moto's parser refuses the integer `"ToleratedFailurePercentage": 0`, so moto runs the
//!   definition without it ([`for_moto`], tested below), which means the same (0 is the
//!   default). The embedded executor runs the definition as it is.
//! - moto's parser refuses `ItemBatcher`. The executions send every object to the per-object
//!   Map (`smallObjectBytes` 0), so the batch Map reads an empty manifest on both interpreters,
//!   and moto runs the definition without the batcher and with Standard children (it knows no
//!   Express ones) ([`for_moto`]); the batched path runs
//!   on the embedded executor in `local_run.rs` and in `s3-ingest`'s tests.
//!
//! The test needs `moto_server` (`pip install 'moto[server]==5.2.5'`) named by the
//! `MOTO_SERVER` variable (`.ci/run` installs it and sets it). Without it the test prints why
//! it did not run and returns.

use std::collections::{BTreeSet, HashSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use s3_ingest::lambda::function_name;
use s3_ingest::stack::{DEFINITION, LocalStack, StackOptions, WorkflowNames, substitutions};

#[path = "differential/moto_host.rs"]
mod moto_host;
use moto_host::{free_port, moto_server, serve, start_moto};

const REGION: &str = "us-east-1";
/// The account moto uses; the embedded executor's default is the same.
const ACCOUNT: &str = "123456789012";
/// The object whose first worker call fails with a retryable error.
const RETRIED_KEY: &str = "good/retried.csv";

fn names() -> WorkflowNames {
    WorkflowNames {
        bucket: "differential".to_owned(),
        prefix: String::new(),
        channel: "diff_channel".to_owned(),
        pipeline: "diff_pipeline".to_owned(),
        datastore: "diff_datastore".to_owned(),
        dataset: "diff_validation".to_owned(),
        ledger_bucket: "diff-ledger".to_owned(),
    }
}

/// The objects of the data set: (key, body).
const OBJECTS: &[(&str, &str)] = &[
    ("good/a.csv", "id,value\n1,10\n2,20\n3,30\n"),
    ("good/b.csv", "id,value\n4,40\n5,50\n"),
    (RETRIED_KEY, "id,value\n6,60\n7,70\n"),
    ("bad/bad.csv", "id,value\n8,80\n9,90,extra\n"),
    (CHANGED_KEY, "id,value\n10,100\n"),
];

/// The object whose worker calls always fail with `ObjectChanged`.
const CHANGED_KEY: &str = "changed/changed.csv";

/// How much of two outcomes must agree.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    /// Everything in [`Outcome`].
    Full,
    /// The launcher's and workers' invocations and the Map Run's item counts only: moto 5.2.5 records
    /// `ToleratedFailurePercentage` but never enforces it, so where AWS (and the embedded
    /// executor) fail the Map Run with `States.ExceedToleratedFailureThreshold`, moto's Map
    /// succeeds with a null result for the failed item and the execution goes on.
    ItemsOnly,
    /// The first execution, up to and including the `Continue as new execution` task: moto
    /// 5.2.5 fails that task with `States.Runtime` (a KeyError inside moto) before it calls
    /// StartExecution, when `Input` is a JSON object as here, so only the embedded executor
    /// gets to the continued execution (which the test checks ends as AWS would).
    UntilContinuation,
}

/// The executions, in order: (name, input, what is compared).
fn executions() -> Vec<(&'static str, Value, Compare)> {
    // moto 5.2.5 has no ItemBatcher: it would hand the batch Map's items out one by one, as
    // no AWS account would. Every object goes to the per-object Map here, and the batch Map
    // reads an empty manifest on both interpreters; the batched path is tested on the
    // embedded executor (local_run.rs, s3-ingest's tests).
    let common = json!({
        "smallObjectBytes": 0,
        "maxConcurrency": 1,
        "validationPollSeconds": 0,
        "validationSql": "SELECT count(*) AS row_count FROM diff_datastore",
    });
    let with = |extra: Value| {
        let mut input = common.clone();
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    vec![
        (
            "retried-then-validated",
            with(json!({"prefix": "good/", "expected": {"row_count": 7}})),
            Compare::Full,
        ),
        // The datastore now holds 7 rows; expecting 1 makes the validator's ValidationFailed,
        // which `Check validation` catches and routes to `Validation failed`.
        (
            "caught-validation-mismatch",
            with(json!({"prefix": "empty/", "expected": {"row_count": 1}})),
            Compare::Full,
        ),
        // Before continue-as-new, which moto cannot finish, so both datastores hold the same.
        (
            "bad-row-set-aside",
            with(json!({"prefix": "bad/"})),
            Compare::Full,
        ),
        // Two pages of two objects, one page per execution: the first continues as a new
        // execution, which lists the second page and validates all 15 rows (7 + 1 + 7).
        (
            "continued-as-new",
            with(json!({
                "prefix": "good/",
                "pageSize": 2,
                "pagesPerExecution": 1,
                "expected": {"row_count": 15},
                "ledger": {"bucket": "diff-ledger", "prefix": "second-ledger/"},
            })),
            Compare::UntilContinuation,
        ),
        (
            "caught-object-changed",
            with(json!({"prefix": "changed/"})),
            Compare::ItemsOnly,
        ),
    ]
}

/// The workflow's functions, served by the library handlers with one injected fault.
struct Functions {
    clients: ingest::Clients,
    /// Objects whose injected failure has happened.
    failed_once: Mutex<HashSet<String>>,
    /// Invocations since the last reset: `function subject -> errorType or ok`.
    calls: Mutex<Vec<String>>,
}

impl Functions {
    /// Runs one invocation and records it; an error is `(errorType, errorMessage)`.
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, (String, String)> {
        let subject = match function_name(function) {
            "worker" => format!(
                "worker {} from row {}",
                payload["key"].as_str().unwrap_or("?"),
                payload.pointer("/checkpoint/nextRow").unwrap_or(&json!(1))
            ),
            "validator" => format!("validator {}", payload["action"].as_str().unwrap_or("?")),
            other => other.to_owned(),
        };
        let result = self.call(function, payload).await;
        let ended = match &result {
            Ok(_) => "ok",
            Err((error_type, _)) => error_type.as_str(),
        };
        self.calls
            .lock()
            .unwrap()
            .push(format!("{subject} -> {ended}"));
        result
    }

    async fn call(&self, function: &str, payload: Value) -> Result<Value, (String, String)> {
        let name = function_name(function);
        if name == "worker"
            && payload["key"] == RETRIED_KEY
            && self
                .failed_once
                .lock()
                .unwrap()
                .insert(RETRIED_KEY.to_owned())
        {
            return Err((
                "ServiceUnavailable".to_owned(),
                format!("injected: the first call for {RETRIED_KEY} fails"),
            ));
        }
        if name == "worker" && payload["key"] == CHANGED_KEY {
            return Err((
                "ObjectChanged".to_owned(),
                format!("injected: s3://differential/{CHANGED_KEY} changed"),
            ));
        }
        let result = match name {
            "launcher" => ingest::handlers::launcher(&self.clients, payload).await,
            "worker" => {
                let deadline = SystemTime::now() + Duration::from_secs(900);
                ingest::handlers::worker(
                    &self.clients,
                    &ingest::pacing::Pacing::new(),
                    payload,
                    deadline,
                )
                .await
            }
            "validator" => {
                let deadline = SystemTime::now() + Duration::from_secs(120);
                ingest::handlers::validator(&self.clients, payload, deadline).await
            }
            _ => {
                return Err((
                    "ResourceNotFoundException".to_owned(),
                    format!("Function not found: {function}"),
                ));
            }
        };
        result.map_err(|e| {
            let report = ingest::ErrorReport::from(&e);
            (report.error_type, report.error_message)
        })
    }

    async fn object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let object = self
            .clients
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("s3://{bucket}/{key}: {e}"))?;
        let bytes = object.body.collect().await.map_err(|e| e.to_string())?;
        Ok(bytes.into_bytes().to_vec())
    }
}

#[async_trait]
impl local_stepfunctions::Resources for Functions {
    async fn invoke_lambda(
        &self,
        function: &str,
        payload: Value,
    ) -> Result<Value, local_stepfunctions::LambdaError> {
        self.invoke(function, payload)
            .await
            .map_err(
                |(error_type, error_message)| local_stepfunctions::LambdaError::Function {
                    error_type,
                    error_message,
                },
            )
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<u8>, local_stepfunctions::ObjectError> {
        self.object(bucket, key)
            .await
            .map_err(|message| local_stepfunctions::ObjectError {
                code: "NoSuchKey".to_owned(),
                message,
            })
    }
}

async fn sfn_client(endpoint: &str) -> aws_sdk_sfn::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "local",
            "local-secret",
            None,
            None,
            "differential",
        ))
        .endpoint_url(endpoint)
        .load()
        .await;
    aws_sdk_sfn::Client::new(&config)
}

/// The definition with the stack's substitutions, as the template fills it on AWS.
fn substituted_definition() -> String {
    let mut definition = DEFINITION.to_owned();
    for (key, value) in substitutions(REGION, ACCOUNT, &names()) {
        definition = definition.replace(&format!("${{{key}}}"), &value);
    }
    definition
}

/// `definition` as moto's parser accepts it, with the same meaning: its grammar takes
/// `ToleratedFailurePercentage` only as a decimal-point number and refuses the integer `0`, so
/// a `ToleratedFailurePercentage` of 0 (the ASL default) is dropped. Nothing else changes.
fn for_moto(definition: &str) -> String {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.get("ToleratedFailurePercentage") == Some(&json!(0)) {
                    map.remove("ToleratedFailurePercentage");
                }
                map.remove("ItemBatcher");
                if map.get("ExecutionType") == Some(&json!("EXPRESS")) {
                    map.insert("ExecutionType".to_owned(), json!("STANDARD"));
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_str(definition).unwrap();
    walk(&mut value);
    serde_json::to_string_pretty(&value).unwrap()
}

#[test]
fn the_moto_form_drops_a_zero_tolerated_failure_and_the_batcher_and_runs_standard_children() {
    let original: Value = serde_json::from_str(DEFINITION).unwrap();
    let moto: Value = serde_json::from_str(&for_moto(DEFINITION)).unwrap();
    let maps = [
        "/States/Ingest small objects",
        "/States/Ingest large objects",
    ];
    let mut restored = moto.clone();
    for map in maps {
        assert_eq!(
            original.pointer(map).unwrap()["ToleratedFailurePercentage"],
            0
        );
        assert!(
            moto.pointer(map)
                .unwrap()
                .get("ToleratedFailurePercentage")
                .is_none()
        );
        restored.pointer_mut(map).unwrap()["ToleratedFailurePercentage"] = json!(0);
        if let Some(batcher) = original.pointer(map).unwrap().get("ItemBatcher") {
            assert!(moto.pointer(map).unwrap().get("ItemBatcher").is_none());
            restored.pointer_mut(map).unwrap()["ItemBatcher"] = batcher.clone();
        }
        let processor = format!("{map}/ItemProcessor/ProcessorConfig/ExecutionType");
        assert_eq!(moto.pointer(&processor).unwrap(), "STANDARD");
        *restored.pointer_mut(&processor).unwrap() = original.pointer(&processor).unwrap().clone();
    }
    assert_eq!(restored, original);
    let kept = r#"{"ToleratedFailurePercentage": 5, "Next": {"ToleratedFailurePercentage": 0}}"#;
    assert_eq!(
        serde_json::from_str::<Value>(&for_moto(kept)).unwrap(),
        json!({"ToleratedFailurePercentage": 5, "Next": {}})
    );
}

/// A local S3 and IoT Analytics with the data set, the channel, pipeline and datastore, and the
/// functions over them.
async fn functions_over_a_fresh_stack(
    dir: &std::path::Path,
) -> anyhow::Result<(LocalStack, Arc<Functions>)> {
    let stack = LocalStack::start(StackOptions::new(dir), &names()).await?;
    s3_ingest::stack::ensure_iotanalytics(&stack.clients.iotanalytics, &names()).await?;
    for (key, body) in OBJECTS {
        stack
            .clients
            .s3
            .put_object()
            .bucket(names().bucket)
            .key(*key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await?;
    }
    let functions = Arc::new(Functions {
        clients: stack.clients.clone(),
        failed_once: Mutex::new(HashSet::new()),
        calls: Mutex::new(Vec::new()),
    });
    Ok((stack, functions))
}

/// How one execution ended and which states it entered.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Status of each execution of the chain (one, unless it continued as new).
    statuses: Vec<String>,
    /// The last execution's output if it succeeded, its `{"error", "cause"}` if not.
    result: Value,
    /// Top-level states entered, in order, over the chain of executions.
    top_level: Vec<String>,
    /// The Lambda invocations, in order, with how each ended: the item processor's steps
    /// (moto's history does not record the states of Distributed Map items).
    calls: Vec<String>,
    /// Item counts of each Map Run.
    map_run_items: Vec<Value>,
}

async fn history(client: &aws_sdk_sfn::Client, execution_arn: &str) -> Vec<HistoryEvent> {
    let mut events = Vec::new();
    let mut pages = client
        .get_execution_history()
        .execution_arn(execution_arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        events.extend(page.unwrap().events);
    }
    events
}

fn entered(events: &[HistoryEvent], states: &BTreeSet<String>) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_owned())
        .filter(|name| states.contains(name))
        .collect()
}

/// Replaces every `versionId` value (a random id per dataset content) with a fixed string,
/// also inside JSON-encoded strings.
fn mask_versions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "versionId" {
                    *v = json!("<versionId>");
                } else {
                    mask_versions(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_versions),
        Value::String(text) => {
            if let Ok(mut inner @ (Value::Object(_) | Value::Array(_))) =
                serde_json::from_str::<Value>(text)
            {
                mask_versions(&mut inner);
                *value = inner;
            }
        }
        _ => {}
    }
}

/// A turn of the validation poll loop after a check that found the content still CREATING:
/// how many there are depends on how long the dataset content takes to create, not on the
/// interpreter.
const POLL_TURN: [&str; 4] = [
    "Check validation",
    "Dataset ready?",
    "Wait for dataset",
    "Check validation",
];

/// `states` with every poll turn after a CREATING check dropped, so only the last check of a
/// wait stays.
fn collapse_polls(states: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for state in states {
        out.push(state);
        let n = out.len();
        if n >= 4 && out[n - 4..] == POLL_TURN {
            out.truncate(n - 3);
        }
    }
    out
}

/// `calls` with every validator check that was followed by another (it found the content
/// still CREATING) dropped.
fn collapse_repeats(calls: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for call in calls {
        if call.starts_with("validator check")
            && out.last().is_some_and(|l| l.starts_with("validator check"))
        {
            out.pop();
        }
        out.push(call);
    }
    out
}

#[test]
fn poll_turns_after_creating_checks_are_dropped_and_other_states_stay() {
    let states = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let polled = states(&[
        "Start validation",
        "Wait for dataset",
        "Check validation",
        "Dataset ready?",
        "Wait for dataset",
        "Check validation",
        "Dataset ready?",
        "Wait for dataset",
        "Check validation",
        "Validation failed",
    ]);
    assert_eq!(
        collapse_polls(polled),
        states(&[
            "Start validation",
            "Wait for dataset",
            "Check validation",
            "Validation failed",
        ])
    );
    let other = states(&[
        "List page",
        "Ingest small objects",
        "Ingest large objects",
        "More pages?",
        "List page",
        "Ingest small objects",
        "Ingest large objects",
        "More pages?",
    ]);
    assert_eq!(collapse_polls(other.clone()), other);
    assert_eq!(
        collapse_repeats(states(&[
            "validator start -> ok",
            "validator check -> ok",
            "validator check -> ok",
            "validator check -> ValidationFailed",
        ])),
        states(&[
            "validator start -> ok",
            "validator check -> ValidationFailed"
        ])
    );
}

/// The top-level state names of the definition.
fn state_names() -> BTreeSet<String> {
    let definition: Value = serde_json::from_str(DEFINITION).unwrap();
    definition["States"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// Waits for `execution_arn` to end.
async fn wait_for(
    client: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let started = std::time::Instant::now();
    loop {
        let description = client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .unwrap();
        if description.status != ExecutionStatus::Running {
            return description;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{execution_arn} still running after 180 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Item counts of each Map Run of `execution_arn`.
async fn map_run_items(client: &aws_sdk_sfn::Client, execution_arn: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let map_runs = client
        .list_map_runs()
        .execution_arn(execution_arn)
        .send()
        .await
        .unwrap()
        .map_runs;
    for map_run in map_runs {
        let described = client
            .describe_map_run()
            .map_run_arn(map_run.map_run_arn)
            .send()
            .await
            .unwrap();
        let counts = described.item_counts.unwrap();
        items.push(json!({
            "total": counts.total,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "aborted": counts.aborted,
            "timedOut": counts.timed_out,
        }));
    }
    items
}

/// Starts `name` with `input`, waits for it and for every execution it continued as, and
/// collects the outcome; `functions` are the ones this interpreter calls.
async fn run(
    client: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    functions: &Functions,
    name: &str,
    input: &Value,
) -> Outcome {
    // IoT Analytics allows one CreateDatasetContent per second per dataset: a run started
    // sooner after the previous one would see a Throttled retry the other did not.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    functions.calls.lock().unwrap().clear();
    let mut execution_arn = client
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .unwrap()
        .execution_arn;
    let mut outcome = Outcome {
        statuses: Vec::new(),
        result: Value::Null,
        top_level: Vec::new(),
        calls: Vec::new(),
        map_run_items: Vec::new(),
    };
    loop {
        let description = wait_for(client, &execution_arn).await;
        outcome
            .statuses
            .push(description.status.as_str().to_owned());
        let mut result = match description.status {
            ExecutionStatus::Succeeded => {
                serde_json::from_str(description.output.as_deref().unwrap_or("null")).unwrap()
            }
            _ => json!({"error": description.error, "cause": description.cause}),
        };
        let events = history(client, &execution_arn).await;
        outcome
            .top_level
            .extend(collapse_polls(entered(&events, &state_names())));
        outcome
            .map_run_items
            .extend(map_run_items(client, &execution_arn).await);
        // The `Continued` state's output carries the StartExecution result of the next one.
        match result
            .pointer("/continuation/ExecutionArn")
            .and_then(Value::as_str)
        {
            Some(next) => execution_arn = next.to_owned(),
            None => {
                mask_versions(&mut result);
                outcome.result = result;
                break;
            }
        }
    }
    outcome.calls = collapse_repeats(std::mem::take(&mut *functions.calls.lock().unwrap()));
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_and_the_embedded_executor_end_the_same_way_through_the_same_states() {
    let Some(program) = moto_server() else {
        eprintln!(
            "SKIPPED moto_and_the_embedded_executor_end_the_same_way_through_the_same_states: \
             MOTO_SERVER is not set (pip install 'moto[server]==5.2.5' and set MOTO_SERVER to \
             its moto_server program; .ci/run does)"
        );
        return;
    };
    let definition = substituted_definition();

    // moto, over its own stack.
    let moto_dir = tempfile::tempdir().unwrap();
    let (moto_stack, moto_functions) = functions_over_a_fresh_stack(moto_dir.path()).await.unwrap();
    let moto_port = free_port();
    let invoke_port = serve(moto_functions.clone(), moto_port).await;
    let moto = start_moto(&program, moto_port, invoke_port).await;
    let moto_client = sfn_client(&format!("http://127.0.0.1:{}", moto.port)).await;
    let moto_arn = moto_client
        .create_state_machine()
        .name("ingest")
        .definition(for_moto(&definition))
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/differential"))
        .send()
        .await
        .unwrap()
        .state_machine_arn;

    // The embedded executor, over another stack, with delays scaled down.
    let embedded_dir = tempfile::tempdir().unwrap();
    let (embedded_stack, embedded_functions) = functions_over_a_fresh_stack(embedded_dir.path())
        .await
        .unwrap();
    let mut config = local_stepfunctions::Config::new(
        embedded_dir.path().join("differential-sfn"),
        embedded_functions.clone(),
    );
    config.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.time_scale = 0.01;
    let embedded = local_stepfunctions::start(config).await.unwrap();
    let embedded_client = sfn_client(&embedded.endpoint_url()).await;
    let embedded_arn = embedded_client
        .create_state_machine()
        .name("ingest")
        .definition(&definition)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/differential"))
        .send()
        .await
        .unwrap()
        .state_machine_arn;

    for (name, input, compare) in executions() {
        let by_moto = run(&moto_client, &moto_arn, &moto_functions, name, &input).await;
        let by_embedded = run(
            &embedded_client,
            &embedded_arn,
            &embedded_functions,
            name,
            &input,
        )
        .await;
        assert!(
            !by_moto.top_level.is_empty() && !by_moto.calls.is_empty(),
            "{name}: moto ran the states: {by_moto:#?}"
        );
        match compare {
            Compare::Full => {
                assert_eq!(
                    by_moto, by_embedded,
                    "{name}: moto (left), embedded (right)"
                );
            }
            Compare::UntilContinuation => {
                let first_execution = |o: &Outcome| {
                    let states: Vec<String> = o
                        .top_level
                        .iter()
                        .take_while(|s| *s != "Continued")
                        .cloned()
                        .collect();
                    // Each execution starts with a launcher call; the next one's ends the first.
                    let calls: Vec<String> = o
                        .calls
                        .iter()
                        .enumerate()
                        .take_while(|(i, c)| *i == 0 || !c.starts_with("launcher"))
                        .map(|(_, c)| c.clone())
                        .collect();
                    (states, calls, o.map_run_items.first().cloned())
                };
                assert_eq!(
                    first_execution(&by_moto),
                    first_execution(&by_embedded),
                    "{name}: moto (left), embedded (right)"
                );
                assert_eq!(
                    by_moto.result["error"], "States.Runtime",
                    "{name}: moto now runs continue-as-new; compare it in full: {by_moto:#?}"
                );
                assert_eq!(
                    (
                        by_embedded.statuses.as_slice(),
                        &by_embedded.result["validation"]["passed"]
                    ),
                    (
                        ["SUCCEEDED".to_owned(), "SUCCEEDED".to_owned()].as_slice(),
                        &json!(true)
                    ),
                    "{name}: {by_embedded:#?}"
                );
            }
            Compare::ItemsOnly => {
                let listing_and_items = |o: &Outcome| {
                    let calls: Vec<String> = o
                        .calls
                        .iter()
                        .filter(|c| !c.starts_with("validator"))
                        .cloned()
                        .collect();
                    (calls, o.map_run_items.clone())
                };
                assert_eq!(
                    listing_and_items(&by_moto),
                    listing_and_items(&by_embedded),
                    "{name}: moto (left), embedded (right)"
                );
                assert_eq!(
                    by_embedded.result["error"], "States.ExceedToleratedFailureThreshold",
                    "{name}: a failed item fails the Map Run: {by_embedded:#?}"
                );
            }
        }
    }
    // The data set did what it is for.
    for functions in [&moto_functions, &embedded_functions] {
        assert!(functions.failed_once.lock().unwrap().contains(RETRIED_KEY));
    }

    drop(moto);
    embedded.shutdown().await;
    moto_stack.shutdown().await;
    embedded_stack.shutdown().await;
}
