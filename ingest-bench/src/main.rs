//! `ingest-bench`: the workflow's benchmarks side by side with a classic Python worker, on
//! this machine, through the local stack. Prints one Markdown table per section and writes
//! them, with the machine's description, to `ingest-bench/RESULTS.md`. Kept out of the test suite:
//! run it with `cargo run --release -p ingest-bench -- all`.

mod baseline;
mod cost;
mod cost_model;
mod data;
mod history;
mod machine;
mod memory;
mod prices;
mod quota;
mod report;
mod runtime_api;
mod sample_run;
mod scale;
mod small_objects;
mod startup;
mod throughput;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::baseline::Baseline;
use crate::cost::CostArgs;
use crate::memory::{MemoryArgs, WorkerChildArgs};
use crate::quota::QuotaArgs;
use crate::report::{Check, Section, Table, Verdict};
use crate::scale::ScaleArgs;
use crate::small_objects::SmallObjectsArgs;
use crate::startup::StartupArgs;
use crate::throughput::ThroughputArgs;

/// The allocator the functions and `s3-ingest` are built with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LONG_ABOUT: &str = "\
Benchmarks of the S3 → IoT Analytics workflow on this machine, through the local stack
(embedded S3, IoT Analytics and Step Functions on loopback), side by side with a baseline
Python worker in the classic style (ingest-bench/baseline/worker.py):

  throughput  rows/s from S3 object to acknowledged BatchPutMessage, 1/10/100 MB objects,
              the Rust worker (median of 5 runs) and the baseline (targets: ≥ 10× the
              baseline; ≥ 400,000 rows/s from 100 MB)
  memory      the worker's peak RSS on a 1 GB object, in a process of its own (target:
              ≤ 64 MB), the baseline's beside it
  quota       the whole workflow over the sample data set at 1,000 and 100,000 messages/s,
              concurrency 10, the sample ingested as many times over as fills 5 s at the
              quota (target: ≥ 0.95 of the quota, no ThrottlingException)
  scale       a bucket of 200,000 small objects: pages listed per second, and every
              execution's history (target: ≤ 25,000 events)
  startup     each function's release binary: start to handler ready, and its size
  small-objects  `s3-ingest run` (release binary, default flags) over the sample data set
              (target: ≤ 0.6 s wall); then the sample data set and 10,000 objects of 20 KB
              through the whole workflow: wall time, objects/s, and per object S3 requests,
              state transitions, Express children, Lambda invocations and BatchPutMessage
              requests
  cost        the cost on AWS (us-east-1 prices) of 100,000 objects of 20 KB and 1,000 of
              100 MB, before (every object alone in a Standard child) and after (small
              objects batched through Express children), from local runs' counts (target:
              ≥ 20× cheaper for the small objects)

