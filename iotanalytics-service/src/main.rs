//! Lambda function `iotanalytics-service`: the IoT Analytics–compatible service behind a Lambda
//! function URL, on S3 and Athena.

/// An allocator that keeps up with many small, short-lived buffers across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    iotanalytics_service::memory::disable_transparent_huge_pages();
    lambda_http::tracing::init_default_subscriber();
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = iotanalytics_service::host::config_from_env(&sdk).await?;
    let app = std::sync::Arc::new(iotanalytics_service::app(config).await?);
    // Function URL requests, and the stack's schedule's ticks.
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event| {
        let app = app.clone();
        async move { iotanalytics_service::host::handle(&app, event).await }
    }))
    .await
}
