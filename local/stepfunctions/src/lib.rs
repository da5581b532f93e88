//! Embedded Step Functions: runs Amazon States Language (JSONPath) definitions as AWS does and
//! serves the Step Functions API (awsJson1_0) on loopback, so that aws-sdk-sfn and the aws CLI
//! drive it with nothing but an endpoint URL.
//!
//! A host starts it with [`start`], registers its state machine through the in-process
//! [`StepFunctions`] handle (with `${Placeholder}` substitutions, as CloudFormation's
//! DefinitionSubstitutions), and serves Task resources through its own [`Resources`].

mod api;
mod dataflow;
mod definition;
mod error;
mod executor;
mod intrinsics;
mod jsonata;
mod jsonpath;
mod resources;
mod sigv4;
mod store;
mod variables;

pub use definition::{Definition, substitute};
pub use error::{Error, StatesError};
pub use resources::{LambdaError, NoResources, ObjectError, Resources};
pub use sigv4::AccessKey;
pub use store::{ExecutionStatus, HistoryEvent, ItemCounts, MapRunStatus};

use chrono::{DateTime, Utc};
use executor::Engine;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::Store;

/// How to run the embedded Step Functions.
#[derive(Clone)]
pub struct Config {
    /// Where state machines, executions and map runs are persisted.
    pub data_dir: PathBuf,
    /// The API listen address; must be a loopback address. Port 0 picks a free port.
    pub bind: SocketAddr,
    /// The region used in ARNs and reported to tasks.
    pub region: String,
    /// The account id used in ARNs.
    pub account_id: String,
    /// Multiplies every Wait and Retry delay (1.0 = real time; 0.01 for tests).
    pub time_scale: f64,
    /// The role ARN given to state machines registered without one.
    pub role_arn: String,
    /// The host's Lambda functions and S3 objects.
    pub resources: Arc<dyn Resources>,
    /// When set, API requests must be SigV4-signed (service `states`) with this key; when
    /// `None`, any signature (or none) is accepted.
    pub access_key: Option<AccessKey>,
}

impl Config {
    /// Defaults: 127.0.0.1 on a random port, region us-east-1, account 123456789012, real time.
    pub fn new(data_dir: impl Into<PathBuf>, resources: Arc<dyn Resources>) -> Config {
        Config {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            time_scale: 1.0,
            role_arn: "arn:aws:iam::123456789012:role/StepFunctionsLocal".into(),
            resources,
            access_key: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("bind", &self.bind)
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("time_scale", &self.time_scale)
            .finish_non_exhaustive()
    }
}

/// A summary of an execution, as DescribeExecution reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionInfo {
    /// The execution ARN.
    pub execution_arn: String,
    /// The state machine ARN.
    pub state_machine_arn: String,
    /// The execution name.
    pub name: String,
    /// Its status.
    pub status: ExecutionStatus,
    /// Its input.
    pub input: Value,
    /// Its output, once succeeded.
    pub output: Option<Value>,
    /// The error name, once failed.
    pub error: Option<String>,
    /// The cause, once failed.
    pub cause: Option<String>,
    /// Start time.
    pub start_date: DateTime<Utc>,
    /// Stop time.
    pub stop_date: Option<DateTime<Utc>>,
    /// How often it was redriven.
    pub redrive_count: u32,
    /// For a Map Run child: its Map Run.
    pub map_run_arn: Option<String>,
    /// How many history events it has.
    pub event_count: usize,
}

impl ExecutionInfo {
    fn from_record(r: &store::ExecutionRecord) -> ExecutionInfo {
        ExecutionInfo {
            execution_arn: r.arn.clone(),
            state_machine_arn: r.state_machine_arn.clone(),
            name: r.name.clone(),
            status: r.status,
            input: r.input.clone(),
            output: r.output.clone(),
            error: r
                .error
                .as_ref()
                .map(|e| e.error.clone())
                .filter(|e| !e.is_empty()),
            cause: r
                .error
                .as_ref()
                .map(|e| e.cause.clone())
                .filter(|c| !c.is_empty()),
            start_date: r.start_date,
            stop_date: r.stop_date,
            redrive_count: r.redrive_count,
            map_run_arn: r.map_run_arn.clone(),
            event_count: r.events.len(),
        }
    }
}

