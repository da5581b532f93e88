//! Section 3: the whole local workflow over the sample data set at a channel quota, paced at
//! that quota: how much of the quota it uses, and whether it was ever throttled.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use clap::{Args, Parser};
use s3_ingest::run::{RunArgs, run_on};
use s3_ingest::sample;
use s3_ingest::stack::LocalStack;

use crate::Bench;
use crate::history;
use crate::report::{Check, Section, Table, Verdict, thousands};

/// Messages per second achieved ÷ quota must reach this.
pub const TARGET_USE: f64 = 0.95;

/// Options of the quota section.
#[derive(Debug, Clone, Args)]
pub struct QuotaArgs {
    /// Channel quotas in messages/s, comma-separated; each run is paced at its quota.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u32, 100_000])]
    pub quotas: Vec<u32>,
    /// Objects ingested at once (the Distributed Map's MaxConcurrency).
    #[arg(long, default_value_t = 10)]
    pub concurrency: u32,
    /// How many of the sample data set's 100 objects to ingest (fewer: a quicker run,
    /// validated by row count instead of the sample's distinct counts). Each worker is paced
    /// at the quota ÷ the workers the page runs at once.
    #[arg(long, default_value_t = 100)]
    pub sample_objects: usize,
    /// Shortest time a run should spend ingesting at its quota: the objects are ingested as
    /// many times over (copies under `copy-1/`, `copy-2/`, …) as that takes. At 100,000
    /// messages/s the sample alone lasts about 0.6 s, where one worker's start-up is 5% of
    /// the figure; the quota's pacing is what is measured here.
    #[arg(long, default_value_t = 5.0)]
    pub min_ingest_seconds: f64,
}

impl QuotaArgs {
    /// How many of the sample's objects a run ingests (each copy holds them all).
    fn objects(&self) -> usize {
        self.sample_objects.min(sample::files().len())
    }

    /// How many copies of the objects a run at `quota` ingests, given their `rows`.
    fn copies(&self, quota: u32, rows: u64) -> usize {
        let wanted = f64::from(quota) * self.min_ingest_seconds;
        ((wanted / rows.max(1) as f64).ceil() as usize).max(1)
    }
}

/// `s3-ingest run`'s options, parsed as the command line would give them, so that every
/// option the benchmark does not set keeps its default.
#[derive(Debug, Parser)]
struct RunCommand {
    #[command(flatten)]
    run: RunArgs,
}

