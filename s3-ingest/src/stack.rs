//! The local stack: embedded S3, IoT Analytics and Step Functions endpoints on loopback, with
//! the workflow's state machine registered and its Lambda functions served in-process by the
//! same library handlers the deployed functions run.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::lambda::{Activity, FUNCTIONS, FunctionFaults, InProcessLambda};

/// The workflow's definition, the same file `template.yaml` deploys.
pub const DEFINITION: &str = include_str!("../../statemachine/ingest.asl.json");

/// The local ledger bucket unless the run names another.
pub const DEFAULT_LEDGER_BUCKET: &str = "ingest-ledger";

/// Name of the state machine in the local Step Functions.
pub const STATE_MACHINE_NAME: &str = "ingest";

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Where every endpoint keeps its data (`s3/`, `iotanalytics/`, `stepfunctions/`).
    pub data_dir: PathBuf,
    /// Address every endpoint binds: a loopback address (`start` refuses others).
    pub bind: IpAddr,
    /// Region for clients and ARNs.
    pub region: String,
    /// Access key id requests are signed with and checked against.
    pub access_key_id: String,
    /// The matching secret (never logged).
    pub secret_access_key: String,
    /// Multiplies Wait and Retry delays (1.0: real time).
    pub time_scale: f64,
    /// Messages per second per channel on the IoT Analytics endpoint.
    pub channel_quota: u32,
    /// Whether IoT Analytics syncs each batch to disk before acknowledging it.
    pub durable: bool,
    /// Timeout of the worker function; its deadline is this long after each invocation.
    pub worker_timeout: Duration,
    /// Timeout of the launcher and validator functions.
    pub other_timeout: Duration,
    /// Ports of the S3, IoT Analytics and Step Functions endpoints (0: a free one).
    pub ports: [u16; 3],
    /// Per-channel quotas overriding `channel_quota`.
    pub channel_quotas: HashMap<String, u32>,
    /// Faults the IoT Analytics endpoint injects into BatchPutMessage.
    pub faults: iotanalytics_service::FaultConfig,
    /// Seed of the fault injection.
    pub seed: Option<u64>,
    /// Faults the S3 endpoint injects.
    pub s3_faults: local_s3::S3Faults,
    /// Crashes and timeouts of the in-process functions.
    pub function_faults: FunctionFaults,
    /// Where IoT Analytics keeps its state: `None` for its data directory, or a bucket and
    /// prefix of the embedded S3 (the storage backend the service uses on AWS).
    pub iotanalytics_storage: Option<iotanalytics_service::S3Location>,
}

impl StackOptions {
    /// Loopback, `us-east-1`, real time, the service's default quota, durable, 15-minute
    /// worker timeout.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            region: "us-east-1".to_owned(),
            access_key_id: "local".to_owned(),
            secret_access_key: "local-secret".to_owned(),
            time_scale: 1.0,
            channel_quota: iotanalytics_service::DEFAULT_CHANNEL_QUOTA,
            durable: true,
            worker_timeout: Duration::from_secs(900),
            other_timeout: Duration::from_secs(60),
            ports: [0; 3],
            channel_quotas: HashMap::new(),
            faults: iotanalytics_service::FaultConfig::default(),
            seed: None,
            s3_faults: local_s3::S3Faults::default(),
            function_faults: FunctionFaults::default(),
            iotanalytics_storage: None,
        }
    }
}

/// Resource names of one workflow run.
#[derive(Debug, Clone)]
pub struct WorkflowNames {
    /// Source bucket.
    pub bucket: String,
    /// Source key prefix.
    pub prefix: String,
    /// Channel.
    pub channel: String,
    /// Pipeline from the channel to the datastore.
    pub pipeline: String,
    /// Datastore.
    pub datastore: String,
    /// Validation dataset.
    pub dataset: String,
    /// Bucket of the ledger and the reports.
    pub ledger_bucket: String,
}

impl Default for WorkflowNames {
    /// The 2018 article's names.
    fn default() -> Self {
        Self {
            bucket: "bpm-blog-generated-data".to_owned(),
            prefix: String::new(),
            channel: "bpm_blog_channel".to_owned(),
            pipeline: "bpm_blog_pipeline".to_owned(),
            datastore: "bpm_blog_datastore".to_owned(),
            dataset: "bpm_blog_validation".to_owned(),
            ledger_bucket: DEFAULT_LEDGER_BUCKET.to_owned(),
        }
    }
}