`all` (the default) runs every section and writes ingest-bench/RESULTS.md. Build it in release
mode: debug figures are not representative. The baseline needs boto3 1.40.40:
  python3 -m venv ingest-bench/.venv && ingest-bench/.venv/bin/pip install -r ingest-bench/baseline/requirements.txt";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "ingest-bench", version, about = "Benchmarks of the workflow beside a classic Python worker", long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Write the results (Markdown, with the machine's description) here. Default for `all`:
    /// ingest-bench/RESULTS.md; a single section writes only when this is given.
    #[arg(long, global = true, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Python interpreter for the baseline (default: ingest-bench/.venv/bin/python if present, else
    /// python3).
    #[arg(long, global = true, value_name = "PYTHON")]
    python: Option<PathBuf>,
    /// Skip the Python baseline.
    #[arg(long, global = true)]
    no_baseline: bool,
    /// Where the stacks keep their data (default: a temporary directory). Objects of up to
    /// 1 GB and the messages ingested from them are written here.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep each section's data instead of deleting it once every section has run. (It is
    /// not deleted between sections: on a file system without a journal, ext4 skips inodes
    /// freed in the last minutes whenever it creates a file, so for minutes after a section
    /// deleted 200,000 objects every file the next one creates costs several times as much,
    /// and that section would measure the deletion. `all` needs about 10 GB.)
    #[arg(long, global = true)]
    keep_data: bool,
    /// Where the functions' release binaries are (`lambda/<name>/bootstrap` from `cargo
    /// lambda build --release`, else `release/<name>`); default: $CARGO_TARGET_DIR, else the
    /// workspace's `target/`.
    #[arg(long, global = true, value_name = "DIR")]
    target_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every section in order, then writes the results file (the default command).
    All(AllArgs),
    /// Worker throughput beside the baseline.
    Throughput(ThroughputArgs),
    /// Peak RSS of the worker alone, beside the baseline's.
    Memory(MemoryArgs),
    /// Quota use of the whole workflow over the sample data set.
    Quota(QuotaArgs),
    /// Listing and history sizes over a bucket of many small objects.
    Scale(ScaleArgs),
    /// Start-up time and size of each function's release binary.
    Startup(StartupArgs),
    /// Many small objects through the whole workflow: time and requests per object.
    SmallObjects(SmallObjectsArgs),
    /// Cost on AWS before and after batching small objects through Express children.
    Cost(CostArgs),
    /// Runs the worker alone on one object and prints its peak RSS (used by `memory`).
    #[command(hide = true)]
    WorkerChild(WorkerChildArgs),
}

/// The options of every section, for `all`.
#[derive(Debug, Clone, Parser)]
struct AllArgs {
    #[command(flatten)]
    throughput: ThroughputArgs,
    #[command(flatten)]
    memory: MemoryArgs,
    #[command(flatten)]
    quota: QuotaArgs,
    #[command(flatten)]
    scale: ScaleArgs,
    #[command(flatten)]
    startup: StartupArgs,
    #[command(flatten)]
    small_objects: SmallObjectsArgs,
    #[command(flatten)]
    cost: CostArgs,
}

/// What every section shares: where data goes, and the baseline.
#[derive(Debug)]
pub struct Bench {
    data_root: PathBuf,
    _temporary: Option<tempfile::TempDir>,
    keep: bool,
    /// Section directories to delete when the bench ends (see `--keep-data`).
    finished: std::sync::Mutex<Vec<PathBuf>>,
    /// Where the functions' release binaries are looked for.
    pub target_dir: PathBuf,
    /// The baseline's interpreter, or why it is not run.
    pub baseline: Result<Baseline, String>,
}

impl Bench {
    /// A fresh directory for one measured run's data, handed out once the disk has written
    /// back what earlier runs left dirty: a run timed behind another's writeback (a 1 GB
    /// object, 200,000 small ones) measures the disk's backlog, not the run, since the local
    /// services' syncs wait for it.
    pub fn section_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.data_root.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        settle_disk();
        Ok(dir)
    }

    /// Marks a section's data for deletion when every section has run (unless
    /// `--keep-data`): deleting it now would slow down the next section's file creation.
    pub fn clean(&self, dir: &Path) {
        if !self.keep {
            self.finished
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(dir.to_path_buf());
        }
    }

    /// Deletes the data of every finished section.
    fn delete_finished(&self) {
        let dirs = std::mem::take(&mut *self.finished.lock().unwrap_or_else(|p| p.into_inner()));
        if !dirs.is_empty() {
            progress(format!("deleting the data of {} sections", dirs.len()));
        }
        for dir in dirs {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                progress(format!("could not delete {}: {e}", dir.display()));
            }
        }
    }
}