/// Progress of one Distributed Map run, for a host's progress display.
#[derive(Debug, Clone, PartialEq)]
pub struct MapRunProgress {
    /// The Map Run ARN.
    pub map_run_arn: String,
    /// The execution that runs the Map state.
    pub execution_arn: String,
    /// The Map state's name.
    pub state_name: String,
    /// Its status.
    pub status: MapRunStatus,
    /// Item counts by status.
    pub items: ItemCounts,
    /// When it started.
    pub start_date: DateTime<Utc>,
}

/// The in-process handle: register state machines, start and observe executions.
#[derive(Clone)]
pub struct StepFunctions {
    engine: Arc<Engine>,
    default_role: String,
}

impl std::fmt::Debug for StepFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepFunctions").finish_non_exhaustive()
    }
}

impl StepFunctions {
    /// Creates or updates the state machine `name` from a definition with `${Placeholder}`s,
    /// validating it strictly. Returns its ARN.
    pub fn register_state_machine(
        &self,
        name: &str,
        definition: &str,
        substitutions: &HashMap<String, String>,
    ) -> Result<String, Error> {
        let definition = Definition::load(definition, substitutions)?;
        Ok(self
            .engine
            .put_state_machine(name, &definition, &self.default_role, true, false)?
            .arn)
    }

    /// The ARN a state machine of this name has (registered or not).
    pub fn state_machine_arn(&self, name: &str) -> String {
        self.engine.state_machine_arn(name)
    }

    /// Starts an execution; `name` defaults to a UUID. Returns the execution ARN.
    pub fn start_execution(
        &self,
        state_machine_arn: &str,
        name: Option<&str>,
        input: Value,
    ) -> Result<String, Error> {
        Ok(self
            .engine
            .start_execution(state_machine_arn, name, input)?
            .arn)
    }

    /// Describes an execution.
    pub fn describe_execution(&self, execution_arn: &str) -> Result<ExecutionInfo, Error> {
        let entry = self.engine.store.existing_execution(execution_arn)?;
        let info = ExecutionInfo::from_record(&entry.lock());
        Ok(info)
    }

    /// Waits until the execution is no longer running (or `timeout` passes) and describes it.
    pub async fn wait_for_execution(
        &self,
        execution_arn: &str,
        timeout: Duration,
    ) -> Result<ExecutionInfo, Error> {
        let entry = self.engine.store.existing_execution(execution_arn)?;
        let mut status = entry.status.subscribe();
        let _ = tokio::time::timeout(timeout, status.wait_for(|s| s.is_final())).await;
        let info = ExecutionInfo::from_record(&entry.lock());
        Ok(info)
    }

    /// The history of an execution.
    pub fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, Error> {
        let entry = self.engine.store.existing_execution(execution_arn)?;
        let events = entry.lock().events.clone();
        Ok(events)
    }

    /// Executions of a state machine (Map Run children excluded), newest first.
    pub fn list_executions(&self, state_machine_arn: &str) -> Vec<ExecutionInfo> {
        let mut out = self.engine.store.select_executions(|r| {
            (r.state_machine_arn == state_machine_arn && r.map_run_arn.is_none())
                .then(|| ExecutionInfo::from_record(r))
        });
        out.sort_by_key(|e| std::cmp::Reverse(e.start_date));
        out
    }

    /// The Distributed Map runs of an execution, oldest first, with item counts.
    pub fn map_runs(&self, execution_arn: &str) -> Vec<MapRunProgress> {
        let mut out = self.engine.store.select_map_runs(|m| {
            (m.execution_arn == execution_arn).then(|| MapRunProgress {
                map_run_arn: m.arn.clone(),
                execution_arn: m.execution_arn.clone(),
                state_name: m.state_name.clone(),
                status: m.status,
                items: m.counts(),
                start_date: m.start_date,
            })
        });
        out.sort_by_key(|m| m.start_date);
        out
    }

