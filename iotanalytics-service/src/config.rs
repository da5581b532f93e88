//! Configuration of the service: where it stores data, where it listens, who may call it,
//! the channel quotas and the fault injection settings.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::query::QueryLimits;
use crate::store::s3::S3Location;

/// The default channel ingest quota of the real service, in messages per second.
pub const DEFAULT_CHANNEL_QUOTA: u32 = 100_000;

/// Access key pair that requests must be signed with (SigV4, signing name `iotanalytics`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id clients present in the `Credential=` part of the signature.
    pub access_key_id: String,
    /// The secret the signature is computed with.
    pub secret_access_key: String,
}

impl Credentials {
    /// A key pair from its two parts.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        }
    }
}

// The secret must never reach a log line, so Debug prints the key id only.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Faults injected into `BatchPutMessage` so that client retry logic can be exercised.
///
/// Every probability is in `0.0..=1.0`; the default injects nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultConfig {
    /// Probability that a whole request answers `ThrottlingException` (HTTP 429).
    pub throttle_probability: f64,
    /// Probability that a whole request answers `InternalFailureException` (HTTP 500).
    pub server_error_probability: f64,
    /// Probability, per message, that the message is rejected in `batchPutMessageErrorEntries`.
    pub entry_error_probability: f64,
    /// Delay added before each request is answered.
    pub latency: Duration,
}

impl FaultConfig {
    /// True when this configuration injects nothing.
    pub fn is_off(&self) -> bool {
        self.throttle_probability <= 0.0
            && self.server_error_probability <= 0.0
            && self.entry_error_probability <= 0.0
            && self.latency.is_zero()
    }
}

/// Where the service keeps its state.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// Under [`ServiceConfig::data_dir`] (the default).
    Filesystem,
    /// In a bucket under a prefix, through this S3 client (AWS or the embedded S3).
    S3 {
        /// Bucket and prefix.
        location: S3Location,
        /// The client, with its endpoint and credentials.
        client: aws_sdk_s3::Client,
    },
}

/// Where dataset queries run.
#[derive(Debug, Clone)]
pub enum QueryEngineConfig {
    /// Apache DataFusion in this process (the default).
    DataFusion,
    /// Amazon Athena over a Glue table per datastore; needs [`StorageConfig::S3`].
    #[cfg(feature = "lambda-host")]
    Athena {
        /// The Athena client.
        athena: aws_sdk_athena::Client,
        /// The Glue client that keeps the datastore tables.
        glue: aws_sdk_glue::Client,
        /// Athena workgroup (its result location and bytes-scanned limit apply).
        workgroup: String,
        /// Glue database of the datastore tables.
        database: String,
    },
}

/// Everything [`crate::start`] needs. Build one with [`ServiceConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Directory holding the catalog, channel logs, datastore files and dataset contents.
    pub data_dir: PathBuf,
    /// Address to listen on; the default `127.0.0.1:0` picks a free loopback port.
    pub bind: SocketAddr,
    /// When set, every request's SigV4 signature is verified against this key pair.
    pub credentials: Option<Credentials>,
    /// Region used in ARNs.
    pub region: String,
    /// Account id used in ARNs.
    pub account_id: String,
    /// Messages per second allowed on every channel without an override.
    pub channel_quota: u32,
    /// Per-channel overrides of [`ServiceConfig::channel_quota`].
    pub channel_quotas: HashMap<String, u32>,
    /// Faults injected on every channel without an override.
    pub faults: FaultConfig,
    /// Per-channel overrides of [`ServiceConfig::faults`].
    pub channel_faults: HashMap<String, FaultConfig>,
    /// Seed of the fault injection random generator, for reproducible runs.
    pub seed: Option<u64>,
    /// When true (the default) a batch is acknowledged only after it is synced to disk.
    pub durable: bool,
    /// Where the catalog, messages and dataset results live.
    pub storage: StorageConfig,
    /// Where dataset queries run.
    pub engine: QueryEngineConfig,
    /// Bounds of every DataFusion query.
    pub query_limits: QueryLimits,
    /// How long a retention period's day lasts and how often expired data is looked for.
    pub retention: RetentionClock,
    /// How fast dataset schedules run and how often due ones are looked for.
    pub schedules: ScheduleClock,
    /// The S3 client that delivers dataset contents to their `contentDeliveryRules`' buckets.
    /// `None` uses the S3 storage backend's client; on the filesystem backend without one,
    /// datasets with S3 delivery rules are refused.
    pub delivery_s3: Option<aws_sdk_s3::Client>,
    /// The clients of the `lambda`, `deviceRegistryEnrich` and `deviceShadowEnrich` pipeline
    /// activities. `None` (the default, and the local host) refuses those activities.
    pub aws_activities: Option<crate::aws_activities::AwsActivityClients>,
}

/// The clock of `retentionPeriod`: data older than `numberOfDays × day` is removed by a sweep
/// every `sweep_every`. Tests shorten both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionClock {
    /// The length of one retention day (24 hours unless shortened).
    pub day: std::time::Duration,
    /// Time between two sweeps (one hour unless shortened).
    pub sweep_every: std::time::Duration,
}

impl Default for RetentionClock {
    fn default() -> Self {
        Self {
            day: std::time::Duration::from_secs(24 * 3600),
            sweep_every: std::time::Duration::from_secs(3600),
        }
    }
}

/// The clock of dataset schedule triggers: one minute of schedule lasts `minute` of real time
/// (from the service's start), and due schedules are looked for every `check_every`. Tests
/// shorten both; the defaults are real time, checked every five seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleClock {
    /// The real length of one schedule minute (one minute unless shortened).
    pub minute: std::time::Duration,
    /// Time between two looks for due schedules.
    pub check_every: std::time::Duration,
}

impl Default for ScheduleClock {
    fn default() -> Self {
        Self {
            minute: std::time::Duration::from_secs(60),
            check_every: std::time::Duration::from_secs(5),
        }
    }
}

impl ServiceConfig {
    /// The client dataset contents are delivered with: [`ServiceConfig::delivery_s3`], else
    /// the S3 storage backend's.
    pub fn delivery_client(&self) -> Option<&aws_sdk_s3::Client> {
        match (&self.delivery_s3, &self.storage) {
            (Some(client), _) | (None, StorageConfig::S3 { client, .. }) => Some(client),
            (None, StorageConfig::Filesystem) => None,
        }
    }

    /// Defaults: loopback on a free port, no signature verification, `us-east-1`,
    /// 100,000 messages/s per channel, no faults, durable writes, the filesystem backend and
    /// DataFusion within [`QueryLimits::default`].
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: None,
            region: "us-east-1".to_owned(),
            account_id: "000000000000".to_owned(),
            channel_quota: DEFAULT_CHANNEL_QUOTA,
            channel_quotas: HashMap::new(),
            faults: FaultConfig::default(),
            channel_faults: HashMap::new(),
            seed: None,
            durable: true,
            storage: StorageConfig::Filesystem,
            engine: QueryEngineConfig::DataFusion,
            query_limits: QueryLimits::default(),
            retention: RetentionClock::default(),
            delivery_s3: None,
            aws_activities: None,
            schedules: ScheduleClock::default(),
        }
    }
}
