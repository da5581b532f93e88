//! Lambda function `validator`: starts a dataset content version, or checks one against expectations.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

/// An allocator that keeps up with many small, short-lived buffers across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // The IoT Analytics-compatible service's key pair, when the stack names its secret, is
    // read here once per execution environment; a failure stops the cold start with a
    // message naming the secret.
    let clients = &ingest::Clients::load().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        ingest::handlers::validator(clients, event.payload, event.context.deadline()).await
    }))
    .await
}
