//! The HTTP front end: the restJson1 routes of the IoT Analytics API, one module per resource,
//! behind one signature check. The same router serves `s3-ingest serve` and the Lambda host.

mod activities;
mod auth;
mod channels;
mod contents;
mod datasets;
mod datastores;
mod holders;
mod logging;
mod messages;
mod pipelines;
mod reprocessing;
pub(crate) mod runs;
mod tags;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::catalog::{PipelineDef, ResourceKind};
use crate::config::ServiceConfig;
use crate::error::Error;
use crate::limits::Controls;
use crate::pipeline::{self, Compiled};
use crate::query::Engine;
use crate::store::Backend;

use crate::sigv4::MAX_BODY_BYTES;
pub(crate) use contents::CONTENT_PREFIX;

/// Compiled pipelines by the channel they read.
type Routes = HashMap<String, Vec<Arc<Compiled>>>;

/// How long pipelines read from a shared backend (S3) are used before they are read again:
/// a pipeline created or changed through another instance applies after at most this long.
const SHARED_ROUTES_FOR: Duration = Duration::from_secs(2);

/// Shared state of a running service.
pub(crate) struct Service {
    pub config: ServiceConfig,
    pub backend: Arc<Backend>,
    pub engine: Engine,
    pub controls: Arc<Controls>,
    verifier: sigv4_verifier::Verifier,
    routes: RwLock<(Arc<Routes>, Option<Instant>)>,
}

pub(crate) fn now() -> f64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    (t * 1000.0).round() / 1000.0
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| Error::InvalidRequest(format!("Invalid request body: {e}")))
}

/// The `tags` of a Create request, checked; none when absent.
fn create_tags(v: Option<Value>) -> Result<Vec<crate::catalog::Tag>, Error> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => crate::rules::parse_tags(&v),
    }
}

fn or_default(v: Option<Value>, default: Value) -> Value {
    match v {
        Some(Value::Null) | None => default,
        Some(v) => v,
    }
}

impl Service {
    pub(crate) fn new(
        config: ServiceConfig,
        backend: Arc<Backend>,
        engine: Engine,
        controls: Arc<Controls>,
    ) -> Arc<Self> {
        Arc::new(Self {
            verifier: crate::sigv4::verifier(&config),
            config,
            backend,
            engine,
            controls,
            routes: RwLock::new((Arc::new(HashMap::new()), None)),
        })
    }

    fn arn(&self, kind: ResourceKind, name: &str) -> String {
        format!(
            "arn:aws:iotanalytics:{}:{}:{}/{name}",
            self.config.region,
            self.config.account_id,
            kind.noun()
        )
    }

    fn already_exists(&self, kind: ResourceKind, name: &str) -> Error {
        Error::ResourceAlreadyExists {
            message: format!("A resource with the name {name} already exists."),
            resource_id: name.to_owned(),
            resource_arn: self.arn(kind, name),
        }
    }

    /// Forgets the compiled pipelines, after this instance changed one.
    fn pipelines_changed(&self) {
        self.routes.write().unwrap_or_else(|e| e.into_inner()).1 = None;
    }

    /// The compiled pipelines, read again when they changed here or, on a shared backend,
    /// when they are older than [`SHARED_ROUTES_FOR`].
    async fn routes(&self) -> Result<Arc<Routes>, Error> {
        {
            let (routes, read_at) = &*self.routes.read().unwrap_or_else(|e| e.into_inner());
            let fresh = match (read_at, &*self.backend) {
                (None, _) => false,
                (Some(_), Backend::Fs(_)) => true,
                (Some(at), Backend::S3(_)) => at.elapsed() < SHARED_ROUTES_FOR,
            };
            if fresh {
                return Ok(routes.clone());
            }
        }
        let read_at = Instant::now();
        let mut routes: Routes = HashMap::new();
        for p in self.backend.list::<PipelineDef>().await? {
            match pipeline::compile(&p.name, &p.activities, self.config.aws_activities.as_ref()) {
                Ok(c) => routes
                    .entry(c.channel.clone())
                    .or_default()
                    .push(Arc::new(c)),
                Err(e) => {
                    tracing::warn!(pipeline = %p.name, error = %e, "stored pipeline is not usable")
                }
            }
        }
        let routes = Arc::new(routes);
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = (routes.clone(), Some(read_at));
        Ok(routes)
    }
}

/// Builds the router over a service.
pub(crate) fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .merge(channels::routes())
        .merge(datastores::routes())
        .merge(pipelines::routes())
        .merge(datasets::routes())
        .merge(contents::routes())
        .merge(messages::routes())
        .merge(tags::routes())
        .merge(logging::routes())
        .merge(activities::routes())
        .merge(reprocessing::routes())
        .fallback(unsupported)
        .method_not_allowed_fallback(unsupported)
        .layer(axum::middleware::from_fn_with_state(
            svc.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(svc)
}

/// Answers a path or method no operation of the service model has.
async fn unsupported(method: Method, uri: Uri) -> Error {
    Error::UnsupportedOperation {
        status: 404,
        message: format!("No IoT Analytics operation matches {method} {}", uri.path()),
    }
}

type ApiResult = Result<Response, Error>;

fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `maxResults` / `nextToken` paging over items sorted by name.
fn page<T>(
    items: Vec<(String, T)>,
    query: &HashMap<String, String>,
) -> Result<(Vec<T>, Option<String>), Error> {
    let max = match query.get("maxResults") {
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=250).contains(m))
            .ok_or_else(|| Error::InvalidRequest("maxResults must be between 1 and 250".into()))?,
        None => 250,
    };
    let after = query.get("nextToken").cloned();
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let next = (rest.len() > max).then(|| rest[max - 1].0.clone());
    rest.truncate(max);
    Ok((rest.into_iter().map(|(_, v)| v).collect(), next))
}

fn list_body(field: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut body = json!({ field: items });
    if let Some(n) = next {
        body["nextToken"] = n.into();
    }
    body
}

/// The `statistics` of a Describe answer.
fn statistics(size_bytes: u64) -> Value {
    json!({ "size": {
        "estimatedSizeInBytes": size_bytes as f64,
        "estimatedOn": now(),
    }})
}

fn wants_statistics(query: &HashMap<String, String>) -> bool {
    query.get("includeStatistics").map(String::as_str) == Some("true")
}
