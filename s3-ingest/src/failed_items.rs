//! The items of a failed Map Run, with their own errors, which the Map Run's failure
//! (`States.ExceedToleratedFailureThreshold`) hides: from the child executions a Standard
//! Map Run keeps, and from the failure notes the worker leaves in the ledger for the Express
//! children Step Functions does not keep.

use anyhow::Context;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use ingest::ledger::{Ledger, LedgerLocation};
use serde_json::Value;

use crate::control::item_objects;

/// A Distributed Map item that failed: the object it was for, and its own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedItem {
    /// The child execution, or for an Express child (which is not kept) its Map Run.
    pub execution_arn: String,
    /// The object's key (or a batch's keys), when the item names them.
    pub key: Option<String>,
    /// The item's error name.
    pub error: String,
    /// The item's cause.
    pub cause: String,
}

/// The first `limit` failed items of `execution_arn`'s Map Runs, oldest Map Run first.
pub async fn failed_items(
    sfn: &aws_sdk_sfn::Client,
    s3: &aws_sdk_s3::Client,
    execution_arn: &str,
    limit: usize,
) -> anyhow::Result<Vec<FailedItem>> {
    let map_runs = sfn
        .list_map_runs()
        .execution_arn(execution_arn)
        .send()
        .await
        .with_context(|| format!("ListMapRuns of {execution_arn}"))?;
    let mut items = Vec::new();
    for map_run in map_runs.map_runs() {
        if items.len() >= limit {
            break;
        }
        let wanted = limit - items.len();
        let children = failed_children(sfn, map_run.map_run_arn(), wanted).await?;
        if !children.is_empty() {
            items.extend(children);
        } else if has_failed_items(sfn, map_run.map_run_arn()).await? {
            // The notes are a help, not the answer: without read access to the ledger the
            // execution's own error still stands.
            match noted_failures(sfn, s3, execution_arn, map_run.map_run_arn(), wanted).await {
                Ok(noted) => items.extend(noted),
                Err(e) => tracing::warn!("{e:#}"),
            }
        }
    }
    Ok(items)
}

/// The failed child executions a Map Run keeps (Standard children), described.
async fn failed_children(
    sfn: &aws_sdk_sfn::Client,
    map_run_arn: &str,
    limit: usize,
) -> anyhow::Result<Vec<FailedItem>> {
    let failed = sfn
        .list_executions()
        .map_run_arn(map_run_arn)
        .status_filter(ExecutionStatus::Failed)
        .max_results(i32::try_from(limit).unwrap_or(i32::MAX))
        .send()
        .await
        .with_context(|| format!("ListExecutions of {map_run_arn}"))?;
    let mut items = Vec::new();
    for child in failed.executions() {
        let described = sfn
            .describe_execution()
            .execution_arn(child.execution_arn())
            .send()
            .await
            .with_context(|| format!("DescribeExecution of {}", child.execution_arn()))?;
        let key = described
            .input()
            .and_then(|input| serde_json::from_str::<Value>(input).ok())
            .and_then(|input| item_objects(&input));
        items.push(FailedItem {
            execution_arn: child.execution_arn().to_owned(),
            key,
            error: described.error().unwrap_or_default().to_owned(),
            cause: described.cause().unwrap_or_default().to_owned(),
        });
    }
    Ok(items)
}

/// Whether the Map Run counts items that failed or timed out.
async fn has_failed_items(sfn: &aws_sdk_sfn::Client, map_run_arn: &str) -> anyhow::Result<bool> {
    let described = sfn
        .describe_map_run()
        .map_run_arn(map_run_arn)
        .send()
        .await
        .with_context(|| format!("DescribeMapRun of {map_run_arn}"))?;
    Ok(described
        .item_counts()
        .is_some_and(|c| c.failed() + c.timed_out() > 0))
}

/// The failure notes of the run whose Map Run `map_run_arn` failed: the ledger and the run
/// are in the Map state's input (`settings.ledger`, `cursor.runId`).
pub(crate) async fn noted_failures(
    sfn: &aws_sdk_sfn::Client,
    s3: &aws_sdk_s3::Client,
    execution_arn: &str,
    map_run_arn: &str,
    limit: usize,
) -> anyhow::Result<Vec<FailedItem>> {
    let Some(input) = map_state_input(sfn, execution_arn, map_run_arn).await? else {
        return Ok(Vec::new());
    };
    let location = input
        .pointer("/settings/ledger")
        .and_then(|l| serde_json::from_value::<LedgerLocation>(l.clone()).ok());
    let run_id = input.pointer("/cursor/runId").and_then(Value::as_str);
    let (Some(location), Some(run_id)) = (location, run_id) else {
        return Ok(Vec::new());
    };
    let notes = Ledger::new(s3, &location)
        .failures(run_id, limit)
        .await
        .with_context(|| {
            format!(
                "reading the failure notes under s3://{}/{}",
                location.bucket,
                location.failures_prefix(run_id)
            )
        })?;
    Ok(notes
        .into_iter()
        .map(|note| FailedItem {
            execution_arn: map_run_arn.to_owned(),
            key: Some(note.key),
            error: note.error,
            cause: note.cause,
        })
        .collect())
}

/// The input of the Map state that started `map_run_arn`: the `MapStateEntered` event
/// before its `MapRunStarted` (a `MapStateStarted` comes between), read from the end of the
/// history, where the last Map Runs are.
async fn map_state_input(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    map_run_arn: &str,
) -> anyhow::Result<Option<Value>> {
    let mut pages = sfn
        .get_execution_history()
        .execution_arn(execution_arn)
        .reverse_order(true)
        .into_paginator()
        .send();
    let mut run_found = false;
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("GetExecutionHistory of {execution_arn}"))?;
        for event in page.events() {
            if run_found && event.r#type() == &HistoryEventType::MapStateEntered {
                return Ok(event
                    .state_entered_event_details()
                    .and_then(|d| d.input())
                    .and_then(|input| serde_json::from_str(input).ok()));
            }
            run_found |= event.r#type() == &HistoryEventType::MapRunStarted
                && event
                    .map_run_started_event_details()
                    .and_then(|d| d.map_run_arn())
                    == Some(map_run_arn);
        }
    }
    Ok(None)
}
