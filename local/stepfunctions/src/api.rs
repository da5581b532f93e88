//! The Step Functions API over awsJson1_0: `POST /` with `X-Amz-Target: AWSStepFunctions.<Op>`,
//! JSON bodies with the real member names, errors as HTTP 400 `{"__type", "message"}`.

use crate::definition::Definition;
use crate::error::Error;
use crate::executor::Engine;
use crate::sigv4::{self, AccessKey, Gate};
use crate::store::ItemCounts;
use crate::store::{
    ExecEntry, ExecutionRecord, ExecutionStatus, HistoryEvent, MapRunRecord, StateMachineRecord,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::sync::Arc;

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

#[derive(Clone)]
struct Api {
    engine: Arc<Engine>,
    default_role: String,
}

/// The API routes behind the gate (size limits, and signatures when `access_key` is set).
pub(crate) fn router(
    engine: Arc<Engine>,
    default_role: String,
    access_key: Option<AccessKey>,
) -> Router {
    let gate = Arc::new(Gate::new(access_key, &engine.region));
    Router::new()
        .route("/", post(handle))
        // The gate has read and capped the body already.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(gate, sigv4::gate))
        .with_state(Api {
            engine,
            default_role,
        })
}

fn epoch(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis() as f64 / 1000.0)
}

fn reply(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response.headers_mut().insert(
        "x-amzn-RequestId",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is ASCII"),
    );
    response
}

fn error_reply(error: &Error) -> Response {
    let status = match error {
        Error::Io(_) | Error::Json(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    tracing::debug!(error = %error, "Step Functions API error");
    let mut response = reply(
        status,
        json!({"__type": error.aws_type(), "message": error.to_string()}),
    );
    response.headers_mut().insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static(error.aws_type()),
    );
    response
}

async fn handle(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(operation) = target.strip_prefix("AWSStepFunctions.") else {
        return error_reply(&Error::UnknownOperation(format!(
            "missing or foreign X-Amz-Target {target:?}"
        )));
    };
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error_reply(&Error::Validation(format!(
                    "the request body is not JSON: {e}"
                )));
            }
        }
    };
    tracing::debug!(operation, "Step Functions API call");
    match dispatch(&api, operation, &request).await {
        Ok(body) => reply(StatusCode::OK, body),
        Err(e) => error_reply(&e),
    }
}

fn required<'a>(request: &'a Value, field: &str) -> Result<&'a str, Error> {
    request
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Validation(format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")))
}

fn optional<'a>(request: &'a Value, field: &str) -> Option<&'a str> {
    request.get(field).and_then(Value::as_str)
}

fn page<T>(
    items: Vec<T>,
    request: &Value,
    default_size: usize,
) -> Result<(Vec<T>, Option<String>), Error> {
    let size = match request.get("maxResults").and_then(Value::as_u64) {
        None | Some(0) => default_size,
        Some(n) => (n as usize).min(1000),
    };
    let offset = match optional(request, "nextToken") {
        None => 0,
        Some(token) => token
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or(Error::InvalidToken)?,
    };
    let end = (offset + size).min(items.len());
    let next = (end < items.len()).then(|| format!("page-{end}"));
    Ok((
        items.into_iter().skip(offset).take(end - offset).collect(),
        next,
    ))
}

/// A list response: the page of items under `key`, and the token of the next page if any.
fn page_body(key: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut out = json!({ key: items });
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    out
}

fn check_arn(arn: &str, kind: &str) -> Result<(), Error> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    // Express executions are not kept: AWS refuses their ARNs where an execution is expected.
    if parts.len() == 7 && parts[5] == "express" && kind == "execution" {
        return Err(Error::InvalidArn(format!(
            "Invalid Arn: 'Resource type not valid in this context: express' ({arn})"
        )));
    }
    if parts.len() < 7 || parts[0] != "arn" || parts[2] != "states" || parts[5] != kind {
        let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        return Err(Error::InvalidArn(format!(
            "{arn:?} is not {article} {kind} ARN"
        )));
    }
    Ok(())
}

fn execution(api: &Api, request: &Value) -> Result<Arc<ExecEntry>, Error> {
    let arn = required(request, "executionArn")?;
    check_arn(arn, "execution")?;
    api.engine.store.existing_execution(arn)
}