/// Writes the first `count` objects of the sample data set under `dir`; returns their rows.
pub fn write_sample_subset(dir: &Path, count: usize) -> anyhow::Result<u64> {
    let mut total = 0;
    for (key, first, rows) in sample::files().into_iter().take(count) {
        let path = dir.join(&key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        writeln!(out, "{}", sample::HEADER)?;
        for rowid in first..first + rows {
            writeln!(out, "{}", sample::row(rowid))?;
        }
        out.flush()?;
        total += rows;
    }
    Ok(total)
}

/// Writes `copies` copies of the first `count` sample objects under `dir` (`copy-1/`, …);
/// returns their rows.
fn write_sample_copies(dir: &Path, count: usize, copies: usize) -> anyhow::Result<u64> {
    (1..=copies)
        .map(|copy| write_sample_subset(&dir.join(format!("copy-{copy}")), count))
        .sum()
}

/// One run's figures.
struct QuotaRun {
    quota: u32,
    rows: u64,
    ingest_seconds: f64,
    wall_seconds: f64,
    retries: u64,
    status: String,
    failure: Option<String>,
    passed: bool,
    max_events: usize,
}

async fn run_one(
    bench: &Bench,
    args: &QuotaArgs,
    quota: u32,
    copies: usize,
) -> anyhow::Result<QuotaRun> {
    let dir = bench.section_dir(&format!("quota-{quota}"))?;
    let data_dir = dir.join("stack");
    let quota_text = quota.to_string();
    let concurrency = args.concurrency.to_string();
    let data_dir_text = data_dir.to_string_lossy().into_owned();
    let mut argv = vec![
        "run",
        "--data-dir",
        data_dir_text.as_str(),
        "--rate",
        quota_text.as_str(),
        "--channel-quota",
        quota_text.as_str(),
        "--concurrency",
        concurrency.as_str(),
    ];
    let source = dir.join("source");
    let source_text = source.to_string_lossy().into_owned();
    let count = args.objects();
    if count < sample::files().len() || copies > 1 {
        write_sample_copies(&source, count, copies)?;
        argv.extend(["--source", source_text.as_str()]);
    }
    let run_args = RunCommand::try_parse_from(argv)
        .context("building the run's options")?
        .run;
    let stack = LocalStack::start(run_args.stack_options(), &run_args.names()).await?;
    let result = async {
        let report = run_on(&stack, &run_args, false).await?;
        let (_, ingesting) = history::time_in(&stack, &report.executions, "Map", None)?;
        let (_, max_events) = history::top_level_events(&stack);
        anyhow::Ok(QuotaRun {
            quota,
            rows: report.rows,
            ingest_seconds: ingesting.as_secs_f64(),
            wall_seconds: report.elapsed.as_secs_f64(),
            retries: report.retries,
            status: report.status.clone(),
            failure: report
                .failure
                .as_ref()
                .map(|(error, cause)| format!("{error}: {cause}")),
            passed: report.passed(),
            max_events,
        })
    }
    .await;
    stack.shutdown().await;
    bench.clean(&dir);
    result
}

/// Rows of the first `count` sample objects.
fn subset_rows(count: usize) -> u64 {
    sample::files()
        .into_iter()
        .take(count)
        .map(|(_, _, rows)| rows)
        .sum()
}

/// Runs the section.
pub async fn run(bench: &Bench, args: &QuotaArgs) -> anyhow::Result<Section> {
    let mut table = Table::new(&["quota", "figure", "measured", "target", "verdict"]);
    let mut checks = Vec::new();
    let objects = args.objects();
    let rows = subset_rows(objects);
    for &quota in &args.quotas {
        let copies = args.copies(quota, rows);
        crate::progress(format!(
            "quota: the workflow over {copies} × {objects} sample objects at {quota} messages/s, concurrency {}",
            args.concurrency
        ));
        let run = run_one(bench, args, quota, copies).await?;
        let q = thousands(f64::from(run.quota));
        let ingest_rate = run.rows as f64 / run.ingest_seconds.max(1e-9);
        let used = ingest_rate / f64::from(run.quota);
        let use_verdict = Verdict::of(used >= TARGET_USE && run.passed);
        let throttle_verdict = Verdict::of(run.retries == 0);
        let use_text = format!(
            "{used:.3} ({} msg/s: {} rows of {} objects in {:.2} s)",
            thousands(ingest_rate),
            thousands(run.rows as f64),
            thousands((copies * objects) as f64),
            run.ingest_seconds
        );
        table.row(vec![
            q.clone(),
            "messages/s while ingesting ÷ quota".to_owned(),
            use_text.clone(),
            format!("≥ {TARGET_USE}"),
            use_verdict.cell(),
        ]);
        table.row(vec![
            q.clone(),
            "ThrottlingException answers (worker re-sends)".to_owned(),
            run.retries.to_string(),
            "0".to_owned(),
            throttle_verdict.cell(),
        ]);
        let wall_rate = run.rows as f64 / run.wall_seconds.max(1e-9);
        table.row(vec![
            q.clone(),
            "whole run: rows ÷ wall time from StartExecution to the end (listing, validation and its Wait included)".to_owned(),
            format!(
                "{:.3} of the quota ({} msg/s, {:.2} s)",
                wall_rate / f64::from(run.quota),
                thousands(wall_rate),
                run.wall_seconds
            ),
            "—".to_owned(),
            Verdict::Info.cell(),
        ]);
        table.row(vec![
            q.clone(),
            "execution status, validation".to_owned(),
            match &run.failure {
                None => format!(
                    "{}, {}",
                    run.status,
                    if run.passed { "passed" } else { "NOT passed" }
                ),
                Some(failure) => format!("{} ({failure})", run.status),
            },
            "SUCCEEDED, passed".to_owned(),
            Verdict::of(run.passed).cell(),
        ]);
        table.row(vec![
            q.clone(),
            "largest execution history".to_owned(),
            format!("{} events", thousands(run.max_events as f64)),
            "≤ 25,000".to_owned(),
            Verdict::of(run.max_events <= 25_000).cell(),
        ]);
        checks.push(Check {
            figure: format!("quota use at {q} messages/s (validated run)"),
            value: format!("{used:.3}"),
            target: format!("≥ {TARGET_USE}"),
            verdict: use_verdict,
        });
        checks.push(Check {
            figure: format!("ThrottlingException at {q} messages/s"),
            value: run.retries.to_string(),
            target: "0".to_owned(),
            verdict: throttle_verdict,
        });
    }
    Ok(Section {
        title: "3. Quota use".to_owned(),
        intro: format!(
            "`s3_ingest::run::run_on`, the code of `s3-ingest run`, over {objects} objects of \
             the sample data set ({} rows), each quota on a fresh stack: \
             `--channel-quota Q --rate Q --concurrency {}`. So that the figure measures the \
             pacing rather than one worker's start-up, a run ingests the objects as many times \
             over (copies under `copy-1/`, `copy-2/`, …, validated object by object against the \
             ledger) as it takes to spend at least {} s ingesting at its quota. Messages/s while ingesting = rows \
             acknowledged ÷ the time the executions spent in the Distributed Map state \
             (from its `MapStateEntered` to its `MapStateExited` event). The local IoT \
             Analytics answers `ThrottlingException` (HTTP 429) when a request would exceed the \
             channel's quota; with no faults injected, the workers re-send only after such an \
             answer, so their re-send count is the number of throttled requests.",
            thousands(rows as f64),
            args.concurrency,
            args.min_ingest_seconds
        ),
        table,
        notes: Vec::new(),
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_options_keep_their_defaults() {
        let args = RunCommand::try_parse_from(["run", "--rate", "1000", "--channel-quota", "1000"])
            .unwrap()
            .run;
        assert_eq!(args.rate, 1000);
        assert_eq!(args.channel_quota, 1000);
        let defaults = RunCommand::try_parse_from(["run"]).unwrap().run;
        assert_eq!(args.concurrency, defaults.concurrency);
        assert_eq!(args.checkpoint_every, defaults.checkpoint_every);
        assert!(args.source.is_none());
    }

    #[test]
    fn a_fast_quota_ingests_the_sample_as_many_times_as_fills_the_minimum_time() {
        let args = QuotaArgs {
            quotas: vec![],
            concurrency: 10,
            sample_objects: 100,
            min_ingest_seconds: 5.0,
        };
        assert_eq!(args.copies(1_000, 56_570), 1);
        assert_eq!(args.copies(100_000, 56_570), 9);
        assert_eq!(args.copies(100_000, 0), 500_000);
    }

    #[test]
    fn copies_of_the_sample_sit_under_their_own_folders_and_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let rows = write_sample_copies(dir.path(), 2, 3).unwrap();
        assert_eq!(rows, 3 * subset_rows(2));
        assert!(dir.path().join("copy-3").join(sample::key(1, 2)).exists());
        assert!(!dir.path().join("copy-4").exists());
    }

    #[test]
    fn a_subset_of_the_sample_holds_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let rows = write_sample_subset(dir.path(), 3).unwrap();
        let expected: u64 = sample::files().iter().take(3).map(|f| f.2).sum();
        assert_eq!(rows, expected);
        assert!(dir.path().join(sample::key(1, 3)).exists());
        assert!(!dir.path().join(sample::key(1, 4)).exists());
    }
}
