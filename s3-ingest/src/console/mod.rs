//! The local web console: read-only pages over the local stack (executions drawn as graphs
//! with their histories, Map Runs and their failed items, the ledger's objects and reports,
//! and IoT Analytics' resources), served on loopback by `s3-ingest serve` and
//! `s3-ingest run --console`. Pages are rendered on the server; a small script polls
//! `/api/live` and refreshes the page while a run is going. Every read goes through the same
//! AWS SDK clients the tool uses, over HTTP to the local endpoints.

mod executions;
pub mod graph;
pub mod html;
mod iotanalytics;
mod ledger;
mod map_run;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio::sync::oneshot;

use crate::stack::LocalStack;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// What the console reads: clients of the three endpoints and where the workflow keeps things.
#[derive(Clone, Debug)]
pub struct Sources {
    /// Step Functions client.
    pub sfn: aws_sdk_sfn::Client,
    /// S3 client (the ledger and the reports).
    pub s3: aws_sdk_s3::Client,
    /// IoT Analytics client.
    pub iotanalytics: aws_sdk_iotanalytics::Client,
    /// The workflow's state machine.
    pub state_machine_arn: String,
    /// Where the ledger and reports live.
    pub ledger: ingest::ledger::LedgerLocation,
}

impl Sources {
    /// The clients of a running stack, with the ledger in `ledger_bucket`.
    pub async fn of(stack: &LocalStack, ledger_bucket: &str) -> Self {
        Self {
            sfn: stack.sfn_client().await,
            s3: stack.clients.s3.clone(),
            iotanalytics: stack.clients.iotanalytics.clone(),
            state_machine_arn: stack.state_machine_arn.clone(),
            ledger: ingest::ledger::LedgerLocation {
                bucket: ledger_bucket.to_owned(),
                prefix: ingest::ledger::DEFAULT_LEDGER_PREFIX.to_owned(),
            },
        }
    }
}

/// The console serving in the background.
#[derive(Debug)]
pub struct RunningConsole {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningConsole {
    /// The console's address, e.g. `http://127.0.0.1:8080/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops serving and waits for open requests to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// Starts the console on `bind:port` (0: a free port). `bind` must be loopback: the console
/// shows data and has no login.
pub async fn start(bind: IpAddr, port: u16, sources: Sources) -> anyhow::Result<RunningConsole> {
    anyhow::ensure!(
        bind.is_loopback(),
        "the console binds to loopback only, not {bind}"
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(bind, port))
        .await
        .with_context(|| format!("binding the console to {bind}:{port}"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(Arc::new(sources));
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "the console stopped");
        }
    });
    tracing::info!(url = %format!("http://{addr}/"), "console serving");
    Ok(RunningConsole {
        addr,
        stop: Some(stop),
        task,
    })
}

/// The console's routes.
pub fn router(sources: Arc<Sources>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/executions") }))
        .route("/executions", get(executions::list))
        .route("/execution", get(executions::detail))
        .route("/map-run", get(map_run::page))
        .route("/objects", get(ledger::objects))
        .route("/iotanalytics", get(iotanalytics::page))
        .route("/api/live", get(live))
        .route(
            "/static/console.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }),
        )
        .route(
            "/static/console.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    JS,
                )
            }),
        )
        .with_state(sources)
}

/// What a page handler returns: the page, or the failure shown as a page.
pub(crate) type PageResult = Result<Html<String>, Failure>;

/// A page that could not be built (an endpoint refused, a token is stale), shown with its
/// causes; the console keeps serving.
#[derive(Debug)]
pub(crate) struct Failure(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let causes: Vec<String> = self
            .0
            .chain()
            .map(|c| html::escape(&c.to_string()))
            .collect();
        let body = format!("<p class=\"error\">{}</p>", causes.join("<br>caused by: "));
        (StatusCode::BAD_GATEWAY, Html(html::page("Error", &body))).into_response()
    }
}

/// `{"running": n, "fingerprint": "..."}`: the script reloads the page while `running` is
/// above zero, and once more when the fingerprint (the newest executions and their statuses)
/// changes.
async fn live(State(sources): State<Arc<Sources>>) -> Result<Response, Failure> {
    let listed = sources
        .sfn
        .list_executions()
        .state_machine_arn(&sources.state_machine_arn)
        .max_results(20)
        .send()
        .await
        .context("ListExecutions")?;
    let running = listed
        .executions()
        .iter()
        .filter(|e| e.status() == &aws_sdk_sfn::types::ExecutionStatus::Running)
        .count();
    let fingerprint: Vec<String> = listed
        .executions()
        .iter()
        .map(|e| format!("{}={}", e.name(), e.status().as_str()))
        .collect();
    let body = serde_json::json!({"running": running, "fingerprint": fingerprint.join(",")});
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}