/// The three endpoints, the clients pointed at them and the registered state machine.
pub struct LocalStack {
    /// Embedded S3.
    pub s3: local_s3::RunningS3,
    /// IoT Analytics–compatible service.
    pub iotanalytics: iotanalytics_service::RunningService,
    /// Embedded Step Functions.
    pub stepfunctions: local_stepfunctions::RunningStepFunctions,
    /// Clients of S3 and IoT Analytics, as the functions use them.
    pub clients: ingest::Clients,
    /// The workflow's state machine.
    pub state_machine_arn: String,
    /// What the in-process functions have done so far.
    pub activity: Arc<Activity>,
    options: StackOptions,
}

impl std::fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStack")
            .field("s3", &self.s3.endpoint_url())
            .field("iotanalytics", &self.iotanalytics.endpoint_url())
            .field("stepfunctions", &self.stepfunctions.endpoint_url())
            .field("state_machine_arn", &self.state_machine_arn)
            .finish_non_exhaustive()
    }
}

impl LocalStack {
    /// Starts the endpoints and registers the state machine with `names` as its defaults.
    pub async fn start(options: StackOptions, names: &WorkflowNames) -> anyhow::Result<Self> {
        // Checked here, before any endpoint starts, so that none is left serving alone.
        if !options.bind.is_loopback() {
            anyhow::bail!(
                "--bind {}: the local endpoints bind to loopback only (127.0.0.1 or ::1); \
                 they accept the test credentials and are not meant for a network",
                options.bind
            );
        }
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        let s3_root = options.data_dir.join("s3");
        let storage_bucket = options
            .iotanalytics_storage
            .as_ref()
            .map(|location| &location.bucket);
        for bucket in [&names.bucket, &names.ledger_bucket]
            .into_iter()
            .chain(storage_bucket)
        {
            local_s3::ensure_bucket(&s3_root, bucket)
                .with_context(|| format!("creating bucket directory {bucket}"))?;
        }
        let s3 = local_s3::start(local_s3::S3Config {
            root: s3_root,
            bind: SocketAddr::new(options.bind, options.ports[0]),
            credentials: Some((
                options.access_key_id.clone(),
                options.secret_access_key.clone(),
            )),
            faults: options.s3_faults,
        })
        .await
        .context("starting the S3 endpoint")?;

        let mut iota_config =
            iotanalytics_service::ServiceConfig::new(options.data_dir.join("iotanalytics"));
        iota_config.bind = SocketAddr::new(options.bind, options.ports[1]);
        iota_config.region = options.region.clone();
        iota_config.credentials = Some(iotanalytics_service::Credentials::new(
            &options.access_key_id,
            &options.secret_access_key,
        ));
        iota_config.channel_quota = options.channel_quota;
        iota_config.channel_quotas = options.channel_quotas.clone();
        iota_config.faults = options.faults;
        iota_config.seed = options.seed;
        iota_config.durable = options.durable;
        let sdk = sdk_config(&options, None).await;
        let s3_client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .endpoint_url(s3.endpoint_url())
                .force_path_style(true)
                .build(),
        );
        // Dataset contents with delivery rules go to the embedded S3's buckets.
        iota_config.delivery_s3 = Some(s3_client.clone());
        if let Some(location) = &options.iotanalytics_storage {
            iota_config.storage = iotanalytics_service::StorageConfig::S3 {
                location: location.clone(),
                client: s3_client,
            };
        }
        let iotanalytics = iotanalytics_service::start(iota_config)
            .await
            .context("starting the IoT Analytics endpoint")?;