    /// Stops a running execution.
    pub async fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<(), Error> {
        self.engine
            .stop_execution(execution_arn, error, cause)
            .await
            .map(|_| ())
    }

    /// Redrives a failed, timed out or aborted execution.
    pub fn redrive_execution(&self, execution_arn: &str) -> Result<(), Error> {
        self.engine.redrive_execution(execution_arn).map(|_| ())
    }
}

/// A running embedded Step Functions: the API server plus the executor.
pub struct RunningStepFunctions {
    addr: SocketAddr,
    handle: StepFunctions,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    flusher: tokio::task::JoinHandle<()>,
    store: Arc<Store>,
    engine: Arc<Engine>,
}

impl std::fmt::Debug for RunningStepFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningStepFunctions")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningStepFunctions {
    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_SFN` or an SDK endpoint override.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The in-process handle.
    pub fn handle(&self) -> StepFunctions {
        self.handle.clone()
    }

    /// Stops the API server and writes everything to the data directory. Executions that are
    /// still running stay RUNNING on disk and resume at the next [`start`] on the same directory.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
        let running = self
            .store
            .select_executions(|e| (e.status == ExecutionStatus::Running).then_some(()))
            .len();
        self.engine.shutdown.cancel();
        if running > 0 {
            // Give the interrupted executions a moment to write where they stopped.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.flusher.abort();
        self.store.flush_dirty();
    }
}

/// Opens the data directory, resumes executions that were running, and serves the API.
pub async fn start(config: Config) -> Result<RunningStepFunctions, Error> {
    if !config.bind.ip().is_loopback() {
        return Err(Error::Validation(format!(
            "the local Step Functions binds to loopback only, not {}",
            config.bind
        )));
    }
    if config.time_scale.is_nan() || config.time_scale < 0.0 {
        return Err(Error::Validation(
            "time_scale must be a non-negative number".into(),
        ));
    }
    let store = Arc::new(Store::open(&config.data_dir)?);
    let engine = Arc::new(Engine {
        region: config.region.clone(),
        account_id: config.account_id.clone(),
        time_scale: config.time_scale,
        resources: config.resources.clone(),
        store: store.clone(),
        shutdown: tokio_util::sync::CancellationToken::new(),
    });
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
    let app = api::router(
        engine.clone(),
        config.role_arn.clone(),
        config.access_key.clone(),
    );
    let server = tokio::spawn(serve(listener, app, shutdown_rx));
    let flush_store = store.clone();
    let flusher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let store = flush_store.clone();
            let _ = tokio::task::spawn_blocking(move || store.flush_dirty()).await;
        }
    });
    engine.resume_all();
    let engine_for_shutdown = engine.clone();
    tracing::info!(%addr, "local Step Functions listening");
    Ok(RunningStepFunctions {
        addr,
        handle: StepFunctions {
            engine,
            default_role: config.role_arn,
        },
        shutdown,
        server,
        flusher,
        store,
        engine: engine_for_shutdown,
    })
}

/// Serves `app` until `shutdown` fires, then lets open requests finish.
///
/// hyper's own header limits (100 fields, about 400 KB) would answer 431 with an empty body;
/// they are raised here so that the gate ([`sigv4`]) meets oversized heads first and refuses
/// them in awsJson. Only heads past these raised limits still get hyper's bare 431.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    http.http1()
        .max_headers(4 * sigv4_verifier::DEFAULT_MAX_HEADERS)
        .max_buf_size(1 << 20);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let service = hyper_util::service::TowerToHyperService::new(app);
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::warn!(error = %e, "the Step Functions API could not accept a connection");
                    // Out of file descriptors, most likely: give connections time to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Small responses go out at once, not after the client's delayed ACK.
        let _ = socket.set_nodelay(true);
        let connection = http
            .serve_connection_with_upgrades(TokioIo::new(socket), service.clone())
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a Step Functions API connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
