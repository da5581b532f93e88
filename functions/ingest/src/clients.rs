//! Builds the AWS SDK clients once per process, honouring configured endpoints.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_iotanalytics::config::Credentials;
use aws_smithy_types::retry::RetryConfig;

use crate::service_credentials::{self, CredentialsError};

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
    /// Every client signs with the environment's credentials; [`Clients::load`] also honours
    /// `IOTANALYTICS_CREDENTIALS_SECRET`.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_config(&config)
    }

    /// What each Lambda function's `main` calls once per cold start: [`Clients::from_env`],
    /// then, when `IOTANALYTICS_CREDENTIALS_SECRET` names a secret (the stack sets it for the
    /// worker and the validator when it deploys the IoT Analytics-compatible service), one
    /// GetSecretValue call for the service's key pair, which then signs every IoT Analytics
    /// call (signing name `iotanalytics`, the function's region). Secrets Manager is reached
    /// with the function's own credentials and honours `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
    pub async fn load() -> Result<Self, CredentialsError> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let clients = Self::from_config(&config);
        let Some(secret) = service_credentials::secret_from_env() else {
            return Ok(clients);
        };
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let credentials = service_credentials::read(&secrets, &secret).await?;
        // The secret's name only: nothing of its value reaches the logs.
        tracing::info!(
            secret,
            "IoT Analytics calls are signed with the service's key pair"
        );
        Ok(clients.with_iotanalytics_credentials(credentials))
    }

    /// The same clients, with IoT Analytics calls signed by `credentials` instead of the
    /// configuration's; the endpoint, region and retry settings stay as they were.
    pub fn with_iotanalytics_credentials(self, credentials: Credentials) -> Self {
        let config = self
            .iotanalytics
            .config()
            .to_builder()
            .credentials_provider(credentials)
            .build();
        Self {
            s3: self.s3,
            iotanalytics: aws_sdk_iotanalytics::Client::from_conf(config),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iotanalytics::operation::list_channels::ListChannelsOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::client::interceptors::Intercept;
    use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::config_bag::ConfigBag;
    use std::sync::{Arc, Mutex};

    /// Keeps the `Authorization` header of each signed request.
    #[derive(Debug, Clone, Default)]
    struct Authorizations(Arc<Mutex<Vec<String>>>);

    impl Intercept for Authorizations {
        fn name(&self) -> &'static str {
            "Authorizations"
        }

        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _components: &RuntimeComponents,
            _cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let header = context
                .request()
                .headers()
                .get("authorization")
                .unwrap_or_default()
                .to_owned();
            self.0.lock().unwrap().push(header);
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_service_key_pair_signs_iotanalytics_calls_under_the_iotanalytics_name() {
        let rule = mock!(aws_sdk_iotanalytics::Client::list_channels)
            .then_output(|| ListChannelsOutput::builder().build());
        let seen = Authorizations::default();
        let capture = seen.clone();
        let iotanalytics = mock_client!(aws_sdk_iotanalytics, RuleMode::MatchAny, [&rule], |c| c
            .region(aws_sdk_iotanalytics::config::Region::new("eu-west-1"))
            .retry_config(RetryConfig::disabled())
            .interceptor(capture.clone()));
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .build(),
        );
        let clients = Clients { s3, iotanalytics }.with_iotanalytics_credentials(Credentials::new(
            "IOTA1a2b3c4d",
            "service-secret",
            None,
            None,
            "test",
        ));

        clients.iotanalytics.list_channels().send().await.unwrap();

        let headers = seen.0.lock().unwrap().clone();
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(
            headers[0].starts_with("AWS4-HMAC-SHA256 Credential=IOTA1a2b3c4d/"),
            "{}",
            headers[0]
        );
        assert!(
            headers[0].contains("/eu-west-1/iotanalytics/aws4_request"),
            "{}",
            headers[0]
        );
        assert!(
            !clients
                .iotanalytics
                .config()
                .retry_config()
                .unwrap()
                .has_retry(),
            "the worker's sender does the retrying"
        );
    }
}