/// Waits until the kernel has written every dirty page back (`sync`). A failure to run it
/// only costs accuracy, so it is reported and the run goes on.
pub fn settle_disk() {
    let started = Instant::now();
    match std::process::Command::new("sync").status() {
        Ok(status) if status.success() => {
            let waited = started.elapsed();
            if waited > std::time::Duration::from_millis(500) {
                progress(format!(
                    "waited {:.1} s for the disk to write back earlier runs' data",
                    waited.as_secs_f64()
                ));
            }
        }
        Ok(status) => progress(format!(
            "sync exited with {status}: timings may include writeback"
        )),
        Err(e) => progress(format!(
            "sync could not run ({e}): timings may include writeback"
        )),
    }
}

/// A progress line on standard error (standard output carries the tables).
pub fn progress(message: String) {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!(
        "[ingest-bench {:>7.1} s] {message}",
        start.elapsed().as_secs_f64()
    );
}

/// A section that could not finish: its error in place of its figures.
fn failed(title: &str, error: &anyhow::Error) -> Section {
    let mut table = Table::new(&["figure", "measured", "target", "verdict"]);
    let message = format!("{error:#}");
    table.row(vec![
        "error".to_owned(),
        message.clone(),
        "—".to_owned(),
        Verdict::Fail.cell(),
    ]);
    Section {
        title: title.to_owned(),
        intro: String::new(),
        table,
        notes: Vec::new(),
        checks: vec![Check {
            figure: format!("{title}: ran to the end"),
            value: message,
            target: "no error".to_owned(),
            verdict: Verdict::Fail,
        }],
    }
}

/// Which sections to run.
enum Plan {
    Throughput(ThroughputArgs),
    Memory(MemoryArgs),
    Quota(QuotaArgs),
    Scale(ScaleArgs),
    Startup(StartupArgs),
    SmallObjects(SmallObjectsArgs),
    Cost(CostArgs),
}

impl Plan {
    fn title(&self) -> &'static str {
        match self {
            Self::Throughput(_) => "1. Worker throughput",
            Self::Memory(_) => "2. Memory",
            Self::Quota(_) => "3. Quota use",
            Self::Scale(_) => "4. Scale",
            Self::Startup(_) => "5. Start-up",
            Self::SmallObjects(_) => "6. Small objects",
            Self::Cost(_) => "7. Cost on AWS",
        }
    }

    fn uses_baseline(&self) -> bool {
        matches!(self, Self::Throughput(_) | Self::Memory(_))
    }

    async fn run(&self, bench: &Bench) -> anyhow::Result<Section> {
        match self {
            Self::Throughput(args) => throughput::run(bench, args).await,
            Self::Memory(args) => memory::run(bench, args).await,
            Self::Quota(args) => quota::run(bench, args).await,
            Self::Scale(args) => scale::run(bench, args).await,
            Self::Startup(args) => startup::run(bench, args).await,
            Self::SmallObjects(args) => small_objects::run(bench, args).await,
            Self::Cost(args) => cost::run(bench, args).await,
        }
    }
}