fn describe_execution(api: &Api, r: &ExecutionRecord) -> Value {
    let mut out = list_item(r);
    out["input"] = Value::String(r.input.to_string());
    out["inputDetails"] = json!({"included": true});
    if let Some(output) = &r.output {
        out["output"] = Value::String(output.to_string());
        out["outputDetails"] = json!({"included": true});
    }
    if let Some(e) = &r.error {
        for (key, value) in e.details() {
            out[key] = value;
        }
    }
    match api.engine.not_redrivable_reason(r) {
        None => out["redriveStatus"] = json!("REDRIVABLE"),
        Some(reason) => {
            out["redriveStatus"] = json!(if r.map_run_arn.is_some()
                && r.status.is_final()
                && r.status != ExecutionStatus::Succeeded
            {
                "REDRIVABLE_BY_MAP_RUN"
            } else {
                "NOT_REDRIVABLE"
            });
            out["redriveStatusReason"] = json!(reason);
        }
    }
    out
}

fn list_item(r: &ExecutionRecord) -> Value {
    let mut out = json!({
        "executionArn": r.arn,
        "stateMachineArn": r.state_machine_arn,
        "name": r.name,
        "status": r.status.as_str(),
        "startDate": epoch(r.start_date),
        "redriveCount": r.redrive_count,
    });
    if let Some(d) = r.stop_date {
        out["stopDate"] = epoch(d);
    }
    if let Some(m) = &r.map_run_arn {
        out["mapRunArn"] = json!(m);
    }
    if let Some(d) = r.redrive_date {
        out["redriveDate"] = epoch(d);
    }
    out
}

fn event_json(e: &HistoryEvent) -> Value {
    let mut out = Map::new();
    out.insert("timestamp".into(), epoch(e.timestamp));
    out.insert("type".into(), json!(e.kind));
    out.insert("id".into(), json!(e.id));
    out.insert("previousEventId".into(), json!(e.previous_event_id));
    if let Some((key, value)) = &e.details {
        out.insert(key.clone(), value.clone());
    }
    Value::Object(out)
}

/// Drops inputs and outputs from an event (`includeExecutionData: false`).
fn strip_data(event: &mut Value) {
    if let Some(map) = event.as_object_mut() {
        for details in map.values_mut().filter(|v| v.is_object()) {
            if let Some(d) = details.as_object_mut() {
                for key in ["input", "output", "inputDetails", "outputDetails"] {
                    d.remove(key);
                }
            }
        }
    }
}

/// A state machine's `type`.
fn machine_type(sm: &StateMachineRecord) -> &'static str {
    if sm.express { "EXPRESS" } else { "STANDARD" }
}

/// StartSyncExecution: runs an EXPRESS state machine to its end and answers with the
/// execution as StartSyncExecutionOutput has it (HTTP 200 also when the execution failed).
async fn start_sync_execution(api: &Api, request: &Value) -> Result<Value, Error> {
    let engine = &api.engine;
    let arn = required(request, "stateMachineArn")?;
    check_arn(arn, "stateMachine")?;
    let sm = engine.store.state_machine(arn)?;
    if !sm.express {
        return Err(Error::StateMachineTypeNotSupported(
            "This operation is not supported by this type of state machine".into(),
        ));
    }
    let input = match optional(request, "input") {
        None => json!({}),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| Error::InvalidExecutionInput(e.to_string()))?
        }
    };
    let machine = Definition::parse(&sm.definition)?.machine;
    let entry = engine.start_express(&sm, machine, optional(request, "name"), input)?;
    let mut status = entry.status.subscribe();
    let _ = status.wait_for(|s| s.is_final()).await;
    let r = entry.lock();
    let stop = r.stop_date.unwrap_or_else(Utc::now);
    let mut out = json!({
        "executionArn": r.arn, "stateMachineArn": r.state_machine_arn, "name": r.name,
        "startDate": epoch(r.start_date), "stopDate": epoch(stop), "status": r.status.as_str(),
        "input": r.input.to_string(), "inputDetails": {"included": true},
        "billingDetails": billing(r.start_date, stop),
    });
    if let Some(output) = &r.output {
        out["output"] = json!(output.to_string());
        out["outputDetails"] = json!({"included": true});
    }
    if let Some(e) = &r.error {
        for (key, value) in e.details() {
            out[key] = value;
        }
    }
    Ok(out)
}

/// What an Express execution is billed for: its duration rounded up to 100 ms and the
/// smallest memory step (64 MB); the memory an execution uses is not measured here.
fn billing(start: DateTime<Utc>, stop: DateTime<Utc>) -> Value {
    let ms = (stop - start).num_milliseconds().max(1) as u64;
    json!({"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": ms.div_ceil(100) * 100})
}

