//! `s3-ingest serve`: starts each local endpoint, prints `export` lines for the shell and
//! serves until Ctrl-C. Each endpoint has its own startup function so that further endpoints
//! (S3, Step Functions) slot in next to IoT Analytics.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use local_iotanalytics::{Credentials, FaultConfig, RunningService, ServiceConfig};

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory where the endpoints keep their data (created if missing).
    #[arg(long, default_value = ".local-stack")]
    pub data_dir: PathBuf,
    /// Address to listen on. Anything other than loopback exposes the endpoints to the network.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// IoT Analytics port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Region printed for clients and used in ARNs.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Access key id clients must sign with; with --secret-access-key turns on signature checks.
    #[arg(long, requires = "secret_access_key")]
    pub access_key_id: Option<String>,
    /// Secret access key matching --access-key-id.
    #[arg(long, requires = "access_key_id")]
    pub secret_access_key: Option<String>,
    /// Messages per second allowed on each IoT Analytics channel.
    #[arg(long, default_value_t = local_iotanalytics::DEFAULT_CHANNEL_QUOTA)]
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

/// Starts the IoT Analytics endpoint described by the arguments.
pub async fn start_iotanalytics(args: &ServeArgs) -> anyhow::Result<RunningService> {
    let mut config = ServiceConfig::new(args.data_dir.join("iotanalytics"));
    config.bind = SocketAddr::new(args.bind, args.port);
    config.region = args.region.clone();
    config.credentials = match (&args.access_key_id, &args.secret_access_key) {
        (Some(id), Some(secret)) => Some(Credentials::new(id, secret)),
        _ => None,
    };
    config.channel_quota = args.channel_quota;
    config.channel_quotas = args
        .channel_quota_for
        .iter()
        .cloned()
        .collect::<HashMap<_, _>>();
    config.faults = FaultConfig {
        throttle_probability: args.fault_throttle,
        server_error_probability: args.fault_server_error,
        entry_error_probability: args.fault_entry_error,
        latency: Duration::from_millis(args.fault_latency_ms),
    };
    config.seed = args.seed;
    config.durable = !args.no_fsync;
    local_iotanalytics::start(config)
        .await
        .context("starting the IoT Analytics endpoint")
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
    let iotanalytics = start_iotanalytics(&args).await?;
    // Without configured credentials any signed request is accepted, so placeholders do.
    let (key_id, secret) = match (&args.access_key_id, &args.secret_access_key) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => ("local".to_owned(), "local-secret".to_owned()),
    };
    println!(
        "export AWS_ENDPOINT_URL_IOTANALYTICS={}",
        iotanalytics.endpoint_url()
    );
    println!("export AWS_ACCESS_KEY_ID={key_id}");
    println!("export AWS_SECRET_ACCESS_KEY={secret}");
    println!("export AWS_REGION={}", args.region);
    println!("export AWS_DEFAULT_REGION={}", args.region);
    println!("# serving until Ctrl-C");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("shutting down");
    iotanalytics.shutdown().await;
    Ok(())
}
