//! Section 1: rows per second from S3 object to acknowledged BatchPutMessage, the Rust worker
//! (in-process, through the local stack) beside the Python baseline (same endpoints).

use std::time::Instant;

use anyhow::{Context as _, ensure};
use clap::Args;
use s3_ingest::stack::{LocalStack, StackOptions, WorkflowNames, ensure_iotanalytics};

use crate::Bench;
use crate::data::{self, MB};
use crate::report::{Check, Section, Table, Verdict, thousands};

/// The baseline must be beaten this many times over.
pub const TARGET_RATIO: f64 = 10.0;

/// Rows per second the worker must reach on objects of [`TARGET_RATE_FROM_MB`] and more,
/// whatever the baseline makes.
pub const TARGET_ROWS_PER_SECOND: f64 = 400_000.0;

/// The object size from which [`TARGET_ROWS_PER_SECOND`] applies: smaller objects spend a
/// larger share of their time on the first and last batches.
pub const TARGET_RATE_FROM_MB: u64 = 100;

/// Options of the throughput section.
#[derive(Debug, Clone, Args)]
pub struct ThroughputArgs {
    /// Object sizes in MB (10^6 bytes), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 10, 100])]
    pub sizes_mb: Vec<u64>,
    /// Batches the Rust worker keeps in flight (`maxInFlight`); default: the worker
    /// function's own default.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Runs of the Rust worker on each object; the table gives their median (the slowest and
    /// fastest runs beside it). One run of ten seconds on a shared machine moves by ±15%
    /// from one minute to the next. The baseline runs once: it takes ten times as long.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub worker_runs: u64,
}

/// One run of the Rust worker: its time and re-sends.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WorkerRun {
    rows_per_second: f64,
    seconds: f64,
    retries: u64,
}

/// Ingests the object of `input` once, on the runtime's threads as the local stack runs an
/// invocation, and checks that every row was acknowledged.
async fn worker_run(
    stack: &LocalStack,
    input: &ingest::worker::WorkerInput,
    rows: u64,
) -> anyhow::Result<WorkerRun> {
    let started = Instant::now();
    let clients = stack.clients.clone();
    let task_input = input.clone();
    let output = tokio::spawn(async move {
        ingest::worker::ingest_object(&clients, &task_input, data::far_deadline()).await
    })
    .await
    .context("the worker's task")?
    .with_context(|| format!("the worker on s3://{}/{}", input.bucket, input.key))?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        output.done && output.rows == rows,
        "the worker acknowledged {} of {rows} rows (done: {})",
        output.rows,
        output.done
    );
    Ok(WorkerRun {
        rows_per_second: rows as f64 / seconds,
        seconds,
        retries: output.retries,
    })
}

/// The median run's rate, and the table cell: the median run, then every run's rate when
/// there were several.
fn describe_runs(runs: &mut [WorkerRun]) -> (f64, String) {
    runs.sort_by(|a, b| a.rows_per_second.total_cmp(&b.rows_per_second));
    // The lower median when the count is even: never the better of two middle runs.
    let median = runs[(runs.len() - 1) / 2];
    let mut cell = format!(
        "{} rows/s ({:.2} s, {} re-sends)",
        thousands(median.rows_per_second),
        median.seconds,
        median.retries
    );
    if runs.len() > 1 {
        let all: Vec<String> = runs.iter().map(|r| thousands(r.rows_per_second)).collect();
        cell.push_str(&format!(
            "; median of {} runs: {}",
            runs.len(),
            all.join(" / ")
        ));
    }
    (median.rows_per_second, cell)
}

/// The check of the worker's own rate on an object of `size` MB.
fn rate_check(size: u64, rows_per_second: f64) -> Check {
    Check {
        figure: format!("worker throughput, {size} MB object (median run)"),
        value: format!("{} rows/s", thousands(rows_per_second)),
        target: format!("≥ {} rows/s", thousands(TARGET_ROWS_PER_SECOND)),
        verdict: Verdict::of(rows_per_second >= TARGET_ROWS_PER_SECOND),
    }
}

/// Waits for the service's background conversion of sealed segments, so a run does not pay
/// for the one before it.
async fn settle(stack: &LocalStack) {
    let pending = stack.iotanalytics.pending_background_work();
    if pending == 0 {
        return;
    }
    crate::progress(format!(
        "throughput: waiting for the service to convert {pending} sealed segments"
    ));
    if !stack
        .iotanalytics
        .wait_for_background_work(std::time::Duration::from_secs(300))
        .await
    {
        crate::progress(
            "throughput: the conversion is still running after 300 s; going on".to_owned(),
        );
    }
}

fn names(bucket: &str, who: &str) -> WorkflowNames {
    WorkflowNames {
        bucket: bucket.to_owned(),
        channel: format!("bench_{who}_channel"),
        pipeline: format!("bench_{who}_pipeline"),
        datastore: format!("bench_{who}_datastore"),
        dataset: format!("bench_{who}_dataset"),
        ..WorkflowNames::default()
    }
}

/// Runs the section.
pub async fn run(bench: &Bench, args: &ThroughputArgs) -> anyhow::Result<Section> {
    let dir = bench.section_dir("throughput")?;
    let rust = names("bench-throughput", "rust");
    let python = names("bench-throughput", "python");
    let mut options = StackOptions::new(dir.join("stack"));
    options.channel_quota = u32::MAX;
    let stack = LocalStack::start(options, &rust).await?;
    let result = measure(bench, args, &stack, &rust, &python, &dir).await;
    stack.shutdown().await;
    bench.clean(&dir);
    result
}

