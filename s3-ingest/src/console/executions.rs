//! The executions pages: the list (newest first, filtered by status, paged) and one execution
//! (its definition as a graph with the path taken, its Map Runs, the execution it continued
//! as, and its event history with inputs and outputs, paged).

use std::fmt::Write;
use std::sync::Arc;

use anyhow::Context;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use axum::extract::{Query, State};
use axum::response::Html;
use serde_json::Value;

use super::graph::{self, Marks};
use super::html::{self, badge, escape, link, time};
use super::{PageResult, Sources};

/// Executions per page of the list.
const LIST_PAGE: i32 = 25;
/// Events per page of a history.
const EVENTS_PAGE: i32 = 100;
/// Events read for the graph, at most (AWS's own limit on a history).
const GRAPH_EVENTS: usize = 25_000;

const STATUSES: [&str; 6] = [
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "ABORTED",
    "PENDING_REDRIVE",
];

/// The list page's query: `?status=FAILED&next=TOKEN`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    next: String,
}

/// Executions of the workflow's state machine, newest first.
pub(crate) async fn list(
    State(sources): State<Arc<Sources>>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let mut request = sources
        .sfn
        .list_executions()
        .state_machine_arn(&sources.state_machine_arn)
        .max_results(LIST_PAGE);
    if !query.status.is_empty() {
        request = request.status_filter(ExecutionStatus::from(query.status.as_str()));
    }
    if !query.next.is_empty() {
        request = request.next_token(&query.next);
    }
    let listed = request.send().await.context("ListExecutions")?;
    let mut body = String::from("<div class=\"filters\">Status: ");
    body.push_str(&filter_link("/executions", &[], "", &query.status, "all"));
    for status in STATUSES {
        body.push_str(&filter_link(
            "/executions",
            &[],
            status,
            &query.status,
            status,
        ));
    }
    body.push_str("</div>");
    body.push_str(
        "<table id=\"executions\"><thead><tr><th>Name</th><th>Status</th><th>Started</th>\
         <th>Stopped</th><th>Duration</th></tr></thead><tbody>",
    );
    for execution in listed.executions() {
        let _ = write!(
            body,
            "<tr data-arn=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(execution.execution_arn()),
            link(
                "/execution",
                &[("arn", execution.execution_arn())],
                &escape(execution.name())
            ),
            badge(execution.status().as_str()),
            time(Some(execution.start_date())),
            time(execution.stop_date()),
            html::duration(Some(execution.start_date()), execution.stop_date()),
        );
    }
    if listed.executions().is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"empty\">No executions.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&html::pager(
        "/executions",
        &[("status", &query.status)],
        "next",
        (!query.next.is_empty()).then_some(query.next.as_str()),
        listed.next_token(),
    ));
    Ok(Html(html::page("Executions", &body)))
}

/// A filter link, marked when it is the one in force.
pub(crate) fn filter_link(
    path: &str,
    params: &[(&str, &str)],
    value: &str,
    current: &str,
    label: &str,
) -> String {
    let class = if value == current {
        " class=\"active\""
    } else {
        ""
    };
    let mut params = params.to_vec();
    params.push(("status", value));
    format!(
        "<a{class} href=\"{}\">{}</a> ",
        escape(&html::href(path, &params)),
        escape(label)
    )
}

/// The execution page's query: `?arn=ARN&events=TOKEN`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct DetailQuery {
    arn: String,
    #[serde(default)]
    events: String,
}

