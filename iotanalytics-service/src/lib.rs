//! An AWS IoT Analytics compatible service for running the ingest workflow offline.
//!
//! It speaks the restJson1 protocol of the real service (the paths, status codes, fields and
//! error shapes of `aws-sdk-iotanalytics` 1.94), so the Rust SDK, boto3 and the aws CLI work
//! against it given only an endpoint URL. Messages are stored durably under a data
//! directory, routed by pipelines into JSON or Parquet datastores, and queried with Apache
//! DataFusion when dataset content is created.
//!
//! ```no_run
//! # async fn demo() -> Result<(), iotanalytics_service::Error> {
//! let config = iotanalytics_service::ServiceConfig::new("/tmp/iotanalytics-data");
//! let service = iotanalytics_service::start(config).await?;
//! println!("export AWS_ENDPOINT_URL_IOTANALYTICS={}", service.endpoint_url());
//! service.shutdown().await;
//! # Ok(()) }
//! ```

pub mod athena;
pub mod catalog;
pub mod config;
pub mod error;
pub mod glue;
pub mod limits;
pub mod pipeline;
mod query;
mod server;
pub mod sigv4;
pub mod storage;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{Credentials, DEFAULT_CHANNEL_QUOTA, FaultConfig, ServiceConfig};
pub use error::Error;
pub use limits::Controls;

use crate::catalog::{Catalog, ContentState};
use crate::storage::{Format, Kind, Store};

/// A service listening for requests. Dropping it stops the listener; call
/// [`RunningService::shutdown`] to also wait for pending writes to finish.
pub struct RunningService {
    local_addr: SocketAddr,
    controls: Arc<Controls>,
    store: Arc<Store>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl RunningService {
    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL to give clients (`AWS_ENDPOINT_URL_IOTANALYTICS`).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Run-time controls for quotas and fault injection.
    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    /// Sets one channel's quota in messages per second (`None` returns it to the default).
    pub fn set_channel_quota(&self, channel: &str, messages_per_second: Option<u32>) {
        self.controls
            .set_channel_quota(channel, messages_per_second);
    }

    /// Sets one channel's injected faults (`None` returns it to the default).
    pub fn set_channel_faults(&self, channel: &str, faults: Option<FaultConfig>) {
        self.controls.set_channel_faults(channel, faults);
    }

    /// Stops accepting requests, lets requests in flight finish and flushes storage.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
        tracing::info!(addr = %self.local_addr, "IoT Analytics service stopped");
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn check_probability(name: &str, p: f64) -> Result<(), Error> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{name} must be between 0 and 1, got {p}"
        )))
    }
}

fn check_config(config: &ServiceConfig) -> Result<(), Error> {
    for faults in std::iter::once(&config.faults).chain(config.channel_faults.values()) {
        check_probability("throttle probability", faults.throttle_probability)?;
        check_probability("server error probability", faults.server_error_probability)?;
        check_probability("entry error probability", faults.entry_error_probability)?;
    }
    if config.channel_quota == 0 || config.channel_quotas.values().any(|q| *q == 0) {
        return Err(Error::Config(
            "channel quotas must be at least 1 message per second".into(),
        ));
    }
    Ok(())
}

/// Opens (or creates) the data directory, recovers stored state and starts listening.
pub async fn start(config: ServiceConfig) -> Result<RunningService, Error> {
    check_config(&config)?;
    std::fs::create_dir_all(&config.data_dir)?;
    let mut catalog = Catalog::load(&config.data_dir)?;
    // A query that was running when the service stopped will never finish.
    let mut interrupted = false;
    for dataset in catalog.datasets.values_mut() {
        for content in &mut dataset.contents {
            if content.state == ContentState::Creating {
                content.state = ContentState::Failed;
                content.reason = Some("The service stopped while the query was running".into());
                interrupted = true;
            }
        }
    }
    if interrupted {
        catalog.save(&config.data_dir, config.durable)?;
    }
    let store = Store::open(&config.data_dir, config.durable)?;
    for name in catalog.channels.keys() {
        store.open_log(Kind::Channel, name, Format::Json)?;
    }
    for def in catalog.datastores.values() {
        store.open_log(Kind::Datastore, &def.name, server::datastore_format(def))?;
    }
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let local_addr = listener.local_addr()?;
    let controls = Arc::new(Controls::new(&config));
    tracing::info!(
        addr = %local_addr,
        data_dir = %config.data_dir.display(),
        verify_signatures = config.credentials.is_some(),
        durable = config.durable,
        "IoT Analytics service listening"
    );
    let svc = server::Service::new(config, catalog, store.clone(), controls.clone(), local_addr);
    let app = server::router(svc);
    let (stop, stopped) = oneshot::channel::<()>();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "IoT Analytics server failed");
        }
    });
    Ok(RunningService {
        local_addr,
        controls,
        store,
        stop: Some(stop),
        server: Some(server),
    })
}
