//! `s3-ingest`: the project's command-line tool. `serve` runs the local endpoints that the
//! workflow and any AWS client can use instead of the cloud services.

mod serve;

use clap::{Parser, Subcommand};

/// Command-line tool of the S3 to IoT Analytics ingest workflow.
#[derive(Debug, Parser)]
#[command(name = "s3-ingest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local endpoints and print the shell lines that point clients at them.
    Serve(serve::ServeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args).await,
    }
}