/// One execution.
pub(crate) async fn detail(
    State(sources): State<Arc<Sources>>,
    Query(query): Query<DetailQuery>,
) -> PageResult {
    let sfn = &sources.sfn;
    let described = sfn
        .describe_execution()
        .execution_arn(&query.arn)
        .send()
        .await
        .with_context(|| format!("DescribeExecution of {}", query.arn))?;
    let name = described.name().unwrap_or_default().to_owned();
    let mut body = String::from("<table class=\"facts\">");
    let mut fact = |label: &str, value: String| {
        let _ = write!(body, "<tr><th>{label}</th><td>{value}</td></tr>");
    };
    fact("Status", badge(described.status().as_str()));
    fact(
        "ARN",
        format!("<code>{}</code>", escape(described.execution_arn())),
    );
    fact("Started", time(Some(described.start_date())));
    fact("Stopped", time(described.stop_date()));
    fact(
        "Duration",
        html::duration(Some(described.start_date()), described.stop_date()),
    );
    if let Some(map_run) = described.map_run_arn() {
        fact(
            "Item of",
            link("/map-run", &[("arn", map_run)], "its Map Run"),
        );
    }
    if let Some(error) = described.error() {
        fact(
            "Error",
            format!("<span class=\"error-name\">{}</span>", escape(error)),
        );
    }
    if let Some(cause) = described.cause() {
        fact(
            "Cause",
            format!("<span class=\"cause\">{}</span>", escape(cause)),
        );
    }
    let output: Option<Value> = described
        .output()
        .and_then(|o| serde_json::from_str(o).ok());
    if let Some(next) = output
        .as_ref()
        .and_then(|o| o.pointer("/continuation/ExecutionArn"))
        .and_then(Value::as_str)
    {
        fact(
            "Continued as",
            format!(
                "<span class=\"continuation\">{}</span>",
                link("/execution", &[("arn", next)], &escape(next))
            ),
        );
    }
    body.push_str("</table>");
    for (label, text) in [("Input", described.input()), ("Output", described.output())] {
        if let Some(text) = text {
            let _ = write!(
                body,
                "<details><summary>{label}</summary>{}</details>",
                html::json_block(text)
            );
        }
    }

    // Map Runs started by this execution.
    let runs = sfn
        .list_map_runs()
        .execution_arn(&query.arn)
        .send()
        .await
        .context("ListMapRuns")?;
    if !runs.map_runs().is_empty() {
        body.push_str("<h2>Map Runs</h2><ul class=\"map-runs\">");
        for run in runs.map_runs() {
            let _ = write!(
                body,
                "<li>{} started {}</li>",
                link(
                    "/map-run",
                    &[("arn", run.map_run_arn())],
                    &escape(run.map_run_arn().rsplit('/').next().unwrap_or_default())
                ),
                time(Some(run.start_date()))
            );
        }
        body.push_str("</ul>");
    }

    // The graph, marked with what the whole history did.
    let running = described.status() == &ExecutionStatus::Running;
    let failed = matches!(
        described.status(),
        ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
    );
    let (marks, first_state) = marks(sfn, &query.arn, running, failed).await?;
    let definition = sfn
        .describe_state_machine_for_execution()
        .execution_arn(&query.arn)
        .send()
        .await
        .ok()
        .and_then(|d| serde_json::from_str::<Value>(d.definition()).ok());
    body.push_str("<h2>Graph</h2>");
    match definition {
        Some(definition) => {
            let machine = first_state
                .as_deref()
                .and_then(|s| graph::machine_containing(&definition, s))
                .unwrap_or(&definition);
            let _ = write!(
                body,
                "<div class=\"graph-box\">{}</div><p class=\"legend\"><span class=\"key visited\"></span>visited \
                 <span class=\"key current\"></span>current <span class=\"key failed\"></span>failed \
                 <span class=\"key taken\"></span>transition taken</p>",
                graph::layout(machine).svg(&marks)
            );
        }
        None => body.push_str("<p class=\"empty\">The definition is not available.</p>"),
    }

    // One page of the history, with its data.
    let mut request = sfn
        .get_execution_history()
        .execution_arn(&query.arn)
        .include_execution_data(true)
        .max_results(EVENTS_PAGE);
    if !query.events.is_empty() {
        request = request.next_token(&query.events);
    }
    let history = request.send().await.context("GetExecutionHistory")?;
    body.push_str(
        "<h2>Events</h2><table id=\"events\"><thead><tr><th>#</th><th>Time</th><th>Type</th>\
         <th>Details</th></tr></thead><tbody>",
    );
    for event in history.events() {
        body.push_str(&event_row(event));
    }
    body.push_str("</tbody></table>");
    body.push_str(&html::pager(
        "/execution",
        &[("arn", &query.arn)],
        "events",
        (!query.events.is_empty()).then_some(query.events.as_str()),
        history.next_token(),
    ));
    Ok(Html(html::page(&format!("Execution {name}"), &body)))
}

/// What the history says about the states: visited, current, failed, transitions taken; and
/// the first state entered (which machine of the definition to draw).
async fn marks(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    running: bool,
    failed: bool,
) -> anyhow::Result<(Marks, Option<String>)> {
    let mut marks = Marks::default();
    let mut first = None;
    let mut last_entered: Option<String> = None;
    let mut token: Option<String> = None;
    let mut read = 0usize;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(arn)
            .include_execution_data(false)
            .max_results(1000)
            .set_next_token(token.take())
            .send()
            .await
            .context("GetExecutionHistory")?;
        for event in page.events() {
            if let Some(entered) = event.state_entered_event_details() {
                let name = entered.name().to_owned();
                if let Some(previous) = &last_entered {
                    marks.taken.insert((previous.clone(), name.clone()));
                }
                first.get_or_insert_with(|| name.clone());
                marks.visited.insert(name.clone());
                marks.current = Some(name.clone());
                last_entered = Some(name);
            } else if let Some(exited) = event.state_exited_event_details() {
                if marks.current.as_deref() == Some(exited.name()) {
                    marks.current = None;
                }
            } else if matches!(
                event.r#type(),
                HistoryEventType::TaskFailed
                    | HistoryEventType::LambdaFunctionFailed
                    | HistoryEventType::MapRunFailed
                    | HistoryEventType::TaskTimedOut
                    | HistoryEventType::LambdaFunctionTimedOut
            ) {
                marks.failed.extend(last_entered.clone());
            }
        }
        read += page.events().len();
        token = page.next_token().map(str::to_owned);
        if token.is_none() || read >= GRAPH_EVENTS {
            break;
        }
    }
    if failed {
        // Where the execution ended: the last state it entered.
        marks.failed.extend(last_entered);
    }
    if !running {
        marks.current = None;
    }
    Ok((marks, first))
}