fn counts_json(c: &ItemCounts) -> Value {
    json!({
        "pending": c.pending, "running": c.running, "succeeded": c.succeeded, "failed": c.failed,
        "timedOut": c.timed_out, "aborted": c.aborted, "total": c.total, "resultsWritten": c.succeeded,
        "failuresNotRedrivable": 0, "pendingRedrive": 0,
    })
}

async fn dispatch(api: &Api, operation: &str, request: &Value) -> Result<Value, Error> {
    let engine = &api.engine;
    match operation {
        "CreateStateMachine" => {
            let name = required(request, "name")?;
            let text = required(request, "definition")?;
            let role = optional(request, "roleArn").unwrap_or(&api.default_role);
            let express = match optional(request, "type") {
                None | Some("STANDARD") => false,
                Some("EXPRESS") => true,
                Some(kind) => {
                    return Err(Error::Validation(format!(
                        "1 validation error detected: Value '{kind}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"
                    )));
                }
            };
            let definition = Definition::parse(text)?;
            let record = engine.put_state_machine(name, &definition, role, false, express)?;
            Ok(json!({"stateMachineArn": record.arn, "creationDate": epoch(record.creation_date)}))
        }
        "UpdateStateMachine" => {
            let arn = required(request, "stateMachineArn")?;
            check_arn(arn, "stateMachine")?;
            let existing = engine.store.state_machine(arn)?;
            let text = optional(request, "definition").unwrap_or(&existing.definition);
            let role = optional(request, "roleArn").unwrap_or(&existing.role_arn);
            let definition = Definition::parse(text)?;
            engine.put_state_machine(&existing.name, &definition, role, true, existing.express)?;
            Ok(json!({"updateDate": epoch(Utc::now())}))
        }
        "DescribeStateMachine" => {
            let arn = required(request, "stateMachineArn")?;
            check_arn(arn, "stateMachine")?;
            let sm = engine.store.state_machine(arn)?;
            Ok(json!({
                "stateMachineArn": sm.arn, "name": sm.name, "status": "ACTIVE", "definition": sm.definition,
                "roleArn": sm.role_arn, "type": machine_type(&sm), "creationDate": epoch(sm.creation_date),
            }))
        }
        "DescribeStateMachineForExecution" => {
            let entry = execution(api, request)?;
            let r = entry.lock();
            Ok(json!({
                "stateMachineArn": r.state_machine_arn, "name": r.state_machine_name,
                "definition": r.definition, "roleArn": r.role_arn, "updateDate": epoch(r.start_date),
            }))
        }
        "ListStateMachines" => {
            let all: Vec<Value> = engine.store.select_state_machines(|sm| {
                Some(json!({"stateMachineArn": sm.arn, "name": sm.name, "type": machine_type(sm), "creationDate": epoch(sm.creation_date)}))
            });
            let (items, next) = page(all, request, 100)?;
            Ok(page_body("stateMachines", items, next))
        }
        "DeleteStateMachine" => {
            let arn = required(request, "stateMachineArn")?;
            check_arn(arn, "stateMachine")?;
            engine.store.delete_state_machine(arn)?;
            Ok(json!({}))
        }
        "StartExecution" => {
            let arn = required(request, "stateMachineArn")?;
            check_arn(arn, "stateMachine")?;
            let input = match optional(request, "input") {
                None => json!({}),
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| Error::InvalidExecutionInput(e.to_string()))?,
            };
            let record = engine.start_execution(arn, optional(request, "name"), input)?;
            Ok(json!({"executionArn": record.arn, "startDate": epoch(record.start_date)}))
        }
        "StartSyncExecution" => start_sync_execution(api, request).await,
        "DescribeExecution" => {
            let entry = execution(api, request)?;
            let described = describe_execution(api, &entry.lock());
            Ok(described)
        }
        "GetExecutionHistory" => {
            let entry = execution(api, request)?;
            let reverse = request.get("reverseOrder").and_then(Value::as_bool) == Some(true);
            let with_data =
                request.get("includeExecutionData").and_then(Value::as_bool) != Some(false);
            // Page over indices first so only the events returned are converted.
            let r = entry.lock();
            let mut indices: Vec<usize> = (0..r.events.len()).collect();
            if reverse {
                indices.reverse();
            }
            let (indices, next) = page(indices, request, 100)?;
            let items: Vec<Value> = indices
                .into_iter()
                .map(|i| {
                    let mut event = event_json(&r.events[i]);
                    if !with_data {
                        strip_data(&mut event);
                    }
                    event
                })
                .collect();
            drop(r);
            Ok(page_body("events", items, next))
        }
        "ListExecutions" => {
            let sm_arn = optional(request, "stateMachineArn");
            let map_run_arn = optional(request, "mapRunArn");
            if sm_arn.is_none() && map_run_arn.is_none() {
                return Err(Error::Validation(
                    "either stateMachineArn or mapRunArn is required".into(),
                ));
            }
            if let Some(arn) = sm_arn {
                check_arn(arn, "stateMachine")?;
                if engine.store.state_machine(arn)?.express {
                    return Err(Error::StateMachineTypeNotSupported(
                        "This operation is not supported by this type of state machine".into(),
                    ));
                }
            }
            let status = match optional(request, "statusFilter") {
                None => None,
                Some(s) => Some(
                    ExecutionStatus::parse(s)
                        .ok_or_else(|| Error::Validation(format!("unknown statusFilter {s}")))?,
                ),
            };
            let redrive_filter = optional(request, "redriveFilter");
            // Summaries are built under each record's lock: histories are not copied.
            let mut records: Vec<(DateTime<Utc>, String, Value)> =
                engine.store.select_executions(|r| {
                    let wanted = match (sm_arn, map_run_arn) {
                        (_, Some(m)) => r.map_run_arn.as_deref() == Some(m),
                        (Some(sm), None) => r.state_machine_arn == sm && r.map_run_arn.is_none(),
                        _ => false,
                    } && status.is_none_or(|s| r.status == s)
                        && match redrive_filter {
                            Some("REDRIVEN") => r.redrive_count > 0,
                            Some("NOT_REDRIVEN") => r.redrive_count == 0,
                            _ => true,
                        };
                    wanted.then(|| (r.start_date, r.arn.clone(), list_item(r)))
                });
            records.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let items: Vec<Value> = records.into_iter().map(|(_, _, v)| v).collect();
            let (items, next) = page(items, request, 100)?;
            Ok(page_body("executions", items, next))
        }
        "StopExecution" => {
            let arn = required(request, "executionArn")?;
            check_arn(arn, "execution")?;
            let stopped = engine
                .stop_execution(
                    arn,
                    optional(request, "error").map(str::to_string),
                    optional(request, "cause").map(str::to_string),
                )
                .await?;
            Ok(json!({"stopDate": epoch(stopped)}))
        }
        "RedriveExecution" => {
            let arn = required(request, "executionArn")?;
            check_arn(arn, "execution")?;
            let date = engine.redrive_execution(arn)?;
            Ok(json!({"redriveDate": epoch(date)}))
        }
        "DescribeMapRun" => {
            let arn = required(request, "mapRunArn")?;
            let entry = engine
                .store
                .map_run(arn)
                .ok_or_else(|| Error::ResourceNotFound(arn.to_string()))?;
            let m = entry.lock().clone();
            let mut out = json!({
                "mapRunArn": m.arn, "executionArn": m.execution_arn, "status": m.status.as_str(),
                "startDate": epoch(m.start_date), "maxConcurrency": m.max_concurrency,
                "toleratedFailurePercentage": m.tolerated_failure_percentage,
                "toleratedFailureCount": m.tolerated_failure_count,
                "itemCounts": counts_json(&m.counts()), "executionCounts": counts_json(&m.execution_counts()),
                "redriveCount": m.redrive_count,
            });
            if let Some(d) = m.stop_date {
                out["stopDate"] = epoch(d);
            }
            if let Some(d) = m.redrive_date {
                out["redriveDate"] = epoch(d);
            }
            Ok(out)
        }
        "ListMapRuns" => {
            let record = execution(api, request)?;
            let (record_arn, record_sm) = {
                let r = record.lock();
                (r.arn.clone(), r.state_machine_arn.clone())
            };
            let mut runs: Vec<MapRunRecord> = engine
                .store
                .select_map_runs(|m| (m.execution_arn == record_arn).then(|| m.clone()));
            runs.sort_by_key(|m| m.start_date);
            let items: Vec<Value> = runs
                .iter()
                .map(|m| {
                    let mut v = json!({
                        "executionArn": m.execution_arn, "mapRunArn": m.arn,
                        "stateMachineArn": record_sm, "startDate": epoch(m.start_date),
                    });
                    if let Some(d) = m.stop_date {
                        v["stopDate"] = epoch(d);
                    }
                    v
                })
                .collect();
            let (items, next) = page(items, request, 100)?;
            Ok(page_body("mapRuns", items, next))
        }
        other => Err(Error::UnknownOperation(other.to_string())),
    }
}
