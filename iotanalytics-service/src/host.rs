//! The service's configuration on AWS Lambda, read from the function's environment: storage in
//! S3, queries on Athena, and the key pair clients sign with from Secrets Manager.
//!
//! | variable | meaning |
//! |---|---|
//! | `IOTANALYTICS_STORAGE` | `s3://BUCKET/PREFIX` where the service keeps everything (required) |
//! | `IOTANALYTICS_QUERY_ENGINE` | `athena` (default) or `datafusion` (in the function itself) |
//! | `IOTANALYTICS_ATHENA_WORKGROUP` | Athena workgroup (required for `athena`) |
//! | `IOTANALYTICS_GLUE_DATABASE` | Glue database of the datastore tables (required for `athena`) |
//! | `IOTANALYTICS_CREDENTIALS_SECRET` | ARN of the secret `{"accessKeyId", "secretAccessKey"}` (required) |
//! | `IOTANALYTICS_MAX_QUERY_SECONDS` | time limit of a DataFusion query (default 300) |
//! | `IOTANALYTICS_CHANNEL_QUOTA` | messages per second per channel, per instance (default 100,000) |
//! | `IOTANALYTICS_IOT_DATA_ENDPOINT` | endpoint of `deviceShadowEnrich`'s GetThingShadow, e.g. the account's `iot:Data-ATS` one (default: the SDK's regional `data-ats.iot` endpoint) |
//!
//! On this host the pipeline activities `lambda`, `deviceRegistryEnrich` and
//! `deviceShadowEnrich` run ([`crate::aws_activities`]), with the function's role.
//!
//! Besides function URL events the function takes a tick (`{"iotanalyticsServiceTick": {}}`,
//! from the stack's EventBridge schedule every minute): it runs what the local host does in
//! the background, [`crate::App::tick`], the retention sweep at the tick of minute 0.

use std::time::Duration;

use aws_config::SdkConfig;
use lambda_http::lambda_runtime::LambdaEvent;
use lambda_http::{Service as _, request::LambdaRequest};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::App;
use crate::config::{Credentials, QueryEngineConfig, ServiceConfig, StorageConfig};
use crate::error::Error;
use crate::store::s3::S3Location;

/// The key pair as the stack's secret holds it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretKeys {
    access_key_id: String,
    secret_access_key: String,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> Result<String, Error> {
    var(name).ok_or_else(|| Error::Config(format!("the environment variable {name} is not set")))
}

/// The account in an ARN (`arn:aws:service:region:ACCOUNT:...`).
fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Reads the signing key pair from Secrets Manager; errors name the secret, never its value.
pub async fn read_keys(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Credentials, Error> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            Error::Config(format!(
                "reading the secret {secret_id}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            ))
        })?;
    let text = out
        .secret_string()
        .ok_or_else(|| Error::Config(format!("the secret {secret_id} holds no string")))?;
    let keys: SecretKeys = serde_json::from_str(text).map_err(|_| {
        Error::Config(format!(
            "the secret {secret_id} is not JSON with accessKeyId and secretAccessKey"
        ))
    })?;
    Ok(Credentials::new(keys.access_key_id, keys.secret_access_key))
}

/// The configuration of the Lambda host, from the environment and the secret.
pub async fn config_from_env(sdk: &SdkConfig) -> Result<ServiceConfig, Error> {
    let location = S3Location::parse(&required("IOTANALYTICS_STORAGE")?)?;
    let secret = required("IOTANALYTICS_CREDENTIALS_SECRET")?;
    let mut config = ServiceConfig::new(std::env::temp_dir().join("iotanalytics"));
    config.credentials = Some(read_keys(&aws_sdk_secretsmanager::Client::new(sdk), &secret).await?);
    if let Some(region) = sdk.region() {
        config.region = region.to_string();
    }
    if let Some(account) =
        var("IOTANALYTICS_ACCOUNT_ID").or_else(|| account_of(&secret).map(str::to_owned))
    {
        config.account_id = account;
    }
    if let Some(quota) = var("IOTANALYTICS_CHANNEL_QUOTA") {
        config.channel_quota = quota.parse().map_err(|_| {
            Error::Config(format!(
                "IOTANALYTICS_CHANNEL_QUOTA {quota:?} is not a number"
            ))
        })?;
    }
    if let Some(seconds) = var("IOTANALYTICS_MAX_QUERY_SECONDS") {
        let seconds: u64 = seconds.parse().map_err(|_| {
            Error::Config(format!(
                "IOTANALYTICS_MAX_QUERY_SECONDS {seconds:?} is not a number"
            ))
        })?;
        config.query_limits.time = Duration::from_secs(seconds);
    }
    config.storage = StorageConfig::S3 {
        location,
        client: aws_sdk_s3::Client::new(sdk),
    };
    config.engine = match var("IOTANALYTICS_QUERY_ENGINE")
        .as_deref()
        .unwrap_or("athena")
    {
        "athena" => QueryEngineConfig::Athena {
            athena: aws_sdk_athena::Client::new(sdk),
            glue: aws_sdk_glue::Client::new(sdk),
            workgroup: required("IOTANALYTICS_ATHENA_WORKGROUP")?,
            database: required("IOTANALYTICS_GLUE_DATABASE")?,
        },
        "datafusion" => QueryEngineConfig::DataFusion,
        other => {
            return Err(Error::Config(format!(
                "IOTANALYTICS_QUERY_ENGINE is {other:?}; use athena or datafusion"
            )));
        }
    };
    config.aws_activities = Some(crate::aws_activities::AwsActivityClients::new(
        sdk,
        var("IOTANALYTICS_IOT_DATA_ENDPOINT").as_deref(),
    ));
    Ok(config)
}

/// The field that makes an event a tick rather than a function URL request.
pub const TICK_FIELD: &str = "iotanalyticsServiceTick";

/// Whether `event` is a tick (read without building the event's JSON tree).
pub fn is_tick(event: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "iotanalyticsServiceTick")]
        tick: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_str::<Probe>(event.get()).is_ok_and(|p| p.tick.is_some())
}

/// Answers one invocation: a tick runs [`App::tick`] (sweeping at minute 0 of the hour) and
/// answers its report; anything else goes through `lambda_http` into the router.
pub async fn handle(
    app: &App,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<serde_json::Value, lambda_http::Error> {
    let LambdaEvent { payload, context } = event;
    if is_tick(&payload) {
        let sweep = chrono::Timelike::minute(&chrono::Utc::now()) == 0;
        let report = app.tick(sweep).await?;
        tracing::info!(?report, "tick");
        return Ok(serde_json::to_value(report)?);
    }
    // lambda_http reads its events from raw JSON text.
    let request: LambdaRequest = serde_json::from_str(payload.get())?;
    let mut adapter = lambda_http::Adapter::from(app.router.clone());
    let response = adapter.call(LambdaEvent::new(request, context)).await?;
    Ok(serde_json::to_value(response)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_read_from_the_secret_arn() {
        assert_eq!(
            account_of("arn:aws:secretsmanager:eu-west-1:123456789012:secret:keys-AbCdEf"),
            Some("123456789012")
        );
        assert_eq!(account_of("not-an-arn"), None);
    }
}
