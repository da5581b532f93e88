//! The options of `s3-ingest run`, their defaults, and the checks that refuse settings that
//! cannot work before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::stack::{StackOptions, WorkflowNames};

/// Options of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Ingest the CSV files under this directory (keys relative to it) instead of the sample
    /// data set; they are uploaded to the bucket first.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// Where the local endpoints keep their data; kept between runs.
    #[arg(long, default_value = ".s3-ingest", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Source bucket.
    #[arg(long, default_value = "bpm-blog-generated-data")]
    pub bucket: String,
    /// Only keys under this prefix are ingested.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// IoT Analytics channel.
    #[arg(long, default_value = "bpm_blog_channel")]
    pub channel: String,
    /// Pipeline from the channel to the datastore.
    #[arg(long, default_value = "bpm_blog_pipeline")]
    pub pipeline: String,
    /// IoT Analytics datastore.
    #[arg(long, default_value = "bpm_blog_datastore")]
    pub datastore: String,
    /// Dataset created to validate the run.
    #[arg(long, default_value = "bpm_blog_validation")]
    pub dataset: String,
    /// Bucket of the ledger (what was ingested, by ETag) and the bad-input reports.
    #[arg(long, default_value = crate::stack::DEFAULT_LEDGER_BUCKET)]
    pub ledger_bucket: String,
    /// Acknowledged batches between two checkpoints in the ledger; after a crash at most
    /// this many batches (plus those in flight) are sent again.
    #[arg(long, default_value_t = 10)]
    pub checkpoint_every: u64,
    /// Worker invocations at once (each Distributed Map's MaxConcurrency). The local
    /// functions share this machine's cores, so the default is their number, at most 10:
    /// on 2 cores, 10 invocations of 8 objects each keep some 500 requests in flight and
    /// spend the time on connections and context switches (the sample run took 0.53 s at
    /// 10 against 0.43 s at 2).
    #[arg(long, default_value_t = default_concurrency())]
    pub concurrency: u32,
    /// Objects of at most this many bytes are ingested in batches, several per worker
    /// invocation in Express child workflows; bigger ones alone (0: every object alone).
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub small_object_bytes: u64,
    /// Small objects per worker invocation (the ItemBatcher's MaxItemsPerBatch).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub objects_per_batch: u32,
    /// Messages per second for the whole run, shared by the concurrent workers (0: unpaced).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = parse_rate)]
    pub rate: u32,
    /// Messages per second the local IoT Analytics accepts per channel.
    #[arg(long, default_value_t = iotanalytics_service::DEFAULT_CHANNEL_QUOTA)]
    pub channel_quota: u32,
    /// Send integers and decimals as JSON numbers instead of strings.
    #[arg(long)]
    pub typed: bool,
    /// Set bad rows aside (named in the summary) instead of failing their object.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Keys per listed page (1–1000, ListObjectsV2's MaxKeys).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
    /// Pages per execution before it continues as a new one.
    #[arg(long, default_value_t = 500)]
    pub pages_per_execution: u32,
    /// Seconds a worker invocation may run before it must hand over a checkpoint.
    #[arg(long, default_value_t = 900)]
    pub worker_timeout: u64,
    /// Multiplies Wait and Retry delays (1.0: real time, as on AWS).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Where IoT Analytics keeps its state: its data directory (default), or
    /// s3://BUCKET/PREFIX in the embedded S3, the storage the service uses on AWS.
    #[arg(long, value_name = "s3://BUCKET/PREFIX", value_parser = parse_storage)]
    pub storage: Option<iotanalytics_service::S3Location>,
    /// Send rows as they are, without the row identity (`_src`, `_row`) the default
    /// validation counts; validation then falls back to the datastore's row count.
    #[arg(long)]
    pub no_row_identity: bool,
    /// Exit 0 when the source has no matching objects (otherwise: exit code 4).
    #[arg(long)]
    pub allow_empty: bool,
    /// How to print the summary: text, or one JSON document (no progress display).
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::output::OutputFormat,
    /// Serve the read-only web console on loopback while the run goes (its URL is printed on
    /// stderr), and keep serving it after the run ends until Ctrl-C; the exit code is still
    /// the run's. Without it, no console is served.
    #[arg(long)]
    pub console: bool,
    /// Port of the console with --console (0 picks a free one).
    #[arg(long, default_value_t = 0, requires = "console")]
    pub console_port: u16,
}

impl RunArgs {
    /// The arguments of `run --data-dir DATA_DIR`: every other setting at the default
    /// `--help` shows.
    pub fn with_defaults(data_dir: &std::path::Path) -> Self {
        #[derive(clap::Parser)]
        struct Run {
            #[command(flatten)]
            args: RunArgs,
        }
        let argv = [
            std::ffi::OsStr::new("run"),
            std::ffi::OsStr::new("--data-dir"),
            data_dir.as_os_str(),
        ];
        <Run as clap::Parser>::parse_from(argv).args
    }

