//! Section 4: a bucket of many small objects: how fast the launcher lists it page by page, and
//! whether the whole workflow over it keeps every execution's history under the limit.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use s3_ingest::sample;
use s3_ingest::stack::{LocalStack, StackOptions, WorkflowNames, ensure_iotanalytics};
use serde_json::{Value, json};

use crate::Bench;
use crate::history;
use crate::report::{Check, Section, Table, Verdict, thousands};

/// Step Functions' history limit per execution.
pub const HISTORY_LIMIT: u64 = 25_000;

/// Options of the scale section.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Objects in the bucket.
    #[arg(long, default_value_t = 200_000)]
    pub objects: u64,
    /// Data rows per object.
    #[arg(long, default_value_t = 2)]
    pub rows_per_object: u64,
    /// Objects ingested at once by the workflow (the Distributed Map's MaxConcurrency).
    #[arg(long, default_value_t = 10)]
    pub scale_concurrency: u32,
    /// Only time the launcher's listing; do not run the workflow over the bucket.
    #[arg(long)]
    pub listing_only: bool,
}

const BUCKET: &str = "bench-scale";
const MANIFESTS: &str = "bench-scale-manifests";

/// The key of object `index`: 1,000 objects per folder.
pub fn key(index: u64) -> String {
    format!("p{:04}/o{index:07}.csv", index / 1000)
}

