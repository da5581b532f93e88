//! `s3-ingest run`: the whole workflow on one machine. Starts the local stack, fills the
//! bucket, creates the IoT Analytics resources, starts the state machine through the Step
//! Functions API, shows progress and ends with a summary and the validation result.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};

pub use crate::run_args::{RunArgs, SOURCE_SUFFIX};
use crate::sample;
use crate::stack::{LocalStack, ensure_iotanalytics};
pub use crate::summary::{ExitStatus, summary};

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Executions, the first one first (more than one after continue-as-new).
    pub executions: Vec<String>,
    /// Final status of the last execution.
    pub status: String,
    /// Error and cause of a failed execution.
    pub failure: Option<(String, String)>,
    /// The first Distributed Map items that failed, with their own error and cause.
    pub failed_items: Vec<crate::failed_items::FailedItem>,
    /// The last execution's output.
    pub output: Option<Value>,
    /// Wall time from the first StartExecution to the end.
    pub elapsed: Duration,
    /// Rows acknowledged, as counted by the in-process workers.
    pub rows: u64,
    /// Objects finished.
    pub objects: u64,
    /// Re-sends.
    pub retries: u64,
    /// Where the run's reports are (`s3://ledger-bucket/ingest-ledger/reports/<runId>/`).
    pub reports: String,
    /// What the reports name: each object or row set aside, with its line and reason.
    pub set_aside: Vec<SetAside>,
    /// What the run found of an earlier run that did not finish, and did about it.
    pub recovery: crate::recovery::Recovery,
    /// Whether the run was interrupted (its execution stopped, its claims released).
    pub interrupted: bool,
    /// Objects under the source prefix the ledger records as set aside, this run's and
    /// earlier runs' (they stay set aside until their ETag changes or `skip` lets them in).
    pub objects_set_aside: u64,
    /// Rows set aside under the `skip` policy, as the ledger records them.
    pub rows_set_aside: u64,
    /// The most rows one crash or interrupt may store twice: the rows acknowledged after
    /// each object's last ledger checkpoint, and those in flight, over the objects in
    /// progress at once.
    pub duplicate_bound: u64,
}

impl RunReport {
    /// The duplicates a failed validation reported in its cause, if it did.
    pub fn failed_duplicates(&self) -> Option<String> {
        let (_, cause) = self.failure.as_ref()?;
        let at = cause.find(" duplicates")?;
        let digits = cause[..at].rsplit(' ').next()?;
        digits.parse::<u64>().ok().map(|n| n.to_string())
    }
}

/// See [`RunReport::duplicate_bound`].
pub fn duplicate_bound(args: &RunArgs) -> u64 {
    let batches = args.checkpoint_every + ingest::worker::DEFAULT_MAX_IN_FLIGHT as u64 + 1;
    // A worker invocation on a batch of small objects has several of them in progress.
    let objects = if args.small_object_bytes > 0 {
        ingest::worker::OBJECTS_IN_FLIGHT as u64
    } else {
        1
    };
    u64::from(args.concurrency) * objects * batches * ingest::batches::MAX_BATCH_MESSAGES as u64
}

/// One entry of the run's reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Source key.
    pub key: String,
    /// Line of the bad row (1: the header).
    pub line: u64,
    /// Why.
    pub reason: String,
    /// Whether the whole rest of the object was set aside (`fail` policy or a bad header),
    /// rather than one row.
    pub object: bool,
    /// The report object naming it.
    pub report: String,
}

impl RunReport {
    /// Whether the run ended with a passed validation.
    pub fn passed(&self) -> bool {
        self.status == "SUCCEEDED"
            && self
                .output
                .as_ref()
                .and_then(|o| o.pointer("/validation/passed"))
                .and_then(Value::as_bool)
                == Some(true)
    }
}

/// The validation the sample data set is checked with.
pub fn sample_validation(datastore: &str) -> (String, Value) {
    (
        format!(
            "SELECT count(DISTINCT location) AS locations, count(DISTINCT rowid) AS distinct_rowids FROM {datastore}"
        ),
        json!({"locations": 2, "distinct_rowids": sample::TOTAL_ROWS}),
    )
}

/// The execution input for these arguments.
pub fn execution_input(args: &RunArgs) -> Value {
    let mut input = json!({
        "bucket": args.bucket,
        "prefix": args.prefix,
        "channelName": args.channel,
        "datastoreName": args.datastore,
        "datasetName": args.dataset,
        "maxConcurrency": args.concurrency,
        "rate": args.rate,
        "values": if args.typed { "typed" } else { "strings" },
        "badRows": if args.skip_bad_rows { "skip" } else { "fail" },
        "pageSize": args.page_size,
        "pagesPerExecution": args.pages_per_execution,
        "checkpointEvery": args.checkpoint_every,
        "smallObjectBytes": args.small_object_bytes,
        "objectsPerBatch": args.objects_per_batch,
        "rowIdentity": !args.no_row_identity,
        "validationPollSeconds": 1,
    });
    if args.source.is_none() {
        let (sql, expected) = sample_validation(&args.datastore);
        input["validationSql"] = json!(sql);
        input["expected"] = expected;
    }
    input
}

