//! `s3-ingest serve`: starts the local S3, IoT Analytics and Step Functions endpoints (with the
//! workflow's state machine registered), prints `export` lines for the shell and serves until
//! Ctrl-C or SIGTERM.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use iotanalytics_service::FaultConfig;
use s3_ingest::console::Sources;
use s3_ingest::stack::{LocalStack, StackOptions, WorkflowNames};

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory where the endpoints keep their data (created if missing).
    #[arg(long, default_value = ".local-stack")]
    pub data_dir: PathBuf,
    /// Loopback address to listen on (127.0.0.1, or ::1 for IPv6); others are refused.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// IoT Analytics port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// S3 port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub s3_port: u16,
    /// Step Functions port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub stepfunctions_port: u16,
    /// Port of the read-only web console (0 picks a free one); its URL is printed as
    /// S3_INGEST_CONSOLE_URL.
    #[arg(long, default_value_t = 0)]
    pub console_port: u16,
    /// Region printed for clients and used in ARNs.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Access key id clients must sign with (default `local`, printed in the export lines).
    #[arg(long, requires = "secret_access_key")]
    pub access_key_id: Option<String>,
    /// Secret access key matching --access-key-id (default `local-secret`).
    #[arg(long, requires = "access_key_id")]
    pub secret_access_key: Option<String>,
    /// Messages per second allowed on each IoT Analytics channel.
    #[arg(long, default_value_t = iotanalytics_service::DEFAULT_CHANNEL_QUOTA)]
    pub channel_quota: u32,
    /// Quota for one channel, as NAME=MESSAGES_PER_SECOND (repeatable).
    #[arg(long = "channel-quota-for", value_name = "NAME=RATE", value_parser = parse_override)]
    pub channel_quota_for: Vec<(String, u32)>,
    /// Probability that a BatchPutMessage answers ThrottlingException (429).
    #[arg(long, default_value_t = 0.0)]
    pub fault_throttle: f64,
    /// Probability that a BatchPutMessage answers InternalFailureException (500).
    #[arg(long, default_value_t = 0.0)]
    pub fault_server_error: f64,
    /// Probability that a message is rejected in batchPutMessageErrorEntries.
    #[arg(long, default_value_t = 0.0)]
    pub fault_entry_error: f64,
    /// Milliseconds added to every BatchPutMessage.
    #[arg(long, default_value_t = 0)]
    pub fault_latency_ms: u64,
    /// Seed for the fault injection, for reproducible runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Acknowledge writes without syncing them to disk (faster, not crash safe).
    #[arg(long)]
    pub no_fsync: bool,
    /// Where IoT Analytics keeps its state: its data directory (default), or
    /// s3://BUCKET/PREFIX in the embedded S3, the storage the service uses on AWS.
    #[arg(long, value_name = "s3://BUCKET/PREFIX", value_parser = s3_ingest::run_args::parse_storage)]
    pub storage: Option<iotanalytics_service::S3Location>,
}

fn parse_override(s: &str) -> Result<(String, u32), String> {
    let (name, rate) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=RATE, got '{s}'"))?;
    let rate = rate
        .parse()
        .map_err(|_| format!("'{rate}' is not a number of messages per second"))?;
    Ok((name.to_owned(), rate))
}

impl ServeArgs {
    /// The stack these arguments describe.
    pub fn stack_options(&self) -> StackOptions {
        let mut options = StackOptions::new(&self.data_dir);
        options.bind = self.bind;
        options.region = self.region.clone();
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            options.access_key_id = id.clone();
            options.secret_access_key = secret.clone();
        }
        options.ports = [self.s3_port, self.port, self.stepfunctions_port];
        options.channel_quota = self.channel_quota;
        options.channel_quotas = self
            .channel_quota_for
            .iter()
            .cloned()
            .collect::<HashMap<_, _>>();
        options.faults = FaultConfig {
            throttle_probability: self.fault_throttle,
            server_error_probability: self.fault_server_error,
            entry_error_probability: self.fault_entry_error,
            latency: Duration::from_millis(self.fault_latency_ms),
        };
        options.seed = self.seed;
        options.durable = !self.no_fsync;
        options.iotanalytics_storage = self.storage.clone();
        options
    }
}

/// Runs `serve` until Ctrl-C.
#[allow(
    clippy::print_stdout,
    reason = "serve prints shell lines for the user to eval"
)]
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.access_key_id.is_some() != args.secret_access_key.is_some() {
        bail!("--access-key-id and --secret-access-key go together");
    }
    let stack = LocalStack::start(args.stack_options(), &WorkflowNames::default()).await?;
    let sources = Sources::of(&stack, s3_ingest::stack::DEFAULT_LEDGER_BUCKET).await;
    let console = match s3_ingest::console::start(args.bind, args.console_port, sources).await {
        Ok(console) => console,
        Err(error) => {
            stack.shutdown().await;
            return Err(error);
        }
    };
    // Listening before the endpoints are printed: whoever reads them may stop us at once.
    let stop = s3_ingest::run::interrupted();
    for (name, value) in stack.exports() {
        println!("export {name}={value}");
    }
    println!("export S3_INGEST_CONSOLE_URL={}", console.url());
    println!(
        "# serving until Ctrl-C or SIGTERM; the console is at {}",
        console.url()
    );
    stop.await;
    tracing::info!("shutting down");
    console.shutdown().await;
    stack.shutdown().await;
    Ok(())
}