async fn measure(
    bench: &Bench,
    args: &ThroughputArgs,
    stack: &LocalStack,
    rust: &WorkflowNames,
    python: &WorkflowNames,
    dir: &std::path::Path,
) -> anyhow::Result<Section> {
    ensure_iotanalytics(&stack.clients.iotanalytics, rust).await?;
    ensure_iotanalytics(&stack.clients.iotanalytics, python).await?;
    let env = stack.exports();
    let mut table = Table::new(&[
        "object",
        "rows",
        "Rust worker",
        "Python baseline",
        "ratio",
        "target",
        "verdict",
    ]);
    let mut checks = Vec::new();
    for &size in &args.sizes_mb {
        let key = format!("throughput/{size}mb.csv");
        crate::progress(format!("throughput: generating and uploading {size} MB"));
        let rows = data::put_generated(
            &stack.clients.s3,
            &rust.bucket,
            &key,
            size * MB,
            &dir.join("staging"),
        )
        .await?;

        let mut input = data::worker_input(&rust.bucket, &key, &rust.channel)?;
        if let Some(max_in_flight) = args.max_in_flight {
            input.max_in_flight = max_in_flight;
        }
        let mut runs = Vec::new();
        for run in 1..=args.worker_runs {
            settle(stack).await;
            crate::progress(format!(
                "throughput: Rust worker, {size} MB ({rows} rows), run {run} of {}",
                args.worker_runs
            ));
            runs.push(worker_run(stack, &input, rows).await?);
        }
        let (rust_rate, rust_cell) = describe_runs(&mut runs);

        let (python_cell, ratio_cell, verdict) = match &bench.baseline {
            Err(why) => (
                format!("not run: {why}"),
                "—".to_owned(),
                Verdict::NotRun("no baseline".to_owned()),
            ),
            Ok(baseline) => {
                settle(stack).await;
                crate::progress(format!("throughput: Python baseline, {size} MB"));
                let run = baseline
                    .run(&env, &python.bucket, &key, &python.channel)
                    .await?;
                ensure!(
                    run.rows == rows,
                    "the baseline sent {} of {rows} rows",
                    run.rows
                );
                let ratio = rust_rate / run.rows_per_second;
                (
                    format!(
                        "{} rows/s ({:.2} s, {} refused entries)",
                        thousands(run.rows_per_second),
                        run.seconds,
                        run.error_entries
                    ),
                    format!("{ratio:.1}×"),
                    Verdict::of(ratio >= TARGET_RATIO),
                )
            }
        };
        if size >= TARGET_RATE_FROM_MB {
            checks.push(rate_check(size, rust_rate));
        }
        checks.push(Check {
            figure: format!("worker throughput ÷ baseline, {size} MB object"),
            value: ratio_cell.clone(),
            target: format!("≥ {TARGET_RATIO:.0}×"),
            verdict: verdict.clone(),
        });
        table.row(vec![
            format!("{size} MB"),
            thousands(rows as f64),
            rust_cell,
            python_cell,
            ratio_cell,
            format!("≥ {TARGET_RATIO:.0}×"),
            verdict.cell(),
        ]);
        let _ = stack
            .clients
            .s3
            .delete_object()
            .bucket(&rust.bucket)
            .key(&key)
            .send()
            .await;
    }
    Ok(Section {
        title: "1. Worker throughput".to_owned(),
        intro: "Rows per second from the S3 object to the last acknowledged BatchPutMessage, \
                through the local stack (embedded S3 and IoT Analytics over HTTP on loopback, \
                durable storage, channel quota unlimited, rate unlimited). The Rust worker is \
                `ingest::worker::ingest_object` with the function's defaults, in the bench's \
                process beside the endpoints, run `--worker-runs` times on each object (the \
                median run is the figure). Every run, the baseline's too, starts once the \
                service has converted the datastore segments earlier runs sealed to Parquet: \
                that conversion waits for ingest to pause, so without the wait a run would \
                share the CPU with the previous run's leftover work. The baseline is \
                `ingest-bench/baseline/worker.py` (boto3, whole object read, \
                `csv.DictReader`, sequential batches of 100) against the same endpoints, on its own \
                channel. Objects are generated in the sample data set's shape \
                (`deviceid,humidity,location,rowid,temp,timestamp`)."
            .to_owned(),
        table,
        notes: Vec::new(),
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rows_per_second: f64) -> WorkerRun {
        WorkerRun {
            rows_per_second,
            seconds: 1.0,
            retries: 0,
        }
    }

    #[test]
    fn the_figure_is_the_median_run_and_every_run_is_listed() {
        let mut runs = [run(300_000.0), run(450_000.0), run(400_000.0)];
        let (rate, cell) = describe_runs(&mut runs);
        assert_eq!(rate, 400_000.0);
        assert!(cell.starts_with("400,000 rows/s"), "{cell}");
        assert!(
            cell.ends_with("median of 3 runs: 300,000 / 400,000 / 450,000"),
            "{cell}"
        );
    }

    #[test]
    fn the_rate_target_is_checked_on_its_own() {
        let slow = rate_check(100, 309_553.0);
        assert_eq!(slow.value, "309,553 rows/s");
        assert_eq!(slow.target, "≥ 400,000 rows/s");
        assert_eq!(slow.verdict, Verdict::Fail);
        assert_eq!(rate_check(100, 400_000.0).verdict, Verdict::Pass);
    }

    #[test]
    fn an_even_count_of_runs_takes_the_slower_middle_run() {
        let mut runs = [
            run(500_000.0),
            run(350_000.0),
            run(380_000.0),
            run(420_000.0),
        ];
        assert_eq!(describe_runs(&mut runs).0, 380_000.0);
        let (rate, cell) = describe_runs(&mut [run(123_456.0)]);
        assert_eq!(rate, 123_456.0);
        assert!(!cell.contains("median"), "{cell}");
    }
}