/// Runs the workflow on a stack already started.
pub async fn run_on(
    stack: &LocalStack,
    args: &RunArgs,
    show_progress: bool,
) -> anyhow::Result<RunReport> {
    run_until(stack, args, show_progress, std::future::pending()).await
}

/// [`run_on`], interrupted when `interrupt` completes: the execution is stopped, its claims
/// are released for the next run, and the report says what was done so far.
pub async fn run_until(
    stack: &LocalStack,
    args: &RunArgs,
    show_progress: bool,
    interrupt: impl std::future::Future<Output = ()>,
) -> anyhow::Result<RunReport> {
    let names = args.names();
    let uploaded = fill_bucket(stack, args).await?;
    if uploaded > 0 {
        tracing::info!(objects = uploaded, bucket = %names.bucket, "bucket filled");
    }
    ensure_iotanalytics(&stack.clients.iotanalytics, &names).await?;

    let sfn = stack.sfn_client().await;
    let started = Instant::now();
    let input = execution_input(args);
    let recovery = crate::recovery::recover(stack, &sfn, args, &input).await?;
    let (first, run_id) = match &recovery.adopted {
        Some(adopted) => (adopted.execution_arn.clone(), adopted.run_id.clone()),
        None => {
            let start = sfn
                .start_execution()
                .state_machine_arn(&stack.state_machine_arn)
                .input(input.to_string())
                .send()
                .await
                .context("StartExecution")?;
            let arn = start.execution_arn().to_owned();
            let run_id = crate::recovery::run_id_of(&arn, &Value::Null);
            (arn, run_id)
        }
    };
    let mut executions = vec![first];
    let bar = progress_bar(show_progress);
    let base_rows = stack.activity.rows.load(Ordering::Relaxed);
    let base_objects = stack.activity.objects.load(Ordering::Relaxed);
    let base_retries = stack.activity.retries.load(Ordering::Relaxed);
    let base_listed = stack.activity.listed.load(Ordering::Relaxed);
    let base_validations = stack.activity.validations.load(Ordering::Relaxed);
    let mut ingest_rate = (0u64, 0.001f64);
    let mut interrupt = std::pin::pin!(interrupt);
    let mut interrupted = false;
    // Quick looks at first, since a small run ends within a second, then five a second; the
    // embedded Step Functions also wakes the loop the moment the execution ends, so a short
    // run does not wait out a pause to be reported.
    let mut pause = Duration::from_millis(10);
    let steps = stack.stepfunctions.handle();
    let (status, output, failure) = loop {
        let watched = executions.last().expect("one execution at least").clone();
        tokio::select! {
            _ = steps.wait_for_execution(&watched, pause) => pause = (pause * 3 / 2).min(Duration::from_millis(200)),
            () = &mut interrupt, if !interrupted => {
                interrupted = true;
                bar.suspend(|| tracing::warn!("interrupted: stopping the execution"));
                let current = executions.last().expect("one execution at least").clone();
                let released =
                    crate::recovery::interrupt(stack, &sfn, args, &current, &run_id).await?;
                tracing::info!(objects = released.len(), "claims released for the next run");
            }
        }
        let rows = stack.activity.rows.load(Ordering::Relaxed) - base_rows;
        let objects = stack.activity.objects.load(Ordering::Relaxed) - base_objects;
        if rows > ingest_rate.0 {
            // The rate is over the time rows were arriving, so waiting for validation does
            // not drag it down.
            ingest_rate = (rows, started.elapsed().as_secs_f64().max(0.001));
        }
        let listed = stack.activity.listed.load(Ordering::Relaxed) - base_listed;
        let phase = if stack.activity.validations.load(Ordering::Relaxed) > base_validations {
            format!("validating ({objects} objects, {rows} rows)")
        } else if listed == 0 {
            "listing".to_owned()
        } else {
            format!("ingesting {objects} of {listed} objects listed, {rows} rows")
        };
        bar.set_message(format!(
            "{phase}, {:.0} rows/s, execution {}",
            ingest_rate.0 as f64 / ingest_rate.1,
            executions.len()
        ));
        let current = executions.last().expect("one execution at least").clone();
        let described = sfn
            .describe_execution()
            .execution_arn(&current)
            .send()
            .await
            .context("DescribeExecution")?;
        match described.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => continue,
            ExecutionStatus::Succeeded => {
                let output: Value = described
                    .output()
                    .map(serde_json::from_str)
                    .transpose()
                    .context("reading the execution's output")?
                    .unwrap_or(Value::Null);
                if let Some(next) = output
                    .pointer("/continuation/ExecutionArn")
                    .and_then(Value::as_str)
                {
                    executions.push(next.to_owned());
                    continue;
                }
                break ("SUCCEEDED".to_owned(), Some(output), None);
            }
            other => {
                let failure = (
                    described.error().unwrap_or_default().to_owned(),
                    described.cause().unwrap_or_default().to_owned(),
                );
                break (other.as_str().to_owned(), None, Some(failure));
            }
        }
    };
    bar.finish_and_clear();
    let failed_items = if failure.is_some() {
        let last = executions.last().expect("one execution at least");
        crate::failed_items::failed_items(
            &sfn,
            &stack.clients.s3,
            last,
            crate::control::FAILED_ITEMS_SHOWN,
        )
        .await?
    } else {
        Vec::new()
    };
    let ledger = ingest::ledger::LedgerLocation {
        bucket: args.ledger_bucket.clone(),
        prefix: ingest::ledger::DEFAULT_LEDGER_PREFIX.to_owned(),
    };
    let set_aside = read_reports(&stack.clients.s3, &ledger, &run_id).await?;
    let (objects_set_aside, rows_set_aside, run_rows) =
        ledger_figures(stack, args, &ledger, &run_id).await?;
    let rows = stack.activity.rows.load(Ordering::Relaxed) - base_rows;
    Ok(RunReport {
        reports: format!("s3://{}/{}", ledger.bucket, ledger.reports_prefix(&run_id)),
        set_aside,
        executions,
        status,
        failure,
        failed_items,
        output,
        elapsed: started.elapsed(),
        // Interrupted workers report nothing; their checkpoints in the ledger do.
        rows: if interrupted {
            rows.max(run_rows)
        } else {
            rows
        },
        objects: stack.activity.objects.load(Ordering::Relaxed) - base_objects,
        retries: stack.activity.retries.load(Ordering::Relaxed) - base_retries,
        recovery,
        interrupted,
        objects_set_aside,
        rows_set_aside,
        duplicate_bound: duplicate_bound(args),
    })
}

