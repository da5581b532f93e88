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

mod api;
#[cfg(feature = "lambda-host")]
pub mod athena;
#[cfg(feature = "lambda-host")]
pub mod aws_activities;
#[cfg(not(feature = "lambda-host"))]
#[path = "aws_activities_refused.rs"]
pub mod aws_activities;
pub mod catalog;
pub mod config;
pub mod cron;
pub mod delivery;
pub mod delta;
pub mod error;
pub mod flat_payload;
#[cfg(feature = "lambda-host")]
pub mod glue;
#[cfg(feature = "lambda-host")]
pub mod host;
pub mod limits;
pub mod math;
pub mod memory;
pub mod pipeline;
pub mod query;
pub mod retention;
pub mod rules;
pub mod schedule;
pub mod sigv4;
pub mod store;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{
    Credentials, DEFAULT_CHANNEL_QUOTA, FaultConfig, QueryEngineConfig, RetentionClock,
    ScheduleClock, ServiceConfig, StorageConfig,
};
pub use error::Error;
pub use limits::Controls;
pub use query::QueryLimits;
pub use store::s3::S3Location;

use crate::catalog::{ContentState, DatasetDef};
use crate::query::{DataFusionEngine, Engine};
use crate::store::Backend;
use crate::store::fs::FsBackend;
use crate::store::s3::S3Backend;

/// A service listening for requests. Dropping it stops the listener; call
/// [`RunningService::shutdown`] to also wait for pending writes to finish.
pub struct RunningService {
    local_addr: SocketAddr,
    controls: Arc<Controls>,
    backend: Arc<Backend>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    scheduler: JoinHandle<()>,
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

    /// Storage work still queued in the background: sealed datastore segments waiting for
    /// their conversion to Parquet.
    pub fn pending_background_work(&self) -> usize {
        self.backend.pending_background_work()
    }

    /// Waits until the storage's background work (converting sealed datastore segments to
    /// Parquet, which starts once appends pause) has caught up, or `timeout` has passed;
    /// returns whether it caught up. For measurements that must not pay for the work an
    /// earlier measurement left behind.
    pub async fn wait_for_background_work(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.pending_background_work() == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops accepting requests, lets requests in flight finish and flushes storage.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.sweeper.abort();
        self.scheduler.abort();
        self.backend.shutdown().await;
        tracing::info!(addr = %self.local_addr, "IoT Analytics service stopped");
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        self.sweeper.abort();
        self.scheduler.abort();
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

/// The service's request handling, ready for any host: [`start`] serves it over TCP, the
/// Lambda host over function URL events.
pub struct App {
    /// The restJson1 router.
    pub router: axum::Router,
    /// Run-time controls for quotas and fault injection.
    pub controls: Arc<Controls>,
    backend: Arc<Backend>,
    service: Arc<api::Service>,
    timeline: schedule::Timeline,
    retention: RetentionClock,
}

/// What one [`App::tick`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickReport {
    /// Scheduled dataset contents started.
    pub scheduled: usize,
    /// Datasets whose Athena contents were polled.
    pub polled: usize,
    /// Objects or segments the retention sweep removed (when it ran).
    pub expired: Option<u64>,
}

impl App {
    /// Now on the schedules' clock, seconds since the epoch (ahead of real time when
    /// [`ServiceConfig::schedules`] shortens the minute).
    pub fn schedule_clock_now(&self) -> f64 {
        self.timeline.now()
    }