    /// The names this run uses.
    pub fn names(&self) -> WorkflowNames {
        WorkflowNames {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            channel: self.channel.clone(),
            pipeline: self.pipeline.clone(),
            datastore: self.datastore.clone(),
            dataset: self.dataset.clone(),
            ledger_bucket: self.ledger_bucket.clone(),
        }
    }

    /// The stack this run needs.
    pub fn stack_options(&self) -> StackOptions {
        let mut options = StackOptions::new(&self.data_dir);
        options.channel_quota = self.channel_quota;
        options.time_scale = self.time_scale;
        options.worker_timeout = Duration::from_secs(self.worker_timeout);
        options.iotanalytics_storage = self.storage.clone();
        options
    }
}

/// The suffix of the keys the workflow ingests (the definition's default `suffix`).
pub const SOURCE_SUFFIX: &str = ".csv";

/// This machine's cores, at most the deployed workflow's default.
fn default_concurrency() -> u32 {
    std::thread::available_parallelism()
        .map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .clamp(1, ingest::launcher::DEFAULT_MAX_CONCURRENCY)
}

/// Parses `--rate`: a whole number of messages per second, 0 for unpaced.
fn parse_rate(s: &str) -> Result<u32, String> {
    s.parse::<u32>().map_err(|_| {
        format!("{s:?} is not a rate: give messages per second as a whole number, 0 for unpaced")
    })
}

impl RunArgs {
    /// Refuses settings that cannot work together, before anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.rate > 0 && self.concurrency == 0 {
            bail!(
                "--rate {} needs --concurrency of at least 1: the rate is shared among that many \
                 concurrent workers, and --concurrency 0 (no limit) leaves nothing to share it by",
                self.rate
            );
        }
        if let Some(dir) = &self.source {
            let files = crate::run::files_under(dir)
                .with_context(|| format!("--source {}", dir.display()))?;
            if files.is_empty() {
                bail!("--source {}: no files found", dir.display());
            }
            if !files.iter().any(|(_, key)| key.ends_with(SOURCE_SUFFIX)) {
                bail!(
                    "--source {}: {} files, none ending in {SOURCE_SUFFIX} (the workflow ingests \
                     only keys ending in {SOURCE_SUFFIX}; first: {})",
                    dir.display(),
                    files.len(),
                    files[0].1
                );
            }
        }
        Ok(())
    }
}

/// Parses `--storage`.
pub fn parse_storage(s: &str) -> Result<iotanalytics_service::S3Location, String> {
    iotanalytics_service::S3Location::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<RunArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Run {
            #[command(flatten)]
            args: RunArgs,
        }
        let argv = std::iter::once("run").chain(args.iter().copied());
        <Run as clap::Parser>::try_parse_from(argv).map(|run| run.args)
    }

    #[test]
    fn a_page_size_outside_what_s3_lists_is_refused() {
        for bad in ["0", "1001"] {
            let error = parsed(&["--page-size", bad]).unwrap_err().to_string();
            assert!(error.contains("1..=1000"), "{error}");
        }
        assert_eq!(parsed(&["--page-size", "1"]).unwrap().page_size, 1);
    }

    #[test]
    fn a_negative_rate_is_named_and_explained() {
        let error = parsed(&["--rate", "-5"]).unwrap_err().to_string();
        assert!(error.contains("\"-5\" is not a rate"), "{error}");
        assert!(error.contains("0 for unpaced"), "{error}");
    }

    #[test]
    fn the_default_concurrency_is_this_machines_cores_up_to_ten() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let concurrency = parsed(&[]).unwrap().concurrency;
        assert_eq!(concurrency as usize, cores.min(10));
        assert_eq!(parsed(&["--concurrency", "10"]).unwrap().concurrency, 10);
    }

    #[test]
    fn a_rate_without_a_concurrency_to_share_it_is_refused() {
        let args = parsed(&["--rate", "500", "--concurrency", "0"]).unwrap();
        let error = args.check().unwrap_err().to_string();
        assert!(error.contains("--rate 500 needs --concurrency"), "{error}");
        assert!(parsed(&["--rate", "500"]).unwrap().check().is_ok());
    }

    #[test]
    fn a_source_without_csv_files_is_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "a,b\n1,2\n").unwrap();
        let source = dir.path().to_str().unwrap();
        let error = parsed(&["--source", source]).unwrap().check().unwrap_err();
        let error = format!("{error:#}");
        assert!(error.contains("none ending in .csv"), "{error}");
        assert!(error.contains("notes.txt"), "{error}");
        std::fs::write(dir.path().join("data.csv"), "a,b\n1,2\n").unwrap();
        assert!(parsed(&["--source", source]).unwrap().check().is_ok());
    }
}