/// Objects set aside and rows set aside under the run's prefix, as the ledger records them,
/// and the rows it records for `run_id`'s objects.
async fn ledger_figures(
    stack: &LocalStack,
    args: &RunArgs,
    location: &ingest::ledger::LedgerLocation,
    run_id: &str,
) -> anyhow::Result<(u64, u64, u64)> {
    let entries = ingest::ledger::Ledger::new(&stack.clients.s3, location)
        .entries(&args.bucket, &args.prefix)
        .await
        .context("reading the ledger")?;
    Ok(entries
        .iter()
        .filter(|s| s.entry.key.ends_with(".csv"))
        .fold((0, 0, 0), |(objects, rows, run_rows), s| {
            let aside = s.entry.state == ingest::ledger::EntryState::SetAside;
            let ours = if s.entry.run_id == run_id {
                s.entry.rows
            } else {
                0
            };
            (
                objects + u64::from(aside),
                rows + s.entry.bad_rows,
                run_rows + ours,
            )
        }))
}

fn progress_bar(show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Uploads at once: the local S3 spends most of a small PUT creating files, so uploads one
/// after another leave the cores idle.
const UPLOADS_AT_ONCE: usize = 16;

/// Uploads `--source` (or, into an empty bucket, the sample data set); returns the count.
pub async fn fill_bucket(stack: &LocalStack, args: &RunArgs) -> anyhow::Result<usize> {
    use futures::{StreamExt as _, TryStreamExt as _};
    let s3 = &stack.clients.s3;
    let upload = |key: String, body: ByteStream, what: String| async move {
        s3.put_object()
            .bucket(&args.bucket)
            .key(&key)
            .body(body)
            .send()
            .await
            .with_context(|| format!("uploading {what} to s3://{}/{key}", args.bucket))
            .map(|_| ())
    };
    if let Some(dir) = &args.source {
        let files = files_under(dir)?;
        if files.is_empty() {
            bail!("--source {}: no files found", dir.display());
        }
        futures::stream::iter(&files)
            .map(|(path, relative)| async move {
                let body = ByteStream::from_path(path)
                    .await
                    .with_context(|| format!("reading {}", path.display()))?;
                let key = format!("{}{relative}", args.prefix);
                upload(key, body, path.display().to_string()).await
            })
            .buffer_unordered(UPLOADS_AT_ONCE)
            .try_collect::<()>()
            .await?;
        return Ok(files.len());
    }
    let listed = s3
        .list_objects_v2()
        .bucket(&args.bucket)
        .prefix(&args.prefix)
        .max_keys(1)
        .send()
        .await
        .with_context(|| format!("listing s3://{}", args.bucket))?;
    if listed.key_count().unwrap_or(0) > 0 {
        return Ok(0);
    }
    let files = sample::files();
    futures::stream::iter(&files)
        .map(|(key, first, rows)| {
            let body = ByteStream::from(sample::content(*first, *rows));
            upload(
                format!("{}{key}", args.prefix),
                body,
                format!("sample object {key}"),
            )
        })
        .buffer_unordered(UPLOADS_AT_ONCE)
        .try_collect::<()>()
        .await?;
    Ok(files.len())
}

/// Every file under `dir`, with its path relative to `dir` using `/`.
pub(crate) fn files_under(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("reading directory {}", current.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .expect("walked from dir")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((path, relative));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Every entry of a run's reports, in key and line order.
async fn read_reports(
    s3: &aws_sdk_s3::Client,
    ledger: &ingest::ledger::LedgerLocation,
    run_id: &str,
) -> anyhow::Result<Vec<SetAside>> {
    let prefix = ledger.reports_prefix(run_id);
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(&ledger.bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("listing s3://{}/{prefix}", ledger.bucket))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    let mut out = Vec::new();
    for report_key in keys {
        let body = s3
            .get_object()
            .bucket(&ledger.bucket)
            .key(&report_key)
            .send()
            .await
            .with_context(|| format!("reading report s3://{}/{report_key}", ledger.bucket))?
            .body
            .collect()
            .await
            .with_context(|| format!("reading report s3://{}/{report_key}", ledger.bucket))?
            .into_bytes();
        let report: ingest::ledger::ObjectReport = serde_json::from_slice(&body)
            .with_context(|| format!("report s3://{}/{report_key}", ledger.bucket))?;
        let entry = |row: &ingest::worker::BadRowReport, object: bool| SetAside {
            key: report.key.clone(),
            line: row.line,
            reason: row.reason.clone(),
            object,
            report: report_key.clone(),
        };
        out.extend(report.bad_rows.iter().map(|row| entry(row, false)));
        out.extend(report.stopped_at.iter().map(|row| entry(row, true)));
    }
    out.sort_by(|a, b| (&a.key, a.line).cmp(&(&b.key, b.line)));
    Ok(out)
}

/// `run` from the command line: prints the summary and returns the exit code (see
/// [`ExitStatus`]). Ctrl-C (or SIGTERM) stops the execution, releases its claims and prints
/// the summary so far.
#[allow(clippy::print_stdout, reason = "the summary is the command's output")]
pub async fn run(args: RunArgs) -> anyhow::Result<ExitStatus> {
    args.check()?;
    let _lock = crate::recovery::lock_data_dir(&args.data_dir)?;
    let stack = LocalStack::start(args.stack_options(), &args.names()).await?;
    let console = if args.console {
        let sources = crate::console::Sources::of(&stack, &args.ledger_bucket).await;
        let console =
            crate::console::start(args.stack_options().bind, args.console_port, sources).await;
        match console {
            Ok(console) => {
                eprintln!("console: {}", console.url());
                Some(console)
            }
            Err(error) => {
                stack.shutdown().await;
                return Err(error);
            }
        }
    } else {
        None
    };
    let text = args.output == crate::output::OutputFormat::Text;
    let show_progress = text && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = run_until(&stack, &args, show_progress, interrupted()).await;
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            if let Some(console) = console {
                console.shutdown().await;
            }
            stack.shutdown().await;
            return Err(error);
        }
    };
    let status = ExitStatus::of(&report, args.allow_empty);
    if text {
        print!("{}", summary(&report));
        if status != ExitStatus::Passed {
            println!("{}", status.explain());
        }
    } else {
        println!("{:#}", crate::summary::summary_json(&report, status));
    }
    if let Some(console) = console {
        // The run is over; the console stays for looking at it until the user is done.
        std::io::Write::flush(&mut std::io::stdout())?;
        let stop = interrupted();
        eprintln!("console: still serving {} until Ctrl-C", console.url());
        stop.await;
        console.shutdown().await;
    }
    stack.shutdown().await;
    Ok(status)
}

/// Listens for Ctrl-C and SIGTERM from now on: their handlers are installed before this
/// returns, so a signal sent right after (by a service manager, or a test that has just seen
/// the endpoints printed) is not missed. The future completes at the first of them.
pub fn interrupted() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let listeners = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::interrupt())
            .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
            .ok()
    };
    async move {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = listeners {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
