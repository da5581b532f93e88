//! A Map Run page: item counts by status with a progress bar, the failed items with their
//! error, cause and object key, and every item's child execution, paged.

use std::fmt::Write;
use std::sync::Arc;

use anyhow::Context;
use aws_sdk_sfn::types::ExecutionStatus;
use axum::extract::{Query, State};
use axum::response::Html;
use serde_json::Value;

use super::executions::filter_link;
use super::html::{self, badge, escape, link, time};
use super::{PageResult, Sources};

/// Failed items per page.
const FAILED_PAGE: i32 = 10;
/// Items per page of the full list.
const ITEMS_PAGE: i32 = 25;

/// The page's query: `?arn=ARN&status=&next=TOKEN&failed=TOKEN`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct MapRunQuery {
    arn: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    failed: String,
}

/// One item's child execution, described.
struct Item {
    arn: String,
    status: String,
    key: Option<String>,
    error: Option<String>,
    cause: Option<String>,
    start: Option<aws_sdk_sfn::primitives::DateTime>,
    stop: Option<aws_sdk_sfn::primitives::DateTime>,
}

/// The Map Run.
pub(crate) async fn page(
    State(sources): State<Arc<Sources>>,
    Query(query): Query<MapRunQuery>,
) -> PageResult {
    let sfn = &sources.sfn;
    let run = sfn
        .describe_map_run()
        .map_run_arn(&query.arn)
        .send()
        .await
        .with_context(|| format!("DescribeMapRun of {}", query.arn))?;
    let mut body = String::from("<table class=\"facts\">");
    let _ = write!(
        body,
        "<tr><th>Status</th><td>{}</td></tr><tr><th>Execution</th><td>{}</td></tr>\
         <tr><th>Started</th><td>{}</td></tr><tr><th>Stopped</th><td>{}</td></tr>\
         <tr><th>Max concurrency</th><td>{}</td></tr><tr><th>Tolerated failures</th><td>{}% or {}</td></tr></table>",
        badge(run.status().as_str()),
        link(
            "/execution",
            &[("arn", run.execution_arn())],
            &escape(run.execution_arn())
        ),
        time(Some(run.start_date())),
        time(run.stop_date()),
        run.max_concurrency(),
        run.tolerated_failure_percentage(),
        run.tolerated_failure_count(),
    );
    if let Some(counts) = run.item_counts() {
        let total = counts.total().max(1) as f64;
        let rows = [
            ("succeeded", counts.succeeded()),
            ("failed", counts.failed()),
            ("running", counts.running()),
            ("pending", counts.pending()),
            ("timedout", counts.timed_out()),
            ("aborted", counts.aborted()),
        ];
        body.push_str("<h2>Items</h2><div class=\"progress\">");
        for (name, count) in rows {
            if count > 0 {
                let _ = write!(
                    body,
                    "<span class=\"bar {name}\" style=\"width:{:.2}%\" title=\"{name} {count}\"></span>",
                    count as f64 * 100.0 / total
                );
            }
        }
        body.push_str("</div><table id=\"counts\" class=\"counts\"><tr>");
        for (name, _) in rows {
            let _ = write!(body, "<th>{name}</th>");
        }
        body.push_str("<th>total</th></tr><tr>");
        for (name, count) in rows {
            let _ = write!(body, "<td data-count=\"{name}\">{count}</td>");
        }
        let _ = write!(
            body,
            "<td data-count=\"total\">{}</td></tr></table>",
            counts.total()
        );
    }

    // The failed items first: what a user opens this page for.
    let (failed, failed_next) =
        items(sfn, &query.arn, Some("FAILED"), &query.failed, FAILED_PAGE).await?;
    let _ = write!(body, "<h2>Failed items</h2>");
    let failed_count = run.item_counts().map_or(0, |c| c.failed() + c.timed_out());
    // (object key, error, cause, child execution) of each failed item shown.
    let rows: Vec<(Option<String>, String, String, Option<String>)> =
        if failed.is_empty() && failed_count > 0 {
            // Express children are not kept: their objects' errors are in the ledger's notes.
            body.push_str(
                "<p>This Map Run's children are Express executions, which Step Functions does \
                 not keep; these are the failure notes their worker left in the ledger.</p>",
            );
            crate::failed_items::noted_failures(
                sfn,
                &sources.s3,
                run.execution_arn(),
                &query.arn,
                FAILED_PAGE as usize,
            )
            .await?
            .into_iter()
            .map(|item| (item.key, item.error, item.cause, None))
            .collect()
        } else {
            failed
                .into_iter()
                .map(|item| {
                    let child = link("/execution", &[("arn", &item.arn)], "child execution");
                    let (error, cause) = (item.error.unwrap_or_default(), item.cause);
                    (item.key, error, cause.unwrap_or_default(), Some(child))
                })
                .collect()
        };
    if rows.is_empty() {
        body.push_str("<p class=\"empty\">No item failed.</p>");
    } else {
        let children = rows.iter().any(|row| row.3.is_some());
        let _ = write!(
            body,
            "<table id=\"failed-items\"><thead><tr><th>Object key</th><th>Error</th><th>Cause</th>\
             {}</tr></thead><tbody>",
            if children { "<th>Execution</th>" } else { "" }
        );
        for (key, error, cause, child) in &rows {
            let _ = write!(
                body,
                "<tr><td class=\"key\">{}</td><td class=\"error-name\">{}</td><td class=\"cause\">{}</td>{}</tr>",
                escape(key.as_deref().unwrap_or("—")),
                escape(error),
                escape(cause),
                child
                    .as_ref()
                    .map(|c| format!("<td>{c}</td>"))
                    .unwrap_or_default(),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&html::pager(
        "/map-run",
        &[("arn", &query.arn), ("status", &query.status)],
        "failed",
        (!query.failed.is_empty()).then_some(query.failed.as_str()),
        failed_next.as_deref(),
    ));

    // Every item, by status.
    body.push_str("<h2>Item executions</h2><div class=\"filters\">Status: ");
    for (value, label) in [
        ("", "all"),
        ("RUNNING", "RUNNING"),
        ("SUCCEEDED", "SUCCEEDED"),
        ("FAILED", "FAILED"),
        ("ABORTED", "ABORTED"),
    ] {
        body.push_str(&filter_link(
            "/map-run",
            &[("arn", &query.arn)],
            value,
            &query.status,
            label,
        ));
    }
    body.push_str("</div>");
    let status = (!query.status.is_empty()).then_some(query.status.as_str());
    let (all, next) = items(sfn, &query.arn, status, &query.next, ITEMS_PAGE).await?;
    body.push_str(
        "<table id=\"items\"><thead><tr><th>Object key</th><th>Status</th><th>Started</th>\
         <th>Duration</th><th>Execution</th></tr></thead><tbody>",
    );
    for item in &all {
        let _ = write!(
            body,
            "<tr><td class=\"key\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(item.key.as_deref().unwrap_or("—")),
            badge(&item.status),
            time(item.start.as_ref()),
            html::duration(item.start.as_ref(), item.stop.as_ref()),
            link(
                "/execution",
                &[("arn", &item.arn)],
                &escape(item.arn.rsplit(':').next().unwrap_or_default())
            ),
        );
    }
    body.push_str("</tbody></table>");
    let started = run.item_counts().map_or(0, |c| c.total() - c.pending());
    if all.is_empty() && query.status.is_empty() && query.next.is_empty() && started > 0 {
        body.push_str(
            "<p class=\"empty\" id=\"express-children\">The children are Express executions: \
             Step Functions counts them but keeps no history of them.</p>",
        );
    }
    body.push_str(&html::pager(
        "/map-run",
        &[("arn", &query.arn), ("status", &query.status)],
        "next",
        (!query.next.is_empty()).then_some(query.next.as_str()),
        next.as_deref(),
    ));
    Ok(Html(html::page("Map Run", &body)))
}

/// One page of the Map Run's child executions with `status`, each described (its key is in
/// its input, its error and cause in its description).
async fn items(
    sfn: &aws_sdk_sfn::Client,
    map_run: &str,
    status: Option<&str>,
    token: &str,
    limit: i32,
) -> anyhow::Result<(Vec<Item>, Option<String>)> {
    let mut request = sfn
        .list_executions()
        .map_run_arn(map_run)
        .max_results(limit);
    if let Some(status) = status {
        request = request.status_filter(ExecutionStatus::from(status));
    }
    if !token.is_empty() {
        request = request.next_token(token);
    }
    let listed = request
        .send()
        .await
        .context("ListExecutions of the Map Run")?;
    let described = futures::future::join_all(listed.executions().iter().map(|e| {
        sfn.describe_execution()
            .execution_arn(e.execution_arn())
            .send()
    }))
    .await;
    let mut items = Vec::new();
    for (summary, described) in listed.executions().iter().zip(described) {
        let described = described.ok();
        let key = described
            .as_ref()
            .and_then(|d| d.input())
            .and_then(|input| serde_json::from_str::<Value>(input).ok())
            .and_then(|input| crate::control::item_objects(&input));
        items.push(Item {
            arn: summary.execution_arn().to_owned(),
            status: summary.status().as_str().to_owned(),
            key,
            error: described
                .as_ref()
                .and_then(|d| d.error())
                .map(str::to_owned),
            cause: described
                .as_ref()
                .and_then(|d| d.cause())
                .map(str::to_owned),
            start: Some(*summary.start_date()),
            stop: summary.stop_date().copied(),
        });
    }
    Ok((items, listed.next_token().map(str::to_owned)))
}
