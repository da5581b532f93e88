//! Serves the embedded Step Functions on loopback with no Task resources (Pass, Choice, Wait,
//! Map, Parallel, Succeed and Fail work; Tasks fail with Lambda.ResourceNotFoundException),
//! for trying the API with the aws CLI: `cargo run -p local-stepfunctions --example serve -- DIR`
//! (`PORT` picks the port; `SFN_ACCESS_KEY_ID` and `SFN_SECRET_ACCESS_KEY` turn on SigV4 checks).

use local_stepfunctions::{Config, NoResources};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/stepfunctions-example".into());
    let mut config = Config::new(dir, Arc::new(NoResources));
    if let Ok(port) = std::env::var("PORT") {
        config.bind.set_port(port.parse()?);
    }
    // With both set, only requests signed with this key are served.
    if let (Ok(id), Ok(secret)) = (
        std::env::var("SFN_ACCESS_KEY_ID"),
        std::env::var("SFN_SECRET_ACCESS_KEY"),
    ) {
        config.access_key = Some(local_stepfunctions::AccessKey { id, secret });
    }
    let sfn = local_stepfunctions::start(config).await?;
    tracing::info!("export AWS_ENDPOINT_URL_SFN={}", sfn.endpoint_url());
    tokio::signal::ctrl_c().await?;
    sfn.shutdown().await;
    Ok(())
}