    /// What the local host does in the background, once, for a host without background time
    /// (the Lambda host, on a schedule): starts the contents of datasets whose schedule came
    /// due, polls the contents Athena is computing (so that they are delivered and trigger
    /// their dependents) and, with `sweep`, runs the retention sweep.
    pub async fn tick(&self, sweep: bool) -> Result<TickReport, Error> {
        let scheduled = api::runs::run_schedules(&self.service, &self.timeline).await?;
        let polled = api::runs::refresh_all(&self.service).await?;
        let expired = if sweep {
            Some(retention::sweep(&self.backend, self.retention).await?)
        } else {
            None
        };
        Ok(TickReport {
            scheduled,
            polled,
            expired,
        })
    }
}

/// Opens the configured storage, recovers stored state and builds the router.
pub async fn app(config: ServiceConfig) -> Result<App, Error> {
    check_config(&config)?;
    let backend = Arc::new(match &config.storage {
        StorageConfig::Filesystem => {
            Backend::Fs(FsBackend::open(&config.data_dir, config.durable)?)
        }
        StorageConfig::S3 { location, client } => {
            let backend = S3Backend::new(client.clone(), location.clone());
            #[cfg(feature = "lambda-host")]
            let backend = match &config.engine {
                QueryEngineConfig::Athena { glue, database, .. } => {
                    backend.with_glue_tables(glue::GlueTables::new(
                        glue.clone(),
                        database.clone(),
                        location.bucket.clone(),
                        location.prefix.clone(),
                    ))
                }
                QueryEngineConfig::DataFusion => backend,
            };
            Backend::S3(backend)
        }
    });
    let engine = match &config.engine {
        QueryEngineConfig::DataFusion => {
            fail_interrupted_contents(&backend).await?;
            Engine::DataFusion(DataFusionEngine::new(config.query_limits)?)
        }
        #[cfg(feature = "lambda-host")]
        QueryEngineConfig::Athena {
            athena,
            workgroup,
            database,
            ..
        } => {
            if matches!(config.storage, StorageConfig::Filesystem) {
                return Err(Error::Config(
                    "Athena queries need the S3 storage backend".into(),
                ));
            }
            Engine::Athena(athena::AthenaEngine::new(
                athena.clone(),
                workgroup.clone(),
                database.clone(),
            ))
        }
    };
    let controls = Arc::new(Controls::new(&config));
    let timeline = schedule::Timeline::new(config.schedules);
    let retention = config.retention;
    let svc = api::Service::new(config, backend.clone(), engine, controls.clone());
    Ok(App {
        timeline,
        retention,
        router: api::router(svc.clone()),
        controls,
        backend,
        service: svc,
    })
}

/// A query DataFusion was running when the service stopped will never finish.
async fn fail_interrupted_contents(backend: &Backend) -> Result<(), Error> {
    for dataset in backend.list::<DatasetDef>().await? {
        let interrupted = dataset
            .contents
            .iter()
            .any(|c| c.state == ContentState::Creating && c.query_execution_id.is_none());
        if !interrupted {
            continue;
        }
        backend
            .update(&dataset.name, |def: &mut DatasetDef| {
                for content in &mut def.contents {
                    if content.state == ContentState::Creating
                        && content.query_execution_id.is_none()
                    {
                        content.state = ContentState::Failed;
                        content.reason =
                            Some("The service stopped while the query was running".into());
                    }
                }
                Ok(())
            })
            .await?;
    }
    Ok(())
}

/// Opens the configured storage, recovers stored state and starts listening.
pub async fn start(config: ServiceConfig) -> Result<RunningService, Error> {
    let bind = config.bind;
    let data_dir = config.data_dir.clone();
    let verify_signatures = config.credentials.is_some();
    let durable = config.durable;
    let retention = config.retention;
    let schedules = config.schedules;
    let App {
        router,
        controls,
        backend,
        service,
        timeline,
        ..
    } = app(config).await?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let local_addr = listener.local_addr()?;
    tracing::info!(
        addr = %local_addr,
        data_dir = %data_dir.display(),
        verify_signatures,
        durable,
        "IoT Analytics service listening"
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "IoT Analytics server failed");
        }
    });
    let sweeper = retention::spawn(backend.clone(), retention);
    let scheduler = schedule::spawn(schedules, move || {
        let service = service.clone();
        async move { api::runs::run_schedules(&service, &timeline).await }
    });
    Ok(RunningService {
        local_addr,
        controls,
        backend,
        stop: Some(stop),
        server: Some(server),
        sweeper,
        scheduler,
    })
}