/// Writes the objects straight into the embedded S3's bucket directory (s3s-fs serves each
/// file under `<root>/<bucket>/` as an object, and lists it like one); returns their rows.
fn write_objects(bucket_dir: &Path, objects: u64, rows_per_object: u64) -> anyhow::Result<u64> {
    let mut rowid = 0;
    for index in 0..objects {
        let path = bucket_dir.join(key(index));
        if index % 1000 == 0
            && let Some(parent) = path.parent()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut body = Vec::with_capacity(64 * (rows_per_object as usize + 1));
        writeln!(body, "{}", sample::HEADER)?;
        for _ in 0..rows_per_object {
            writeln!(body, "{}", sample::row(rowid))?;
            rowid += 1;
        }
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(rowid)
}

/// The launcher's page loop alone: (pages, keys, time, slowest page).
async fn list_all(stack: &LocalStack) -> anyhow::Result<(u64, u64, Duration, Duration)> {
    let mut token: Option<String> = None;
    let (mut pages, mut keys) = (0, 0);
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    loop {
        let mut event = json!({
            "bucket": BUCKET,
            "pageSize": 1000,
            "runId": "bench-listing",
            "manifest": {"bucket": MANIFESTS, "prefix": ""},
        });
        if let Some(token) = &token {
            event["continuationToken"] = json!(token);
        }
        let page_started = Instant::now();
        let output = ingest::handlers::launcher(&stack.clients, event)
            .await
            .map_err(|e| anyhow::anyhow!("launcher page {}: {e}", pages + 1))?;
        slowest = slowest.max(page_started.elapsed());
        pages += 1;
        keys += output.get("itemCount").and_then(Value::as_u64).unwrap_or(0);
        token = output
            .get("continuationToken")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if output.get("hasMore").and_then(Value::as_bool) != Some(true) {
            break;
        }
        if token.is_none() {
            bail!("the launcher said hasMore without a continuation token");
        }
        if pages % 20 == 0 {
            crate::progress(format!("scale: {pages} pages listed"));
        }
    }
    Ok((pages, keys, started.elapsed(), slowest))
}

/// What a workflow run did.
pub(crate) struct WorkflowRun {
    pub executions: Vec<String>,
    pub status: String,
    pub failure: Option<String>,
    pub elapsed: Duration,
    pub output: Value,
}

/// Starts the state machine over the bucket and follows its continuations to the end.
async fn run_workflow(
    stack: &LocalStack,
    names: &WorkflowNames,
    args: &ScaleArgs,
) -> anyhow::Result<WorkflowRun> {
    let input = json!({
        "bucket": names.bucket,
        "channelName": names.channel,
        "datastoreName": names.datastore,
        "datasetName": names.dataset,
        "maxConcurrency": args.scale_concurrency,
        "pageSize": 1000,
        "validationPollSeconds": 1,
    });
    run_to_end(stack, input, "scale").await
}

/// Starts the state machine with `input` and follows its continuations to the end, saying
/// every 30 s how far it got (as `label`).
pub(crate) async fn run_to_end(
    stack: &LocalStack,
    input: Value,
    label: &str,
) -> anyhow::Result<WorkflowRun> {
    let handle = stack.stepfunctions.handle();
    let started = Instant::now();
    let mut current = handle
        .start_execution(&stack.state_machine_arn, None, input)
        .context("StartExecution")?;
    let mut executions = vec![current.clone()];
    let mut last_report = Instant::now();
    loop {
        let info = handle
            .wait_for_execution(&current, Duration::from_secs(5))
            .await
            .context("waiting for the execution")?;
        if !info.status.is_final() {
            if last_report.elapsed() >= Duration::from_secs(30) {
                last_report = Instant::now();
                crate::progress(format!(
                    "{label}: {} objects done after {:.0} s, execution {}",
                    stack
                        .activity
                        .objects
                        .load(std::sync::atomic::Ordering::Relaxed),
                    started.elapsed().as_secs_f64(),
                    executions.len()
                ));
            }
            continue;
        }
        let output = info.output.clone().unwrap_or(Value::Null);
        if info.status.as_str() == "SUCCEEDED"
            && let Some(next) = output
                .pointer("/continuation/ExecutionArn")
                .and_then(Value::as_str)
        {
            current = next.to_owned();
            executions.push(current.clone());
            continue;
        }
        return Ok(WorkflowRun {
            executions,
            status: info.status.as_str().to_owned(),
            failure: info
                .error
                .map(|e| format!("{e}: {}", info.cause.unwrap_or_default())),
            elapsed: started.elapsed(),
            output,
        });
    }
}

/// Runs the section.
pub async fn run(bench: &Bench, args: &ScaleArgs) -> anyhow::Result<Section> {
    let dir = bench.section_dir("scale")?;
    let data_dir = dir.join("stack");
    crate::progress(format!("scale: writing {} objects", args.objects));
    let written = Instant::now();
    let rows = write_objects(
        &data_dir.join("s3").join(BUCKET),
        args.objects,
        args.rows_per_object,
    )?;
    std::fs::create_dir_all(data_dir.join("s3").join(MANIFESTS))?;
    let write_seconds = written.elapsed().as_secs_f64();
    let names = WorkflowNames {
        bucket: BUCKET.to_owned(),
        channel: "bench_scale_channel".to_owned(),
        pipeline: "bench_scale_pipeline".to_owned(),
        datastore: "bench_scale_datastore".to_owned(),
        dataset: "bench_scale_dataset".to_owned(),
        ..WorkflowNames::default()
    };
    let mut options = StackOptions::new(&data_dir);
    options.channel_quota = u32::MAX;
    let stack = LocalStack::start(options, &names).await?;
    let result = measure(args, &stack, &names, rows, write_seconds).await;
    let handle_dir = data_dir.join("stepfunctions");
    stack.shutdown().await;
    let result = match result {
        Ok((mut section, ran_workflow)) => {
            if ran_workflow {
                let (histories, max) = history::stored_histories(&handle_dir)?;
                let verdict = Verdict::of(max <= HISTORY_LIMIT);
                section.table.row(vec![
                    "largest history over every execution, Map Run children included".to_owned(),
                    format!(
                        "{} events (over {} executions)",
                        thousands(max as f64),
                        thousands(histories as f64)
                    ),
                    format!("≤ {}", thousands(HISTORY_LIMIT as f64)),
                    verdict.cell(),
                ]);
                section.checks.push(Check {
                    figure: format!(
                        "largest execution history, {} objects",
                        thousands(args.objects as f64)
                    ),
                    value: format!("{} events", thousands(max as f64)),
                    target: format!("≤ {}", thousands(HISTORY_LIMIT as f64)),
                    verdict,
                });
            }
            Ok(section)
        }
        Err(e) => Err(e),
    };
    bench.clean(&dir);
    result
}

async fn measure(
    args: &ScaleArgs,
    stack: &LocalStack,
    names: &WorkflowNames,
    rows: u64,
    write_seconds: f64,
) -> anyhow::Result<(Section, bool)> {
    let mut table = Table::new(&["figure", "measured", "target", "verdict"]);
    let mut checks = Vec::new();
    table.row(vec![
        "objects in the bucket (written to the S3 directory)".to_owned(),
        format!(
            "{} objects, {} rows, in {write_seconds:.1} s",
            thousands(args.objects as f64),
            thousands(rows as f64)
        ),
        "—".to_owned(),
        Verdict::Info.cell(),
    ]);

    crate::progress("scale: the launcher's page loop".to_owned());
    let (pages, keys, took, slowest) = list_all(stack).await?;
    let pages_per_second = pages as f64 / took.as_secs_f64().max(1e-9);
    table.row(vec![
        "launcher page loop: pages listed per second (ListObjectsV2 of 1,000 keys + manifest write)".to_owned(),
        format!(
            "{pages_per_second:.2} pages/s ({pages} page(s), {} keys, {:.1} s; slowest page {:.0} ms)",
            thousands(keys as f64),
            took.as_secs_f64(),
            slowest.as_secs_f64() * 1000.0
        ),
        "— (figure)".to_owned(),
        Verdict::Info.cell(),
    ]);
    let listed_all = keys == args.objects;
    table.row(vec![
        "every object listed once".to_owned(),
        format!(
            "{} of {}",
            thousands(keys as f64),
            thousands(args.objects as f64)
        ),
        "all".to_owned(),
        Verdict::of(listed_all).cell(),
    ]);
    checks.push(Check {
        figure: format!(
            "pages listed per second, {} objects",
            thousands(args.objects as f64)
        ),
        value: format!("{pages_per_second:.2} pages/s"),
        target: "— (figure); every object listed".to_owned(),
        verdict: Verdict::of(listed_all),
    });

    let mut notes = Vec::new();
    if args.listing_only {
        notes.push("The workflow was not run (`--listing-only`).".to_owned());
    } else {
        ensure_iotanalytics(&stack.clients.iotanalytics, names).await?;
        crate::progress(format!(
            "scale: the workflow over {} objects, concurrency {}",
            args.objects, args.scale_concurrency
        ));
        let run = run_workflow(stack, names, args).await?;
        let objects = stack
            .activity
            .objects
            .load(std::sync::atomic::Ordering::Relaxed);
        let ingested = run
            .output
            .pointer("/totals/rows")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let workflow_pages = run
            .output
            .pointer("/totals/pages")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let ok = run.status == "SUCCEEDED";
        table.row(vec![
            "workflow: status".to_owned(),
            match &run.failure {
                None => run.status.clone(),
                Some(failure) => format!("{} ({failure})", run.status),
            },
            "SUCCEEDED".to_owned(),
            Verdict::of(ok).cell(),
        ]);
        table.row(vec![
            "workflow: objects, rows, wall time".to_owned(),
            format!(
                "{} objects, {} rows, {workflow_pages} page(s), {:.1} s ({:.0} objects/s), {} execution(s)",
                thousands(objects as f64),
                thousands(ingested as f64),
                run.elapsed.as_secs_f64(),
                objects as f64 / run.elapsed.as_secs_f64().max(1e-9),
                run.executions.len()
            ),
            "—".to_owned(),
            Verdict::Info.cell(),
        ]);
        let (list_count, list_time) =
            history::time_in(stack, &run.executions, "Task", Some("List page"))?;
        if list_count > 0 {
            table.row(vec![
                "workflow: pages listed per second inside the executions (time in the `List page` state)".to_owned(),
                format!(
                    "{:.2} pages/s ({list_count} page(s) in {:.1} s)",
                    list_count as f64 / list_time.as_secs_f64().max(1e-9),
                    list_time.as_secs_f64()
                ),
                "—".to_owned(),
                Verdict::Info.cell(),
            ]);
        }
        let (top, top_max) = history::top_level_events(stack);
        table.row(vec![
            "largest history of the top-level executions (DescribeExecution's count)".to_owned(),
            format!(
                "{} events (over {top} executions)",
                thousands(top_max as f64)
            ),
            format!("≤ {}", thousands(HISTORY_LIMIT as f64)),
            Verdict::of(top_max as u64 <= HISTORY_LIMIT).cell(),
        ]);
        checks.push(Check {
            figure: format!("workflow over {} objects", thousands(args.objects as f64)),
            value: run.status.clone(),
            target: "SUCCEEDED".to_owned(),
            verdict: Verdict::of(ok),
        });
    }
    Ok((
        Section {
            title: "4. Scale".to_owned(),
            intro: format!(
                "A bucket of {} small objects ({} rows each, 1,000 per folder), written \
                 straight into the embedded S3's directory. First the launcher's page loop \
                 alone (`ingest::handlers::launcher`, 1,000 keys a page, each page's manifest \
                 written to another bucket); then the whole workflow over the bucket \
                 (concurrency {}, channel quota unlimited), through the local Step Functions. \
                 History sizes are counted in the local Step Functions' stored histories \
                 (one event per line), which hold every execution, the Distributed Map's \
                 child executions included.",
                thousands(args.objects as f64),
                args.rows_per_object,
                args.scale_concurrency
            ),
            table,
            notes,
            checks,
        },
        !args.listing_only,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_index_order_with_1000_per_folder() {
        assert_eq!(key(0), "p0000/o0000000.csv");
        assert_eq!(key(199_999), "p0199/o0199999.csv");
        assert!(key(999) < key(1000));
        assert!(key(9_999) < key(10_000));
    }

    #[test]
    fn objects_are_written_as_files() {
        let dir = tempfile::tempdir().unwrap();
        let rows = write_objects(dir.path(), 1_001, 2).unwrap();
        assert_eq!(rows, 2_002);
        let text = std::fs::read_to_string(dir.path().join(key(1_000))).unwrap();
        assert_eq!(text.lines().count(), 3);
    }
}
