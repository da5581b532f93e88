//! Builds the AWS SDK clients once per process, honouring configured endpoints.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::retry::RetryConfig;

/// The clients the workflow's functions call.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Source objects, manifests.
    pub s3: aws_sdk_s3::Client,
    /// Channel ingestion and dataset validation.
    pub iotanalytics: aws_sdk_iotanalytics::Client,
}

impl Clients {
    /// Loads the AWS configuration from the environment (region, credentials, and endpoints
    /// from `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_IOTANALYTICS`).
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_config(&config)
    }

    /// Builds the clients for explicit S3 and IoT Analytics endpoints (the local stack).
    pub fn for_endpoints(
        config: &SdkConfig,
        s3_endpoint: &str,
        iotanalytics_endpoint: &str,
    ) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .endpoint_url(s3_endpoint)
            .force_path_style(true)
            .build();
        let iotanalytics_config = aws_sdk_iotanalytics::config::Builder::from(config)
            .endpoint_url(iotanalytics_endpoint)
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            iotanalytics: aws_sdk_iotanalytics::Client::from_conf(iotanalytics_config),
        }
    }

    /// Builds the clients from a loaded configuration.
    ///
    /// S3 uses path-style addresses whenever an endpoint is configured, because local and
    /// compatible S3 endpoints do not resolve bucket subdomains. The IoT Analytics client does
    /// not retry on its own: the worker's batch sender retries, re-sending only what failed
    /// and counting every attempt.
    pub fn from_config(config: &SdkConfig) -> Self {
        let custom_s3_endpoint =
            config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(custom_s3_endpoint)
            .build();
        let iotanalytics_config = aws_sdk_iotanalytics::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            iotanalytics: aws_sdk_iotanalytics::Client::from_conf(iotanalytics_config),
        }
    }
}