#[tokio::main]
#[allow(clippy::print_stdout, reason = "the tables are the command's output")]
async fn main() -> ExitCode {
    iotanalytics_service::memory::disable_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr's reader gone, as in `| head`) is dropped;
        // tracing-subscriber would otherwise report it with eprintln!, which panics there and
        // takes down whichever task was logging.
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::All(AllArgs::parse_from(["all"])));
    let (plans, default_out) = match command {
        Command::WorkerChild(args) => {
            return match memory::worker_child(&args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("worker-child: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::All(all) => (
            vec![
                Plan::Throughput(all.throughput),
                Plan::Memory(all.memory),
                Plan::Quota(all.quota),
                Plan::Scale(all.scale),
                Plan::Startup(all.startup),
                Plan::SmallObjects(all.small_objects),
                Plan::Cost(all.cost),
            ],
            Some(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/RESULTS.md"
            ))),
        ),
        Command::Throughput(args) => (vec![Plan::Throughput(args)], None),
        Command::Memory(args) => (vec![Plan::Memory(args)], None),
        Command::Quota(args) => (vec![Plan::Quota(args)], None),
        Command::Scale(args) => (vec![Plan::Scale(args)], None),
        Command::Startup(args) => (vec![Plan::Startup(args)], None),
        Command::SmallObjects(args) => (vec![Plan::SmallObjects(args)], None),
        Command::Cost(args) => (vec![Plan::Cost(args)], None),
    };
    let out = cli.out.clone().or(default_out);

    if cfg!(debug_assertions) {
        progress(
            "this is a debug build: its figures are not representative (cargo run --release)"
                .to_owned(),
        );
    }
    let baseline = if cli.no_baseline {
        Err("--no-baseline".to_owned())
    } else if plans.iter().any(Plan::uses_baseline) {
        Baseline::check(Baseline::interpreter(cli.python.as_deref()))
            .await
            .map_err(|e| format!("{e:#}"))
    } else {
        Err("not needed".to_owned())
    };
    if let Err(why) = &baseline
        && plans.iter().any(Plan::uses_baseline)
    {
        progress(format!("the baseline will not run: {why}"));
    }
    let python = baseline.as_ref().ok().map(|b| b.version.clone());
    let (data_root, temporary) = match &cli.data_dir {
        Some(dir) => (dir.clone(), None),
        None => match tempfile::Builder::new().prefix("ingest-bench-").tempdir() {
            Ok(dir) => (dir.path().to_path_buf(), Some(dir)),
            Err(e) => {
                eprintln!("ingest-bench: creating a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let bench = Bench {
        data_root,
        _temporary: temporary,
        keep: cli.keep_data,
        finished: std::sync::Mutex::new(Vec::new()),
        target_dir: startup::target_dir(cli.target_dir.as_deref()),
        baseline,
    };

    let mut sections = Vec::new();
    let mut errors = 0;
    for plan in &plans {
        progress(format!("section {}", plan.title()));
        let section = match plan.run(&bench).await {
            Ok(section) => section,
            Err(e) => {
                errors += 1;
                progress(format!("{} failed: {e:#}", plan.title()));
                failed(plan.title(), &e)
            }
        };
        println!("{}", section.markdown());
        sections.push(section);
    }
    bench.delete_finished();
    let machine = machine::describe(python);
    if plans.len() > 1 {
        println!("## Targets\n\n{}", report::summary(&sections).markdown());
        println!("## Machine\n\n{}", machine.markdown());
    }
    if let Some(out) = out {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let command = format!("ingest-bench {}", args.join(" "));
        let text = report::document(&machine, command.trim_end(), &sections);
        match report::write(&out, &text) {
            Ok(()) => progress(format!("results written to {}", out.display())),
            Err(e) => {
                eprintln!("ingest-bench: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn all_takes_every_sections_defaults() {
        let all = AllArgs::parse_from(["all"]);
        assert_eq!(all.throughput.sizes_mb, vec![1, 10, 100]);
        assert_eq!(all.memory.memory_mb, 1000);
        assert_eq!(all.quota.quotas, vec![1_000, 100_000]);
        assert_eq!(all.scale.objects, 200_000);
        assert_eq!(all.startup.runs, 5);
        assert_eq!(all.small_objects.small_objects, 10_000);
        assert_eq!(all.cost.cost_small_objects, 10_000);
        assert_eq!(all.cost.cost_large_mb, 100);
    }

    #[test]
    fn sections_take_their_sizes() {
        let cli = Cli::parse_from(["ingest-bench", "throughput", "--sizes-mb", "1,10"]);
        let Some(Command::Throughput(args)) = cli.command else {
            panic!("throughput expected");
        };
        assert_eq!(args.sizes_mb, vec![1, 10]);
        let cli = Cli::parse_from([
            "ingest-bench",
            "scale",
            "--objects",
            "2000",
            "--out",
            "x.md",
        ]);
        assert!(matches!(
            cli.command,
            Some(Command::Scale(ScaleArgs { objects: 2000, .. }))
        ));
        assert_eq!(cli.out, Some(PathBuf::from("x.md")));
    }
}
