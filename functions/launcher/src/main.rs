//! Lambda function `launcher`: lists one S3 page per invocation and writes its manifest.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

/// An allocator that keeps up with many small, short-lived buffers across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let clients = &ingest::Clients::from_env().await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        ingest::handlers::launcher(clients, event.payload).await
    }))
    .await
}
