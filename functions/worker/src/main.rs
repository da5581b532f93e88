//! Lambda function `worker`: streams one CSV object into an IoT Analytics channel, resumable by checkpoint.

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
    // This process is one execution environment: its share of the quota carries over from
    // one invocation to the next.
    let pacing = &ingest::pacing::Pacing::new();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        ingest::handlers::worker(clients, pacing, event.payload, event.context.deadline()).await
    }))
    .await
}
