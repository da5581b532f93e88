//! Lambda function `iotanalytics-service`: the IoT Analytics–compatible service behind a Lambda
//! function URL, on S3 and Athena.

/// An allocator that keeps up with many small, short-lived buffers across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = iotanalytics_service::host::config_from_env(&sdk).await?;
    let app = iotanalytics_service::app(config).await?;
    lambda_http::run(app.router).await
}