/// One event as a table row: its details collapsible, a continuation linked.
fn event_row(event: &HistoryEvent) -> String {
    let kind = event.r#type().as_str();
    let mut summary = String::new();
    let mut blocks: Vec<(&str, &str)> = Vec::new();
    let failure = |error: Option<&str>, cause: Option<&str>, summary: &mut String| {
        if let Some(error) = error {
            let _ = write!(
                summary,
                "<span class=\"error-name\">{}</span> ",
                escape(error)
            );
        }
        if let Some(cause) = cause {
            let _ = write!(summary, "<span class=\"cause\">{}</span>", escape(cause));
        }
    };
    if let Some(d) = event.state_entered_event_details() {
        let _ = write!(summary, "<b>{}</b>", escape(d.name()));
        blocks.extend(d.input().map(|i| ("input", i)));
    } else if let Some(d) = event.state_exited_event_details() {
        let _ = write!(summary, "<b>{}</b>", escape(d.name()));
        blocks.extend(d.output().map(|o| ("output", o)));
    } else if let Some(d) = event.execution_started_event_details() {
        blocks.extend(d.input().map(|i| ("input", i)));
    } else if let Some(d) = event.execution_succeeded_event_details() {
        blocks.extend(d.output().map(|o| ("output", o)));
    } else if let Some(d) = event.execution_failed_event_details() {
        failure(d.error(), d.cause(), &mut summary);
    } else if let Some(d) = event.execution_aborted_event_details() {
        failure(d.error(), d.cause(), &mut summary);
    } else if let Some(d) = event.task_scheduled_event_details() {
        let _ = write!(
            summary,
            "{}:{}",
            escape(d.resource_type()),
            escape(d.resource())
        );
        blocks.push(("parameters", d.parameters()));
    } else if let Some(d) = event.task_succeeded_event_details() {
        let _ = write!(
            summary,
            "{}:{}",
            escape(d.resource_type()),
            escape(d.resource())
        );
        if let Some(output) = d.output() {
            blocks.push(("output", output));
            if let Some(next) = started_execution(output) {
                let _ = write!(
                    summary,
                    " <span class=\"continuation\">started {}</span>",
                    link("/execution", &[("arn", &next)], &escape(&next))
                );
            }
        }
    } else if let Some(d) = event.task_failed_event_details() {
        failure(d.error(), d.cause(), &mut summary);
    } else if let Some(d) = event.lambda_function_scheduled_event_details() {
        summary.push_str(&escape(d.resource()));
        blocks.extend(d.input().map(|i| ("input", i)));
    } else if let Some(d) = event.lambda_function_succeeded_event_details() {
        blocks.extend(d.output().map(|o| ("output", o)));
    } else if let Some(d) = event.lambda_function_failed_event_details() {
        failure(d.error(), d.cause(), &mut summary);
    } else if let Some(d) = event.map_run_started_event_details() {
        if let Some(arn) = d.map_run_arn() {
            summary.push_str(&link("/map-run", &[("arn", arn)], "Map Run"));
        }
    } else if let Some(d) = event.map_run_failed_event_details() {
        failure(d.error(), d.cause(), &mut summary);
    }
    let mut details = summary;
    for (label, text) in blocks {
        let _ = write!(
            details,
            "<details><summary>{label}</summary>{}</details>",
            html::json_block(text)
        );
    }
    let class =
        if kind.ends_with("Failed") || kind.ends_with("TimedOut") || kind.ends_with("Aborted") {
            " class=\"failed-event\""
        } else {
            ""
        };
    format!(
        "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{details}</td></tr>",
        event.id(),
        time(Some(event.timestamp())),
        escape(kind),
    )
}

/// The execution a `states:startExecution` task started, from its output.
fn started_execution(output: &str) -> Option<String> {
    let value: Value = serde_json::from_str(output).ok()?;
    let arn = value.get("ExecutionArn")?.as_str()?;
    arn.contains(":execution:").then(|| arn.to_owned())
}
