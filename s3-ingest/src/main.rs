//! `s3-ingest`: the project's command-line tool. `run` runs the whole workflow locally,
//! `serve` runs the local endpoints that the workflow and any AWS client can use instead of
//! the cloud services, `sample` writes the sample data set, and `start`, `status` and `redrive`
//! drive a deployed (or local) state machine.

mod serve;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use s3_ingest::{control, migrate, run, sample};

/// The allocator the functions are built with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command-line tool of the S3 to IoT Analytics ingest workflow.
///
/// With no AWS account: `s3-ingest run` starts embedded S3, IoT Analytics and Step Functions
/// endpoints, ingests the sample data set with the workflow's state machine and validates it.
#[derive(Debug, Parser)]
#[command(name = "s3-ingest", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the workflow locally: ingest the sample data set (or --source DIR) and validate it.
    ///
    /// After a crash or an interrupt, running it again on the same --data-dir finishes the
    /// earlier run's work: its execution is resumed (same settings) or stopped, and objects
    /// its run still claims are taken over from their checkpoints.
    #[command(after_long_help = s3_ingest::summary::EXIT_CODES, after_help = "Exit codes: 0 passed, 1 failed, 3 set aside, 4 no objects, 130 interrupted (--help for more)")]
    Run(run::RunArgs),
    /// Start the local endpoints and print the shell lines that point clients at them.
    Serve(serve::ServeArgs),
    /// Start an execution of a state machine (deployed, or local with AWS_ENDPOINT_URL_SFN).
    Start(control::StartArgs),
    /// Show an execution's status and its output or error.
    Status(control::ExecutionArgs),
    /// Redrive a failed execution: resume where it failed without redoing finished work.
    Redrive(control::ExecutionArgs),
    /// Recreate AWS IoT Analytics resources in the compatible service, from `aws iotanalytics
    /// describe-*` output or a CloudFormation template.
    ///
    /// Channels, datastores, pipelines and datasets, with their retention, storage, file
    /// format, activities, actions, triggers, delivery rules, versioning and (from templates)
    /// tags. Point it at the service with --endpoint-url or AWS_ENDPOINT_URL_IOTANALYTICS
    /// (`s3-ingest serve` prints it), e.g.
    /// `s3-ingest migrate channel.json datastore.json pipeline.json dataset.json` or
    /// `s3-ingest migrate --dry-run template.yaml`.
    #[command(after_long_help = migrate::AFTER_HELP, after_help = "Exit codes: 0 done, 1 a resource failed or the files could not be read (--help for more)")]
    Migrate(migrate::MigrateArgs),
    /// Write the sample data set (5 folders × 20 CSV files, 56,570 rows) under DIR.
    Sample {
        /// Directory to write into (created if missing).
        dir: PathBuf,
    },
    /// Print a shell completion script, e.g. `s3-ingest completions bash > /etc/bash_completion.d/s3-ingest`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    iotanalytics_service::memory::disable_transparent_huge_pages();
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{}", error_report(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `error: ...` with each cause once on its own line: no backtrace (they are for bugs, not
/// for the input errors and service answers that end a command), and no cause repeated where
/// an error's message already contains its source's (as AWS SDK errors' do).
fn error_report(error: &anyhow::Error) -> String {
    let mut lines: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !lines.iter().any(|line| line.contains(&text)) {
            lines.push(text);
        }
    }
    let mut out = format!("error: {}", lines[0]);
    for line in &lines[1..] {
        out.push_str("\n  caused by: ");
        out.push_str(line);
    }
    out
}

async fn dispatch(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    // `run` draws a progress line; per-object logs would scroll it away unless asked for.
    let default_level = match cli.command {
        Command::Run(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log line that cannot be written (stderr's reader gone, as in `| head`) is dropped;
        // tracing-subscriber would otherwise report it with eprintln!, which panics there and
        // takes down whichever task was logging.
        .log_internal_errors(false)
        .init();
    match cli.command {
        Command::Run(args) => {
            return run::run(args)
                .await
                .map(|status| std::process::ExitCode::from(status.code()));
        }
        Command::Serve(args) => serve::run(args).await,
        Command::Start(args) => control::start(args).await,
        Command::Status(args) => control::status(args).await,
        Command::Redrive(args) => control::redrive(args).await,
        Command::Migrate(args) => {
            let summary = migrate::run(&args, &mut std::io::stdout().lock()).await?;
            return Ok(if summary.failed > 0 {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            });
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "s3-ingest", &mut std::io::stdout());
            Ok(())
        }
        Command::Sample { dir } => {
            let files = sample::write(&dir)
                .with_context(|| format!("writing the sample data set under {}", dir.display()))?;
            tracing::info!(files = files.len(), rows = sample::TOTAL_ROWS, dir = %dir.display(), "sample data set written");
            Ok(())
        }
    }
    .map(|()| std::process::ExitCode::SUCCESS)
}
