//! Conventions of `statemachine/ingest.asl.json` that a reviewer would otherwise check by eye.

use serde_json::Value;

fn definition() -> Value {
    serde_json::from_str(s3_ingest::stack::DEFINITION).unwrap()
}

/// Every state, with nested Map processors, as (name, state).
fn all_states(states: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, state) in states.as_object().unwrap() {
        out.push((name.clone(), state.clone()));
        if let Some(inner) = state.pointer("/ItemProcessor/States") {
            out.extend(all_states(inner));
        }
    }
    out
}

#[test]
fn every_task_retries_and_catches() {
    for (name, state) in all_states(&definition()["States"]) {
        if state["Type"] != "Task" {
            continue;
        }
        let retry = state["Retry"].as_array();
        assert!(retry.is_some_and(|r| !r.is_empty()), "{name} has no Retry");
        let catch = state["Catch"].as_array();
        assert!(catch.is_some_and(|c| !c.is_empty()), "{name} has no Catch");
        for catcher in catch.unwrap() {
            assert!(
                catcher["ResultPath"].is_string(),
                "{name}: a Catch without ResultPath would replace the state's input"
            );
        }
    }
}

#[test]
fn lambda_tasks_retry_the_lambda_service_errors_as_aws_recommends() {
    let recommended = [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.ClientExecutionTimeoutException",
    ];
    for (name, state) in all_states(&definition()["States"]) {
        if state["Resource"] != "arn:aws:states:::lambda:invoke" {
            continue;
        }
        let function = state["Parameters"]["FunctionName"].as_str().unwrap();
        assert!(
            function.starts_with("${") && function.ends_with("FunctionArn}"),
            "{name}: FunctionName {function} is not a placeholder"
        );
        let first = &state["Retry"][0];
        let errors: Vec<&str> = first["ErrorEquals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(errors, recommended, "{name}");
        assert_eq!(first["IntervalSeconds"], 2, "{name}");
        assert_eq!(first["MaxAttempts"], 6, "{name}");
        assert_eq!(first["BackoffRate"], 2, "{name}");
        assert_eq!(first["JitterStrategy"], "FULL", "{name}");
        assert!(
            state["ResultPath"].is_string(),
            "{name}: without ResultPath the result replaces the input"
        );
    }
}

#[test]
fn retried_and_caught_error_names_are_the_librarys() {
    let known: Vec<&str> = ingest::IngestError::ALL_TYPES.to_vec();
    for (name, state) in all_states(&definition()["States"]) {
        let clauses = state["Retry"]
            .as_array()
            .into_iter()
            .chain(state["Catch"].as_array())
            .flatten();
        for clause in clauses {
            for error in clause["ErrorEquals"].as_array().unwrap() {
                let error = error.as_str().unwrap();
                let service = error.starts_with("Lambda.")
                    || error.starts_with("States.")
                    || error.starts_with("StepFunctions.")
                    || ingest::IngestError::CUT_SHORT_TYPES.contains(&error);
                assert!(
                    service || known.contains(&error),
                    "{name} matches {error}, which no function reports"
                );
            }
        }
    }
}

#[test]
fn both_worker_tasks_retry_exactly_their_retryable_errors() {
    let definition = definition();
    let tasks = [
        ("Ingest large objects", "Ingest object"),
        ("Ingest small objects", "Ingest batch"),
    ];
    for (map, task) in tasks {
        let worker = &definition["States"][map]["ItemProcessor"]["States"][task];
        assert!(worker.is_object(), "{map} has no {task} state");
        check_worker_retries(worker, task);
    }
}

fn check_worker_retries(worker: &serde_json::Value, task: &str) {
    let retried: Vec<&str> = worker["Retry"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ErrorEquals"].as_array().unwrap())
        .map(|e| e.as_str().unwrap())
        .filter(|e| !e.starts_with("Lambda."))
        .collect();
    for name in ingest::IngestError::CUT_SHORT_TYPES {
        assert!(
            retried.contains(&name),
            "{task} does not retry {name}, so a crash would fail the item"
        );
    }
    let retried: Vec<&str> = retried
        .into_iter()
        .filter(|e| !ingest::IngestError::CUT_SHORT_TYPES.contains(e))
        .collect();
    for name in &retried {
        assert!(
            ingest::IngestError::retryable_types().contains(name),
            "{task}: {name} is retried but not retryable"
        );
    }
    for name in ["BatchPutFailed", "Throttled", "ServiceUnavailable"] {
        assert!(retried.contains(&name), "{task} does not retry {name}");
    }
}

#[test]
fn small_objects_go_in_batches_to_express_children_and_large_ones_alone_to_standard_ones() {
    let definition = definition();
    let small = &definition["States"]["Ingest small objects"];
    let large = &definition["States"]["Ingest large objects"];
    assert_eq!(
        small["ItemProcessor"]["ProcessorConfig"]["ExecutionType"],
        "EXPRESS"
    );
    assert_eq!(
        large["ItemProcessor"]["ProcessorConfig"]["ExecutionType"],
        "STANDARD"
    );
    // The launcher plans the page's batches and how many workers share the rate.
    assert_eq!(
        small["ItemBatcher"]["MaxItemsPerBatchPath"],
        "$.listing.page.workers.objectsPerBatch"
    );
    assert_eq!(
        small["ItemBatcher"]["BatchInput"]["rateSharedBy.$"],
        "$.listing.page.workers.batchWorkers"
    );
    assert_eq!(
        large["ItemSelector"]["input"]["rateSharedBy.$"],
        "$.listing.page.workers.largeObjectWorkers"
    );
    assert!(large.get("ItemBatcher").is_none());
    assert_eq!(
        small["ItemReader"]["Parameters"]["Key.$"],
        "$.listing.page.batchManifest.key"
    );
    assert_eq!(
        large["ItemReader"]["Parameters"]["Key.$"],
        "$.listing.page.manifest.key"
    );
    // The batch's shared settings are the single object's, less the object itself.
    let batch_input: Vec<&String> = small["ItemBatcher"]["BatchInput"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let per_object: Vec<&String> = large["ItemSelector"]["input"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !["bucket.$", "key.$", "etag.$", "size.$"].contains(&k.as_str()))
        .collect();
    assert_eq!(batch_input, per_object);
}

#[test]
fn a_ledger_too_large_for_one_check_is_compared_over_several_calls_without_waiting() {
    let definition = definition();
    let states = &definition["States"];
    let choices = states["Dataset ready?"]["Choices"].as_array().unwrap();
    let next_for = |state: &str| {
        choices
            .iter()
            .find(|c| c["StringEquals"] == state)
            .map(|c| c["Next"].as_str().unwrap().to_owned())
    };
    assert_eq!(next_for("CREATING").as_deref(), Some("Wait for dataset"));
    assert_eq!(next_for("CHECKING").as_deref(), Some("Check validation"));
    let check = &states["Check validation"];
    assert_eq!(
        check["Parameters"]["Payload"]["progress.$"],
        "$.validation.started.check.progress"
    );
    assert_eq!(check["ResultSelector"]["progress.$"], "$.Payload.progress");
    assert_eq!(check["ResultPath"], "$.validation.started.check");
}