        let clients =
            ingest::Clients::for_endpoints(&sdk, &s3.endpoint_url(), &iotanalytics.endpoint_url());
        let activity = Arc::new(Activity::default());
        let functions = InProcessLambda::new(
            clients.clone(),
            options.worker_timeout,
            options.other_timeout,
            options.function_faults,
            activity.clone(),
        );
        let mut sfn_config = local_stepfunctions::Config::new(
            options.data_dir.join("stepfunctions"),
            Arc::new(functions),
        );
        sfn_config.bind = SocketAddr::new(options.bind, options.ports[2]);
        sfn_config.region = options.region.clone();
        sfn_config.time_scale = options.time_scale;
        sfn_config.access_key = Some(local_stepfunctions::AccessKey {
            id: options.access_key_id.clone(),
            secret: options.secret_access_key.clone(),
        });
        let account = sfn_config.account_id.clone();
        let stepfunctions = local_stepfunctions::start(sfn_config)
            .await
            .context("starting the Step Functions endpoint")?;
        let substitutions = substitutions(&options.region, &account, names);
        let state_machine_arn = stepfunctions
            .handle()
            .register_state_machine(STATE_MACHINE_NAME, DEFINITION, &substitutions)
            .context("loading statemachine/ingest.asl.json")?;
        Ok(Self {
            s3,
            iotanalytics,
            stepfunctions,
            clients,
            state_machine_arn,
            activity,
            options,
        })
    }

    /// The environment that points the aws CLI, boto3 and the SDKs at this stack.
    pub fn exports(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_S3", self.s3.endpoint_url()),
            (
                "AWS_ENDPOINT_URL_IOTANALYTICS",
                self.iotanalytics.endpoint_url(),
            ),
            ("AWS_ENDPOINT_URL_SFN", self.stepfunctions.endpoint_url()),
            ("AWS_ACCESS_KEY_ID", self.options.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY",
                self.options.secret_access_key.clone(),
            ),
            ("AWS_REGION", self.options.region.clone()),
            ("AWS_DEFAULT_REGION", self.options.region.clone()),
            ("STATE_MACHINE_ARN", self.state_machine_arn.clone()),
        ]
    }

    /// A Step Functions client over HTTP to the embedded endpoint.
    pub async fn sfn_client(&self) -> aws_sdk_sfn::Client {
        let sdk = sdk_config(&self.options, Some(&self.stepfunctions.endpoint_url())).await;
        aws_sdk_sfn::Client::new(&sdk)
    }

    /// Stops every endpoint.
    pub async fn shutdown(self) {
        // Executions first, since they call the other two; those then stop side by side.
        self.stepfunctions.shutdown().await;
        tokio::join!(self.iotanalytics.shutdown(), self.s3.shutdown());
    }
}

/// Static credentials and region from the options, and `endpoint` if given.
async fn sdk_config(options: &StackOptions, endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(options.region.clone()))
        .credentials_provider(aws_credential_types::Credentials::new(
            &options.access_key_id,
            &options.secret_access_key,
            None,
            None,
            "local-stack",
        ));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// The `DefinitionSubstitutions` the local stack uses, as the template fills them on AWS.
pub fn substitutions(
    region: &str,
    account: &str,
    names: &WorkflowNames,
) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = FUNCTIONS
        .iter()
        .map(|name| {
            let mut key = name[..1].to_uppercase();
            key.push_str(&name[1..]);
            (
                format!("{key}FunctionArn"),
                format!("arn:aws:lambda:{region}:{account}:function:{name}"),
            )
        })
        .collect();
    map.insert("SourceBucket".to_owned(), names.bucket.clone());
    map.insert("SourcePrefix".to_owned(), names.prefix.clone());
    map.insert("ChannelName".to_owned(), names.channel.clone());
    map.insert("PipelineName".to_owned(), names.pipeline.clone());
    map.insert("DatastoreName".to_owned(), names.datastore.clone());
    map.insert("DatasetName".to_owned(), names.dataset.clone());
    map.insert("LedgerBucket".to_owned(), names.ledger_bucket.clone());
    map
}

/// Creates the workflow's channel, datastore and pipeline if missing, as the state machine's
/// `Prepare IoT Analytics` step does.
pub async fn ensure_iotanalytics(
    client: &aws_sdk_iotanalytics::Client,
    names: &WorkflowNames,
) -> anyhow::Result<()> {
    ingest::setup::ensure_resources(
        client,
        &ingest::setup::PrepareResources {
            channel_name: names.channel.clone(),
            datastore_name: names.datastore.clone(),
            pipeline_name: names.pipeline.clone(),
        },
    )
    .await
    .context("creating the channel, datastore and pipeline")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_of_the_definition_is_substituted() {
        let map = substitutions("us-east-1", "1", &WorkflowNames::default());
        let mut rest = DEFINITION;
        let mut used = std::collections::BTreeSet::new();
        while let Some(start) = rest.find("${") {
            let end = rest[start..].find('}').unwrap() + start;
            used.insert(&rest[start + 2..end]);
            rest = &rest[end..];
        }
        let provided: std::collections::BTreeSet<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(used, provided);
    }
}
